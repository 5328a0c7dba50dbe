//! Cutting encoded video frames into the RTP datagrams stock clients reassemble.
//!
//! [`VideoPacketizer::packetize`] takes one encoded frame (an access unit: Annex B bytes for
//! H.264/HEVC, an OBU stream for AV1) and writes every datagram of that frame, data and parity,
//! into a reusable [`VideoDatagrams`] buffer. The caller sends them in order; nothing here touches
//! a socket or a clock (the 90 kHz RTP timestamp and the host latency are passed in).
//!
//! What goes on the wire, per frame:
//!
//! - The payload is an 8-byte frame header (type 0x01, host latency in 0.1 ms, frame type, length
//!   of the last packet's payload) followed by the frame, cut into `packet_size - 16` byte chunks;
//!   the last chunk is zero-padded.
//! - Every datagram is `packet_size + 16` bytes: a 16-byte RTP header (0x90, BE sequence number,
//!   BE timestamp, zero SSRC and extension) and the 16-byte NV video header (LE
//!   `streamPacketIndex`, `frameIndex`, flags, `multiFecFlags` 0x10, `multiFecBlocks`, `fecInfo`).
//! - The frame is split into at most 4 FEC blocks. Each block of `D` data packets gets `P` parity
//!   packets of the Cauchy code in [`crate::fec`], computed over whole datagrams. The percentage
//!   written into `fecInfo` is chosen so that the client's `P = (D * pct + 99) / 100` gives exactly
//!   the parity count sent, with `D + P <= 255` and `P >= min_required_fec_packets` whenever that is
//!   representable in the 8-bit field.
//! - One RTP sequence counter runs over data and parity packets for the whole session; frame
//!   indices start at 1 and grow by one per packetized frame, so a caller that drops a frame before
//!   packetizing it never leaves a gap.
//! - With a key ([`VideoConfig::encryption_key`]), each datagram is sealed on its own with
//!   AES-128-GCM behind a 32-byte prefix (IV = LE64 counter ‖ 0 0 0 'V', LE32 frame index, tag).
//!
//! All datagrams of a frame have the same length and lie back to back in one buffer, which suits
//! `sendmmsg` or UDP segmentation offload.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use thiserror::Error;

use crate::fec::{ReedSolomon, MAX_TOTAL_SHARDS};

/// Length of the RTP header (12 bytes plus the 4-byte extension the X bit announces).
pub const RTP_HEADER_LEN: usize = 16;
/// Length of the NV video header that follows the RTP header.
pub const NV_HEADER_LEN: usize = 16;
/// Length of the per-frame header in front of the frame data.
pub const FRAME_HEADER_LEN: usize = 8;
/// Length of the prefix (IV, frame index, tag) of an encrypted datagram.
pub const ENCRYPTION_PREFIX_LEN: usize = 32;
/// Most FEC blocks one frame can use (the block index is a 2-bit field).
pub const MAX_FEC_BLOCKS: usize = 4;
/// Most data shards in one block when FEC is off (10-bit field).
pub const MAX_DATA_SHARDS_NO_FEC: usize = 1023;
/// The host's default FEC percentage.
pub const DEFAULT_FEC_PERCENT: u8 = 20;

/// `flags`: the packet carries frame data.
pub const FLAG_CONTAINS_PIC_DATA: u8 = 0x01;
/// `flags`: last data packet of an FEC block.
pub const FLAG_EOF: u8 = 0x02;
/// `flags`: first data packet of an FEC block.
pub const FLAG_SOF: u8 = 0x04;
/// The value every packet carries in `multiFecFlags`.
pub const MULTI_FEC_FLAGS: u8 = 0x10;

/// What kind of frame is sent; written into the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// A P frame referring to earlier frames.
    P,
    /// An IDR (key) frame.
    Idr,
    /// A P frame of an intra-refresh wave.
    IntraRefresh,
    /// The first P frame that no longer refers to frames the client invalidated.
    AfterRefInvalidation,
}

impl FrameType {
    /// The value of the frame header's `frameType` byte.
    pub fn wire_value(self) -> u8 {
        match self {
            FrameType::P => 1,
            FrameType::Idr => 2,
            FrameType::IntraRefresh => 4,
            FrameType::AfterRefInvalidation => 5,
        }
    }
}

