//! What a stream run measured, and its JSON report.

use serde_json::{json, Value};

/// Counters and samples of one stream run.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Report {
    /// The mode and codec the host announced.
    pub(crate) mode: String,
    pub(crate) codec: String,
    pub(crate) synthetic: bool,
    pub(crate) frames_received: u64,
    pub(crate) frames_decoded: u64,
    pub(crate) frames_lost: u64,
    pub(crate) fec_recovered: u64,
    pub(crate) keyframes: u64,
    pub(crate) frame_number_gaps: u64,
    pub(crate) decode_errors: u64,
    /// Distinct decoded sizes, `WxH`, in order of appearance.
    pub(crate) resolutions: Vec<String>,
    /// Video payload bytes delivered, and the seconds from the first to the last frame.
    pub(crate) video_bytes: u64,
    pub(crate) video_seconds: f64,
    pub(crate) audio_frames: u64,
    pub(crate) audio_lost: u64,
    /// Audio packets decoded, stood in for by loss concealment, and refused by the decoder.
    pub(crate) audio_decoded: u64,
    pub(crate) audio_concealed: u64,
    pub(crate) audio_decode_errors: u64,
    pub(crate) datagrams: u64,
    pub(crate) datagrams_dropped: Dropped,
    /// Render to reassembled and render to decoded, µs, skew corrected.
    pub(crate) render_to_reassembled_us: Vec<i64>,
    pub(crate) render_to_decoded_us: Vec<i64>,
    /// Every frame's way on the host's clock, in the order reassembled.
    pub(crate) frame_times: Vec<FrameTime>,
    /// Host clock minus client clock, and the round trip of the sample it came from.
    pub(crate) clock_offset_ns: Option<i64>,
    pub(crate) clock_rtt_ns: Option<i64>,
    /// Modes the host accepted in `Reconfigured`, `WxH@R`.
    pub(crate) reconfigured: Vec<String>,
    /// The host's `BitrateChanged` notices: kbit/s and why (`requested`, `congestion`, ...).
    pub(crate) bitrate_changes: Vec<(u32, String)>,
    /// The host's `Rumble` messages: pad, low- and high-frequency motor.
    pub(crate) rumble: Vec<(u8, u16, u16)>,
    pub(crate) keyframe_requests: u64,
    /// How the stream ended, and the words with it.
    pub(crate) close: String,
    pub(crate) close_reason: String,
}

/// Datagrams the reassemblers dropped, by reason (both planes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) malformed: u64,
    pub(crate) bad_tag: u64,
    pub(crate) replay: u64,
    pub(crate) stale: u64,
    pub(crate) too_large: u64,
    /// Not of a plane this client reads.
    pub(crate) unknown_plane: u64,
}

impl Dropped {
    pub(crate) fn add(&mut self, s: &protocol::native::ReassemblyStats) {
        self.malformed += s.dropped_malformed;
        self.bad_tag += s.dropped_bad_tag;
        self.replay += s.dropped_replay;
        self.stale += s.dropped_stale;
        self.too_large += s.dropped_too_large;
    }

    pub(crate) fn total(&self) -> u64 {
        self.malformed
            + self.bad_tag
            + self.replay
            + self.stale
            + self.too_large
            + self.unknown_plane
    }
}

impl Report {
    /// Received video payload rate in kbit/s.
    pub(crate) fn bitrate_kbps(&self) -> f64 {
        if self.video_seconds > 0.0 {
            self.video_bytes as f64 * 8.0 / 1000.0 / self.video_seconds
        } else {
            0.0
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let d = &self.datagrams_dropped;
        json!({
            "mode": self.mode,
            "codec": self.codec,
            "synthetic": self.synthetic,
            "frames_received": self.frames_received,
            "frames_decoded": self.frames_decoded,
            "frames_lost": self.frames_lost,
            "fec_recovered": self.fec_recovered,
            "keyframes": self.keyframes,
            "frame_number_gaps": self.frame_number_gaps,
            "decode_errors": self.decode_errors,
            "resolutions": self.resolutions,
            "bitrate_kbps": (self.bitrate_kbps() * 10.0).round() / 10.0,
            "video_bytes": self.video_bytes,
            "audio_frames": self.audio_frames,
            "audio_frames_lost": self.audio_lost,
            "audio_decoded": self.audio_decoded,
            "audio_concealed": self.audio_concealed,
            "audio_decode_errors": self.audio_decode_errors,
            "datagrams": self.datagrams,
            "datagrams_dropped": {
                "total": d.total(),
                "malformed": d.malformed,
                "bad_tag": d.bad_tag,
                "replay": d.replay,
                "stale": d.stale,
                "too_large": d.too_large,
                "unknown_plane": d.unknown_plane,
            },
            "latency_us": {
                "render_to_reassembled": summary(&self.render_to_reassembled_us),
                "render_to_decoded": summary(&self.render_to_decoded_us),
                "encode": summary(&self.encode_times()),
                "render_to_reassembled_without_encode": summary(&self.without_encode()),
            },
            "clock": {
                "synced": self.clock_offset_ns.is_some(),
                "offset_ns": self.clock_offset_ns,
                "rtt_ns": self.clock_rtt_ns,
            },
            "reconfigured": self.reconfigured,
            "bitrate_changes": self.bitrate_changes.iter()
                .map(|(kbps, reason)| json!({"kbps": kbps, "reason": reason}))
                .collect::<Vec<_>>(),
            "rumble": self.rumble.iter()
                .map(|(pad, low, high)| json!({"pad": pad, "low": low, "high": high}))
                .collect::<Vec<_>>(),
            "keyframe_requests": self.keyframe_requests,
            "close": self.close,
            "close_reason": self.close_reason,
        })
    }
}

/// One video frame's way, in nanoseconds of the host's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameTime {
    /// The host's render (the frame's presentation time).
    pub(crate) pts_ns: u64,
    /// The client had the frame whole.
    pub(crate) reassembled_ns: i64,
    /// The client's decoder gave the picture out (`None`: not decoded).
    pub(crate) decoded_ns: Option<i64>,
    /// The host's encode time, µs (0: not said).
    pub(crate) encode_us: u32,
}

