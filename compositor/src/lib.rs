//! punktfunk's headless Wayland compositor.
//!
//! [`Compositor::spawn`] starts a Smithay compositor on its own thread with one output whose
//! mode is exactly the [`Mode`] a streaming client asked for. Applications connect through the
//! socket named by [`CompositorHandle::socket_name`] inside
//! [`CompositorHandle::runtime_dir`] (the values for `WAYLAND_DISPLAY` and `XDG_RUNTIME_DIR`).
//!
//! # Contract
//!
//! - **Frames out.** The output is rendered with pixman on the CPU or with GLES on an EGL device
//!   ([`RendererChoice`], chosen at start and reported by [`CompositorHandle::renderer`]), only
//!   when a client committed something, and at most once per refresh interval of the mode. Both
//!   renderers share one render path and produce the same pixels; a GLES render is read back
//!   into the frame's CPU buffer, or, with [`CompositorOptions::gpu_frames`] on a GPU's render
//!   node, drawn into a ring of GBM buffers and handed out as a dmabuf ([`FrameData::Dmabuf`]),
//!   read back only when a consumer reads it. Each rendered frame goes into
//!   a mailbox of capacity one ([`CompositorHandle::frames`]): the newest frame wins, a frame
//!   nobody took is replaced. One black frame is rendered right after the output is created, so
//!   a consumer always gets a first frame. Frame callbacks are sent after each render, which
//!   paces clients at the refresh rate. Pooled frame buffers are brought up to date by copying
//!   only the damage since the frame they last held. With
//!   [`CompositorOptions::client_buffer_frames`], a fullscreen opaque client buffer with nothing
//!   drawn over it *is* the frame ([`FrameData::Client`]): no composite, no copy. `wp_presentation` feedback reports each frame as
//!   presented at the refresh tick in which it went to the mailbox (`CLOCK_MONOTONIC`), with the
//!   mode's refresh interval; content that was not on the output is reported discarded.
//! - **Input in.** [`CompositorHandle::send_input`] queues an [`InputEvent`] for the seat
//!   without blocking. Keys are evdev codes run through an xkbcommon keymap
//!   ([`KeymapOptions`]); the seat tracks modifiers.
//! - **Window policy (kiosk).** Every toplevel is configured fullscreen at the output size. The
//!   newest mapped toplevel is on top and has keyboard and pointer focus; when it goes away,
//!   focus returns to the previous one. `xdg_activation_v1` brings an existing window back on
//!   top. Dialogs (toplevels with a parent) keep their own size, centred above the parent;
//!   popups are drawn above their parent, moved inside the output. Decorations are server-side
//!   (none are drawn) and the preferred scale is 1.
//! - **X11 apps** run through Xwayland, started with the compositor
//!   ([`CompositorOptions::xwayland`], [`CompositorHandle::x11_display`] for `DISPLAY`). The
//!   compositor is Xwayland's window manager: managed X11 windows follow the same kiosk policy
//!   as Wayland toplevels, override-redirect windows (menus, tooltips) are drawn at their own
//!   position above them and never get keyboard focus.
//! - **Steam** speaks gamescope's X11 contract with the compositor (`docs/steam.md`): windows
//!   carry their app id (`STEAM_GAME`, 769 for Steam's UI), Steam picks the app on screen
//!   (`GAMESCOPECTRL_BASELAYER_APPID`), overlays (`STEAM_OVERLAY`) are drawn above it, and the
//!   focusable and focused apps and windows are published on the root window. Windows without
//!   Steam's properties keep the kiosk rule.
//! - **Misbehaving clients** are disconnected with a protocol error; the compositor keeps serving
//!   the others.
//!
//! The compositor knows nothing about the network or the encoder.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use smithay::reexports::calloop::channel::Sender;
use tracing::warn;

