//! Backends: what renders the output, and how a render becomes a [`Frame`].
//!
//! The render code is one, generic over Smithay's renderer traits ([`OutputRenderer`]): pixman
//! on the CPU, or GLES on an EGL device (a GPU's render node, or Mesa's llvmpipe on the CPU).
//! Which one runs is chosen when the compositor starts ([`crate::RendererChoice`]).

mod convert;
mod direct;
pub(crate) mod driver_hint;
mod gles;
mod pixman;

pub(crate) use self::gles::{egl_lock, TextureSlot};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::{Buffer as _, Format};
use smithay::backend::renderer::damage::OutputDamageTracker;
use smithay::backend::renderer::element::memory::MemoryRenderBufferRenderElement;
use smithay::backend::renderer::element::surface::WaylandSurfaceRenderElement;
use smithay::backend::renderer::element::utils::{
    Relocate, RelocateRenderElement, RescaleRenderElement,
};
use smithay::backend::renderer::element::AsRenderElements;
use smithay::backend::renderer::element::{
    render_elements, Element, RenderElement, RenderElementPresentationState, RenderElementStates,
    UnderlyingStorage,
};
use smithay::backend::renderer::gles::{GlesRenderer, GlesTexture};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::sync::SyncPoint;
use smithay::backend::renderer::utils::Buffer;
use smithay::backend::renderer::{
    Color32F, ImportAll, ImportDma, ImportMem, Renderer, Texture, TextureFilter,
};
use smithay::desktop::Space;
use smithay::output::Output;
use smithay::reexports::calloop::channel::Sender;
use smithay::reexports::calloop::ping::Ping;
use smithay::utils::{Logical, Physical, Point, Rectangle, Scale, Size, Transform};
use smithay::wayland::dmabuf::get_dmabuf;
use tracing::{debug, info, warn};

use self::convert::YuvConverter;
use crate::cursor::CursorState;
use crate::element::WindowElement;
use crate::event_loop::Config;
use crate::frame::{BufferPool, DamageHistory};
use crate::gpu_frame::{
    ConvertedImage, GpuFrame, Hold, Stored, TextureUser, ToCompositor, YuvStorage,
};
use crate::scaling::{visible_windows, ScaleFilter, Scaling};
use crate::yuv::{YuvConversion, YuvLayout, YuvPicture};
use crate::{Error, Frame, FrameData, FrameFormat, Mode, Rect, RendererChoice, RendererInfo};

use self::direct::{DirectBuffer, DirectFrames};
use self::gles::EglGuarded;

/// The background where no window covers the output.
const CLEAR_COLOR: Color32F = Color32F::new(0.0, 0.0, 0.0, 1.0);

/// A renderer the output can be drawn with, and the image it draws into.
pub(crate) trait OutputRenderer: Renderer + ImportAll + ImportMem + Sized
where
    Self::TextureId: Texture + Clone + Send + 'static,
{
    /// What the output is rendered into.
    type Target;

    /// A target of `mode`'s size; with `ring`, one that hands frames out as dmabufs from GBM
    /// buffers on its render node, if the renderer can (else it logs why and makes a plain
    /// one).
    fn create_target(
        &mut self,
        mode: Mode,
        ring: Option<RingSpec<'_>>,
    ) -> Result<Self::Target, String>;

    /// Picks the buffer of `target` the next render draws into, and returns its age: 1 when it
    /// holds the last frame, n when the frame of n renders ago, 0 when what it holds is
    /// unknown. `valid` is false when nothing the target holds may be trusted.
    fn acquire_buffer(&mut self, _target: &mut Self::Target, valid: bool) -> Result<usize, String> {
        Ok(usize::from(valid))
    }

    /// `target` as a framebuffer to render into.
    fn bind_target<'a>(
        &mut self,
        target: &'a mut Self::Target,
    ) -> Result<Self::Framebuffer<'a>, String>;

    /// Whether `target` hands frames out as dmabufs.
    fn gives_dmabufs(_target: &Self::Target) -> bool {
        false
    }

    /// Whether `target`'s dmabufs hold 10 bits a channel.
    fn ten_bit(_target: &Self::Target) -> bool {
        false
    }

    /// Whether `target` has a buffer to render into now (all of a ring's may be held by
    /// frames).
    fn buffer_free(&mut self, _target: &mut Self::Target) -> bool {
        true
    }

    /// After a render into `target`, finished at `sync`: the buffer to hand out as the frame,
    /// when the target hands frames out as dmabufs.
    fn rendered(&mut self, _target: &mut Self::Target, _sync: SyncPoint) -> Option<GpuBuffer> {
        None
    }

    /// Copies `rects` (output pixels) of what was last rendered into `target` to `dst`, XRGB8888
    /// rows `stride` bytes apart.
    fn read_target(
        &mut self,
        target: &mut Self::Target,
        rects: &[Rect],
        dst: &mut [u8],
        stride: usize,
    ) -> Result<(), String>;
}

