//! The punktfunk test pattern: a real Wayland client that tests and benchmarks use as a ruler.
//!
//! [`run`] connects to the compositor named by the environment (`WAYLAND_DISPLAY`, relative to
//! `XDG_RUNTIME_DIR`, or an absolute path), maps an xdg toplevel titled
//! "punktfunk test pattern" (app id `punktfunk-testpattern`) and draws a known picture into
//! wl_shm buffers at whatever size the compositor configures. A new frame is drawn and committed
//! on every `wl_surface.frame` callback, and the frame counter drawn in it advances by exactly
//! one per committed frame, starting at 0. Every input event the client receives is printed on
//! stdout as one JSON line, flushed at once.
//!
//! The picture and the JSON lines are specified in `docs/testpattern.md`; [`draw`] and
//! [`decode_counter`] are that specification as code, so end-to-end tests can compare what a
//! video stream shows with what the client drew.
//!
//! # Errors
//!
//! [`run`] fails when there is no compositor to connect to, when it lacks `wl_compositor`,
//! `wl_shm` or `xdg_wm_base`, when shared memory cannot be created, or when the connection breaks.
//! A compositor closing the toplevel is a clean exit, not an error.

use std::time::Duration;

mod client;
mod events;
mod pattern;
mod shm;

pub use pattern::{
    bar_index, decode_counter, draw, motion_band_top, motion_block_x, pixel, Painter, Region, BARS,
    BLACK, BYTES_PER_PIXEL, CELL, COUNTER_BITS, COUNTER_HEIGHT, MARKER, MARKER_SIZE,
    MOTION_BACKGROUND, MOTION_BLOCK_WIDTH, MOTION_STEP, WHITE,
};

/// How the test pattern runs. `Options::default()` runs until the compositor closes the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Width to draw at when the compositor leaves the size to the client (configures 0);
    /// 1280 when `None`.
    pub width_hint: Option<u32>,
    /// Height to draw at when the compositor leaves the size to the client; 720 when `None`.
    pub height_hint: Option<u32>,
    /// Stop after committing this many frames (counter values `0..max_frames`).
    pub max_frames: Option<u64>,
    /// Stop once this much time has passed since start, whether or not frames are drawn.
    pub exit_after: Option<Duration>,
    /// Fill the motion band with grey noise that changes every frame (instead of the block), so
    /// that frames cost the encoder about as many bits as a game's.
    pub noise: bool,
    /// Add `"t_ns"`, the `CLOCK_MONOTONIC` time the line was written, to every event line.
    pub timestamps: bool,
    /// Print a `frame` line (`{"event":"frame","n":N}`) right after committing each frame, `n`
    /// being the counter drawn in it; with [`Options::timestamps`] it carries the commit time.
    pub frame_events: bool,
}

/// Runs the test pattern until the compositor closes it or a limit in `opts` is reached.
///
/// Prints the JSON event lines on stdout, ending with
/// `{"event":"exit","frames":N,"reason":"max_frames"|"exit_after"|"closed"}`.
/// Blocks the calling thread; it can run on any thread.
pub fn run(opts: Options) -> anyhow::Result<()> {
    client::run(opts)
}
