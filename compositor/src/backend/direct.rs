//! Client buffer frames: a frame that is one client's `wl_shm` buffer as it is, when that buffer
//! alone makes up the whole output (no compositing, no copy); with dmabuf frames, a client's
//! dmabuf the same way ([`whole_output_dmabuf`]).
//!
//! The check runs on elements collected with a pixman renderer of its own, whichever renderer
//! draws the output: pixman wraps a client's shared memory without copying it, where GLES would
//! upload each committed buffer into a texture only to find that nothing has to be drawn. Its
//! damage tracker sees every render, so the damage of a client buffer frame is always what
//! changed since the frame before it, whether that one was composited or not.

use std::sync::Arc;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::{Buffer as _, Fourcc};
use smithay::backend::renderer::damage::OutputDamageTracker;
use smithay::backend::renderer::element::{Element, Id};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::sync::SyncPoint;
use smithay::backend::renderer::utils::{with_renderer_surface_state, Buffer};
use smithay::backend::renderer::{ImportAll, ImportMem, Renderer, Texture};
use smithay::desktop::Space;
use smithay::output::Output;
use smithay::reexports::calloop::channel::Sender;
use smithay::reexports::calloop::ping::Ping;
use smithay::reexports::wayland_server::protocol::wl_shm;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Physical, Rectangle, Scale, Transform};
use smithay::wayland::dmabuf::get_dmabuf;
use smithay::wayland::seat::WaylandFocus;
use smithay::wayland::shm::with_buffer_contents;
use tracing::{debug, trace};

use super::{damage_tracker, output_elements, to_rects, OutputElement, RenderOutcome, Scene};
use crate::element::WindowElement;
use crate::frame::ClientBuffer;
use crate::gpu_frame::{GpuFrame, ToCompositor};
use crate::scaling::{visible_windows, Scaling};
use crate::{FrameData, Mode};

/// A client buffer that is the whole output by itself, so a frame can be that buffer.
pub(crate) enum DirectBuffer {
    /// A `wl_shm` buffer.
    Shm {
        buffer: Buffer,
        offset: usize,
        stride: usize,
    },
    /// A dmabuf, which the GPU has finished drawing (the commit waited for that).
    Dmabuf { buffer: Buffer, dmabuf: Dmabuf },
}

impl DirectBuffer {
    /// The frame's data: the buffer, held until every clone of the frame is dropped.
    pub(super) fn into_frame_data(
        self,
        release_flush: Ping,
        compositor: &Sender<ToCompositor>,
    ) -> FrameData {
        match self {
            DirectBuffer::Shm {
                buffer,
                offset,
                stride,
            } => FrameData::Client {
                buffer: Arc::new(ClientBuffer::new(buffer, offset, release_flush)),
                stride: stride as u32,
            },
            DirectBuffer::Dmabuf { buffer, dmabuf } => FrameData::Dmabuf(Arc::new(GpuFrame::new(
                dmabuf,
                SyncPoint::signaled(),
                Box::new(ClientBuffer::new(buffer, 0, release_flush)),
                compositor.clone(),
                true,
            ))),
        }
    }
}

/// Finds the renders whose frame can be a client's buffer.
pub(super) struct DirectFrames {
    renderer: PixmanRenderer,
    tracker: OutputDamageTracker,
}

impl DirectFrames {
    pub(super) fn new(mode: Mode) -> Result<Self, String> {
        Ok(Self {
            renderer: PixmanRenderer::new().map_err(|err| format!("pixman renderer: {err}"))?,
            tracker: damage_tracker(mode),
        })
    }

    /// Forgets what the last frames showed (after a resize or a render whose frame was never
    /// handed out): the next check's damage is the whole output.
    pub(super) fn reset(&mut self, mode: Mode) {
        self.tracker = damage_tracker(mode);
    }