render_elements! {
    /// Everything drawn on the output: windows (with their popups and subsurfaces) and a client's
    /// cursor surface, or one of the compositor's own cursor images.
    pub(crate) OutputElement<R> where R: ImportAll + ImportMem;
    Surface = WaylandSurfaceRenderElement<R>,
    CursorShape = MemoryRenderBufferRenderElement<R>,
    /// A window that keeps its own size, scaled to the output (and a client's cursor over it).
    Scaled = RelocateRenderElement<RescaleRenderElement<WaylandSurfaceRenderElement<R>>>,
}

/// `surfaces`, drawn at their own size with their origin at (0, 0), scaled by `scale` and moved
/// to `to`.
pub(crate) fn scaled<R>(
    surfaces: Vec<WaylandSurfaceRenderElement<R>>,
    to: Point<i32, Physical>,
    scale: Scale<f64>,
) -> impl Iterator<Item = OutputElement<R>>
where
    R: Renderer + ImportAll + ImportMem,
    R::TextureId: Texture + Clone + Send + 'static,
{
    let origin = Point::<i32, Physical>::from((0, 0));
    surfaces.into_iter().map(move |surface| {
        let rescaled = RescaleRenderElement::from_element(surface, origin, scale);
        OutputElement::Scaled(RelocateRenderElement::from_element(
            rescaled,
            to,
            Relocate::Relative,
        ))
    })
}

/// A render's GPU buffer, to be handed out as a [`FrameData::Dmabuf`] frame.
pub(crate) struct GpuBuffer {
    pub(crate) dmabuf: Dmabuf,
    /// When the GPU has finished drawing it.
    pub(crate) sync: SyncPoint,
    /// Keeps the buffer from being drawn into again while the frame lives.
    pub(crate) hold: Hold,
}

/// The client dmabufs a render read, to be kept from their clients until the GPU has finished
/// that render (`State::release_after_render` in `render.rs`): a client gets a buffer back
/// (`wl_buffer.release`, and with explicit sync its release point) only when nothing reads it
/// any more, however soon it commits the next one.
pub(crate) struct ClientReads {
    pub(crate) buffers: Vec<Buffer>,
    /// When the render is done.
    pub(crate) sync: SyncPoint,
}

impl ClientReads {
    /// The client dmabufs among `elements` that a render drew (`states`); `None` without any.
    fn collect<R: OutputRenderer>(
        renderer: &mut R,
        elements: &[OutputElement<R>],
        states: &RenderElementStates,
        sync: &SyncPoint,
    ) -> Option<Self>
    where
        R::TextureId: Texture + Clone + Send + 'static,
    {
        let buffers: Vec<Buffer> = elements
            .iter()
            .filter(|element| {
                states
                    .element_render_state(element.id().clone())
                    .is_some_and(|state| {
                        state.visible_area > 0
                            && matches!(
                                state.presentation_state,
                                RenderElementPresentationState::Rendering { .. }
                            )
                    })
            })
            .filter_map(|element| match element.underlying_storage(renderer) {
                Some(UnderlyingStorage::Wayland(buffer)) if get_dmabuf(buffer).is_ok() => {
                    Some(buffer.clone())
                }
                _ => None,
            })
            .collect();
        (!buffers.is_empty()).then(|| Self {
            buffers,
            sync: sync.clone(),
        })
    }
}

/// The renderer in use.
pub(crate) enum Backend {
    Pixman(Box<Headless<PixmanRenderer>>),
    Gles(Box<EglGuarded<Headless<GlesRenderer>>>),
}

/// What one render did.
pub(crate) struct RenderOutcome {
    /// Damage in output pixels, or `None` when nothing changed and nothing was drawn.
    pub(crate) damage: Option<Vec<Rect>>,
    /// Which surfaces ended up visible, for frame callback throttling.
    pub(crate) states: RenderElementStates,
    /// The client buffer that is the frame, when nothing was drawn (see [`Backend::render`]).
    pub(crate) direct: Option<DirectBuffer>,
    /// The client dmabufs the render read, when the GPU may still be reading them.
    pub(crate) reads: Option<ClientReads>,
}

/// What a render draws: the windows in the space on the output, and the cursor at the pointer.
pub(crate) struct Scene<'a> {
    pub(crate) space: &'a Space<WindowElement>,
    pub(crate) output: &'a Output,
    pub(crate) cursor: &'a mut CursorState,
    pub(crate) pointer: Point<f64, Logical>,
    pub(crate) scaling: Scaling,
}

