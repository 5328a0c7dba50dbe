//! The messages of the control stream, and their framing.
//!
//! The control stream is one bidirectional QUIC stream. It carries frames of
//!
//! ```text
//! u16 LE length ‖ u8 type ‖ fields
//! ```
//!
//! where `length` counts the type byte and the fields, and is between 1 and
//! [`MAX_MESSAGE_LEN`]. Fields are little-endian integers; a `bool` is one byte, 0 or 1; a string
//! is `u16 LE length ‖ UTF-8` and a byte string `u16 LE length ‖ bytes`, each with a bound of its
//! own. [`Message::encode`] writes one frame; [`MessageDecoder`] takes the stream's bytes as they
//! come and hands out whole messages.
//!
//! # Forward compatibility
//!
//! - A message type the decoder does not know is skipped: it becomes [`Message::Unknown`].
//! - Bytes after the fields a decoder knows are ignored, so a later version appends fields at
//!   the end of a message.
//! - Fields documented as *optional* may be missing at the end of a message (a sender that
//!   predates them); they read as their default. Fields added later are all optional.
//!
//! # Messages
//!
//! | type | message | from |
//! |-----:|---------|------|
//! | `0x01` | [`Hello`] | client: first message, what it wants and can decode |
//! | `0x02` | [`Welcome`] | host: what it will send, and the data-plane key |
//! | `0x03` | [`Message::Start`] | client: the stream begins (with a keyframe) |
//! | `0x04` | [`Message::Close`] | either: the session ends, with a [`CloseCode`] |
//! | `0x10` | [`Message::Reconfigure`] | client: change the mode mid-stream |
//! | `0x11` | [`Message::Reconfigured`] | host: whether and how it changed |
//! | `0x12` | [`Message::RequestKeyframe`] | client |
//! | `0x13` | [`Message::LossReport`] | client: loss of the last interval |
//! | `0x14` | [`Message::SetBitrate`] | client |
//! | `0x15` | [`Message::BitrateChanged`] | host |
//! | `0x16` | [`Message::ClockProbe`] | client: NTP-style clock probe |
//! | `0x17` | [`Message::ClockEcho`] | host: the probe's answer |
//! | `0x18` | [`Message::Rumble`] | host: a game's rumble on one of the client's pads |
//! | `0x20` | [`Message::ListApps`] | client |
//! | `0x21` | [`Message::Apps`] | host |
//! | `0x30` | [`Message::PairRequest`] | client: SPAKE2 message A |
//! | `0x31` | [`Message::PairChallenge`] | host: SPAKE2 message B and the host's confirmation |
//! | `0x32` | [`Message::PairProof`] | client: the client's confirmation |
//! | `0x33` | [`Message::PairResult`] | host |

use thiserror::Error;

/// Largest message (type and fields) either side sends or accepts.
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;
/// Longest name (client, app, pairing device) in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest close reason in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Longest byte string (SPAKE2 messages, confirmations).
pub const MAX_BLOB_LEN: usize = 1024;

/// The type bytes.
pub mod kind {
    /// [`Hello`](super::Hello).
    pub const HELLO: u8 = 0x01;
    /// [`Welcome`](super::Welcome).
    pub const WELCOME: u8 = 0x02;
    /// `Start`.
    pub const START: u8 = 0x03;
    /// `Close`.
    pub const CLOSE: u8 = 0x04;
    /// `Reconfigure`.
    pub const RECONFIGURE: u8 = 0x10;
    /// `Reconfigured`.
    pub const RECONFIGURED: u8 = 0x11;
    /// `RequestKeyframe`.
    pub const REQUEST_KEYFRAME: u8 = 0x12;
    /// `LossReport`.
    pub const LOSS_REPORT: u8 = 0x13;
    /// `SetBitrate`.
    pub const SET_BITRATE: u8 = 0x14;
    /// `BitrateChanged`.
    pub const BITRATE_CHANGED: u8 = 0x15;
    /// `ClockProbe`.
    pub const CLOCK_PROBE: u8 = 0x16;
    /// `ClockEcho`.
    pub const CLOCK_ECHO: u8 = 0x17;
    /// `Rumble`.
    pub const RUMBLE: u8 = 0x18;
    /// `ListApps`.
    pub const LIST_APPS: u8 = 0x20;
    /// `Apps`.
    pub const APPS: u8 = 0x21;
    /// `PairRequest`.
    pub const PAIR_REQUEST: u8 = 0x30;
    /// `PairChallenge`.
    pub const PAIR_CHALLENGE: u8 = 0x31;
    /// `PairProof`.
    pub const PAIR_PROOF: u8 = 0x32;
    /// `PairResult`.
    pub const PAIR_RESULT: u8 = 0x33;
}

