//! The receiving side of the data plane: datagrams in, frames (or their loss) out.
//!
//! A `PunktfunkReassembler` wraps [`protocol::native::Reassembler`] for one plane. Time is the
//! caller's: every `now_ns` is a reading of one monotonic clock in nanoseconds (such as
//! `CLOCK_MONOTONIC`), and deadlines come back on the same clock. Internally the value 0 of that
//! clock maps onto an `Instant` taken at creation; only differences matter.

use std::time::{Duration, Instant};

use protocol::native::crypto::OpenError;
use protocol::native::{
    DataKey, DropReason, Event, Plane, Reassembler, ReassemblyConfig, ReassemblyStats,
};

use crate::{
    bytes, code, guard, out_size, put, read_sized, PUNKTFUNK_ERR_INVALID_ARGUMENT,
    PUNKTFUNK_ERR_NULL, PUNKTFUNK_OK,
};

/// Plane of encoded video frames (the header's magic byte).
pub const PUNKTFUNK_PLANE_VIDEO: u8 = 0x30;
/// Plane of encoded audio packets.
pub const PUNKTFUNK_PLANE_AUDIO: u8 = 0x31;
/// Plane of a synthetic stream for transport tests.
pub const PUNKTFUNK_PLANE_PROBE: u8 = 0x32;

/// [`PunktfunkEvent::kind`]: a whole frame.
pub const PUNKTFUNK_EVENT_FRAME: u32 = 1;
/// [`PunktfunkEvent::kind`]: frames `index..=last_index` will not be delivered.
pub const PUNKTFUNK_EVENT_LOST: u32 = 2;

/// Dropped: malformed header.
pub const PUNKTFUNK_DROP_MALFORMED: i32 = 1;
/// Dropped: a datagram of another plane.
pub const PUNKTFUNK_DROP_WRONG_PLANE: i32 = 2;
/// Dropped: the length disagrees with the header's shard size.
pub const PUNKTFUNK_DROP_LENGTH: i32 = 3;
/// Dropped: the tag did not verify (wrong key, or altered on the way).
pub const PUNKTFUNK_DROP_BAD_TAG: i32 = 4;
/// Dropped: a sequence number already received.
pub const PUNKTFUNK_DROP_REPLAY: i32 = 5;
/// Dropped: a sequence number below the replay window.
pub const PUNKTFUNK_DROP_TOO_OLD: i32 = 6;
/// Dropped: a shard of a frame already delivered or given up.
pub const PUNKTFUNK_DROP_STALE: i32 = 7;
/// Dropped: a shard whose frame fields differ from the frame's earlier shards.
pub const PUNKTFUNK_DROP_INCONSISTENT: i32 = 8;
/// Dropped: a frame above the configured size limits.
pub const PUNKTFUNK_DROP_TOO_LARGE: i32 = 9;
/// Dropped: no room for the frame in the buffers.
pub const PUNKTFUNK_DROP_OVERFLOW: i32 = 10;

/// Settings of a reassembler. Fill it with [`punktfunk_reassembler_config_default`], then change
/// what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkReassemblerConfig {
    /// `sizeof(PunktfunkReassemblerConfig)`, set by the caller.
    pub size: u32,
    /// `PUNKTFUNK_PLANE_*` (default video).
    pub plane: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
    /// How long an incomplete frame waits once a newer frame began arriving, µs (default
    /// 15 000).
    pub reorder_wait_us: u32,
    /// How long an incomplete frame waits for its next shard when nothing newer arrives, µs
    /// (default 100 000).
    pub stall_timeout_us: u32,
    /// Most frames buffered at once (default 32).
    pub max_pending_frames: u32,
    /// Largest frame accepted, and largest recovery data per frame, bytes (default 64 MiB).
    pub max_frame_bytes: u64,
    /// Most bytes of shards buffered at once over all frames (default 256 MiB).
    pub max_pending_bytes: u64,
}

