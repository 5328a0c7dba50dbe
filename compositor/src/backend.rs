//! Backends: where the output's pixels go. Only the headless CPU backend exists so far; a GBM
//! render-node backend joins this enum later.

use std::time::{Duration, Instant};

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::damage::OutputDamageTracker;
use smithay::backend::renderer::element::{Element, Id, RenderElementStates};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::utils::{with_renderer_surface_state, Buffer};
use smithay::backend::renderer::{Bind, Color32F, Offscreen};
use smithay::desktop::Space;
use smithay::output::Output;
use smithay::reexports::calloop::ping::Ping;
use smithay::reexports::pixman::Image;
use smithay::reexports::wayland_server::protocol::wl_shm;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Physical, Rectangle, Scale, Transform};
use smithay::wayland::seat::WaylandFocus;
use smithay::wayland::shm::with_buffer_contents;
use tracing::{debug, trace};

use crate::element::WindowElement;
use crate::frame::{BufferPool, ClientBuffer, DamageHistory};
use crate::{Error, Frame, FrameData, FrameFormat, Mode, Rect};

/// The background where no window covers the output.
const CLEAR_COLOR: Color32F = Color32F::new(0.0, 0.0, 0.0, 1.0);

pub(crate) enum Backend {
    Headless(Headless),
}

/// What one render did.
pub(crate) struct RenderOutcome {
    /// Damage in output pixels, or `None` when nothing changed and nothing was drawn.
    pub(crate) damage: Option<Vec<Rect>>,
    /// Which surfaces ended up visible, for frame callback throttling.
    pub(crate) states: RenderElementStates,
    /// The client buffer that is the frame, when nothing was drawn (see [`Backend::render`]).
    pub(crate) direct: Option<DirectBuffer>,
}

/// A client buffer that is the whole output by itself, so a frame can be that buffer.
pub(crate) struct DirectBuffer {
    buffer: Buffer,
    offset: usize,
    stride: usize,
}

impl Backend {
    /// Renders the output, or with `allow_direct`, when client buffer frames are on and one
    /// client's `wl_shm` buffer alone makes up the whole output, draws nothing and returns that
    /// buffer in [`RenderOutcome::direct`] for the frame to be.
    pub(crate) fn render(
        &mut self,
        space: &Space<WindowElement>,
        output: &Output,
        allow_direct: bool,
    ) -> Result<RenderOutcome, String> {
        match self {
            Backend::Headless(headless) => headless.render(space, output, allow_direct),
        }
    }

    /// The frame for the last render: the client buffer of a direct render as it is, or else a
    /// copy of the render target with `overlay` drawn over the copy (pixels, stride, width,
    /// height) inside `overlay_rect`; the render target itself stays untouched.
    pub(crate) fn frame_with(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
        direct: Option<DirectBuffer>,
        overlay_rect: Option<Rect>,
        overlay: impl FnOnce(&mut [u8], usize, u32, u32),
    ) -> Frame {
        match self {
            Backend::Headless(headless) => match direct {
                Some(direct) => headless.direct_frame(direct, damage, seq),
                None => headless.frame(damage, seq, overlay_rect, overlay),
            },
        }
    }

    /// Drops buffers of the old size; the next render redraws everything.
    pub(crate) fn resize(&mut self, mode: Mode) -> Result<(), String> {
        match self {
            Backend::Headless(headless) => headless.resize(mode),
        }
    }
}

/// Renders with pixman into one reusable CPU image.
pub(crate) struct Headless {
    renderer: PixmanRenderer,
    target: Image<'static, 'static>,
    /// Whether `target` holds the previous frame (buffer age 1) or garbage (age 0).
    target_valid: bool,
    damage_tracker: OutputDamageTracker,
    pool: BufferPool,
    /// Damage of the last frames copied out of `target`, to update pooled buffers.
    history: DamageHistory,
    /// [`crate::CompositorOptions::client_buffer_frames`].
    client_buffer_frames: bool,
    /// Wakes the event loop to flush buffer releases sent when a client buffer frame drops.
    release_flush: Ping,
}