mod backend;
mod cursor;
mod element;
mod event_loop;
mod frame;
mod gpu_frame;
mod handlers;
mod input;
mod kiosk;
mod render;
mod runtime_dir;
mod scaling;
mod state;
mod tablet;
mod text;
mod windows;
mod xwayland;
mod yuv;

pub use frame::{
    ClientBuffer, Frame, FrameData, FrameFormat, FrameReceiver, PixelAccessError, Rect,
};
pub use gpu_frame::{
    DmabufPlane, EglImage, GpuFrame, TextureAccess, YuvImage, YuvImageBuffer, YuvStorage,
};
pub use input::{InputEvent, TabletAxes, TabletTool};
pub use scaling::{ScaleFilter, Scaling};
#[doc(hidden)]
pub use yuv::{convert_on_cpu, convert_on_cpu_rows};
pub use yuv::{ConvertError, YuvConversion, YuvLayout, YuvPicture};

use crate::frame::Mailbox;
use crate::runtime_dir::RuntimeDir;

/// An output mode: size in pixels and refresh rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Refresh rate in millihertz: 60 Hz is `60_000`.
    pub refresh_mhz: u32,
}

impl Mode {
    /// The time between two frames at this mode's refresh rate.
    ///
    /// A zero refresh rate counts as 60 Hz.
    pub fn frame_interval(&self) -> std::time::Duration {
        let mhz = if self.refresh_mhz == 0 {
            60_000
        } else {
            self.refresh_mhz
        };
        std::time::Duration::from_nanos(1_000_000_000_000 / u64::from(mhz))
    }

    fn validate(self) -> Result<Self, Error> {
        // Wayland sizes are i32; pixman images are limited to 32767 on a side in practice. A GL
        // driver may allow less: GLES then fails to allocate its target and says so.
        let ok = (1..=16384).contains(&self.width) && (1..=16384).contains(&self.height);
        if ok {
            Ok(self)
        } else {
            Err(Error::InvalidMode(self))
        }
    }
}

/// The keyboard layout the seat uses to turn evdev codes into keysyms.
///
/// Fields are XKB RMLVO names; empty strings pick xkbcommon's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeymapOptions {
    /// Comma separated XKB layouts, `"us"` by default.
    pub layout: String,
    /// Comma separated variants, one per layout.
    pub variant: String,
    /// Comma separated XKB options, e.g. `"compose:ralt"`.
    pub options: Option<String>,
    /// XKB model, empty for the default.
    pub model: String,
    /// Delay before clients start repeating a held key, in milliseconds.
    pub repeat_delay_ms: i32,
    /// Key repeats per second once repeating; 0 disables client-side repeat.
    pub repeat_rate: i32,
}

impl Default for KeymapOptions {
    fn default() -> Self {
        Self {
            layout: "us".into(),
            variant: String::new(),
            options: None,
            model: String::new(),
            repeat_delay_ms: 600,
            repeat_rate: 25,
        }
    }
}

