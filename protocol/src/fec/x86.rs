//! x86 kernels: single-slice multiply-add ([`mul_add_slice`]) and whole-code encoders.
//!
//! The encoders compute a parity vector as `Σ_i m[j][i] · data_i`: each data vector is loaded
//! (and for the nibble kernels split into its low and high nibbles) once, then multiplied into
//! up to `L::ROWS` parity accumulators held in registers, and every parity vector is stored once,
//! never read back. One product is two `pshufb` lookups and two XORs with the nibble tables (one
//! three-way XOR with AVX-512), or one `gf2p8affineqb` and one XOR with GFNI (with AVX-512, two
//! data shards per step share one three-way XOR into the accumulator). A pass covers two
//! vectors of every shard (64 bytes with AVX2, 128 with AVX-512): those bytes of all data shards
//! stay in L1 while the passes for successive groups of parity rows read them again. Shard tails
//! that are not a whole number of vectors end with one vector that overlaps the previous one;
//! parity is computed from the data alone, so writing those bytes twice gives the same result.

use std::arch::x86_64::*;

use super::{
    Kernel, AFFINE_MATRICES, AUDIO_AFFINE, AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS, AUDIO_TABLES,
    CAUCHY_AFFINE, CAUCHY_TABLES, GROUP, NIBBLE_TABLES,
};

/// The code an encoder computes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Code {
    /// The Cauchy matrix of `data` data and `parity` parity shards.
    Cauchy { data: usize, parity: usize },
    /// The 4 + 2 audio matrix.
    Audio,
}

/// Multiplies every parity shard of `code` from its data shards with `kernel`.
///
/// # Safety
/// The CPU has `kernel`'s features, `kernel` is not [`Kernel::Scalar`] and
/// `len >= kernel.width()`. `src(i)` for `i < data` is readable and `dst(j)` for
/// `j < parity` writable for `len` bytes, and the parity shards overlap no other shard.
pub(super) unsafe fn encode(
    kernel: Kernel,
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    debug_assert!(kernel != Kernel::Scalar && len >= kernel.width());
    // SAFETY: the caller's contract.
    unsafe {
        match kernel {
            Kernel::Gfni => encode_gfni(code, len, src, dst),
            Kernel::Avx512 => encode_avx512(code, len, src, dst),
            Kernel::GfniAvx2 => encode_gfni_avx2(code, len, src, dst),
            Kernel::Avx2 => encode_avx2(code, len, src, dst),
            Kernel::Ssse3 => encode_ssse3(code, len, src, dst),
            Kernel::Scalar => unreachable!("the scalar loop is not a vector kernel"),
        }
    }
}

/// `dst[k] ^= c · src[k]` with `kernel`.
///
/// # Safety
/// The CPU has `kernel`'s features and `kernel` is not [`Kernel::Scalar`]; `src` and `dst`
/// have the same length.
pub(super) unsafe fn mul_add(kernel: Kernel, c: u8, src: &[u8], dst: &mut [u8]) {
    debug_assert!(kernel != Kernel::Scalar && src.len() == dst.len());
    // SAFETY: the caller's contract.
    unsafe {
        match kernel {
            Kernel::Gfni => mul_add_gfni(c, src, dst),
            Kernel::Avx512 => mul_add_avx512(c, src, dst),
            Kernel::GfniAvx2 => mul_add_gfni_avx2(c, src, dst),
            Kernel::Avx2 => mul_add_avx2(c, src, dst),
            Kernel::Ssse3 => mul_add_ssse3(c, src, dst),
            Kernel::Scalar => unreachable!("the scalar loop is not a vector kernel"),
        }
    }
}

// One pair of entry points per kernel, compiled with its features; everything below them is
// inlined into them. Safety: as `encode` and `mul_add` for the kernel they are named after.

#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn encode_gfni(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    encode_code::<Gfni512>(code, len, src, dst)
}

