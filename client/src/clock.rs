//! The client's clock and its offset to the host's, NTP-style.
//!
//! The host stamps frames with its `CLOCK_MONOTONIC`; the client probes with its own. A probe
//! leaves at client time `t1`, reaches the host at host time `t2`, its echo leaves at `t3` and
//! arrives at client time `t4`. With symmetric paths the host clock minus the client clock is
//! `((t2 - t1) + (t3 - t4)) / 2`, wrong by at most half the asymmetry, so the sample of the
//! shortest round trip (`(t4 - t1) - (t3 - t2)`) is the one to trust.

/// Nanoseconds on this machine's `CLOCK_MONOTONIC`, the clock the host stamps frames with on
/// its side.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One probe and its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClockSample {
    /// Client clock when the probe left.
    pub(crate) t1: u64,
    /// Host clock when the probe arrived.
    pub(crate) t2: u64,
    /// Host clock when the echo left.
    pub(crate) t3: u64,
    /// Client clock when the echo arrived.
    pub(crate) t4: u64,
}

impl ClockSample {
    /// The round trip without the host's time between receive and send, in ns.
    pub(crate) fn rtt_ns(&self) -> i64 {
        (self.t4 as i64 - self.t1 as i64) - (self.t3 as i64 - self.t2 as i64)
    }

    /// Host clock minus client clock, in ns.
    pub(crate) fn offset_ns(&self) -> i64 {
        let a = self.t2 as i128 - self.t1 as i128;
        let b = self.t3 as i128 - self.t4 as i128;
        ((a + b) / 2) as i64
    }
}

/// The offset and round trip of the sample with the shortest round trip; `None` without
/// samples.
pub(crate) fn best_offset(samples: &[ClockSample]) -> Option<(i64, i64)> {
    samples
        .iter()
        .filter(|s| s.rtt_ns() >= 0)
        .min_by_key(|s| s.rtt_ns())
        .map(|s| (s.offset_ns(), s.rtt_ns()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_round_trip_wins() {
        // The host clock runs 1 000 000 ns ahead. The first sample's way there took 900 µs and
        // back 100 µs (asymmetric, a poor estimate); the second 50 µs each way.
        let slow = ClockSample {
            t1: 10_000_000,
            t2: 10_000_000 + 900_000 + 1_000_000,
            t3: 10_000_000 + 910_000 + 1_000_000,
            t4: 10_000_000 + 1_010_000,
        };
        let fast = ClockSample {
            t1: 20_000_000,
            t2: 20_000_000 + 50_000 + 1_000_000,
            t3: 20_000_000 + 60_000 + 1_000_000,
            t4: 20_000_000 + 110_000,
        };
        assert_eq!(slow.rtt_ns(), 1_000_000);
        assert_eq!(fast.rtt_ns(), 100_000);
        assert_eq!(fast.offset_ns(), 1_000_000);
        assert_eq!(slow.offset_ns(), 1_400_000);
        assert_eq!(best_offset(&[slow, fast]), Some((1_000_000, 100_000)));
        assert_eq!(best_offset(&[fast, slow]), Some((1_000_000, 100_000)));
        assert_eq!(best_offset(&[]), None);
    }

    #[test]
    fn a_host_clock_behind_gives_a_negative_offset() {
        let s = ClockSample {
            t1: 5_000_000_000,
            t2: 1_000_010_000,
            t3: 1_000_020_000,
            t4: 5_000_030_000,
        };
        assert_eq!(s.rtt_ns(), 20_000);
        assert_eq!(s.offset_ns(), -4_000_000_000);
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
