//! The fixed 40-byte header in front of every data-plane datagram.
//!
//! The layout is described field by field in the [module overview](super#the-datagram-header).
//! [`Header::parse`] accepts only headers a punktfunk/1 sender can produce: a known plane and FEC
//! scheme, version 1, a shard size that is even and non-zero, a data-shard count that matches the
//! frame size, a shard count the GF(2^16) code supports and flags that agree with the shard index.
//! Everything after a successful parse can rely on those facts.

use reed_solomon_simd::ReedSolomonDecoder;
use thiserror::Error;

/// Length of the header.
pub const HEADER_LEN: usize = 40;
/// The only version this module speaks.
pub const VERSION: u8 = 1;

/// `flags`: the datagram carries data shard 0.
pub const FLAG_START_OF_FRAME: u8 = 0x01;
/// `flags`: the datagram carries the last data shard.
pub const FLAG_END_OF_FRAME: u8 = 0x02;
/// `flags`: the frame is a keyframe (an IDR for video); set on every shard of it.
pub const FLAG_KEYFRAME: u8 = 0x04;
/// `flags`: the datagram carries a recovery shard; `shard index` counts recovery shards.
pub const FLAG_RECOVERY: u8 = 0x08;
/// The flag bits this version knows; the others are sent as zero and ignored on receipt.
pub const KNOWN_FLAGS: u8 = FLAG_START_OF_FRAME | FLAG_END_OF_FRAME | FLAG_KEYFRAME | FLAG_RECOVERY;

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("datagram of {0} bytes is shorter than a header")]
    Truncated(usize),
    /// The first byte names no plane.
    #[error("unknown plane magic {0:#04x}")]
    UnknownPlane(u8),
    /// A version other than [`VERSION`].
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// An FEC scheme this version does not know.
    #[error("unknown fec scheme {0}")]
    UnknownFecScheme(u8),
    /// The shard size is zero or odd.
    #[error("invalid shard size {0}")]
    ShardBytes(u16),
    /// The data-shard count does not match the frame size and shard size.
    #[error(
        "{data_shards} data shards of {shard_bytes} bytes cannot hold a frame of {frame_bytes}"
    )]
    DataShards {
        /// Frame size in the header.
        frame_bytes: u32,
        /// Data shards in the header.
        data_shards: u16,
        /// Shard size in the header.
        shard_bytes: u16,
    },
    /// The recovery-shard count is impossible for the FEC scheme.
    #[error("{recovery_shards} recovery shards are not possible with {data_shards} data shards")]
    RecoveryShards {
        /// Data shards in the header.
        data_shards: u16,
        /// Recovery shards in the header.
        recovery_shards: u16,
    },
    /// The shard index is out of range for its kind.
    #[error("shard index {0} out of range")]
    ShardIndex(u16),
    /// The start/end-of-frame flags disagree with the shard index.
    #[error("flags {0:#04x} disagree with the shard index")]
    Flags(u8),
    /// A frame too large to cut into shards of the given size (more than 65 535 data shards).
    #[error("frame of {0} bytes needs too many shards")]
    FrameTooLarge(usize),
}

/// Which stream a datagram belongs to. Each plane has its own sequence counter and nonce space.
///
/// The magic bytes lie in `0x00..=0x3f`, a range in which no QUIC packet starts (QUIC v1 sets the
/// fixed bit `0x40`), so the data plane could share a UDP port with the control connection later
/// and be told apart by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// Encoded video frames (magic `0x30`).
    Video,
    /// Encoded audio packets (magic `0x31`).
    Audio,
    /// A synthetic stream of a requested rate, for transport tests (magic `0x32`).
    Probe,
}

impl Plane {
    /// The magic byte that starts the header.
    pub fn magic(self) -> u8 {
        match self {
            Plane::Video => 0x30,
            Plane::Audio => 0x31,
            Plane::Probe => 0x32,
        }
    }

    /// The plane whose magic byte is `b`.
    pub fn from_magic(b: u8) -> Option<Self> {
        match b {
            0x30 => Some(Plane::Video),
            0x31 => Some(Plane::Audio),
            0x32 => Some(Plane::Probe),
            _ => None,
        }
    }
}

