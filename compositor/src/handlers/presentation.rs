//! wp_presentation: after each render, every surface that is on the output gets "presented"
//! with the time its frame went to the frame mailbox (CLOCK_MONOTONIC), the output's refresh
//! interval and the frame's sequence number; surfaces that are not shown get "discarded".

use smithay::delegate_presentation;
use smithay::desktop::utils::surface_primary_scanout_output;
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::utils::{Clock, Monotonic};
use smithay::wayland::presentation::{
    PresentationFeedbackCachedState, PresentationFeedbackCallback, Refresh,
};

use crate::state::State;

delegate_presentation!(State);

impl State {
    /// Answers the presentation feedback of the content the last render showed. Called after
    /// the frame went to the mailbox and the surfaces' primary output was updated.
    pub(crate) fn send_presentation_feedback(&mut self) {
        let output = &self.core.output;
        let mut presented: Vec<PresentationFeedbackCallback> = Vec::new();
        let mut discarded: Vec<PresentationFeedbackCallback> = Vec::new();
        for window in self.core.space.elements() {
            window.with_surfaces(|surface, data| {
                let shown = surface_primary_scanout_output(surface, data).as_ref() == Some(output);
                let callbacks = std::mem::take(
                    &mut data
                        .cached_state
                        .get::<PresentationFeedbackCachedState>()
                        .current()
                        .callbacks,
                );
                if shown {
                    presented.extend(callbacks);
                } else {
                    discarded.extend(callbacks);
                }
            });
        }
        for callback in discarded {
            callback.discarded();
        }
        if presented.is_empty() {
            return;
        }
        let time = Clock::<Monotonic>::new().now();
        let refresh = Refresh::fixed(self.core.frame_interval());
        // The frame holding this content; a render without damage left the last frame valid.
        let seq = self.core.frame_seq.saturating_sub(1);
        for callback in presented {
            // Frames are rendered on the ticks of a clock at the mode's refresh rate, which is
            // what vsync means for a display.
            callback.presented(
                output,
                time,
                refresh,
                seq,
                wp_presentation_feedback::Kind::Vsync,
            );
        }
    }
}
