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

mod tables;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use tables::*;
