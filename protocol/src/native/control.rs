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

/// A video mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mode {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Refresh rate in millihertz (59 940 for 59.94 Hz).
    pub refresh_mhz: u32,
}

/// Video codecs, as a bit set. Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Codecs(pub u8);

impl Codecs {
    /// H.264.
    pub const H264: Self = Self(0x01);
    /// HEVC.
    pub const HEVC: Self = Self(0x02);
    /// AV1.
    pub const AV1: Self = Self(0x04);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Codecs {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// What the client's decoder and display can show, as a bit set. Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VideoCaps(pub u8);

impl VideoCaps {
    /// 10-bit video.
    pub const TEN_BIT: Self = Self(0x01);
    /// HDR (PQ or HLG transfer).
    pub const HDR: Self = Self(0x02);
    /// 4:4:4 chroma.
    pub const YUV444: Self = Self(0x04);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for VideoCaps {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// What the host can do, as a bit set. Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HostCaps(pub u32);

impl HostCaps {
    /// Answers `Reconfigure`.
    pub const RECONFIGURE: Self = Self(0x01);
    /// Answers `ClockProbe`.
    pub const CLOCK_SYNC: Self = Self(0x02);
    /// Follows `SetBitrate`.
    pub const SET_BITRATE: Self = Self(0x04);
    /// Sends a synthetic stream when `Hello` asks for one.
    pub const SYNTHETIC: Self = Self(0x08);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for HostCaps {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The codec of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 (wire value 1).
    H264,
    /// HEVC (wire value 2).
    Hevc,
    /// AV1 (wire value 3).
    Av1,
}

impl Codec {
    fn wire(self) -> u8 {
        match self {
            Codec::H264 => 1,
            Codec::Hevc => 2,
            Codec::Av1 => 3,
        }
    }

    fn from_wire(b: u8) -> Option<Self> {
        match b {
            1 => Some(Codec::H264),
            2 => Some(Codec::Hevc),
            3 => Some(Codec::Av1),
            _ => None,
        }
    }
}

/// Chroma subsampling of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chroma {
    /// 4:2:0 (wire value 0).
    Yuv420,
    /// 4:4:4 (wire value 1).
    Yuv444,
}

/// Colour description of the stream, with ITU-T H.273 code points (as in the bitstream's VUI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour {
    /// Colour primaries (1 BT.709, 9 BT.2020).
    pub primaries: u8,
    /// Transfer characteristics (1 BT.709, 16 PQ, 18 HLG).
    pub transfer: u8,
    /// Matrix coefficients (1 BT.709, 9 BT.2020 non-constant luminance).
    pub matrix: u8,
    /// Full range (otherwise limited range).
    pub full_range: bool,
}

impl Colour {
    /// BT.709, limited range: the SDR default.
    pub const BT709: Self = Self {
        primaries: 1,
        transfer: 1,
        matrix: 1,
        full_range: false,
    };
    /// BT.2020 with the PQ transfer, limited range: HDR10.
    pub const BT2020_PQ: Self = Self {
        primaries: 9,
        transfer: 16,
        matrix: 9,
        full_range: false,
    };
}

/// The audio stream's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// Samples per second (48 000).
    pub sample_rate: u32,
    /// Channels (2, 6 or 8).
    pub channels: u8,
    /// Length of one audio packet in microseconds (5 000 for 5 ms).
    pub frame_us: u32,
}

/// Why the host's bitrate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitrateReason {
    /// The client asked (`SetBitrate`; wire value 0).
    Requested,
    /// The host reacted to loss or congestion (1).
    Congestion,
    /// The host's own limit or configuration (2).
    HostLimit,
    /// A reason this version does not know.
    Other(u8),
}

impl BitrateReason {
    fn wire(self) -> u8 {
        match self {
            BitrateReason::Requested => 0,
            BitrateReason::Congestion => 1,
            BitrateReason::HostLimit => 2,
            BitrateReason::Other(b) => b,
        }
    }

