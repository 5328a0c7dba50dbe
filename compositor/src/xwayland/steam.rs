//! Steam's window contract, the X properties gamescope defines: what Steam says about its windows
//! and which window it wants on screen, and what the compositor tells Steam back.
//!
//! Read from the windows (all `CARDINAL`, format 32):
//! - `STEAM_GAME`: the window's app id; 769 is Steam's own UI (Big Picture, the gamepad UI).
//! - `STEAM_BIGPICTURE`: non-zero marks Steam's UI on older clients; counts as app id 769.
//! - `STEAM_OVERLAY`: non-zero makes the window an overlay, drawn above the window on screen.
//! - `STEAM_INPUT_FOCUS`: on an overlay, 1 takes keyboard and pointer, 2 the pointer only.
//! - `_NET_WM_WINDOW_OPACITY`: on an overlay, the opacity it is drawn with (Steam fades its
//!   overlay in and out with it; 0 hides it).
//!
//! Xwayland's own `_XWAYLAND_RANDR_EMU_MONITOR_RECTS` (x, y, width, height per monitor) is read
//! the same way: a game that set a lower mode with XRandR sees that mode, and Xwayland puts the
//! monitor rectangles it sees on its windows, so that a fullscreen window can be given the
//! mode's size (Xwayland then scales it to the output with `wp_viewporter`).
//!
//! Read from the root window: `GAMESCOPECTRL_BASELAYER_APPID` (app ids in priority order) and
//! `GAMESCOPECTRL_BASELAYER_WINDOW` (a window id). `crate::kiosk` turns all this into the window
//! on screen, the overlays and the keyboard focus.
//!
//! Written to the root window after every focus change ([`Published`]):
//! `GAMESCOPE_FOCUSABLE_APPS`, `GAMESCOPE_FOCUSABLE_WINDOWS`, `GAMESCOPE_FOCUSED_WINDOW`,
//! `GAMESCOPE_FOCUSED_APP` and `GAMESCOPE_FOCUSED_APP_GFX`.
//!
//! A property of the wrong type or format is ignored with a debug log, as if it were absent.
//!
//! # Threads
//!
//! The watcher has an X connection of its own, used by two threads: one waits for
//! `PropertyNotify` events (on the root window and every window the compositor asked it to
//! watch) and reports the new values; the other runs the compositor's requests (watch a window,
//! publish the root properties). Reports reach the compositor through a calloop channel, so the
//! compositor thread never waits for Xwayland.

use std::sync::{mpsc, Arc};

use smithay::reexports::calloop::channel::Sender;
use tracing::{debug, warn};
use x11rb::connection::Connection;
use x11rb::protocol::res::{ClientIdMask, ClientIdSpec, ConnectionExt as _};
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, GetPropertyReply, PropMode,
    Window,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::launch::launched_app_id;
use crate::kiosk::{BaseLayerControl, OverlayInput, Role};

/// The app id of Steam's own UI.
pub(crate) const STEAM_APP_ID: u32 = 769;

/// The Steam properties of one window; all zero for a window without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowProps {
    /// `STEAM_GAME`.
    pub(crate) app_id: u32,
    /// `STEAM_BIGPICTURE` is set (non-zero).
    pub(crate) big_picture: bool,
    /// `STEAM_OVERLAY` is set (non-zero).
    pub(crate) overlay: bool,
    /// `STEAM_INPUT_FOCUS`.
    pub(crate) input_focus: u32,
    /// `_NET_WM_WINDOW_OPACITY`, `u32::MAX` (opaque) when absent; drawn only on overlays.
    pub(crate) opacity: u32,
    /// The first of `_XWAYLAND_RANDR_EMU_MONITOR_RECTS`: the monitor (x, y, width, height) the
    /// window's client sees after it set a mode of its own.
    pub(crate) emulated_monitor: Option<[u32; 4]>,
}

impl Default for WindowProps {
    fn default() -> Self {
        Self {
            app_id: 0,
            big_picture: false,
            overlay: false,
            input_focus: 0,
            opacity: u32::MAX,
            emulated_monitor: None,
        }
    }
}