/// How a frame's recovery shards are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecScheme {
    /// No recovery shards (wire value 0).
    None,
    /// Reed-Solomon over GF(2^16), Leopard's FFT construction as `reed-solomon-simd` implements
    /// it (wire value 1). Up to 65 535 shards in one block, so every frame is one block.
    Leopard16,
}

impl FecScheme {
    /// The value of the header's `fec` byte.
    pub fn wire_value(self) -> u8 {
        match self {
            FecScheme::None => 0,
            FecScheme::Leopard16 => 1,
        }
    }

    /// The scheme with wire value `b`.
    pub fn from_wire(b: u8) -> Option<Self> {
        match b {
            0 => Some(FecScheme::None),
            1 => Some(FecScheme::Leopard16),
            _ => None,
        }
    }
}

/// How one frame is cut into shards: the fields every datagram of the frame repeats.
///
/// Only consistent layouts can be built: `shard_bytes` is even and non-zero, `data_shards` is
/// exactly `max(1, ceil(frame_bytes / shard_bytes))`, and the recovery count is 0 without FEC
/// and a count the GF(2^16) code supports with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameLayout {
    fec: FecScheme,
    frame_bytes: u32,
    data_shards: u16,
    recovery_shards: u16,
    shard_bytes: u16,
}

impl FrameLayout {
    /// Checks and builds a layout from the values of a header.
    pub fn new(
        fec: FecScheme,
        frame_bytes: u32,
        data_shards: u16,
        recovery_shards: u16,
        shard_bytes: u16,
    ) -> Result<Self, HeaderError> {
        if shard_bytes == 0 || shard_bytes & 1 != 0 {
            return Err(HeaderError::ShardBytes(shard_bytes));
        }
        let needed = (frame_bytes as u64).div_ceil(shard_bytes as u64).max(1);
        if needed != data_shards as u64 {
            return Err(HeaderError::DataShards {
                frame_bytes,
                data_shards,
                shard_bytes,
            });
        }
        let recovery_ok = match fec {
            FecScheme::None => recovery_shards == 0,
            FecScheme::Leopard16 => {
                ReedSolomonDecoder::supports(data_shards as usize, recovery_shards as usize)
            }
        };
        if !recovery_ok {
            return Err(HeaderError::RecoveryShards {
                data_shards,
                recovery_shards,
            });
        }
        Ok(Self {
            fec,
            frame_bytes,
            data_shards,
            recovery_shards,
            shard_bytes,
        })
    }

    /// The sender's layout for a frame of `frame_bytes` with shards of at most
    /// `max_shard_payload` bytes and the recovery `protection` asks for (a bare percentage is
    /// `fec_percent` recovery shards per 100 data shards).
    ///
    /// The shard size is the smallest even size that needs no more shards than the largest one,
    /// so padding stays under two bytes per shard and every datagram of the frame has the same
    /// length. Recovery shards are `ceil(data * percent / 100)`, at least 2, more on a lossy link
    /// ([`Protection::recovery_count`](super::fec::Protection::recovery_count)), fewer only
    /// where the code cannot have that many; percent 0 sends none ([`FecScheme::None`]).
    pub fn plan(
        frame_bytes: usize,
        max_shard_payload: u16,
        protection: impl Into<super::fec::Protection>,
    ) -> Result<Self, HeaderError> {
        let max = max_shard_payload & !1;
        if max == 0 {
            return Err(HeaderError::ShardBytes(max_shard_payload));
        }
        let too_large = HeaderError::FrameTooLarge(frame_bytes);
        let frame = u32::try_from(frame_bytes).map_err(|_| too_large)?;
        let data = frame_bytes.div_ceil(max as usize).max(1);
        if data > u16::MAX as usize {
            return Err(too_large);
        }
        // At most `max` because `frame_bytes / data <= max` and `max` is even.
        let shard = frame_bytes.div_ceil(data).next_multiple_of(2).max(2) as u16;
        let recovery = protection.into().recovery_count(data);
        let fec = if recovery == 0 {
            FecScheme::None
        } else {
            FecScheme::Leopard16
        };
        Self::new(fec, frame, data as u16, recovery as u16, shard)
    }

    /// The FEC scheme.
    pub fn fec(&self) -> FecScheme {
        self.fec
    }

    /// Length of the frame in bytes.
    pub fn frame_bytes(&self) -> u32 {
        self.frame_bytes
    }

