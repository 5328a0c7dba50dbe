//! The GLES renderer's Y'CbCr conversion (see [`crate::yuv`]): one draw of a shader over a
//! frame's texture into an RGBA8 texture that holds the planes' bytes, then one read of it.

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::gles::{
    GlesRenderer, GlesTexProgram, GlesTexture, Uniform, UniformName, UniformType,
};
use smithay::backend::renderer::{
    Bind, Color32F, ExportMem, Frame as _, Offscreen, Renderer, Texture, TextureFilter,
};
use smithay::utils::{Buffer as BufferCoord, Physical, Rectangle, Size, Transform};

use crate::yuv::{YuvConversion, YuvPicture};

/// The conversion shader; it also handles the variants Smithay compiles every texture shader in
/// (`EXTERNAL`, `NO_ALPHA`, `DEBUG_FLAGS`).
const SHADER: &str = include_str!("yuv.frag");

/// The shader and the target of the last conversion, kept for the next one.
pub(crate) struct YuvConverter {
    program: GlesTexProgram,
    target: Option<GlesTexture>,
}

impl YuvConverter {
    pub(crate) fn new(renderer: &mut GlesRenderer) -> Result<Self, String> {
        let uniforms = [
            UniformName::new("src_size", UniformType::_2f),
            UniformName::new("shape", UniformType::_2f),
            UniformName::new("y_row", UniformType::_3f),
            UniformName::new("cb_row", UniformType::_3f),
            UniformName::new("cr_row", UniformType::_3f),
            UniformName::new("offsets", UniformType::_3f),
        ];
        let program = renderer
            .compile_custom_texture_shader(SHADER, &uniforms)
            .map_err(|err| format!("compiling the Y'CbCr shader: {err}"))?;
        Ok(Self {
            program,
            target: None,
        })
    }

    /// Converts `source` (the whole texture, rows top first) as `conversion` asks. `filter` is
    /// the renderer's scale filter, put back afterwards: the conversion samples texel centres
    /// with nearest filtering.
    pub(crate) fn convert(
        &mut self,
        renderer: &mut GlesRenderer,
        source: &GlesTexture,
        conversion: &YuvConversion,
        filter: TextureFilter,
    ) -> Result<YuvPicture, String> {
        let size = source.size();
        let (width, height) = (size.w.max(0) as u32, size.h.max(0) as u32);
        let layout = conversion.layout;
        if !layout.fits(width, height) {
            return Err(format!("a {width}x{height} frame cannot be {layout:?}"));
        }
        if source.is_y_inverted() {
            return Err("the frame's buffer is stored bottom row first".into());
        }
        let texels = (width * layout.bytes_per_sample()).div_ceil(4);
        let rows: u32 = (0..layout.planes())
            .map(|p| layout.plane_rows(p, height))
            .sum();
        let packed = Size::<i32, BufferCoord>::from((texels as i32, rows as i32));
        let mut target = match self.target.take() {
            Some(target) if target.size() == packed => target,
            _ => Offscreen::<GlesTexture>::create_buffer(renderer, Fourcc::Abgr8888, packed)
                .map_err(|err| format!("allocating the Y'CbCr target: {err}"))?,
        };
        let nearest = renderer
            .upscale_filter(TextureFilter::Nearest)
            .and_then(|()| renderer.downscale_filter(TextureFilter::Nearest));
        let bytes = nearest
            .map_err(|err| format!("setting nearest filtering: {err}"))
            .and_then(|()| self.draw(renderer, &mut target, source, conversion));
        let restored = renderer
            .upscale_filter(filter)
            .and_then(|()| renderer.downscale_filter(filter));
        self.target = Some(target);
        let bytes = bytes?;
        restored.map_err(|err| format!("restoring the scale filter: {err}"))?;
        YuvPicture::new(layout, width, height, texels as usize * 4, bytes)
    }

