//! The sending side of the data plane: one frame in, its sealed datagrams out.
//!
//! [`FrameSealer::seal_frame`] plans the frame's [`FrameLayout`], computes the recovery shards
//! over the plaintext data shards (the last one zero-padded), and seals every shard into one
//! reusable [`Datagrams`] buffer: data shards first, in order, then recovery shards. All datagrams
//! of a frame have the same length and lie back to back, which suits `sendmmsg` and UDP
//! segmentation offload. In steady state nothing is allocated: the buffer and the coder keep the
//! capacity of the largest frame seen.

use reed_solomon_simd::ReedSolomonEncoder;
use thiserror::Error;

use super::crypto::{CryptoError, DataKey, Sealer, TAG_LEN};
use super::fec::Protection;
use super::header::{FecScheme, FrameLayout, Header, HeaderError, Plane, Shard, HEADER_LEN};

/// Default largest shard payload: a sealed datagram of 1464 bytes fits the 1472-byte UDP payload
/// of a 1500-byte IPv4 MTU.
pub const DEFAULT_SHARD_PAYLOAD: u16 = 1408;
/// Largest shard payload: a sealed datagram still fits the largest IPv4 UDP payload (65 507).
pub const MAX_SHARD_PAYLOAD: u16 = 65_450;

/// Errors from sealing a frame.
#[derive(Debug, Error)]
pub enum SendError {
    /// The shard payload is odd, zero or above [`MAX_SHARD_PAYLOAD`].
    #[error("invalid shard payload {0}")]
    ShardPayload(u16),
    /// The frame cannot be cut into shards (too large for 65 535 shards).
    #[error("frame cannot be laid out: {0}")]
    Layout(#[from] HeaderError),
    /// The sealer refused (its sequence counter is used up).
    #[error("sealing failed: {0}")]
    Crypto(#[from] CryptoError),
    /// The Reed-Solomon coder refused a layout it should accept.
    #[error("fec encoding failed: {0}")]
    Fec(#[from] reed_solomon_simd::Error),
}

/// What a frame's header says of it besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// The frame index: one more than the frame before.
    pub index: u32,
    /// Presentation time in nanoseconds of the host's monotonic clock.
    pub pts_ns: u64,
    /// Whether it is a keyframe.
    pub keyframe: bool,
    /// How long the encoder took over it, in microseconds (0: not said).
    pub encode_us: u32,
}

impl FrameInfo {
    /// Frame `index` presented at `pts_ns`, a keyframe where `keyframe` is set; no encode time.
    pub fn new(index: u32, pts_ns: u64, keyframe: bool) -> Self {
        FrameInfo {
            index,
            pts_ns,
            keyframe,
            encode_us: 0,
        }
    }

    /// The same frame, encoded in `encode_us` microseconds.
    pub fn encoded_in(self, encode_us: u32) -> Self {
        FrameInfo { encode_us, ..self }
    }
}

/// What [`FrameSealer::seal_frame`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedFrame {
    /// How the frame was cut into shards.
    pub layout: FrameLayout,
    /// Sequence number of the first datagram; the others follow without gaps.
    pub first_sequence: u64,
}

/// The datagrams of one frame, back to back in one reusable buffer.
#[derive(Debug, Default, Clone)]
pub struct Datagrams {
    buf: Vec<u8>,
    datagram_len: usize,
    count: usize,
}

impl Datagrams {
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

    /// Datagram `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        self.buf
            .get(i * self.datagram_len..(i + 1) * self.datagram_len)
    }

    /// The datagrams in sending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.as_bytes().chunks_exact(self.datagram_len.max(1))
    }

    /// All datagrams as one slice (for segmentation offload: segments of
    /// [`datagram_len`](Self::datagram_len)).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.count * self.datagram_len]
    }

    /// Forgets the datagrams, keeping the capacity.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Makes room for `count` datagrams of `datagram_len` bytes. Grows the buffer only; bytes
    /// already there are overwritten by the caller.
    fn prepare(&mut self, count: usize, datagram_len: usize) {
        let len = count * datagram_len;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.count = count;
        self.datagram_len = datagram_len;
    }

    fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * self.datagram_len..(i + 1) * self.datagram_len]
    }
}

/// Cuts frames of one plane into sealed datagrams.
pub struct FrameSealer {
    sealer: Sealer,
    max_shard_payload: u16,
    encoder: Option<ReedSolomonEncoder>,
    /// The last data shard, zero-padded, for the coder.
    padded: Vec<u8>,
}

