//! Xwayland: X11 apps inside the compositor.
//!
//! Xwayland is started **with the compositor** (not lazily on the first X client, which would
//! need a socket of our own in front of Xwayland's): Smithay binds the X socket
//! `/tmp/.X11-unix/X<N>` (and the abstract one) and starts Xwayland, and `Compositor::spawn`
//! returns once its window manager ([`X11Wm`]) runs, so the display handed out by
//! `CompositorHandle::x11_display` works. That costs about 0.1 s and a few MB per compositor.
//! Xwayland accepts X clients only after the window manager took over, so no window escapes the
//! kiosk policy. Without `Xwayland` on `PATH` (or when it fails) the compositor is Wayland-only
//! and has no X display.
//!
//! An Xwayland that dies while the compositor runs (killed, or crashed) takes its X11 windows
//! and their clients with it; the compositor starts a new one on the same display number, so
//! `DISPLAY` stays right for apps started later. After [`MAX_RESTARTS`] restarts within
//! [`RESTART_WINDOW`] it gives up and stays Wayland-only.
//!
//! # Associating X11 windows with surfaces
//!
//! Xwayland draws each top-level X11 window into a `wl_surface` of its own Wayland connection
//! and tells the window manager which one:
//! - Xwayland 23.1 and newer use `xwayland_shell_v1` (a serial set on both sides); Smithay pairs
//!   them and calls `XWaylandShellHandler::surface_associated`.
//! - Older Xwayland (Debian 12 has 22.1) sends a `WL_SURFACE_ID` client message with the
//!   surface's protocol id. Smithay only records that id, so [`State::refresh_xwayland`] looks the
//!   id up on the Xwayland client after every dispatch (the message and the surface arrive on two
//!   different sockets, in either order). A surface already taken by another window, one with a
//!   role (a cursor) or the surface of the window's previous mapping is never taken.
//!
//! Either way the window becomes a [`WindowElement::X11`] once its surface has a buffer.
//!
//! # Policy
//!
//! Managed windows follow the kiosk policy of Wayland toplevels (`crate::windows`): configured
//! fullscreen at the output size, newest mapped on top with keyboard and pointer focus, focus
//! back to the previous one when it goes. Override-redirect windows (menus, tooltips) are drawn
//! at their own position above every managed window and never get keyboard focus; while the
//! pointer is over one it gets pointer events. Move, resize, minimize and un-fullscreen requests
//! are ignored. The X clipboard is not bridged to Wayland.
//!
//! # Steam
//!
//! Steam's window properties (gamescope's contract, see [`steam`]) refine the policy: an
//! overlay window is drawn above the window on screen without taking it over, and Steam picks
//! the window on screen by app id. The properties of a window are read before it enters the
//! space, so an overlay never takes the focus for a moment; the focus is published on the root
//! window after every change.

mod helper;
mod launch;
mod steam;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use smithay::backend::renderer::utils::with_renderer_surface_state;
use smithay::reexports::calloop::channel::{self, Channel};
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::calloop::RegistrationToken;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{Client, DisplayHandle, Resource};
use smithay::utils::{IsAlive, Logical, Rectangle, Size};
use smithay::wayland::compositor::get_role;
use smithay::wayland::xwayland_shell::XWaylandShellState;
use smithay::xwayland::{X11Surface, X11Wm, XWayland, XWaylandEvent};
use tracing::{debug, info, warn};

use crate::element::{WindowElement, X11Window};
use crate::kiosk::{BaseLayerControl, Layers, OverlayInput, Role};
use crate::state::{Core, State};

use self::helper::Helper;
use self::steam::{Published, Report, Watcher, WindowProps};

/// Most restarts of an Xwayland that died within [`RESTART_WINDOW`].
pub(crate) const MAX_RESTARTS: usize = 5;
/// See [`MAX_RESTARTS`].
pub(crate) const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// How long a restart waits, at most, for a dead Xwayland to let go of its display's sockets,
/// and how often it tries meanwhile ([`State::respawn_xwayland`]).
const RESPAWN_GRACE: Duration = Duration::from_secs(5);
const RESPAWN_RETRY: Duration = Duration::from_millis(100);

/// Where X sockets live; created world-writable and sticky when missing.
const X11_SOCKET_DIR: &str = "/tmp/.X11-unix";