impl Headless {
    pub(crate) fn new(
        mode: Mode,
        output: &Output,
        client_buffer_frames: bool,
        release_flush: Ping,
    ) -> Result<Self, Error> {
        let mut renderer =
            PixmanRenderer::new().map_err(|err| Error::Setup(format!("pixman renderer: {err}")))?;
        let target = create_target(&mut renderer, mode).map_err(Error::Setup)?;
        Ok(Self {
            renderer,
            target,
            target_valid: false,
            damage_tracker: OutputDamageTracker::from_output(output),
            pool: BufferPool::default(),
            history: DamageHistory::default(),
            client_buffer_frames,
            release_flush,
        })
    }

    fn resize(&mut self, mode: Mode) -> Result<(), String> {
        self.target = create_target(&mut self.renderer, mode)?;
        self.target_valid = false;
        self.history.clear();
        Ok(())
    }

    fn render(
        &mut self,
        space: &Space<WindowElement>,
        output: &Output,
        allow_direct: bool,
    ) -> Result<RenderOutcome, String> {
        let elements = space
            .render_elements_for_output(&mut self.renderer, output, 1.0)
            .map_err(|err| format!("collecting render elements: {err:?}"))?;
        if allow_direct && self.client_buffer_frames {
            match self.try_direct(&elements, space, output) {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {}
                Err(err) => debug!(%err, "no client buffer frame; compositing"),
            }
        }
        let age = usize::from(self.target_valid);
        let mut framebuffer = self
            .renderer
            .bind(&mut self.target)
            .map_err(|err| format!("binding the target: {err}"))?;
        let result = self
            .damage_tracker
            .render_output(
                &mut self.renderer,
                &mut framebuffer,
                age,
                &elements,
                CLEAR_COLOR,
            )
            .map_err(|err| format!("rendering: {err:?}"))?;
        self.target_valid = true;
        let damage = result
            .damage
            .map(|rects| to_rects(rects, self.target.width(), self.target.height()));
        Ok(RenderOutcome {
            damage,
            states: result.states,
            direct: None,
        })
    }

    /// Whether the topmost of `elements` is one client buffer that is the whole output; then
    /// only the damage is tracked and that buffer is the outcome.
    fn try_direct<E: Element>(
        &mut self,
        elements: &[E],
        space: &Space<WindowElement>,
        output: &Output,
    ) -> Result<Option<RenderOutcome>, String> {
        let (width, height) = (self.target.width() as i32, self.target.height() as i32);
        let Some(top) = elements.first() else {
            return Ok(None);
        };
        // The topmost element must cover the output, opaque, unscaled and untransformed; then
        // nothing below it shows and nothing sits above it.
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
            return Ok(None);
        }
        let Some(surface) = space
            .elements_for_output(output)
            .filter_map(|w| w.wl_surface().map(|s| s.into_owned()))
            .find(|s| Id::from_wayland_resource(s) == *top.id())
        else {
            return Ok(None);
        };
        let Some(direct) = direct_buffer(&surface, width, height) else {
            return Ok(None);
        };
        // Only track damage and visibility; the render target is not drawn and goes stale.
        let (damage, states) = self
            .damage_tracker
            .damage_output(1, elements)
            .map_err(|err| format!("tracking damage: {err:?}"))?;
        let damage = damage.map(|rects| to_rects(rects, width as usize, height as usize));
        self.target_valid = false;
        Ok(Some(RenderOutcome {
            damage,
            states,
            direct: Some(direct),
        }))
    }

    fn direct_frame(&mut self, direct: DirectBuffer, damage: Vec<Rect>, seq: u64) -> Frame {
        // The render target was not drawn, so pooled buffers cannot be updated from it.
        self.history.clear();
        Frame {
            width: self.target.width() as u32,
            height: self.target.height() as u32,
            format: FrameFormat::Xrgb8888,
            data: FrameData::Client {
                buffer: std::sync::Arc::new(ClientBuffer::new(
                    direct.buffer,
                    direct.offset,
                    self.release_flush.clone(),
                )),
                stride: direct.stride as u32,
            },
            damage,
            seq,
            rendered_at: Instant::now(),
            render_time: Duration::ZERO,
        }
    }

    fn frame(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
        overlay_rect: Option<Rect>,
        overlay: impl FnOnce(&mut [u8], usize, u32, u32),
    ) -> Frame {
        let width = self.target.width();
        let height = self.target.height();
        let stride = self.target.stride();
        let len = stride * height;
        // SAFETY: `target` owns its pixel memory (pixman allocated it in `create_buffer`),
        // which is `stride * height` bytes long and stays alive and unmodified while we hold
        // `&mut self`; pixman renders synchronously, so no write is in flight.
        let pixels = unsafe { std::slice::from_raw_parts(self.target.data() as *const u8, len) };
        // A pooled buffer still holds an older frame: bring it up to date by copying what
        // changed since (and where the overlay draws, so it never blends over itself).
        self.history.push(seq, &damage);
        let history = &self.history;
        let data = self.pool.fill_with(len, seq, |buf, held| {
            match held.and_then(|k| history.since(k)) {
                Some(rects) => {
                    for r in rects.iter().chain(overlay_rect.iter()) {
                        copy_rect(buf, pixels, stride, r);
                    }
                }
                None => buf.copy_from_slice(pixels),
            }
            overlay(buf, stride, width as u32, height as u32);
        });
        Frame {
            width: width as u32,
            height: height as u32,
            format: FrameFormat::Xrgb8888,
            data: FrameData::Cpu {
                bytes: data,
                stride: stride as u32,
            },
            damage,
            seq,
            rendered_at: Instant::now(),
            // Filled in by the caller, which times the whole render step.
            render_time: Duration::ZERO,
        }
    }
}