/// One event of a reassembler, in frame-index order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkEvent {
    /// `sizeof(PunktfunkEvent)`, set by the caller.
    pub size: u32,
    /// `PUNKTFUNK_EVENT_FRAME` or `PUNKTFUNK_EVENT_LOST`.
    pub kind: u32,
    /// The frame index; for a loss, the first lost index.
    pub index: u32,
    /// For a loss, the last lost index (inclusive); for a frame, `index`.
    pub last_index: u32,
    /// Presentation time on the host's monotonic clock, ns (frames only).
    pub pts_ns: u64,
    /// The frame's bytes (frames only; NULL otherwise). Owned by the reassembler and valid until
    /// the next `punktfunk_reassembler_poll_event` or `punktfunk_reassembler_free` on it.
    pub data: *const u8,
    /// Length of `data`.
    pub len: usize,
    /// 1 if the sender marked the frame a keyframe.
    pub keyframe: u8,
    /// 1 if data shards were decoded from recovery shards.
    pub recovered: u8,
    /// Reserved, zero.
    pub reserved: [u8; 2],
    /// How long the host's encoder took over the frame as the sender said, in microseconds; 0
    /// when not said (and from libraries before ABI 1.1, where these bytes were reserved).
    pub encode_us: u32,
}

/// Counters of a reassembler.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkStats {
    /// `sizeof(PunktfunkStats)`, set by the caller.
    pub size: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Datagrams that authenticated.
    pub datagrams: u64,
    /// Frames delivered (including those recovered).
    pub frames_completed: u64,
    /// Frames delivered with data shards decoded from recovery shards.
    pub frames_recovered: u64,
    /// Frames reported lost.
    pub frames_lost: u64,
    /// Authenticated shards not needed (the frame was complete, or a duplicate).
    pub redundant_shards: u64,
    /// Dropped: malformed, wrong plane, wrong length, or inconsistent with the frame.
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

/// Reassembles the frames of one plane. Not thread-safe: one thread at a time (it may move
/// between threads).
pub struct PunktfunkReassembler {
    inner: Reassembler,
    /// The `Instant` of `now_ns == 0`.
    base: Instant,
    /// The bytes of the last polled frame, lent out through [`PunktfunkEvent::data`].
    lent: Vec<u8>,
}

impl PunktfunkReassembler {
    fn at(&self, now_ns: u64) -> Result<Instant, i32> {
        self.base
            .checked_add(Duration::from_nanos(now_ns))
            .ok_or(PUNKTFUNK_ERR_INVALID_ARGUMENT)
    }
}

