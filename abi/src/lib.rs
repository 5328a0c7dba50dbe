//! The C ABI of the `punktfunk/1` client: the receiving side of the data plane (decryption,
//! GF(2^16) FEC recovery, reassembly in frame order), a frame sealer for tests and symmetry, and
//! the control-message codec.
//!
//! Everything here is a thin, panic-free wrapper around [`protocol::native`], which stays
//! sans-I/O: the caller owns the sockets and the clock, passes datagrams, control-stream bytes
//! and the current time in, and takes frames, messages and deadlines out. `include/punktfunk.h`
//! is generated from this crate by cbindgen and checked in; `README.md` describes the rules a C
//! caller follows.
//!
//! # Conventions of every function
//!
//! - Names start with `punktfunk_`; handles are opaque and freed by their `_free` function
//!   (which accepts NULL).
//! - Functions that can fail return an `int32_t`: 0 (or a documented positive value) on
//!   success, a negative `PUNKTFUNK_ERR_*` code otherwise; [`punktfunk_strerror`] names it.
//! - Every pointer argument is checked: NULL gives [`PUNKTFUNK_ERR_NULL`]. A byte buffer may be
//!   NULL only with length 0.
//! - No panic crosses the boundary: each entry point catches one and returns
//!   [`PUNKTFUNK_ERR_INTERNAL`].
//! - Structs with a `size` field are extensible: the caller sets `size = sizeof(struct)` before
//!   passing one, in or out. A size below the struct's size in ABI 1.0 is refused with
//!   [`PUNKTFUNK_ERR_STRUCT_SIZE`]; a larger one (a newer header) is accepted, and a library
//!   that does not know the extra fields requires them to be zero on input and leaves them
//!   untouched on output.
//! - Booleans are `uint8_t`, 0 false and anything else true on input, 0 or 1 on output.

use std::panic::{catch_unwind, AssertUnwindSafe};

pub mod control;
pub mod reassembler;
pub mod sealer;

pub use control::*;
pub use reassembler::*;
pub use sealer::*;

/// Major version of the ABI: changes when an existing function or struct layout changes.
pub const PUNKTFUNK_ABI_VERSION_MAJOR: u32 = 1;
/// Minor version of the ABI: grows when functions, constants or trailing struct fields are added.
pub const PUNKTFUNK_ABI_VERSION_MINOR: u32 = 1;
/// The version this header describes, `major << 16 | minor`; compare with
/// [`punktfunk_abi_version`] at run time.
pub const PUNKTFUNK_ABI_VERSION: u32 =
    (PUNKTFUNK_ABI_VERSION_MAJOR << 16) | PUNKTFUNK_ABI_VERSION_MINOR;

/// Success.
pub const PUNKTFUNK_OK: i32 = 0;
/// A required pointer was NULL.
pub const PUNKTFUNK_ERR_NULL: i32 = -1;
/// A struct's `size` field is too small, or a newer header's extra fields are not zero.
pub const PUNKTFUNK_ERR_STRUCT_SIZE: i32 = -2;
/// An argument is out of range: unknown plane, all-zero key, odd shard payload, a string that
/// is not UTF-8 or too long.
pub const PUNKTFUNK_ERR_INVALID_ARGUMENT: i32 = -3;
/// The output buffer is too small; the length needed was stored.
pub const PUNKTFUNK_ERR_BUFFER_TOO_SMALL: i32 = -4;
/// The frame cannot be cut into shards (more than 65 535 of them).
pub const PUNKTFUNK_ERR_FRAME_TOO_LARGE: i32 = -5;
/// Sealing failed: the sequence numbers of the key are used up.
pub const PUNKTFUNK_ERR_CRYPTO: i32 = -6;
/// The control stream is broken (a frame of length 0 or over the limit); it cannot continue.
pub const PUNKTFUNK_ERR_CONTROL_STREAM: i32 = -7;
/// One control message did not decode; it was consumed and the stream goes on.
pub const PUNKTFUNK_ERR_CONTROL_MESSAGE: i32 = -8;
/// A bug inside the library (a caught panic). The handle should be freed.
pub const PUNKTFUNK_ERR_INTERNAL: i32 = -9;

/// The ABI version of the loaded library, `major << 16 | minor`.
///
/// A caller built against [`PUNKTFUNK_ABI_VERSION`] works with a library of the same major
/// version and a minor version at least its own.
#[no_mangle]
pub extern "C" fn punktfunk_abi_version() -> u32 {
    PUNKTFUNK_ABI_VERSION
}

