//! wp_cursor_shape_manager_v1: clients name a cursor shape instead of drawing one; the seat
//! reports it as a named cursor, which `crate::cursor` draws.

use smithay::delegate_cursor_shape;
use smithay::wayland::tablet_manager::TabletSeatHandler;

use crate::state::State;

// Cursor shape devices can be made for tablet tools too; there is no tablet here, so tool
// images are ignored.
impl TabletSeatHandler for State {}

delegate_cursor_shape!(State);
