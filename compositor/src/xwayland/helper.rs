//! A second X connection for what Smithay's `X11Wm` does not offer: the input focus and
//! synthetic `ConfigureNotify` events.
//!
//! **Input focus**, the window manager's half of keyboard focus. Xwayland delivers keys to the
//! X11 window that has the X input focus, which only a window manager sets; the `wl_keyboard`
//! focus on the window's surface alone is not enough. Smithay's `X11Surface` does this inside
//! its `KeyboardTarget`, but the seat here focuses the plain `WlSurface`, and calling both would
//! send `wl_keyboard.enter` twice. So the compositor sets the X focus itself, following ICCCM
//! 4.1.7: `SetInputFocus` unless the window's `WM_HINTS` say it takes no input, plus a
//! `WM_TAKE_FOCUS` message when it lists that protocol (Wine does).
//!
//! **Synthetic ConfigureNotify.** ICCCM 4.1.5 wants one when the window manager answers a
//! configure request without changing anything. Smithay sends it only for windows it has already
//! reparented; Xt clients such as xterm that ask for a size before mapping would otherwise wait
//! five seconds (their `waitForWm` timeout) before they map.
//!
//! The requests that need replies (the window's hints and protocols) run on a thread of their
//! own with its own X connection, so the compositor thread never waits for Xwayland, which may
//! itself be waiting for the compositor.

use std::sync::mpsc;

use smithay::utils::{Logical, Rectangle};
use tracing::{debug, warn};
use x11rb::connection::Connection;
use x11rb::properties::WmHints;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureNotifyEvent, ConnectionExt as _, EventMask, InputFocus,
    Window, CONFIGURE_NOTIFY_EVENT,
};
use x11rb::rust_connection::RustConnection;
use x11rb::{CURRENT_TIME, NONE};

/// What the helper thread is asked to do.
#[derive(Debug)]
enum Request {
    /// Give the input focus to the window, or to nobody.
    Focus(Option<Window>),
    /// Tell the window its geometry with a synthetic ConfigureNotify.
    ConfigureNotify(Window, Rectangle<i32, Logical>),
}

/// Hands requests to the helper thread. Dropping it ends the thread.
#[derive(Debug)]
pub(crate) struct Helper {
    requests: mpsc::Sender<Request>,
}

impl Helper {
    /// Starts the helper thread for X display `:display`.
    pub(crate) fn spawn(display: u32) -> Option<Self> {
        let (requests, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("xwayland-helper".into())
            .spawn(move || run(display, rx));
        match spawned {
            Ok(_) => Some(Self { requests }),
            Err(err) => {
                warn!(%err, "cannot start the X11 helper thread; X11 windows get no input focus");
                None
            }
        }
    }

    /// Gives the X input focus to `window`, or to nobody.
    pub(crate) fn focus(&self, window: Option<Window>) {
        // Fails only when the thread is gone, which it already logged.
        let _ = self.requests.send(Request::Focus(window));
    }

    /// Sends `window` a synthetic ConfigureNotify with `geometry`.
    pub(crate) fn configure_notify(&self, window: Window, geometry: Rectangle<i32, Logical>) {
        let _ = self
            .requests
            .send(Request::ConfigureNotify(window, geometry));
    }
}

struct Atoms {
    wm_protocols: u32,
    wm_take_focus: u32,
}

fn run(display: u32, requests: mpsc::Receiver<Request>) {
    let name = format!(":{display}");
    let (conn, _) = match RustConnection::connect(Some(&name)) {
        Ok(conn) => conn,
        Err(err) => {
            warn!(%err, display = %name, "cannot connect to Xwayland for input focus");
            return;
        }
    };
    let atoms = match intern_atoms(&conn) {
        Ok(atoms) => atoms,
        Err(err) => {
            warn!(%err, "cannot intern the X11 focus atoms");
            return;
        }
    };
    while let Ok(request) = requests.recv() {
        let result = match &request {
            Request::Focus(Some(window)) => focus(&conn, &atoms, *window),
            Request::Focus(None) => conn
                .set_input_focus(InputFocus::NONE, NONE, CURRENT_TIME)
                .map(|_| ())
                .map_err(Into::into),
            Request::ConfigureNotify(window, geometry) => {
                configure_notify(&conn, *window, *geometry)
            }
        };
        if let Err(err) = result.and_then(|()| conn.flush().map_err(Into::into)) {
            // A window that went away in the meantime; the next request starts afresh.
            debug!(%err, ?request, "an X11 helper request failed");
        }
        // Errors of requests without replies arrive as events; nobody needs them.
        while let Ok(Some(_)) = conn.poll_for_event() {}
    }
}

fn intern_atoms(conn: &RustConnection) -> Result<Atoms, Box<dyn std::error::Error>> {
    let wm_protocols = conn.intern_atom(false, b"WM_PROTOCOLS")?;
    let wm_take_focus = conn.intern_atom(false, b"WM_TAKE_FOCUS")?;
    Ok(Atoms {
        wm_protocols: wm_protocols.reply()?.atom,
        wm_take_focus: wm_take_focus.reply()?.atom,
    })
}

fn focus(
    conn: &RustConnection,
    atoms: &Atoms,
    window: Window,
) -> Result<(), Box<dyn std::error::Error>> {
    let hints = WmHints::get(conn, window)?.reply()?;
    let protocols = conn
        .get_property(false, window, atoms.wm_protocols, AtomEnum::ATOM, 0, 64)?
        .reply()?;
    let take_focus = protocols
        .value32()
        .is_some_and(|mut atoms_| atoms_.any(|a| a == atoms.wm_take_focus));
    // ICCCM: no input hint means the window takes input.
    let input = hints.and_then(|h| h.input).unwrap_or(true);
    debug!(window, input, take_focus, "X11 input focus");
    if input {
        conn.set_input_focus(InputFocus::POINTER_ROOT, window, CURRENT_TIME)?;
    }
    if take_focus {
        let event = ClientMessageEvent::new(
            32,
            window,
            atoms.wm_protocols,
            [atoms.wm_take_focus, CURRENT_TIME, 0, 0, 0],
        );
        conn.send_event(false, window, EventMask::NO_EVENT, event)?;
    }
    Ok(())
}

fn configure_notify(
    conn: &RustConnection,
    window: Window,
    geometry: Rectangle<i32, Logical>,
) -> Result<(), Box<dyn std::error::Error>> {
    let clamp = |v: i32| v.clamp(0, i32::from(u16::MAX)) as u16;
    let event = ConfigureNotifyEvent {
        response_type: CONFIGURE_NOTIFY_EVENT,
        sequence: 0,
        event: window,
        window,
        above_sibling: NONE,
        x: geometry.loc.x.clamp(i16::MIN.into(), i16::MAX.into()) as i16,
        y: geometry.loc.y.clamp(i16::MIN.into(), i16::MAX.into()) as i16,
        width: clamp(geometry.size.w),
        height: clamp(geometry.size.h),
        border_width: 0,
        override_redirect: false,
    };
    conn.send_event(false, window, EventMask::STRUCTURE_NOTIFY, event)?;
    Ok(())
}