    /// Tracks this render's damage; when no cursor is drawn and the topmost element is one
    /// client buffer that is the whole output, the outcome of a render that draws nothing and
    /// hands out that buffer.
    pub(super) fn check(&mut self, scene: &mut Scene<'_>, mode: Mode) -> Option<RenderOutcome> {
        // Only a `wl_shm` buffer on top can be the frame. Anything else there (a GPU client's
        // dmabuf) ends the check before pixman tries to map the buffers on the output; the
        // next check starts over, damaging everything. (Dmabufs under a `wl_shm` window on top
        // are still mapped by pixman, or left out where it cannot.)
        if !topmost_is_shm(scene) {
            self.reset(mode);
            return None;
        }
        let elements = output_elements(&mut self.renderer, scene);
        // This renderer never draws, which is when renderers usually drop what they imported
        // for buffers that are gone.
        if let Err(err) = self.renderer.cleanup_texture_cache() {
            debug!(?err, "cleaning up the client buffer check's imports");
        }
        let tracked = self.tracker.damage_output(1, &elements);
        let (damage, states) = match tracked {
            Ok((damage, states)) => (damage.map(|rects| to_rects(rects, mode)), states),
            Err(err) => {
                // Start over: the next render's damage is everything.
                debug!(?err, "tracking damage for client buffer frames");
                self.tracker = damage_tracker(mode);
                return None;
            }
        };
        let surface =
            whole_output_surface(&elements, scene.space, scene.output, scene.scaling, mode)?;
        let direct = direct_buffer(&surface, mode)?;
        Some(RenderOutcome {
            damage,
            states,
            direct: Some(direct),
            reads: None,
        })
    }
}

/// Whether the topmost visible window's own surface shows a `wl_shm` buffer.
fn topmost_is_shm(scene: &Scene<'_>) -> bool {
    let Some((window, _)) = visible_windows(scene.space, scene.output, scene.scaling)
        .into_iter()
        .next()
    else {
        return false;
    };
    let Some(surface) = window.wl_surface() else {
        return false;
    };
    with_renderer_surface_state(&surface, |state| state.buffer().cloned())
        .flatten()
        .is_some_and(|buffer| with_buffer_contents(&buffer, |_, _, _| ()).is_ok())
}

/// The formats a client's dmabuf may have to be a frame as it is: those the GLES renderer
/// converts and reads back into CPU memory (for an encoder that falls back to software), 8 bits
/// a channel in either order (a Vulkan swapchain in `B8G8R8A8` or `R8G8B8A8`) and 10 in either
/// order (a game's 10-bit swapchain in `A2B10G10R10` or `A2R10G10B10`, an X11 window of depth
/// 30), with or without alpha. Alpha is ignored: the check wanted the surface opaque.
const DIRECT_FORMATS: [Fourcc; 8] = [
    Fourcc::Xrgb8888,
    Fourcc::Argb8888,
    Fourcc::Xbgr8888,
    Fourcc::Abgr8888,
    Fourcc::Xbgr2101010,
    Fourcc::Abgr2101010,
    Fourcc::Xrgb2101010,
    Fourcc::Argb2101010,
];

/// A client's dmabuf that is the whole output by itself (see [`whole_output_surface`]), in one
/// of [`DIRECT_FORMATS`] at the output's size, for a dmabuf frame to be that buffer; `elements`
/// are the renderer's own.
pub(super) fn whole_output_dmabuf<R>(
    elements: &[OutputElement<R>],
    scene: &Scene<'_>,
    mode: Mode,
) -> Option<DirectBuffer>
where
    R: Renderer + ImportAll + ImportMem,
    R::TextureId: Texture + Clone + Send + 'static,
{
    let surface = whole_output_surface(elements, scene.space, scene.output, scene.scaling, mode)?;
    let buffer = buffer_as_is(&surface, mode)?;
    let dmabuf = get_dmabuf(&buffer).ok()?.clone();
    let size = dmabuf.size();
    let fits = DIRECT_FORMATS.contains(&dmabuf.format().code)
        && (size.w, size.h) == (mode.width as i32, mode.height as i32)
        && !dmabuf.y_inverted();
    if !fits {
        trace!(?dmabuf, "client dmabuf does not fit the output as it is");
        return None;
    }
    Some(DirectBuffer::Dmabuf { buffer, dmabuf })
}

