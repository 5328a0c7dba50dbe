//! wp_presentation: after each render, every surface that is on the output gets "presented"
//! with the output's refresh interval, the frame's sequence number and the time of the refresh
//! tick its frame went to the frame mailbox in (CLOCK_MONOTONIC); surfaces that are not shown
//! get "discarded".
//!
//! There is at most one render per tick of a clock at the mode's refresh rate (see `render.rs`),
//! so the tick plays the part of a display's vblank: presentation times are whole refresh
//! intervals apart, and a client can predict the next one from the last time and the refresh, as
//! it would on a display.

use std::time::{Duration, Instant};

use smithay::delegate_presentation;
use smithay::desktop::utils::surface_primary_scanout_output;
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
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
        // The tick of the slot the render started in (it may end in the next one).
        let now = Instant::now();
        let time = tick_time(
            self.core.last_render.unwrap_or(now),
            self.core.clock_epoch,
            self.core.clock_epoch_mono,
            self.core.frame_interval(),
        );
        let refresh = Refresh::fixed(self.core.frame_interval());
        // The frame holding this content; a render without damage left the last frame valid.
        let seq = self.core.frame_seq.saturating_sub(1);
        for callback in presented {
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

/// The monotonic time of the last tick of the frame clock (`epoch + k * interval`) at or before
/// `at`, given the monotonic clock's reading `epoch_mono` at `epoch`.
fn tick_time(at: Instant, epoch: Instant, epoch_mono: Duration, interval: Duration) -> Duration {
    let since_epoch = at.saturating_duration_since(epoch).as_nanos();
    let interval_ns = interval.as_nanos().max(1);
    let ticks = since_epoch - since_epoch % interval_ns;
    epoch_mono + Duration::from_nanos(u64::try_from(ticks).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_times_are_refresh_ticks() {
        let epoch = Instant::now();
        let interval = Duration::from_micros(16_667);
        let mono = Duration::from_secs(100);
        // 40 ms after the epoch: the tick at 2 intervals.
        let at = epoch + Duration::from_millis(40);
        assert_eq!(tick_time(at, epoch, mono, interval), mono + 2 * interval);
        // Exactly on a tick: that tick.
        let tick = epoch + interval;
        assert_eq!(tick_time(tick, epoch, mono, interval), mono + interval);
        // A render that started 1 ms before the second tick belongs to the first tick, however
        // late the feedback is sent.
        let started = epoch + 2 * interval - Duration::from_millis(1);
        assert_eq!(tick_time(started, epoch, mono, interval), mono + interval);
        // Ticks are whole intervals apart.
        let a = tick_time(epoch + Duration::from_millis(500), epoch, mono, interval);
        let b = tick_time(epoch + Duration::from_millis(1234), epoch, mono, interval);
        assert_eq!((b - a).as_nanos() % interval.as_nanos(), 0);
    }
}
