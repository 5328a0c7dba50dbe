//! Reed-Solomon erasure codes over GF(2^8), wire compatible with the ones stock clients decode.
//!
//! Both codes are systematic: data shards travel unchanged and parity shard `j` is, byte position by
//! byte position, the GF(2^8) sum `Σ_i m[j][i] · data_i`. The field uses the polynomial 0x11D
//! (x^8 + x^4 + x^3 + x^2 + 1) with generator 2.
//!
//! - [`ReedSolomon::video`] builds the Cauchy code the video stream uses:
//!   `m[j][i] = 1 / ((parity_shards + i) XOR j)`, for any `data + parity <= 255`.
//! - [`ReedSolomon::audio`] builds the fixed 4 + 2 code of the audio stream, whose matrix is a
//!   constant table rather than a Cauchy matrix.
//!
//! Each coefficient's products are split into two 16-entry tables (low and high nibble), which an
//! x86 `pshufb` looks up 16 or 32 bytes at a time. The encoders load each vector of data once and
//! multiply it into four parity rows held in registers, writing each parity vector once;
//! [`mul_add_slice`] multiplies one whole slice by one coefficient. [`Kernel::detect`] picks AVX2,
//! SSSE3 or the portable scalar loop at run time, and every kernel gives the same bytes.
//!
//! [`ReedSolomon::reconstruct`] inverts the matrix over the shards that arrived and rebuilds the
//! missing data shards, the way a client does; the host only needs it to test what it sends.

use thiserror::Error;

/// Largest `data + parity` shard count of a code (the limit stock clients enforce).
pub const MAX_TOTAL_SHARDS: usize = 255;

/// Parity rows of the audio code: two rows of four coefficients (row-major).
pub const AUDIO_MATRIX: [u8; 8] = [0x77, 0x40, 0x38, 0x0e, 0xc7, 0xa7, 0x0d, 0x6c];

/// Data shards per audio FEC block.
pub const AUDIO_DATA_SHARDS: usize = 4;

/// Parity shards per audio FEC block.
pub const AUDIO_PARITY_SHARDS: usize = 2;

/// Errors from building a code or encoding and decoding with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FecError {
    /// The shard counts are outside what the code supports.
    #[error("unsupported shard counts: {data} data, {parity} parity")]
    ShardCounts {
        /// Data shards asked for.
        data: usize,
        /// Parity shards asked for.
        parity: usize,
    },
    /// The number of shards passed in does not match the code.
    #[error("expected {expected} shards, got {got}")]
    ShardCount {
        /// Shards the code has.
        expected: usize,
        /// Shards passed in.
        got: usize,
    },
    /// Shards of one block have different lengths.
    #[error("shards differ in length")]
    ShardLength,
    /// Too few shards arrived to rebuild the data.
    #[error("too few shards to reconstruct: {present} of {needed}")]
    TooFewShards {
        /// Shards present.
        present: usize,
        /// Shards needed (the data shard count).
        needed: usize,
    },
}

/// Which slice-multiplication routine to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable loop over the nibble tables; always available.
    Scalar,
    /// 16 bytes per step with SSSE3 `pshufb`.
    Ssse3,
    /// 32 bytes per step with AVX2 `vpshufb`.
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Self {
        if Kernel::Avx2.is_available() {
            Kernel::Avx2
        } else if Kernel::Ssse3.is_available() {
            Kernel::Ssse3
        } else {
            Kernel::Scalar
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Product of two field elements.
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// Multiplicative inverse of a field element; `None` for 0.
pub fn inv(a: u8) -> Option<u8> {
    (a != 0).then(|| EXP[255 - LOG[a as usize] as usize])
}

/// `dst[k] ^= c · src[k]` for every `k < min(src.len(), dst.len())`.
///
/// A kernel the CPU lacks ([`Kernel::is_available`]) falls back to [`Kernel::Scalar`].
pub fn mul_add_slice(kernel: Kernel, c: u8, src: &[u8], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    if c == 0 {
        return;
    }
    if c == 1 {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d ^= s);
        return;
    }
    let tables = &NIBBLE_TABLES[c as usize];
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if Kernel::Avx2.is_available() => {
            // SAFETY: AVX2 support was checked at run time just above.
            unsafe { x86::mul_add_avx2(tables, src, dst) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Ssse3 | Kernel::Avx2 if Kernel::Ssse3.is_available() => {
            // SAFETY: SSSE3 support was checked at run time just above.
            unsafe { x86::mul_add_ssse3(tables, src, dst) }
        }
        _ => mul_add_scalar(tables, src, dst),
    }
}

/// The coefficient layout of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matrix {
    /// `1 / ((parity + i) XOR j)`, computed on the fly.
    Cauchy,
    /// The constant audio table.
    Audio,
}

/// A systematic Reed-Solomon code with a fixed number of data and parity shards.
///
/// The code holds no buffers: building one per FEC block costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReedSolomon {
    data: usize,
    parity: usize,
    matrix: Matrix,
    kernel: Kernel,
}