impl FrameSealer {
    /// A sealer for `plane` with shards of at most `max_shard_payload` bytes (even, 2 to
    /// [`MAX_SHARD_PAYLOAD`]; [`DEFAULT_SHARD_PAYLOAD`] on a 1500-byte MTU).
    pub fn new(key: &DataKey, plane: Plane, max_shard_payload: u16) -> Result<Self, SendError> {
        if max_shard_payload < 2 || max_shard_payload & 1 != 0 {
            return Err(SendError::ShardPayload(max_shard_payload));
        }
        if max_shard_payload > MAX_SHARD_PAYLOAD {
            return Err(SendError::ShardPayload(max_shard_payload));
        }
        Ok(Self {
            sealer: Sealer::new(key, plane),
            max_shard_payload,
            encoder: None,
            padded: Vec::new(),
        })
    }

    /// The plane.
    pub fn plane(&self) -> Plane {
        self.sealer.plane()
    }

    /// The largest shard payload.
    pub fn max_shard_payload(&self) -> u16 {
        self.max_shard_payload
    }

    /// The sequence number the next datagram gets.
    pub fn next_sequence(&self) -> u64 {
        self.sealer.next_sequence()
    }

    /// Builds the coder's tables and work space for frames of about `frame_bytes` with
    /// `protection`, so that the first real frame does not pay for them.
    pub fn warm_up(
        &mut self,
        frame_bytes: usize,
        protection: impl Into<Protection>,
    ) -> Result<(), SendError> {
        super::fec::warm_up();
        let layout = FrameLayout::plan(frame_bytes, self.max_shard_payload, protection)?;
        if layout.fec() == FecScheme::None {
            return Ok(());
        }
        let zeros = vec![0u8; layout.shard_bytes() as usize];
        let encoder = self.encoder_for(&layout)?;
        for _ in 0..layout.data_shards() {
            encoder.add_original_shard(&zeros)?;
        }
        encoder.encode()?;
        Ok(())
    }

    /// Seals one frame into `out`, replacing what it held.
    ///
    /// `info.index` must grow by one per frame (the receiver reads a gap as loss); `protection`
    /// sizes the recovery shards (a percentage of 0 sends none). On error `out` is empty and no
    /// sequence number was used unless sealing itself failed part way.
    pub fn seal_frame(
        &mut self,
        frame: &[u8],
        info: FrameInfo,
        protection: impl Into<Protection>,
        out: &mut Datagrams,
    ) -> Result<SealedFrame, SendError> {
        out.clear();
        let layout = FrameLayout::plan(frame.len(), self.max_shard_payload, protection)?;
        let shard_bytes = layout.shard_bytes() as usize;
        let data = layout.data_shards() as usize;
        let recovery = layout.recovery_shards() as usize;
        out.prepare(layout.total_shards(), layout.datagram_len());

        // Plaintext data shards into their slots; the last one zero-padded.
        for (i, chunk) in frame.chunks(shard_bytes).enumerate() {
            let payload = &mut out.slot_mut(i)[HEADER_LEN..HEADER_LEN + shard_bytes];
            payload[..chunk.len()].copy_from_slice(chunk);
            payload[chunk.len()..].fill(0);
        }
        if frame.is_empty() {
            out.slot_mut(0)[HEADER_LEN..HEADER_LEN + shard_bytes].fill(0);
        }

        if recovery > 0 {
            let last = frame.len().saturating_sub(1) / shard_bytes;
            let mut padded = std::mem::take(&mut self.padded);
            padded.clear();
            padded.extend_from_slice(&frame[(last * shard_bytes).min(frame.len())..]);
            padded.resize(shard_bytes, 0);
            let result = self.encode_recovery(&layout, frame, &padded, out);
            self.padded = padded;
            if let Err(e) = result {
                out.clear();
                return Err(e);
            }
        }

        let first_sequence = self.sealer.next_sequence();
        let shards = (0..data as u16)
            .map(Shard::Data)
            .chain((0..recovery as u16).map(Shard::Recovery));
        for (slot, shard) in shards.enumerate() {
            let header = Header::new(
                self.sealer.plane(),
                0,
                info.pts_ns,
                info.index,
                info.keyframe,
                layout,
                shard,
            )?
            .with_encode_us(info.encode_us);
            if let Err(e) = self.sealer.seal_in_place(&header, out.slot_mut(slot)) {
                out.clear();
                return Err(e.into());
            }
        }
        Ok(SealedFrame {
            layout,
            first_sequence,
        })
    }

    /// Computes the recovery shards into slots `data..` of `out`.
    fn encode_recovery(
        &mut self,
        layout: &FrameLayout,
        frame: &[u8],
        padded_last: &[u8],
        out: &mut Datagrams,
    ) -> Result<(), SendError> {
        let shard_bytes = layout.shard_bytes() as usize;
        let data = layout.data_shards() as usize;
        let encoder = self.encoder_for(layout)?;
        let full = frame.len() / shard_bytes;
        for chunk in frame.chunks_exact(shard_bytes).take(data) {
            encoder.add_original_shard(chunk)?;
        }
        if full < data {
            encoder.add_original_shard(padded_last)?;
        }
        let result = encoder.encode()?;
        for (j, shard) in result.recovery_iter().enumerate() {
            out.slot_mut(data + j)[HEADER_LEN..HEADER_LEN + shard_bytes].copy_from_slice(shard);
        }
        Ok(())
    }

