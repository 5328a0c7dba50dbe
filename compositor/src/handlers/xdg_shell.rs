//! xdg_wm_base: toplevels follow the kiosk policy (see `crate::windows`); popups (menus,
//! tooltips) are drawn above their parent and placed inside the output.

use smithay::delegate_xdg_shell;
use smithay::desktop::space::SpaceElement;
use smithay::desktop::{
    find_popup_root_surface, get_popup_toplevel_coords, PopupKeyboardGrab, PopupKind, PopupManager,
    PopupPointerGrab, PopupUngrabStrategy, Window,
};
use smithay::input::pointer::Focus;
use smithay::input::Seat;
use smithay::reexports::wayland_server::protocol::wl_seat::WlSeat;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Logical, Rectangle, Serial, Size};
use smithay::wayland::compositor::get_role;
use smithay::wayland::shell::xdg::{
    PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState, XDG_POPUP_ROLE,
};
use tracing::{debug, warn};

use crate::element::WindowElement;
use crate::scaling::visible_windows;
use crate::state::State;

impl XdgShellHandler for State {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.core.xdg_shell_state
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        self.core.configure_fullscreen(&surface, false);
        // The configure goes out when the client makes its initial commit.
        self.core.unmapped.push(Window::new_wayland_window(surface));
    }

    fn fullscreen_request(
        &mut self,
        surface: ToplevelSurface,
        _output: Option<smithay::reexports::wayland_server::protocol::wl_output::WlOutput>,
    ) {
        // A window that kept its own size takes the output's when it asks to be fullscreen
        // (one that cannot be resized still says so with its minimum and maximum sizes); one
        // that asks before its first commit gets the state on its first configure.
        crate::windows::set_size_choice(&surface, crate::windows::SizeChoice::AskedFullscreen);
        if surface.is_initial_configure_sent() {
            self.update_focus();
        }
    }

    fn toplevel_destroyed(&mut self, surface: ToplevelSurface) {
        self.remove_window(surface.wl_surface());
    }

    fn parent_changed(&mut self, surface: ToplevelSurface) {
        // Becoming a dialog (or no longer one) changes the size and the place of the window.
        self.update_focus();
        let window = self
            .core
            .stack
            .iter()
            .find(|w| w.toplevel() == Some(&surface))
            .cloned();
        if let Some(window) = window {
            self.place_window(&window);
        }
    }

    fn new_popup(&mut self, surface: PopupSurface, positioner: PositionerState) {
        surface.with_pending_state(|state| state.geometry = positioner.get_geometry());
        self.unconstrain_popup(&surface);
        // The configure goes out when the client makes its initial commit.
        if let Err(err) = self.core.popups.track_popup(PopupKind::Xdg(surface)) {
            debug!(?err, "popup gone before it was tracked");
        }
    }

    fn reposition_request(
        &mut self,
        surface: PopupSurface,
        positioner: PositionerState,
        token: u32,
    ) {
        surface.with_pending_state(|state| {
            state.geometry = positioner.get_geometry();
            state.positioner = positioner;
        });
        self.unconstrain_popup(&surface);
        surface.send_repositioned(token);
    }

    fn grab(&mut self, surface: PopupSurface, seat: WlSeat, serial: Serial) {
        let Some(seat) = Seat::<State>::from_resource(&seat) else {
            return;
        };
        let popup = PopupKind::Xdg(surface);
        let Ok(root) = find_popup_root_surface(&popup) else {
            return;
        };
        let mut grab = match self.core.popups.grab_popup(root, popup, &seat, serial) {
            Ok(grab) => grab,
            Err(err) => {
                debug!(?err, "popup grab refused");
                return;
            }
        };
        // The grab must come from an input event the client got: a press or a key that still
        // holds the seat's grab, or the previous popup's grab for nested menus.
        let serial_ok = |has_grab: &dyn Fn(Serial) -> bool| {
            has_grab(serial) || grab.previous_serial().is_some_and(has_grab)
        };
        if let Some(keyboard) = seat.get_keyboard() {
            if keyboard.is_grabbed() && !serial_ok(&|s| keyboard.has_grab(s)) {
                grab.ungrab(PopupUngrabStrategy::All);
                return;
            }
            keyboard.set_focus(self, grab.current_grab(), serial);
            keyboard.set_grab(self, PopupKeyboardGrab::new(&grab), serial);
        }
        if let Some(pointer) = seat.get_pointer() {
            if pointer.is_grabbed() && !serial_ok(&|s| pointer.has_grab(s)) {
                grab.ungrab(PopupUngrabStrategy::All);
                return;
            }
            pointer.set_grab(self, PopupPointerGrab::new(&grab), serial, Focus::Keep);
        }
    }
}