impl Backend {
    /// Starts the renderer the configuration asks for (see [`RendererChoice`]), on the device
    /// its render node names (or the first that works).
    pub(crate) fn new(
        config: &Config,
        release_flush: Ping,
        compositor: Sender<ToCompositor>,
    ) -> Result<(Self, RendererInfo), Error> {
        let Config {
            renderer: choice,
            mode,
            client_buffer_frames,
            scale_filter,
            gpu_frames,
            ..
        } = *config;
        let render_node = config.render_node.as_deref();
        let frames = FrameTargets {
            wanted: gpu_frames,
            ten_bit: false,
            no_ten_bit: false,
            node: None,
            compositor,
        };
        let pixman = |reason: Option<String>| {
            if let Some(reason) = &reason {
                info!(%reason, "rendering with pixman on the CPU");
            }
            let renderer = PixmanRenderer::new()
                .map_err(|err| Error::Setup(format!("pixman renderer: {err}")))?;
            let headless = Headless::new(
                renderer,
                mode,
                client_buffer_frames,
                scale_filter,
                release_flush.clone(),
                frames.clone(),
            )
            .map_err(Error::Setup)?;
            Ok::<_, Error>((
                Backend::Pixman(Box::new(headless)),
                RendererInfo::pixman(reason),
            ))
        };
        if choice == RendererChoice::Pixman {
            return pixman(None);
        }
        let start = |renderer: GlesRenderer, node: Option<&Path>| {
            let frames = FrameTargets {
                node: node.map(Path::to_path_buf),
                ..frames.clone()
            };
            Headless::new(
                renderer,
                mode,
                client_buffer_frames,
                scale_filter,
                release_flush.clone(),
                frames,
            )
        };
        let allow_software = choice == RendererChoice::Gles;
        // Why GLES did not start, with what the GPU driver is missing where that is known.
        match start_gles(render_node, allow_software, start)
            .map_err(|reason| driver_hint::explain(reason, render_node))
        {
            Ok((headless, info)) => Ok((Backend::Gles(Box::new(EglGuarded::new(headless))), info)),
            Err(reason) if choice == RendererChoice::Auto && render_node.is_none() => {
                pixman(Some(reason))
            }
            Err(reason) => Err(match render_node {
                Some(node) => Error::RenderNode {
                    node: node.to_path_buf(),
                    reason,
                },
                None => Error::Setup(format!("the GLES renderer: {reason}")),
            }),
        }
    }

    /// Renders the output; when client buffer frames are on, no cursor is drawn and one
    /// client's `wl_shm` buffer alone makes up the whole output, draws nothing and returns that
    /// buffer in [`RenderOutcome::direct`] for the frame to be.
    pub(crate) fn render(&mut self, scene: Scene<'_>) -> Result<RenderOutcome, String> {
        match self {
            Backend::Pixman(headless) => headless.render(scene),
            Backend::Gles(headless) => headless.render(scene),
        }
    }

    /// The frame for the last render: the client buffer of a direct render as it is, or else a
    /// copy of the render target.
    pub(crate) fn frame(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
        direct: Option<DirectBuffer>,
    ) -> Result<Frame, String> {
        match self {
            Backend::Pixman(headless) => headless.frame(damage, seq, direct),
            Backend::Gles(headless) => headless.frame(damage, seq, direct),
        }
    }

    /// Forgets what the render target and the last frames hold, after a render whose frame was
    /// never handed out: the next render draws, and damages, everything.
    pub(crate) fn invalidate(&mut self) {
        match self {
            Backend::Pixman(headless) => headless.invalidate(),
            Backend::Gles(headless) => headless.invalidate(),
        }
    }

    /// The dmabuf formats (with their modifiers) the renderer imports from clients: none for
    /// pixman, none on a device without `EGL_EXT_image_dma_buf_import` (Mesa's llvmpipe).
    pub(crate) fn dmabuf_formats(&self) -> Vec<Format> {
        match self {
            Backend::Pixman(_) => Vec::new(),
            Backend::Gles(headless) => headless.renderer.dmabuf_formats().into_iter().collect(),
        }
    }