/// Fills `*cfg` with the defaults. `cfg->size` must be set first.
///
/// # Safety
/// `cfg` is NULL or points to a writable config of `cfg->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_config_default(
    cfg: *mut PunktfunkReassemblerConfig,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let size = unsafe { out_size(cfg)? };
            let d = ReassemblyConfig::default();
            let v = PunktfunkReassemblerConfig {
                size,
                plane: PUNKTFUNK_PLANE_VIDEO,
                reserved: [0; 3],
                reorder_wait_us: micros(d.reorder_wait),
                stall_timeout_us: micros(d.stall_timeout),
                max_pending_frames: d.max_pending_frames.min(u32::MAX as usize) as u32,
                max_frame_bytes: d.max_frame_bytes as u64,
                max_pending_bytes: d.max_pending_bytes as u64,
            };
            // SAFETY: checked non-NULL and at least this struct's size by out_size.
            unsafe { put(cfg, v)? };
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// Creates a reassembler for the session key and salt (the host's `Welcome`) and `cfg` (NULL
/// for the defaults). On success `*out` holds it; free it with [`punktfunk_reassembler_free`].
///
/// Errors: `PUNKTFUNK_ERR_NULL`, `PUNKTFUNK_ERR_STRUCT_SIZE`, `PUNKTFUNK_ERR_INVALID_ARGUMENT`
/// (an all-zero key, an unknown plane).
///
/// # Safety
/// `key` points to 16 bytes, `salt` to 4, `cfg` is NULL or a config of `cfg->size` bytes, `out`
/// is writable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_new(
    key: *const u8,
    salt: *const u8,
    cfg: *const PunktfunkReassemblerConfig,
    out: *mut *mut PunktfunkReassembler,
) -> i32 {
    guard(|| {
        code((|| {
            if out.is_null() {
                return Err(PUNKTFUNK_ERR_NULL);
            }
            // SAFETY: the caller's contract; NULL is checked inside.
            let key = unsafe { data_key(key, salt)? };
            let (plane, config) = if cfg.is_null() {
                (Plane::Video, ReassemblyConfig::default())
            } else {
                // SAFETY: the caller's contract.
                let c = unsafe { read_sized(cfg)? };
                let plane = Plane::from_magic(c.plane).ok_or(PUNKTFUNK_ERR_INVALID_ARGUMENT)?;
                let config = ReassemblyConfig {
                    max_frame_bytes: usize::try_from(c.max_frame_bytes).unwrap_or(usize::MAX),
                    max_pending_frames: c.max_pending_frames as usize,
                    max_pending_bytes: usize::try_from(c.max_pending_bytes).unwrap_or(usize::MAX),
                    reorder_wait: Duration::from_micros(c.reorder_wait_us.into()),
                    stall_timeout: Duration::from_micros(c.stall_timeout_us.into()),
                };
                (plane, config)
            };
            let r = Box::new(PunktfunkReassembler {
                inner: Reassembler::new(&key, plane, config),
                base: Instant::now(),
                lent: Vec::new(),
            });
            // SAFETY: checked non-NULL; the caller's contract makes it writable.
            unsafe { put(out, Box::into_raw(r))? };
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// Frees a reassembler and every frame it lent out. NULL is ignored.
///
/// # Safety
/// `r` is NULL or a reassembler from [`punktfunk_reassembler_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_free(r: *mut PunktfunkReassembler) {
    if !r.is_null() {
        // SAFETY: created by Box::into_raw in punktfunk_reassembler_new, freed once.
        drop(unsafe { Box::from_raw(r) });
    }
}

/// Takes one received datagram at time `now_ns`.
///
/// Returns 0 when it authenticated and was filed (or was a redundant shard), a positive
/// `PUNKTFUNK_DROP_*` reason when it was dropped (normal on a network: the reassembler stays
/// usable), or a negative error. Poll events after every batch of datagrams.
///
/// # Safety
/// `r` is a live reassembler; `datagram` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_push(
    r: *mut PunktfunkReassembler,
    now_ns: u64,
    datagram: *const u8,
    len: usize,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let r = unsafe { r.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let datagram = unsafe { bytes(datagram, len)? };
            let now = r.at(now_ns)?;
            Ok(match r.inner.handle_datagram(now, datagram) {
                Ok(()) => PUNKTFUNK_OK,
                Err(reason) => drop_code(reason),
            })
        })())
    })
}

/// When [`punktfunk_reassembler_handle_timeout`] should run next: returns 1 and stores the
/// deadline (on the caller's clock) in `*deadline_ns`, or returns 0 when nothing waits.
///
/// # Safety
/// `r` is a live reassembler; `deadline_ns` is writable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_poll_timeout_ns(
    r: *const PunktfunkReassembler,
    deadline_ns: *mut u64,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let r = unsafe { r.as_ref() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            if deadline_ns.is_null() {
                return Err(PUNKTFUNK_ERR_NULL);
            }
            let Some(t) = r.inner.poll_timeout() else {
                return Ok(0);
            };
            let ns = t.saturating_duration_since(r.base).as_nanos();
            // SAFETY: checked non-NULL; writable by the caller's contract.
            unsafe { put(deadline_ns, u64::try_from(ns).unwrap_or(u64::MAX))? };
            Ok(1)
        })())
    })
}

