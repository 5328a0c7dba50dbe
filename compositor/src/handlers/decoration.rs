//! xdg-decoration: every window is decorated by the server, which draws nothing, so clients
//! draw no title bars or borders (all toplevels are fullscreen or dialogs in a kiosk).

use smithay::delegate_xdg_decoration;
use smithay::reexports::wayland_protocols::xdg::decoration::zv1::server::zxdg_toplevel_decoration_v1::Mode;
use smithay::wayland::shell::xdg::decoration::XdgDecorationHandler;
use smithay::wayland::shell::xdg::ToplevelSurface;

use crate::state::State;

impl XdgDecorationHandler for State {
    fn new_decoration(&mut self, toplevel: ToplevelSurface) {
        set_server_side(&toplevel);
    }

    fn request_mode(&mut self, toplevel: ToplevelSurface, _mode: Mode) {
        set_server_side(&toplevel);
    }

    fn unset_mode(&mut self, toplevel: ToplevelSurface) {
        set_server_side(&toplevel);
    }
}

delegate_xdg_decoration!(State);

/// Answers with server-side decorations, whatever the client asked for.
fn set_server_side(toplevel: &ToplevelSurface) {
    toplevel.with_pending_state(|state| state.decoration_mode = Some(Mode::ServerSide));
    // Before the initial configure, the mode goes out with it. Later, every request is
    // answered with a configure, even when the mode stays the same.
    if toplevel.is_initial_configure_sent() {
        toplevel.send_configure();
    }
}