/// Errors of the control codec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// A frame of length 0 (no type byte). Ends the stream.
    #[error("empty control message")]
    Empty,
    /// A frame longer than the limit. Ends the stream.
    #[error("control message of {len} bytes exceeds {max}")]
    TooLong {
        /// Length announced or needed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message ended inside a field it needs.
    #[error("message {kind:#04x} truncated")]
    Truncated {
        /// Message type.
        kind: u8,
    },
    /// A string or byte string over its bound.
    #[error("field of {len} bytes in message {kind:#04x} exceeds {max}")]
    FieldTooLong {
        /// Message type.
        kind: u8,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A string that is not UTF-8.
    #[error("string in message {kind:#04x} is not utf-8")]
    Utf8 {
        /// Message type.
        kind: u8,
    },
    /// A field with a value outside its range.
    #[error("invalid {field} {value} in message {kind:#04x}")]
    InvalidValue {
        /// Message type.
        kind: u8,
        /// Which field.
        field: &'static str,
        /// The value.
        value: u64,
    },
}

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// The client's first message.
    Hello(Hello),
    /// The host's answer.
    Welcome(Welcome),
    /// The client is ready: the host starts the stream with a keyframe.
    Start {
        /// The client's data-plane UDP port.
        client_udp_port: u16,
    },
    /// The session ends.
    Close {
        /// Why.
        code: CloseCode,
        /// *Optional* (default empty). Words for a person.
        reason: String,
    },
    /// Change the mode without reconnecting.
    Reconfigure {
        /// The mode the client wants.
        mode: Mode,
    },
    /// The answer to `Reconfigure`; the first frame of a new mode is a keyframe.
    Reconfigured {
        /// Whether the mode changed.
        accepted: bool,
        /// The mode now sent.
        mode: Mode,
    },
    /// Send a keyframe next.
    RequestKeyframe,
    /// The client's loss over its last report interval.
    LossReport {
        /// Datagrams lost per million.
        loss_ppm: u32,
        /// Frames reported lost.
        frames_lost: u32,
        /// *Optional* (default 0). Frames recovered by FEC.
        frames_recovered: u32,
    },
    /// The client asks for a bitrate.
    SetBitrate {
        /// kbit/s.
        kbps: u32,
    },
    /// The host's encoder now runs at this bitrate.
    BitrateChanged {
        /// kbit/s.
        kbps: u32,
        /// Why.
        reason: BitrateReason,
    },
    /// A clock probe: the client's send time.
    ClockProbe {
        /// Client clock at sending, ns.
        t1: u64,
    },
    /// The host's answer to a probe.
    ClockEcho {
        /// The probe's `t1`.
        t1: u64,
        /// Host clock at receiving the probe, ns.
        t2: u64,
        /// Host clock at sending the echo, ns.
        t3: u64,
    },
    /// A game plays rumble on pad `pad` (the index of the client's gamepad input): the two
    /// motors' strengths until the next message for the pad; both 0 stop it.
    Rumble {
        /// The pad, as the client numbers it in its gamepad input.
        pad: u8,
        /// The low-frequency (strong, left) motor, 0 to 65 535.
        low: u16,
        /// The high-frequency (weak, right) motor, 0 to 65 535.
        high: u16,
    },
    /// Ask for the host's apps.
    ListApps,
    /// The host's apps (`u16` count, then `u32` id and string name each).
    Apps {
        /// The apps.
        entries: Vec<AppEntry>,
    },
    /// Pairing, step 1: the client's name and SPAKE2 message.
    PairRequest {
        /// The client's name.
        name: String,
        /// SPAKE2 message A.
        spake_a: Vec<u8>,
    },
    /// Pairing, step 2: the host's SPAKE2 message and key confirmation.
    PairChallenge {
        /// SPAKE2 message B.
        spake_b: Vec<u8>,
        /// The host's confirmation.
        confirm: Vec<u8>,
    },
    /// Pairing, step 3: the client's key confirmation.
    PairProof {
        /// The client's confirmation.
        confirm: Vec<u8>,
    },
    /// Pairing, step 4: the outcome.
    PairResult {
        /// Whether the client is now paired.
        ok: bool,
    },
    /// A message type this version does not know; skipped.
    Unknown {
        /// Its type byte.
        kind: u8,
    },
}