    /// Imports a client's dmabuf into the renderer, as the client's first use of it: what the
    /// renderer cannot read is refused here, before the client attaches it.
    pub(crate) fn import_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        match self {
            Backend::Pixman(_) => Err("the pixman renderer takes no dmabufs".into()),
            Backend::Gles(headless) => headless
                .renderer
                .import_dmabuf(dmabuf, None)
                .map(drop)
                .map_err(|err| err.to_string()),
        }
    }

    /// Whether a render can draw now: false while every GPU buffer is held by frames.
    pub(crate) fn has_free_buffer(&mut self) -> bool {
        match self {
            Backend::Pixman(_) => true,
            Backend::Gles(headless) => {
                let headless = &mut ***headless;
                headless.renderer.buffer_free(&mut headless.target)
            }
        }
    }

    /// Reads a GPU frame's dmabuf back into CPU memory (see [`crate::GpuFrame`]).
    pub(crate) fn read_back(&mut self, dmabuf: &Dmabuf) -> Result<Vec<u8>, String> {
        if !gles::reads_back(dmabuf.format().code) {
            // Drawn into a buffer that reads back, first.
            return self.with_frame_texture(dmabuf, |renderer, _, texture, filter| {
                gles::read_texture(renderer, &texture, filter)
            });
        }
        match self {
            Backend::Pixman(_) => Err("the pixman renderer has no GPU frames".into()),
            Backend::Gles(headless) => {
                let read = headless.target.read;
                gles::read_dmabuf(&mut headless.renderer, dmabuf, read)
            }
        }
    }

    /// Converts luma rows `rows` of a GPU frame's dmabuf into Y'CbCr on the GPU and reads those
    /// back (see [`crate::GpuFrame::to_yuv_rows`]).
    pub(crate) fn convert_yuv(
        &mut self,
        dmabuf: &Dmabuf,
        conversion: &YuvConversion,
        rows: &[std::ops::Range<u32>],
    ) -> Result<YuvPicture, String> {
        self.with_frame_texture(dmabuf, |renderer, target, source, filter| {
            let converter = yuv_converter(&mut target.yuv, renderer, filter)?;
            converter.convert(renderer, &source, conversion, rows, filter)
        })
    }

    /// Converts a GPU frame's dmabuf into Y'CbCr on the GPU, into a buffer or texture of the
    /// compositor's that stays there (see [`crate::GpuFrame::to_yuv_image`]).
    pub(crate) fn convert_yuv_image(
        &mut self,
        dmabuf: &Dmabuf,
        conversion: &YuvConversion,
        storage: YuvStorage,
    ) -> Result<ConvertedImage, String> {
        self.with_frame_texture(dmabuf, |renderer, target, source, filter| {
            let size = dmabuf.size();
            let packed = conversion
                .layout
                .packed_size(size.w.max(0) as u32, size.h.max(0) as u32);
            let (stored, hold) = match storage {
                YuvStorage::Buffer => {
                    let (buffer, hold) = target.yuv_buffer(renderer, packed)?;
                    (Stored::Buffer(buffer), hold)
                }
                // The image's reference to the slot keeps it out of the pool.
                YuvStorage::Texture => (
                    Stored::Texture(target.yuv_texture(renderer, packed)?),
                    Box::new(()) as Hold,
                ),
            };
            let converter = yuv_converter(&mut target.yuv, renderer, filter)?;
            let sync = match &stored {
                Stored::Buffer(buffer) => {
                    let mut dmabuf = buffer.dmabuf.clone();
                    let whole = dmabuf.size();
                    converter.convert_into(
                        renderer,
                        &source,
                        conversion,
                        &mut dmabuf,
                        whole,
                        filter,
                    )
                }
                Stored::Texture(slot) => {
                    let mut texture = slot.texture.clone();
                    let whole = texture.size();
                    converter.convert_into(
                        renderer,
                        &source,
                        conversion,
                        &mut texture,
                        whole,
                        filter,
                    )
                }
                Stored::Released => Err("the picture was given back".into()),
            }?;
            Ok(ConvertedImage { stored, sync, hold })
        })
    }

    /// Runs `f` with the GLES renderer, its target, a GPU frame's dmabuf imported as a texture
    /// and the configured scale filter.
    fn with_frame_texture<T>(
        &mut self,
        dmabuf: &Dmabuf,
        f: impl FnOnce(
            &mut GlesRenderer,
            &mut gles::GlesTarget,
            GlesTexture,
            TextureFilter,
        ) -> Result<T, String>,
    ) -> Result<T, String> {
        match self {
            Backend::Pixman(_) => Err("the pixman renderer has no GPU frames".into()),
            Backend::Gles(headless) => {
                let Headless {
                    renderer,
                    target,
                    filter,
                    ..
                } = &mut ***headless;
                let source = renderer
                    .import_dmabuf(dmabuf, None)
                    .map_err(|err| format!("importing the frame as a texture: {err}"))?;
                f(renderer, target, source, *filter)
            }
        }
    }

    /// Reads a picture converted into a buffer of the compositor's back into CPU memory (see
    /// [`crate::YuvImage::read`]).
    pub(crate) fn read_yuv_image(
        &mut self,
        image: &Stored,
        layout: YuvLayout,
        size: (u32, u32),
    ) -> Result<YuvPicture, String> {
        let renderer = self.gles_renderer()?;
        match image {
            Stored::Buffer(buffer) => {
                let mut dmabuf = buffer.dmabuf.clone();
                let whole = dmabuf.size();
                convert::read_image(renderer, &mut dmabuf, whole, layout, size)
            }
            Stored::Texture(slot) => {
                let mut texture = slot.texture.clone();
                let whole = texture.size();
                convert::read_image(renderer, &mut texture, whole, layout, size)
            }
            Stored::Released => Err("the picture was given back".into()),
        }
    }

    /// Lends `run` the texture of `slot`, with the GL context current (see
    /// [`crate::YuvImage::with_texture`]).
    pub(crate) fn use_texture(
        &mut self,
        slot: &TextureSlot,
        run: TextureUser,
    ) -> Result<(), String> {
        slot.use_with(self.gles_renderer()?, run)
    }

    /// Drops `value` with the GL context current, as what a consumer kept with a texture may
    /// want (a registration made on that context).
    pub(crate) fn drop_current<T>(&mut self, value: T) {
        match self {
            Backend::Pixman(_) => drop(value),
            // Where the context cannot be made current, the closure is dropped uncalled, and
            // `value` with it.
            Backend::Gles(headless) => drop(headless.renderer.with_context(move |_| drop(value))),
        }
    }

    /// The GLES renderer, which GPU frames need.
    fn gles_renderer(&mut self) -> Result<&mut GlesRenderer, String> {
        match self {
            Backend::Pixman(_) => Err("the pixman renderer has no GPU frames".into()),
            Backend::Gles(headless) => Ok(&mut headless.renderer),
        }
    }

    /// Changes the kind of frame (dmabufs or not, 10 bits or 8); the next render draws
    /// everything into the new target.
    pub(crate) fn set_frames(&mut self, setting: FrameSetting) -> Result<(), String> {
        match self {
            Backend::Pixman(headless) => headless.set_frames(setting),
            Backend::Gles(headless) => headless.set_frames(setting),
        }
    }

    /// Drops buffers of the old size; the next render redraws everything.
    pub(crate) fn resize(&mut self, mode: Mode) -> Result<(), String> {
        match self {
            Backend::Pixman(headless) => headless.resize(mode),
            Backend::Gles(headless) => headless.resize(mode),
        }
    }
}