impl WindowProps {
    /// The window's role in the kiosk policy; `launched` is the app id its process was
    /// launched as (see `super::launch`), used when the window has no `STEAM_GAME`.
    pub(crate) fn role(&self, x11_id: u32, launched: u32) -> Role {
        let overlay = self.overlay.then_some(match self.input_focus {
            0 => OverlayInput::Passthrough,
            2 => OverlayInput::PointerOnly,
            _ => OverlayInput::KeyboardAndPointer,
        });
        let app_id = match (self.big_picture, self.app_id) {
            (true, _) => STEAM_APP_ID,
            (false, 0) => launched,
            (false, id) => id,
        };
        Role {
            app_id,
            x11_id: Some(x11_id),
            overlay,
        }
    }
}

/// What the compositor publishes on the root window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Published {
    /// `GAMESCOPE_FOCUSABLE_APPS`: the app ids (non-zero, each once) of the windows that can be
    /// on screen, newest first; Wayland windows included (by the app Steam launched them as).
    pub(crate) focusable_apps: Vec<u32>,
    /// `GAMESCOPE_FOCUSABLE_WINDOWS`: (window, app id, pid) of the X11 ones, newest first;
    /// windows without an app id are listed with 0, a pid that is not known as 0.
    pub(crate) focusable_windows: Vec<[u32; 3]>,
    /// `GAMESCOPE_FOCUSED_WINDOW`: the X11 window on screen (absent: none, or a Wayland window).
    pub(crate) focused_window: u32,
    /// `GAMESCOPE_FOCUSED_APP`: the app id of the window that takes the input (an overlay that
    /// takes keyboard or pointer, else the window on screen).
    pub(crate) focused_app: u32,
    /// `GAMESCOPE_FOCUSED_APP_GFX`: the app id of the window on screen.
    pub(crate) focused_app_gfx: u32,
}

/// What the watcher tells the compositor.
#[derive(Debug)]
pub(crate) enum Report {
    /// A window's properties, read after request `serial` (0: after a property changed).
    Window {
        window: Window,
        props: WindowProps,
        /// When the properties were read: the X sequence number of the read's first request.
        /// Reads of the request thread and of the event thread can reach the compositor out of
        /// order; an older read must not overwrite a newer one.
        read: u64,
        /// The process id of the window's client, when this read asked for it and Xwayland
        /// knows it (local clients only).
        pid: Option<u32>,
        /// The app id Steam launched that process as (0: none), with `pid`.
        launched: Option<u32>,
        serial: u64,
    },
    /// The root window's `GAMESCOPECTRL_BASELAYER_*` properties.
    Control(BaseLayerControl),
}

#[derive(Debug)]
enum Request {
    /// Watch the window's properties and report them (and its pid) with `serial`.
    Watch { window: Window, serial: u64 },
    /// Write the root properties.
    Publish(Published),
}

/// Hands requests to the watcher. Dropping it ends the request thread; the event thread ends
/// with the X connection.
#[derive(Debug)]
pub(crate) struct Watcher {
    requests: mpsc::Sender<Request>,
}

impl Watcher {
    /// Connects to X display `:display` and starts the watcher's threads.
    pub(crate) fn spawn(display: u32, reports: Sender<Report>) -> Option<Self> {
        let name = format!(":{display}");
        let (conn, screen) = match RustConnection::connect(Some(&name)) {
            Ok(conn) => conn,
            Err(err) => {
                warn!(%err, display = %name, "cannot connect to Xwayland for Steam's properties");
                return None;
            }
        };
        let root = conn.setup().roots.get(screen).map(|s| s.root)?;
        let atoms = match intern_atoms(&conn) {
            Ok(atoms) => atoms,
            Err(err) => {
                warn!(%err, "cannot intern Steam's X11 atoms");
                return None;
            }
        };
        let watcher = Arc::new(Conn { conn, root, atoms });
        if let Err(err) = watcher.watch_root() {
            warn!(%err, "cannot watch the X11 root window for Steam's properties");
            return None;
        }
        // The control may be set before the compositor reads it.
        let _ = reports.send(Report::Control(watcher.control()));

        let (requests, rx) = mpsc::channel();
        let events = {
            let watcher = watcher.clone();
            let reports = reports.clone();
            std::thread::Builder::new()
                .name("xwayland-steam-events".into())
                .spawn(move || watcher.run_events(&reports))
        };
        let served = events.and_then(|_| {
            std::thread::Builder::new()
                .name("xwayland-steam".into())
                .spawn(move || watcher.run_requests(&rx, &reports))
        });
        match served {
            Ok(_) => Some(Self { requests }),
            Err(err) => {
                warn!(%err, "cannot start the Steam property threads");
                None
            }
        }
    }

