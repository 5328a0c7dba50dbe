//! The pixman renderer: composites on the CPU into a pixman image, which frames copy from.

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::{Bind, Offscreen};
use smithay::reexports::pixman::Image;

use super::OutputRenderer;
use crate::{Mode, Rect};

impl OutputRenderer for PixmanRenderer {
    type Target = Image<'static, 'static>;

    fn create_target(
        &mut self,
        mode: Mode,
        _ring: Option<super::RingSpec<'_>>,
    ) -> Result<Self::Target, String> {
        self.create_buffer(
            Fourcc::Xrgb8888,
            (mode.width as i32, mode.height as i32).into(),
        )
        .map_err(|err| format!("allocating a {}x{} target: {err}", mode.width, mode.height))
    }

    fn bind_target<'a>(
        &mut self,
        target: &'a mut Self::Target,
    ) -> Result<Self::Framebuffer<'a>, String> {
        self.bind(target)
            .map_err(|err| format!("binding the target: {err}"))
    }

    fn read_target(
        &mut self,
        target: &mut Self::Target,
        rects: &[Rect],
        dst: &mut [u8],
        stride: usize,
    ) -> Result<(), String> {
        let (src_stride, height) = (target.stride(), target.height());
        // SAFETY: `target` owns its pixel memory (pixman allocated it in `create_buffer`),
        // which is `stride * height` bytes long and stays alive and unmodified while we hold
        // `&mut` to it; pixman renders synchronously, so no write is in flight.
        let src =
            unsafe { std::slice::from_raw_parts(target.data() as *const u8, src_stride * height) };
        for r in rects {
            copy_rect(dst, stride, src, src_stride, r);
        }
        Ok(())
    }
}

/// Copies rectangle `r` (clipped to both pictures) of 4-byte pixels from `src` to `dst`.
fn copy_rect(dst: &mut [u8], dst_stride: usize, src: &[u8], src_stride: usize, r: &Rect) {
    let rows = (src.len() / src_stride).min(dst.len() / dst_stride);
    let x0 = r.x as usize * 4;
    let x1 = ((r.x as usize + r.width as usize) * 4)
        .min(src_stride)
        .min(dst_stride);
    if x0 >= x1 {
        return;
    }
    for y in (r.y as usize)..(r.y as usize + r.height as usize).min(rows) {
        dst[y * dst_stride + x0..y * dst_stride + x1]
            .copy_from_slice(&src[y * src_stride + x0..y * src_stride + x1]);
    }
}