/// The target's Y'CbCr converter. Made once per target (a mode change or a switch of the kind
/// of frame makes a new one, and tries again); until then a converter that could not be made
/// is not tried again.
fn yuv_converter<'a>(
    converter: &'a mut Option<Result<YuvConverter, String>>,
    renderer: &mut GlesRenderer,
    filter: TextureFilter,
) -> Result<&'a mut YuvConverter, String> {
    converter
        .get_or_insert_with(|| YuvConverter::new(renderer, filter))
        .as_mut()
        .map_err(|err| err.clone())
}

/// GLES on the device at `render_node`, or on the first hardware device on which `start` (a
/// renderer and its target at the output's size) succeeds, or (with `allow_software`) on Mesa's
/// software device. Each device passed over is logged with the reason.
fn start_gles<T>(
    render_node: Option<&Path>,
    allow_software: bool,
    mut start: impl FnMut(GlesRenderer, Option<&Path>) -> Result<T, String>,
) -> Result<(T, RendererInfo), String> {
    // Displays are made, and those of failed attempts dropped, under the lock.
    let _lock = egl_lock();
    if let Some(node) = render_node {
        if !node.exists() {
            return Err("it does not exist".into());
        }
    }
    let devices = gles::devices()?;
    let mut open = |device: &gles::Device| {
        let (renderer, name) = gles::open(device)?;
        let node = device.node.clone().filter(|_| !device.software);
        Ok::<_, String>((
            start(renderer, node.as_deref())?,
            RendererInfo::gles(device.name(), name, node),
        ))
    };
    if let Some(node) = render_node {
        let device = devices
            .iter()
            .find(|d| d.is_at(node))
            .ok_or_else(|| "no EGL device renders on it".to_string())?;
        return open(device);
    }
    let mut reasons = Vec::new();
    for device in &devices {
        if device.software && !allow_software {
            debug!(device = %device.name(), "passing over the software EGL device for `auto`");
            continue;
        }
        match open(device) {
            Ok(started) => return Ok(started),
            Err(err) => {
                warn!(device = %device.name(), %err, "passing over an EGL device");
                reasons.push(format!("{}: {err}", device.name()));
            }
        }
    }
    if reasons.is_empty() {
        Err(if allow_software {
            "no EGL device".into()
        } else {
            "no hardware render node".into()
        })
    } else {
        Err(reasons.join("; "))
    }
}

/// The GBM buffers a target hands its frames out in ([`OutputRenderer::create_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingSpec<'a> {
    /// The render node they are made on.
    pub(crate) node: &'a Path,
    /// 10 bits a channel (XBGR2101010) rather than 8, for a 10-bit stream, where the GPU renders
    /// into such buffers ([`crate::CompositorHandle::set_ten_bit_frames`]).
    pub(crate) ten_bit: bool,
}