/// Xwayland and its window manager, as far as they are running.
pub(crate) struct Xwayland {
    /// The X display number: `DISPLAY=:N`.
    pub(crate) display: Option<u32>,
    /// Xwayland's Wayland connection.
    client: Option<Client>,
    /// The window manager, once Xwayland is ready.
    wm: Option<X11Wm>,
    /// The `xwayland_shell_v1` global (only Xwayland sees it).
    pub(crate) shell: XWaylandShellState,
    /// Every X11 window the window manager knows about.
    windows: Vec<Tracked>,
    /// The second X connection: input focus, synthetic configure events.
    helper: Option<Helper>,
    /// The X11 window that has the X input focus, as last requested.
    focused: Option<u32>,
    /// Reads Steam's properties and publishes the focus.
    steam: Option<Watcher>,
    /// The source of the watcher's reports.
    steam_source: Option<RegistrationToken>,
    /// Steam's choice of the window on screen.
    control: BaseLayerControl,
    /// What was last published on the root window.
    published: Option<Published>,
    /// The serial of the last property read asked for.
    serial: u64,
    /// The event source that reports Xwayland ready.
    source: Option<RegistrationToken>,
    /// Xwayland was started and is not ready yet.
    starting: bool,
    /// The compositor is shutting down.
    stopping: bool,
    /// When Xwayland was restarted after dying, within the last [`RESTART_WINDOW`].
    restarts: Vec<Instant>,
}

/// One X11 window and how far it is on its way into the space.
#[derive(Debug)]
struct Tracked {
    x11: X11Surface,
    /// The surface Xwayland draws it into, once known.
    surface: Option<WlSurface>,
    /// The window manager let it map (or, override-redirect, it mapped itself).
    map_requested: bool,
    /// In the space, and in the kiosk stack if managed.
    element: Option<WindowElement>,
    /// The surface of its previous mapping, never to be associated again.
    stale: Option<WlSurface>,
    /// Steam's properties.
    props: WindowProps,
    /// When `props` were read (see [`steam::Report::Window`]).
    props_read: u64,
    /// The process id of its client, once known.
    pid: Option<u32>,
    /// The app id Steam launched that process as; 0 for none.
    launched: u32,
    /// It waits for the properties read with this serial before it enters the space.
    awaiting: Option<u64>,
}

impl Xwayland {
    pub(crate) fn new(dh: &DisplayHandle) -> Self {
        Self {
            display: None,
            client: None,
            wm: None,
            shell: XWaylandShellState::new::<State>(dh),
            windows: Vec::new(),
            helper: None,
            focused: None,
            steam: None,
            steam_source: None,
            control: BaseLayerControl::default(),
            published: None,
            serial: 0,
            source: None,
            starting: false,
            stopping: false,
            restarts: Vec::new(),
        }
    }

    /// Whether Xwayland was started and has neither become ready nor failed yet.
    pub(crate) fn starting(&self) -> bool {
        self.starting
    }

    /// Whether the window manager still runs. Its event source holds a handle to the event
    /// loop, a reference cycle that only its removal breaks, which happens once its X
    /// connection closed: at shutdown the loop is dispatched until this is false.
    pub(crate) fn wm_running(&self) -> bool {
        self.wm.is_some()
    }

    /// The window manager. X11 events, the only callers, come only while it runs.
    pub(crate) fn wm(&mut self) -> &mut X11Wm {
        self.wm
            .as_mut()
            .expect("X11 window manager events arrive only while it runs")
    }

    fn tracked(&mut self, window: &X11Surface) -> Option<&mut Tracked> {
        self.windows
            .iter_mut()
            .find(|t| same_window(&t.x11, window))
    }

    /// Starts tracking a window the window manager just learnt about, and watching its
    /// properties.
    pub(crate) fn track(&mut self, window: X11Surface) {
        if self.tracked(&window).is_none() {
            if let Some(steam) = &self.steam {
                steam.watch(window.window_id(), 0);
            }
            self.windows.push(Tracked {
                x11: window,
                surface: None,
                map_requested: false,
                element: None,
                stale: None,
                props: WindowProps::default(),
                props_read: 0,
                pid: None,
                launched: 0,
                awaiting: None,
            });
        }
    }

    /// Reads `window`'s properties afresh; it enters the space only once they are known.
    fn await_props(&mut self, window: &X11Surface) {
        let Some(steam) = &self.steam else { return };
        self.serial += 1;
        let serial = self.serial;
        steam.watch(window.window_id(), serial);
        if let Some(tracked) = self.tracked(window) {
            tracked.awaiting = Some(serial);
        }
    }

