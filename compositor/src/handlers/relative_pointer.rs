//! zwp_relative_pointer_manager_v1: relative motion for games and other pointer-locking apps.

use smithay::delegate_relative_pointer;

use crate::state::State;

delegate_relative_pointer!(State);
