//! The GLES renderer's Y'CbCr conversion (see [`crate::yuv`]): one draw of a shader over a
//! frame's texture into an RGBA8 texture that holds the planes' bytes, then one read of it.

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::gles::{
    GlesRenderer, GlesTexProgram, GlesTexture, Uniform, UniformName, UniformType,
};
use smithay::backend::renderer::sync::SyncPoint;
use smithay::backend::renderer::{
    Bind, Color32F, ExportMem, Frame as _, Offscreen, Renderer, Texture, TextureFilter,
};
use smithay::utils::{Buffer as BufferCoord, Physical, Rectangle, Size, Transform};

use std::ops::Range;

use smithay::backend::renderer::ImportMem;

use crate::yuv::{convert_on_cpu, YuvConversion, YuvLayout, YuvPicture};

/// The conversion shader; it also handles the variants Smithay compiles every texture shader in
/// (`EXTERNAL`, `NO_ALPHA`, `DEBUG_FLAGS`).
const SHADER: &str = include_str!("yuv.frag");

/// The shader and the target of the last conversion, kept for the next one.
pub(crate) struct YuvConverter {
    program: GlesTexProgram,
    target: Option<GlesTexture>,
}

impl YuvConverter {
    /// Compiles the shader and checks it once on pictures that show whether the driver keeps
    /// the precision the shader needs (see [`YuvConverter::self_check`]).
    pub(crate) fn new(renderer: &mut GlesRenderer, filter: TextureFilter) -> Result<Self, String> {
        let uniforms = [
            UniformName::new("src_size", UniformType::_2f),
            UniformName::new("dst_size", UniformType::_2f),
            UniformName::new("shape", UniformType::_2f),
            UniformName::new("y_row", UniformType::_3f),
            UniformName::new("cb_row", UniformType::_3f),
            UniformName::new("cr_row", UniformType::_3f),
            UniformName::new("offsets", UniformType::_3f),
        ];
        let program = renderer
            .compile_custom_texture_shader(SHADER, &uniforms)
            .map_err(|err| format!("compiling the Y'CbCr shader: {err}"))?;
        let mut converter = Self {
            program,
            target: None,
        };
        converter.self_check(renderer, filter)?;
        Ok(converter)
    }

    /// Converts two noise pictures on the GPU and on the CPU and wants every sample within one
    /// code: one 4 wide and 1100 high, whose 4:4:4 planes make 3300 rows, and one 4200 wide,
    /// 2100 texels of P010. A driver that computes positions or texture coordinates with less
    /// than 32-bit floats gets those wrong past about 1024 or 2048 (Mesa's llvmpipe does, for
    /// `gl_FragCoord`, which the shader therefore does not use), and then frames are converted
    /// on the CPU instead of shown wrong. The check
    /// pictures are textures in memory; a frame's dmabuf may be imported as an external texture,
    /// which Smithay draws with the shader's `EXTERNAL` variant, not checked here.
    fn self_check(
        &mut self,
        renderer: &mut GlesRenderer,
        filter: TextureFilter,
    ) -> Result<(), String> {
        let checks = [
            (4, 1100, YuvLayout::Yuv444P16),
            (4, 1100, YuvLayout::Yuv444),
            (4200, 2, YuvLayout::Nv12),
            (4200, 2, YuvLayout::P010),
        ];
        for (width, height, layout) in checks {
            let pixels = noise(width, height);
            let size = (width as i32, height as i32).into();
            let source = renderer
                .import_memory(&pixels, Fourcc::Xrgb8888, size, false)
                .map_err(|err| format!("uploading the check picture: {err}"))?;
            let conversion = YuvConversion {
                layout,
                kr: 0.2126,
                kb: 0.0722,
                full_range: false,
            };
            let whole = 0..height;
            let rows = std::slice::from_ref(&whole);
            let gpu = self.convert(renderer, &source, &conversion, rows, filter)?;
            let cpu = convert_on_cpu(&pixels, width, height, width as usize * 4, &conversion)?;
            if let Some((plane, row, i)) = first_difference(&gpu, &cpu) {
                return Err(format!(
                    "the GPU converts a {width}x{height} {layout:?} check picture wrong (plane \
                     {plane}, row {row}, sample {i}): the driver lacks the precision"
                ));
            }
        }
        Ok(())
    }