    /// Number of data shards; the last one is zero-padded.
    pub fn data_shards(&self) -> u16 {
        self.data_shards
    }

    /// Number of recovery shards.
    pub fn recovery_shards(&self) -> u16 {
        self.recovery_shards
    }

    /// Length of every shard (data and recovery) in bytes.
    pub fn shard_bytes(&self) -> u16 {
        self.shard_bytes
    }

    /// Data plus recovery shards: the number of datagrams of the frame.
    pub fn total_shards(&self) -> usize {
        self.data_shards as usize + self.recovery_shards as usize
    }

    /// Length of each datagram of the frame: header, sealed shard and tag.
    pub fn datagram_len(&self) -> usize {
        HEADER_LEN + self.shard_bytes as usize + super::crypto::TAG_LEN
    }
}

/// Which shard of the frame a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shard {
    /// Data shard `i`: bytes `i * shard_bytes ..` of the frame.
    Data(u16),
    /// Recovery shard `i` of the frame's block.
    Recovery(u16),
}

/// A parsed, consistent header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    plane: Plane,
    sequence: u64,
    pts_ns: u64,
    frame_index: u32,
    keyframe: bool,
    layout: FrameLayout,
    shard: Shard,
    encode_us: u32,
}

impl Header {
    /// Builds a header (encode time 0); fails if `shard` is out of range for `layout`.
    pub fn new(
        plane: Plane,
        sequence: u64,
        pts_ns: u64,
        frame_index: u32,
        keyframe: bool,
        layout: FrameLayout,
        shard: Shard,
    ) -> Result<Self, HeaderError> {
        let (i, count) = match shard {
            Shard::Data(i) => (i, layout.data_shards),
            Shard::Recovery(i) => (i, layout.recovery_shards),
        };
        if i >= count {
            return Err(HeaderError::ShardIndex(i));
        }
        Ok(Self {
            plane,
            sequence,
            pts_ns,
            frame_index,
            keyframe,
            layout,
            shard,
            encode_us: 0,
        })
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(HeaderError::Truncated(bytes.len()))?;
        let plane = Plane::from_magic(b[0]).ok_or(HeaderError::UnknownPlane(b[0]))?;
        if b[1] != VERSION {
            return Err(HeaderError::UnsupportedVersion(b[1]));
        }
        let fec = FecScheme::from_wire(b[2]).ok_or(HeaderError::UnknownFecScheme(b[2]))?;
        let flags = b[3] & KNOWN_FLAGS;
        let layout = FrameLayout::new(
            fec,
            u32_at(b, 24),
            u16_at(b, 28),
            u16_at(b, 30),
            u16_at(b, 34),
        )?;
        let index = u16_at(b, 32);
        let shard = if flags & FLAG_RECOVERY != 0 {
            Shard::Recovery(index)
        } else {
            Shard::Data(index)
        };
        let header = Self::new(
            plane,
            u64_at(b, 4),
            u64_at(b, 12),
            u32_at(b, 20),
            flags & FLAG_KEYFRAME != 0,
            layout,
            shard,
        )?
        .with_encode_us(u32_at(b, 36));
        if header.flags() != flags {
            return Err(HeaderError::Flags(b[3]));
        }
        Ok(header)
    }

