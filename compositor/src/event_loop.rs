//! The compositor thread: builds the display, socket, state and backend, then runs calloop.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smithay::reexports::calloop::channel::{self, Event as ChannelEvent, Sender};
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::ping::make_ping;
use smithay::reexports::calloop::{EventLoop, Interest, Mode as CalloopMode, PostAction};
use smithay::reexports::wayland_server::{Display, ListeningSocket};
use tracing::{debug, error, info, info_span, trace, warn};

use crate::backend::Backend;
use crate::frame::Mailbox;
use crate::gpu_frame::ToCompositor;
use crate::state::{ClientState, Core, State};
use crate::{Command, Error, KeymapOptions, Mode};

/// Automatically chosen socket names are `punktfunk-1` .. `punktfunk-32`.
const AUTO_SOCKET_PREFIX: &str = "punktfunk-";
const AUTO_SOCKET_COUNT: u32 = 32;
/// How long starting the compositor waits for Xwayland to get ready.
const XWAYLAND_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for Xwayland to go away.
const XWAYLAND_STOP_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) keymap: KeymapOptions,
    pub(crate) socket_name: Option<String>,
    pub(crate) runtime_dir: PathBuf,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) idle_inhibited: Arc<AtomicBool>,
    pub(crate) xwayland: bool,
    pub(crate) show_cursor: bool,
    pub(crate) client_buffer_frames: bool,
    pub(crate) renderer: crate::RendererChoice,
    pub(crate) render_node: Option<PathBuf>,
    pub(crate) scaling: crate::Scaling,
    pub(crate) scale_filter: crate::ScaleFilter,
    pub(crate) gpu_frames: bool,
}

/// What the thread reports back once it accepts clients.
pub(crate) struct Ready {
    pub(crate) socket_name: String,
    pub(crate) commands: Sender<Command>,
    /// The X display number when Xwayland was started.
    pub(crate) x11_display: Option<u32>,
    /// The renderer in use.
    pub(crate) renderer: crate::RendererInfo,
}