    /// Converts luma rows `rows` of `source` (the whole texture, rows top first) as
    /// `conversion` asks, with their chroma rows (each span must fit
    /// [`YuvLayout::can_span`]), and reads them back. `filter` is the renderer's scale filter,
    /// put back afterwards: the conversion samples texel centres with nearest filtering.
    pub(crate) fn convert(
        &mut self,
        renderer: &mut GlesRenderer,
        source: &GlesTexture,
        conversion: &YuvConversion,
        rows: &[Range<u32>],
        filter: TextureFilter,
    ) -> Result<YuvPicture, String> {
        let (width, height) = source_size(source)?;
        let layout = conversion.layout;
        layout.check(width, height, rows)?;
        let (texels, total) = layout.packed_size(width, height);
        let packed = Size::<i32, BufferCoord>::from((texels as i32, total as i32));
        let mut target = match self.target.take() {
            Some(target) if target.size() == packed => target,
            _ => Offscreen::<GlesTexture>::create_buffer(renderer, Fourcc::Abgr8888, packed)
                .map_err(|err| format!("allocating the Y'CbCr target: {err}"))?,
        };
        let bytes = with_nearest(renderer, filter, |renderer| {
            // The reads are ordered after the draw in the same context; no fence to wait for.
            let _ = self.draw(renderer, &mut target, packed, packed, source, conversion)?;
            read_planes(renderer, &mut target, packed, layout, height, rows)
        });
        self.target = Some(target);
        YuvPicture::new(
            layout,
            width,
            height,
            texels as usize * 4,
            bytes?,
            rows.to_vec(),
        )
    }

    /// Converts the whole of `source` into the top of `target`, a buffer of
    /// [`YuvLayout::packed_size`] texels or more rows, and leaves it there; the sync point says
    /// when the GPU is done.
    pub(crate) fn convert_into<T>(
        &mut self,
        renderer: &mut GlesRenderer,
        source: &GlesTexture,
        conversion: &YuvConversion,
        target: &mut T,
        target_size: Size<i32, BufferCoord>,
        filter: TextureFilter,
    ) -> Result<SyncPoint, String>
    where
        GlesRenderer: Bind<T>,
    {
        let (width, height) = source_size(source)?;
        conversion
            .layout
            .check(width, height, std::slice::from_ref(&(0..height)))?;
        let (texels, total) = conversion.layout.packed_size(width, height);
        let packed = Size::<i32, BufferCoord>::from((texels as i32, total as i32));
        if target_size.w != packed.w || target_size.h < packed.h {
            return Err(format!(
                "a {}x{} buffer for a {texels}x{total} Y'CbCr picture",
                target_size.w, target_size.h
            ));
        }
        with_nearest(renderer, filter, |renderer| {
            self.draw(renderer, target, target_size, packed, source, conversion)
        })
    }

    /// Draws the whole packed picture (`packed` texels) into the top of `target`
    /// (`target_size` texels), and clears the rest.
    fn draw<T>(
        &self,
        renderer: &mut GlesRenderer,
        target: &mut T,
        target_size: Size<i32, BufferCoord>,
        packed: Size<i32, BufferCoord>,
        source: &GlesTexture,
        conversion: &YuvConversion,
    ) -> Result<SyncPoint, String>
    where
        GlesRenderer: Bind<T>,
    {
        let size = source.size();
        let layout = conversion.layout;
        let k = conversion.coefficients();
        let full_resolution = if layout.is_444() { 1.0 } else { 0.0 };
        let uniforms = [
            Uniform::new("src_size", (size.w as f32, size.h as f32)),
            Uniform::new("dst_size", (packed.w as f32, packed.h as f32)),
            Uniform::new("shape", (layout.bytes_per_sample() as f32, full_resolution)),
            Uniform::new("y_row", k.y),
            Uniform::new("cb_row", k.cb),
            Uniform::new("cr_row", k.cr),
            Uniform::new("offsets", (k.y_offset, k.c_offset, k.max)),
        ];
        // Row 0 of the output is the buffer's first row, whatever its height: the picture lies
        // in the top rows, and the rows past it are cleared too.
        draw_opaque(
            renderer,
            target,
            target_size,
            source,
            packed,
            Some((&self.program, &uniforms)),
        )
        .map_err(|err| format!("the Y'CbCr pass: {err}"))
    }
}

