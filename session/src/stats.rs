//! The recent history of each stream, sampled once a second for the console's graphs: bitrate
//! and frames actually sent, FEC percentage, loss the client reported and host latency.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use streamer::StreamStats;

use crate::web::model::StatsSample;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How many samples a session keeps: five minutes.
pub const KEEP: usize = 300;

/// The samples of every streaming session.
#[derive(Default)]
pub struct StatsHistory {
    sessions: HashMap<u64, SessionHistory>,
}

#[derive(Default)]
struct SessionHistory {
    samples: VecDeque<StatsSample>,
    last: Option<(Instant, StreamStats)>,
}

impl StatsHistory {
    /// Takes one sample of each session in `now_streaming` (id and counters read at `now`);
    /// sessions no longer there are forgotten.
    pub fn record(&mut self, now: Instant, wall: SystemTime, now_streaming: &[(u64, StreamStats)]) {
        self.sessions
            .retain(|id, _| now_streaming.iter().any(|(s, _)| s == id));
        let unix_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for (id, stats) in now_streaming {
            let history = self.sessions.entry(*id).or_default();
            if let Some((then, before)) = history.last {
                let secs = now.saturating_duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    history
                        .samples
                        .push_back(sample(unix_ms, secs, &before, stats));
                    if history.samples.len() > KEEP {
                        history.samples.pop_front();
                    }
                }
            }
            history.last = Some((now, *stats));
        }
    }

    /// The samples of session `id`, oldest first (empty for a session not streaming).
    pub fn samples(&self, id: u64) -> Vec<StatsSample> {
        self.sessions
            .get(&id)
            .map(|h| h.samples.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn sample(unix_ms: u64, secs: f64, before: &StreamStats, now: &StreamStats) -> StatsSample {
    let frames = now.frames_sent.saturating_sub(before.frames_sent);
    let bytes = now.video_bytes_sent.saturating_sub(before.video_bytes_sent);
    let sent = now.packets_sent.saturating_sub(before.packets_sent);
    let lost = now.packets_lost.saturating_sub(before.packets_lost);
    StatsSample {
        unix_ms,
        fps: round1(frames as f64 / secs),
        bitrate_kbps: round1(bytes as f64 * 8.0 / 1000.0 / secs),
        fec_percent: now.fec_percent,
        loss_percent: if sent == 0 {
            0.0
        } else {
            round1(lost as f64 * 100.0 / sent as f64)
        },
        host_latency_ms: round1(now.host_latency_us as f64 / 1000.0),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(frames: u64, bytes: u64, sent: u64, lost: u64) -> StreamStats {
        StreamStats {
            fec_percent: 20,
            video_bitrate_kbps: 20_000,
            video_codec: "h264",
            chroma_444: false,
            bit_depth: 8,
            video_encoder: Some("libx264"),
            frames_sent: frames,
            video_bytes_sent: bytes,
            packets_sent: sent,
            packets_lost: lost,
            host_latency_us: 4_250,
        }
    }

    #[test]
    fn samples_are_rates_over_the_interval_and_sessions_that_end_are_forgotten() {
        let mut h = StatsHistory::default();
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        h.record(t0, wall, &[(1, stats(0, 0, 0, 0))]);
        assert!(
            h.samples(1).is_empty(),
            "the first reading only sets the baseline"
        );
        h.record(
            t0 + Duration::from_secs(2),
            wall + Duration::from_secs(2),
            &[(1, stats(120, 2_500_000, 2000, 50)), (2, stats(0, 0, 0, 0))],
        );
        let s = h.samples(1);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].fps, 60.0);
        assert_eq!(s[0].bitrate_kbps, 10_000.0);
        assert_eq!(s[0].loss_percent, 2.5);
        assert_eq!(s[0].host_latency_ms, 4.3);
        assert_eq!(s[0].unix_ms, 1_002_000);
        h.record(
            t0 + Duration::from_secs(3),
            wall,
            &[(2, stats(60, 0, 0, 0))],
        );
        assert!(h.samples(1).is_empty(), "session 1 ended");
        assert_eq!(h.samples(2).len(), 1);
    }

    #[test]
    fn a_session_keeps_five_minutes() {
        let mut h = StatsHistory::default();
        let t0 = Instant::now();
        for i in 0..400u64 {
            h.record(
                t0 + Duration::from_secs(i),
                SystemTime::now(),
                &[(7, stats(i * 60, 0, 0, 0))],
            );
        }
        assert_eq!(h.samples(7).len(), KEEP);
    }
}