/// The topmost window's surface when the topmost of `elements` is its one client buffer that
/// covers the whole output, opaque, unscaled and untransformed: then nothing below it shows and
/// nothing (no cursor, popup or subsurface) sits above it.
fn whole_output_surface<R>(
    elements: &[OutputElement<R>],
    space: &Space<WindowElement>,
    output: &Output,
    scaling: Scaling,
    mode: Mode,
) -> Option<WlSurface>
where
    R: Renderer + ImportAll + ImportMem,
    R::TextureId: Texture + Clone + Send + 'static,
{
    let (width, height) = (mode.width as i32, mode.height as i32);
    let top = elements.first()?;
    if !matches!(top, OutputElement::Surface(_)) {
        return None;
    }
    let scale = Scale::from(1.0);
    let full = Rectangle::<i32, Physical>::from_size((width, height).into());
    let opaque: i64 = top
        .opaque_regions(scale)
        .iter()
        .filter_map(|r| r.intersection(full))
        .map(|r| i64::from(r.size.w) * i64::from(r.size.h))
        .sum();
    if top.geometry(scale) != full
        || top.alpha() < 1.0
        || top.transform() != Transform::Normal
        || opaque != i64::from(width) * i64::from(height)
    {
        return None;
    }
    // The element must be the topmost window's own surface: an element left out (a buffer
    // this check cannot import) must not let a window below pass for the whole output.
    let (window, placement) = visible_windows(space, output, scaling).into_iter().next()?;
    if placement.view().is_scaled() {
        return None;
    }
    let surface = window.wl_surface()?.into_owned();
    (Id::from_wayland_resource(&surface) == *top.id()).then_some(surface)
}

/// The buffer `surface` shows, if it is shown as it is: buffer scale 1, no transform, no
/// cropping or scaling, at the output's size.
fn buffer_as_is(surface: &WlSurface, mode: Mode) -> Option<Buffer> {
    let (width, height) = (mode.width as i32, mode.height as i32);
    let (buffer, scale, transform, view) = with_renderer_surface_state(surface, |state| {
        (
            state.buffer().cloned(),
            state.buffer_scale(),
            state.buffer_transform(),
            state.view(),
        )
    })?;
    let (buffer, view) = (buffer?, view?);
    let uncropped = view.src.loc.x == 0.0
        && view.src.loc.y == 0.0
        && view.src.size.w == f64::from(width)
        && view.src.size.h == f64::from(height)
        && view.dst.w == width
        && view.dst.h == height;
    (scale == 1 && transform == Transform::Normal && uncropped).then_some(buffer)
}

/// The `wl_shm` buffer of `surface` if a frame can be that buffer as it is (see
/// [`buffer_as_is`]): exactly the output's size in pixels, XRGB/ARGB8888 (the caller checked it
/// is opaque).
fn direct_buffer(surface: &WlSurface, mode: Mode) -> Option<DirectBuffer> {
    let (width, height) = (mode.width as i32, mode.height as i32);
    let buffer = buffer_as_is(surface, mode)?;
    let data = with_buffer_contents(&buffer, |_, _, data| data).ok()?;
    let format_ok = matches!(
        data.format,
        wl_shm::Format::Xrgb8888 | wl_shm::Format::Argb8888
    );
    if !format_ok || data.width != width || data.height != height || data.stride < width * 4 {
        trace!(?data, "client buffer does not fit the output as it is");
        return None;
    }
    Some(DirectBuffer::Shm {
        buffer,
        offset: usize::try_from(data.offset).ok()?,
        stride: data.stride as usize,
    })
}