/// A change of the kind of frame a compositor makes (see [`crate::CompositorHandle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameSetting {
    /// Dmabuf frames on or off ([`crate::CompositorHandle::set_gpu_frames`]).
    Gpu(bool),
    /// Dmabuf frames of 10 bits a channel or 8
    /// ([`crate::CompositorHandle::set_ten_bit_frames`]).
    TenBit(bool),
}

/// Which kind of frame a [`Headless`] makes.
#[derive(Clone)]
struct FrameTargets {
    /// Dmabuf frames were asked for ([`crate::CompositorOptions::gpu_frames`]).
    wanted: bool,
    /// Of 10 bits a channel, where they are dmabufs.
    ten_bit: bool,
    /// The GPU makes no 10-bit ring (found when one was asked for): rings are 8-bit from then
    /// on, without trying again at every mode change.
    no_ten_bit: bool,
    /// The GPU's render node, where GBM buffers can be made.
    node: Option<PathBuf>,
    /// Where GPU frames send their read-backs and what they held.
    compositor: Sender<ToCompositor>,
}

impl FrameTargets {
    /// The ring to render dmabuf frames into, if they are wanted and can be made (logged when
    /// not).
    fn ring(&self) -> Option<RingSpec<'_>> {
        if self.wanted && self.node.is_none() {
            info!(
                reason = "no GPU render node",
                "frames are read back into CPU memory, not handed out as dmabufs"
            );
        }
        self.spec()
    }

    /// [`FrameTargets::ring`], without a word.
    fn spec(&self) -> Option<RingSpec<'_>> {
        let node = self.node.as_deref().filter(|_| self.wanted)?;
        Some(RingSpec {
            node,
            ten_bit: self.ten_bit && !self.no_ten_bit,
        })
    }

    /// Notes a target made for [`FrameTargets::ring`] that is not 10-bit where 10 bits were
    /// asked for (and a ring was made at all).
    fn made<R: OutputRenderer>(&mut self, target: &R::Target)
    where
        R::TextureId: Texture + Clone + Send + 'static,
    {
        let asked = self.spec().is_some_and(|spec| spec.ten_bit);
        if asked && R::gives_dmabufs(target) && !R::ten_bit(target) {
            self.no_ten_bit = true;
        }
    }

    /// These targets with `setting` applied.
    fn with(&self, setting: FrameSetting) -> FrameTargets {
        let mut frames = self.clone();
        match setting {
            FrameSetting::Gpu(on) => frames.wanted = on,
            FrameSetting::TenBit(on) => frames.ten_bit = on,
        }
        frames
    }
}

/// Renders with one renderer into one reusable target (or a ring of GPU buffers), and copies
/// each frame out of it into a pooled CPU buffer (or hands the GPU buffer out).
pub(crate) struct Headless<R: OutputRenderer>
where
    R::TextureId: Texture + Clone + Send + 'static,
{
    /// Before `renderer`, so that it is dropped while its renderer still exists.
    target: R::Target,
    renderer: R,
    /// The scale filter the configuration asks for.
    filter: TextureFilter,
    mode: Mode,
    /// Whether `target` holds the previous frame (buffer age 1) or garbage (age 0).
    target_valid: bool,
    damage_tracker: OutputDamageTracker,
    /// With dmabuf frames: what changed from frame to frame, where `damage_tracker` tracks what
    /// changed since the renders the ring's buffers hold.
    frame_damage: OutputDamageTracker,
    pool: BufferPool,
    /// Damage of the last frames copied out of `target`, to update pooled buffers.
    history: DamageHistory,
    /// Finds frames that can be a client's buffer, with
    /// [`crate::CompositorOptions::client_buffer_frames`].
    direct: Option<DirectFrames>,
    /// Wakes the event loop to flush buffer releases sent when a client buffer frame drops.
    release_flush: Ping,
    /// Which kind of frame to make.
    frames: FrameTargets,
    /// The GPU buffer of the last render, until its frame is made.
    rendered: Option<GpuBuffer>,
}