    fn from_wire(b: u8) -> Self {
        match b {
            0 => BitrateReason::Requested,
            1 => BitrateReason::Congestion,
            2 => BitrateReason::HostLimit,
            b => BitrateReason::Other(b),
        }
    }
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The user ended the stream; the app keeps running (wire value 0).
    Normal,
    /// The user quit: stop the app too (1).
    QuitStopApp,
    /// The app exited (2).
    AppExited,
    /// An error; the reason says which (3).
    Error,
    /// The client is not paired with the host (4).
    NotPaired,
    /// A code this version does not know.
    Other(u16),
}

impl CloseCode {
    fn wire(self) -> u16 {
        match self {
            CloseCode::Normal => 0,
            CloseCode::QuitStopApp => 1,
            CloseCode::AppExited => 2,
            CloseCode::Error => 3,
            CloseCode::NotPaired => 4,
            CloseCode::Other(c) => c,
        }
    }

    fn from_wire(c: u16) -> Self {
        match c {
            0 => CloseCode::Normal,
            1 => CloseCode::QuitStopApp,
            2 => CloseCode::AppExited,
            3 => CloseCode::Error,
            4 => CloseCode::NotPaired,
            c => CloseCode::Other(c),
        }
    }
}

/// One entry of the host's app list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppEntry {
    /// The app's id.
    pub id: u32,
    /// Its name.
    pub name: String,
}

/// The client's first message.
///
/// Wire order: mode (`u16` width, `u16` height, `u32` refresh in mHz), `u32` bitrate, string
/// client name, string app, `u8` codecs, `u8` video caps, `u8` audio channels, `u16` largest
/// shard payload, then optional `u32` synthetic rate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The mode the client wants.
    pub mode: Mode,
    /// The bitrate the client wants, in kbit/s.
    pub bitrate_kbps: u32,
    /// The client's name (for the host's session list).
    pub client_name: String,
    /// The app to launch; empty for the host's default app.
    pub app: String,
    /// The codecs the client decodes.
    pub codecs: Codecs,
    /// What the client's decoder and display can show.
    pub video_caps: VideoCaps,
    /// Audio channels the client wants (2, 6 or 8).
    pub audio_channels: u8,
    /// The largest shard payload the client accepts (its path MTU less 56 and the IP/UDP
    /// headers).
    pub max_shard_payload: u16,
    /// *Optional* (default 0). 0 streams the app; otherwise the host sends a synthetic stream of
    /// this many kbit/s for transport tests.
    pub synthetic_kbps: u32,
}

/// The host's answer to [`Hello`].
///
/// Wire order: mode, `u8` codec, `u8` bit depth, `u8` chroma, colour (`u8` primaries, `u8`
/// transfer, `u8` matrix, `bool` full range), `u8` FEC percent, `u16` shard payload, audio
/// (`u32` sample rate, `u8` channels, `u32` frame length in µs), 16 bytes data key, 4 bytes data
/// salt, `u16` UDP port, then optional `u32` host caps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Welcome {
    /// The mode the host will send.
    pub mode: Mode,
    /// The codec.
    pub codec: Codec,
    /// Bits per sample (8 or 10).
    pub bit_depth: u8,
    /// Chroma subsampling.
    pub chroma: Chroma,
    /// Colour description.
    pub colour: Colour,
    /// Recovery shards per 100 data shards at the start.
    pub fec_percent: u8,
    /// The largest shard payload the host will send.
    pub shard_payload: u16,
    /// The audio stream's format.
    pub audio: AudioFormat,
    /// The AES-128 key of the host's data-plane datagrams.
    pub data_key: [u8; 16],
    /// The nonce salt of the host's data-plane datagrams.
    pub data_salt: [u8; 4],
    /// The host's data-plane UDP port.
    pub udp_port: u16,
    /// *Optional* (default none). What the host can do.
    pub host_caps: HostCaps,
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

