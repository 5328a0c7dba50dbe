//! The values the messages carry: modes, codecs, capabilities, the handshake's two halves.

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
    pub(super) fn wire(self) -> u8 {
        match self {
            Codec::H264 => 1,
            Codec::Hevc => 2,
            Codec::Av1 => 3,
        }
    }

    pub(super) fn from_wire(b: u8) -> Option<Self> {
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
    pub(super) fn wire(self) -> u8 {
        match self {
            BitrateReason::Requested => 0,
            BitrateReason::Congestion => 1,
            BitrateReason::HostLimit => 2,
            BitrateReason::Other(b) => b,
        }
    }

    pub(super) fn from_wire(b: u8) -> Self {
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
    pub(super) fn wire(self) -> u16 {
        match self {
            CloseCode::Normal => 0,
            CloseCode::QuitStopApp => 1,
            CloseCode::AppExited => 2,
            CloseCode::Error => 3,
            CloseCode::NotPaired => 4,
            CloseCode::Other(c) => c,
        }
    }

    pub(super) fn from_wire(c: u16) -> Self {
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