    /// Watches `window`'s properties from now on and reports them, with its pid, as `serial`.
    pub(crate) fn watch(&self, window: Window, serial: u64) {
        // Fails only when the thread is gone, which it already logged.
        let _ = self.requests.send(Request::Watch { window, serial });
    }

    /// Writes `published` to the root window.
    pub(crate) fn publish(&self, published: Published) {
        let _ = self.requests.send(Request::Publish(published));
    }
}

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        STEAM_GAME,
        STEAM_BIGPICTURE,
        STEAM_OVERLAY,
        STEAM_INPUT_FOCUS,
        _NET_WM_WINDOW_OPACITY,
        GAMESCOPECTRL_BASELAYER_APPID,
        GAMESCOPECTRL_BASELAYER_WINDOW,
        GAMESCOPE_FOCUSABLE_APPS,
        GAMESCOPE_FOCUSABLE_WINDOWS,
        GAMESCOPE_FOCUSED_WINDOW,
        GAMESCOPE_FOCUSED_APP,
        GAMESCOPE_FOCUSED_APP_GFX,
        _XWAYLAND_RANDR_EMU_MONITOR_RECTS,
    }
}

type XResult<T> = Result<T, Box<dyn std::error::Error>>;

fn intern_atoms(conn: &RustConnection) -> XResult<Atoms> {
    Ok(Atoms::new(conn)?.reply()?)
}

/// The watcher's X connection.
struct Conn {
    conn: RustConnection,
    root: Window,
    atoms: Atoms,
}