    /// The header's 40 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.write(&mut b);
        b
    }

    /// Writes the header's 40 bytes into `b`.
    pub fn write(&self, b: &mut [u8; HEADER_LEN]) {
        let l = &self.layout;
        b[0] = self.plane.magic();
        b[1] = VERSION;
        b[2] = l.fec.wire_value();
        b[3] = self.flags();
        b[4..12].copy_from_slice(&self.sequence.to_le_bytes());
        b[12..20].copy_from_slice(&self.pts_ns.to_le_bytes());
        b[20..24].copy_from_slice(&self.frame_index.to_le_bytes());
        b[24..28].copy_from_slice(&l.frame_bytes.to_le_bytes());
        b[28..30].copy_from_slice(&l.data_shards.to_le_bytes());
        b[30..32].copy_from_slice(&l.recovery_shards.to_le_bytes());
        let index = match self.shard {
            Shard::Data(i) | Shard::Recovery(i) => i,
        };
        b[32..34].copy_from_slice(&index.to_le_bytes());
        b[34..36].copy_from_slice(&l.shard_bytes.to_le_bytes());
        b[36..40].copy_from_slice(&self.encode_us.to_le_bytes());
    }

    /// The same header with another sequence number.
    pub fn with_sequence(mut self, sequence: u64) -> Self {
        self.sequence = sequence;
        self
    }

    /// The same header for another shard of the frame; fails if `shard` is out of range.
    pub fn with_shard(self, shard: Shard) -> Result<Self, HeaderError> {
        Ok(Self::new(
            self.plane,
            self.sequence,
            self.pts_ns,
            self.frame_index,
            self.keyframe,
            self.layout,
            shard,
        )?
        .with_encode_us(self.encode_us))
    }

    /// The same header with another encode time.
    pub fn with_encode_us(mut self, encode_us: u32) -> Self {
        self.encode_us = encode_us;
        self
    }

    /// The flags byte this header is sent with.
    pub fn flags(&self) -> u8 {
        let mut f = if self.keyframe { FLAG_KEYFRAME } else { 0 };
        match self.shard {
            Shard::Data(i) => {
                if i == 0 {
                    f |= FLAG_START_OF_FRAME;
                }
                if i + 1 == self.layout.data_shards {
                    f |= FLAG_END_OF_FRAME;
                }
            }
            Shard::Recovery(_) => f |= FLAG_RECOVERY,
        }
        f
    }

    /// The plane.
    pub fn plane(&self) -> Plane {
        self.plane
    }

    /// The datagram's sequence number in its plane; also the nonce counter.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Presentation time in nanoseconds of the host's monotonic clock.
    pub fn pts_ns(&self) -> u64 {
        self.pts_ns
    }

    /// The frame index.
    pub fn frame_index(&self) -> u32 {
        self.frame_index
    }

    /// Whether the frame is a keyframe.
    pub fn keyframe(&self) -> bool {
        self.keyframe
    }

    /// How the frame is cut into shards.
    pub fn layout(&self) -> &FrameLayout {
        &self.layout
    }

    /// Which shard the datagram carries.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// How long the host's encoder took over the frame, in microseconds (0: not said, or not an
    /// encoded frame). A receiver subtracts it to see what the rest of the way took.
    pub fn encode_us(&self) -> u32 {
        self.encode_us
    }
}

