//! zwp_idle_inhibit_manager_v1: a client showing video or a game asks that the host not go
//! idle. The compositor itself never blanks; it records the inhibiting surfaces so the host can
//! keep its machine awake (see [`crate::CompositorHandle::idle_inhibited`]).

use std::sync::atomic::Ordering;

use smithay::delegate_idle_inhibit;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::IsAlive;
use smithay::wayland::idle_inhibit::IdleInhibitHandler;
use tracing::debug;

use crate::state::State;

impl IdleInhibitHandler for State {
    fn inhibit(&mut self, surface: WlSurface) {
        self.core.idle_inhibitors.push(surface);
        self.update_idle_inhibited();
    }

    fn uninhibit(&mut self, surface: WlSurface) {
        if let Some(i) = self.core.idle_inhibitors.iter().position(|s| *s == surface) {
            self.core.idle_inhibitors.swap_remove(i);
        }
        self.update_idle_inhibited();
    }
}

delegate_idle_inhibit!(State);

impl State {
    /// Publishes whether a live surface inhibits idling.
    pub(crate) fn update_idle_inhibited(&mut self) {
        self.core.idle_inhibitors.retain(|s| s.alive());
        let inhibited = !self.core.idle_inhibitors.is_empty();
        if self.core.idle_inhibited.swap(inhibited, Ordering::Relaxed) != inhibited {
            debug!(inhibited, "idle inhibition changed");
        }
    }
}