#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn mul_add_gfni(c: u8, src: &[u8], dst: &mut [u8]) {
    mul_add_with::<Gfni512>(c, src, dst)
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn encode_avx512(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    encode_code::<Avx512>(code, len, src, dst)
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn mul_add_avx512(c: u8, src: &[u8], dst: &mut [u8]) {
    mul_add_with::<Avx512>(c, src, dst)
}

#[target_feature(enable = "avx2,gfni")]
unsafe fn encode_gfni_avx2(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    encode_code::<Gfni256>(code, len, src, dst)
}

#[target_feature(enable = "avx2,gfni")]
unsafe fn mul_add_gfni_avx2(c: u8, src: &[u8], dst: &mut [u8]) {
    mul_add_with::<Gfni256>(c, src, dst)
}

#[target_feature(enable = "avx2")]
unsafe fn encode_avx2(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    encode_code::<Avx2>(code, len, src, dst)
}

#[target_feature(enable = "avx2")]
unsafe fn mul_add_avx2(c: u8, src: &[u8], dst: &mut [u8]) {
    mul_add_with::<Avx2>(c, src, dst)
}

#[target_feature(enable = "ssse3")]
unsafe fn encode_ssse3(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    encode_code::<Ssse3>(code, len, src, dst)
}

#[target_feature(enable = "ssse3")]
unsafe fn mul_add_ssse3(c: u8, src: &[u8], dst: &mut [u8]) {
    mul_add_with::<Ssse3>(c, src, dst)
}

/// Where the coefficients of the codes lie, in the form one family of kernels reads them.
trait Coefficient: Sized + 'static {
    /// Coefficient `c`.
    fn of(c: u8) -> *const Self;
    /// The coefficients `1 / (x XOR r)` for `r < GROUP`, side by side. For data shard `i`
    /// of the Cauchy code, `x = (parity + i) XOR j0` gives the rows `j0 .. j0 + GROUP`
    /// when `j0` is a multiple of [`GROUP`].
    fn cauchy(x: usize) -> *const Self;
    /// The coefficients of data shard `i` in the two audio parity rows.
    fn audio(i: usize) -> *const Self;
}

/// Nibble tables: `c · x` for `x < 16`, then `c · (x << 4)`.
impl Coefficient for [u8; 32] {
    #[inline(always)]
    fn of(c: u8) -> *const Self {
        &NIBBLE_TABLES[c as usize]
    }

    #[inline(always)]
    fn cauchy(x: usize) -> *const Self {
        CAUCHY_TABLES.0[x & 0xFF].as_ptr()
    }

    #[inline(always)]
    fn audio(i: usize) -> *const Self {
        AUDIO_TABLES.0[i].as_ptr()
    }
}

/// `gf2p8affineqb` bit matrices (see [`super::affine_matrix`]).
impl Coefficient for u64 {
    #[inline(always)]
    fn of(c: u8) -> *const Self {
        &AFFINE_MATRICES[c as usize]
    }

    #[inline(always)]
    fn cauchy(x: usize) -> *const Self {
        CAUCHY_AFFINE.0[x & 0xFF].as_ptr()
    }

    #[inline(always)]
    fn audio(i: usize) -> *const Self {
        AUDIO_AFFINE.0[i].as_ptr()
    }
}

/// One vector width and way of multiplying: the operations the encoders are written in.
///
/// Every method is `unsafe` because it needs the CPU features of its kernel; it is only
/// inlined into functions compiled with those features.
trait Lanes {
    /// A vector.
    type V: Copy;
    /// A coefficient as the tables hold it.
    type Coef: Coefficient;
    /// A coefficient loaded for multiplying.
    type C: Copy;
    /// A data vector prepared for multiplying.
    type S: Copy;
    /// Bytes per vector.
    const BYTES: usize;
    /// Parity rows per pass, a multiple of [`GROUP`] of at most 8: with two vectors per
    /// row, the accumulators, the prepared data and a coefficient fill the vector registers.
    const ROWS: usize;
    /// Whether to multiply two data shards per step, so that AVX-512 folds their two XORs
    /// into the accumulator into one three-way XOR.
    const PAIRS: bool = false;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const u8) -> Self::V;
    unsafe fn store(p: *mut u8, v: Self::V);
    /// The coefficient at `c`: its two nibble tables, each in every 128-bit lane, or its
    /// bit matrix in every 64-bit lane.
    unsafe fn coef(c: *const Self::Coef) -> Self::C;
    /// The low and high nibbles of every byte of `v`, or `v` itself for GFNI.
    unsafe fn prepare(v: Self::V) -> Self::S;
    /// `acc ^ c · s`.
    unsafe fn mul_acc(acc: Self::V, c: Self::C, s: Self::S) -> Self::V;
}

/// 64-byte vectors, GFNI affine multiply.
struct Gfni512;

