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

/// How often a frame may be lost on a link whose loss rate is known: [`Protection`] gives a
/// frame recovery shards until independent losses at that rate take more of its shards than it
/// can rebuild at most once in 10 000 frames.
pub const BLOCK_FAILURE_TARGET: f64 = 1e-4;

/// The highest loss rate recovery is sized for, in parts per million. Past it the stream cannot
/// be saved by FEC; the bitrate control has to act.
pub const MAX_SIZED_LOSS_PPM: u32 = 300_000;

/// How much recovery a frame carries.
///
/// A share of its data shards alone protects large frames well and small ones badly: at 10 %
/// loss a frame of 4 data shards with 2 recovery shards is lost once in 60 frames, one of 170
/// with 34 almost never. So once the link's loss rate is known, each frame gets at least as
/// many recovery shards as its own size needs to stay under [`BLOCK_FAILURE_TARGET`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protection {
    /// Recovery shards per 100 data shards; 0 sends none, whatever the loss.
    pub percent: u8,
    /// The link's loss rate in parts per million (0: unknown or none).
    pub loss_ppm: u32,
}

impl From<u8> for Protection {
    fn from(percent: u8) -> Self {
        Protection {
            percent,
            loss_ppm: 0,
        }
    }
}

impl Protection {
    /// Recovery shards for a frame of `data_shards`: `ceil(data * percent / 100)`, at least
    /// [`MIN_RECOVERY_SHARDS`] and at least what the loss rate needs ([`recovery_for_loss`]),
    /// never more than the code supports beside `data_shards` (then the largest count it
    /// supports, 1 for 65 535 data shards). 0 when `percent` is 0 or when no recovery shard fits
    /// (over 65 535 data shards).
    pub fn recovery_count(self, data_shards: usize) -> usize {
        if self.percent == 0 || data_shards == 0 {
            return 0;
        }
        let wanted = (data_shards * self.percent as usize)
            .div_ceil(100)
            .max(MIN_RECOVERY_SHARDS)
            .max(recovery_for_loss(data_shards, self.loss_ppm));
        supported_recovery(data_shards, wanted)
    }
}

/// Recovery shards for a frame of `data_shards` data shards at `percent` recovery shards per 100
/// ([`Protection::recovery_count`] with no known loss).
pub fn recovery_count(data_shards: usize, percent: u8) -> usize {
    Protection::from(percent).recovery_count(data_shards)
}

