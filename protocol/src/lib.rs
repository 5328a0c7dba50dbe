//! GameStream wire formats and state machines, without I/O.
//!
//! Everything here takes bytes (and, where time matters, a `now` passed in by the caller) and
//! returns bytes, typed events or deadlines. Nothing opens a socket, reads the clock, spawns a
//! thread or draws randomness on its own: callers pass random values in, so every exchange can be
//! replayed exactly in tests. The crate knows nothing of the compositor or of encoders.
//!
//! - [`nvhttp`]: the XML replies of the nvhttp API and its query strings.
//! - [`pairing`]: the five-stage PIN pairing and the host identity it proves.
//! - [`rtsp`]: RTSP requests and replies (plain and `rtspenc://` framed), DESCRIBE and ANNOUNCE.
//! - [`fec`]: the Reed-Solomon codes stock clients decode (Cauchy video, fixed 4+2 audio).
//! - [`video`]: cutting encoded frames into RTP datagrams with FEC and optional AES-GCM.
//! - [`audio`]: Opus packets into RTP with the 4+2 FEC and optional AES-CBC.
//! - [`control`]: the encrypted control-stream envelope and its message types.
//! - [`input`]: the input packets carried in the control stream, and the VK to evdev table.
//! - [`native`]: `punktfunk/1`, the native protocol: sealed data-plane datagrams with GF(2^16) FEC,
//!   frame reassembly, control messages and input events.
#![warn(missing_docs)]

pub mod audio;
pub mod control;
pub mod fec;
pub mod input;
pub mod native;
pub mod nvhttp;
pub mod pairing;
pub mod rtsp;
pub mod video;

#[cfg(test)]
mod test_util;