struct Reader<'a> {
    b: &'a [u8],
    kind: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        if self.b.len() < n {
            return Err(ControlError::Truncated { kind: self.kind });
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ControlError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, ControlError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ControlError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, ControlError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, ControlError> {
        self.array().map(u64::from_le_bytes)
    }

    fn bool(&mut self) -> Result<bool, ControlError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.invalid("bool", b.into())),
        }
    }

    fn mode(&mut self) -> Result<Mode, ControlError> {
        Ok(Mode {
            width: self.u16()?,
            height: self.u16()?,
            refresh_mhz: self.u32()?,
        })
    }

    fn bytes(&mut self, max: usize) -> Result<&'a [u8], ControlError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(ControlError::FieldTooLong {
                kind: self.kind,
                len,
                max,
            });
        }
        self.take(len)
    }

    fn blob(&mut self) -> Result<Vec<u8>, ControlError> {
        self.bytes(MAX_BLOB_LEN).map(<[u8]>::to_vec)
    }

    fn string(&mut self, max: usize) -> Result<String, ControlError> {
        let b = self.bytes(max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ControlError::Utf8 { kind: self.kind })
    }

    /// An optional trailing field: its default when the message ends before it.
    fn optional<T: Default>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        if self.b.is_empty() {
            Ok(T::default())
        } else {
            read(self)
        }
    }

    fn invalid(&self, field: &'static str, value: u64) -> ControlError {
        ControlError::InvalidValue {
            kind: self.kind,
            field,
            value,
        }
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    kind: u8,
}