    /// `element`'s part in Steam's contract (a plain window unless it is an X11 window with
    /// Steam's properties).
    pub(crate) fn role(&self, element: &WindowElement) -> Role {
        let Some(x11) = element.x11() else {
            return Role::default();
        };
        let id = x11.x11.window_id();
        self.windows
            .iter()
            .find(|t| same_window(&t.x11, &x11.x11))
            .map(|t| t.props.role(id, t.launched))
            .unwrap_or(Role {
                x11_id: Some(id),
                ..Role::default()
            })
    }

    /// Steam's choice of the window on screen.
    pub(crate) fn control(&self) -> &BaseLayerControl {
        &self.control
    }

    /// Xwayland could not be started: there is no X display.
    fn failed(&mut self) {
        self.starting = false;
        self.display = None;
        self.client = None;
    }

    /// Records the surface Smithay paired with `window` over `xwayland_shell_v1`.
    pub(crate) fn associate(&mut self, window: &X11Surface, surface: WlSurface) {
        self.track(window.clone());
        if let Some(tracked) = self.tracked(window) {
            debug!(
                window = window.window_id(),
                surface = surface.id().protocol_id(),
                "X11 window associated (xwayland_shell)"
            );
            tracked.surface = Some(surface);
        }
    }
}

/// Two handles of the same X11 window (X11Surface's `==` is false once it is dead).
fn same_window(a: &X11Surface, b: &X11Surface) -> bool {
    a.xwm_id() == b.xwm_id() && a.window_id() == b.window_id()
}

fn has_buffer(surface: &WlSurface) -> bool {
    with_renderer_surface_state(surface, |s| s.buffer().is_some()).unwrap_or(false)
}

/// Creates `/tmp/.X11-unix` (mode 1777) when it is missing.
fn ensure_socket_dir(dir: &Path) {
    if dir.is_dir() {
        return;
    }
    let created = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)));
    match created {
        Ok(()) => info!(dir = %dir.display(), "created the X11 socket directory"),
        Err(err) => warn!(%err, dir = %dir.display(), "cannot create the X11 socket directory"),
    }
}

