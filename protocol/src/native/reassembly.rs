//! The receiving side of the data plane: datagrams in, whole frames (or their loss) out.
//!
//! [`Reassembler`] follows quinn's contract: [`handle_datagram`](Reassembler::handle_datagram)
//! and [`handle_timeout`](Reassembler::handle_timeout) take the time from the caller,
//! [`poll_event`](Reassembler::poll_event) hands out [`Event`]s and
//! [`poll_timeout`](Reassembler::poll_timeout) says when to call `handle_timeout` next. It never
//! reads a clock.
//!
//! # Rules
//!
//! - A datagram is opened (header, length, replay window, tag) before anything else looks at it;
//!   only an authenticated header can make the reassembler allocate.
//! - A frame is complete when all its data shards arrived, or when data and recovery shards
//!   together reach the data-shard count; then the missing data shards are decoded
//!   (`recovered: true`).
//! - Frames are delivered in index order. The oldest undelivered frame (the *head*) holds newer
//!   complete frames back until it completes or is given up. It is given up ([`Event::Lost`],
//!   newer frames then flow) at the earliest of:
//!   - [`reorder_wait`](ReassemblyConfig::reorder_wait) after the first shard of any newer frame
//!     arrived. The sender sends frames in order, so once a newer frame has begun arriving every
//!     shard of the head is on its way or lost; the wait covers reordering on the path, and it
//!     bounds what a lost frame adds to the delivery of the frames behind it.
//!   - [`stall_timeout`](ReassemblyConfig::stall_timeout) after the head's last shard, when
//!     nothing newer arrives (the last frame before a pause of the stream).
//!
//!   A head nothing at all arrived for is a gap; it is reported lost with the first rule.
//! - Frame indices start at 0 in each plane of a session and must not skip: a missing index
//!   reads as a lost frame.
//! - A shard of a frame older than the last delivered one, or of a frame given up, is dropped
//!   as [`DropReason::Stale`]; shards of a frame already complete (the recovery shards of a frame
//!   that lost nothing, or duplicates) are accepted and counted as redundant.
//! - Memory is bounded: a frame larger than [`max_frame_bytes`](ReassemblyConfig::max_frame_bytes)
//!   is refused from its header alone, and at most
//!   [`max_pending_frames`](ReassemblyConfig::max_pending_frames) frames of at most
//!   [`max_pending_bytes`](ReassemblyConfig::max_pending_bytes) (counting each frame's data and
//!   recovery shards) are buffered. A newer frame that does not fit makes the oldest frames give
//!   up early; one older than every buffered frame is dropped.
//!
//! Delivered frames wait in the event queue until polled; poll after every batch of input.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use reed_solomon_simd::ReedSolomonDecoder;
use thiserror::Error;

use super::crypto::{DataKey, OpenError, Opener};
use super::header::{FecScheme, FrameLayout, Header, Plane, Shard};

/// Limits and waits of a [`Reassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Largest frame accepted, and largest recovery data per frame (default 64 MiB).
    pub max_frame_bytes: usize,
    /// Most frames buffered at once (default 32).
    pub max_pending_frames: usize,
    /// Most bytes of shards buffered at once, over all frames (default 256 MiB).
    pub max_pending_bytes: usize,
    /// How long an incomplete head waits once a newer frame began arriving (default 15 ms).
    pub reorder_wait: Duration,
    /// How long an incomplete head waits for its next shard when nothing newer arrives
    /// (default 100 ms).
    pub stall_timeout: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 << 20,
            max_pending_frames: 32,
            max_pending_bytes: 256 << 20,
            reorder_wait: Duration::from_millis(15),
            stall_timeout: Duration::from_millis(100),
        }
    }
}

