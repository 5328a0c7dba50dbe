//! The kiosk window policy on real Wayland windows: mapping, unmapping, stacking and focus.
//! X11 windows enter the same stack from `crate::xwayland`.

use std::sync::atomic::{AtomicU8, Ordering};

use smithay::backend::renderer::utils::with_renderer_surface_state;
use smithay::desktop::Window;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::Resource;
use smithay::utils::{IsAlive, Logical, Point, Size, SERIAL_COUNTER};
use smithay::wayland::shell::xdg::{SurfaceCachedState, ToplevelSurface};
use smithay::wayland::viewporter::ViewportCachedState;
use tracing::debug;

use crate::element::WindowElement;
use crate::state::{Core, State};

impl Core {
    /// Sets the pending state of a toplevel to fullscreen at the output size. Dialogs (toplevels
    /// with a parent) are the exception: they keep their own size, bounded by the output, and
    /// are shown above their parent instead of replacing it (see [`State::place_window`]).
    /// So is a window that keeps its own size, and is scaled to the output (see
    /// `crate::scaling`): one that cannot be resized (equal minimum and maximum sizes), or one
    /// that drew its first picture at another size than the one suggested.
    ///
    /// The first configure suggests the output's size without the fullscreen state: a window
    /// that can be resized takes the size, and one that cannot says so before it maps. SDL, for
    /// one, sets equal minimum and maximum sizes only on a window that is not fullscreen; told
    /// it is fullscreen, it takes the output's size and the game keeps drawing at its own size
    /// in a corner. The state follows once the window maps.
    pub(crate) fn configure_fullscreen(&self, toplevel: &ToplevelSurface, activated: bool) {
        let size = self.output_size();
        let own_size = toplevel.parent().is_some()
            || fixed_size(toplevel).is_some()
            || size_choice(toplevel) == SizeChoice::KeepsOwn;
        let asked = size_choice(toplevel) == SizeChoice::AskedFullscreen;
        let fullscreen = !own_size && (toplevel.is_initial_configure_sent() || asked);
        let wl_output = toplevel
            .wl_surface()
            .client()
            .and_then(|client| self.output.client_outputs(&client).next());
        toplevel.with_pending_state(|state| {
            if fullscreen {
                state.states.set(xdg_toplevel::State::Fullscreen);
                state.fullscreen_output = wl_output;
            } else {
                state.states.unset(xdg_toplevel::State::Fullscreen);
                state.fullscreen_output = None;
            }
            state.size = (!own_size).then_some(size);
            state.bounds = Some(size);
            if activated {
                state.states.set(xdg_toplevel::State::Activated);
            } else {
                state.states.unset(xdg_toplevel::State::Activated);
            }
        });
    }

    /// Where a mapped Wayland window goes: the output's origin for fullscreen windows, the
    /// middle of the output for dialogs, kept inside the output where they fit.
    fn window_location(&self, window: &Window) -> Point<i32, Logical> {
        let is_dialog = window.toplevel().is_some_and(|t| t.parent().is_some());
        if !is_dialog {
            return (0, 0).into();
        }
        let output = self.output_size();
        let size = window.geometry().size;
        (
            ((output.w - size.w) / 2).max(0),
            ((output.h - size.h) / 2).max(0),
        )
            .into()
    }
}