/// How to start a compositor.
#[derive(Debug, Clone)]
pub struct CompositorOptions {
    /// The output's mode.
    pub mode: Mode,
    /// The seat's keymap.
    pub keymap: KeymapOptions,
    /// Socket name inside the runtime directory; `None` picks a free `punktfunk-N`.
    pub socket_name: Option<String>,
    /// Directory for the socket. `None` uses `XDG_RUNTIME_DIR`, or creates a private directory
    /// (mode 0700, removed on shutdown) if that is unset.
    pub runtime_dir: Option<PathBuf>,
    /// Start Xwayland with the compositor so that X11 apps run in it (see
    /// [`CompositorHandle::x11_display`]). On by default; needs `Xwayland` on `PATH`, without
    /// it the compositor is Wayland-only.
    pub xwayland: bool,
    /// Draw the pointer cursor into the frames: the client's cursor surface at the pointer
    /// position, or a small arrow when the client set none. On by default; turn it off when
    /// the streaming client draws its own cursor. Nothing is drawn before the pointer first
    /// moves.
    pub show_cursor: bool,
    /// Hand out a client's own `wl_shm` buffer as the frame ([`FrameData::Client`]) whenever
    /// that one buffer makes up the whole output (an opaque fullscreen window with no
    /// subsurface, popup or cursor over it, buffer at the output's size): no compositing and
    /// no copy. The client gets the buffer back when the consumer drops the frame. Off by
    /// default, so every frame is [`FrameData::Cpu`]. With [`CompositorOptions::gpu_frames`], a
    /// client's dmabuf is handed out that way instead ([`FrameData::Dmabuf`],
    /// [`GpuFrame::is_client_buffer`]).
    pub client_buffer_frames: bool,
    /// Which renderer draws the output; [`RendererChoice::Auto`] by default.
    pub renderer: RendererChoice,
    /// The device the GLES renderer runs on (`/dev/dri/renderD128`); `None` takes the first
    /// whose set-up works. A node that does not exist, or on which GLES cannot start, fails
    /// [`Compositor::spawn`] with [`Error::RenderNode`].
    pub render_node: Option<PathBuf>,
    /// How a window that keeps its own size (a fixed-size game window) is scaled to the
    /// output; [`Scaling::Fit`] by default.
    pub scaling: Scaling,
    /// How such a window's pixels are sampled; [`ScaleFilter::Linear`] by default.
    pub scale_filter: ScaleFilter,
    /// Hand frames out as dmabufs ([`FrameData::Dmabuf`]): with GLES on a GPU's render node the
    /// output is rendered into a small ring of GBM buffers, and each frame is its buffer, for
    /// an encoder on the GPU; no pixel crosses to the CPU unless a consumer reads one
    /// ([`Frame::with_pixels`]). Off by default; without a render node, or when the GPU cannot
    /// render into GBM buffers, frames stay in CPU memory and the reason is logged. Switched at
    /// run time with [`CompositorHandle::set_gpu_frames`]. A client's `wl_shm` buffer is drawn
    /// then, even where [`CompositorOptions::client_buffer_frames`] would hand it out.
    pub gpu_frames: bool,
}

/// Which renderer draws the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RendererChoice {
    /// GLES on the first hardware render node whose EGL and GLES set-up works, else pixman on
    /// the CPU; each device passed over and the fallback are logged with the reason.
    #[default]
    Auto,
    /// GLES: on a hardware render node when one works, else on Mesa's software device
    /// (llvmpipe), which runs the same GLES on the CPU.
    Gles,
    /// pixman on the CPU.
    Pixman,
}

/// The renderer a compositor runs, as [`CompositorHandle::renderer`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendererInfo {
    /// `"pixman"` or `"gles"`.
    pub name: &'static str,
    /// The device: `"cpu"` for pixman, the render node for GLES on a GPU (`/dev/dri/renderD128`),
    /// `"software"` for GLES on Mesa's software device.
    pub device: String,
    /// What the device calls itself (`GL_RENDERER`, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`),
    /// empty for pixman.
    pub description: String,
    /// The GPU's render node GLES runs on; `None` for pixman and Mesa's software device.
    pub render_node: Option<PathBuf>,
    /// Why no GPU renders, where `auto` looked for one and fell back to pixman: each device
    /// passed over with its reason, and what the machine lacks where that is known (the
    /// `render` group, NVIDIA's `nvidia-drm` with `modeset=1`). `None` where a GPU renders or
    /// pixman was asked for.
    pub fallback: Option<String>,
}

impl RendererInfo {
    pub(crate) fn pixman(fallback: Option<String>) -> Self {
        Self {
            name: "pixman",
            device: "cpu".into(),
            description: String::new(),
            render_node: None,
            fallback,
        }
    }

    pub(crate) fn gles(device: String, description: String, render_node: Option<PathBuf>) -> Self {
        Self {
            name: "gles",
            device,
            description,
            render_node,
            fallback: None,
        }
    }
}

