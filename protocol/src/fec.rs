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
//! Two ways to multiply a vector of bytes by a constant coefficient: split each byte into its low
//! and high nibble and look both up in 16-entry product tables with `pshufb` (SSSE3, AVX2,
//! AVX-512BW: 16, 32 or 64 bytes at a time), or, where the CPU has GFNI, apply the coefficient's
//! 8 × 8 bit matrix with one `gf2p8affineqb` (multiplication by a constant is linear over GF(2)
//! in any field, so the instruction's own polynomial does not matter). The encoders load each
//! vector of data once and multiply it into several parity rows held in registers, writing each
//! parity vector once; [`mul_add_slice`] multiplies one whole slice by one coefficient.
//! [`Kernel::detect`] picks the fastest kernel the CPU has at run time, and every kernel gives the
//! same bytes.
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
    /// 32 bytes per step with GFNI's `vgf2p8affineqb` on AVX2 registers (CPUs with GFNI but
    /// without AVX-512).
    GfniAvx2,
    /// 64 bytes per step with AVX-512BW `vpshufb`.
    Avx512,
    /// 64 bytes per step with GFNI's `vgf2p8affineqb` on AVX-512 registers.
    Gfni,
}

impl Kernel {
    /// Every kernel, fastest first: the order [`Kernel::detect`] tries them in.
    pub const ALL: [Kernel; 6] = [
        Kernel::Gfni,
        Kernel::GfniAvx2,
        Kernel::Avx512,
        Kernel::Avx2,
        Kernel::Ssse3,
        Kernel::Scalar,
    ];