impl ReedSolomon {
    /// The video code (Cauchy matrix) for `data` data and `parity` parity shards.
    ///
    /// Needs `data >= 1` and `data + parity <= 255`. `parity == 0` is allowed and encodes nothing.
    pub fn video(data: usize, parity: usize) -> Result<Self, FecError> {
        if data == 0 || data + parity > MAX_TOTAL_SHARDS {
            return Err(FecError::ShardCounts { data, parity });
        }
        Ok(Self {
            data,
            parity,
            matrix: Matrix::Cauchy,
            kernel: Kernel::detect(),
        })
    }

    /// The fixed 4 data + 2 parity audio code.
    pub fn audio() -> Self {
        Self {
            data: AUDIO_DATA_SHARDS,
            parity: AUDIO_PARITY_SHARDS,
            matrix: Matrix::Audio,
            kernel: Kernel::detect(),
        }
    }

    /// The same code, computed with `kernel` (benchmarks and tests compare kernels this way).
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// Number of data shards.
    pub fn data_shards(&self) -> usize {
        self.data
    }

    /// Number of parity shards.
    pub fn parity_shards(&self) -> usize {
        self.parity
    }

    /// Coefficient of data shard `i` in parity shard `j`. Panics if either index is out of range.
    pub fn coefficient(&self, j: usize, i: usize) -> u8 {
        assert!(
            j < self.parity && i < self.data,
            "coefficient index out of range"
        );
        match self.matrix {
            Matrix::Audio => AUDIO_MATRIX[j * AUDIO_DATA_SHARDS + i],
            // (parity + i) >= parity > j, so the XOR is never 0, and data + parity <= 255 keeps it
            // within a byte.
            Matrix::Cauchy => INV[((self.parity + i) ^ j) & 0xFF],
        }
    }

