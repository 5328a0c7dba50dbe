//! How many recovery shards a frame gets, and warming the GF(2^16) code up.
//!
//! The code is Leopard's Reed-Solomon over GF(2^16) as the `reed-solomon-simd` crate implements
//! it: one block holds up to 65 535 shards (data plus recovery, within the limits of
//! [`ReedSolomonDecoder::supports`]), so a frame of several megabytes is one block with one loss
//! budget, and encoding costs O(n log n). Shards must be of even length, which
//! [`FrameLayout`](super::FrameLayout) guarantees.
//!
//! The crate builds its multiplication tables on first use, in every process; that costs
//! milliseconds the first frame should not pay. [`warm_up`] does it up front, and
//! [`FrameSealer::warm_up`](super::FrameSealer::warm_up) and
//! [`Reassembler::warm_up`](super::Reassembler::warm_up) also size their coder's work space.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Largest block the code supports: `data + recovery` shards.
pub const MAX_BLOCK_SHARDS: usize = 65_535;
/// Fewest recovery shards a frame with FEC gets.
pub const MIN_RECOVERY_SHARDS: usize = 2;

/// Recovery shards for a frame of `data_shards` data shards at `percent` recovery shards per 100.
///
/// `ceil(data * percent / 100)`, at least [`MIN_RECOVERY_SHARDS`], and never more than the code
/// supports beside `data_shards` (then the largest count it supports, 1 for 65 535 data shards).
/// 0 when `percent` is 0 or when no recovery shard fits (over 65 535 data shards).
pub fn recovery_count(data_shards: usize, percent: u8) -> usize {
    if percent == 0 || data_shards == 0 {
        return 0;
    }
    let wanted = (data_shards * percent as usize)
        .div_ceil(100)
        .max(MIN_RECOVERY_SHARDS);
    if ReedSolomonDecoder::supports(data_shards, wanted) {
        return wanted;
    }
    // The code needs `min(pow2(d), pow2(r)) + max(d, r) <= 65 536`. With more recovery than
    // data shards the data count's power of two is the smaller one ...
    let above = (MAX_BLOCK_SHARDS + 1)
        .saturating_sub(data_shards.next_power_of_two())
        .min(wanted);
    if above > 0 && ReedSolomonDecoder::supports(data_shards, above) {
        return above;
    }
    // ... otherwise the recovery count's power of two must fit beside the data shards.
    let room = (MAX_BLOCK_SHARDS + 1).saturating_sub(data_shards);
    let below = prev_power_of_two(room).min(wanted);
    if below > 0 && ReedSolomonDecoder::supports(data_shards, below) {
        return below;
    }
    0
}

/// Builds the code's process-wide tables by coding one small block.
///
/// Call it once at start-up (any thread); later calls cost a few microseconds.
pub fn warm_up() {
    let shard = [0u8; 64];
    // Both "rates" of the code (more data than recovery shards and the reverse) share the
    // tables; 4 + 2 and 2 + 4 touch both code paths.
    for (d, r) in [(4, 2), (2, 4)] {
        let Ok(mut enc) = ReedSolomonEncoder::new(d, r, shard.len()) else {
            continue;
        };
        for _ in 0..d {
            let _ = enc.add_original_shard(shard);
        }
        let recovery: Vec<Vec<u8>> = match enc.encode() {
            Ok(out) => out.recovery_iter().map(<[u8]>::to_vec).collect(),
            Err(_) => continue,
        };
        let Ok(mut dec) = ReedSolomonDecoder::new(d, r, shard.len()) else {
            continue;
        };
        for (i, s) in recovery.iter().enumerate().take(d) {
            let _ = dec.add_recovery_shard(i, s);
        }
        for i in recovery.len().min(d)..d {
            let _ = dec.add_original_shard(i, shard);
        }
        let _ = dec.decode();
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_count_follows_the_percentage() {
        assert_eq!(recovery_count(10, 0), 0);
        assert_eq!(recovery_count(1, 10), 2);
        assert_eq!(recovery_count(10, 10), 2);
        assert_eq!(recovery_count(10, 25), 3);
        assert_eq!(recovery_count(100, 20), 20);
        assert_eq!(recovery_count(101, 20), 21);
        assert_eq!(recovery_count(2841, 10), 285);
        assert_eq!(recovery_count(100, 255), 255);
    }

    #[test]
    fn recovery_count_stays_within_the_code() {
        assert_eq!(recovery_count(40_000, 100), 16_384);
        assert_eq!(recovery_count(65_534, 10), 2);
        assert_eq!(recovery_count(65_535, 10), 1);
        assert_eq!(recovery_count(65_536, 10), 0);
        assert_eq!(recovery_count(30_000, 200), 32_768);
        for d in [1, 2, 3, 100, 1000, 20_000, 32_768, 32_769, 50_000, 65_000] {
            for p in [1, 10, 50, 100, 200, 255] {
                let r = recovery_count(d, p);
                assert!(r == 0 || ReedSolomonDecoder::supports(d, r), "{d} {p} {r}");
                assert!(r > 0, "{d} {p}");
            }
        }
    }

    #[test]
    fn warm_up_runs() {
        warm_up();
        warm_up();
    }
}