fn u16_at(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn layout(frame: u32, fec_percent: u8) -> FrameLayout {
        FrameLayout::plan(frame as usize, 1408, fec_percent).unwrap()
    }

    #[test]
    fn fields_sit_at_their_documented_offsets() {
        let l = FrameLayout::new(FecScheme::Leopard16, 0x0203_0405, 24_019, 4_804, 1408);
        // 0x02030405 = 33 752 069 bytes needs 23 972 shards of 1408 bytes, not 24 019.
        assert!(l.is_err());
        let l = FrameLayout::new(FecScheme::Leopard16, 3000, 3, 2, 1000).unwrap();
        let h = Header::new(
            Plane::Video,
            0x1122_3344_5566_7788,
            0x0102_0304_0506_0708,
            0xa1b2_c3d4,
            true,
            l,
            Shard::Data(2),
        )
        .unwrap();
        let b = h.encode();
        #[rustfmt::skip]
        let expected: [u8; HEADER_LEN] = [
            0x30, 1, 1, FLAG_KEYFRAME | FLAG_END_OF_FRAME,
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
            0xd4, 0xc3, 0xb2, 0xa1,
            0xb8, 0x0b, 0, 0,
            3, 0,
            2, 0,
            2, 0,
            0xe8, 0x03,
            0, 0, 0, 0,
        ];
        assert_eq!(b, expected);
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn plan_evens_out_shards() {
        let l = layout(3000, 20);
        assert_eq!(
            (l.data_shards(), l.shard_bytes(), l.recovery_shards()),
            (3, 1000, 2)
        );
        let l = layout(1408 * 10, 25);
        assert_eq!(
            (l.data_shards(), l.shard_bytes(), l.recovery_shards()),
            (10, 1408, 3)
        );
        let l = layout(0, 0);
        assert_eq!(
            (l.data_shards(), l.shard_bytes(), l.fec()),
            (1, 2, FecScheme::None)
        );
        let l = layout(1, 10);
        assert_eq!(
            (l.data_shards(), l.shard_bytes(), l.recovery_shards()),
            (1, 2, 2)
        );
        // A 4 MB frame is one block.
        let l = layout(4_000_000, 10);
        assert_eq!((l.data_shards(), l.recovery_shards()), (2841, 285));
        assert_eq!(l.datagram_len(), 1464);
        assert!(FrameLayout::plan(100 * 1024 * 1024, 1408, 10).is_err());
        assert!(FrameLayout::plan(10, 1, 10).is_err());
    }

    #[test]
    fn plan_caps_recovery_where_the_code_cannot_have_more() {
        // 40 000 data shards with 100 % would need 40 000 recovery shards; the code allows
        // at most 16 384 (40 000 + 16 384 <= 65 536 with the count a power of two).
        let l = FrameLayout::plan(40_000 * 2, 2, 100).unwrap();
        assert_eq!(l.data_shards(), 40_000);
        assert!(ReedSolomonDecoder::supports(
            40_000,
            l.recovery_shards() as usize
        ));
        assert_eq!(l.recovery_shards(), 16_384);
    }

    #[test]
    fn refuses_what_a_sender_cannot_produce() {
        let h = Header::new(
            Plane::Audio,
            7,
            9,
            1,
            false,
            layout(5000, 50),
            Shard::Recovery(1),
        )
        .unwrap();
        let good = h.encode();
        assert_eq!(Header::parse(&good).unwrap(), h);
        assert_eq!(Header::parse(&good[..39]), Err(HeaderError::Truncated(39)));
        let bad = |at: usize, v: u8| {
            let mut b = good;
            b[at] = v;
            Header::parse(&b)
        };
        assert_eq!(bad(0, 0x56), Err(HeaderError::UnknownPlane(0x56)));
        assert_eq!(bad(1, 2), Err(HeaderError::UnsupportedVersion(2)));
        assert_eq!(bad(2, 7), Err(HeaderError::UnknownFecScheme(7)));
        assert!(matches!(bad(2, 0), Err(HeaderError::RecoveryShards { .. })));
        // Without the recovery flag the same index names a data shard; the tag protects it.
        assert_eq!(bad(3, 0), Ok(h.with_shard(Shard::Data(1)).unwrap()));
        assert!(matches!(
            bad(3, FLAG_RECOVERY | FLAG_START_OF_FRAME),
            Err(HeaderError::Flags(_))
        ));
        assert!(matches!(bad(28, 9), Err(HeaderError::DataShards { .. })));
        assert!(matches!(bad(34, 0x89), Err(HeaderError::ShardBytes(_))));
        assert!(matches!(bad(32, 9), Err(HeaderError::ShardIndex(9))));
        // Unknown flag bits are ignored; the last four bytes are the encode time.
        assert_eq!(bad(3, FLAG_RECOVERY | 0xf0), Ok(h));
        assert_eq!(bad(38, 0xff).map(|h| h.encode_us()), Ok(0x00ff_0000));
    }

    fn any_header() -> impl Strategy<Value = Header> {
        (
            prop_oneof![Just(Plane::Video), Just(Plane::Audio), Just(Plane::Probe)],
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            0usize..200_000,
            1u16..=700,
            0u8..=100,
            any::<bool>(),
            any::<u16>(),
            any::<u32>(),
        )
            .prop_map(
                |(plane, seq, pts, index, key, frame, max_shard, percent, recovery, i, us)| {
                    // At most 65 535 shards: a 2-byte shard carries 131 070 bytes at most.
                    let frame = frame.min(usize::from(max_shard) * 2 * 65_535);
                    let l = FrameLayout::plan(frame, max_shard * 2, percent).unwrap();
                    let shard = if recovery && l.recovery_shards() > 0 {
                        Shard::Recovery(i % l.recovery_shards())
                    } else {
                        Shard::Data(i % l.data_shards())
                    };
                    Header::new(plane, seq, pts, index, key, l, shard)
                        .unwrap()
                        .with_encode_us(us)
                },
            )
    }

    proptest! {
        #[test]
        fn header_round_trips(h in any_header()) {
            prop_assert_eq!(Header::parse(&h.encode()), Ok(h));
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = Header::parse(&b) {
                let e = h.encode();
                prop_assert_eq!(&e[..3], &b[..3]);
                prop_assert_eq!(e[3], b[3] & KNOWN_FLAGS);
                prop_assert_eq!(&e[4..36], &b[4..36]);
            }
        }
    }
}