/// The most recovery shards, up to `wanted`, that the code supports beside `data_shards`.
fn supported_recovery(data_shards: usize, wanted: usize) -> usize {
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

/// The fewest recovery shards `r` for which a frame of `data_shards` data shards, its
/// `data + r` datagrams each lost independently with probability `loss_ppm / 1e6` (capped at
/// [`MAX_SIZED_LOSS_PPM`]), loses more than `r` of them at most [`BLOCK_FAILURE_TARGET`] of
/// the time. 0 for no loss; not limited to what the code supports.
pub fn recovery_for_loss(data_shards: usize, loss_ppm: u32) -> usize {
    if loss_ppm == 0 || data_shards == 0 {
        return 0;
    }
    let p = f64::from(loss_ppm.min(MAX_SIZED_LOSS_PPM)) / 1e6;
    let fails = |r: usize| binomial_tail(data_shards + r, r + 1, p) > BLOCK_FAILURE_TARGET;
    // The normal approximation's answer, then exact steps to the smallest count that holds
    // (the binomial is skewed for small blocks, so the guess is only a start).
    let z = 3.72; // the normal distribution's upper 1e-4 quantile
    let mut r = 0.0f64;
    for _ in 0..4 {
        let n = data_shards as f64 + r;
        r = n * p + z * (n * p * (1.0 - p)).sqrt();
    }
    let mut r = (r.ceil() as usize).min(MAX_BLOCK_SHARDS);
    while fails(r) && r < MAX_BLOCK_SHARDS {
        r += 1;
    }
    while r > 0 && !fails(r - 1) {
        r -= 1;
    }
    r
}

/// `P(X >= k)` for `X` binomial over `n` trials of probability `p` (`0 < p < 1`), for `k`
/// above the mean; 1 at or below it.
fn binomial_tail(n: usize, k: usize, p: f64) -> f64 {
    if k > n {
        return 0.0;
    }
    if k as f64 <= n as f64 * p {
        return 1.0;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_term = ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
        + k as f64 * ln_p
        + (n - k) as f64 * ln_q;
    // Past the mean every term is smaller than the one before: add until they stop counting.
    let mut sum = 0.0;
    for i in k..=n {
        let term = ln_term.exp();
        sum += term;
        if term <= sum * 1e-9 {
            break;
        }
        ln_term += ((n - i) as f64 / (i + 1) as f64).ln() + ln_p - ln_q;
    }
    sum.min(1.0)
}

/// `ln(n!)`: exact below 16, Stirling's series (error under 1e-12) from there.
fn ln_factorial(n: usize) -> f64 {
    if n < 16 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (std::f64::consts::TAU * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x * x)
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
    fn loss_sizes_small_frames_more_than_large_ones() {
        // At 10 % loss a 4-shard frame needs 5 recovery shards (4 would fail 4 times in
        // 10 000: C(8,5) 0.1^5 0.9^3 + ...), a 170-shard frame far fewer than 5 per 4.
        assert_eq!(recovery_for_loss(4, 100_000), 5);
        assert!(binomial_tail(8, 5, 0.1) > BLOCK_FAILURE_TARGET);
        assert!(binomial_tail(9, 6, 0.1) <= BLOCK_FAILURE_TARGET);
        let large = recovery_for_loss(170, 100_000);
        assert!((30..60).contains(&large), "{large}");
        assert_eq!(recovery_for_loss(100, 0), 0);
        assert_eq!(recovery_for_loss(0, 100_000), 0);
        // The count is the smallest that holds.
        for d in [1, 2, 3, 5, 17, 60, 400, 3000] {
            for ppm in [1_000, 20_000, 100_000, 250_000, 900_000] {
                let r = recovery_for_loss(d, ppm);
                let p = f64::from(ppm.min(MAX_SIZED_LOSS_PPM)) / 1e6;
                assert!(
                    binomial_tail(d + r, r + 1, p) <= BLOCK_FAILURE_TARGET,
                    "{d} {ppm}"
                );
                assert!(r == 0 || binomial_tail(d + r - 1, r, p) > BLOCK_FAILURE_TARGET);
            }
        }
    }

    #[test]
    fn binomial_tail_matches_the_sum_of_its_terms() {
        // n = 10, p = 0.2: P(X >= 5) = 0.0327934976 (sum of C(10,k) 0.2^k 0.8^(10-k), k >= 5).
        assert!((binomial_tail(10, 5, 0.2) - 0.032_793_497_6).abs() < 1e-9);
        assert!((binomial_tail(6, 3, 0.1) - 0.015_85).abs() < 1e-9);
        assert_eq!(binomial_tail(6, 7, 0.1), 0.0);
        assert_eq!(binomial_tail(100, 5, 0.1), 1.0);
        // Large blocks stay finite where p^k and q^(n-k) alone would underflow.
        let t = binomial_tail(60_000, 6_500, 0.1);
        assert!(t > 0.0 && t < 1e-9, "{t}");
        for n in [16, 40, 1000, 65_535] {
            let direct: f64 = (2..=n).map(|i| (i as f64).ln()).sum();
            assert!((ln_factorial(n) - direct).abs() < 1e-9 * direct, "{n}");
        }
    }

    #[test]
    fn protection_raises_the_percentage_for_a_lossy_link() {
        let lossy = Protection {
            percent: 20,
            loss_ppm: 100_000,
        };
        assert_eq!(lossy.recovery_count(4), 5);
        assert_eq!(Protection::from(20).recovery_count(4), 2);
        // The percentage stays the floor, and 0 still sends none.
        assert_eq!(
            Protection {
                percent: 200,
                loss_ppm: 10_000
            }
            .recovery_count(100),
            200
        );
        assert_eq!(
            Protection {
                percent: 0,
                loss_ppm: 100_000
            }
            .recovery_count(4),
            0
        );
        assert_eq!(lossy.recovery_count(65_535), 1);
    }

    #[test]
    fn warm_up_runs() {
        warm_up();
        warm_up();
    }
}