/// Thread body. Reports setup success or failure through `ready`, then runs until shutdown.
pub(crate) fn run(config: Config, ready: mpsc::Sender<Result<Ready, Error>>) {
    let _span = info_span!("compositor").entered();
    let (mut event_loop, mut state, socket_name, commands, renderer) = match setup(config) {
        Ok(parts) => parts,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    // Xwayland first, so that the X display handed out works (or there is none).
    let deadline = Instant::now() + XWAYLAND_START_TIMEOUT;
    while state.core.xwayland.starting() && Instant::now() < deadline {
        if let Err(err) = event_loop.dispatch(Some(Duration::from_millis(20)), &mut state) {
            let _ = ready.send(Err(Error::Setup(format!("event loop: {err}"))));
            return;
        }
        state.refresh_xwayland();
        let _ = state.core.display_handle.flush_clients();
    }
    if state.core.xwayland.starting() {
        warn!("Xwayland is slow to start; X clients wait for it");
    }
    info!(socket = %socket_name, mode = ?state.core.mode, "compositor running");
    // The first frame: the empty output, so a consumer always has something.
    state.render();
    if ready
        .send(Ok(Ready {
            socket_name,
            commands,
            x11_display: state.core.xwayland.display,
            renderer,
        }))
        .is_err()
    {
        return;
    }

    let signal = event_loop.get_signal();
    let result = event_loop.run(None, &mut state, |state| {
        if !state.core.running {
            signal.stop();
            return;
        }
        state.refresh_xwayland();
        state.core.space.refresh();
        state.core.popups.cleanup();
        state.update_idle_inhibited();
        if let Err(err) = state.core.display_handle.flush_clients() {
            debug!(?err, "flushing clients");
        }
    });
    if let Err(err) = result {
        error!(?err, "event loop failed");
    }
    if let Some(source) = state.core.gpu_frames_source.take() {
        event_loop.handle().remove(source);
    }
    state.stop_xwayland();
    // The X11 window manager's event source holds a handle to the loop: until it has seen its
    // connection close and removed itself, the loop and all its sources would leak.
    let deadline = Instant::now() + XWAYLAND_STOP_TIMEOUT;
    while state.core.xwayland.wm_running() && Instant::now() < deadline {
        if let Err(err) = event_loop.dispatch(Some(Duration::from_millis(20)), &mut state) {
            error!(?err, "event loop failed while stopping Xwayland");
            break;
        }
        state.refresh_xwayland();
        let _ = state.core.display_handle.flush_clients();
    }
    if state.core.xwayland.wm_running() {
        warn!("Xwayland did not stop in time");
    }
    info!("compositor stopped");
}

type Parts = (
    EventLoop<'static, State>,
    State,
    String,
    Sender<Command>,
    crate::RendererInfo,
);

fn setup(config: Config) -> Result<Parts, Error> {
    let event_loop: EventLoop<'static, State> =
        EventLoop::try_new().map_err(|err| Error::Setup(format!("event loop: {err}")))?;
    let display: Display<State> =
        Display::new().map_err(|err| Error::Setup(format!("wayland display: {err}")))?;
    let display_handle = display.handle();

    let (socket, socket_name) = bind_socket(&config)?;
    let handle = event_loop.handle();

    // New clients.
    handle
        .insert_source(
            Generic::new(socket, Interest::READ, CalloopMode::Level),
            |_, socket, state| {
                loop {
                    match socket.accept() {
                        Ok(Some(stream)) => {
                            let inserted = state
                                .core
                                .display_handle
                                .insert_client(stream, Arc::new(ClientState::default()));
                            if let Err(err) = inserted {
                                warn!(?err, "cannot add a client");
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            warn!(?err, "accepting a client failed");
                            break;
                        }
                    }
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|err| Error::Setup(format!("socket source: {err}")))?;

    // Client requests. A client that breaks the protocol is disconnected by wayland-server
    // inside dispatch_clients; only errors of the display itself end up here.
    handle
        .insert_source(
            Generic::new(display, Interest::READ, CalloopMode::Level),
            |_, display, state| {
                // SAFETY: the display is never dropped or replaced while the source exists.
                let display = unsafe { display.get_mut() };
                if let Err(err) = display.dispatch_clients(state) {
                    error!(?err, "dispatching clients failed");
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|err| Error::Setup(format!("display source: {err}")))?;

    // Commands from the handle.
    let (commands, command_source) = channel::channel::<Command>();
    handle
        .insert_source(command_source, |event, _, state| match event {
            ChannelEvent::Msg(Command::Input(ev)) => state.handle_input(ev),
            ChannelEvent::Msg(Command::SetMode(mode)) => state.set_mode(mode),
            ChannelEvent::Msg(Command::Frames(setting)) => state.set_frames(setting),
            ChannelEvent::Msg(Command::Shutdown) | ChannelEvent::Closed => {
                state.core.running = false
            }
        })
        .map_err(|err| Error::Setup(format!("command source: {err}")))?;

    // Client buffer frames hold a client's buffer until the consumer drops the frame, then
    // release it from the consumer's thread; this wakes the loop to flush that out at once.
    let (release_flush, release_source) =
        make_ping().map_err(|err| Error::Setup(format!("release ping: {err}")))?;
    handle
        .insert_source(release_source, |_, _, state| {
            if let Err(err) = state.core.display_handle.flush_clients() {
                trace!(?err, "flushing buffer releases");
            }
        })
        .map_err(|err| Error::Setup(format!("release ping source: {err}")))?;
    // GPU frames: read back into CPU memory for a consumer on this thread (it owns the GL
    // context), and their buffers given back here when dropped.
    let (gpu_frames, gpu_frames_source) = channel::channel::<ToCompositor>();
    let gpu_frames_token = handle
        .insert_source(gpu_frames_source, |event, _, state| match event {
            ChannelEvent::Msg(ToCompositor::ReadBack { dmabuf, reply }) => {
                // The consumer may have given up waiting.
                let _ = reply.send(state.backend.read_back(&dmabuf));
            }
            ChannelEvent::Msg(ToCompositor::ConvertYuv {
                dmabuf,
                conversion,
                rows,
                reply,
            }) => {
                let _ = reply.send(state.backend.convert_yuv(&dmabuf, &conversion, &rows));
            }
            ChannelEvent::Msg(ToCompositor::ConvertYuvImage {
                dmabuf,
                conversion,
                storage,
                reply,
            }) => {
                let converted = state
                    .backend
                    .convert_yuv_image(&dmabuf, &conversion, storage);
                let _ = reply.send(converted);
            }
            ChannelEvent::Msg(ToCompositor::ReadYuvImage {
                image,
                layout,
                size,
                reply,
            }) => {
                let _ = reply.send(state.backend.read_yuv_image(&image, layout, size));
            }
            ChannelEvent::Msg(ToCompositor::UseTexture { slot, run, reply }) => {
                let _ = reply.send(state.backend.use_texture(&slot, run));
            }
            ChannelEvent::Msg(ToCompositor::Dropped { sync, hold }) => {
                state.backend.drop_current((sync, hold));
                state.buffer_returned();
            }
            ChannelEvent::Closed => {}
        })
        .map_err(|err| Error::Setup(format!("GPU frame source: {err}")))?;
    let core = Core::new(
        display_handle,
        handle,
        config.mode,
        &config.keymap,
        config.mailbox.clone(),
    )?;
    let (backend, renderer) = Backend::new(&config, release_flush, gpu_frames)?;
    info!(renderer = renderer.name, device = %renderer.device, description = %renderer.description, "renderer");
    let mut state = State { backend, core };
    state.core.gpu_frames_source = Some(gpu_frames_token);
    if let Some(node) = &renderer.render_node {
        state.offer_gpu_buffers(node);
    }
    state.add_tablet_tools();
    state.core.input.cursor.show = config.show_cursor;
    state.core.scaling = config.scaling;
    state.core.idle_inhibited = config.idle_inhibited;
    if config.xwayland {
        state.start_xwayland();
    }
    Ok((event_loop, state, socket_name, commands, renderer))
}

fn bind_socket(config: &Config) -> Result<(ListeningSocket, String), Error> {
    if let Some(name) = &config.socket_name {
        let path = config.runtime_dir.join(name);
        let socket = ListeningSocket::bind_absolute(path.clone())
            .map_err(|source| Error::Socket { path, source })?;
        return Ok((socket, name.clone()));
    }
    for n in 1..=AUTO_SOCKET_COUNT {
        let name = format!("{AUTO_SOCKET_PREFIX}{n}");
        if let Ok(socket) = ListeningSocket::bind_absolute(config.runtime_dir.join(&name)) {
            return Ok((socket, name));
        }
    }
    Err(Error::NoFreeSocket(config.runtime_dir.clone()))
}

impl State {
    fn set_frames(&mut self, setting: crate::backend::FrameSetting) {
        if let Err(err) = self.backend.set_frames(setting) {
            warn!(%err, ?setting, "cannot switch the kind of frame buffer; keeping the old one");
            return;
        }
        self.queue_redraw();
    }

    fn set_mode(&mut self, mode: Mode) {
        if mode == self.core.mode {
            return;
        }
        info!(?mode, "changing the output mode");
        if let Err(err) = self.backend.resize(mode) {
            warn!(%err, "cannot resize the render target; keeping the old mode");
            return;
        }
        self.core.apply_output_mode(mode);
        self.reconfigure_windows();
        let time = self.core.now_ms();
        self.core.pointer_location = self.core.clamp_to_output(self.core.pointer_location);
        self.refresh_pointer_focus(time);
        self.queue_redraw();
    }
}