impl Conn {
    fn watch_root(&self) -> XResult<()> {
        let aux = ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE);
        self.conn
            .change_window_attributes(self.root, &aux)?
            .check()?;
        Ok(())
    }

    fn run_events(&self, reports: &Sender<Report>) {
        loop {
            let event = match self.conn.wait_for_event() {
                Ok(event) => event,
                Err(err) => {
                    debug!(%err, "the Steam property connection closed");
                    return;
                }
            };
            let report = match event {
                Event::PropertyNotify(e) if e.window == self.root => {
                    let atoms = &self.atoms;
                    let control = [
                        atoms.GAMESCOPECTRL_BASELAYER_APPID,
                        atoms.GAMESCOPECTRL_BASELAYER_WINDOW,
                    ];
                    if !control.contains(&e.atom) {
                        continue;
                    }
                    Report::Control(self.control())
                }
                Event::PropertyNotify(e) => {
                    let atoms = &self.atoms;
                    let watched = [
                        atoms.STEAM_GAME,
                        atoms.STEAM_BIGPICTURE,
                        atoms.STEAM_OVERLAY,
                        atoms.STEAM_INPUT_FOCUS,
                        atoms._NET_WM_WINDOW_OPACITY,
                        atoms._XWAYLAND_RANDR_EMU_MONITOR_RECTS,
                    ];
                    if !watched.contains(&e.atom) {
                        continue;
                    }
                    match self.window_props(e.window) {
                        Ok((props, read)) => Report::Window {
                            window: e.window,
                            props,
                            read,
                            pid: None,
                            launched: None,
                            serial: 0,
                        },
                        // Gone in the meantime.
                        Err(err) => {
                            debug!(%err, window = e.window, "cannot read Steam's window properties");
                            continue;
                        }
                    }
                }
                // Errors of requests without replies (a window that went away): nobody needs
                // them.
                _ => continue,
            };
            if reports.send(report).is_err() {
                return;
            }
        }
    }

    fn run_requests(&self, requests: &mpsc::Receiver<Request>, reports: &Sender<Report>) {
        while let Ok(request) = requests.recv() {
            match request {
                Request::Watch { window, serial } => {
                    let aux =
                        ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE);
                    let selected = self.conn.change_window_attributes(window, &aux);
                    if let Err(err) = selected {
                        debug!(%err, window, "cannot watch an X11 window");
                    }
                    // Read after selecting the events: a change in between is seen either way.
                    let (props, read) = self.window_props(window).unwrap_or_else(|err| {
                        debug!(%err, window, "cannot read Steam's window properties");
                        (WindowProps::default(), 0)
                    });
                    let pid = self.pid(window);
                    let report = Report::Window {
                        window,
                        props,
                        read,
                        pid,
                        launched: pid.map(launched_app_id),
                        serial,
                    };
                    if reports.send(report).is_err() {
                        return;
                    }
                }
                Request::Publish(published) => {
                    if let Err(err) = self.publish(&published) {
                        debug!(%err, "cannot publish the focus on the root window");
                    }
                }
            }
        }
    }

    fn property(&self, window: Window, atom: u32, len: u32) -> XResult<GetPropertyReply> {
        Ok(self
            .conn
            .get_property(false, window, atom, AtomEnum::ANY, 0, len)?
            .reply()?)
    }

    /// `window`'s properties, and the sequence number of the first request that read them: the
    /// read saw every change made before that, and a change after it sends an event whose read
    /// starts later.
    fn window_props(&self, window: Window) -> XResult<(WindowProps, u64)> {
        let atoms = &self.atoms;
        let cookies = [
            (atoms.STEAM_GAME, "STEAM_GAME"),
            (atoms.STEAM_BIGPICTURE, "STEAM_BIGPICTURE"),
            (atoms.STEAM_OVERLAY, "STEAM_OVERLAY"),
            (atoms.STEAM_INPUT_FOCUS, "STEAM_INPUT_FOCUS"),
            (atoms._NET_WM_WINDOW_OPACITY, "_NET_WM_WINDOW_OPACITY"),
        ]
        .map(|(atom, name)| {
            (
                self.conn
                    .get_property(false, window, atom, AtomEnum::ANY, 0, 1),
                name,
            )
        });
        let emulated = self.conn.get_property(
            false,
            window,
            atoms._XWAYLAND_RANDR_EMU_MONITOR_RECTS,
            AtomEnum::ANY,
            0,
            4,
        );
        let emulated = emulated?;
        let mut values = [None; 5];
        let mut read = emulated.sequence_number();
        for (value, (cookie, name)) in values.iter_mut().zip(cookies) {
            let cookie = cookie?;
            read = read.min(cookie.sequence_number());
            let reply = cookie.reply()?;
            *value = cardinal(&reply, window, name);
        }
        let emulated_monitor = emulated_monitor(&emulated.reply()?);
        let [app_id, big_picture, overlay, input_focus, opacity] = values;
        let props = WindowProps {
            app_id: app_id.unwrap_or(0),
            big_picture: big_picture.unwrap_or(0) != 0,
            overlay: overlay.unwrap_or(0) != 0,
            input_focus: input_focus.unwrap_or(0),
            opacity: opacity.unwrap_or(u32::MAX),
            emulated_monitor,
        };
        Ok((props, read))
    }

    /// The root window's control properties; unreadable ones count as absent.
    fn control(&self) -> BaseLayerControl {
        let atoms = &self.atoms;
        let app_ids = self
            .property(self.root, atoms.GAMESCOPECTRL_BASELAYER_APPID, 256)
            .map(|reply| cardinals(&reply, "GAMESCOPECTRL_BASELAYER_APPID").unwrap_or_default())
            .unwrap_or_default();
        let window = self
            .property(self.root, atoms.GAMESCOPECTRL_BASELAYER_WINDOW, 1)
            .ok()
            .and_then(|reply| window_id(&reply))
            .filter(|&id| id != 0);
        let control = BaseLayerControl { window, app_ids };
        debug!(?control, "Steam's base layer control");
        control
    }

    /// The process id of `window`'s client, as Xwayland knows it.
    fn pid(&self, window: Window) -> Option<u32> {
        let spec = ClientIdSpec {
            client: window,
            mask: ClientIdMask::LOCAL_CLIENT_PID,
        };
        let reply = self.conn.res_query_client_ids(&[spec]).ok()?.reply().ok()?;
        reply
            .ids
            .iter()
            .find(|id| id.spec.mask == ClientIdMask::LOCAL_CLIENT_PID)
            .and_then(|id| id.value.first().copied())
    }

    fn publish(&self, published: &Published) -> XResult<()> {
        let atoms = &self.atoms;
        let optional = |value: u32| if value == 0 { vec![] } else { vec![value] };
        let windows: Vec<u32> = published.focusable_windows.concat();
        let values: [(u32, Vec<u32>); 5] = [
            (
                atoms.GAMESCOPE_FOCUSABLE_APPS,
                published.focusable_apps.clone(),
            ),
            (atoms.GAMESCOPE_FOCUSABLE_WINDOWS, windows),
            (
                atoms.GAMESCOPE_FOCUSED_WINDOW,
                optional(published.focused_window),
            ),
            (atoms.GAMESCOPE_FOCUSED_APP, optional(published.focused_app)),
            (
                atoms.GAMESCOPE_FOCUSED_APP_GFX,
                optional(published.focused_app_gfx),
            ),
        ];
        for (atom, data) in values {
            self.conn.change_property32(
                PropMode::REPLACE,
                self.root,
                atom,
                AtomEnum::CARDINAL,
                &data,
            )?;
        }
        self.conn.flush()?;
        Ok(())
    }
}

