//! wp_cursor_shape_manager_v1: clients name a cursor shape instead of drawing one; the seat
//! reports it as a named cursor, which `crate::cursor` draws.

use smithay::delegate_cursor_shape;

use crate::state::State;

delegate_cursor_shape!(State);