impl CompositorOptions {
    /// Options for `mode` with the default keymap, socket name and runtime directory.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            keymap: KeymapOptions::default(),
            socket_name: None,
            runtime_dir: None,
            xwayland: true,
            show_cursor: true,
            client_buffer_frames: false,
            renderer: RendererChoice::Auto,
            render_node: None,
            scaling: Scaling::Fit,
            scale_filter: ScaleFilter::Linear,
            gpu_frames: false,
        }
    }
}

/// Errors from starting a compositor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The mode is zero-sized or too large.
    #[error("invalid mode {0:?}")]
    InvalidMode(Mode),
    /// The runtime directory could not be created or used.
    #[error("cannot prepare the runtime directory {path}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Wayland socket could not be bound.
    #[error("cannot bind the wayland socket {path}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: smithay::reexports::wayland_server::BindError,
    },
    /// Every automatically chosen socket name was taken.
    #[error("no free wayland socket name in {0}")]
    NoFreeSocket(PathBuf),
    /// The keymap could not be compiled from the given layout, variant and options.
    #[error("cannot compile the keymap for layout {0:?}")]
    Keymap(String),
    /// The configured render node does not exist or cannot render.
    #[error("cannot render on {node}: {reason}")]
    RenderNode {
        /// The node as configured.
        node: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Setting up the Wayland display, the event loop or the renderer failed.
    #[error("cannot set up the compositor: {0}")]
    Setup(String),
    /// The compositor thread could not be started.
    #[error("cannot start the compositor thread")]
    Thread(#[source] std::io::Error),
}

/// Entry point: see [`Compositor::spawn`].
#[derive(Debug)]
pub struct Compositor;

impl Compositor {
    /// Starts a compositor on its own thread and returns once its socket accepts clients and
    /// its output exists.
    pub fn spawn(opts: CompositorOptions) -> Result<CompositorHandle, Error> {
        let mode = opts.mode.validate()?;
        let runtime_dir = RuntimeDir::resolve(opts.runtime_dir.clone())?;
        let mailbox = Arc::new(Mailbox::default());
        let idle_inhibited = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();

        let thread_dir = runtime_dir.path().to_path_buf();
        let thread_mailbox = mailbox.clone();
        let thread_idle_inhibited = idle_inhibited.clone();
        let thread = std::thread::Builder::new()
            .name("compositor".into())
            .spawn(move || {
                event_loop::run(
                    event_loop::Config {
                        mode,
                        keymap: opts.keymap,
                        socket_name: opts.socket_name,
                        runtime_dir: thread_dir,
                        mailbox: thread_mailbox,
                        idle_inhibited: thread_idle_inhibited,
                        xwayland: opts.xwayland,
                        show_cursor: opts.show_cursor,
                        client_buffer_frames: opts.client_buffer_frames,
                        renderer: opts.renderer,
                        render_node: opts.render_node,
                        scaling: opts.scaling,
                        scale_filter: opts.scale_filter,
                        gpu_frames: opts.gpu_frames,
                    },
                    ready_tx,
                )
            })
            .map_err(Error::Thread)?;

        let started = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::Setup("the compositor thread exited early".into())));
        match started {
            Ok(ready) => Ok(CompositorHandle {
                socket_name: ready.socket_name,
                x11_display: ready.x11_display,
                renderer: ready.renderer,
                runtime_dir,
                commands: Some(ready.commands),
                thread: Some(thread),
                mailbox,
                idle_inhibited,
            }),
            Err(err) => {
                let _ = thread.join();
                Err(err)
            }
        }
    }
}

/// Commands from the handle to the compositor thread.
#[derive(Debug)]
pub(crate) enum Command {
    Input(InputEvent),
    SetMode(Mode),
    Frames(backend::FrameSetting),
    Shutdown,
}