impl Lanes for Gfni512 {
    type V = __m512i;
    type Coef = u64;
    type C = __m512i;
    type S = __m512i;
    const BYTES: usize = 64;
    const ROWS: usize = 8;
    const PAIRS: bool = true;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        _mm512_setzero_si512()
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        _mm512_loadu_si512(p.cast())
    }

    #[inline(always)]
    unsafe fn store(p: *mut u8, v: __m512i) {
        _mm512_storeu_si512(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn coef(c: *const u64) -> __m512i {
        _mm512_set1_epi64(c.read() as i64)
    }

    #[inline(always)]
    unsafe fn prepare(v: __m512i) -> __m512i {
        v
    }

    #[inline(always)]
    unsafe fn mul_acc(acc: __m512i, c: __m512i, s: __m512i) -> __m512i {
        // Each byte of `s` times the matrix in its 64-bit lane of `c`, plus the constant 0.
        _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8::<0>(s, c))
    }
}

/// 64-byte vectors, AVX-512BW nibble tables.
struct Avx512;

impl Lanes for Avx512 {
    type V = __m512i;
    type Coef = [u8; 32];
    type C = (__m512i, __m512i);
    type S = (__m512i, __m512i);
    const BYTES: usize = 64;
    const ROWS: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        _mm512_setzero_si512()
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        _mm512_loadu_si512(p.cast())
    }

    #[inline(always)]
    unsafe fn store(p: *mut u8, v: __m512i) {
        _mm512_storeu_si512(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn coef(t: *const [u8; 32]) -> (__m512i, __m512i) {
        let t = t.cast::<u8>();
        (
            _mm512_broadcast_i32x4(_mm_loadu_si128(t.cast())),
            _mm512_broadcast_i32x4(_mm_loadu_si128(t.add(16).cast())),
        )
    }

    #[inline(always)]
    unsafe fn prepare(s: __m512i) -> (__m512i, __m512i) {
        let mask = _mm512_set1_epi8(0x0F);
        (
            _mm512_and_si512(s, mask),
            _mm512_and_si512(_mm512_srli_epi16::<4>(s), mask),
        )
    }

    #[inline(always)]
    unsafe fn mul_acc(
        acc: __m512i,
        (lo_t, hi_t): (__m512i, __m512i),
        (lo, hi): (__m512i, __m512i),
    ) -> __m512i {
        // 0x96: the XOR of all three operands.
        _mm512_ternarylogic_epi64::<0x96>(
            acc,
            _mm512_shuffle_epi8(lo_t, lo),
            _mm512_shuffle_epi8(hi_t, hi),
        )
    }
}

/// 32-byte vectors, GFNI affine multiply (VEX-encoded, sixteen registers).
struct Gfni256;

impl Lanes for Gfni256 {
    type V = __m256i;
    type Coef = u64;
    type C = __m256i;
    type S = __m256i;
    const BYTES: usize = 32;
    const ROWS: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        _mm256_setzero_si256()
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.cast())
    }

    #[inline(always)]
    unsafe fn store(p: *mut u8, v: __m256i) {
        _mm256_storeu_si256(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn coef(c: *const u64) -> __m256i {
        _mm256_set1_epi64x(c.read() as i64)
    }

    #[inline(always)]
    unsafe fn prepare(v: __m256i) -> __m256i {
        v
    }

    #[inline(always)]
    unsafe fn mul_acc(acc: __m256i, c: __m256i, s: __m256i) -> __m256i {
        _mm256_xor_si256(acc, _mm256_gf2p8affine_epi64_epi8::<0>(s, c))
    }
}

/// 32-byte vectors, AVX2 nibble tables.
struct Avx2;

impl Lanes for Avx2 {
    type V = __m256i;
    type Coef = [u8; 32];
    type C = (__m256i, __m256i);
    type S = (__m256i, __m256i);
    const BYTES: usize = 32;
    /// Four rows of two vectors are eight accumulators, which with the four nibble vectors,
    /// two tables and a scratch register fill the sixteen vector registers.
    const ROWS: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        _mm256_setzero_si256()
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.cast())
    }

    #[inline(always)]
    unsafe fn store(p: *mut u8, v: __m256i) {
        _mm256_storeu_si256(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn coef(t: *const [u8; 32]) -> (__m256i, __m256i) {
        let t = t.cast::<u8>();
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(t.cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(t.add(16).cast())),
        )
    }

    #[inline(always)]
    unsafe fn prepare(s: __m256i) -> (__m256i, __m256i) {
        let mask = _mm256_set1_epi8(0x0F);
        (
            _mm256_and_si256(s, mask),
            _mm256_and_si256(_mm256_srli_epi16::<4>(s), mask),
        )
    }

    #[inline(always)]
    unsafe fn mul_acc(
        acc: __m256i,
        (lo_t, hi_t): (__m256i, __m256i),
        (lo, hi): (__m256i, __m256i),
    ) -> __m256i {
        // Two dependent XORs into `acc` need one scratch register, not two.
        let acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(lo_t, lo));
        _mm256_xor_si256(acc, _mm256_shuffle_epi8(hi_t, hi))
    }
}