/// A static, NUL-terminated description of a return code: an error (negative), 0, or a drop
/// reason (`PUNKTFUNK_DROP_*`, positive). Never NULL; unknown codes read "unknown code".
#[no_mangle]
pub extern "C" fn punktfunk_strerror(code: i32) -> *const std::ffi::c_char {
    let s: &'static std::ffi::CStr = match code {
        PUNKTFUNK_OK => c"ok",
        PUNKTFUNK_ERR_NULL => c"null pointer argument",
        PUNKTFUNK_ERR_STRUCT_SIZE => c"struct size field too small or unknown fields set",
        PUNKTFUNK_ERR_INVALID_ARGUMENT => c"invalid argument",
        PUNKTFUNK_ERR_BUFFER_TOO_SMALL => c"output buffer too small",
        PUNKTFUNK_ERR_FRAME_TOO_LARGE => c"frame too large",
        PUNKTFUNK_ERR_CRYPTO => c"sealing failed",
        PUNKTFUNK_ERR_CONTROL_STREAM => c"control stream broken",
        PUNKTFUNK_ERR_CONTROL_MESSAGE => c"control message did not decode",
        PUNKTFUNK_ERR_INTERNAL => c"internal error",
        PUNKTFUNK_DROP_MALFORMED => c"dropped: malformed header",
        PUNKTFUNK_DROP_WRONG_PLANE => c"dropped: datagram of another plane",
        PUNKTFUNK_DROP_LENGTH => c"dropped: length disagrees with the header",
        PUNKTFUNK_DROP_BAD_TAG => c"dropped: authentication failed",
        PUNKTFUNK_DROP_REPLAY => c"dropped: replayed sequence",
        PUNKTFUNK_DROP_TOO_OLD => c"dropped: sequence older than the replay window",
        PUNKTFUNK_DROP_STALE => c"dropped: shard of a frame delivered or given up",
        PUNKTFUNK_DROP_INCONSISTENT => c"dropped: shard disagrees with its frame",
        PUNKTFUNK_DROP_TOO_LARGE => c"dropped: frame over the size limit",
        PUNKTFUNK_DROP_OVERFLOW => c"dropped: no room for the frame",
        _ => c"unknown code",
    };
    s.as_ptr()
}

/// Runs `f`, turning a panic into [`PUNKTFUNK_ERR_INTERNAL`].
fn guard(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(PUNKTFUNK_ERR_INTERNAL)
}

/// The bytes `ptr[..len]`; NULL is accepted only with `len == 0`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` bytes for the returned lifetime.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], i32> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(PUNKTFUNK_ERR_NULL)
        };
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads an extensible input struct whose first field is its `u32` size.
///
/// # Safety
/// A non-NULL `ptr` must point to a struct of at least its `size` field's bytes.
unsafe fn read_sized<T: Copy>(ptr: *const T) -> Result<T, i32> {
    if ptr.is_null() {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    // SAFETY: non-NULL; every sized struct starts with its u32 size, which the caller provides.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    let ours = size_of::<T>();
    if size < ours {
        return Err(PUNKTFUNK_ERR_STRUCT_SIZE);
    }
    if size > ours {
        // SAFETY: the caller says the struct is `size` bytes long.
        let tail = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().add(ours), size - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(PUNKTFUNK_ERR_STRUCT_SIZE);
        }
    }
    // SAFETY: at least `size_of::<T>()` bytes are readable; every T here is plain old data
    // (integers, arrays, pointers), valid for any bit pattern.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Checks an extensible output struct's size field and returns it.
///
/// # Safety
/// A non-NULL `ptr` must point to writable memory of at least its `size` field's bytes.
unsafe fn out_size<T>(ptr: *mut T) -> Result<u32, i32> {
    // SAFETY: the caller's contract.
    unsafe { out_size_from(ptr, size_of::<T>()) }
}

/// [`out_size`] for a struct that grew after ABI 1.0: a caller built against an older header
/// passes its smaller size, down to `min` (the struct's size in ABI 1.0).
///
/// # Safety
/// As [`out_size`].
unsafe fn out_size_from<T>(ptr: *mut T, min: usize) -> Result<u32, i32> {
    if ptr.is_null() {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    // SAFETY: non-NULL; every sized struct starts with its u32 size.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() };
    if (size as usize) < min.min(size_of::<T>()) {
        return Err(PUNKTFUNK_ERR_STRUCT_SIZE);
    }
    Ok(size)
}

/// Stores the first `size` bytes of `v` in `*out` (all of `v` when `size` is larger): a caller
/// with an older header gets the fields it knows, and the bytes past them stay untouched.
///
/// # Safety
/// A non-NULL `out` must be valid for a write of `min(size, size_of::<T>())` bytes.
unsafe fn put_prefix<T>(out: *mut T, v: T, size: u32) -> Result<(), i32> {
    if out.is_null() {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    let n = (size as usize).min(size_of::<T>());
    // SAFETY: `v` is a plain struct of at least `n` bytes; `out` is writable for `n` bytes by
    // the caller's contract; the two do not overlap (`v` is a local).
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const v).cast::<u8>(), out.cast::<u8>(), n);
    }
    Ok(())
}

/// Stores `v` in `*out` after checking the pointer.
///
/// # Safety
/// A non-NULL `out` must be valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), i32> {
    if out.is_null() {
        return Err(PUNKTFUNK_ERR_NULL);
    }
    // SAFETY: non-NULL and, by the caller's contract, writable.
    unsafe { out.write_unaligned(v) };
    Ok(())
}

/// Folds a `Result` of error codes into the return value.
fn code(r: Result<i32, i32>) -> i32 {
    r.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_words() {
        for c in -9..=10 {
            // SAFETY: strerror returns a static NUL-terminated string.
            let s = unsafe { std::ffi::CStr::from_ptr(punktfunk_strerror(c)) };
            assert_ne!(s.to_str().unwrap(), "unknown code", "code {c}");
        }
        // SAFETY: as above.
        let s = unsafe { std::ffi::CStr::from_ptr(punktfunk_strerror(-1000)) };
        assert_eq!(s.to_str().unwrap(), "unknown code");
    }

    #[test]
    fn version_is_major_and_minor() {
        assert_eq!(punktfunk_abi_version() >> 16, PUNKTFUNK_ABI_VERSION_MAJOR);
        assert_eq!(
            punktfunk_abi_version() & 0xFFFF,
            PUNKTFUNK_ABI_VERSION_MINOR
        );
    }
}
