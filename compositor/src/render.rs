//! Frame pacing: render on the ticks of a clock running at the mode's refresh rate, only when
//! something changed, then send frame callbacks so clients draw at that rate and no faster.

use std::time::{Duration, Instant};

use smithay::backend::renderer::element::default_primary_scanout_output_compare;
use smithay::desktop::utils::send_frames_surface_tree;
use smithay::desktop::utils::{
    surface_primary_scanout_output, update_surface_primary_scanout_output,
};
use smithay::input::pointer::CursorImageStatus;
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use tracing::{debug, error, trace};

use crate::backend::RenderOutcome;
use crate::cursor::Sprite;
use crate::state::State;
use crate::Rect;

/// Hidden windows still get a frame callback this often, so they don't stall completely.
const HIDDEN_FRAME_CALLBACK_THROTTLE: Duration = Duration::from_secs(1);

/// How long a render waits for the consumer to take the previous frame before replacing it.
///
/// The encoder is the output's real "display": while it has not taken the last frame, rendering
/// another (and sending frame callbacks, which makes clients draw the next one) would only
/// produce a frame that replaces an unseen one. Waiting instead paces clients at the encoder's
/// speed, so every frame a client draws reaches the stream. Without a consumer (no stream), the
/// output still renders at this slower rate so clients are not starved.
const CONSUMER_WAIT: Duration = Duration::from_millis(100);

/// How often a waiting render looks again whether the consumer took the frame.
const CONSUMER_POLL: Duration = Duration::from_millis(1);

impl State {
    /// Asks for a render at the next tick of the frame clock. Cheap to call repeatedly.
    pub(crate) fn queue_redraw(&mut self) {
        if self.core.redraw_timer.is_some() || !self.core.running {
            return;
        }
        let deadline = self.core.next_tick(Instant::now());
        let token = self.core.loop_handle.insert_source(
            Timer::from_deadline(deadline),
            move |_, _, state| {
                let waited = deadline.elapsed();
                if state.core.mailbox.is_full() && waited < CONSUMER_WAIT {
                    return TimeoutAction::ToDuration(CONSUMER_POLL);
                }
                state.core.redraw_timer = None;
                state.render();
                TimeoutAction::Drop
            },
        );
        match token {
            Ok(token) => self.core.redraw_timer = Some(token),
            Err(err) => error!(?err, "cannot schedule a redraw"),
        }
    }

    /// Renders now, publishes the frame if anything changed and sends frame callbacks.
    pub(crate) fn render(&mut self) {
        let started = Instant::now();
        // A client buffer can only be the frame when there is no cursor to draw over it.
        let cursor = &self.core.input.cursor;
        let allow_direct = cursor.sprite(self.core.pointer_location).is_none();
        let outcome = match self
            .backend
            .render(&self.core.space, &self.core.output, allow_direct)
        {
            Ok(outcome) => outcome,
            Err(err) => {
                error!(%err, "render failed");
                return;
            }
        };
        self.core.last_render = Some(started);
        let RenderOutcome {
            damage,
            states,
            direct,
        } = outcome;
        let (damage, sprite) = self.cursor_damage(damage);

        if let Some(damage) = damage {
            let composited = Instant::now();
            let seq = self.core.frame_seq;
            self.core.frame_seq += 1;
            let (w, h) = (self.core.mode.width, self.core.mode.height);
            let sprite_rect = sprite.as_ref().and_then(|s| s.rect(w, h));
            let mut frame = self.backend.frame_with(
                damage,
                seq,
                direct,
                sprite_rect,
                |pixels, stride, w, h| {
                    if let Some(sprite) = &sprite {
                        sprite.draw(pixels, stride, w, h);
                    }
                },
            );
            self.core.input.cursor.drawn = sprite;
            let copied = Instant::now();
            frame.render_time = copied - started;
            trace!(seq, composite = ?(composited - started), copy = ?(copied - composited), "frame rendered");
            self.core.mailbox.publish(frame);
            self.core
                .render_stats
                .record(composited - started, copied - composited, copied);
        }

        let output = &self.core.output;
        let time = self.core.start_time.elapsed();
        for window in self.core.space.elements() {
            window.with_surfaces(|surface, data| {
                update_surface_primary_scanout_output(
                    surface,
                    output,
                    data,
                    &states,
                    default_primary_scanout_output_compare,
                );
            });
            window.send_frame(
                output,
                time,
                Some(HIDDEN_FRAME_CALLBACK_THROTTLE),
                surface_primary_scanout_output,
            );
        }
        if let CursorImageStatus::Surface(surface) = &self.core.input.cursor.status {
            send_frames_surface_tree(surface, output, time, None, |_, _| Some(output.clone()));
        }
        self.send_presentation_feedback();
        if let Err(err) = self.core.display_handle.flush_clients() {
            trace!(?err, "flushing clients");
        }
    }