/// The first value of a `CARDINAL` property of format 32; `None` when it is absent, empty or
/// malformed.
fn cardinal(reply: &GetPropertyReply, window: Window, name: &str) -> Option<u32> {
    let value = cardinals(reply, name)?.first().copied();
    if value.is_none() {
        debug!(window, name, "ignoring an empty property");
    }
    value
}

/// The values of a `CARDINAL` list of format 32; `None` when it is absent or malformed.
fn cardinals(reply: &GetPropertyReply, name: &str) -> Option<Vec<u32>> {
    words(reply, name, &[AtomEnum::CARDINAL])
}

/// The first monitor of `_XWAYLAND_RANDR_EMU_MONITOR_RECTS`, when it has a size.
fn emulated_monitor(reply: &GetPropertyReply) -> Option<[u32; 4]> {
    let rects = cardinals(reply, "_XWAYLAND_RANDR_EMU_MONITOR_RECTS")?;
    match rects.get(..4) {
        Some(&[x, y, w, h]) if w > 0 && h > 0 => Some([x, y, w, h]),
        _ => None,
    }
}

/// A window id from a `CARDINAL` or `WINDOW` property of format 32.
fn window_id(reply: &GetPropertyReply) -> Option<u32> {
    let name = "GAMESCOPECTRL_BASELAYER_WINDOW";
    words(reply, name, &[AtomEnum::CARDINAL, AtomEnum::WINDOW])?
        .first()
        .copied()
}