/// Draws all of `source` opaque into the top left `drawn` texels of `target` (`target_size`
/// texels), through `program` with its uniforms where given, after clearing the whole target;
/// the draw's sync point. Opaque, Smithay turns blending off, and over a cleared target even a
/// blended draw would write exactly the texels drawn.
pub(super) fn draw_opaque<T>(
    renderer: &mut GlesRenderer,
    target: &mut T,
    target_size: Size<i32, BufferCoord>,
    source: &GlesTexture,
    drawn: Size<i32, BufferCoord>,
    program: Option<(&GlesTexProgram, &[Uniform<'_>])>,
) -> Result<SyncPoint, String>
where
    GlesRenderer: Bind<T>,
{
    let whole = Rectangle::from_size(Size::<i32, Physical>::from((drawn.w, drawn.h)));
    let all = Rectangle::from_size(Size::<i32, Physical>::from((target_size.w, target_size.h)));
    let mut framebuffer = renderer
        .bind(target)
        .map_err(|err| format!("binding the target: {err}"))?;
    let mut frame = renderer
        .render(&mut framebuffer, all.size, Transform::Normal)
        .map_err(|err| format!("starting the draw: {err}"))?;
    let (program, uniforms) = match program {
        Some((program, uniforms)) => (Some(program), uniforms),
        None => (None, &[][..]),
    };
    let result = frame.clear(Color32F::TRANSPARENT, &[all]).and_then(|()| {
        frame.render_texture_from_to(
            source,
            Rectangle::from_size(source.size().to_f64()),
            whole,
            &[whole],
            &[whole],
            Transform::Normal,
            1.0,
            program,
            uniforms,
        )
    });
    let finished = frame.finish();
    result.map_err(|err| format!("drawing: {err}"))?;
    finished.map_err(|err| format!("finishing the draw: {err}"))
}

/// Reads a whole `width` x `height` picture in `layout` out of a buffer or texture
/// (`image_size` texels) it was converted into ([`YuvConverter::convert_into`]).
pub(crate) fn read_image<T>(
    renderer: &mut GlesRenderer,
    image: &mut T,
    image_size: Size<i32, BufferCoord>,
    layout: YuvLayout,
    (width, height): (u32, u32),
) -> Result<YuvPicture, String>
where
    GlesRenderer: Bind<T>,
{
    let (texels, total) = layout.packed_size(width, height);
    let packed = Size::<i32, BufferCoord>::from((texels as i32, total as i32));
    if image_size.w != packed.w || image_size.h < packed.h {
        return Err("the buffer is not of this picture".into());
    }
    let whole = 0..height;
    let rows = std::slice::from_ref(&whole);
    let bytes = read_planes(renderer, image, packed, layout, height, rows)?;
    YuvPicture::new(
        layout,
        width,
        height,
        texels as usize * 4,
        bytes,
        rows.to_vec(),
    )
}

/// The size of a frame's texture; refused if stored bottom row first.
fn source_size(source: &GlesTexture) -> Result<(u32, u32), String> {
    if source.is_y_inverted() {
        return Err("the frame's buffer is stored bottom row first".into());
    }
    let size = source.size();
    Ok((size.w.max(0) as u32, size.h.max(0) as u32))
}

/// Runs `f` with nearest filtering, and puts `filter` back afterwards.
pub(super) fn with_nearest<T>(
    renderer: &mut GlesRenderer,
    filter: TextureFilter,
    f: impl FnOnce(&mut GlesRenderer) -> Result<T, String>,
) -> Result<T, String> {
    let nearest = renderer
        .upscale_filter(TextureFilter::Nearest)
        .and_then(|()| renderer.downscale_filter(TextureFilter::Nearest));
    let result = nearest
        .map_err(|err| format!("setting nearest filtering: {err}"))
        .and_then(|()| f(renderer));
    let restored = renderer
        .upscale_filter(filter)
        .and_then(|()| renderer.downscale_filter(filter));
    let value = result?;
    restored.map_err(|err| format!("restoring the scale filter: {err}"))?;
    Ok(value)
}

/// Reads the rows of each plane that luma rows `rows` make out of the packed picture in
/// `target` (`packed` texels, of a picture `height` rows high).
fn read_planes<T>(
    renderer: &mut GlesRenderer,
    target: &mut T,
    packed: Size<i32, BufferCoord>,
    layout: YuvLayout,
    height: u32,
    rows: &[Range<u32>],
) -> Result<Vec<u8>, String>
where
    GlesRenderer: Bind<T>,
{
    let framebuffer = renderer
        .bind(target)
        .map_err(|err| format!("binding the Y'CbCr target to read it: {err}"))?;
    // Every read is issued (into a pixel buffer object each) before the first is mapped.
    let mut reads = Vec::new();
    for plane in 0..layout.planes() {
        for span in rows {
            let packed_rows = layout.plane_span(plane, height, span);
            let region = Rectangle::new(
                (0, packed_rows.start as i32).into(),
                (packed.w, packed_rows.len() as i32).into(),
            );
            let mapping = renderer
                .copy_framebuffer(&framebuffer, region, Fourcc::Abgr8888)
                .map_err(|err| format!("reading the Y'CbCr planes: {err}"))?;
            reads.push((packed_rows.start, mapping));
        }
    }
    drop(framebuffer);
    let stride = packed.w as usize * 4;
    let mut bytes = vec![0; stride * packed.h as usize];
    for (first, mapping) in &reads {
        let read = renderer
            .map_texture(mapping)
            .map_err(|err| format!("mapping the Y'CbCr planes: {err}"))?;
        let start = *first as usize * stride;
        bytes
            .get_mut(start..start + read.len())
            .ok_or("a read of the Y'CbCr planes past their end")?
            .copy_from_slice(read);
    }
    Ok(bytes)
}

/// XRGB8888 pixels of every kind, with an X byte that must not matter.
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

/// The first sample (plane, row, index) of the rows `gpu` holds that is more than one code off
/// `cpu` (a whole picture of the same layout and size).
fn first_difference(gpu: &YuvPicture, cpu: &YuvPicture) -> Option<(usize, u32, u32)> {
    let layout = gpu.layout();
    for plane in 0..layout.planes() {
        for span in gpu.rows() {
            let rows = if plane > 0 && !layout.is_444() {
                span.start / 2..span.end.div_ceil(2)
            } else {
                span.clone()
            };
            for row in rows {
                for i in 0..gpu.width() {
                    let (g, c) = (gpu.sample(plane, row, i), cpu.sample(plane, row, i));
                    if !matches!((g, c), (Some(g), Some(c)) if g.abs_diff(c) <= 1) {
                        return Some((plane, row, i));
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gles;

    /// A GLES renderer on the first EGL device, Mesa's software one on a machine without a GPU.
    fn renderer() -> GlesRenderer {
        let _lock = gles::egl_lock();
        let devices = gles::devices().expect("EGL devices (Mesa's libegl-mesa0)");
        let device = devices.first().expect("an EGL device");
        gles::open(device).expect("a GLES renderer").0
    }

    fn conversions() -> impl Iterator<Item = YuvConversion> {
        YuvLayout::ALL.into_iter().flat_map(|layout| {
            [(0.299, 0.114), (0.2126, 0.0722)]
                .into_iter()
                .flat_map(move |(kr, kb)| {
                    [false, true].map(|full_range| YuvConversion {
                        layout,
                        kr,
                        kb,
                        full_range,
                    })
                })
        })
    }

    #[test]
    fn the_shader_converts_like_the_cpu_in_every_layout_matrix_and_range() {
        let mut renderer = renderer();
        // Passing its self-check on the way.
        let mut converter = YuvConverter::new(&mut renderer, TextureFilter::Linear).unwrap();
        // Rows of 66 and 67 samples end in padding in every layout (4:2:0 needs an even width).
        for (width, height) in [(66, 34), (67, 33)] {
            let pixels = noise(width, height);
            let size = (width as i32, height as i32).into();
            let source = renderer
                .import_memory(&pixels, Fourcc::Xrgb8888, size, false)
                .unwrap();
            for conversion in conversions() {
                let layout = conversion.layout;
                let stride = width as usize * 4;
                let Ok(cpu) = convert_on_cpu(&pixels, width, height, stride, &conversion) else {
                    assert!(!layout.fits(width, height));
                    continue;
                };
                let whole = 0..height;
                let all = std::slice::from_ref(&whole);
                let gpu = converter
                    .convert(
                        &mut renderer,
                        &source,
                        &conversion,
                        all,
                        TextureFilter::Linear,
                    )
                    .unwrap();
                assert_eq!((gpu.width(), gpu.height()), (width, height));
                assert_eq!(
                    first_difference(&gpu, &cpu),
                    None,
                    "{width}x{height} {conversion:?}"
                );
                if layout.bytes_per_sample() == 2 {
                    // The six bits under each value are zero, in every plane.
                    for plane in 0..layout.planes() {
                        let rows = gpu.plane(plane).unwrap().chunks(gpu.stride());
                        for row in rows {
                            let samples = row[..gpu.row_bytes()].chunks(2);
                            assert!(samples.clone().all(|s| s[0] & 0x3f == 0), "{conversion:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn only_the_rows_asked_for_are_read_back() {
        let mut renderer = renderer();
        let mut converter = YuvConverter::new(&mut renderer, TextureFilter::Nearest).unwrap();
        let (width, height) = (40, 24);
        let pixels = noise(width, height);
        let size = (width as i32, height as i32).into();
        let source = renderer
            .import_memory(&pixels, Fourcc::Xrgb8888, size, false)
            .unwrap();
        for layout in [YuvLayout::Nv12, YuvLayout::Yuv444P16] {
            let conversion = YuvConversion {
                layout,
                kr: 0.299,
                kb: 0.114,
                full_range: true,
            };
            let spans = [4..8, 14..24];
            let gpu = converter
                .convert(
                    &mut renderer,
                    &source,
                    &conversion,
                    &spans,
                    TextureFilter::Nearest,
                )
                .unwrap();
            assert_eq!(gpu.rows(), spans);
            let cpu =
                convert_on_cpu(&pixels, width, height, width as usize * 4, &conversion).unwrap();
            assert_eq!(first_difference(&gpu, &cpu), None, "{layout:?}");
            // Rows not asked for are left zero; a luma row in a span is not.
            let row_of = |plane: usize, row: usize| {
                let stride = gpu.stride();
                gpu.plane(plane).unwrap()[row * stride..row * stride + gpu.row_bytes()].to_vec()
            };
            assert!(row_of(0, 3).iter().all(|&b| b == 0));
            assert!(row_of(0, 10).iter().all(|&b| b == 0));
            assert!(row_of(0, 4).iter().any(|&b| b != 0));
            let chroma_outside = if layout.is_444() { 12 } else { 5 };
            assert!(row_of(1, chroma_outside).iter().all(|&b| b == 0));
            // A 4:2:0 span must start on a chroma row.
            let odd = converter.convert(
                &mut renderer,
                &source,
                &conversion,
                std::slice::from_ref(&(3..8)),
                TextureFilter::Nearest,
            );
            assert_eq!(odd.is_err(), !layout.is_444());
        }
    }
}
