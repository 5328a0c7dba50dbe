//! xdg_activation_v1: a client hands a token to the window it wants in front (its own, or one
//! it launched). Activation follows the kiosk policy: the window goes on top of the stack and
//! gets keyboard and pointer focus; its dialogs come back above it.

use std::time::Duration;

use smithay::delegate_xdg_activation;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::wayland::xdg_activation::{
    XdgActivationHandler, XdgActivationState, XdgActivationToken, XdgActivationTokenData,
};
use tracing::debug;

use crate::state::State;

/// Tokens older than this are refused, so a stale token cannot pull a window forward later.
const TOKEN_LIFETIME: Duration = Duration::from_secs(10);

impl XdgActivationHandler for State {
    fn activation_state(&mut self) -> &mut XdgActivationState {
        &mut self.core.xdg_activation_state
    }

    fn request_activation(
        &mut self,
        token: XdgActivationToken,
        token_data: XdgActivationTokenData,
        surface: WlSurface,
    ) {
        self.core.xdg_activation_state.remove_token(&token);
        self.core
            .xdg_activation_state
            .retain_tokens(|_, data| data.timestamp.elapsed() < TOKEN_LIFETIME);
        if token_data.timestamp.elapsed() >= TOKEN_LIFETIME {
            debug!("ignoring an activation with an expired token");
            return;
        }
        let window = self
            .core
            .stack
            .iter()
            .find(|w| w.root_surface().as_ref() == Some(&surface))
            .cloned();
        match window {
            Some(window) => {
                debug!("activating a window");
                // Its dialogs come along and stay above it.
                let dialogs: Vec<_> = self
                    .core
                    .stack
                    .iter()
                    .filter(|w| {
                        w.toplevel()
                            .and_then(|t| t.parent())
                            .is_some_and(|parent| Some(parent) == window.root_surface())
                    })
                    .cloned()
                    .collect();
                // The space draws in its own order: raise them there too, dialogs last.
                for w in std::iter::once(&window).chain(&dialogs) {
                    self.core.stack.push(w.clone());
                    self.core.space.raise_element(w, false);
                }
                self.update_focus();
            }
            // Not mapped (yet): it goes on top anyway when it maps.
            None => debug!("activation request for a surface that is not a mapped window"),
        }
    }
}

delegate_xdg_activation!(State);