/// The 32-bit values of a property of one of `types`; `None`, with a debug log unless it is
/// absent, for anything else.
fn words(reply: &GetPropertyReply, name: &str, types: &[AtomEnum]) -> Option<Vec<u32>> {
    if reply.type_ == u32::from(AtomEnum::NONE) {
        return None;
    }
    let typed = types.iter().any(|&t| u32::from(t) == reply.type_);
    if !typed || reply.format != 32 || !reply.value.len().is_multiple_of(4) {
        debug!(
            name,
            type_ = reply.type_,
            format = reply.format,
            bytes = reply.value.len(),
            "ignoring a malformed property"
        );
        return None;
    }
    reply.value32().map(Iterator::collect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(type_: AtomEnum, format: u8, value: &[u8]) -> GetPropertyReply {
        GetPropertyReply {
            format,
            sequence: 0,
            length: 0,
            type_: type_.into(),
            bytes_after: 0,
            value_len: value.len() as u32 / (u32::from(format.max(8)) / 8),
            value: value.to_vec(),
        }
    }

    fn bytes_of(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn cardinals_of_the_right_type_are_read() {
        let r = reply(AtomEnum::CARDINAL, 32, &bytes_of(&[769, 7]));
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), Some(769));
        assert_eq!(cardinals(&r, "LIST"), Some(vec![769, 7]));
        let r = reply(AtomEnum::WINDOW, 32, &bytes_of(&[0x400001]));
        assert_eq!(window_id(&r), Some(0x400001));
    }

    #[test]
    fn the_emulated_monitor_is_the_first_rectangle_with_a_size() {
        let r = reply(
            AtomEnum::CARDINAL,
            32,
            &bytes_of(&[0, 0, 800, 600, 800, 0, 640, 480]),
        );
        assert_eq!(emulated_monitor(&r), Some([0, 0, 800, 600]));
        let r = reply(AtomEnum::CARDINAL, 32, &bytes_of(&[0, 0, 0, 600]));
        assert_eq!(emulated_monitor(&r), None);
        let r = reply(AtomEnum::CARDINAL, 32, &bytes_of(&[0, 0, 800]));
        assert_eq!(emulated_monitor(&r), None);
        assert_eq!(emulated_monitor(&reply(AtomEnum::NONE, 0, &[])), None);
    }

    #[test]
    fn malformed_properties_are_ignored() {
        // Absent.
        let r = reply(AtomEnum::NONE, 0, &[]);
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), None);
        assert_eq!(cardinals(&r, "LIST"), None);
        assert_eq!(window_id(&r), None);
        // A string.
        let r = reply(AtomEnum::STRING, 8, b"769");
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), None);
        assert_eq!(cardinals(&r, "LIST"), None);
        assert_eq!(window_id(&r), None);
        // CARDINAL, but 16 bits.
        let r = reply(AtomEnum::CARDINAL, 16, &[1, 3]);
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), None);
        assert_eq!(cardinals(&r, "LIST"), None);
        // Empty.
        let r = reply(AtomEnum::CARDINAL, 32, &[]);
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), None);
        assert_eq!(cardinals(&r, "LIST"), Some(vec![]));
        // Truncated: a 32-bit list that ends in the middle of a value.
        let mut truncated = bytes_of(&[769, 7]);
        truncated.pop();
        let r = reply(AtomEnum::CARDINAL, 32, &truncated);
        assert_eq!(cardinal(&r, 1, "STEAM_GAME"), None);
        assert_eq!(cardinals(&r, "LIST"), None);
        assert_eq!(window_id(&r), None);
    }

    #[test]
    fn big_picture_is_steam_and_overlays_take_input_as_asked() {
        let props = WindowProps {
            big_picture: true,
            ..WindowProps::default()
        };
        assert_eq!(props.role(5, 7).app_id, STEAM_APP_ID);
        assert_eq!(props.role(5, 7).overlay, None);
        // STEAM_GAME beats the app the process was launched as, which beats none.
        let game = WindowProps {
            app_id: 9,
            ..WindowProps::default()
        };
        assert_eq!(game.role(5, 7).app_id, 9);
        assert_eq!(WindowProps::default().role(5, 7).app_id, 7);
        assert_eq!(WindowProps::default().role(5, 0).app_id, 0);
        let overlay = |input_focus| {
            WindowProps {
                overlay: true,
                input_focus,
                ..WindowProps::default()
            }
            .role(5, 0)
            .overlay
        };
        assert_eq!(overlay(0), Some(OverlayInput::Passthrough));
        assert_eq!(overlay(1), Some(OverlayInput::KeyboardAndPointer));
        assert_eq!(overlay(2), Some(OverlayInput::PointerOnly));
    }
}
