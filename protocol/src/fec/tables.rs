//! GF(2^8) tables, built at compile time: logarithms, inverses, the nibble and affine tables
//! of every coefficient, and the kernels' per-code tables.

use super::*;

pub(super) const fn build_exp_log() -> ([u8; 512], [u8; 256]) {
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

pub(super) const EXP_LOG: ([u8; 512], [u8; 256]) = build_exp_log();
pub(super) static EXP: [u8; 512] = EXP_LOG.0;
pub(super) static LOG: [u8; 256] = EXP_LOG.1;

pub(super) const fn const_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP_LOG.0[EXP_LOG.1[a as usize] as usize + EXP_LOG.1[b as usize] as usize]
    }
}

pub(super) const fn build_inv() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut a = 1;
    while a < 256 {
        t[a] = EXP_LOG.0[255 - EXP_LOG.1[a] as usize];
        a += 1;
    }
    t
}

/// `INV[a]` = 1/a, `INV[0]` = 0 (never used as a coefficient).
pub(super) static INV: [u8; 256] = build_inv();

pub(super) const fn build_nibble_tables() -> [[u8; 32]; 256] {
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
pub(super) static NIBBLE_TABLES: [[u8; 32]; 256] = build_nibble_tables();

/// The bit matrix with which `gf2p8affineqb` multiplies a byte by `c`.
///
/// The instruction computes bit `b` of its result as the parity of `x AND A.byte[7 - b]`: byte
/// `7 - b` of the matrix selects the bits of `x` that bit `b` of the product depends on. `c · x`
/// is the XOR, over the bits `k` set in `x`, of `c · 2^k` (reduced by the field's polynomial),
/// so bit `k` of byte `7 - b` is bit `b` of `c · 2^k`.
#[cfg(any(target_arch = "x86_64", test))]
pub(super) const fn affine_matrix(c: u8) -> u64 {
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
pub(super) const fn build_affine_matrices() -> [u64; 256] {
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
pub(super) static AFFINE_MATRICES: [u64; 256] = build_affine_matrices();

/// A table aligned to a cache line.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
pub(super) struct CacheAligned<T>(pub(super) T);

/// Parity rows of the Cauchy code whose coefficients lie side by side in [`CAUCHY_TABLES`] and
/// [`CAUCHY_AFFINE`].
#[cfg(target_arch = "x86_64")]
pub(super) const GROUP: usize = 4;

/// `CAUCHY_TABLES[x][r]` = `NIBBLE_TABLES[1 / (x XOR r)]` (zeros for `x XOR r == 0`, which no
/// code uses): the tables of four consecutive parity rows of one data shard, side by side.
#[cfg(target_arch = "x86_64")]
pub(super) static CAUCHY_TABLES: CacheAligned<[[[u8; 32]; GROUP]; 256]> =
    CacheAligned(build_cauchy(&build_nibble_tables()));

/// `CAUCHY_AFFINE[x][r]` = `AFFINE_MATRICES[1 / (x XOR r)]`, laid out as [`CAUCHY_TABLES`].
#[cfg(target_arch = "x86_64")]
pub(super) static CAUCHY_AFFINE: CacheAligned<[[u64; GROUP]; 256]> =
    CacheAligned(build_cauchy(&build_affine_matrices()));

/// `t[x][r]` = `per_coefficient[1 / (x XOR r)]`.
#[cfg(target_arch = "x86_64")]
pub(super) const fn build_cauchy<T: Copy>(per_coefficient: &[T; 256]) -> [[T; GROUP]; 256] {
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
pub(super) static AUDIO_TABLES: CacheAligned<[[[u8; 32]; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS]> =
    CacheAligned(build_audio(&build_nibble_tables()));

/// `AUDIO_AFFINE[i][j]` = the `gf2p8affineqb` matrix of the audio coefficient of data shard `i`
/// in parity shard `j`.
#[cfg(target_arch = "x86_64")]
pub(super) static AUDIO_AFFINE: CacheAligned<[[u64; AUDIO_PARITY_SHARDS]; AUDIO_DATA_SHARDS]> =
    CacheAligned(build_audio(&build_affine_matrices()));

/// `t[i][j]` = `per_coefficient[m[j][i]]` for the audio matrix `m`.
#[cfg(target_arch = "x86_64")]
pub(super) const fn build_audio<T: Copy>(
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