impl<R: OutputRenderer> Headless<R>
where
    R::TextureId: Texture + Clone + Send + 'static,
{
    fn new(
        mut renderer: R,
        mode: Mode,
        client_buffer_frames: bool,
        scale_filter: ScaleFilter,
        release_flush: Ping,
        frames: FrameTargets,
    ) -> Result<Self, String> {
        let filter = match scale_filter {
            ScaleFilter::Linear => TextureFilter::Linear,
            ScaleFilter::Nearest => TextureFilter::Nearest,
        };
        renderer
            .upscale_filter(filter)
            .and_then(|()| renderer.downscale_filter(filter))
            .map_err(|err| format!("setting the scale filter: {err:?}"))?;
        let target = renderer.create_target(mode, frames.ring())?;
        Ok(Self {
            renderer,
            filter,
            target,
            mode,
            target_valid: false,
            damage_tracker: damage_tracker(mode),
            frame_damage: damage_tracker(mode),
            pool: BufferPool::default(),
            history: DamageHistory::default(),
            direct: client_buffer_frames
                .then(|| DirectFrames::new(mode))
                .transpose()?,
            release_flush,
            frames,
            rendered: None,
        })
    }

    fn set_frames(&mut self, setting: FrameSetting) -> Result<(), String> {
        let mut frames = self.frames.with(setting);
        // Nothing to make anew where the target stays what it is (10 bits asked for on the CPU,
        // or where the GPU has no 10-bit ring).
        if frames.spec() == self.frames.spec() {
            self.frames = frames;
            return Ok(());
        }
        let target = self.renderer.create_target(self.mode, frames.ring())?;
        frames.made::<R>(&target);
        self.target = target;
        self.frames = frames;
        self.rendered = None;
        self.target_valid = false;
        self.frame_damage = damage_tracker(self.mode);
        if let Some(direct) = &mut self.direct {
            direct.reset(self.mode);
        }
        self.history.clear();
        Ok(())
    }

    fn invalidate(&mut self) {
        self.target_valid = false;
        self.frame_damage = damage_tracker(self.mode);
        if let Some(direct) = &mut self.direct {
            direct.reset(self.mode);
        }
    }

    fn resize(&mut self, mode: Mode) -> Result<(), String> {
        let target = self.renderer.create_target(mode, self.frames.ring())?;
        self.frames.made::<R>(&target);
        self.target = target;
        self.rendered = None;
        self.mode = mode;
        self.damage_tracker = damage_tracker(mode);
        self.frame_damage = damage_tracker(mode);
        if let Some(direct) = &mut self.direct {
            direct.reset(mode);
        }
        self.target_valid = false;
        self.history.clear();
        Ok(())
    }

    fn render(&mut self, mut scene: Scene<'_>) -> Result<RenderOutcome, String> {
        if R::gives_dmabufs(&self.target) {
            return self.render_dmabuf(scene);
        }
        if let Some(direct) = &mut self.direct {
            if let Some(outcome) = direct.check(&mut scene, self.mode) {
                // The render target is not drawn and goes stale.
                self.target_valid = false;
                return Ok(outcome);
            }
        }
        let elements = output_elements(&mut self.renderer, &mut scene);
        let age = self
            .renderer
            .acquire_buffer(&mut self.target, self.target_valid)?;
        let (damage, states, _) = self.draw(&elements, age)?;
        self.target_valid = true;
        Ok(RenderOutcome {
            damage,
            states,
            direct: None,
            reads: None,
        })
    }

    /// Draws what changed in `elements` into the target's buffer, which holds the picture of
    /// `age` renders ago (0: unknown): the damage drawn (`None` when nothing was), which
    /// elements were visible, and when the GPU is done.
    fn draw(
        &mut self,
        elements: &[OutputElement<R>],
        age: usize,
    ) -> Result<(Option<Vec<Rect>>, RenderElementStates, SyncPoint), String> {
        let mut framebuffer = self.renderer.bind_target(&mut self.target)?;
        let result = self
            .damage_tracker
            .render_output(
                &mut self.renderer,
                &mut framebuffer,
                age,
                elements,
                CLEAR_COLOR,
            )
            .map_err(|err| format!("rendering: {err:?}"))?;
        let damage = result.damage.map(|rects| to_rects(rects, self.mode));
        Ok((damage, result.states, result.sync))
    }

    /// [`Headless::render`] for dmabuf frames: into the ring's next buffer, redrawing what
    /// changed since the frame that buffer holds; or, with client buffer frames, not at all when
    /// a client's dmabuf is the whole output. The frame's damage is what changed since the last
    /// frame, whatever was drawn.
    fn render_dmabuf(&mut self, mut scene: Scene<'_>) -> Result<RenderOutcome, String> {
        let elements = output_elements(&mut self.renderer, &mut scene);
        self.rendered = None;
        let (damage, states) = self
            .frame_damage
            .damage_output(1, &elements)
            .map_err(|err| format!("tracking damage: {err:?}"))?;
        let Some(damage) = damage.map(|rects| to_rects(rects, self.mode)) else {
            return Ok(RenderOutcome {
                damage: None,
                states,
                direct: None,
                reads: None,
            });
        };
        if self.direct.is_some() {
            if let Some(direct) = direct::whole_output_dmabuf(&elements, &scene, self.mode) {
                // The ring is not drawn; its tracker compares the next render with the last
                // one drawn, which its buffers' ages count from.
                return Ok(RenderOutcome {
                    damage: Some(damage),
                    states,
                    direct: Some(direct),
                    reads: None,
                });
            }
        }
        let mut age = self
            .renderer
            .acquire_buffer(&mut self.target, self.target_valid)?;
        loop {
            let (drawn, drawn_states, sync) = self.draw(&elements, age)?;
            if drawn.is_none() && age > 0 {
                // The buffer already shows this picture (the frames since it was drawn were a
                // client's own buffers), but a render that draws nothing counts for no buffer
                // age: draw it whole.
                age = 0;
                continue;
            }
            self.target_valid = true;
            let reads = ClientReads::collect(&mut self.renderer, &elements, &drawn_states, &sync);
            self.rendered = self.renderer.rendered(&mut self.target, sync);
            return Ok(RenderOutcome {
                damage: Some(damage),
                states,
                direct: None,
                reads,
            });
        }
    }

    fn frame(
        &mut self,
        damage: Vec<Rect>,
        seq: u64,
        direct: Option<DirectBuffer>,
    ) -> Result<Frame, String> {
        let (width, height) = (self.mode.width, self.mode.height);
        let gpu = self.rendered.take();
        let data = match (direct, gpu) {
            (Some(direct), _) => {
                // The render target was not drawn, so pooled buffers cannot be updated from it.
                self.history.clear();
                direct.into_frame_data(self.release_flush.clone(), &self.frames.compositor)
            }
            (None, Some(gpu)) => {
                // Pooled CPU buffers are not kept up to date meanwhile.
                self.history.clear();
                FrameData::Dmabuf(Arc::new(GpuFrame::new(
                    gpu.dmabuf,
                    gpu.sync,
                    gpu.hold,
                    self.frames.compositor.clone(),
                    false,
                )))
            }
            (None, None) => {
                let stride = width as usize * 4;
                let len = stride * height as usize;
                // A pooled buffer still holds an older frame: bring it up to date by copying
                // what changed since.
                self.history.push(seq, &damage);
                let (renderer, target, history) =
                    (&mut self.renderer, &mut self.target, &self.history);
                let mut result = Ok(());
                let bytes = self.pool.fill_with(len, seq, |buf, held| {
                    let whole = [Rect::whole(width, height)];
                    let rects = held.and_then(|k| history.since(k));
                    let rects = rects.as_deref().unwrap_or(&whole);
                    result = renderer.read_target(target, rects, buf, stride);
                });
                if let Err(err) = result {
                    // What the buffer holds is unknown now.
                    self.pool.forget();
                    return Err(err);
                }
                FrameData::Cpu {
                    bytes,
                    stride: stride as u32,
                }
            }
        };
        Ok(Frame {
            width,
            height,
            format: FrameFormat::Xrgb8888,
            data,
            damage,
            seq,
            rendered_at: Instant::now(),
            // Filled in by the caller, which times the whole render step.
            render_time: Duration::ZERO,
        })
    }
}