impl Writer<'_> {
    fn message(&mut self, m: &Message) -> Result<(), ControlError> {
        self.u8(self.kind);
        match m {
            Message::Hello(h) => {
                self.mode(&h.mode);
                self.u32(h.bitrate_kbps);
                self.string(&h.client_name, MAX_NAME_LEN)?;
                self.string(&h.app, MAX_NAME_LEN)?;
                self.u8(h.codecs.0);
                self.u8(h.video_caps.0);
                self.u8(h.audio_channels);
                self.u16(h.max_shard_payload);
                self.u32(h.synthetic_kbps);
            }
            Message::Welcome(w) => {
                self.mode(&w.mode);
                self.u8(w.codec.wire());
                self.u8(w.bit_depth);
                self.u8(match w.chroma {
                    Chroma::Yuv420 => 0,
                    Chroma::Yuv444 => 1,
                });
                self.u8(w.colour.primaries);
                self.u8(w.colour.transfer);
                self.u8(w.colour.matrix);
                self.u8(w.colour.full_range.into());
                self.u8(w.fec_percent);
                self.u16(w.shard_payload);
                self.u32(w.audio.sample_rate);
                self.u8(w.audio.channels);
                self.u32(w.audio.frame_us);
                self.out.extend_from_slice(&w.data_key);
                self.out.extend_from_slice(&w.data_salt);
                self.u16(w.udp_port);
                self.u32(w.host_caps.0);
            }
            Message::Start { client_udp_port } => self.u16(*client_udp_port),
            Message::Close { code, reason } => {
                self.u16(code.wire());
                self.string(reason, MAX_REASON_LEN)?;
            }
            Message::Reconfigure { mode } => self.mode(mode),
            Message::Reconfigured { accepted, mode } => {
                self.u8((*accepted).into());
                self.mode(mode);
            }
            Message::RequestKeyframe | Message::ListApps | Message::Unknown { .. } => {}
            Message::LossReport {
                loss_ppm,
                frames_lost,
                frames_recovered,
            } => {
                self.u32(*loss_ppm);
                self.u32(*frames_lost);
                self.u32(*frames_recovered);
            }
            Message::SetBitrate { kbps } => self.u32(*kbps),
            Message::BitrateChanged { kbps, reason } => {
                self.u32(*kbps);
                self.u8(reason.wire());
            }
            Message::ClockProbe { t1 } => self.u64(*t1),
            Message::ClockEcho { t1, t2, t3 } => {
                self.u64(*t1);
                self.u64(*t2);
                self.u64(*t3);
            }
            Message::Apps { entries } => {
                let n = u16::try_from(entries.len()).map_err(|_| ControlError::TooLong {
                    len: entries.len(),
                    max: u16::MAX as usize,
                })?;
                self.u16(n);
                for e in entries {
                    self.u32(e.id);
                    self.string(&e.name, MAX_NAME_LEN)?;
                }
            }
            Message::PairRequest { name, spake_a } => {
                self.string(name, MAX_NAME_LEN)?;
                self.bytes(spake_a, MAX_BLOB_LEN)?;
            }
            Message::PairChallenge { spake_b, confirm } => {
                self.bytes(spake_b, MAX_BLOB_LEN)?;
                self.bytes(confirm, MAX_BLOB_LEN)?;
            }
            Message::PairProof { confirm } => self.bytes(confirm, MAX_BLOB_LEN)?,
            Message::PairResult { ok } => self.u8((*ok).into()),
        }
        Ok(())
    }

    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn mode(&mut self, m: &Mode) {
        self.u16(m.width);
        self.u16(m.height);
        self.u32(m.refresh_mhz);
    }

    fn bytes(&mut self, b: &[u8], max: usize) -> Result<(), ControlError> {
        if b.len() > max {
            return Err(ControlError::FieldTooLong {
                kind: self.kind,
                len: b.len(),
                max,
            });
        }
        // At most MAX_BLOB_LEN or MAX_REASON_LEN, far below u16::MAX.
        self.u16(b.len() as u16);
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn string(&mut self, s: &str, max: usize) -> Result<(), ControlError> {
        self.bytes(s.as_bytes(), max)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hello() -> Hello {
        Hello {
            mode: Mode {
                width: 2560,
                height: 1440,
                refresh_mhz: 143_912,
            },
            bitrate_kbps: 150_000,
            client_name: "Wohnzimmer-PC".into(),
            app: "Steam Big Picture".into(),
            codecs: Codecs::HEVC | Codecs::AV1,
            video_caps: VideoCaps::TEN_BIT | VideoCaps::HDR,
            audio_channels: 2,
            max_shard_payload: 1408,
            synthetic_kbps: 0,
        }
    }

    fn welcome() -> Welcome {
        Welcome {
            mode: hello().mode,
            codec: Codec::Hevc,
            bit_depth: 10,
            chroma: Chroma::Yuv420,
            colour: Colour::BT2020_PQ,
            fec_percent: 20,
            shard_payload: 1408,
            audio: AudioFormat {
                sample_rate: 48_000,
                channels: 2,
                frame_us: 5_000,
            },
            data_key: [0x11; 16],
            data_salt: [1, 2, 3, 4],
            udp_port: 47_999,
            host_caps: HostCaps::RECONFIGURE | HostCaps::CLOCK_SYNC,
        }
    }

    /// One of every message.
    fn every_message() -> Vec<Message> {
        let mode = Mode {
            width: 1920,
            height: 1080,
            refresh_mhz: 60_000,
        };
        vec![
            Message::Hello(hello()),
            Message::Welcome(welcome()),
            Message::Start {
                client_udp_port: 50_000,
            },
            Message::Close {
                code: CloseCode::QuitStopApp,
                reason: "user quit".into(),
            },
            Message::Close {
                code: CloseCode::Other(999),
                reason: String::new(),
            },
            Message::Reconfigure { mode },
            Message::Reconfigured {
                accepted: true,
                mode,
            },
            Message::RequestKeyframe,
            Message::LossReport {
                loss_ppm: 1_250,
                frames_lost: 2,
                frames_recovered: 17,
            },
            Message::SetBitrate { kbps: 80_000 },
            Message::BitrateChanged {
                kbps: 60_000,
                reason: BitrateReason::Congestion,
            },
            Message::BitrateChanged {
                kbps: 1,
                reason: BitrateReason::Other(77),
            },
            Message::ClockProbe { t1: 123_456_789 },
            Message::ClockEcho {
                t1: 1,
                t2: u64::MAX,
                t3: 3,
            },
            Message::ListApps,
            Message::Apps {
                entries: vec![
                    AppEntry {
                        id: 1,
                        name: "Desktop".into(),
                    },
                    AppEntry {
                        id: 0xdead_beef,
                        name: "Spiel über Grenzen".into(),
                    },
                ],
            },
            Message::Apps { entries: vec![] },
            Message::PairRequest {
                name: "Steam Deck".into(),
                spake_a: vec![0xa0; 33],
            },
            Message::PairChallenge {
                spake_b: vec![0xb0; 33],
                confirm: vec![0xc0; 32],
            },
            Message::PairProof {
                confirm: vec![0xd0; 32],
            },
            Message::PairResult { ok: true },
            Message::PairResult { ok: false },
        ]
    }

    fn framed(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn every_message_round_trips() {
        for m in every_message() {
            let bytes = framed(&m);
            let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
            assert_eq!(len + 2, bytes.len(), "{m:?}");
            assert_eq!(bytes[2], m.kind());
            assert_eq!(Message::decode(&bytes[2..]), Ok(m.clone()));
        }
    }

    #[test]
    fn bytes_are_as_documented() {
        assert_eq!(framed(&Message::RequestKeyframe), [1, 0, 0x12]);
        assert_eq!(
            framed(&Message::SetBitrate { kbps: 0x0102_0304 }),
            [5, 0, 0x14, 4, 3, 2, 1]
        );
        assert_eq!(
            framed(&Message::Close {
                code: CloseCode::AppExited,
                reason: "ok".into()
            }),
            [7, 0, 0x04, 2, 0, 2, 0, b'o', b'k']
        );
        assert_eq!(
            framed(&Message::Reconfigure {
                mode: Mode {
                    width: 1280,
                    height: 720,
                    refresh_mhz: 120_000
                }
            }),
            [9, 0, 0x10, 0x00, 0x05, 0xd0, 0x02, 0xc0, 0xd4, 0x01, 0x00]
        );
    }

    #[test]
    fn a_stream_decodes_in_any_pieces() {
        let messages = every_message();
        let stream: Vec<u8> = messages.iter().flat_map(framed).collect();
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            let mut d = MessageDecoder::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                d.handle_bytes(chunk);
                while let Some(m) = d.poll_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "pieces of {piece}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn an_old_decoder_skips_unknown_types_and_ignores_appended_fields() {
        let mut stream = Vec::new();
        // A message type from a later version, with a body.
        stream.extend_from_slice(&[4, 0, 0x7e, 1, 2, 3]);
        // A later SetBitrate with an appended field.
        stream.extend_from_slice(&[7, 0, 0x14, 0x10, 0x27, 0, 0, 0xff, 0xff]);
        // A later Hello with an appended field after the optional one.
        let mut h = framed(&Message::Hello(hello()));
        h.extend_from_slice(&[9, 9, 9]);
        let len = u16::from_le_bytes([h[0], h[1]]) + 3;
        h[..2].copy_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(&h);
        let mut d = MessageDecoder::new();
        d.handle_bytes(&stream);
        assert_eq!(d.poll_message(), Ok(Some(Message::Unknown { kind: 0x7e })));
        assert_eq!(
            d.poll_message(),
            Ok(Some(Message::SetBitrate { kbps: 10_000 }))
        );
        assert_eq!(d.poll_message(), Ok(Some(Message::Hello(hello()))));
        assert_eq!(d.poll_message(), Ok(None));
    }

    #[test]
    fn a_new_decoder_fills_missing_optional_fields_with_defaults() {
        // Hello without the synthetic rate, Welcome without host caps, LossReport without
        // frames recovered, Close without a reason.
        let cut = |m: &Message, n: usize| {
            let f = framed(m);
            Message::decode(&f[2..f.len() - n])
        };
        let mut h = hello();
        h.synthetic_kbps = 5_000;
        let mut expected = h.clone();
        expected.synthetic_kbps = 0;
        assert_eq!(cut(&Message::Hello(h), 4), Ok(Message::Hello(expected)));
        let mut expected = welcome();
        expected.host_caps = HostCaps::default();
        assert_eq!(
            cut(&Message::Welcome(welcome()), 4),
            Ok(Message::Welcome(expected))
        );
        let report = Message::LossReport {
            loss_ppm: 5,
            frames_lost: 6,
            frames_recovered: 7,
        };
        assert_eq!(
            cut(&report, 4),
            Ok(Message::LossReport {
                loss_ppm: 5,
                frames_lost: 6,
                frames_recovered: 0
            })
        );
        let close = Message::Close {
            code: CloseCode::NotPaired,
            reason: "x".into(),
        };
        assert_eq!(
            cut(&close, 3),
            Ok(Message::Close {
                code: CloseCode::NotPaired,
                reason: String::new()
            })
        );
        // A required field missing is an error, and so is an optional one cut in half.
        assert_eq!(
            cut(&report, 8),
            Err(ControlError::Truncated {
                kind: kind::LOSS_REPORT
            })
        );
        assert_eq!(
            cut(&report, 2),
            Err(ControlError::Truncated {
                kind: kind::LOSS_REPORT
            })
        );
    }

    #[test]
    fn malformed_messages_are_refused_and_the_stream_goes_on() {
        let mut d = MessageDecoder::new();
        // Bad UTF-8 in a PairRequest name, an invalid bool, an unknown codec.
        d.handle_bytes(&[6, 0, 0x30, 2, 0, 0xff, 0xfe, 0]);
        d.handle_bytes(&[2, 0, 0x33, 2]);
        let mut w = framed(&Message::Welcome(welcome()));
        w[2 + 1 + 8] = 9;
        d.handle_bytes(&w);
        d.handle_bytes(&framed(&Message::ListApps));
        assert_eq!(
            d.poll_message(),
            Err(ControlError::Utf8 {
                kind: kind::PAIR_REQUEST
            })
        );
        assert!(matches!(
            d.poll_message(),
            Err(ControlError::InvalidValue { field: "bool", .. })
        ));
        assert!(matches!(
            d.poll_message(),
            Err(ControlError::InvalidValue {
                field: "codec",
                value: 9,
                ..
            })
        ));
        assert_eq!(d.poll_message(), Ok(Some(Message::ListApps)));
    }

    #[test]
    fn lengths_over_the_limit_end_the_stream() {
        let mut d = MessageDecoder::with_max_len(100);
        d.handle_bytes(&framed(&Message::RequestKeyframe));
        d.handle_bytes(&[101, 0]);
        assert_eq!(d.poll_message(), Ok(Some(Message::RequestKeyframe)));
        let e = ControlError::TooLong { len: 101, max: 100 };
        assert_eq!(d.poll_message(), Err(e.clone()));
        d.handle_bytes(&framed(&Message::RequestKeyframe));
        assert_eq!(d.poll_message(), Err(e));
        assert_eq!(d.buffered(), 0);

        let mut d = MessageDecoder::new();
        d.handle_bytes(&[0, 0]);
        assert_eq!(d.poll_message(), Err(ControlError::Empty));
        assert_eq!(Message::decode(&[]), Err(ControlError::Empty));
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut out = vec![0xaa];
        let long = Message::PairRequest {
            name: "n".repeat(MAX_NAME_LEN + 1),
            spake_a: vec![],
        };
        assert!(matches!(
            long.encode(&mut out),
            Err(ControlError::FieldTooLong { .. })
        ));
        let many = Message::Apps {
            entries: (0..200)
                .map(|id| AppEntry {
                    id,
                    name: "a".repeat(200),
                })
                .collect(),
        };
        assert!(matches!(
            many.encode(&mut out),
            Err(ControlError::TooLong { .. })
        ));
        assert_eq!(out, [0xaa]);
        // The limit itself is fine.
        let at_limit = Message::Close {
            code: CloseCode::Error,
            reason: "r".repeat(MAX_REASON_LEN),
        };
        assert!(at_limit.encode(&mut out).is_ok());
    }

    #[test]
    fn an_app_count_the_body_cannot_hold_is_refused() {
        assert_eq!(
            Message::decode(&[kind::APPS, 0xff, 0xff, 0, 0]),
            Err(ControlError::Truncated { kind: kind::APPS })
        );
    }

    fn any_string(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..24).prop_map(move |c| {
            let mut s: String = c.into_iter().collect();
            while s.len() > max {
                s.pop();
            }
            s
        })
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        (any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(width, height, refresh_mhz)| Mode {
            width,
            height,
            refresh_mhz,
        })
    }

    fn any_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any_mode(),
                any::<u32>(),
                any_string(MAX_NAME_LEN),
                any_string(MAX_NAME_LEN),
                any::<(u8, u8, u8, u16, u32)>(),
            )
                .prop_map(|(mode, bitrate_kbps, client_name, app, (c, v, a, s, k))| {
                    Message::Hello(Hello {
                        mode,
                        bitrate_kbps,
                        client_name,
                        app,
                        codecs: Codecs(c),
                        video_caps: VideoCaps(v),
                        audio_channels: a,
                        max_shard_payload: s,
                        synthetic_kbps: k,
                    })
                }),
            (any_mode(), any::<[u8; 16]>(), any::<u32>(), any::<bool>()).prop_map(
                |(mode, data_key, caps, full_range)| {
                    let mut w = welcome();
                    w.mode = mode;
                    w.data_key = data_key;
                    w.host_caps = HostCaps(caps);
                    w.colour.full_range = full_range;
                    w.codec = if full_range { Codec::Av1 } else { Codec::H264 };
                    Message::Welcome(w)
                }
            ),
            (any::<u16>(), any_string(MAX_REASON_LEN)).prop_map(|(c, reason)| Message::Close {
                code: CloseCode::from_wire(c),
                reason
            }),
            (any::<bool>(), any_mode())
                .prop_map(|(accepted, mode)| Message::Reconfigured { accepted, mode }),
            any::<(u32, u32, u32)>().prop_map(|(a, b, c)| Message::LossReport {
                loss_ppm: a,
                frames_lost: b,
                frames_recovered: c
            }),
            (any::<u32>(), any::<u8>()).prop_map(|(kbps, r)| Message::BitrateChanged {
                kbps,
                reason: BitrateReason::from_wire(r)
            }),
            any::<(u64, u64, u64)>().prop_map(|(t1, t2, t3)| Message::ClockEcho { t1, t2, t3 }),
            proptest::collection::vec((any::<u32>(), any_string(MAX_NAME_LEN)), 0..20).prop_map(
                |e| Message::Apps {
                    entries: e
                        .into_iter()
                        .map(|(id, name)| AppEntry { id, name })
                        .collect()
                }
            ),
            (
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(spake_b, confirm)| Message::PairChallenge { spake_b, confirm }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(m in any_message()) {
            let f = framed(&m);
            prop_assert_eq!(Message::decode(&f[2..]), Ok(m));
        }

        #[test]
        fn appended_bytes_are_ignored(m in any_message(), extra in proptest::collection::vec(any::<u8>(), 1..16)) {
            let mut f = framed(&m);
            f.extend_from_slice(&extra);
            prop_assert_eq!(Message::decode(&f[2..]), Ok(m));
        }

        #[test]
        fn random_streams_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8)) {
            let mut d = MessageDecoder::with_max_len(200);
            for c in &chunks {
                d.handle_bytes(c);
                for _ in 0..8 {
                    match d.poll_message() {
                        Ok(Some(_)) | Err(ControlError::Truncated { .. } | ControlError::Utf8 { .. }
                            | ControlError::InvalidValue { .. } | ControlError::FieldTooLong { .. }) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            prop_assert!(d.buffered() <= chunks.iter().map(Vec::len).sum::<usize>());
        }
    }
}