    /// Computes the parity shards from the data shards.
    ///
    /// All shards must have the same length; `parity` is overwritten.
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        self.check_counts(data.len(), parity.len())?;
        let len = data[0].len();
        if data.iter().any(|d| d.len() != len) || parity.iter().any(|p| p.len() != len) {
            return Err(FecError::ShardLength);
        }
        if let Some(kernel) = self.vector_kernel(len) {
            let slots = parity.as_mut_ptr();
            // SAFETY: the kernel only asks for `i < data.len()`.
            let src = |i: usize| unsafe { data.get_unchecked(i) }.as_ptr();
            // SAFETY: the kernel only asks for `j < parity.len()`, and `slots` points at the
            // exclusively borrowed `parity` array, which outlives the call.
            let dst = |j: usize| unsafe { (*slots.add(j)).as_mut_ptr() };
            // SAFETY: the kernel's features were checked by `vector_kernel`; `src(i)` and
            // `dst(j)` are `len`-byte slices for every `i < data` and `j < parity` (checked just
            // above), and the parity slices are exclusive borrows, so they overlap neither each
            // other nor the data.
            unsafe { self.encode_simd(kernel, len, src, dst) };
            return Ok(());
        }
        for (j, out) in parity.iter_mut().enumerate() {
            out.fill(0);
            for (i, src) in data.iter().enumerate() {
                mul_add_slice(Kernel::Scalar, self.coefficient(j, i), src, out);
            }
        }
        Ok(())
    }

    /// Encodes shards that sit in one buffer, one every `stride` bytes.
    ///
    /// Shard `k` is `buf[k * stride + offset ..][.. len]`: slots `0..data` hold the data, slots
    /// `data..data + parity` receive the parity. Bytes outside `offset .. offset + len` of each slot
    /// are left alone. Needs `offset + len <= stride` and `buf.len() >= (data + parity) * stride`.
    pub fn encode_strided(
        &self,
        buf: &mut [u8],
        stride: usize,
        offset: usize,
        len: usize,
    ) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if offset + len > stride || buf.len() < total * stride {
            return Err(FecError::ShardLength);
        }
        let (data, parity) = buf.split_at_mut(self.data * stride);
        if let Some(kernel) = self.vector_kernel(len) {
            let data_base = data.as_ptr().wrapping_add(offset);
            let parity_base = parity.as_mut_ptr().wrapping_add(offset);
            let src = |i: usize| data_base.wrapping_add(i * stride);
            let dst = |j: usize| parity_base.wrapping_add(j * stride);
            // SAFETY: the kernel's features were checked by `vector_kernel`. Slot `i < data` of
            // `data` and slot `j < parity` of `parity` hold `offset + len <= stride` bytes
            // (checked above), so every shard lies inside its half of `buf`; the halves are
            // disjoint and the parity shards, one per slot, do not overlap.
            unsafe { self.encode_simd(kernel, len, src, dst) };
            return Ok(());
        }
        for j in 0..self.parity {
            let out = &mut parity[j * stride + offset..][..len];
            out.fill(0);
            for i in 0..self.data {
                let src = &data[i * stride + offset..][..len];
                mul_add_slice(Kernel::Scalar, self.coefficient(j, i), src, out);
            }
        }
        Ok(())
    }

    /// Rebuilds missing data shards in place from any `data_shards()` shards that arrived.
    ///
    /// `shards` holds all `data + parity` shards in order; `present[k]` says whether shard `k`
    /// arrived. Missing data shards are overwritten with the recovered bytes; missing parity
    /// shards are left as they are.
    pub fn reconstruct(&self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if shards.len() != total || present.len() != total {
            return Err(FecError::ShardCount {
                expected: total,
                got: shards.len(),
            });
        }
        let len = shards[0].len();
        if shards.iter().any(|s| s.len() != len) {
            return Err(FecError::ShardLength);
        }
        let missing: Vec<usize> = (0..self.data).filter(|&i| !present[i]).collect();
        if missing.is_empty() {
            return Ok(());
        }
        // Pick `data` received shards: all data shards that arrived, then parity shards.
        let rows: Vec<usize> = (0..total).filter(|&k| present[k]).take(self.data).collect();
        if rows.len() < self.data {
            return Err(FecError::TooFewShards {
                present: rows.len(),
                needed: self.data,
            });
        }
        // Row r of the system: received shard rows[r] as a combination of the data shards.
        let d = self.data;
        let mut m = vec![0u8; d * d];
        for (r, &k) in rows.iter().enumerate() {
            for i in 0..d {
                m[r * d + i] = if k < d {
                    u8::from(k == i)
                } else {
                    self.coefficient(k - d, i)
                };
            }
        }
        let inverse = invert(&mut m, d).ok_or(FecError::ShardLength)?;
        let mut out = vec![0u8; len];
        for &i in &missing {
            out.fill(0);
            for (r, &k) in rows.iter().enumerate() {
                mul_add_slice(self.kernel, inverse[i * d + r], shards[k], &mut out);
            }
            shards[i].copy_from_slice(&out);
        }
        Ok(())
    }

    /// The vector kernel [`ReedSolomon::encode_simd`] runs for shards of `len` bytes, or `None`
    /// for the scalar loop. AVX2 needs a 32-byte shard and SSSE3 a 16-byte one (the last vector
    /// of a shard overlaps the one before it rather than running a byte loop).
    fn vector_kernel(&self, len: usize) -> Option<Kernel> {
        match self.kernel {
            Kernel::Avx2 if len >= 32 && Kernel::Avx2.is_available() => Some(Kernel::Avx2),
            Kernel::Avx2 | Kernel::Ssse3 if len >= 16 && Kernel::Ssse3.is_available() => {
                Some(Kernel::Ssse3)
            }
            _ => None,
        }
    }

    /// Writes every parity shard, several parity rows per pass over the data (see the `x86`
    /// module).
    ///
    /// # Safety
    /// `kernel` must come from [`ReedSolomon::vector_kernel`] for this `len`. For `i < data` and
    /// `j < parity`, `src(i)` must be valid for reads and `dst(j)` for writes of `len` bytes; no
    /// parity shard may overlap another shard.
    #[cfg(target_arch = "x86_64")]
    unsafe fn encode_simd(
        &self,
        kernel: Kernel,
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
    ) {
        let (d, p) = (self.data, self.parity);
        // SAFETY: the caller's contract is the kernels' contract.
        unsafe {
            match (self.matrix, kernel) {
                (Matrix::Audio, Kernel::Avx2) => x86::audio_avx2(len, src, dst),
                (Matrix::Audio, _) => x86::audio_ssse3(len, src, dst),
                (Matrix::Cauchy, Kernel::Avx2) => x86::cauchy_avx2(d, p, len, src, dst),
                (Matrix::Cauchy, _) => x86::cauchy_ssse3(d, p, len, src, dst),
            }
        }
    }

    /// Never called: [`ReedSolomon::vector_kernel`] finds none on other architectures.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn encode_simd(
        &self,
        _kernel: Kernel,
        _len: usize,
        _src: impl Fn(usize) -> *const u8,
        _dst: impl Fn(usize) -> *mut u8,
    ) {
        unreachable!("no vector kernel on this architecture")
    }

    fn check_counts(&self, data: usize, parity: usize) -> Result<(), FecError> {
        if data != self.data || parity != self.parity {
            return Err(FecError::ShardCount {
                expected: self.data + self.parity,
                got: data + parity,
            });
        }
        Ok(())
    }
}

/// Gauss-Jordan inversion of the `n × n` matrix `m` (destroyed); `None` if it is singular.
fn invert(m: &mut [u8], n: usize) -> Option<Vec<u8>> {
    let mut inv_m = vec![0u8; n * n];
    for i in 0..n {
        inv_m[i * n + i] = 1;
    }
    for col in 0..n {
        let pivot = (col..n).find(|&r| m[r * n + col] != 0)?;
        if pivot != col {
            for c in 0..n {
                m.swap(pivot * n + c, col * n + c);
                inv_m.swap(pivot * n + c, col * n + c);
            }
        }
        let scale = inv(m[col * n + col])?;
        for c in 0..n {
            m[col * n + c] = mul(m[col * n + c], scale);
            inv_m[col * n + c] = mul(inv_m[col * n + c], scale);
        }
        for r in 0..n {
            let f = m[r * n + col];
            if r != col && f != 0 {
                for c in 0..n {
                    m[r * n + c] ^= mul(f, m[col * n + c]);
                    inv_m[r * n + c] ^= mul(f, inv_m[col * n + c]);
                }
            }
        }
    }
    Some(inv_m)
}

fn mul_add_scalar(tables: &[u8; 32], src: &[u8], dst: &mut [u8]) {
    let (lo, hi) = tables.split_at(16);
    for (d, &s) in dst.iter_mut().zip(src) {
        *d ^= lo[(s & 0x0F) as usize] ^ hi[(s >> 4) as usize];
    }
}