impl State {
    /// Maps, unmaps or initially configures a toplevel after a commit of its surface.
    pub(crate) fn handle_toplevel_commit(&mut self, surface: &WlSurface) {
        let has_buffer =
            || with_renderer_surface_state(surface, |s| s.buffer().is_some()).unwrap_or(false);

        if let Some(idx) = self
            .core
            .unmapped
            .iter()
            .position(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
        {
            // Unmapped windows always have a toplevel (only xdg toplevels are created).
            let Some(toplevel) = self.core.unmapped[idx].toplevel().cloned() else {
                return;
            };
            if !toplevel.is_initial_configure_sent() {
                // Its first commit may have said that it cannot be resized.
                self.core
                    .configure_fullscreen(&toplevel, is_activated(&toplevel));
                toplevel.send_configure();
            } else if has_buffer() {
                let window = self.core.unmapped.remove(idx);
                // Suggested a size, it drew at a clearly different one: a game that keeps its
                // size (SDL says nothing else about a fixed-size window that is not resized).
                // A terminal that rounds the size to its character cells is not one.
                let suggested = toplevel.current_state().size;
                let drawn = window.geometry().size;
                let apart = |a: i32, b: i32| (a - b).abs() * 10 > b;
                let keeps = suggested.is_some_and(|s| apart(drawn.w, s.w) || apart(drawn.h, s.h));
                let asked = size_choice(&toplevel) == SizeChoice::AskedFullscreen;
                if keeps && !asked && toplevel.parent().is_none() {
                    debug!(?suggested, ?drawn, "the toplevel keeps its own size");
                    set_size_choice(&toplevel, SizeChoice::KeepsOwn);
                }
                let location = self.core.window_location(&window);
                let window = WindowElement::Wayland(window);
                debug!(app_id = ?app_id(&toplevel), "mapping toplevel");
                self.core.space.map_element(window.clone(), location, true);
                self.core.stack.push(window);
                self.update_focus();
            }
            return;
        }

        let mapped = self
            .core
            .stack
            .iter()
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
            .cloned();
        if let Some(window) = mapped {
            if !has_buffer() {
                debug!("toplevel unmapped itself");
                self.core.stack.remove(&window);
                self.core.space.unmap_elem(&window);
                if let Some(toplevel) = window.toplevel() {
                    // A window that unmaps must get a fresh initial configure when it maps
                    // again, and shows again whether it keeps its own size.
                    set_size_choice(toplevel, SizeChoice::Undecided);
                    self.core.configure_fullscreen(toplevel, false);
                }
                if let WindowElement::Wayland(window) = window {
                    self.core.unmapped.push(window);
                }
                self.update_focus();
            } else {
                if let Some(toplevel) = window.toplevel() {
                    // It may have become resizable, or stopped being so.
                    self.core
                        .configure_fullscreen(toplevel, is_activated(toplevel));
                    toplevel.send_pending_configure();
                }
                self.place_window(&window);
            }
        }
    }

    /// Moves a mapped dialog back to the middle of the output after its size changed,
    /// keeping the stacking order.
    pub(crate) fn place_window(&mut self, window: &WindowElement) {
        let Some(wayland) = window.wayland() else {
            return;
        };
        let location = self.core.window_location(wayland);
        if self.core.space.element_location(window) == Some(location) {
            return;
        }
        // Mapping again moves the window, and raises it: put the kiosk top back on top.
        self.core.space.map_element(window.clone(), location, false);
        if let Some(top) = self.core.stack.top().cloned() {
            if top != *window {
                self.core.space.raise_element(&top, false);
            }
        }
    }

    /// Forgets a destroyed toplevel and hands focus to the window below it.
    pub(crate) fn remove_window(&mut self, surface: &WlSurface) {
        self.core
            .unmapped
            .retain(|w| w.toplevel().is_some_and(|t| t.wl_surface() != surface));
        let window = self
            .core
            .stack
            .iter()
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
            .cloned();
        if let Some(window) = window {
            self.core.stack.remove(&window);
            self.core.space.unmap_elem(&window);
            self.update_focus();
        }
        self.queue_redraw();
    }

    /// Raises the top of the kiosk stack and gives it keyboard and pointer focus.
    pub(crate) fn update_focus(&mut self) {
        self.core.stack.retain_alive(|w| w.alive());
        let layers = self.core.layers();
        let top = layers.base.clone();
        let windows: Vec<_> = self.core.stack.iter().cloned().collect();
        for window in &windows {
            let is_top = Some(window) == top.as_ref();
            if let Some(toplevel) = window.toplevel() {
                self.core.configure_fullscreen(toplevel, is_top);
                toplevel.send_pending_configure();
            } else if let Some(x11) = window.x11() {
                self.core.configure_x11_fullscreen(&x11.x11);
                self.core.activate_x11(x11, is_top);
            }
        }
        if let Some(top) = &top {
            self.core.space.raise_element(top, true);
        }
        for overlay in &layers.overlays {
            self.core.space.raise_element(overlay, false);
        }
        self.sync_x11_focus(&layers);
        let focus = layers.keyboard.and_then(|w| w.root_surface());
        if let Some(keyboard) = self.core.seat.get_keyboard() {
            keyboard.set_focus(self, focus, SERIAL_COUNTER.next_serial());
        }
        let time = self.core.now_ms();
        self.refresh_pointer_focus(time);
        self.queue_redraw();
    }

    /// Applies a new output size to every window.
    pub(crate) fn reconfigure_windows(&mut self) {
        let top = self
            .core
            .layers()
            .base
            .as_ref()
            .and_then(WindowElement::wayland)
            .cloned();
        let windows: Vec<_> = self
            .core
            .stack
            .iter()
            .filter_map(WindowElement::wayland)
            .chain(self.core.unmapped.iter())
            .cloned()
            .collect();
        for window in windows {
            if let Some(toplevel) = window.toplevel() {
                self.core
                    .configure_fullscreen(toplevel, Some(&window) == top.as_ref());
                if toplevel.is_initial_configure_sent() {
                    toplevel.send_pending_configure();
                }
            }
        }
        self.reconfigure_x11_windows();
        // Dialogs go back to the middle and popups back inside the new output.
        let mapped: Vec<_> = self.core.stack.iter().cloned().collect();
        for window in &mapped {
            self.place_window(window);
        }
        self.reposition_popups();
    }
}

fn app_id(toplevel: &ToplevelSurface) -> Option<String> {
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |states| {
        states
            .data_map
            .get::<smithay::wayland::shell::xdg::XdgToplevelSurfaceData>()
            .and_then(|data| data.lock().ok().and_then(|d| d.app_id.clone()))
    })
}