/// The process id of this process's `Xwayland :display` child. (Smithay keeps the child to
/// itself, and the peer credentials of the socket pairs it connects through are this process's.)
pub(crate) fn xwayland_pid(display: u32) -> Option<i32> {
    let me = std::process::id().to_string();
    let display = format!(":{display}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and ')', so split at the last.
            let (head, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (fields.next()?, fields.next()?);
            // A dead one waiting to be reaped is not it.
            if ppid != me || state == "Z" || !head.ends_with("(Xwayland") {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline.split(|&b| b == 0);
            args.next()?;
            (args.next()? == display.as_bytes()).then_some(pid)
        })
}

/// Xwayland's stderr, line by line into the log at debug level.
fn log_output() -> Option<Stdio> {
    let (ours, theirs) = UnixStream::pair().ok()?;
    std::thread::Builder::new()
        .name("xwayland-log".into())
        .spawn(move || {
            for line in BufReader::new(ours).lines() {
                let Ok(line) = line else { break };
                debug!(target: "compositor::xwayland::server", "{line}");
            }
        })
        .ok()?;
    Some(Stdio::from(OwnedFd::from(theirs)))
}

impl State {
    /// Starts Xwayland; on success `core.xwayland.display` is set at once. Failing to start it
    /// is logged and leaves the compositor Wayland-only.
    pub(crate) fn start_xwayland(&mut self) {
        if let Err(err) = self.spawn_xwayland(None) {
            info!(%err, "Xwayland is not available; X11 apps cannot run");
            self.core.xwayland.failed();
        }
    }

    /// Starts Xwayland on display `number`, or on the first free one. An error where the
    /// server could not be started; a failure after that is handled here.
    fn spawn_xwayland(&mut self, number: Option<u32>) -> std::io::Result<()> {
        ensure_socket_dir(Path::new(X11_SOCKET_DIR));
        let spawned = XWayland::spawn(
            &self.core.display_handle,
            number,
            std::iter::empty::<(String, String)>(),
            true,
            Stdio::null(),
            log_output().unwrap_or_else(Stdio::null),
            |_| (),
        );
        let (xwayland, client) = spawned?;
        let number = xwayland.display_number();
        let inserted = self
            .core
            .loop_handle
            .insert_source(xwayland, move |event, _, state| match event {
                XWaylandEvent::Ready {
                    x11_socket,
                    display_number,
                } => state.xwayland_ready(x11_socket, display_number),
                XWaylandEvent::Error => {
                    warn!("Xwayland exited during startup; X11 apps cannot run");
                    state.core.xwayland.failed();
                }
            });
        let token = match inserted {
            Ok(token) => token,
            Err(err) => {
                // The source was dropped with the error, which stops Xwayland again.
                warn!(%err, "cannot watch Xwayland; X11 apps cannot run");
                return Ok(());
            }
        };
        info!(display = %format!(":{number}"), "Xwayland starting");
        self.core.xwayland.display = Some(number);
        self.core.xwayland.client = Some(client);
        self.core.xwayland.source = Some(token);
        self.core.xwayland.starting = true;
        Ok(())
    }

    /// Starts Xwayland again on display `number`. A server that was killed may still hold the
    /// display's sockets for a moment after its connections closed (it is still exiting); then
    /// the start is tried again every [`RESPAWN_RETRY`] until `until`.
    fn respawn_xwayland(&mut self, number: u32, until: Instant) {
        let err = match self.spawn_xwayland(Some(number)) {
            Ok(()) => return,
            Err(err) => err,
        };
        if err.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < until {
            debug!(%err, display = %format!(":{number}"), "the old Xwayland still holds the display; trying again");
            let retry = Timer::from_duration(RESPAWN_RETRY);
            let inserted = self
                .core
                .loop_handle
                .insert_source(retry, move |_, _, state| {
                    state.respawn_xwayland(number, until);
                    TimeoutAction::Drop
                });
            if inserted.is_ok() {
                return;
            }
        }
        info!(%err, "Xwayland is not available; X11 apps cannot run");
        self.core.xwayland.failed();
    }

    /// Notices an Xwayland that died while starting. Smithay's source reports nothing then and
    /// stays readable, so the loop would spin: it is removed, which also frees the display.
    fn check_xwayland_startup(&mut self) {
        let xwayland = &mut self.core.xwayland;
        let alive = xwayland.client.as_ref().is_some_and(|client| {
            self.core
                .display_handle
                .backend_handle()
                .get_client_data(client.id())
                .is_ok()
        });
        if alive {
            return;
        }
        warn!("Xwayland exited during startup; X11 apps cannot run");
        xwayland.failed();
        if let Some(token) = xwayland.source.take() {
            self.core.loop_handle.remove(token);
        }
    }

    fn xwayland_ready(&mut self, x11_socket: UnixStream, number: u32) {
        let Some(client) = self.core.xwayland.client.clone() else {
            return;
        };
        match X11Wm::start_wm(self.core.loop_handle.clone(), x11_socket, client) {
            Ok(wm) => {
                info!(display = %format!(":{number}"), "Xwayland ready");
                self.core.xwayland.wm = Some(wm);
                self.core.xwayland.helper = Helper::spawn(number);
                self.start_steam_watcher(number);
                self.core.xwayland.starting = false;
            }
            Err(err) => {
                warn!(%err, "cannot start the X11 window manager; X11 apps cannot run");
                self.core.xwayland.failed();
            }
        }
    }

    /// Stops Xwayland with SIGTERM. Its Wayland client goes away when the display sees the
    /// connection close (or when the Xwayland source is dropped with the loop; killing it here
    /// too would make Smithay reap the process twice), and the window manager when its X
    /// connection reports the end: see [`Xwayland::wm_running`].
    pub(crate) fn stop_xwayland(&mut self) {
        let xwayland = &mut self.core.xwayland;
        xwayland.stopping = true;
        xwayland.helper = None;
        if xwayland.client.take().is_none() {
            return;
        }
        let Some(number) = xwayland.display else {
            return;
        };
        match xwayland_pid(number) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            Some(pid) => unsafe {
                libc::kill(pid, libc::SIGTERM);
            },
            None => debug!(number, "no Xwayland process to stop"),
        }
    }

    /// Brings X11 windows up to date: pairs mapped windows with their surfaces, maps those
    /// whose surface has a buffer and unmaps those whose surface went away or lost its buffer.
    /// Called after every dispatch of the event loop; cheap without X11 windows.
    pub(crate) fn refresh_xwayland(&mut self) {
        if self.core.xwayland.starting {
            self.check_xwayland_startup();
        }
        if self.core.xwayland.windows.is_empty() {
            return;
        }
        let mut changed = false;
        for i in 0..self.core.xwayland.windows.len() {
            changed |= self.refresh_x11_window(i);
        }
        if changed {
            self.update_focus();
        }
    }

    /// Returns whether the space changed.
    fn refresh_x11_window(&mut self, i: usize) -> bool {
        let core = &mut self.core;
        let tracked = &core.xwayland.windows[i];
        if tracked.surface.is_none() && tracked.map_requested {
            if let Some(surface) = core.find_x11_surface(i) {
                debug!(
                    window = tracked.x11.window_id(),
                    surface = surface.id().protocol_id(),
                    "X11 window associated"
                );
                core.xwayland.windows[i].surface = Some(surface);
            }
        }
        let tracked = &mut core.xwayland.windows[i];
        let ready = tracked.map_requested
            && tracked.awaiting.is_none()
            && tracked
                .surface
                .as_ref()
                .is_some_and(|s| s.alive() && has_buffer(s));
        match (&tracked.element, ready) {
            (None, true) => {
                let Some(surface) = tracked.surface.clone() else {
                    return false;
                };
                let window = X11Window::new(tracked.x11.clone(), surface);
                if !window.is_override_redirect() {
                    let role = tracked.props.role(window.x11.window_id(), tracked.launched);
                    window.set_overlay(role.overlay);
                    window.set_opacity(tracked.props.opacity);
                    window.set_emulated_mode(emulated_size(&tracked.props));
                }
                let element = WindowElement::X11(Box::new(window.clone()));
                tracked.element = Some(element.clone());
                if window.is_override_redirect() {
                    let location = window.x11.geometry().loc;
                    debug!(
                        window = window.x11.window_id(),
                        ?location,
                        "mapping X11 override-redirect window"
                    );
                    core.space.map_element(element, location, false);
                } else {
                    debug!(
                        window = window.x11.window_id(),
                        class = %window.x11.class(),
                        title = %window.x11.title(),
                        props = ?tracked.props,
                        "mapping X11 window"
                    );
                    core.space.map_element(element.clone(), (0, 0), true);
                    core.stack.push(element);
                }
                true
            }
            (Some(element), false) => {
                let element = element.clone();
                tracked.element = None;
                if tracked.surface.as_ref().is_some_and(|s| !s.alive()) {
                    tracked.stale = tracked.surface.take();
                }
                debug!(
                    window = tracked.x11.window_id(),
                    "X11 window lost its surface"
                );
                core.space.unmap_elem(&element);
                core.stack.remove(&element);
                true
            }
            _ => false,
        }
    }

    /// The window manager let `window` map: configure it fullscreen first.
    pub(crate) fn x11_map_request(&mut self, window: X11Surface) {
        self.core.xwayland.track(window.clone());
        self.core.configure_x11_fullscreen(&window);
        if let Err(err) = window.set_mapped(true) {
            warn!(%err, window = window.window_id(), "cannot map an X11 window");
            return;
        }
        if let Some(tracked) = self.core.xwayland.tracked(&window) {
            tracked.map_requested = true;
        }
        // The client set its properties before it asked to map: a read now sees them.
        self.core.xwayland.await_props(&window);
        self.refresh_xwayland();
    }

    /// An override-redirect window mapped itself.
    pub(crate) fn x11_override_redirect_mapped(&mut self, window: X11Surface) {
        self.core.xwayland.track(window.clone());
        if let Some(tracked) = self.core.xwayland.tracked(&window) {
            tracked.map_requested = true;
        }
        self.refresh_xwayland();
    }

    /// `window` was unmapped (`destroyed`: and is gone for good).
    pub(crate) fn x11_unmapped(&mut self, window: &X11Surface, destroyed: bool) {
        let xwayland = &mut self.core.xwayland;
        let Some(pos) = xwayland
            .windows
            .iter()
            .position(|t| same_window(&t.x11, window))
        else {
            return;
        };
        let element = if destroyed {
            xwayland.windows.remove(pos).element
        } else {
            let tracked = &mut xwayland.windows[pos];
            tracked.map_requested = false;
            // Xwayland draws the next mapping into a new surface.
            if let Some(surface) = tracked.surface.take() {
                tracked.stale = Some(surface);
            }
            tracked.element.take()
        };
        if !destroyed && !window.is_override_redirect() {
            // Withdrawn: the client may map it again later.
            let _ = window.set_mapped(false);
        }
        if let Some(element) = element {
            debug!(
                window = window.window_id(),
                destroyed, "unmapping X11 window"
            );
            self.core.space.unmap_elem(&element);
            self.core.stack.remove(&element);
            self.update_focus();
        }
    }

    /// An override-redirect window moved or changed size.
    pub(crate) fn x11_override_redirect_moved(
        &mut self,
        window: &X11Surface,
        geometry: Rectangle<i32, Logical>,
    ) {
        let element = self
            .core
            .xwayland
            .tracked(window)
            .and_then(|t| t.element.clone());
        if let Some(element) = element {
            self.core.space.map_element(element, geometry.loc, false);
            let time = self.core.now_ms();
            self.refresh_pointer_focus(time);
            self.queue_redraw();
        }
    }

    /// Xwayland's window manager connection closed: forget every X11 window.
    pub(crate) fn x11_disconnected(&mut self) {
        let xwayland = &mut self.core.xwayland;
        if xwayland.stopping {
            debug!("Xwayland stopped");
        } else {
            warn!("the X11 window manager lost its connection to Xwayland");
        }
        xwayland.wm = None;
        xwayland.helper = None;
        xwayland.steam = None;
        xwayland.published = None;
        xwayland.control = BaseLayerControl::default();
        if let Some(token) = xwayland.steam_source.take() {
            self.core.loop_handle.remove(token);
        }
        xwayland.focused = None;
        let elements: Vec<_> = xwayland
            .windows
            .drain(..)
            .filter_map(|t| t.element)
            .collect();
        for element in &elements {
            self.core.space.unmap_elem(element);
            self.core.stack.remove(element);
        }
        self.update_focus();
        if !self.core.xwayland.stopping {
            self.restart_xwayland();
        }
    }

    /// Starts a new Xwayland on the display of one that died, unless that happened
    /// [`MAX_RESTARTS`] times within [`RESTART_WINDOW`].
    fn restart_xwayland(&mut self) {
        let xwayland = &mut self.core.xwayland;
        let Some(number) = xwayland.display else {
            return;
        };
        // Dropping the old server's source frees the display's lock file and sockets.
        if let Some(token) = xwayland.source.take() {
            self.core.loop_handle.remove(token);
        }
        let now = Instant::now();
        xwayland
            .restarts
            .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if xwayland.restarts.len() >= MAX_RESTARTS {
            warn!(
                display = %format!(":{number}"),
                restarts = MAX_RESTARTS,
                "Xwayland keeps exiting; X11 apps cannot run any more"
            );
            xwayland.failed();
            return;
        }
        xwayland.restarts.push(now);
        xwayland.client = None;
        warn!(display = %format!(":{number}"), "Xwayland exited; starting it again");
        self.respawn_xwayland(number, now + RESPAWN_GRACE);
    }

    /// Keeps X in step with `layers`: orders the X stacking for input, gives the X input focus
    /// to the keyboard's window if it is an X11 window (or takes it away), and publishes the
    /// focus for Steam. Part of [`State::update_focus`].
    ///
    /// Xwayland sends pointer events to the X window under the pointer in its own stacking
    /// order, whatever the compositor draws on top. So overlays that take no input go below the
    /// window on screen there, and overlays that take the pointer above it.
    pub(crate) fn sync_x11_focus(&mut self, layers: &Layers<WindowElement>) {
        let (passthrough, with_input): (Vec<_>, Vec<_>) = layers
            .overlays
            .iter()
            .partition(|w| self.core.xwayland.role(w).overlay == Some(OverlayInput::Passthrough));
        let xwayland = &mut self.core.xwayland;
        if let Some(wm) = xwayland.wm.as_mut() {
            let raised = passthrough
                .into_iter()
                .chain(&layers.base)
                .chain(with_input);
            for window in raised.filter_map(WindowElement::x11) {
                if let Err(err) = wm.raise_window(&window.x11) {
                    debug!(%err, "cannot raise an X11 window");
                }
            }
        }
        let id = layers
            .keyboard
            .as_ref()
            .and_then(WindowElement::x11)
            .map(|w| w.x11.window_id());
        if id != xwayland.focused {
            xwayland.focused = id;
            if let Some(helper) = &xwayland.helper {
                helper.focus(id);
            }
        }
        self.publish_focus(layers);
    }

    /// Writes the focusable and focused windows and apps to the root window, when they changed.
    fn publish_focus(&mut self, layers: &Layers<WindowElement>) {
        let xwayland = &self.core.xwayland;
        let Some(steam) = &xwayland.steam else { return };
        let mut published = Published::default();
        for window in self.core.stack.iter().rev() {
            let role = self.core.steam_role(window);
            if role.overlay.is_some() {
                continue;
            }
            if role.app_id != 0 && !published.focusable_apps.contains(&role.app_id) {
                published.focusable_apps.push(role.app_id);
            }
            let Some(x11) = window.x11() else { continue };
            let pid = xwayland
                .windows
                .iter()
                .find(|t| same_window(&t.x11, &x11.x11))
                .and_then(|t| t.pid)
                .unwrap_or(0);
            published
                .focusable_windows
                .push([x11.x11.window_id(), role.app_id, pid]);
        }
        if let Some(base) = &layers.base {
            let role = self.core.steam_role(base);
            published.focused_window = role.x11_id.unwrap_or(0);
            published.focused_app_gfx = role.app_id;
        }
        // The input's app: the newest overlay that takes any input, else the window on screen.
        let input = layers
            .overlays
            .iter()
            .rev()
            .map(|w| self.core.steam_role(w))
            .find(|r| r.overlay.is_some_and(|o| o != OverlayInput::Passthrough));
        published.focused_app = match input {
            Some(role) => role.app_id,
            None => published.focused_app_gfx,
        };
        if xwayland.published.as_ref() != Some(&published) {
            debug!(?published, "publishing the focus for Steam");
            steam.publish(published.clone());
            self.core.xwayland.published = Some(published);
        }
    }

    /// Starts reading Steam's properties; without it, windows are plain kiosk windows.
    fn start_steam_watcher(&mut self, number: u32) {
        let (sender, reports): (_, Channel<Report>) = channel::channel();
        let inserted = self
            .core
            .loop_handle
            .insert_source(reports, |event, _, state| {
                if let channel::Event::Msg(report) = event {
                    state.handle_steam_report(report);
                }
            });
        let token = match inserted {
            Ok(token) => token,
            Err(err) => {
                warn!(%err, "cannot watch Steam's window properties");
                return;
            }
        };
        match Watcher::spawn(number, sender) {
            Some(watcher) => {
                self.core.xwayland.steam = Some(watcher);
                self.core.xwayland.steam_source = Some(token);
            }
            None => self.core.loop_handle.remove(token),
        }
    }

    fn handle_steam_report(&mut self, report: Report) {
        match report {
            Report::Window {
                window,
                props,
                read,
                pid,
                launched,
                serial,
            } => {
                let Some(tracked) = self
                    .core
                    .xwayland
                    .windows
                    .iter_mut()
                    .find(|t| t.x11.window_id() == window)
                else {
                    return;
                };
                // The two threads' reports can cross: a read older than the one applied keeps
                // the newer properties (a mode a game set must not be lost to a read from
                // before it).
                let props = if read >= tracked.props_read {
                    tracked.props_read = read;
                    props
                } else {
                    debug!(
                        window,
                        read, "an older read of the window's properties; ignored"
                    );
                    tracked.props
                };
                let changed = tracked.props != props
                    || (pid.is_some() && tracked.pid != pid)
                    || launched.is_some_and(|l| l != tracked.launched);
                if changed {
                    debug!(window, ?props, ?pid, ?launched, "window properties");
                }
                tracked.props = props;
                if pid.is_some() {
                    tracked.pid = pid;
                }
                if let Some(launched) = launched {
                    tracked.launched = launched;
                }
                let launched = tracked.launched;
                if tracked.awaiting.is_some_and(|awaited| serial >= awaited) {
                    tracked.awaiting = None;
                }
                if let Some(x11) = tracked.element.as_ref().and_then(WindowElement::x11) {
                    if !x11.is_override_redirect() {
                        x11.set_overlay(props.role(window, launched).overlay);
                        x11.set_opacity(props.opacity);
                        x11.set_emulated_mode(emulated_size(&props));
                    }
                }
                if changed {
                    self.update_focus();
                }
                self.refresh_xwayland();
            }
            Report::Control(control) => {
                if control != self.core.xwayland.control {
                    self.core.xwayland.control = control;
                    self.update_focus();
                }
            }
        }
    }

    /// Answers a configure request of a managed window: fullscreen at the output size, whatever
    /// it asked for.
    pub(crate) fn x11_configure_request(&mut self, window: &X11Surface) {
        self.core.configure_x11_fullscreen(window);
        // Smithay confirms with a synthetic ConfigureNotify only once the window is reparented;
        // before that, an unchanged geometry gets no event from the server either.
        if window.mapped_window_id().is_none() && !window.is_override_redirect() {
            if let Some(helper) = &self.core.xwayland.helper {
                helper.configure_notify(window.window_id(), window.geometry());
            }
        }
    }

    /// Sends every managed X11 window the output size again (after a mode change).
    pub(crate) fn reconfigure_x11_windows(&mut self) {
        let windows: Vec<_> = self
            .core
            .xwayland
            .windows
            .iter()
            .map(|t| t.x11.clone())
            .collect();
        for window in windows {
            self.core.configure_x11_fullscreen(&window);
        }
    }
}