/// What the reassembler hands out, in frame-index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole frame.
    Frame {
        /// The frame index.
        index: u32,
        /// Presentation time on the host's monotonic clock, in nanoseconds.
        pts_ns: u64,
        /// Whether the sender marked it a keyframe.
        keyframe: bool,
        /// The encoder's time on it as the sender said, in microseconds (0: not said).
        encode_us: u32,
        /// The frame's bytes.
        data: Vec<u8>,
        /// Whether data shards had to be decoded from recovery shards.
        recovered: bool,
    },
    /// Frames `first..=last` will not be delivered.
    Lost {
        /// First lost index.
        first: u32,
        /// Last lost index (inclusive).
        last: u32,
    },
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DropReason {
    /// It did not open: a malformed header, another plane, a wrong length, a bad tag, or a
    /// replayed or too old sequence number.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A shard of a frame already delivered or given up.
    #[error("shard of stale frame {0}")]
    Stale(u32),
    /// A shard whose frame fields differ from the frame's earlier shards.
    #[error("shard disagrees with earlier shards of frame {0}")]
    Inconsistent(u32),
    /// A frame above the configured size limit.
    #[error("frame {index} of {bytes} bytes exceeds the limit")]
    TooLarge {
        /// The frame index.
        index: u32,
        /// Bytes its shards would need.
        bytes: usize,
    },
    /// No room for the frame: it is older than every buffered frame and the buffers are full.
    #[error("no room for frame {0}")]
    Overflow(u32),
}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Datagrams that authenticated.
    pub datagrams: u64,
    /// Frames delivered (including those recovered).
    pub frames_completed: u64,
    /// Frames delivered with data shards decoded from recovery shards.
    pub frames_recovered: u64,
    /// Frames reported lost.
    pub frames_lost: u64,
    /// Authenticated shards not needed: the frame was already complete, or a duplicate shard.
    pub redundant_shards: u64,
    /// Dropped: malformed header, wrong plane, wrong length or fields inconsistent with the
    /// frame's other shards.
    pub dropped_malformed: u64,
    /// Dropped: the tag did not verify.
    pub dropped_bad_tag: u64,
    /// Dropped: replayed, or older than the replay window.
    pub dropped_replay: u64,
    /// Dropped: the frame was already delivered or given up.
    pub dropped_stale: u64,
    /// Dropped: over the size limits, or no room in the buffers.
    pub dropped_too_large: u64,
}

/// Reassembles the frames of one plane.
pub struct Reassembler {
    config: ReassemblyConfig,
    opener: Opener,
    decoder: Option<ReedSolomonDecoder>,
    /// The last opened shard.
    scratch: Vec<u8>,
    pending: BTreeMap<u32, Pending>,
    /// Bytes charged for the pending frames.
    pending_bytes: usize,
    /// The next index to deliver (or give up).
    next_index: u64,
    last_delivered: Option<u32>,
    events: VecDeque<Event>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler for `plane` that has received nothing.
    pub fn new(key: &DataKey, plane: Plane, config: ReassemblyConfig) -> Self {
        Self {
            config,
            opener: Opener::new(key, plane),
            decoder: None,
            scratch: Vec::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            next_index: 0,
            last_delivered: None,
            events: VecDeque::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// Takes one received datagram.
    ///
    /// `Ok` means it authenticated and was filed (or was a redundant shard of a complete
    /// frame); an error says why it was dropped. Either way the reassembler stays usable.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DropReason> {
        let header = match self.opener.open(datagram, &mut self.scratch) {
            Ok(h) => h,
            Err(e) => {
                let reason = DropReason::from(e);
                self.count_drop(reason);
                return Err(reason);
            }
        };
        self.stats.datagrams += 1;
        let r = self.file(now, &header);
        if let Err(reason) = r {
            self.count_drop(reason);
        }
        r
    }

    /// Gives up frames whose wait ended at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now, false);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next, if anything waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.first_key_value()?;
        self.head_deadline(self.next_index)
    }