/// The size of a toplevel that cannot be resized: its minimum and maximum sizes are the same.
fn fixed_size(toplevel: &ToplevelSurface) -> Option<Size<i32, Logical>> {
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |states| {
        let mut cached = states.cached_state.get::<SurfaceCachedState>();
        let current = cached.current();
        let (min, max) = (current.min_size, current.max_size);
        (min == max && min.w > 0 && min.h > 0).then_some(min)
    })
}

/// The mode a Wayland game emulates: it draws a smaller picture and stretches it to the whole
/// window with `wp_viewporter` (SDL2 does so for fullscreen at a lower resolution), the source
/// rectangle of another shape than the destination. The picture's size, so that it is scaled as
/// `[video] scaling` says (fitted, not stretched, by default), as Xwayland's emulated modes are;
/// `None` for a window that shows its pixels in their own shape.
pub(crate) fn emulated_mode(toplevel: &ToplevelSurface) -> Option<Size<i32, Logical>> {
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |states| {
        let mut cached = states.cached_state.get::<ViewportCachedState>();
        let viewport = cached.current();
        let (src, dst) = (viewport.src?, viewport.dst?);
        let (w, h) = (src.size.w, src.size.h);
        let (dw, dh) = (f64::from(dst.w), f64::from(dst.h));
        if w < 1.0 || h < 1.0 || dw < 1.0 || dh < 1.0 {
            return None;
        }
        // Another shape: the aspect ratios differ by more than a pixel's rounding.
        let stretched = (w * dh - h * dw).abs() > (w + h).max(dw + dh);
        stretched.then(|| Size::from((w.round() as i32, h.round() as i32)))
    })
}

/// Whether the toplevel keeps its own size: it cannot be resized, or drew at another size.
pub(crate) fn keeps_own_size(toplevel: &ToplevelSurface) -> bool {
    fixed_size(toplevel).is_some() || size_choice(toplevel) == SizeChoice::KeepsOwn
}

/// Whether the toplevel's pending state shows it as the active window.
fn is_activated(toplevel: &ToplevelSurface) -> bool {
    toplevel.with_pending_state(|state| state.states.contains(xdg_toplevel::State::Activated))
}

/// What a toplevel showed about its size, beyond its minimum and maximum sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeChoice {
    /// Nothing yet.
    Undecided,
    /// Its first picture was clearly another size than the one suggested (see
    /// [`State::handle_toplevel_commit`]): it keeps its size and is scaled.
    KeepsOwn,
    /// It asked to be fullscreen: it gets the output's size, also on its first configure.
    AskedFullscreen,
}

/// [`SizeChoice`] in a surface's data map.
struct SizeChoiceData(AtomicU8);

fn size_choice(toplevel: &ToplevelSurface) -> SizeChoice {
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |states| {
        match states
            .data_map
            .get::<SizeChoiceData>()
            .map(|c| c.0.load(Ordering::Relaxed))
        {
            Some(1) => SizeChoice::KeepsOwn,
            Some(2) => SizeChoice::AskedFullscreen,
            _ => SizeChoice::Undecided,
        }
    })
}

pub(crate) fn set_size_choice(toplevel: &ToplevelSurface, choice: SizeChoice) {
    let value = match choice {
        SizeChoice::Undecided => 0,
        SizeChoice::KeepsOwn => 1,
        SizeChoice::AskedFullscreen => 2,
    };
    smithay::wayland::compositor::with_states(toplevel.wl_surface(), |states| {
        states
            .data_map
            .insert_if_missing_threadsafe(|| SizeChoiceData(AtomicU8::new(0)));
        if let Some(c) = states.data_map.get::<SizeChoiceData>() {
            c.0.store(value, Ordering::Relaxed);
        }
    });
}