/// x86 kernels: single-slice multiply-add ([`mul_add_slice`]) and whole-code encoders.
///
/// The encoders compute a parity vector as `Σ_i tables(m[j][i]) ⋅ nibbles(data_i)`: each data
/// vector is loaded and split into its low and high nibbles once, then multiplied into up to
/// `ROWS` (four) parity accumulators held in registers (two `pshufb` lookups and two XORs per
/// coefficient), and every parity vector is stored once, never read back. A pass covers two
/// vectors of every shard (64 bytes with AVX2): those bytes of all data shards stay in L1 while
/// the passes for successive groups of parity rows read them again. Shard tails that are not a
/// whole number of vectors end with one vector that overlaps the previous one; parity is
/// computed from the data alone, so writing those bytes twice gives the same result.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS, AUDIO_TABLES, CAUCHY_TABLES};

    /// Parity rows per pass: four rows of two vectors are eight accumulators, which with the
    /// four nibble vectors, two tables and a scratch register fill the sixteen vector registers.
    /// [`CAUCHY_TABLES`] groups coefficients by four as well.
    const ROWS: usize = 4;
    const _: () = assert!(ROWS == 4, "CAUCHY_TABLES holds groups of four rows");

    /// One vector width: the operations the encoders are written in.
    ///
    /// Every method is `unsafe` because it needs the CPU feature of its width; it is only
    /// inlined into functions compiled with that feature.
    trait Lanes {
        type V: Copy;
        /// Bytes per vector.
        const BYTES: usize;
        unsafe fn zero() -> Self::V;
        /// The two 16-byte nibble tables at `t` (laid out as an entry of `NIBBLE_TABLES`), each
        /// in every 128-bit lane.
        unsafe fn tables(t: *const [u8; 32]) -> (Self::V, Self::V);
        unsafe fn load(p: *const u8) -> Self::V;
        unsafe fn store(p: *mut u8, v: Self::V);
        /// Low and high nibbles of every byte of `s`.
        unsafe fn nibbles(s: Self::V) -> (Self::V, Self::V);
        /// `acc ^ lo_table[lo] ^ hi_table[hi]`.
        unsafe fn mul_acc(
            acc: Self::V,
            tables: (Self::V, Self::V),
            nibbles: (Self::V, Self::V),
        ) -> Self::V;
    }

    struct Avx2;

    impl Lanes for Avx2 {
        type V = __m256i;
        const BYTES: usize = 32;

        #[inline(always)]
        unsafe fn zero() -> __m256i {
            _mm256_setzero_si256()
        }

        #[inline(always)]
        unsafe fn tables(t: *const [u8; 32]) -> (__m256i, __m256i) {
            let t = t.cast::<u8>();
            (
                _mm256_broadcastsi128_si256(_mm_loadu_si128(t.cast())),
                _mm256_broadcastsi128_si256(_mm_loadu_si128(t.add(16).cast())),
            )
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
        unsafe fn nibbles(s: __m256i) -> (__m256i, __m256i) {
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

    struct Ssse3;

    impl Lanes for Ssse3 {
        type V = __m128i;
        const BYTES: usize = 16;

        #[inline(always)]
        unsafe fn zero() -> __m128i {
            _mm_setzero_si128()
        }

        #[inline(always)]
        unsafe fn tables(t: *const [u8; 32]) -> (__m128i, __m128i) {
            let t = t.cast::<u8>();
            (_mm_loadu_si128(t.cast()), _mm_loadu_si128(t.add(16).cast()))
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
        unsafe fn nibbles(s: __m128i) -> (__m128i, __m128i) {
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

    /// Parity rows `j0 .. j0 + R`, bytes `col .. col + T × L::BYTES` of every shard.
    ///
    /// # Safety
    /// The CPU has `L`'s feature; `src(i)` for `i < data` is readable and `dst(j0 + r)` for
    /// `r < R` writable at those bytes.
    #[inline(always)]
    unsafe fn block<L: Lanes, const R: usize, const T: usize>(
        data: usize,
        j0: usize,
        col: usize,
        src: &impl Fn(usize) -> *const u8,
        dst: &impl Fn(usize) -> *mut u8,
        tab: &impl Fn(usize, usize) -> *const [u8; 32],
    ) {
        let mut acc = [[L::zero(); T]; R];
        for i in 0..data {
            let p = src(i).add(col);
            let t = tab(j0, i);
            let mut nib = [(L::zero(), L::zero()); T];
            for (t, n) in nib.iter_mut().enumerate() {
                *n = L::nibbles(L::load(p.add(t * L::BYTES)));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let tables = L::tables(t.add(r));
                for (a, &n) in row.iter_mut().zip(&nib) {
                    *a = L::mul_acc(*a, tables, n);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let q = dst(j0 + r).add(col);
            for (t, &a) in row.iter().enumerate() {
                L::store(q.add(t * L::BYTES), a);
            }
        }
    }

    /// All parity rows at bytes `col .. col + T × L::BYTES`, [`ROWS`] rows per pass.
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
        tab: &impl Fn(usize, usize) -> *const [u8; 32],
    ) {
        let mut j = 0;
        while j + ROWS <= parity {
            block::<L, ROWS, T>(data, j, col, src, dst, tab);
            j += ROWS;
        }
        match parity - j {
            1 => block::<L, 1, T>(data, j, col, src, dst, tab),
            2 => block::<L, 2, T>(data, j, col, src, dst, tab),
            3 => block::<L, 3, T>(data, j, col, src, dst, tab),
            _ => {}
        }
    }

    /// Every parity shard of `len >= L::BYTES` bytes.
    ///
    /// # Safety
    /// The CPU has `L`'s feature; `src(i)` for `i < data` is readable and `dst(j)` for
    /// `j < parity` writable for `len` bytes, and the parity shards overlap no other shard.
    #[inline(always)]
    unsafe fn encode<L: Lanes>(
        data: usize,
        parity: usize,
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
        tab: impl Fn(usize, usize) -> *const [u8; 32],
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

    /// Tables of parity rows `j0 ..` for data shard `i` of the Cauchy code: row `j0 + r` of
    /// group `(parity + i) XOR j0` is `1 / ((parity + i) XOR (j0 + r))` because `j0` is a multiple
    /// of [`ROWS`] = 4 and `r < 4`.
    #[inline(always)]
    fn cauchy(parity: usize) -> impl Fn(usize, usize) -> *const [u8; 32] {
        move |j0, i| CAUCHY_TABLES.0[((parity + i) ^ j0) & 0xFF].as_ptr()
    }

    /// Tables of the two audio parity rows for data shard `i` (one pass: `j0` is 0).
    #[inline(always)]
    fn audio(_j0: usize, i: usize) -> *const [u8; 32] {
        AUDIO_TABLES.0[i].as_ptr()
    }

    /// The video (Cauchy) code with AVX2.
    ///
    /// # Safety
    /// The CPU supports AVX2; `len >= 32`; shards as for [`encode`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn cauchy_avx2(
        data: usize,
        parity: usize,
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
    ) {
        encode::<Avx2>(data, parity, len, src, dst, cauchy(parity))
    }

    /// The video (Cauchy) code with SSSE3.
    ///
    /// # Safety
    /// The CPU supports SSSE3; `len >= 16`; shards as for [`encode`].
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn cauchy_ssse3(
        data: usize,
        parity: usize,
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
    ) {
        encode::<Ssse3>(data, parity, len, src, dst, cauchy(parity))
    }

    /// The 4 + 2 audio code with AVX2: the shard counts and coefficients are constants, so the
    /// loops unroll and the nibble tables are read from fixed addresses.
    ///
    /// # Safety
    /// The CPU supports AVX2; `len >= 32`; four data and two parity shards as for [`encode`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn audio_avx2(
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
    ) {
        encode::<Avx2>(AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS, len, src, dst, audio)
    }

    /// The 4 + 2 audio code with SSSE3.
    ///
    /// # Safety
    /// The CPU supports SSSE3; `len >= 16`; four data and two parity shards as for [`encode`].
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn audio_ssse3(
        len: usize,
        src: impl Fn(usize) -> *const u8,
        dst: impl Fn(usize) -> *mut u8,
    ) {
        encode::<Ssse3>(AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS, len, src, dst, audio)
    }

    /// # Safety
    /// The CPU must support AVX2; `src` and `dst` must have the same length.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mul_add_avx2(tables: &[u8; 32], src: &[u8], dst: &mut [u8]) {
        let n = src.len();
        let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(tables.as_ptr().cast()));
        let hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(tables.as_ptr().add(16).cast()));
        let mask = _mm256_set1_epi8(0x0F);
        let mut k = 0;
        while k + 32 <= n {
            let s = _mm256_loadu_si256(src.as_ptr().add(k).cast());
            let l = _mm256_shuffle_epi8(lo, _mm256_and_si256(s, mask));
            let h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi64::<4>(s), mask));
            let d = _mm256_loadu_si256(dst.as_ptr().add(k).cast());
            let r = _mm256_xor_si256(d, _mm256_xor_si256(l, h));
            _mm256_storeu_si256(dst.as_mut_ptr().add(k).cast(), r);
            k += 32;
        }
        super::mul_add_scalar(tables, &src[k..], &mut dst[k..]);
    }

    /// # Safety
    /// The CPU must support SSSE3; `src` and `dst` must have the same length.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn mul_add_ssse3(tables: &[u8; 32], src: &[u8], dst: &mut [u8]) {
        let n = src.len();
        let lo = _mm_loadu_si128(tables.as_ptr().cast());
        let hi = _mm_loadu_si128(tables.as_ptr().add(16).cast());
        let mask = _mm_set1_epi8(0x0F);
        let mut k = 0;
        while k + 16 <= n {
            let s = _mm_loadu_si128(src.as_ptr().add(k).cast());
            let l = _mm_shuffle_epi8(lo, _mm_and_si128(s, mask));
            let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi64::<4>(s), mask));
            let d = _mm_loadu_si128(dst.as_ptr().add(k).cast());
            _mm_storeu_si128(
                dst.as_mut_ptr().add(k).cast(),
                _mm_xor_si128(d, _mm_xor_si128(l, h)),
            );
            k += 16;
        }
        super::mul_add_scalar(tables, &src[k..], &mut dst[k..]);
    }
}

