//! `punktfunk/1`, the native protocol: its wire formats and state machines, without I/O.
//!
//! GameStream stays the default for Moonlight clients. The native protocol is for what
//! GameStream cannot do: frames of several megabytes protected as one FEC block, authenticated
//! media and input, a mode change without reconnecting, and latency measured against
//! synchronised clocks. It has two planes:
//!
//! - **Control**: one QUIC connection (ALPN `pkf1`) with one bidirectional stream of
//!   length-prefixed [`control`] messages; [`input`] events travel as QUIC datagrams on the same
//!   connection. QUIC itself and its certificates are the caller's business.
//! - **Data**: UDP datagrams with a fixed [`header`], each shard sealed with AES-128-GCM
//!   ([`crypto`]) under the key the host announces in `Welcome`, frames protected by a GF(2^16)
//!   Reed-Solomon code ([`fec`]). [`FrameSealer`] cuts a frame into datagrams; [`Reassembler`]
//!   puts frames back together, in order, and reports the ones it gives up.
//!
//! As in the rest of the crate, time and randomness come from the caller: keys and salts are
//! passed in, `now` is an argument, deadlines are returned.
//!
//! # The datagram header
//!
//! Every data-plane datagram is `header (40 bytes) ‖ AES-GCM ciphertext of one shard ‖ tag (16
//! bytes)`. The header travels in the clear and is the associated data of the seal. All integers
//! are little-endian.
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0 | 1 | magic | the [`Plane`]: `0x30` video, `0x31` audio, `0x32` probe (synthetic stream) |
//! | 1 | 1 | version | 1 |
//! | 2 | 1 | fec | [`FecScheme`]: 0 none, 1 Leopard GF(2^16) (`reed-solomon-simd`) |
//! | 3 | 1 | flags | `0x01` start of frame (data shard 0), `0x02` end of frame (last data shard), `0x04` keyframe, `0x08` recovery shard; other bits sent as 0 and ignored |
//! | 4 | 8 | sequence | datagram counter of this plane and direction, from 0; the nonce counter |
//! | 12 | 8 | pts | presentation time in ns on the host's `CLOCK_MONOTONIC` |
//! | 20 | 4 | frame index | grows by one per frame; a missing index reads as a lost frame |
//! | 24 | 4 | frame bytes | length of the frame |
//! | 28 | 2 | data shards | `max(1, ceil(frame bytes / shard bytes))` |
//! | 30 | 2 | recovery shards | 0 without FEC; otherwise a count the code supports beside the data shards |
//! | 32 | 2 | shard index | index among the data shards, or among the recovery shards with flag `0x08` |
//! | 34 | 2 | shard bytes | length of every shard of the frame; even, at least 2 |
//! | 36 | 4 | encode time | µs the host's encoder took over the frame (video), 0 when not said; a receiver that has no use for it ignores it |
//!
//! One frame is one FEC block: GF(2^16) allows 65 535 shards, so a 4 MB keyframe (about 2 840
//! shards of 1408 bytes) keeps one loss budget. Recovery shards number
//! `ceil(data × percent / 100)`, at least 2 ([`fec::recovery_count`]); once the link's loss
//! rate is known, at least what a frame of that many shards needs to be lost under once in
//! 10 000 frames ([`fec::Protection`]). The receiver reads the count from the header. The
//! sender picks the smallest even shard size that needs no more shards than the largest payload
//! allowed, so padding is under two bytes per shard and all datagrams of a frame are equally
//! long; with the default 1408-byte payload a datagram is 1464 bytes, inside the 1472-byte UDP
//! payload of a 1500-byte IPv4 MTU.
//!
//! The nonce is `salt (4) ‖ sequence (8, LE)`, with the salt's last byte XORed with the plane's
//! magic so the planes sharing a key never share a nonce. The receiver keeps a replay window of
//! [`crypto::REPLAY_WINDOW`] sequence numbers and moves it only after a tag verified.
//!
//! # The control stream
//!
//! ```text
//! u16 LE length ‖ message (length bytes) ‖ u16 LE length ‖ message ‖ ...
//! message = u8 type ‖ fields (little-endian; strings and byte strings as u16 LE length ‖ bytes)
//! ```
//!
//! A length of 0 or above the decoder's limit ends the stream with an error. A message type the
//! decoder does not know is skipped ([`control::Message::Unknown`]); bytes after the fields it
//! knows are ignored; fields added later are appended and read as their default when absent.
//! The handshake is `Hello → Welcome → Start`; [`control`] lists every message.
//! Pairing binds a PIN to both certificates with SPAKE2 ([`pairing`]).

pub mod control;
pub mod crypto;
pub mod fec;
pub mod header;
pub mod input;
pub mod pairing;
pub mod reassembly;
pub mod send;

#[cfg(test)]
mod tests;

pub use crypto::{DataKey, Opener, Sealer};
pub use fec::Protection;
pub use header::{FecScheme, FrameLayout, Header, Plane, Shard, HEADER_LEN};
pub use reassembly::{DropReason, Event, Reassembler, ReassemblyConfig, ReassemblyStats};
pub use send::{Datagrams, FrameInfo, FrameSealer, SealedFrame, DEFAULT_SHARD_PAYLOAD};

/// The protocol's name, as announced in discovery (`proto=punktfunk/1`).
pub const PROTOCOL_NAME: &str = "punktfunk/1";
/// The ALPN of the control connection.
pub const ALPN: &[u8] = b"pkf1";