impl Message {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => kind::HELLO,
            Message::Welcome(_) => kind::WELCOME,
            Message::Start { .. } => kind::START,
            Message::Close { .. } => kind::CLOSE,
            Message::Reconfigure { .. } => kind::RECONFIGURE,
            Message::Reconfigured { .. } => kind::RECONFIGURED,
            Message::RequestKeyframe => kind::REQUEST_KEYFRAME,
            Message::LossReport { .. } => kind::LOSS_REPORT,
            Message::SetBitrate { .. } => kind::SET_BITRATE,
            Message::BitrateChanged { .. } => kind::BITRATE_CHANGED,
            Message::ClockProbe { .. } => kind::CLOCK_PROBE,
            Message::ClockEcho { .. } => kind::CLOCK_ECHO,
            Message::Rumble { .. } => kind::RUMBLE,
            Message::ListApps => kind::LIST_APPS,
            Message::Apps { .. } => kind::APPS,
            Message::PairRequest { .. } => kind::PAIR_REQUEST,
            Message::PairChallenge { .. } => kind::PAIR_CHALLENGE,
            Message::PairProof { .. } => kind::PAIR_PROOF,
            Message::PairResult { .. } => kind::PAIR_RESULT,
            Message::Unknown { kind } => *kind,
        }
    }

    /// Appends the message's frame (length prefix included) to `out`.
    ///
    /// Fails, leaving `out` as it was, when a field is over its bound or the message over
    /// [`MAX_MESSAGE_LEN`]. An [`Unknown`](Message::Unknown) message is written as its bare type.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ControlError> {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        let mut w = Writer {
            out,
            kind: self.kind(),
        };
        let r = w.message(self);
        let len = out.len() - start - 2;
        let r = match r {
            Ok(()) if len > MAX_MESSAGE_LEN => Err(ControlError::TooLong {
                len,
                max: MAX_MESSAGE_LEN,
            }),
            r => r,
        };
        match r {
            Ok(()) => {
                // At most MAX_MESSAGE_LEN, checked above.
                out[start..start + 2].copy_from_slice(&(len as u16).to_le_bytes());
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Decodes one message body (type byte and fields, without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, ControlError> {
        let (&kind, fields) = body.split_first().ok_or(ControlError::Empty)?;
        if body.len() > MAX_MESSAGE_LEN {
            return Err(ControlError::TooLong {
                len: body.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut r = Reader { b: fields, kind };
        Ok(match kind {
            kind::HELLO => Message::Hello(Hello {
                mode: r.mode()?,
                bitrate_kbps: r.u32()?,
                client_name: r.string(MAX_NAME_LEN)?,
                app: r.string(MAX_NAME_LEN)?,
                codecs: Codecs(r.u8()?),
                video_caps: VideoCaps(r.u8()?),
                audio_channels: r.u8()?,
                max_shard_payload: r.u16()?,
                synthetic_kbps: r.optional(Reader::u32)?,
            }),
            kind::WELCOME => Message::Welcome(Welcome {
                mode: r.mode()?,
                codec: {
                    let b = r.u8()?;
                    Codec::from_wire(b).ok_or_else(|| r.invalid("codec", b.into()))?
                },
                bit_depth: r.u8()?,
                chroma: match r.u8()? {
                    0 => Chroma::Yuv420,
                    1 => Chroma::Yuv444,
                    b => return Err(r.invalid("chroma", b.into())),
                },
                colour: Colour {
                    primaries: r.u8()?,
                    transfer: r.u8()?,
                    matrix: r.u8()?,
                    full_range: r.bool()?,
                },
                fec_percent: r.u8()?,
                shard_payload: r.u16()?,
                audio: AudioFormat {
                    sample_rate: r.u32()?,
                    channels: r.u8()?,
                    frame_us: r.u32()?,
                },
                data_key: r.array()?,
                data_salt: r.array()?,
                udp_port: r.u16()?,
                host_caps: HostCaps(r.optional(Reader::u32)?),
            }),
            kind::START => Message::Start {
                client_udp_port: r.u16()?,
            },
            kind::CLOSE => Message::Close {
                code: CloseCode::from_wire(r.u16()?),
                reason: r.optional(|r| r.string(MAX_REASON_LEN))?,
            },
            kind::RECONFIGURE => Message::Reconfigure { mode: r.mode()? },
            kind::RECONFIGURED => Message::Reconfigured {
                accepted: r.bool()?,
                mode: r.mode()?,
            },
            kind::REQUEST_KEYFRAME => Message::RequestKeyframe,
            kind::LOSS_REPORT => Message::LossReport {
                loss_ppm: r.u32()?,
                frames_lost: r.u32()?,
                frames_recovered: r.optional(Reader::u32)?,
            },
            kind::SET_BITRATE => Message::SetBitrate { kbps: r.u32()? },
            kind::BITRATE_CHANGED => Message::BitrateChanged {
                kbps: r.u32()?,
                reason: BitrateReason::from_wire(r.u8()?),
            },
            kind::CLOCK_PROBE => Message::ClockProbe { t1: r.u64()? },
            kind::CLOCK_ECHO => Message::ClockEcho {
                t1: r.u64()?,
                t2: r.u64()?,
                t3: r.u64()?,
            },
            kind::RUMBLE => Message::Rumble {
                pad: r.u8()?,
                low: r.u16()?,
                high: r.u16()?,
            },
            kind::LIST_APPS => Message::ListApps,
            kind::APPS => {
                let n = r.u16()?;
                // Each entry takes at least 6 bytes; a count the body cannot hold is refused
                // before anything is reserved.
                if n as usize * 6 > r.b.len() {
                    return Err(ControlError::Truncated { kind });
                }
                let mut entries = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    entries.push(AppEntry {
                        id: r.u32()?,
                        name: r.string(MAX_NAME_LEN)?,
                    });
                }
                Message::Apps { entries }
            }
            kind::PAIR_REQUEST => Message::PairRequest {
                name: r.string(MAX_NAME_LEN)?,
                spake_a: r.blob()?,
            },
            kind::PAIR_CHALLENGE => Message::PairChallenge {
                spake_b: r.blob()?,
                confirm: r.blob()?,
            },
            kind::PAIR_PROOF => Message::PairProof { confirm: r.blob()? },
            kind::PAIR_RESULT => Message::PairResult { ok: r.bool()? },
            kind => Message::Unknown { kind },
        })
    }
}

/// Turns the bytes of the control stream into messages.
///
/// Feed it with [`handle_bytes`](Self::handle_bytes) as they arrive, in any pieces, and take
/// messages with [`poll_message`](Self::poll_message) until it returns `Ok(None)`. A frame of
/// length 0 or over the limit ends the stream: every later poll returns that error. A frame
/// whose body does not decode is consumed and its error returned; the stream stays in step.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    max_len: usize,
    failed: Option<ControlError>,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageDecoder {
    /// A decoder that accepts messages up to [`MAX_MESSAGE_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_MESSAGE_LEN)
    }

    /// A decoder that accepts messages up to `max_len` bytes (at most [`MAX_MESSAGE_LEN`]).
    pub fn with_max_len(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.min(MAX_MESSAGE_LEN),
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Drop what was consumed before growing.
        if self.start > 0 && (self.start == self.buf.len() || self.start >= 4096) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn poll_message(&mut self) -> Result<Option<Message>, ControlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.get(..2) else {
            return Ok(None);
        };
        let len = u16::from_le_bytes([prefix[0], prefix[1]]) as usize;
        if len == 0 || len > self.max_len {
            let e = if len == 0 {
                ControlError::Empty
            } else {
                ControlError::TooLong {
                    len,
                    max: self.max_len,
                }
            };
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            self.start = 0;
            return Err(e);
        }
        let Some(body) = pending.get(2..2 + len) else {
            return Ok(None);
        };
        let message = Message::decode(body);
        self.start += 2 + len;
        message.map(Some)
    }

    /// Bytes received but not yet handed out as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests;
mod types;
mod wire;

pub use types::*;
use wire::{Reader, Writer};
