//! What the unit tests of several modules share.

/// `len` bytes of a fixed xorshift sequence from `seed`: test data that differs by seed and is
/// the same on every run.
pub(crate) fn pseudo_random(seed: u32, len: usize) -> Vec<u8> {
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