/// The `wl_shm` buffer of `surface` if a frame can be that buffer as it is: exactly the output's
/// size in pixels, XRGB/ARGB8888 (the caller checked it is opaque), buffer scale 1, no
/// transform, no cropping or scaling.
fn direct_buffer(surface: &WlSurface, width: i32, height: i32) -> Option<DirectBuffer> {
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
    if scale != 1 || transform != Transform::Normal || !uncropped {
        return None;
    }
    let data = with_buffer_contents(&buffer, |_, _, data| data).ok()?;
    let format_ok = matches!(
        data.format,
        wl_shm::Format::Xrgb8888 | wl_shm::Format::Argb8888
    );
    if !format_ok || data.width != width || data.height != height || data.stride < width * 4 {
        trace!(?data, "client buffer does not fit the output as it is");
        return None;
    }
    Some(DirectBuffer {
        buffer,
        offset: usize::try_from(data.offset).ok()?,
        stride: data.stride as usize,
    })
}

/// Copies rectangle `r` (clipped to the picture) from `src` to `dst`, both `stride` bytes per row
/// of 4-byte pixels.
fn copy_rect(dst: &mut [u8], src: &[u8], stride: usize, r: &Rect) {
    let rows = src.len().min(dst.len()) / stride;
    let (x0, x1) = (r.x as usize * 4, (r.x as usize + r.width as usize) * 4);
    let x1 = x1.min(stride);
    if x0 >= x1 {
        return;
    }
    for y in (r.y as usize)..(r.y as usize + r.height as usize).min(rows) {
        let row = y * stride;
        dst[row + x0..row + x1].copy_from_slice(&src[row + x0..row + x1]);
    }
}

fn create_target(
    renderer: &mut PixmanRenderer,
    mode: Mode,
) -> Result<Image<'static, 'static>, String> {
    renderer
        .create_buffer(
            Fourcc::Xrgb8888,
            (mode.width as i32, mode.height as i32).into(),
        )
        .map_err(|err| format!("allocating a {}x{} target: {err}", mode.width, mode.height))
}

fn to_rects(rects: &[Rectangle<i32, Physical>], width: usize, height: usize) -> Vec<Rect> {
    let bounds = Rectangle::<i32, Physical>::from_size((width as i32, height as i32).into());
    rects
        .iter()
        .filter_map(|r| r.intersection(bounds))
        .filter(|r| r.size.w > 0 && r.size.h > 0)
        .map(|r| Rect {
            x: r.loc.x as u32,
            y: r.loc.y as u32,
            width: r.size.w as u32,
            height: r.size.h as u32,
        })
        .collect()
}
