//! zwp_primary_selection_device_manager_v1: the middle-click selection between clients. Like
//! the clipboard, offers go to the client with keyboard focus (see `handlers::seat`).

use smithay::delegate_primary_selection;
use smithay::wayland::selection::primary_selection::{
    PrimarySelectionHandler, PrimarySelectionState,
};

use crate::state::State;

impl PrimarySelectionHandler for State {
    fn primary_selection_state(&self) -> &PrimarySelectionState {
        &self.core.primary_selection_state
    }
}

delegate_primary_selection!(State);