const fn build_exp_log() -> ([u8; 512], [u8; 256]) {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= 0x11D;
        }
        i += 1;
    }
    while i < 512 {
        exp[i] = exp[i - 255];
        i += 1;
    }
    (exp, log)
}

const EXP_LOG: ([u8; 512], [u8; 256]) = build_exp_log();
static EXP: [u8; 512] = EXP_LOG.0;
static LOG: [u8; 256] = EXP_LOG.1;

const fn const_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP_LOG.0[EXP_LOG.1[a as usize] as usize + EXP_LOG.1[b as usize] as usize]
    }
}

const fn build_inv() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut a = 1;
    while a < 256 {
        t[a] = EXP_LOG.0[255 - EXP_LOG.1[a] as usize];
        a += 1;
    }
    t
}

/// `INV[a]` = 1/a, `INV[0]` = 0 (never used as a coefficient).
static INV: [u8; 256] = build_inv();

const fn build_nibble_tables() -> [[u8; 32]; 256] {
    let mut t = [[0u8; 32]; 256];
    let mut c = 0;
    while c < 256 {
        let mut x = 0;
        while x < 16 {
            t[c][x] = const_mul(c as u8, x as u8);
            t[c][16 + x] = const_mul(c as u8, (x << 4) as u8);
            x += 1;
        }
        c += 1;
    }
    t
}