    /// The fastest kernel this CPU supports.
    pub fn detect() -> Self {
        Kernel::ALL
            .into_iter()
            .find(|k| k.is_available())
            .unwrap_or(Kernel::Scalar)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        use std::arch::is_x86_feature_detected as has;
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Ssse3 => has!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => has!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::GfniAvx2 => has!("avx2") && has!("gfni"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => has!("avx512f") && has!("avx512bw"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Gfni => has!("avx512f") && has!("avx512bw") && has!("gfni"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The kernel to use instead where the CPU lacks this one or a shard is shorter than one of
    /// its vectors; `None` after [`Kernel::Scalar`].
    fn narrower(self) -> Option<Kernel> {
        match self {
            Kernel::Gfni => Some(Kernel::GfniAvx2),
            Kernel::Avx512 | Kernel::GfniAvx2 => Some(Kernel::Avx2),
            Kernel::Avx2 => Some(Kernel::Ssse3),
            Kernel::Ssse3 => Some(Kernel::Scalar),
            Kernel::Scalar => None,
        }
    }

    /// Bytes per vector.
    fn width(self) -> usize {
        match self {
            Kernel::Scalar => 1,
            Kernel::Ssse3 => 16,
            Kernel::Avx2 | Kernel::GfniAvx2 => 32,
            Kernel::Avx512 | Kernel::Gfni => 64,
        }
    }

    /// This kernel or the first narrower one ([`Kernel::narrower`]) that the CPU has and whose
    /// vectors fit in `len` bytes.
    fn usable(self, len: usize) -> Kernel {
        let mut k = self;
        while !(k.is_available() && k.width() <= len) {
            match k.narrower() {
                Some(n) => k = n,
                None => break,
            }
        }
        k
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
/// A kernel the CPU lacks ([`Kernel::is_available`]) falls back to the next narrower one it has
/// (`Gfni` to `GfniAvx2`, that and `Avx512` to `Avx2`, then `Ssse3`, then [`Kernel::Scalar`]).
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
    match kernel.usable(1) {
        Kernel::Scalar => mul_add_scalar(&NIBBLE_TABLES[c as usize], src, dst),
        // SAFETY: `usable` only returns a kernel whose CPU features it checked at run time.
        #[cfg(target_arch = "x86_64")]
        k => unsafe { x86::mul_add(k, c, src, dst) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("no vector kernel on this architecture"),
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
    /// for the scalar loop: the code's kernel or a narrower one ([`Kernel::usable`]) whose vector
    /// fits in a shard (the last vector of a shard overlaps the one before it rather than running
    /// a byte loop).
    fn vector_kernel(&self, len: usize) -> Option<Kernel> {
        Some(self.kernel.usable(len)).filter(|&k| k != Kernel::Scalar)
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
        let code = match self.matrix {
            Matrix::Cauchy => x86::Code::Cauchy {
                data: self.data,
                parity: self.parity,
            },
            Matrix::Audio => x86::Code::Audio,
        };
        // SAFETY: the caller's contract is the kernels' contract.
        unsafe { x86::encode(kernel, code, len, src, dst) }
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
/// The encoders compute a parity vector as `Σ_i m[j][i] · data_i`: each data vector is loaded
/// (and for the nibble kernels split into its low and high nibbles) once, then multiplied into
/// up to `L::ROWS` parity accumulators held in registers, and every parity vector is stored once,
/// never read back. One product is two `pshufb` lookups and two XORs with the nibble tables (one
/// three-way XOR with AVX-512), or one `gf2p8affineqb` and one XOR with GFNI (with AVX-512, two
/// data shards per step share one three-way XOR into the accumulator). A pass covers two
/// vectors of every shard (64 bytes with AVX2, 128 with AVX-512): those bytes of all data shards
/// stay in L1 while the passes for successive groups of parity rows read them again. Shard tails
/// that are not a whole number of vectors end with one vector that overlaps the previous one;
/// parity is computed from the data alone, so writing those bytes twice gives the same result.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{
        Kernel, AFFINE_MATRICES, AUDIO_AFFINE, AUDIO_DATA_SHARDS, AUDIO_PARITY_SHARDS,
        AUDIO_TABLES, CAUCHY_AFFINE, CAUCHY_TABLES, GROUP, NIBBLE_TABLES,
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

/// The bit matrix with which `gf2p8affineqb` multiplies a byte by `c`.
///
/// The instruction computes bit `b` of its result as the parity of `x AND A.byte[7 - b]`: byte
/// `7 - b` of the matrix selects the bits of `x` that bit `b` of the product depends on. `c · x`
/// is the XOR, over the bits `k` set in `x`, of `c · 2^k` (reduced by the field's polynomial),
/// so bit `k` of byte `7 - b` is bit `b` of `c · 2^k`.
#[cfg(any(target_arch = "x86_64", test))]
const fn affine_matrix(c: u8) -> u64 {
    let mut m = 0u64;
    let mut k = 0;
    while k < 8 {
        let column = const_mul(c, 1 << k);
        let mut b = 0;
        while b < 8 {
            if column >> b & 1 == 1 {
                m |= 1 << (8 * (7 - b) + k);
            }
            b += 1;
        }
        k += 1;
    }
    m
}

#[cfg(target_arch = "x86_64")]
const fn build_affine_matrices() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = affine_matrix(c as u8);
        c += 1;
    }
    t
}

/// For each coefficient `c`: the `gf2p8affineqb` matrix of multiplication by `c`.
#[cfg(target_arch = "x86_64")]
static AFFINE_MATRICES: [u64; 256] = build_affine_matrices();

/// A table aligned to a cache line.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct CacheAligned<T>(T);

/// Parity rows of the Cauchy code whose coefficients lie side by side in [`CAUCHY_TABLES`] and
/// [`CAUCHY_AFFINE`].
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 4;

/// `CAUCHY_TABLES[x][r]` = `NIBBLE_TABLES[1 / (x XOR r)]` (zeros for `x XOR r == 0`, which no
/// code uses): the tables of four consecutive parity rows of one data shard, side by side.
#[cfg(target_arch = "x86_64")]
static CAUCHY_TABLES: CacheAligned<[[[u8; 32]; GROUP]; 256]> =
    CacheAligned(build_cauchy(&build_nibble_tables()));

/// `CAUCHY_AFFINE[x][r]` = `AFFINE_MATRICES[1 / (x XOR r)]`, laid out as [`CAUCHY_TABLES`].
#[cfg(target_arch = "x86_64")]
static CAUCHY_AFFINE: CacheAligned<[[u64; GROUP]; 256]> =
    CacheAligned(build_cauchy(&build_affine_matrices()));

/// `t[x][r]` = `per_coefficient[1 / (x XOR r)]`.
#[cfg(target_arch = "x86_64")]
const fn build_cauchy<T: Copy>(per_coefficient: &[T; 256]) -> [[T; GROUP]; 256] {
    let inv = build_inv();
    let mut t = [[per_coefficient[0]; GROUP]; 256];
    let mut x = 0;
    while x < 256 {
        let mut r = 0;
        while r < GROUP {
            t[x][r] = per_coefficient[inv[x ^ r] as usize];
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
    CacheAligned(build_audio(&build_nibble_tables()));

/// `AUDIO_AFFINE[i][j]` = the `gf2p8affineqb` matrix of the audio coefficient of data shard `i`
/// in parity shard `j`.
#[cfg(target_arch = "x86_64")]
static AUDIO_AFFINE: CacheAligned<[[u64; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS]> =
    CacheAligned(build_audio(&build_affine_matrices()));

/// `t[i][j]` = `per_coefficient[m[j][i]]` for the audio matrix `m`.
#[cfg(target_arch = "x86_64")]
const fn build_audio<T: Copy>(
    per_coefficient: &[T; 256],
) -> [[T; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS] {
    let mut t = [[per_coefficient[0]; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS];
    let mut i = 0;
    while i < AUDIO_DATA_SHARDS {
        let mut j = 0;
        while j < AUDIO_PARITY_SHARDS {
            t[i][j] = per_coefficient[AUDIO_MATRIX[j * AUDIO_DATA_SHARDS + i] as usize];
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

    /// The kernels this CPU has; notes (once per test binary) each one it lacks, whose tests are
    /// skipped.
    fn kernels() -> Vec<Kernel> {
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            for k in Kernel::ALL.into_iter().filter(|k| !k.is_available()) {
                println!("note: this CPU lacks the {k:?} FEC kernel; its tests are skipped");
            }
        });
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

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
        for kernel in kernels() {
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
            // Around the 64-byte vectors and the eight-row passes of the AVX-512 kernels.
            (7, 13, 63),
            (9, 15, 129),
            (30, 8, 191),
            (5, 17, 64),
            (2, 23, 200),
            (40, 7, 130),
            (12, 14, 1408),
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
                for kernel in kernels() {
                    let mut dst = base.clone();
                    mul_add_slice(kernel, c, &src, &mut dst);
                    assert_eq!(dst, expected, "kernel {kernel:?} c {c:#x} len {len}");
                }
            }
        }
    }

    #[test]
    fn every_kernel_multiplies_every_byte_by_every_coefficient() {
        // All 256 byte values, then a tail that is not a whole vector of any kernel.
        let src: Vec<u8> = (0..=255u8).chain(0..37).collect();
        let base = pseudo_random(0xC0EF, src.len());
        for kernel in kernels() {
            for c in 0..=255u8 {
                let mut dst = base.clone();
                mul_add_slice(kernel, c, &src, &mut dst);
                for (k, (&d, (&b, &s))) in dst.iter().zip(base.iter().zip(&src)).enumerate() {
                    assert_eq!(d, b ^ mul(c, s), "kernel {kernel:?} c {c:#x} byte {k}");
                }
            }
        }
    }

    #[test]
    fn kernels_agree_on_random_coefficients_and_lengths() {
        let cases = pseudo_random(0x5EED, 3 * 200);
        for (n, case) in cases.chunks(3).enumerate() {
            let c = case[0];
            let len = (usize::from(case[1]) << 2 | usize::from(case[2]) & 3) % 700;
            let src = pseudo_random(n as u32, len);
            let base = pseudo_random(n as u32 + 1000, len);
            let expected: Vec<u8> = base
                .iter()
                .zip(&src)
                .map(|(&b, &s)| b ^ mul(c, s))
                .collect();
            for kernel in kernels() {
                let mut dst = base.clone();
                mul_add_slice(kernel, c, &src, &mut dst);
                assert_eq!(dst, expected, "kernel {kernel:?} c {c:#x} len {len}");
            }
        }
    }

    /// `gf2p8affineqb` as Intel defines it, for one byte: bit `b` of the result is the parity of
    /// `x AND matrix.byte[7 - b]` (the instruction's constant term is 0 here).
    fn affine_byte(matrix: u64, x: u8) -> u8 {
        (0..8).fold(0, |acc, b| {
            let row = (matrix >> (8 * (7 - b))) as u8;
            acc | (((row & x).count_ones() & 1) as u8) << b
        })
    }

    #[test]
    fn affine_matrices_multiply_like_the_field() {
        // The identity matrix of Intel's documentation.
        assert_eq!(affine_matrix(1), 0x0102_0408_1020_4080);
        for c in 0..=255u8 {
            let m = affine_matrix(c);
            for x in 0..=255u8 {
                assert_eq!(affine_byte(m, x), mul(c, x), "c {c:#x} x {x:#x}");
            }
        }
    }

    #[test]
    fn detect_picks_the_first_kernel_the_cpu_has() {
        let detected = Kernel::detect();
        assert!(detected.is_available());
        assert_eq!(Some(detected), kernels().first().copied());
        for kernel in Kernel::ALL {
            for len in [1, 15, 16, 31, 32, 63, 64, 65] {
                let k = kernel.usable(len);
                assert!(k.is_available(), "{kernel:?} at {len} bytes runs {k:?}");
                assert!(
                    k == Kernel::Scalar || k.width() <= len,
                    "{kernel:?} at {len} runs {k:?}"
                );
            }
        }
    }

    #[test]
    fn encode_kernels_agree_and_strided_matches() {
        let (d, p, len) = (20, 5, 1408);
        let data: Vec<Vec<u8>> = (0..d).map(|i| pseudo_random(i as u32, len)).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut results = Vec::new();
        for kernel in kernels() {
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