    fn draw(
        &self,
        renderer: &mut GlesRenderer,
        target: &mut GlesTexture,
        source: &GlesTexture,
        conversion: &YuvConversion,
    ) -> Result<Vec<u8>, String> {
        let size = source.size();
        let packed = target.size();
        let layout = conversion.layout;
        let k = conversion.coefficients();
        let full_resolution = if layout.is_444() { 1.0 } else { 0.0 };
        let uniforms = [
            Uniform::new("src_size", (size.w as f32, size.h as f32)),
            Uniform::new("shape", (layout.bytes_per_sample() as f32, full_resolution)),
            Uniform::new("y_row", k.y),
            Uniform::new("cb_row", k.cb),
            Uniform::new("cr_row", k.cr),
            Uniform::new("offsets", (k.y_offset, k.c_offset, k.max)),
        ];
        let physical = Size::<i32, Physical>::from((packed.w, packed.h));
        let whole = Rectangle::from_size(physical);
        let mut framebuffer = renderer
            .bind(target)
            .map_err(|err| format!("binding the Y'CbCr target: {err}"))?;
        let mut frame = renderer
            .render(&mut framebuffer, physical, Transform::Normal)
            .map_err(|err| format!("starting the Y'CbCr pass: {err}"))?;
        // Cleared, so that a blended draw would still write exactly the shader's bytes.
        let drawn = frame.clear(Color32F::TRANSPARENT, &[whole]).and_then(|()| {
            frame.render_texture_from_to(
                source,
                Rectangle::from_size(size.to_f64()),
                whole,
                &[whole],
                &[whole],
                Transform::Normal,
                1.0,
                Some(&self.program),
                &uniforms,
            )
        });
        let finished = frame.finish();
        drawn.map_err(|err| format!("drawing the Y'CbCr pass: {err}"))?;
        // The read below is ordered after the draw in the same context; no fence to wait for.
        let _ = finished.map_err(|err| format!("finishing the Y'CbCr pass: {err}"))?;
        let mapping = renderer
            .copy_framebuffer(&framebuffer, Rectangle::from_size(packed), Fourcc::Abgr8888)
            .map_err(|err| format!("reading the Y'CbCr planes: {err}"))?;
        drop(framebuffer);
        let bytes = renderer
            .map_texture(&mapping)
            .map_err(|err| format!("mapping the Y'CbCr planes: {err}"))?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use smithay::backend::renderer::ImportMem;

    use super::*;
    use crate::backend::gles;
    use crate::yuv::{convert_on_cpu, YuvLayout};

    /// A GLES renderer on the first EGL device, Mesa's software one on a machine without a GPU.
    fn renderer() -> GlesRenderer {
        let _lock = gles::egl_lock();
        let devices = gles::devices().expect("EGL devices (Mesa's libegl-mesa0)");
        let device = devices.first().expect("an EGL device");
        gles::open(device).expect("a GLES renderer").0
    }

    /// XRGB8888 pixels of every kind: noise, with an X byte that must not matter.
    fn noise(width: u32, height: u32) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..width * height * 4)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 8) as u8
            })
            .collect()
    }

    #[test]
    fn the_shader_converts_like_the_cpu_in_every_layout_matrix_and_range() {
        let mut renderer = renderer();
        let mut converter = YuvConverter::new(&mut renderer).unwrap();
        // Not a multiple of four wide: the packed rows end in padding.
        let (width, height) = (66, 34);
        let pixels = noise(width, height);
        let size = (width as i32, height as i32).into();
        let source = renderer
            .import_memory(&pixels, Fourcc::Xrgb8888, size, false)
            .unwrap();
        for layout in YuvLayout::ALL {
            for (kr, kb) in [(0.299, 0.114), (0.2126, 0.0722)] {
                for full_range in [false, true] {
                    let conversion = YuvConversion {
                        layout,
                        kr,
                        kb,
                        full_range,
                    };
                    let gpu = converter
                        .convert(&mut renderer, &source, &conversion, TextureFilter::Linear)
                        .unwrap();
                    let cpu =
                        convert_on_cpu(&pixels, width, height, width as usize * 4, &conversion)
                            .unwrap();
                    assert_eq!((gpu.width(), gpu.height()), (width, height));
                    let mut worst = 0;
                    for plane in 0..layout.planes() {
                        for row in 0..layout.plane_rows(plane, height) {
                            for i in 0..width {
                                let (g, c) = (gpu.sample(plane, row, i), cpu.sample(plane, row, i));
                                let (g, c) = (g.unwrap(), c.unwrap());
                                worst = worst.max(g.abs_diff(c));
                            }
                        }
                    }
                    assert!(worst <= 1, "{conversion:?}: a sample is {worst} codes off");
                    if layout.bytes_per_sample() == 2 {
                        // The six bits under the value are zero.
                        let plane = gpu.plane(0).unwrap();
                        assert!(plane[..gpu.row_bytes()].chunks(2).all(|s| s[0] & 0x3f == 0));
                    }
                }
            }
        }
    }
}