    /// The next event, in frame-index order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The counters.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Bytes currently charged for buffered frames.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Number of frames buffered.
    pub fn pending_frames(&self) -> usize {
        self.pending.len()
    }

    /// Builds the coder's tables and work space for frames laid out as `layout`, so that the
    /// first recovery does not pay for them.
    pub fn warm_up(&mut self, layout: &FrameLayout) {
        super::fec::warm_up();
        if layout.fec() == FecScheme::None {
            return;
        }
        let (d, r, s) = (
            layout.data_shards() as usize,
            layout.recovery_shards() as usize,
            layout.shard_bytes() as usize,
        );
        let Ok(decoder) = decoder_for(&mut self.decoder, d, r, s) else {
            return;
        };
        // The code is linear: all-zero shards are a valid codeword, so any d of them decode.
        let zeros = vec![0u8; s];
        let _ = decoder.add_recovery_shard(0, &zeros);
        for i in 1..d {
            let _ = decoder.add_original_shard(i, &zeros);
        }
        let _ = decoder.decode();
    }

    /// Files an authenticated shard.
    fn file(&mut self, now: Instant, header: &Header) -> Result<(), DropReason> {
        let index = header.frame_index();
        if (index as u64) < self.next_index {
            if self.last_delivered == Some(index) {
                self.stats.redundant_shards += 1;
                return Ok(());
            }
            return Err(DropReason::Stale(index));
        }
        let mut created = false;
        if !self.pending.contains_key(&index) {
            self.make_pending(now, header)?;
            created = true;
        }
        let Some(frame) = self.pending.get_mut(&index) else {
            // make_pending inserted it or failed; neither leaves it absent here.
            return Err(DropReason::Overflow(index));
        };
        if frame.layout != *header.layout()
            || frame.pts_ns != header.pts_ns()
            || frame.keyframe != header.keyframe()
            || frame.encode_us != header.encode_us()
        {
            return Err(DropReason::Inconsistent(index));
        }
        frame.last_at = now;
        if !frame.receiving() {
            self.stats.redundant_shards += 1;
            return Ok(());
        }
        if !frame.store(header.shard(), &self.scratch) {
            self.stats.redundant_shards += 1;
            return Ok(());
        }
        if frame.enough() {
            let recovered = frame.data_count < frame.layout.data_shards() as usize;
            let ok = !recovered || frame.decode(&mut self.decoder);
            // The recovery shards are no longer needed.
            frame.recovery = Vec::new();
            frame.state = if ok {
                State::Complete { recovered }
            } else {
                State::Failed
            };
        }
        let completed = !frame.receiving();
        if created || completed {
            self.advance(now, false);
        }
        Ok(())
    }

    /// Buffers a new frame, making room if needed.
    fn make_pending(&mut self, now: Instant, header: &Header) -> Result<(), DropReason> {
        let index = header.frame_index();
        let l = header.layout();
        let s = l.shard_bytes() as usize;
        let data_bytes = l.data_shards() as usize * s;
        let recovery_bytes = l.recovery_shards() as usize * s;
        if l.frame_bytes() as usize > self.config.max_frame_bytes
            || recovery_bytes > self.config.max_frame_bytes
        {
            return Err(DropReason::TooLarge {
                index,
                bytes: data_bytes + recovery_bytes,
            });
        }
        let charge = data_bytes + recovery_bytes;
        if charge > self.config.max_pending_bytes {
            return Err(DropReason::TooLarge {
                index,
                bytes: charge,
            });
        }
        while self.pending.len() >= self.config.max_pending_frames.max(1)
            || self.pending_bytes + charge > self.config.max_pending_bytes
        {
            match self.pending.first_key_value() {
                Some((&oldest, _)) if oldest < index => self.advance(now, true),
                _ => return Err(DropReason::Overflow(index)),
            }
        }
        self.pending_bytes += charge;
        self.pending.insert(
            index,
            Pending {
                layout: *l,
                pts_ns: header.pts_ns(),
                keyframe: header.keyframe(),
                encode_us: header.encode_us(),
                data: vec![0; data_bytes],
                recovery: Vec::new(),
                have: vec![0; l.total_shards().div_ceil(64)],
                data_count: 0,
                recovery_count: 0,
                first_at: now,
                last_at: now,
                state: State::Receiving,
                charge,
            },
        );
        Ok(())
    }