/// Everything on the output, topmost first: the cursor, then the windows.
fn output_elements<R>(renderer: &mut R, scene: &mut Scene<'_>) -> Vec<OutputElement<R>>
where
    R: Renderer + ImportAll + ImportMem,
    R::TextureId: Texture + Clone + Send + 'static,
{
    let windows = visible_windows(scene.space, scene.output, scene.scaling);
    // A client's cursor over a scaled window is scaled with it, as the game's own pointer on a
    // screen at the game's size would be.
    let cursor_scale = windows
        .iter()
        .find(|(window, placement)| {
            smithay::desktop::space::SpaceElement::is_in_input_region(
                *window,
                &(placement.input.to_window(scene.pointer) - placement.location),
            )
        })
        .map_or(Scale::from(1.0), |(_, placement)| placement.input.scale);
    let mut elements = scene
        .cursor
        .render_elements(renderer, scene.pointer, cursor_scale);
    for (window, placement) in windows {
        let view = placement.view();
        if view.is_scaled() {
            // Drawn at its own size at the origin, then scaled and moved into place.
            let origin = Point::<i32, Physical>::from((0, 0));
            let surfaces: Vec<WaylandSurfaceRenderElement<R>> =
                window.render_elements(renderer, origin, Scale::from(1.0), 1.0);
            let to = view.origin.to_physical_precise_round(1.0);
            elements.extend(scaled(surfaces, to, view.scale));
        } else {
            elements.extend(window.render_elements::<OutputElement<R>>(
                renderer,
                view.origin.to_physical_precise_round(1.0),
                Scale::from(1.0),
                1.0,
            ));
        }
    }
    elements
}

pub(super) fn damage_tracker(mode: Mode) -> OutputDamageTracker {
    let size: Size<i32, Physical> = (mode.width as i32, mode.height as i32).into();
    OutputDamageTracker::new(size, 1.0, Transform::Normal)
}

pub(super) fn to_rects(rects: &[Rectangle<i32, Physical>], mode: Mode) -> Vec<Rect> {
    let size = Size::<i32, Physical>::from((mode.width as i32, mode.height as i32));
    let bounds = Rectangle::<i32, Physical>::from_size(size);
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
