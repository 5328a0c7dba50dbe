//! zwp_pointer_constraints_v1: locked and confined pointers.
//!
//! A constraint becomes active while its surface has pointer focus and the pointer is inside
//! its region; [`crate::input`] then keeps a locked pointer still and a confined one inside.

use smithay::delegate_pointer_constraints;
use smithay::input::pointer::PointerHandle;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Logical, Point};
use smithay::wayland::pointer_constraints::{with_pointer_constraint, PointerConstraintsHandler};

use crate::state::State;

impl PointerConstraintsHandler for State {
    fn new_constraint(&mut self, _surface: &WlSurface, _pointer: &PointerHandle<Self>) {
        self.activate_pointer_constraint();
    }

    fn cursor_position_hint(
        &mut self,
        surface: &WlSurface,
        pointer: &PointerHandle<Self>,
        location: Point<f64, Logical>,
    ) {
        let active =
            with_pointer_constraint(surface, pointer, |c| c.is_some_and(|c| c.is_active()));
        if !active {
            return;
        }
        // The hint is surface-local; it only moves the drawn cursor, clients get no motion.
        let Some(under) = self.core.surface_under(self.core.pointer_location) else {
            return;
        };
        if &under.surface == surface {
            let target = self
                .core
                .clamp_to_output(under.input.to_output(under.origin + location));
            self.core.pointer_location = target;
            pointer.set_location(under.input.to_window(target));
            self.queue_redraw();
        }
    }
}

delegate_pointer_constraints!(State);
