//! Frame pacing: at most one render per tick of a clock running at the mode's refresh rate, only
//! when something changed, and frame callbacks timed so that clients draw just before a tick.
//!
//! A display's vblank is replaced by the clock's ticks (`epoch + k * interval`): a render happens
//! as soon as something changed, unless the tick's slot (from one tick to the next) already had
//! one, in which case it waits for the next tick. Frame callbacks do not go out with the render
//! but a little before the next tick: as long before it as clients recently took from a frame
//! callback to their next commit, plus a margin. A client that draws on its frame callback then
//! commits just before the tick, and its frame is rendered (and sent to the encoder) at once
//! instead of waiting for most of an interval. A client that takes longer, or one that commits
//! late, is rendered when its commit arrives; the measured time then grows, and its next frame
//! callback comes earlier.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smithay::backend::renderer::element::default_primary_scanout_output_compare;
use smithay::desktop::utils::send_frames_surface_tree;
use smithay::desktop::utils::{
    surface_primary_scanout_output, update_surface_primary_scanout_output,
};
use smithay::input::pointer::CursorImageStatus;
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::calloop::{Interest, Mode, PostAction};
use tracing::{debug, error, trace, warn};

use crate::backend::{ClientReads, RenderOutcome, Scene};
use crate::state::State;

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

/// What frame callbacks leave for scheduling jitter: they go out this long (plus the clients'
/// recent drawing time) before the tick their frame is meant for.
const CALLBACK_MARGIN: Duration = Duration::from_micros(1_000);

/// How many recent drawing times (frame callback to commit) the lead of frame callbacks is the
/// maximum of: about a quarter second at 60 Hz, so a one-off slow frame soon stops counting.
const DRAW_TIME_SAMPLES: usize = 16;

/// The recent times clients took from a frame callback to their next commit.
#[derive(Debug, Default)]
pub(crate) struct DrawTimes {
    samples: [Duration; DRAW_TIME_SAMPLES],
    len: usize,
    next: usize,
}

impl DrawTimes {
    /// Records one drawing time, capped at `cap` (a frame interval: longer ones all mean "send
    /// callbacks at once").
    pub(crate) fn record(&mut self, took: Duration, cap: Duration) {
        self.samples[self.next] = took.min(cap);
        self.next = (self.next + 1) % DRAW_TIME_SAMPLES;
        self.len = (self.len + 1).min(DRAW_TIME_SAMPLES);
    }

    /// How long before the tick frame callbacks go out: the longest recent drawing time plus
    /// [`CALLBACK_MARGIN`], at most `interval`. Without a measurement yet, a whole interval
    /// (callbacks right after the render).
    pub(crate) fn lead(&self, interval: Duration) -> Duration {
        let longest = self.samples[..self.len].iter().max();
        longest.map_or(interval, |d| (*d + CALLBACK_MARGIN).min(interval))
    }
}