delegate_xdg_shell!(State);

impl State {
    /// Tracks popup maps and sends a popup's initial configure; call on every commit.
    pub(crate) fn handle_popup_commit(&mut self, surface: &WlSurface) {
        self.core.popups.commit(surface);
        if get_role(surface) != Some(XDG_POPUP_ROLE) {
            return;
        }
        if let Some(PopupKind::Xdg(popup)) = self.core.popups.find_popup(surface) {
            if !popup.is_initial_configure_sent() {
                if let Err(err) = popup.send_configure() {
                    warn!(?err, "cannot configure a popup");
                }
            }
        }
    }

    /// Places every popup again, after the output changed size, and configures those that
    /// moved. A popup whose positioner is not reactive cannot be moved once shown; it is
    /// dismissed instead of being left outside the output.
    pub(crate) fn reposition_popups(&mut self) {
        let roots: Vec<_> = self
            .core
            .stack
            .iter()
            .filter_map(WindowElement::root_surface)
            .collect();
        for root in roots {
            for (popup, _) in PopupManager::popups_for_surface(&root) {
                let PopupKind::Xdg(xdg) = &popup else {
                    continue;
                };
                self.unconstrain_popup(xdg);
                if !xdg.is_initial_configure_sent() || !xdg.has_pending_changes() {
                    continue;
                }
                if let Err(err) = xdg.send_configure() {
                    debug!(?err, "dismissing a popup that cannot move");
                    let _ = PopupManager::dismiss_popup(&root, &popup);
                }
            }
        }
    }

    /// Moves a popup's pending geometry so that it lies inside the output, using the
    /// adjustments (slide, flip, resize) its positioner allows.
    fn unconstrain_popup(&self, popup: &PopupSurface) {
        let kind = PopupKind::Xdg(popup.clone());
        let Ok(root) = find_popup_root_surface(&kind) else {
            return;
        };
        // The output in the coordinates of the root window's geometry: where that starts on the
        // output (not yet mapped: the origin), or, for a window that keeps its own size and is
        // scaled to the output, the part of the window the output shows. (A window scaled only
        // until it takes a new output size is not one.)
        let output = self.core.output_size();
        let scaled = visible_windows(&self.core.space, &self.core.output, self.core.scaling)
            .into_iter()
            .find(|(w, _)| w.root_surface().as_ref() == Some(&root))
            .filter(|(w, _)| w.toplevel().is_some_and(crate::windows::keeps_own_size))
            .map(|(w, placement)| (w.geometry().loc, placement.view()))
            .filter(|(_, view)| view.is_scaled());
        let mut target = match scaled {
            Some((geometry_loc, view)) => {
                let corner = view.to_window((0.0, 0.0).into()) - geometry_loc.to_f64();
                let size: Size<f64, Logical> = (
                    f64::from(output.w) / view.scale.x,
                    f64::from(output.h) / view.scale.y,
                )
                    .into();
                Rectangle::new(corner.to_i32_ceil(), size.to_i32_floor())
            }
            None => {
                let window_location = self
                    .core
                    .space
                    .elements()
                    .find(|w| w.root_surface().as_ref() == Some(&root))
                    .and_then(|w| self.core.space.element_location(w))
                    .unwrap_or_default();
                let mut target = Rectangle::from_size(output);
                target.loc -= window_location;
                target
            }
        };
        // In the coordinates of the popup's parent.
        target.loc -= get_popup_toplevel_coords(&kind);
        popup.with_pending_state(|state| {
            state.geometry = state.positioner.get_unconstrained_geometry(target);
        });
    }
}