/// Settings of one video stream, from the client's ANNOUNCE and the host's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// `x-nv-video[0].packetSize` as the client sent it: bytes after the 16-byte RTP header.
    /// Between 32 and 65 000.
    pub packet_size: usize,
    /// Parity packets per 100 data packets; 0 turns FEC off.
    pub fec_percent: u8,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets`: least parity packets per block when FEC is on.
    pub min_required_fec_packets: u8,
    /// The session's `rikey` when the client enabled video encryption (`SS_ENC_VIDEO`).
    pub encryption_key: Option<[u8; 16]>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            packet_size: 1392,
            fec_percent: DEFAULT_FEC_PERCENT,
            min_required_fec_packets: 2,
            encryption_key: None,
        }
    }
}

/// Errors from packetizing a frame.
#[derive(Debug, Error)]
pub enum VideoError {
    /// The configured packet size is out of range.
    #[error("invalid packet size {0}")]
    PacketSize(usize),
    /// The frame needs more packets than four FEC blocks can number.
    #[error("frame too large: {0} data packets")]
    FrameTooLarge(usize),
    /// The cipher failed.
    #[error("video encryption failed")]
    Crypto(#[from] ErrorStack),
}

/// One FEC block of a frame: how many data and parity packets, and the percentage announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FecBlock {
    /// Data packets in the block.
    pub data: usize,
    /// Parity packets in the block.
    pub parity: usize,
    /// FEC percentage written into `fecInfo`; `(data * percent + 99) / 100 == parity`.
    pub percent: u8,
}

/// How a frame of `N` data packets is split into FEC blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecPlan {
    blocks: [FecBlock; MAX_FEC_BLOCKS],
    count: usize,
}

impl FecPlan {
    /// Splits `data_packets` (at least 1) into blocks for the given FEC settings.
    ///
    /// Uses as few blocks as possible, spreads the packets evenly over them, and keeps
    /// `D + P <= 255` in every block. If no split into four blocks allows that, the frame is sent
    /// without FEC (as the reference host does); beyond four blocks of 1023 packets it fails.
    pub fn new(data_packets: usize, fec_percent: u8, min_required: u8) -> Result<Self, VideoError> {
        let n = data_packets.max(1);
        if fec_percent > 0 {
            let max_d = MAX_TOTAL_SHARDS * 100 / (100 + fec_percent as usize);
            for k in n.div_ceil(max_d).max(1)..=MAX_FEC_BLOCKS {
                let plan = Self::split(n, k, |d| parity_for(d, fec_percent, min_required));
                if plan
                    .blocks()
                    .iter()
                    .all(|b| b.data + b.parity <= MAX_TOTAL_SHARDS)
                {
                    return Ok(plan);
                }
            }
        }
        let k = n.div_ceil(MAX_DATA_SHARDS_NO_FEC);
        if k > MAX_FEC_BLOCKS {
            return Err(VideoError::FrameTooLarge(n));
        }
        Ok(Self::split(n, k, |_| (0, 0)))
    }

    /// The blocks, in sending order.
    pub fn blocks(&self) -> &[FecBlock] {
        &self.blocks[..self.count]
    }

    fn split(n: usize, k: usize, parity: impl Fn(usize) -> (usize, u8)) -> Self {
        let mut blocks = [FecBlock::default(); MAX_FEC_BLOCKS];
        for (b, block) in blocks.iter_mut().enumerate().take(k) {
            let data = n / k + usize::from(b < n % k);
            let (parity, percent) = parity(data);
            *block = FecBlock {
                data,
                parity,
                percent,
            };
        }
        Self { blocks, count: k }
    }
}

/// Parity packets a client expects in a block of `data` packets announced with `percent`.
///
/// This is the client's formula, `(data * percent + 99) / 100`; the host must send exactly this
/// many.
#[allow(clippy::manual_div_ceil)] // Spelled the way the client computes it.
pub fn client_parity_count(data: usize, percent: u8) -> usize {
    (data * percent as usize + 99) / 100
}

/// Parity count and announced percentage for a block of `d` data packets.
fn parity_for(d: usize, f: u8, min_required: u8) -> (usize, u8) {
    let p = client_parity_count(d, f);
    let m = min_required as usize;
    if p >= m {
        return (p, f);
    }
    // Smallest percentage whose client-side parity count reaches `m`; capped by the 8-bit field,
    // in which case the block carries fewer than `m` parity packets but still a consistent count.
    let pct = (100 * m - 99).div_ceil(d).min(255);
    (client_parity_count(d, pct as u8), pct as u8)
}

/// Summary of one packetized frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketizedFrame {
    /// `frameIndex` the frame was sent with.
    pub frame_index: u32,
    /// RTP sequence counter of the first datagram (low 16 bits go on the wire).
    pub first_sequence: u32,
    /// How the frame was split into FEC blocks.
    pub plan: FecPlan,
}

/// The datagrams of one frame, back to back in one reusable buffer.
#[derive(Debug, Default, Clone)]
pub struct VideoDatagrams {
    buf: Vec<u8>,
    datagram_len: usize,
    count: usize,
}

impl VideoDatagrams {
    /// An empty buffer; it grows to the largest frame seen and keeps its capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no datagrams.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Length of every datagram.
    pub fn datagram_len(&self) -> usize {
        self.datagram_len
    }

    /// Datagram `i`, in sending order.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.count).then(|| &self.buf[i * self.datagram_len..][..self.datagram_len])
    }

    /// All datagrams, in sending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.as_bytes().chunks_exact(self.datagram_len.max(1))
    }

    /// All datagrams concatenated (`len() * datagram_len()` bytes), e.g. for segmentation offload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.count * self.datagram_len]
    }
}

/// Turns encoded frames into video datagrams; one per video stream.
pub struct VideoPacketizer {
    config: VideoConfig,
    next_frame_index: u32,
    next_sequence: u32,
    iv_counter: u64,
    cipher: Option<CipherCtx>,
}

impl std::fmt::Debug for VideoPacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPacketizer")
            .field("packet_size", &self.config.packet_size)
            .field("fec_percent", &self.config.fec_percent)
            .field("encrypted", &self.cipher.is_some())
            .field("next_frame_index", &self.next_frame_index)
            .field("next_sequence", &self.next_sequence)
            .finish()
    }
}

impl VideoPacketizer {
    /// A packetizer whose first frame gets index 1 and first datagram sequence number 0.
    pub fn new(config: VideoConfig) -> Result<Self, VideoError> {
        if !(32..=65_000).contains(&config.packet_size) {
            return Err(VideoError::PacketSize(config.packet_size));
        }
        let cipher = match &config.encryption_key {
            Some(key) => {
                let mut ctx = CipherCtx::new()?;
                ctx.encrypt_init(Some(Cipher::aes_128_gcm()), Some(key), None)?;
                Some(ctx)
            }
            None => None,
        };
        Ok(Self {
            config,
            next_frame_index: 1,
            next_sequence: 0,
            iv_counter: 0,
            cipher,
        })
    }

    /// The FEC percentage the next frame is packetized with.
    pub fn fec_percent(&self) -> u8 {
        self.config.fec_percent
    }

    /// Changes the FEC percentage from the next frame on (0 turns FEC off).
    ///
    /// Safe between any two frames: every packet carries its block's percentage in `fecInfo`
    /// and the client derives the parity count from that, so each frame may use another one.
    /// [`FecPlan`] keeps the block invariants for every value.
    pub fn set_fec_percent(&mut self, percent: u8) {
        self.config.fec_percent = percent;
    }

    /// The frame index the next packetized frame will carry.
    pub fn next_frame_index(&self) -> u32 {
        self.next_frame_index
    }

    /// Length of every datagram this packetizer writes.
    pub fn datagram_len(&self) -> usize {
        self.plain_len()
            + if self.cipher.is_some() {
                ENCRYPTION_PREFIX_LEN
            } else {
                0
            }
    }

    /// How many datagrams [`VideoPacketizer::packetize`] writes for a frame of `frame_len` bytes
    /// with the current settings, e.g. to plan their sending before the frame header (which
    /// carries the host latency) is written.
    pub fn datagram_count(&self, frame_len: usize) -> Result<usize, VideoError> {
        let chunk = self.config.packet_size - NV_HEADER_LEN;
        let n = (FRAME_HEADER_LEN + frame_len).div_ceil(chunk);
        let plan = FecPlan::new(
            n,
            self.config.fec_percent,
            self.config.min_required_fec_packets,
        )?;
        Ok(plan.blocks().iter().map(|b| b.data + b.parity).sum())
    }

    /// Writes all datagrams of one frame into `out` (replacing what it held).
    ///
    /// `host_latency_us` is the time from capture to now (0 if unknown); `rtp_timestamp` is the
    /// frame's capture time in 90 kHz ticks. On error nothing is consumed: the frame index and the
    /// sequence counter stay where they were.
    pub fn packetize(
        &mut self,
        frame: &[u8],
        frame_type: FrameType,
        host_latency_us: u64,
        rtp_timestamp: u32,
        out: &mut VideoDatagrams,
    ) -> Result<PacketizedFrame, VideoError> {
        let b = self.plain_len();
        let chunk = self.config.packet_size - NV_HEADER_LEN;
        let stream_len = FRAME_HEADER_LEN + frame.len();
        let n = stream_len.div_ceil(chunk);
        let plan = FecPlan::new(
            n,
            self.config.fec_percent,
            self.config.min_required_fec_packets,
        )?;

        let mut header = [0u8; FRAME_HEADER_LEN];
        header[0] = 0x01;
        let latency = host_latency_us.saturating_add(50) / 100;
        header[1..3].copy_from_slice(&(latency.min(u16::MAX as u64) as u16).to_le_bytes());
        header[3] = frame_type.wire_value();
        let last_len = match stream_len % chunk {
            0 => chunk,
            r => r,
        };
        header[4..6].copy_from_slice(&(last_len.min(u16::MAX as usize) as u16).to_le_bytes());
        let stream = SplitStream {
            header: &header,
            frame,
        };

        let prefix = if self.cipher.is_some() {
            ENCRYPTION_PREFIX_LEN
        } else {
            0
        };
        let stride = b + prefix;
        let total: usize = plan.blocks().iter().map(|blk| blk.data + blk.parity).sum();
        out.datagram_len = stride;
        out.count = 0;
        // Every byte of every slot is written below, so stale content needs no clearing.
        out.buf.resize(total * stride, 0);

        let frame_index = self.next_frame_index;
        let first_sequence = self.next_sequence;
        let block_count = plan.blocks().len();
        let mut seq = first_sequence;
        let mut slot0 = 0;
        let mut chunk_index = 0;
        for (bi, blk) in plan.blocks().iter().enumerate() {
            let multi_fec_blocks = ((bi as u8) << 4) | (((block_count - 1) as u8) << 6);
            let slots = &mut out.buf[slot0 * stride..(slot0 + blk.data + blk.parity) * stride];
            for i in 0..blk.data {
                let p = &mut slots[i * stride + prefix..][..b];
                p[..16].fill(0);
                p[16..20].copy_from_slice(&(seq.wrapping_add(i as u32) << 8).to_le_bytes());
                p[20..24].copy_from_slice(&frame_index.to_le_bytes());
                let mut flags = FLAG_CONTAINS_PIC_DATA;
                if i == 0 {
                    flags |= FLAG_SOF;
                }
                if i + 1 == blk.data {
                    flags |= FLAG_EOF;
                }
                p[24] = flags;
                p[25] = 0;
                p[26] = MULTI_FEC_FLAGS;
                p[27] = multi_fec_blocks;
                p[28..32].fill(0);
                stream.copy_chunk(chunk_index * chunk, &mut p[32..]);
                chunk_index += 1;
            }
            if blk.parity > 0 {
                ReedSolomon::video(blk.data, blk.parity)
                    .and_then(|rs| rs.encode_strided(slots, stride, prefix, b))
                    // FecPlan keeps 1 <= D and D + P <= 255, and the slots were sized above.
                    .map_err(|_| VideoError::FrameTooLarge(n))?;
            }
            for k in 0..blk.data + blk.parity {
                let p = &mut slots[k * stride + prefix..][..b];
                p[0] = 0x90;
                p[1] = 0;
                p[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                p[4..8].copy_from_slice(&rtp_timestamp.to_be_bytes());
                p[8..16].fill(0);
                p[20..24].copy_from_slice(&frame_index.to_le_bytes());
                p[27] = multi_fec_blocks;
                let fec_info =
                    ((blk.data as u32) << 22) | ((k as u32) << 12) | ((blk.percent as u32) << 4);
                p[28..32].copy_from_slice(&fec_info.to_le_bytes());
                seq = seq.wrapping_add(1);
            }
            slot0 += blk.data + blk.parity;
        }

        if let Some(ctx) = self.cipher.as_mut() {
            for slot in out.buf.chunks_exact_mut(stride) {
                let mut iv = [0u8; 12];
                iv[..8].copy_from_slice(&self.iv_counter.to_le_bytes());
                iv[11] = b'V';
                self.iv_counter = self.iv_counter.wrapping_add(1);
                ctx.encrypt_init(None, None, Some(&iv))?;
                let (pre, body) = slot.split_at_mut(ENCRYPTION_PREFIX_LEN);
                ctx.cipher_update_inplace(body, b)?;
                ctx.cipher_final(&mut [])?;
                pre[..12].copy_from_slice(&iv);
                pre[12..16].copy_from_slice(&frame_index.to_le_bytes());
                ctx.tag(&mut pre[16..32])?;
            }
        }

        out.count = total;
        self.next_sequence = seq;
        self.next_frame_index = frame_index.wrapping_add(1);
        Ok(PacketizedFrame {
            frame_index,
            first_sequence,
            plan,
        })
    }

    /// Plaintext datagram length `packet_size + 16`, the FEC shard size.
    fn plain_len(&self) -> usize {
        self.config.packet_size + RTP_HEADER_LEN
    }
}

/// The frame header followed by the frame, read as one byte stream without copying it together.
struct SplitStream<'a> {
    header: &'a [u8; FRAME_HEADER_LEN],
    frame: &'a [u8],
}

impl SplitStream<'_> {
    /// Fills `dst` with the stream bytes from `start` on, zero-padding past the end.
    fn copy_chunk(&self, start: usize, dst: &mut [u8]) {
        let mut written = 0;
        if start < FRAME_HEADER_LEN {
            let h = &self.header[start..];
            let n = h.len().min(dst.len());
            dst[..n].copy_from_slice(&h[..n]);
            written = n;
        }
        let frame_start = (start + written).saturating_sub(FRAME_HEADER_LEN);
        if frame_start < self.frame.len() {
            let f = &self.frame[frame_start..];
            let n = f.len().min(dst.len() - written);
            dst[written..written + n].copy_from_slice(&f[..n]);
            written += n;
        }
        dst[written..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_one_block() {
        // packetSize 1392, 100 000-byte frame: 73 data packets, 15 parity, shard 5's fecInfo.
        let mut pk = VideoPacketizer::new(VideoConfig::default()).unwrap();
        let mut out = VideoDatagrams::new();
        let frame = vec![0xABu8; 100_000];
        let info = pk
            .packetize(&frame, FrameType::Idr, 0, 0, &mut out)
            .unwrap();
        assert_eq!(
            info.plan.blocks(),
            &[FecBlock {
                data: 73,
                parity: 15,
                percent: 20
            }]
        );
        assert_eq!(out.len(), 88);
        assert_eq!(out.datagram_len(), 1408);
        assert_eq!(&out.get(5).unwrap()[28..32], &[0x40, 0x51, 0x40, 0x12]);
        // Frame header: lastPayloadLen 936.
        assert_eq!(&out.get(0).unwrap()[36..38], &936u16.to_le_bytes());
    }

    #[test]
    fn documented_example_two_blocks() {
        let mut pk = VideoPacketizer::new(VideoConfig::default()).unwrap();
        let mut out = VideoDatagrams::new();
        let frame = vec![0x11u8; 400_000];
        let info = pk.packetize(&frame, FrameType::P, 0, 0, &mut out).unwrap();
        let blocks = info.plan.blocks();
        assert_eq!((blocks[0].data, blocks[0].parity), (146, 30));
        assert_eq!((blocks[1].data, blocks[1].parity), (145, 29));
        assert_eq!(out.get(0).unwrap()[27], 0x40);
        assert_eq!(out.get(out.len() - 1).unwrap()[27], 0x50);
    }

    #[test]
    fn minimum_parity_bump() {
        assert_eq!(parity_for(1, 20, 2), (2, 101));
        assert_eq!(parity_for(3, 20, 2), (2, 34));
        assert_eq!(parity_for(10, 20, 2), (2, 20));
        assert_eq!(parity_for(200, 1, 3), (4, 2));
        assert_eq!(parity_for(1, 20, 9), (3, 255));
    }

    #[test]
    fn fec_off_when_four_blocks_are_not_enough() {
        let plan = FecPlan::new(4 * 212 + 1, 20, 2).unwrap();
        assert!(plan
            .blocks()
            .iter()
            .all(|b| b.parity == 0 && b.percent == 0));
        assert!(FecPlan::new(4 * 1023 + 1, 20, 2).is_err());
    }

    /// Every plan the packetizer can make, at any percentage a stream may switch to, keeps the
    /// invariants the client relies on.
    #[test]
    fn plans_keep_the_client_invariants_at_every_percentage() {
        for pct in (0..=255u8)
            .step_by(5)
            .chain([1, 2, 3, 33, 66, 99, 101, 254])
        {
            for n in (1..=4 * MAX_DATA_SHARDS_NO_FEC)
                .step_by(7)
                .chain([1, 2, 3, 212, 213])
            {
                for min in [0u8, 2, 4] {
                    let Ok(plan) = FecPlan::new(n, pct, min) else {
                        panic!("{n} packets at {pct} % do not fit");
                    };
                    let blocks = plan.blocks();
                    assert!(blocks.len() <= MAX_FEC_BLOCKS);
                    assert_eq!(blocks.iter().map(|b| b.data).sum::<usize>(), n);
                    for b in blocks {
                        assert_eq!(client_parity_count(b.data, b.percent), b.parity);
                        if b.parity > 0 {
                            assert!(b.data + b.parity <= MAX_TOTAL_SHARDS, "{n} {pct} {b:?}");
                        }
                        // The minimum holds wherever FEC is on and the 8-bit field can say it.
                        if pct > 0 && b.percent > 0 && b.percent < 255 {
                            assert!(b.parity >= min as usize, "{n} {pct} {min} {b:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_percentage_can_change_between_frames() {
        let mut pk = VideoPacketizer::new(VideoConfig::default()).unwrap();
        let mut out = VideoDatagrams::new();
        let frame = vec![0x22u8; 100_000];
        let fec_info = |d: &[u8]| u32::from_le_bytes(d[28..32].try_into().unwrap());
        let pct = |d: &[u8]| ((fec_info(d) >> 4) & 0xFF) as u8;

        let first = pk.packetize(&frame, FrameType::P, 0, 0, &mut out).unwrap();
        assert_eq!((out.len(), pct(out.get(0).unwrap())), (88, 20));
        pk.set_fec_percent(50);
        assert_eq!(pk.fec_percent(), 50);
        let second = pk.packetize(&frame, FrameType::P, 0, 0, &mut out).unwrap();
        // 73 data packets at 50 %: 37 parity, in every packet's fecInfo.
        assert_eq!(
            second.plan.blocks(),
            &[FecBlock {
                data: 73,
                parity: 37,
                percent: 50
            }]
        );
        assert_eq!(out.len(), 110);
        assert!(out.iter().all(|d| pct(d) == 50));
        // Sequence numbers run on across the change.
        assert_eq!(second.first_sequence, first.first_sequence + 88);
        pk.set_fec_percent(0);
        pk.packetize(&frame, FrameType::P, 0, 0, &mut out).unwrap();
        assert_eq!(out.len(), 73);
        assert!(out.iter().all(|d| pct(d) == 0));
    }

    #[test]
    fn the_datagram_count_is_known_before_packetizing() {
        let mut pk = VideoPacketizer::new(VideoConfig::default()).unwrap();
        let mut out = VideoDatagrams::new();
        for (len, pct) in [
            (0, 20),
            (1, 20),
            (1368, 20),
            (100_000, 20),
            (400_000, 50),
            (2_000_000, 20),
        ] {
            pk.set_fec_percent(pct);
            let frame = vec![0x33u8; len];
            let expected = pk.datagram_count(len).unwrap();
            pk.packetize(&frame, FrameType::P, 0, 0, &mut out).unwrap();
            assert_eq!(out.len(), expected, "{len} bytes at {pct} %");
        }
    }

    #[test]
    fn split_stream_copies_across_the_header_boundary() {
        let header = [1, 2, 3, 4, 5, 6, 7, 8];
        let s = SplitStream {
            header: &header,
            frame: &[9, 10, 11],
        };
        let mut dst = [0xFFu8; 6];
        s.copy_chunk(5, &mut dst);
        assert_eq!(dst, [6, 7, 8, 9, 10, 11]);
        s.copy_chunk(9, &mut dst);
        assert_eq!(dst, [10, 11, 0, 0, 0, 0]);
    }
}