/// For each coefficient `c`: products `c · x` for `x` in 0..16, then `c · (x << 4)`.
static NIBBLE_TABLES: [[u8; 32]; 256] = build_nibble_tables();

/// A table aligned to a cache line.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct CacheAligned<T>(T);

/// `CAUCHY_TABLES[x][r]` = `NIBBLE_TABLES[1 / (x XOR r)]` (zeros for `x XOR r == 0`, which no
/// code uses): the tables of four consecutive parity rows of one data shard, side by side.
#[cfg(target_arch = "x86_64")]
static CAUCHY_TABLES: CacheAligned<[[[u8; 32]; 4]; 256]> = CacheAligned(build_cauchy_tables());

#[cfg(target_arch = "x86_64")]
const fn build_cauchy_tables() -> [[[u8; 32]; 4]; 256] {
    let nibbles = build_nibble_tables();
    let inv = build_inv();
    let mut t = [[[0u8; 32]; 4]; 256];
    let mut x = 0;
    while x < 256 {
        let mut r = 0;
        while r < 4 {
            t[x][r] = nibbles[inv[x ^ r] as usize];
            r += 1;
        }
        x += 1;
    }
    t
}

/// `AUDIO_TABLES[i][j]` = the nibble tables of the audio coefficient of data shard `i` in parity
/// shard `j`.
#[cfg(target_arch = "x86_64")]
static AUDIO_TABLES: CacheAligned<[[[u8; 32]; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS]> =
    CacheAligned(build_audio_tables());

#[cfg(target_arch = "x86_64")]
const fn build_audio_tables() -> [[[u8; 32]; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS] {
    let nibbles = build_nibble_tables();
    let mut t = [[[0u8; 32]; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS];
    let mut i = 0;
    while i < AUDIO_DATA_SHARDS {
        let mut j = 0;
        while j < AUDIO_PARITY_SHARDS {
            t[i][j] = nibbles[AUDIO_MATRIX[j * AUDIO_DATA_SHARDS + i] as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    const KERNELS: [Kernel; 3] = [Kernel::Scalar, Kernel::Ssse3, Kernel::Avx2];

    /// Parity straight from the definition, one byte at a time with the field's `mul`.
    fn reference_parity(rs: &ReedSolomon, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let len = data[0].len();
        (0..rs.parity_shards())
            .map(|j| {
                (0..len)
                    .map(|k| {
                        data.iter()
                            .enumerate()
                            .fold(0, |acc, (i, d)| acc ^ mul(rs.coefficient(j, i), d[k]))
                    })
                    .collect()
            })
            .collect()
    }

    /// Encodes `data` with every kernel, through `encode` and through `encode_strided` at a few
    /// strides and offsets, and checks each result against the reference.
    fn check_all_kernels(rs: ReedSolomon, data: &[Vec<u8>], seed: u32) {
        let (d, p, len) = (rs.data_shards(), rs.parity_shards(), data[0].len());
        let expected = reference_parity(&rs, data);
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        for kernel in KERNELS {
            let rs = rs.with_kernel(kernel);
            let what = format!("{kernel:?} d={d} p={p} len={len}");

            let mut parity = vec![pseudo_random(seed ^ 0x55, len); p];
            let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            rs.encode(&refs, &mut prefs).unwrap();
            assert_eq!(parity, expected, "encode, {what}");

            let extra = (seed as usize % 41) + 1;
            for (stride, offset) in [(len, 0), (len + extra, extra), (len + extra, extra / 2)] {
                let mut buf = pseudo_random(seed ^ 0xAA, (d + p) * stride + 3);
                for (i, shard) in data.iter().enumerate() {
                    buf[i * stride + offset..][..len].copy_from_slice(shard);
                }
                let before = buf.clone();
                rs.encode_strided(&mut buf, stride, offset, len).unwrap();
                for (k, (&b, &a)) in buf.iter().zip(&before).enumerate() {
                    let (slot, at) = (k / stride, k % stride);
                    let in_parity =
                        (d..d + p).contains(&slot) && (offset..offset + len).contains(&at);
                    if in_parity {
                        assert_eq!(
                            b,
                            expected[slot - d][at - offset],
                            "strided {stride}+{offset}, {what}"
                        );
                    } else {
                        assert_eq!(b, a, "byte {k} outside the parity changed, {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_the_reference_on_edge_shapes() {
        let shapes = [
            (1usize, 1usize, 1usize),
            (1, 2, 8),
            (1, 7, 32),
            (2, 1, 31),
            (3, 4, 33),
            (4, 5, 47),
            (5, 8, 64),
            (6, 9, 65),
            (8, 3, 95),
            (9, 12, 127),
            (17, 6, 16),
            (11, 1, 15),
            (3, 252, 33),
            (250, 5, 40),
            (100, 20, 100),
            (212, 43, 64),
        ];
        for (n, &(d, p, len)) in shapes.iter().enumerate() {
            let data: Vec<Vec<u8>> = (0..d)
                .map(|i| pseudo_random((n * 1000 + i) as u32, len))
                .collect();
            check_all_kernels(ReedSolomon::video(d, p).unwrap(), &data, n as u32);
        }
    }

    #[test]
    fn every_kernel_matches_the_reference_on_random_shapes() {
        let dims = pseudo_random(0xFEC, 3 * 30);
        for (n, c) in dims.chunks(3).enumerate() {
            let d = 1 + c[0] as usize % 48;
            let p = 1 + c[1] as usize % 24;
            let len = 1 + (c[2] as usize * 7 + n) % 300;
            let data: Vec<Vec<u8>> = (0..d)
                .map(|i| pseudo_random((n * 7919 + i) as u32, len))
                .collect();
            check_all_kernels(ReedSolomon::video(d, p).unwrap(), &data, n as u32 + 17);
        }
    }

    #[test]
    fn every_kernel_matches_the_reference_on_the_audio_code() {
        for len in (1..=160).chain([255, 256, 1400]) {
            let data: Vec<Vec<u8>> = (0..4)
                .map(|i| pseudo_random(len as u32 * 4 + i, len))
                .collect();
            check_all_kernels(ReedSolomon::audio(), &data, len as u32);
        }
    }

    /// Parity that nanors (the clients' Reed-Solomon library) computed for the same data shards.
    #[test]
    fn matches_parity_computed_by_nanors() {
        let shard = |i: usize, len: usize| -> Vec<u8> {
            (0..len)
                .map(|k| ((7 * i + 13 * k + 1) * (k + 3)) as u8)
                .collect()
        };
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&s[k..k + 2], 16).unwrap())
                .collect()
        };
        let cases: [(ReedSolomon, usize, &[&str]); 3] = [
            (
                ReedSolomon::video(5, 3).unwrap(),
                40,
                &[
                    "de4ed6a32aeb9938b0a2d074414a0da0977fdd090b84946c6df90051\
                     85e6938f42a865a8ff723ab8",
                    "9b45a97b8bb46de4f17ff4e4288d1afabf1c2cc0ff39b7002eed9c81\
                     b1796b32733cd93188f828ee",
                    "d497f16c694d11a7aaf13499cfdb395bf971165f0a65e83f00e5183e\
                     51485065a0df87d9624c7792",
                ],
            ),
            (
                ReedSolomon::audio(),
                20,
                &[
                    "3a17b34aae9b5985161c8144deaf2eea0e5ca0b2",
                    "910d0f4f590dc971131fe0b25913d2d2ff5018ad",
                ],
            ),
            (
                ReedSolomon::video(1, 2).unwrap(),
                8,
                &["8f1ccd78b708ed4c", "01e37d50dafbb683"],
            ),
        ];
        for (rs, len, expected) in cases {
            let data: Vec<Vec<u8>> = (0..rs.data_shards()).map(|i| shard(i, len)).collect();
            let expected: Vec<Vec<u8>> = expected.iter().map(|s| hex(s)).collect();
            assert_eq!(reference_parity(&rs, &data), expected);
            check_all_kernels(rs, &data, len as u32);
        }
    }

    #[test]
    fn field_basics() {
        assert_eq!(mul(2, 0x80), 0x1D);
        assert_eq!(inv(2), Some(0x8E));
        assert_eq!(inv(0), None);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a).unwrap()), 1);
        }
    }

    #[test]
    fn cauchy_matrix_matches_reference_rows() {
        let rs = ReedSolomon::video(4, 2).unwrap();
        let rows: Vec<Vec<u8>> = (0..2)
            .map(|j| (0..4).map(|i| rs.coefficient(j, i)).collect())
            .collect();
        assert_eq!(rows[0], [0x8e, 0xf4, 0x47, 0xa7]);
        assert_eq!(rows[1], [0xf4, 0x8e, 0xa7, 0x47]);
    }

    #[test]
    fn single_data_shard_is_scaled_not_copied() {
        let rs = ReedSolomon::video(1, 2).unwrap();
        let data = [1u8, 2, 3];
        let mut p0 = [0u8; 3];
        let mut p1 = [0u8; 3];
        rs.encode(&[&data], &mut [&mut p0, &mut p1]).unwrap();
        let c0 = inv(2).unwrap();
        let c1 = inv(3).unwrap();
        assert_eq!(p0, [mul(c0, 1), mul(c0, 2), mul(c0, 3)]);
        assert_eq!(p1, [mul(c1, 1), mul(c1, 2), mul(c1, 3)]);
    }

    /// The audio table is the systematic Vandermonde code over the points 0, 1, 2, 4, 8, 16.
    #[test]
    fn audio_matrix_is_systematic_vandermonde() {
        let points = [0u8, 1, 2, 4, 8, 16];
        let pow = |x: u8, e: usize| (0..e).fold(1u8, |acc, _| mul(acc, x));
        let v: Vec<u8> = points
            .iter()
            .flat_map(|&x| (0..4).map(move |e| pow(x, e)))
            .collect::<Vec<_>>();
        let mut top = v[..16].to_vec();
        let top_inv = invert(&mut top, 4).unwrap();
        let mut rows = Vec::new();
        for r in 4..6 {
            for c in 0..4 {
                let mut acc = 0;
                for k in 0..4 {
                    acc ^= mul(v[r * 4 + k], top_inv[k * 4 + c]);
                }
                rows.push(acc);
            }
        }
        assert_eq!(rows, AUDIO_MATRIX);
    }

    #[test]
    fn kernels_agree() {
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1408, 4099] {
            let src = pseudo_random(len as u32, len);
            let base = pseudo_random(len as u32 + 7, len);
            for c in [0u8, 1, 2, 0x1D, 0x8E, 0xFF] {
                let mut expected = base.clone();
                for (d, &s) in expected.iter_mut().zip(&src) {
                    *d ^= mul(c, s);
                }
                for kernel in KERNELS {
                    let mut dst = base.clone();
                    mul_add_slice(kernel, c, &src, &mut dst);
                    assert_eq!(dst, expected, "kernel {kernel:?} c {c:#x} len {len}");
                }
            }
        }
    }

    #[test]
    fn encode_kernels_agree_and_strided_matches() {
        let (d, p, len) = (20, 5, 1408);
        let data: Vec<Vec<u8>> = (0..d).map(|i| pseudo_random(i as u32, len)).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut results = Vec::new();
        for kernel in KERNELS {
            let rs = ReedSolomon::video(d, p).unwrap().with_kernel(kernel);
            let mut parity = vec![vec![0u8; len]; p];
            let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            rs.encode(&refs, &mut prefs).unwrap();
            results.push(parity);
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));

        let stride = len + 40;
        let mut buf = vec![0xAAu8; (d + p) * stride];
        for (i, shard) in data.iter().enumerate() {
            buf[i * stride + 8..][..len].copy_from_slice(shard);
        }
        ReedSolomon::video(d, p)
            .unwrap()
            .encode_strided(&mut buf, stride, 8, len)
            .unwrap();
        for j in 0..p {
            assert_eq!(
                &buf[(d + j) * stride + 8..][..len],
                results[0][j].as_slice()
            );
            assert_eq!(buf[(d + j) * stride], 0xAA, "bytes outside the shard stay");
        }
    }

    #[test]
    fn reconstructs_lost_data_shards() {
        for (d, p) in [(1usize, 2usize), (4, 2), (10, 3), (212, 43), (100, 155)] {
            let rs = ReedSolomon::video(d, p).unwrap();
            let len = 64;
            let data: Vec<Vec<u8>> = (0..d).map(|i| pseudo_random(i as u32 * 31, len)).collect();
            let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            let mut parity = vec![vec![0u8; len]; p];
            {
                let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
                rs.encode(&refs, &mut prefs).unwrap();
            }
            // Lose the first min(p, d) data shards.
            let lost = p.min(d);
            let mut shards: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
            let mut present = vec![true; d + p];
            for k in 0..lost {
                shards[k].fill(0);
                present[k] = false;
            }
            let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
            rs.reconstruct(&mut srefs, &present).unwrap();
            for k in 0..d {
                assert_eq!(shards[k], data[k], "d={d} p={p} shard {k}");
            }
        }
    }

    #[test]
    fn audio_reconstructs_two_losses() {
        let rs = ReedSolomon::audio();
        let data: Vec<Vec<u8>> = (0..4).map(|i| pseudo_random(i, 120)).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity = vec![vec![0u8; 120]; 2];
        {
            let mut prefs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            rs.encode(&refs, &mut prefs).unwrap();
        }
        // Each parity byte is the documented row applied to the data bytes.
        for k in 0..120 {
            let expect = (0..4).fold(0, |acc, i| acc ^ mul(AUDIO_MATRIX[i], data[i][k]));
            assert_eq!(parity[0][k], expect);
        }
        let mut shards: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        shards[1].fill(0);
        shards[3].fill(0);
        let present = [true, false, true, false, true, true];
        let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        rs.reconstruct(&mut srefs, &present).unwrap();
        assert_eq!(shards[1], data[1]);
        assert_eq!(shards[3], data[3]);
        let mut srefs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        assert_eq!(
            rs.reconstruct(&mut srefs, &[false, false, false, true, true, true]),
            Err(FecError::TooFewShards {
                present: 3,
                needed: 4
            })
        );
    }

    #[test]
    fn rejects_bad_shard_counts() {
        assert!(ReedSolomon::video(0, 2).is_err());
        assert!(ReedSolomon::video(212, 44).is_err());
        assert!(ReedSolomon::video(212, 43).is_ok());
    }
}
