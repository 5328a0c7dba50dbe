//! Backends: where the output's pixels go. Only the headless CPU backend exists so far; a GBM
//! render-node backend joins this enum later.

use std::time::{Duration, Instant};

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::damage::OutputDamageTracker;
use smithay::backend::renderer::element::RenderElementStates;
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::{Bind, Color32F, Offscreen};
use smithay::desktop::Space;
use smithay::output::Output;
use smithay::reexports::pixman::Image;
use smithay::utils::{Physical, Rectangle};

use crate::element::WindowElement;
use crate::frame::BufferPool;
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
}

impl Backend {
    pub(crate) fn render(
        &mut self,
        space: &Space<WindowElement>,
        output: &Output,
    ) -> Result<RenderOutcome, String> {
        match self {
            Backend::Headless(headless) => headless.render(space, output),
        }
    }

    /// Copies the last render out into a [`Frame`], then lets `overlay` draw over the copy
    /// (pixels, stride, width, height); the render target itself stays untouched.
    pub(crate) fn frame_with(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
        overlay: impl FnOnce(&mut [u8], usize, u32, u32),
    ) -> Frame {
        match self {
            Backend::Headless(headless) => headless.frame(damage, seq, overlay),
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
}

impl Headless {
    pub(crate) fn new(mode: Mode, output: &Output) -> Result<Self, Error> {
        let mut renderer =
            PixmanRenderer::new().map_err(|err| Error::Setup(format!("pixman renderer: {err}")))?;
        let target = create_target(&mut renderer, mode).map_err(Error::Setup)?;
        Ok(Self {
            renderer,
            target,
            target_valid: false,
            damage_tracker: OutputDamageTracker::from_output(output),
            pool: BufferPool::default(),
        })
    }

    fn resize(&mut self, mode: Mode) -> Result<(), String> {
        self.target = create_target(&mut self.renderer, mode)?;
        self.target_valid = false;
        Ok(())
    }

    fn render(
        &mut self,
        space: &Space<WindowElement>,
        output: &Output,
    ) -> Result<RenderOutcome, String> {
        let elements = space
            .render_elements_for_output(&mut self.renderer, output, 1.0)
            .map_err(|err| format!("collecting render elements: {err:?}"))?;
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
        })
    }

    fn frame(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
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
        let data = self.pool.fill_with(len, |buf| {
            buf.copy_from_slice(pixels);
            overlay(buf, stride, width as u32, height as u32);
        });
        Frame {
            width: width as u32,
            height: height as u32,
            stride: stride as u32,
            format: FrameFormat::Xrgb8888,
            data: FrameData::Cpu(data),
            damage,
            seq,
            rendered_at: Instant::now(),
            // Filled in by the caller, which times the whole render step.
            render_time: Duration::ZERO,
        }
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