impl Core {
    /// The window on screen, the overlays above it and the keyboard focus: the kiosk policy
    /// with Steam's roles and control.
    pub(crate) fn layers(&self) -> Layers<WindowElement> {
        self.stack
            .layers(|w| self.steam_role(w), self.xwayland.control())
    }

    /// `window`'s part in Steam's contract: from its properties for an X11 window; a Wayland
    /// window has only the app id Steam launched its client as (looked up once).
    pub(crate) fn steam_role(&self, window: &WindowElement) -> Role {
        let Some(wayland) = window.wayland() else {
            return self.xwayland.role(window);
        };
        struct Launched(u32);
        let launched = wayland.user_data().get_or_insert(|| {
            let pid = wayland
                .toplevel()
                .and_then(|t| t.wl_surface().client())
                .and_then(|c| c.get_credentials(&self.display_handle).ok())
                .and_then(|c| u32::try_from(c.pid).ok());
            Launched(pid.map_or(0, launch::launched_app_id))
        });
        Role {
            app_id: launched.0,
            ..Role::default()
        }
    }

    /// Configures a managed X11 window fullscreen at the output size, at the origin; a window
    /// that cannot be resized (`WM_NORMAL_HINTS` with equal minimum and maximum sizes) keeps
    /// its size, at the origin, and is scaled to the output (see `crate::scaling`).
    /// Override-redirect windows place themselves and are left alone.
    pub(crate) fn configure_x11_fullscreen(&self, window: &X11Surface) {
        if window.is_override_redirect() || !window.alive() {
            return;
        }
        let fixed = x11_fixed_size(window);
        // A game that set a lower mode with XRandR gets that mode's monitor: Xwayland scales
        // a window of exactly that size to the output.
        let emulated = self
            .xwayland
            .windows
            .iter()
            .find(|t| same_window(&t.x11, window))
            .and_then(|t| t.props.emulated_monitor);
        let rect = match (fixed, emulated) {
            (Some(size), _) => Rectangle::from_size(size),
            (None, Some([x, y, w, h])) => {
                Rectangle::new((x as i32, y as i32).into(), (w as i32, h as i32).into())
            }
            (None, None) => Rectangle::from_size(self.output_size()),
        };
        if window.geometry() != rect {
            if let Err(err) = window.configure(rect) {
                debug!(%err, window = window.window_id(), "cannot configure an X11 window");
            }
        }
        if window.is_fullscreen() != fixed.is_none() {
            let _ = window.set_fullscreen(fixed.is_none());
        }
    }