/// A running compositor. Dropping it shuts the compositor down.
#[derive(Debug)]
pub struct CompositorHandle {
    socket_name: String,
    x11_display: Option<u32>,
    renderer: RendererInfo,
    runtime_dir: RuntimeDir,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    mailbox: Arc<Mailbox>,
    idle_inhibited: Arc<AtomicBool>,
}

impl CompositorHandle {
    /// The socket's name, the value for `WAYLAND_DISPLAY`.
    pub fn socket_name(&self) -> &str {
        &self.socket_name
    }

    /// The directory holding the socket, the value for `XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> &Path {
        self.runtime_dir.path()
    }

    /// The X display of the compositor's Xwayland, the value for `DISPLAY` (e.g. `":1"`);
    /// `None` when Xwayland is off or could not be started.
    ///
    /// [`Compositor::spawn`] returns once Xwayland is ready (or after 10 s; an X client that
    /// connects before then waits until the window manager is up).
    pub fn x11_display(&self) -> Option<String> {
        self.x11_display.map(|n| format!(":{n}"))
    }

    /// The process id of the Xwayland serving [`CompositorHandle::x11_display`] now (a new one
    /// after Xwayland died and was started again); `None` without one.
    pub fn xwayland_pid(&self) -> Option<i32> {
        self.x11_display.and_then(xwayland::xwayland_pid)
    }

    /// The renderer that draws the output.
    pub fn renderer(&self) -> &RendererInfo {
        &self.renderer
    }

    /// A receiver for rendered frames (see [`FrameReceiver`] for the mailbox semantics).
    pub fn frames(&self) -> FrameReceiver {
        self.mailbox.receiver()
    }

    /// Whether a client asks that the host not go idle (`zwp_idle_inhibit_manager_v1`, e.g. a
    /// video player or a game); the host can keep its machine awake while this is true.
    pub fn idle_inhibited(&self) -> bool {
        self.idle_inhibited.load(Ordering::Relaxed)
    }

    /// Queues an input event for the seat. Never blocks; events after shutdown are dropped.
    pub fn send_input(&self, ev: InputEvent) {
        self.send(Command::Input(ev));
    }

    /// Changes the output's mode and reconfigures every window to the new size.
    ///
    /// An invalid mode is logged and ignored.
    pub fn set_mode(&self, mode: Mode) {
        match mode.validate() {
            Ok(mode) => self.send(Command::SetMode(mode)),
            Err(err) => warn!(%err, "ignoring mode change"),
        }
    }

    /// Turns dmabuf frames on or off (see [`CompositorOptions::gpu_frames`]), e.g. off when the
    /// encoder falls back to software in the middle of a stream. The next frame is drawn whole
    /// in the new kind of buffer; frames already handed out stay readable.
    pub fn set_gpu_frames(&self, on: bool) {
        self.send(Command::Frames(backend::FrameSetting::Gpu(on)));
    }

    /// Renders dmabuf frames into buffers of 10 bits a channel (XBGR2101010) rather than 8, or
    /// back, for a stream of 10-bit video: a client that draws in 10 bits (a game's 10-bit
    /// swapchain) keeps its levels in the stream, as does what the compositor blends and scales. Only where frames are dmabufs and the GPU renders into such buffers
    /// (else logged, and the frames stay 8-bit); read back into CPU memory a frame is XRGB8888
    /// as always. The next frame is drawn whole into the new ring.
    pub fn set_ten_bit_frames(&self, on: bool) {
        self.send(Command::Frames(backend::FrameSetting::TenBit(on)));
    }

    /// Stops the compositor thread, disconnects clients and removes the socket.
    pub fn shutdown(self) {
        drop(self);
    }

    fn send(&self, command: Command) {
        if let Some(commands) = &self.commands {
            // Fails only when the thread is gone, and then there is nobody to tell.
            let _ = commands.send(command);
        }
    }
}

impl Drop for CompositorHandle {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.send(Command::Shutdown);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the compositor thread panicked");
            }
        }
        self.mailbox.close();
    }
}
