//! wl_seat with keyboard, pointer and touch.

use smithay::delegate_seat;
use smithay::input::pointer::CursorImageStatus;
use smithay::input::{Seat, SeatHandler, SeatState};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::Resource;
use smithay::wayland::selection::data_device::set_data_device_focus;
use smithay::wayland::selection::primary_selection::set_primary_focus;

use crate::state::State;

impl SeatHandler for State {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<Self> {
        &mut self.core.seat_state
    }

    fn focus_changed(&mut self, seat: &Seat<Self>, focused: Option<&WlSurface>) {
        // The focused client gets the clipboard and primary selection offers.
        let client =
            focused.and_then(|surface| self.core.display_handle.get_client(surface.id()).ok());
        set_data_device_focus(&self.core.display_handle, seat, client.clone());
        set_primary_focus(&self.core.display_handle, seat, client);
    }

    fn cursor_image(&mut self, _seat: &Seat<Self>, image: CursorImageStatus) {
        // Drawn above the windows by the next render (see `crate::cursor`).
        self.core.input.cursor.status = image;
        self.queue_redraw();
    }
}

delegate_seat!(State);