    fn encoder_for(&mut self, layout: &FrameLayout) -> Result<&mut ReedSolomonEncoder, SendError> {
        let (d, r, s) = (
            layout.data_shards() as usize,
            layout.recovery_shards() as usize,
            layout.shard_bytes() as usize,
        );
        let encoder = match self.encoder.take() {
            Some(mut e) => {
                e.reset(d, r, s)?;
                e
            }
            None => ReedSolomonEncoder::new(d, r, s)?,
        };
        Ok(self.encoder.insert(encoder))
    }
}

/// Length of a sealed datagram carrying a shard of `shard_bytes`.
pub const fn datagram_len(shard_bytes: u16) -> usize {
    HEADER_LEN + shard_bytes as usize + TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::crypto::Opener;

    fn key() -> DataKey {
        DataKey::new([0x42; 16], [9, 8, 7, 6]).unwrap()
    }

    #[test]
    fn shard_payload_is_checked() {
        for bad in [0, 1, 1407, MAX_SHARD_PAYLOAD + 2] {
            assert!(
                FrameSealer::new(&key(), Plane::Video, bad).is_err(),
                "{bad}"
            );
        }
        assert!(FrameSealer::new(&key(), Plane::Video, 2).is_ok());
        assert!(FrameSealer::new(&key(), Plane::Video, MAX_SHARD_PAYLOAD).is_ok());
        assert_eq!(datagram_len(DEFAULT_SHARD_PAYLOAD), 1464);
        assert_eq!(datagram_len(MAX_SHARD_PAYLOAD), 65_506);
    }

    #[test]
    fn data_shards_come_first_then_recovery_shards() {
        let mut s = FrameSealer::new(&key(), Plane::Video, DEFAULT_SHARD_PAYLOAD).unwrap();
        s.warm_up(100_000, 20).unwrap();
        let frame: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut out = Datagrams::new();
        let sent = s
            .seal_frame(&frame, FrameInfo::new(4, 99, true), 20, &mut out)
            .unwrap();
        assert_eq!(sent.first_sequence, 0);
        assert_eq!(
            (sent.layout.data_shards(), sent.layout.recovery_shards()),
            (8, 2)
        );
        assert_eq!(out.len(), 10);
        assert_eq!(out.as_bytes().len(), 10 * out.datagram_len());
        let mut o = Opener::new(&key(), Plane::Video);
        let mut shard = Vec::new();
        let mut joined = Vec::new();
        for (i, d) in out.iter().enumerate() {
            let h = o.open(d, &mut shard).unwrap();
            assert_eq!(h.sequence(), i as u64);
            assert_eq!((h.frame_index(), h.pts_ns(), h.keyframe()), (4, 99, true));
            if i < 8 {
                assert_eq!(h.shard(), Shard::Data(i as u16));
                joined.extend_from_slice(&shard);
            } else {
                assert_eq!(h.shard(), Shard::Recovery(i as u16 - 8));
            }
        }
        assert_eq!(&joined[..frame.len()], &frame[..]);
        assert!(joined[frame.len()..].iter().all(|&b| b == 0));
        assert_eq!(s.next_sequence(), 10);
    }

    #[test]
    fn the_buffer_is_reused() {
        let mut s = FrameSealer::new(&key(), Plane::Audio, 1000).unwrap();
        let mut out = Datagrams::new();
        s.seal_frame(&[1; 5000], FrameInfo::new(0, 0, false), 50, &mut out)
            .unwrap();
        let cap = out.buf.capacity();
        let ptr = out.buf.as_ptr();
        s.seal_frame(&[2; 300], FrameInfo::new(1, 0, false), 0, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.datagram_len(), datagram_len(300));
        assert_eq!(out.buf.capacity(), cap);
        assert_eq!(out.buf.as_ptr(), ptr);
        assert_eq!(out.get(1), None);
        assert_eq!(out.iter().count(), 1);
    }

    #[test]
    fn an_empty_frame_is_one_small_shard() {
        let mut s = FrameSealer::new(&key(), Plane::Probe, 1408).unwrap();
        let mut out = Datagrams::new();
        let sent = s
            .seal_frame(&[], FrameInfo::new(0, 0, false), 10, &mut out)
            .unwrap();
        assert_eq!(sent.layout.frame_bytes(), 0);
        assert_eq!(out.len(), 3);
        assert_eq!(out.datagram_len(), datagram_len(2));
    }
}
