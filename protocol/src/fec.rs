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
//! Encoding multiplies whole slices by one coefficient at a time. Each coefficient's products are
//! split into two 16-entry tables (low and high nibble), which an x86 `pshufb` looks up 16 or 32
//! bytes at a time; [`Kernel::detect`] picks AVX2, SSSE3 or the portable scalar loop at run time,
//! and every kernel gives the same bytes.
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
        for (j, out) in parity.iter_mut().enumerate() {
            out.fill(0);
            for (i, src) in data.iter().enumerate() {
                mul_add_slice(self.kernel, self.coefficient(j, i), src, out);
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
        for j in 0..self.parity {
            let out = &mut parity[j * stride + offset..][..len];
            out.fill(0);
            for i in 0..self.data {
                let src = &data[i * stride + offset..][..len];
                mul_add_slice(self.kernel, self.coefficient(j, i), src, out);
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

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
                for kernel in [Kernel::Scalar, Kernel::Ssse3, Kernel::Avx2] {
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
        for kernel in [Kernel::Scalar, Kernel::Ssse3, Kernel::Avx2] {
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
