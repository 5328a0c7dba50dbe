//! The media and control plane: the only crate with sockets and encoders.
//!
//! It joins [`protocol`] (wire formats) and [`compositor`] (frames out, input in): frames are
//! converted and encoded on a per-stream thread, packetized with FEC (and encryption when the
//! client asked for it) and sent from the shared video port; audio goes the same way from the
//! audio port; the shared ENet control port delivers the client's input into the compositor and
//! its IDR requests to the encoder, and its loss reports to the stream's loss control
//! ([`loss`]), which sets the FEC percentage and the encoder bitrate frame by frame. No async
//! on the per-frame path.

pub mod audio;
pub mod control;
pub mod corpus;
pub mod encode;
pub mod gamepad;
pub mod input;
pub mod loss;
pub mod media;
pub mod native;
pub mod net;
pub mod pipeline;
pub mod send;
pub mod stream;

pub use stream::{EndReason, Media, Stream, StreamConfig, StreamStats};

/// A running stream as the session it carries sees it, whichever protocol carries it
/// (GameStream's [`Stream`], punktfunk/1's).
pub trait StreamHandle: Send {
    /// What the stream sends with at the moment, and its counters.
    fn stats(&self) -> StreamStats;
    /// Tells the client that its session ended (the host or its user stopped it).
    fn end_session(&self);
    /// Stops the stream's threads and waits for them.
    fn stop(self: Box<Self>);
}

/// `CLOCK_MONOTONIC` in nanoseconds: what `Instant` reads, as a number other processes (and a
/// client's clock probes) can compare.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the one timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
