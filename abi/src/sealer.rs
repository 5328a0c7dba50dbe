//! The sending side of the data plane, for tests and for symmetry: a frame in, its sealed
//! datagrams out, back to back in a buffer the sealer owns.

use protocol::native::send::SendError;
use protocol::native::{Datagrams, FrameInfo, FrameSealer, Plane};

use crate::reassembler::data_key;
use crate::{
    bytes, code, guard, out_size, put, PUNKTFUNK_ERR_CRYPTO, PUNKTFUNK_ERR_FRAME_TOO_LARGE,
    PUNKTFUNK_ERR_INTERNAL, PUNKTFUNK_ERR_INVALID_ARGUMENT, PUNKTFUNK_ERR_NULL, PUNKTFUNK_OK,
};

/// Default largest shard payload: a sealed datagram of 1464 bytes fits a 1500-byte IPv4 MTU.
pub const PUNKTFUNK_DEFAULT_SHARD_PAYLOAD: u16 = 1408;

/// Cuts the frames of one plane into sealed datagrams. One thread at a time.
pub struct PunktfunkSealer {
    inner: FrameSealer,
    out: Datagrams,
}

/// The datagrams of one sealed frame.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PunktfunkDatagrams {
    /// `sizeof(PunktfunkDatagrams)`, set by the caller.
    pub size: u32,
    /// Number of datagrams: data shards first, in order, then recovery shards.
    pub count: u32,
    /// Length of every datagram; datagram `i` starts at `data + i * datagram_len`.
    pub datagram_len: usize,
    /// The datagrams back to back. Owned by the sealer, valid until its next
    /// `punktfunk_sealer_seal_frame` or `punktfunk_sealer_free`.
    pub data: *const u8,
    /// Sequence number of the first datagram.
    pub first_sequence: u64,
    /// Data shards of the frame.
    pub data_shards: u16,
    /// Recovery shards of the frame (0 without FEC).
    pub recovery_shards: u16,
    /// Bytes of every shard.
    pub shard_bytes: u16,
    /// Reserved, zero.
    pub reserved: u16,
}

/// Creates a sealer for `plane` (`PUNKTFUNK_PLANE_*`) with shards of at most
/// `max_shard_payload` bytes (even, 2 to 65 450; `PUNKTFUNK_DEFAULT_SHARD_PAYLOAD` on a
/// 1500-byte MTU). Free it with [`punktfunk_sealer_free`].
///
/// # Safety
/// `key` points to 16 bytes, `salt` to 4; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_sealer_new(
    key: *const u8,
    salt: *const u8,
    plane: u8,
    max_shard_payload: u16,
    out: *mut *mut PunktfunkSealer,
) -> i32 {
    guard(|| {
        code((|| {
            if out.is_null() {
                return Err(PUNKTFUNK_ERR_NULL);
            }
            // SAFETY: the caller's contract; NULL is checked inside.
            let key = unsafe { data_key(key, salt)? };
            let plane = Plane::from_magic(plane).ok_or(PUNKTFUNK_ERR_INVALID_ARGUMENT)?;
            let inner = FrameSealer::new(&key, plane, max_shard_payload)
                .map_err(|_| PUNKTFUNK_ERR_INVALID_ARGUMENT)?;
            let s = Box::new(PunktfunkSealer {
                inner,
                out: Datagrams::new(),
            });
            // SAFETY: checked non-NULL; writable by the caller's contract.
            unsafe { put(out, Box::into_raw(s))? };
            Ok(PUNKTFUNK_OK)
        })())
    })
}

/// Frees a sealer and its datagrams. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a sealer from [`punktfunk_sealer_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_sealer_free(s: *mut PunktfunkSealer) {
    if !s.is_null() {
        // SAFETY: created by Box::into_raw in punktfunk_sealer_new, freed once.
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Seals one frame into datagrams and describes them in `*out` (`out->size` must be set).
///
/// `frame_index` grows by one per frame from 0 (the receiver reads a gap as loss); `pts_ns` is
/// the presentation time; `fec_percent` recovery shards per 100 data shards (at least 2), 0 for
/// none. The datagrams replace those of the previous call.
///
/// # Safety
/// `s` is a live sealer; `frame` points to `len` readable bytes (or is NULL with `len` 0);
/// `out` points to writable datagrams of `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn punktfunk_sealer_seal_frame(
    s: *mut PunktfunkSealer,
    frame: *const u8,
    len: usize,
    frame_index: u32,
    pts_ns: u64,
    keyframe: u8,
    fec_percent: u8,
    out: *mut PunktfunkDatagrams,
) -> i32 {
    guard(|| {
        code((|| {
            // SAFETY: the caller's contract.
            let s = unsafe { s.as_mut() }.ok_or(PUNKTFUNK_ERR_NULL)?;
            // SAFETY: the caller's contract.
            let frame = unsafe { bytes(frame, len)? };
            // SAFETY: the caller's contract.
            let size = unsafe { out_size(out)? };
            let sealed = s
                .inner
                .seal_frame(
                    frame,
                    FrameInfo::new(frame_index, pts_ns, keyframe != 0),
                    fec_percent,
                    &mut s.out,
                )
                .map_err(|e| match e {
                    SendError::Layout(_) => PUNKTFUNK_ERR_FRAME_TOO_LARGE,
                    SendError::Crypto(_) => PUNKTFUNK_ERR_CRYPTO,
                    SendError::ShardPayload(_) => PUNKTFUNK_ERR_INVALID_ARGUMENT,
                    SendError::Fec(_) => PUNKTFUNK_ERR_INTERNAL,
                })?;
            let v = PunktfunkDatagrams {
                size,
                // At most 65 535 data and 65 535 recovery shards.
                count: s.out.len() as u32,
                datagram_len: s.out.datagram_len(),
                data: s.out.as_bytes().as_ptr(),
                first_sequence: sealed.first_sequence,
                data_shards: sealed.layout.data_shards(),
                recovery_shards: sealed.layout.recovery_shards(),
                shard_bytes: sealed.layout.shard_bytes(),
                reserved: 0,
            };
            // SAFETY: checked by out_size.
            unsafe { put(out, v)? };
            Ok(PUNKTFUNK_OK)
        })())
    })
}