    /// Delivers complete heads and gives up expired ones; with `force`, gives up one head
    /// (a gap or the oldest frame) whatever its deadline, then continues as usual.
    fn advance(&mut self, now: Instant, mut force: bool) {
        loop {
            let Some((&first, frame)) = self.pending.first_key_value() else {
                return;
            };
            let head = self.next_index;
            if head == first as u64 {
                match frame.state {
                    State::Complete { .. } => {
                        self.deliver(first);
                        force = false;
                        continue;
                    }
                    State::Failed => {
                        self.remove(first);
                        self.lose(head, first);
                        continue;
                    }
                    State::Receiving => {}
                }
            }
            let expired = self.head_deadline(head).is_some_and(|t| t <= now);
            if !(expired || force) {
                return;
            }
            force = false;
            if head == first as u64 {
                self.remove(first);
                self.lose(head, first);
            } else {
                // A gap: nothing arrived for `head..first`.
                self.lose(head, first - 1);
            }
        }
    }

    /// When the head is given up, if it can be.
    fn head_deadline(&self, head: u64) -> Option<Instant> {
        let head32 = u32::try_from(head).ok()?;
        let newer = self
            .pending
            .range((Bound::Excluded(head32), Bound::Unbounded))
            .map(|(_, f)| f.first_at)
            .min()
            .map(|t| t + self.config.reorder_wait);
        let stall = self
            .pending
            .get(&head32)
            .filter(|f| f.receiving())
            .map(|f| f.last_at + self.config.stall_timeout);
        match (newer, stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn deliver(&mut self, index: u32) {
        let Some(mut frame) = self.remove(index) else {
            return;
        };
        let recovered = matches!(frame.state, State::Complete { recovered: true });
        frame.data.truncate(frame.layout.frame_bytes() as usize);
        self.stats.frames_completed += 1;
        self.stats.frames_recovered += recovered as u64;
        self.events.push_back(Event::Frame {
            index,
            pts_ns: frame.pts_ns,
            keyframe: frame.keyframe,
            encode_us: frame.encode_us,
            data: frame.data,
            recovered,
        });
        self.next_index = index as u64 + 1;
        self.last_delivered = Some(index);
    }

    /// Reports `first..=last` lost and moves past them.
    fn lose(&mut self, first: u64, last: u32) {
        // `first <= last` holds: `first` is the head and `last` is at least the head.
        let first32 = first as u32;
        self.stats.frames_lost += last as u64 - first + 1;
        self.events.push_back(Event::Lost {
            first: first32,
            last,
        });
        self.next_index = last as u64 + 1;
    }

    fn remove(&mut self, index: u32) -> Option<Pending> {
        let frame = self.pending.remove(&index)?;
        self.pending_bytes -= frame.charge;
        Some(frame)
    }

    fn count_drop(&mut self, reason: DropReason) {
        let s = &mut self.stats;
        match reason {
            DropReason::Open(
                OpenError::Header(_) | OpenError::WrongPlane(_) | OpenError::Length { .. },
            )
            | DropReason::Inconsistent(_) => s.dropped_malformed += 1,
            DropReason::Open(OpenError::BadTag) => s.dropped_bad_tag += 1,
            DropReason::Open(OpenError::Replay(_) | OpenError::TooOld(_)) => s.dropped_replay += 1,
            DropReason::Stale(_) => s.dropped_stale += 1,
            DropReason::TooLarge { .. } | DropReason::Overflow(_) => s.dropped_too_large += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Receiving,
    Complete {
        recovered: bool,
    },
    /// Enough shards arrived but decoding failed (a sender bug); reported lost.
    Failed,
}

/// A frame being received.
struct Pending {
    layout: FrameLayout,
    pts_ns: u64,
    keyframe: bool,
    encode_us: u32,
    /// The data shards back to back.
    data: Vec<u8>,
    /// The recovery shards back to back; allocated at the first one.
    recovery: Vec<u8>,
    /// Bit `i` for data shard `i`, bit `data_shards + j` for recovery shard `j`.
    have: Vec<u64>,
    data_count: usize,
    recovery_count: usize,
    first_at: Instant,
    last_at: Instant,
    state: State,
    /// Bytes charged against the buffer limit: all data and recovery shards.
    charge: usize,
}

impl Pending {
    fn receiving(&self) -> bool {
        self.state == State::Receiving
    }

    fn enough(&self) -> bool {
        let d = self.layout.data_shards() as usize;
        self.data_count == d || self.data_count + self.recovery_count >= d
    }

    /// Stores a shard; false if it was already there.
    fn store(&mut self, shard: Shard, bytes: &[u8]) -> bool {
        let s = self.layout.shard_bytes() as usize;
        let d = self.layout.data_shards() as usize;
        let (bit, dest) = match shard {
            Shard::Data(i) => (i as usize, &mut self.data),
            Shard::Recovery(j) => {
                if self.recovery.is_empty() {
                    self.recovery = vec![0; self.layout.recovery_shards() as usize * s];
                }
                (d + j as usize, &mut self.recovery)
            }
        };
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.have[word] & mask != 0 {
            return false;
        }
        let at = match shard {
            Shard::Data(i) => i as usize * s,
            Shard::Recovery(j) => j as usize * s,
        };
        // Header parsing bounds the index and the opener the length, so this always fits.
        let Some(slot) = dest.get_mut(at..at + s) else {
            return false;
        };
        slot.copy_from_slice(bytes);
        self.have[word] |= mask;
        match shard {
            Shard::Data(_) => self.data_count += 1,
            Shard::Recovery(_) => self.recovery_count += 1,
        }
        true
    }

    fn has(&self, bit: usize) -> bool {
        self.have[bit / 64] & (1u64 << (bit % 64)) != 0
    }

    /// Restores the missing data shards from the recovery shards.
    fn decode(&mut self, decoder: &mut Option<ReedSolomonDecoder>) -> bool {
        let (d, r, s) = (
            self.layout.data_shards() as usize,
            self.layout.recovery_shards() as usize,
            self.layout.shard_bytes() as usize,
        );
        let Ok(dec) = decoder_for(decoder, d, r, s) else {
            return false;
        };
        for i in 0..d {
            if self.has(i)
                && dec
                    .add_original_shard(i, &self.data[i * s..(i + 1) * s])
                    .is_err()
            {
                return false;
            }
        }
        for j in 0..r {
            if self.has(d + j)
                && dec
                    .add_recovery_shard(j, &self.recovery[j * s..(j + 1) * s])
                    .is_err()
            {
                return false;
            }
        }
        let Ok(result) = dec.decode() else {
            return false;
        };
        for (i, shard) in result.restored_original_iter() {
            match self.data.get_mut(i * s..(i + 1) * s) {
                Some(slot) if shard.len() == s => slot.copy_from_slice(shard),
                _ => return false,
            }
        }
        true
    }
}

fn decoder_for(
    decoder: &mut Option<ReedSolomonDecoder>,
    d: usize,
    r: usize,
    s: usize,
) -> Result<&mut ReedSolomonDecoder, reed_solomon_simd::Error> {
    let dec = match decoder.take() {
        Some(mut dec) => {
            dec.reset(d, r, s)?;
            dec
        }
        None => ReedSolomonDecoder::new(d, r, s)?,
    };
    Ok(decoder.insert(dec))
}