impl Report {
    /// `frame_times` as CSV with a header line.
    pub(crate) fn frame_times_csv(&self) -> String {
        let mut out = String::from("pts_ns,reassembled_ns,decoded_ns,encode_us\n");
        for f in &self.frame_times {
            let decoded = f.decoded_ns.map(|d| d.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "{},{},{decoded},{}\n",
                f.pts_ns, f.reassembled_ns, f.encode_us
            ));
        }
        out
    }

    /// The encode times the host said (frames without one left out).
    fn encode_times(&self) -> Vec<i64> {
        self.frame_times
            .iter()
            .filter(|f| f.encode_us > 0)
            .map(|f| i64::from(f.encode_us))
            .collect()
    }

    /// Render to reassembled less the encoder's time, for the frames whose encode time the
    /// host said: the host's own work besides the encoder, the network and the reassembly.
    fn without_encode(&self) -> Vec<i64> {
        self.frame_times
            .iter()
            .filter(|f| f.encode_us > 0)
            .map(|f| (f.reassembled_ns - f.pts_ns as i64) / 1000 - i64::from(f.encode_us))
            .collect()
    }
}

fn summary(samples: &[i64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    json!({
        "count": sorted.len(),
        "p50": percentile(&sorted, 50.0),
        "p99": percentile(&sorted, 99.0),
        "max": sorted.last(),
    })
}

/// The nearest-rank percentile `p` (0 to 100) of `sorted` (ascending); `None` when empty.
pub(crate) fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), Some(4));
    }

    #[test]
    fn the_report_has_its_shape() {
        let r = Report {
            frames_received: 10,
            frames_decoded: 9,
            frames_lost: 1,
            resolutions: vec!["640x360".into(), "800x600".into()],
            video_bytes: 125_000,
            video_seconds: 1.0,
            render_to_reassembled_us: vec![300, 100, 200],
            frame_times: [(300, 250), (100, 0), (200, 120)]
                .into_iter()
                .map(|(us, encode_us)| FrameTime {
                    pts_ns: 1_000_000,
                    reassembled_ns: 1_000_000 + us * 1000,
                    decoded_ns: None,
                    encode_us,
                })
                .collect(),
            reconfigured: vec!["800x600@60".into()],
            bitrate_changes: vec![(15_000, "congestion".into())],
            rumble: vec![(1, 0xC000, 0x4000)],
            close: "time_up".into(),
            ..Report::default()
        };
        let j = r.to_json();
        for key in [
            "frames_decoded",
            "frames_received",
            "frames_lost",
            "resolutions",
            "frame_number_gaps",
            "fec_recovered",
            "latency_us",
            "bitrate_kbps",
            "datagrams_dropped",
            "audio_frames",
            "reconfigured",
            "close",
        ] {
            assert!(j.get(key).is_some(), "no {key}");
        }
        assert_eq!(j["frames_decoded"], 9);
        assert_eq!(j["resolutions"], json!(["640x360", "800x600"]));
        assert_eq!(j["bitrate_kbps"], 1000.0);
        assert_eq!(j["latency_us"]["render_to_reassembled"]["p50"], 200);
        assert_eq!(j["latency_us"]["render_to_reassembled"]["p99"], 300);
        assert_eq!(j["latency_us"]["render_to_decoded"]["p50"], Value::Null);
        // The frame without an encode time is left out of both.
        assert_eq!(j["latency_us"]["encode"]["count"], 2);
        assert_eq!(j["latency_us"]["encode"]["max"], 250);
        assert_eq!(
            j["latency_us"]["render_to_reassembled_without_encode"]["p50"],
            50
        );
        assert_eq!(
            j["latency_us"]["render_to_reassembled_without_encode"]["p99"],
            80
        );
        assert_eq!(j["datagrams_dropped"]["total"], 0);
        let times = Report {
            frame_times: vec![
                FrameTime {
                    pts_ns: 10,
                    reassembled_ns: 25,
                    decoded_ns: Some(40),
                    encode_us: 3,
                },
                FrameTime {
                    pts_ns: 20,
                    reassembled_ns: 31,
                    decoded_ns: None,
                    encode_us: 0,
                },
            ],
            ..Report::default()
        };
        assert_eq!(
            times.frame_times_csv(),
            "pts_ns,reassembled_ns,decoded_ns,encode_us\n10,25,40,3\n20,31,,0\n"
        );
        assert_eq!(j["reconfigured"], json!(["800x600@60"]));
        assert_eq!(
            j["bitrate_changes"],
            json!([{"kbps": 15_000, "reason": "congestion"}])
        );
        assert_eq!(
            j["rumble"],
            json!([{"pad": 1, "low": 0xC000, "high": 0x4000}])
        );
        assert_eq!(j["close"], "time_up");
        assert_eq!(j["clock"]["synced"], false);
    }
}