    /// The cursor to draw now, and the frame damage grown by its old and new rectangles when
    /// it moved or changed (`Some` even if the output itself did not change then).
    fn cursor_damage(&self, damage: Option<Vec<Rect>>) -> (Option<Vec<Rect>>, Option<Sprite>) {
        let cursor = &self.core.input.cursor;
        let sprite = cursor.sprite(self.core.pointer_location);
        if sprite == cursor.drawn {
            return (damage, sprite);
        }
        let (w, h) = (self.core.mode.width, self.core.mode.height);
        let mut damage = damage.unwrap_or_default();
        damage.extend(
            cursor
                .drawn
                .iter()
                .chain(sprite.iter())
                .filter_map(|s| s.rect(w, h)),
        );
        (Some(damage), sprite)
    }
}

/// Per-frame render costs, summed up and logged about once per second at debug level.
#[derive(Debug)]
pub(crate) struct RenderStats {
    frames: u32,
    composite: Duration,
    copy: Duration,
    since: Instant,
}

impl Default for RenderStats {
    fn default() -> Self {
        Self {
            frames: 0,
            composite: Duration::ZERO,
            copy: Duration::ZERO,
            since: Instant::now(),
        }
    }
}

impl RenderStats {
    fn record(&mut self, composite: Duration, copy: Duration, now: Instant) {
        self.frames += 1;
        self.composite += composite;
        self.copy += copy;
        if now.duration_since(self.since) >= Duration::from_secs(1) {
            debug!(
                frames = self.frames,
                composite_avg = ?(self.composite / self.frames),
                copy_avg = ?(self.copy / self.frames),
                "render stats"
            );
            *self = Self {
                since: now,
                ..Self::default()
            };
        }
    }
}

impl crate::state::Core {
    /// When the next render may happen: see [`next_tick`].
    pub(crate) fn next_tick(&self, now: Instant) -> Instant {
        next_tick(
            self.clock_epoch,
            self.frame_interval(),
            self.last_render,
            now,
        )
    }
}

/// The first tick of a frame clock (`epoch + k * interval`) at or after `now` that is at least
/// half an interval after the last render, so there is at most one render per tick even when
/// a render ran a little late.
fn next_tick(
    epoch: Instant,
    interval: Duration,
    last_render: Option<Instant>,
    now: Instant,
) -> Instant {
    let earliest = match last_render {
        Some(last) => now.max(last + interval / 2),
        None => now,
    };
    let since_epoch = earliest.saturating_duration_since(epoch);
    let interval_ns = interval.as_nanos().max(1);
    let ticks = since_epoch.as_nanos().div_ceil(interval_ns);
    epoch + Duration::from_nanos((ticks * interval_ns) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn renders_on_clock_ticks() {
        let epoch = Instant::now();
        let interval = 16 * MS;
        // Nothing rendered yet: the next tick at or after now.
        assert_eq!(next_tick(epoch, interval, None, epoch), epoch);
        assert_eq!(
            next_tick(epoch, interval, None, epoch + 5 * MS),
            epoch + 16 * MS
        );
        assert_eq!(
            next_tick(epoch, interval, None, epoch + 16 * MS),
            epoch + 16 * MS
        );
    }

    #[test]
    fn at_most_one_render_per_tick() {
        let epoch = Instant::now();
        let interval = 16 * MS;
        // Rendered a bit late for the tick at 16 ms; a commit right after waits for 32 ms.
        let last = Some(epoch + 17 * MS);
        assert_eq!(
            next_tick(epoch, interval, last, epoch + 18 * MS),
            epoch + 32 * MS
        );
        // Long idle: the next tick after now.
        assert_eq!(
            next_tick(epoch, interval, last, epoch + 100 * MS),
            epoch + 112 * MS
        );
    }
}