/// Gives up the frames whose wait ended at `now_ns`; their loss shows up as events.
///
/// # Safety
/// `r` is a live reassembler.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_handle_timeout(
    r: *mut PunktfunkReassembler,
    now_ns: u64,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let r = unsafe { r.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            let now = r.at(now_ns)?;
            r.inner.handle_timeout(now);
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// The next event: returns 1 and fills `*out`, or 0 when there is none. `out->size` must be set.
///
/// A frame's bytes stay owned by the reassembler and valid until the next call of this function
/// or [`punktfunk_reassembler_free`]; copy them out to keep them longer.
///
/// # Safety
/// `r` is a live reassembler; `out` points to a writable event of `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_poll_event(
    r: *mut PunktfunkReassembler,
    out: *mut PunktfunkEvent,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let r = unsafe { r.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let size = unsafe { out_size(out)? };
            let Some(event) = r.inner.poll_event() else {
                return Ok(0);
            };
            let ev = match event {
                Event::Frame {
                    index,
                    pts_ns,
                    keyframe,
                    encode_us,
                    data,
                    recovered,
                } => {
                    r.lent = data;
                    PunktfunkEvent {
                        size,
                        kind: PUNKTFUNK_EVENT_FRAME,
                        index,
                        last_index: index,
                        pts_ns,
                        data: r.lent.as_ptr(),
                        len: r.lent.len(),
                        keyframe: keyframe.into(),
                        recovered: recovered.into(),
                        reserved: [0; 2],
                        encode_us,
                    }
                }
                Event::Lost { first, last } => PunktfunkEvent {
                    size,
                    kind: PUNKTFUNK_EVENT_LOST,
                    index: first,
                    last_index: last,
                    pts_ns: 0,
                    data: std::ptr::null(),
                    len: 0,
                    keyframe: 0,
                    recovered: 0,
                    reserved: [0; 2],
                    encode_us: 0,
                },
            };
            // SAFETY: checked by out_size.
            unsafe { put(out, ev)? };
            Ok(1)
        })())
    })
}

/// Copies the counters into `*out`. `out->size` must be set.
///
/// # Safety
/// `r` is a live reassembler; `out` points to writable stats of `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_reassembler_stats(
    r: *const PunktfunkReassembler,
    out: *mut PunktfunkStats,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let r = unsafe { r.as_ref() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let size = unsafe { out_size(out)? };
            let s: &ReassemblyStats = r.inner.stats();
            let v = PunktfunkStats {
                size,
                reserved: 0,
                datagrams: s.datagrams,
                frames_completed: s.frames_completed,
                frames_recovered: s.frames_recovered,
                frames_lost: s.frames_lost,
                redundant_shards: s.redundant_shards,
                dropped_malformed: s.dropped_malformed,
                dropped_bad_tag: s.dropped_bad_tag,
                dropped_replay: s.dropped_replay,
                dropped_stale: s.dropped_stale,
                dropped_too_large: s.dropped_too_large,
            };
            // SAFETY: checked by out_size.
            unsafe { put(out, v)? };
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// The session key from the caller's pointers.
///
/// # Safety
/// Non-NULL `key` and `salt` point to 16 and 4 readable bytes.
pub(crate) unsafe fn data_key(key: *const u8, salt: *const u8) -> Result<DataKey, i32> {
    if key.is_null() || salt.is_null() {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    // SAFETY: non-NULL and readable by the caller's contract; byte arrays have no alignment.
    let (key, salt) = unsafe { (key.cast::<[u8; 16]>().read(), salt.cast::<[u8; 4]>().read()) };
    DataKey::new(key, salt).map_err(|_| PUNKTFUNK_ERR_INVALID_ARGUMENT)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn drop_code(reason: DropReason) -> i32 {
    match reason {
        DropReason::Open(OpenError::Header(_)) => PUNKTFUNK_DROP_MALFORMED,
        DropReason::Open(OpenError::WrongPlane(_)) => PUNKTFUNK_DROP_WRONG_PLANE,
        DropReason::Open(OpenError::Length { .. }) => PUNKTFUNK_DROP_LENGTH,
        DropReason::Open(OpenError::BadTag) => PUNKTFUNK_DROP_BAD_TAG,
        DropReason::Open(OpenError::Replay(_)) => PUNKTFUNK_DROP_REPLAY,
        DropReason::Open(OpenError::TooOld(_)) => PUNKTFUNK_DROP_TOO_OLD,
        DropReason::Stale(_) => PUNKTFUNK_DROP_STALE,
        DropReason::Inconsistent(_) => PUNKTFUNK_DROP_INCONSISTENT,
        DropReason::TooLarge { .. } => PUNKTFUNK_DROP_TOO_LARGE,
        DropReason::Overflow(_) => PUNKTFUNK_DROP_OVERFLOW,
    }
}