impl State {
    /// Asks for a render: now, or at the next tick when this tick's slot already had one. Cheap
    /// to call repeatedly.
    pub(crate) fn queue_redraw(&mut self) {
        if self.core.redraw_timer.is_some() || !self.core.running {
            return;
        }
        let deadline = self.core.next_render(Instant::now());
        let token = self.core.loop_handle.insert_source(
            Timer::from_deadline(deadline),
            move |_, _, state| {
                let waited = deadline.elapsed();
                if state.core.mailbox.is_full() && waited < CONSUMER_WAIT {
                    return TimeoutAction::ToDuration(CONSUMER_POLL);
                }
                if !state.backend.has_free_buffer() {
                    // Every GPU buffer is held by frames not yet dropped: draw once one is
                    // given back (`buffer_returned`), or in a frame interval.
                    state.core.waiting_for_buffer = true;
                    return TimeoutAction::ToDuration(state.core.frame_interval());
                }
                state.core.waiting_for_buffer = false;
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

    /// A GPU frame was dropped and its buffer given back: a redraw waiting for one is scheduled
    /// again, for now or the next tick.
    pub(crate) fn buffer_returned(&mut self) {
        if !self.core.waiting_for_buffer {
            return;
        }
        self.core.waiting_for_buffer = false;
        if let Some(timer) = self.core.redraw_timer.take() {
            self.core.loop_handle.remove(timer);
        }
        self.queue_redraw();
    }

    /// Renders now, publishes the frame if anything changed and sends frame callbacks.
    pub(crate) fn render(&mut self) {
        if !self.backend.has_free_buffer() {
            self.queue_redraw();
            return;
        }
        let started = Instant::now();
        let scene = Scene {
            space: &self.core.space,
            output: &self.core.output,
            cursor: &mut self.core.input.cursor,
            pointer: self.core.pointer_location,
            scaling: self.core.scaling,
        };
        let rendered = self.backend.render(scene);
        // A failed render counts too: the redraw it asks for waits for the next tick instead of
        // failing again at once, over and over.
        self.core.last_render = Some(started);
        let outcome = match rendered {
            Ok(outcome) => outcome,
            Err(err) => {
                self.render_failed(&err);
                return;
            }
        };
        let RenderOutcome {
            damage,
            states,
            direct,
            reads,
        } = outcome;
        if let Some(reads) = reads {
            self.release_after_render(reads);
        }

        if let Some(damage) = damage {
            let composited = Instant::now();
            let seq = self.core.frame_seq;
            match self.backend.frame(damage, seq, direct) {
                Ok(mut frame) => {
                    self.core.frame_seq += 1;
                    let copied = Instant::now();
                    frame.render_time = copied - started;
                    trace!(seq, composite = ?(composited - started), copy = ?(copied - composited), "frame rendered");
                    self.core.mailbox.publish(frame);
                    let lead = self.core.draw_times.lead(self.core.frame_interval());
                    self.core.render_stats.record(
                        composited - started,
                        copied - composited,
                        lead,
                        copied,
                    );
                    self.core.render_failures = 0;
                }
                Err(err) => {
                    self.render_failed(&err);
                    return;
                }
            }
        }

        let output = &self.core.output;
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
        }
        self.send_presentation_feedback();
        self.schedule_frame_callbacks(started);
        if let Err(err) = self.core.display_handle.flush_clients() {
            trace!(?err, "flushing clients");
        }
    }

    /// Keeps the client dmabufs a render read until the GPU has finished it, then lets them go:
    /// Smithay sends `wl_buffer.release` and signals the explicit release point when the last
    /// reference to a buffer goes, which for a buffer a commit replaced is this one. The wait is
    /// the render's fence in the event loop; without a fence to wait on (a driver without
    /// native fences), the render is waited for here.
    pub(crate) fn release_after_render(&mut self, reads: ClientReads) {
        let ClientReads { buffers, sync } = reads;
        if sync.is_reached() {
            return;
        }
        if let Some(fence) = sync.export() {
            let held = Rc::new(RefCell::new(Some(buffers)));
            let in_callback = held.clone();
            let source = Generic::new(fence, Interest::READ, Mode::OneShot);
            let inserted = self
                .core
                .loop_handle
                .insert_source(source, move |_, _, state| {
                    drop(in_callback.borrow_mut().take());
                    if let Err(err) = state.core.display_handle.flush_clients() {
                        trace!(?err, "flushing clients");
                    }
                    Ok(PostAction::Remove)
                });
            match inserted {
                Ok(_) => return,
                Err(err) => {
                    debug!(?err.error, "cannot wait for a render's fence in the event loop")
                }
            }
        }
        if let Err(err) = sync.wait() {
            debug!(
                ?err,
                "cannot wait for a render before giving its client buffers back"
            );
        }
    }

    /// After a failed render or read-back (a GPU reset, a lost device): nothing is published,
    /// the target counts as garbage, and a render is asked for again, which draws and damages
    /// everything, so the next frame is whole under the same sequence number. The first
    /// failure in a row is a warning, later ones are debug lines.
    fn render_failed(&mut self, err: &str) {
        if self.core.render_failures == 0 {
            warn!(%err, "render failed; drawing everything again at the next tick");
        } else {
            debug!(%err, failures = self.core.render_failures + 1, "render failed again");
        }
        self.core.render_failures = self.core.render_failures.saturating_add(1);
        self.backend.invalidate();
        self.queue_redraw();
    }

    /// Sends the frame callbacks for the render at `rendered`, timed for the next tick (see the
    /// module documentation). A timer still pending from an earlier render covers this one too.
    fn schedule_frame_callbacks(&mut self, rendered: Instant) {
        if self.core.callback_timer.is_some() {
            return;
        }
        let interval = self.core.frame_interval();
        let next_render = self.core.next_render(rendered);
        let at = next_render
            .checked_sub(self.core.draw_times.lead(interval))
            .unwrap_or(rendered);
        if at <= Instant::now() {
            self.send_frame_callbacks();
            return;
        }
        let token = self
            .core
            .loop_handle
            .insert_source(Timer::from_deadline(at), |_, _, state| {
                state.core.callback_timer = None;
                // A commit since the render waits for its own render, which schedules the
                // callbacks anew: sending them now would let a client draw again before the
                // frame it just committed was shown, and that frame would never be.
                if state.core.redraw_timer.is_some() {
                    return TimeoutAction::Drop;
                }
                state.send_frame_callbacks();
                if let Err(err) = state.core.display_handle.flush_clients() {
                    trace!(?err, "flushing clients");
                }
                TimeoutAction::Drop
            });
        match token {
            Ok(token) => self.core.callback_timer = Some(token),
            Err(err) => {
                error!(?err, "cannot schedule frame callbacks");
                self.send_frame_callbacks();
            }
        }
    }

    /// Sends frame callbacks to the surfaces on the output (and, throttled, to hidden ones).
    fn send_frame_callbacks(&mut self) {
        let output = &self.core.output;
        let time = self.core.start_time.elapsed();
        for window in self.core.space.elements() {
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
        self.core.callbacks_sent_at = Some(Instant::now());
    }

    /// Notes a client's commit: the first one after frame callbacks went out measures how long
    /// clients take to draw.
    pub(crate) fn note_commit(&mut self) {
        if let Some(sent) = self.core.callbacks_sent_at.take() {
            let interval = self.core.frame_interval();
            self.core.draw_times.record(sent.elapsed(), interval);
        }
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
    fn record(&mut self, composite: Duration, copy: Duration, lead: Duration, now: Instant) {
        self.frames += 1;
        self.composite += composite;
        self.copy += copy;
        if now.duration_since(self.since) >= Duration::from_secs(1) {
            debug!(
                frames = self.frames,
                composite_avg = ?(self.composite / self.frames),
                copy_avg = ?(self.copy / self.frames),
                callback_lead = ?lead,
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
    /// When the next render may happen: see [`next_render`].
    pub(crate) fn next_render(&self, now: Instant) -> Instant {
        next_render(
            self.clock_epoch,
            self.frame_interval(),
            self.last_render,
            now,
        )
    }
}

/// When a render asked for at `now` happens: at `now` (or half an interval after the last render,
/// whichever is later) when the tick slot that time falls in (`epoch + k * interval` up to the
/// next tick) had no render yet, else at the next tick. So there is at most one render per slot,
/// renders are never closer than half an interval, and a change is rendered at once when it can.
fn next_render(
    epoch: Instant,
    interval: Duration,
    last_render: Option<Instant>,
    now: Instant,
) -> Instant {
    let earliest = match last_render {
        Some(last) => now.max(last + interval / 2),
        None => now,
    };
    let interval_ns = interval.as_nanos().max(1);
    let slot = earliest.saturating_duration_since(epoch).as_nanos() / interval_ns;
    let slot_start = epoch + Duration::from_nanos((slot * interval_ns) as u64);
    match last_render {
        Some(last) if last >= slot_start => slot_start + interval,
        _ => earliest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn renders_at_once_in_a_free_slot() {
        let epoch = Instant::now();
        let interval = 16 * MS;
        // Nothing rendered yet: at once.
        assert_eq!(next_render(epoch, interval, None, epoch), epoch);
        assert_eq!(
            next_render(epoch, interval, None, epoch + 5 * MS),
            epoch + 5 * MS
        );
        // Rendered early in the slot at 16 ms; a commit just after the tick at 32 ms (late for
        // it) is rendered at once, in the slot at 32 ms.
        let last = Some(epoch + 17 * MS);
        assert_eq!(
            next_render(epoch, interval, last, epoch + 33 * MS),
            epoch + 33 * MS
        );
        // Long idle: at once.
        assert_eq!(
            next_render(epoch, interval, last, epoch + 100 * MS),
            epoch + 100 * MS
        );
    }

    #[test]
    fn at_most_one_render_per_slot() {
        let epoch = Instant::now();
        let interval = 16 * MS;
        // Rendered in the slot at 16 ms; a commit in the same slot waits for the tick at 32 ms.
        let last = Some(epoch + 17 * MS);
        assert_eq!(
            next_render(epoch, interval, last, epoch + 18 * MS),
            epoch + 32 * MS
        );
        assert_eq!(
            next_render(epoch, interval, last, epoch + 31 * MS),
            epoch + 32 * MS
        );
        // Rendered late in the slot at 16 ms: the next render is at least half an interval
        // later, in the following slot, which is free.
        let last = Some(epoch + 30 * MS);
        assert_eq!(
            next_render(epoch, interval, last, epoch + 33 * MS),
            epoch + 38 * MS
        );
    }

    #[test]
    fn frame_callbacks_lead_by_the_longest_recent_drawing_time() {
        let interval = 16 * MS;
        let mut times = DrawTimes::default();
        // Nothing measured: callbacks right after the render.
        assert_eq!(times.lead(interval), interval);
        times.record(3 * MS, interval);
        times.record(5 * MS, interval);
        times.record(2 * MS, interval);
        assert_eq!(times.lead(interval), 5 * MS + CALLBACK_MARGIN);
        // A client slower than a frame: callbacks at once.
        times.record(40 * MS, interval);
        assert_eq!(times.lead(interval), interval);
        // The slow frame is forgotten after DRAW_TIME_SAMPLES more.
        for _ in 0..DRAW_TIME_SAMPLES {
            times.record(MS, interval);
        }
        assert_eq!(times.lead(interval), MS + CALLBACK_MARGIN);
    }
}