/// 16-byte vectors, SSSE3 nibble tables.
struct Ssse3;

impl Lanes for Ssse3 {
    type V = __m128i;
    type Coef = [u8; 32];
    type C = (__m128i, __m128i);
    type S = (__m128i, __m128i);
    const BYTES: usize = 16;
    const ROWS: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> __m128i {
        _mm_setzero_si128()
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m128i {
        _mm_loadu_si128(p.cast())
    }

    #[inline(always)]
    unsafe fn store(p: *mut u8, v: __m128i) {
        _mm_storeu_si128(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn coef(t: *const [u8; 32]) -> (__m128i, __m128i) {
        let t = t.cast::<u8>();
        (_mm_loadu_si128(t.cast()), _mm_loadu_si128(t.add(16).cast()))
    }

    #[inline(always)]
    unsafe fn prepare(s: __m128i) -> (__m128i, __m128i) {
        let mask = _mm_set1_epi8(0x0F);
        (
            _mm_and_si128(s, mask),
            _mm_and_si128(_mm_srli_epi16::<4>(s), mask),
        )
    }

    #[inline(always)]
    unsafe fn mul_acc(
        acc: __m128i,
        (lo_t, hi_t): (__m128i, __m128i),
        (lo, hi): (__m128i, __m128i),
    ) -> __m128i {
        let acc = _mm_xor_si128(acc, _mm_shuffle_epi8(lo_t, lo));
        _mm_xor_si128(acc, _mm_shuffle_epi8(hi_t, hi))
    }
}

/// `code` with `L`.
///
/// # Safety
/// As [`encode_with`].
#[inline(always)]
unsafe fn encode_code<L: Lanes>(
    code: Code,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
) {
    match code {
        Code::Cauchy { data, parity } => {
            let tab = move |j0: usize, i: usize| L::Coef::cauchy((parity + i) ^ j0);
            encode_with::<L>(data, parity, len, src, dst, tab)
        }
        // The shard counts and coefficients are constants here, so the loops unroll and the
        // coefficients are read from fixed addresses.
        Code::Audio => {
            let tab = |_j0: usize, i: usize| L::Coef::audio(i);
            encode_with::<L>(AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS, len, src, dst, tab)
        }
    }
}

/// Every parity shard of `len >= L::BYTES` bytes. `tab(j0, i)` points at the coefficients
/// of data shard `i` in parity rows `j0 .. j0 + GROUP` (fewer if the code has fewer), for
/// `j0` a multiple of [`GROUP`].
///
/// # Safety
/// The CPU has `L`'s features; `src(i)` for `i < data` is readable and `dst(j)` for
/// `j < parity` writable for `len` bytes, and the parity shards overlap no other shard.
#[inline(always)]
unsafe fn encode_with<L: Lanes>(
    data: usize,
    parity: usize,
    len: usize,
    src: impl Fn(usize) -> *const u8,
    dst: impl Fn(usize) -> *mut u8,
    tab: impl Fn(usize, usize) -> *const L::Coef,
) {
    debug_assert!(len >= L::BYTES);
    let mut col = 0;
    while col + 2 * L::BYTES <= len {
        rows::<L, 2>(data, parity, col, &src, &dst, &tab);
        col += 2 * L::BYTES;
    }
    while col < len {
        // The last vector ends at `len`, overlapping the one before if `len` is not a
        // multiple of the width.
        let at = col.min(len - L::BYTES);
        rows::<L, 1>(data, parity, at, &src, &dst, &tab);
        col += L::BYTES;
    }
}

/// All parity rows at bytes `col .. col + T × L::BYTES`, `L::ROWS` rows per pass.
///
/// # Safety
/// As [`block`], for every parity row.
#[inline(always)]
unsafe fn rows<L: Lanes, const T: usize>(
    data: usize,
    parity: usize,
    col: usize,
    src: &impl Fn(usize) -> *const u8,
    dst: &impl Fn(usize) -> *mut u8,
    tab: &impl Fn(usize, usize) -> *const L::Coef,
) {
    const { assert!(L::ROWS % GROUP == 0 && L::ROWS <= 8) };
    let mut j = 0;
    while j < parity {
        // `j` stays a multiple of `L::ROWS`, hence of `GROUP`.
        let n = L::ROWS.min(parity - j);
        match n {
            1 => block::<L, 1, T>(data, j, col, src, dst, tab),
            2 => block::<L, 2, T>(data, j, col, src, dst, tab),
            3 => block::<L, 3, T>(data, j, col, src, dst, tab),
            4 => block::<L, 4, T>(data, j, col, src, dst, tab),
            5 if L::ROWS > 4 => block::<L, 5, T>(data, j, col, src, dst, tab),
            6 if L::ROWS > 4 => block::<L, 6, T>(data, j, col, src, dst, tab),
            7 if L::ROWS > 4 => block::<L, 7, T>(data, j, col, src, dst, tab),
            8 if L::ROWS > 4 => block::<L, 8, T>(data, j, col, src, dst, tab),
            _ => unreachable!("at most L::ROWS rows per pass"),
        }
        j += n;
    }
}

/// Parity rows `j0 .. j0 + R`, bytes `col .. col + T × L::BYTES` of every shard; with
/// `L::PAIRS` two data shards per step.
///
/// # Safety
/// The CPU has `L`'s features; `j0` is a multiple of [`GROUP`]; `src(i)` for `i < data` is
/// readable and `dst(j0 + r)` for `r < R` writable at those bytes.
#[inline(always)]
unsafe fn block<L: Lanes, const R: usize, const T: usize>(
    data: usize,
    j0: usize,
    col: usize,
    src: &impl Fn(usize) -> *const u8,
    dst: &impl Fn(usize) -> *mut u8,
    tab: &impl Fn(usize, usize) -> *const L::Coef,
) {
    let mut acc = [[L::zero(); T]; R];
    let mut i = 0;
    while L::PAIRS && i + 2 <= data {
        let (p0, p1) = (src(i).add(col), src(i + 1).add(col));
        let mut s0 = [L::prepare(L::zero()); T];
        let mut s1 = [L::prepare(L::zero()); T];
        for t in 0..T {
            s0[t] = L::prepare(L::load(p0.add(t * L::BYTES)));
            s1[t] = L::prepare(L::load(p1.add(t * L::BYTES)));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let (c0, c1) = (coef::<L>(tab, j0 + r, i), coef::<L>(tab, j0 + r, i + 1));
            for (t, a) in row.iter_mut().enumerate() {
                *a = L::mul_acc(L::mul_acc(*a, c0, s0[t]), c1, s1[t]);
            }
        }
        i += 2;
    }
    while i < data {
        let p = src(i).add(col);
        let mut s = [L::prepare(L::zero()); T];
        for (t, s) in s.iter_mut().enumerate() {
            *s = L::prepare(L::load(p.add(t * L::BYTES)));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let c = coef::<L>(tab, j0 + r, i);
            for (a, &s) in row.iter_mut().zip(&s) {
                *a = L::mul_acc(*a, c, s);
            }
        }
        i += 1;
    }
    for (r, row) in acc.iter().enumerate() {
        let q = dst(j0 + r).add(col);
        for (t, &a) in row.iter().enumerate() {
            L::store(q.add(t * L::BYTES), a);
        }
    }
}

/// The coefficient of data shard `i` in parity row `j`, loaded.
///
/// # Safety
/// The CPU has `L`'s features; `tab` is as for [`encode_with`] and row `j` exists.
#[inline(always)]
unsafe fn coef<L: Lanes>(
    tab: &impl Fn(usize, usize) -> *const L::Coef,
    j: usize,
    i: usize,
) -> L::C {
    L::coef(tab(j / GROUP * GROUP, i).add(j % GROUP))
}

/// `dst[k] ^= c · src[k]`, whole vectors with `L`, the tail with the scalar loop.
///
/// # Safety
/// The CPU has `L`'s features; `src` and `dst` have the same length.
#[inline(always)]
unsafe fn mul_add_with<L: Lanes>(c: u8, src: &[u8], dst: &mut [u8]) {
    let n = src.len();
    let coef = L::coef(L::Coef::of(c));
    let mut k = 0;
    while k + L::BYTES <= n {
        let s = L::prepare(L::load(src.as_ptr().add(k)));
        let d = dst.as_mut_ptr().add(k);
        L::store(d, L::mul_acc(L::load(d), coef, s));
        k += L::BYTES;
    }
    super::mul_add_scalar(&NIBBLE_TABLES[c as usize], &src[k..], &mut dst[k..]);
}