    /// Sets whether a managed X11 window shows as the active one.
    pub(crate) fn activate_x11(&self, window: &X11Window, active: bool) {
        if !window.is_override_redirect() && window.x11.is_activated() != active {
            let _ = window.x11.set_activated(active);
        }
    }

    /// The surface for tracked window `i`: the one Smithay associated (`xwayland_shell_v1`), or
    /// the one whose protocol id the window's `WL_SURFACE_ID` message named.
    fn find_x11_surface(&self, i: usize) -> Option<WlSurface> {
        let tracked = &self.xwayland.windows[i];
        if let Some(surface) = tracked.x11.wl_surface() {
            return Some(surface);
        }
        #[allow(deprecated)] // the only association Xwayland before 23.1 offers
        let id = tracked.x11.wl_surface_id()?;
        let client = self.xwayland.client.as_ref()?;
        let surface = client
            .object_from_protocol_id::<WlSurface>(&self.display_handle, id)
            .ok()?;
        let taken = self
            .xwayland
            .windows
            .iter()
            .any(|t| t.surface.as_ref() == Some(&surface));
        let usable = surface.alive()
            && !taken
            && tracked.stale.as_ref() != Some(&surface)
            && get_role(&surface).is_none();
        usable.then_some(surface)
    }
}

/// The size of an X11 window that cannot be resized: its `WM_NORMAL_HINTS` minimum and maximum
/// sizes are the same (as SDL sets them for a window that is not resizable).
fn x11_fixed_size(window: &X11Surface) -> Option<Size<i32, Logical>> {
    let (min, max) = (window.min_size()?, window.max_size()?);
    (min == max && min.w > 0 && min.h > 0).then_some(min)
}

/// The size of the mode the window's client set with XRandR, from its properties.
fn emulated_size(props: &WindowProps) -> Option<Size<i32, Logical>> {
    props
        .emulated_monitor
        .map(|[_, _, w, h]| (w as i32, h as i32).into())
}
