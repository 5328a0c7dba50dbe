//! Per-frame cost of the software encoders at 1280x720: H.264 (libx264), HEVC (libx265) and AV1
//! (libaom), each through [`VideoEncoder`] and, as the peer, the same FFmpeg encoder opened by
//! hand with the same settings and fed the same pictures directly (`*_bare`).
//!
//! The pictures are the test pattern's (`testpattern::Painter`), plain and with `--noise`,
//! converted to NV12 once up front ([`convert_bgra`]); 60 consecutive frames, used in a loop.
//! For each picture kind and codec, our encoder and its peer encode every frame in the same loop
//! iteration, taking turns going first. The bare encoders get the pictures in the layout they
//! take (NV12 for libx264, planar 4:2:0 for libx265 and libaom, prepared up front), so the
//! wrapper's per-frame NV12 split for those two counts against it.
//!
//! Settings are those of a stream at 720p60, 10 Mbps, one slice: x264 and x265 ultrafast with
//! `zerolatency`, libaom in real-time mode at `cpu-used=8` with no lag.
//!
//! Run with `cargo bench -p streamer --bench codecs`. `CODECS_FRAMES` sets the frames measured per
//! encoder (default 200; 20 more are encoded first as warm-up and not counted); `CODECS` picks
//! codecs (comma-separated, of `h264,hevc,av1`; default all three).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ffmpeg::{encoder, format, frame, Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use streamer::encode::{convert_bgra, Codec, Colorspace, EncoderOptions, Nv12Frame, VideoEncoder};

mod common;
use common::bare_x264;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const KBPS: u32 = 10_000;
const FPS: u32 = 60;
const PICTURES: u64 = 60;
const WARMUP: usize = 20;
const COLORSPACE: Colorspace = Colorspace::Rec709Limited;

/// Nearest-rank percentile of `v` (sorted in place), `q` in 0..=100.
fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The test pattern's frames `0..PICTURES`, converted to NV12.
fn pictures(noise: bool) -> Vec<Nv12Frame> {
    let mut painter = testpattern::Painter::new(WIDTH, HEIGHT).with_noise(noise);
    let stride = WIDTH as usize * 4;
    let mut bgra = vec![0u8; stride * HEIGHT as usize];
    (0..PICTURES)
        .map(|n| {
            painter.draw(n, None, &mut bgra, stride);
            let mut nv12 = Nv12Frame::new(WIDTH, HEIGHT).unwrap();
            convert_bgra(&bgra, stride, COLORSPACE, &mut nv12).unwrap();
            nv12
        })
        .collect()
}

/// `nv12` as a plain FFmpeg frame: NV12 as is, or planar 4:2:0 with the chroma split out.
fn ffmpeg_frame(nv12: &Nv12Frame, planar: bool) -> frame::Video {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let pix = if planar {
        format::Pixel::YUV420P
    } else {
        format::Pixel::NV12
    };
    let mut f = frame::Video::new(pix, WIDTH, HEIGHT);
    let (y, src_ys) = nv12.y_plane();
    let ys = f.stride(0);
    for row in 0..h {
        f.data_mut(0)[row * ys..row * ys + w].copy_from_slice(&y[row * src_ys..row * src_ys + w]);
    }
    let (uv, src_uvs) = nv12.uv_plane();
    if planar {
        let (us, vs) = (f.stride(1), f.stride(2));
        for row in 0..h / 2 {
            let src = &uv[row * src_uvs..row * src_uvs + w];
            for x in 0..w / 2 {
                f.data_mut(1)[row * us + x] = src[2 * x];
                f.data_mut(2)[row * vs + x] = src[2 * x + 1];
            }
        }
    } else {
        let uvs = f.stride(1);
        for row in 0..h / 2 {
            f.data_mut(1)[row * uvs..row * uvs + w]
                .copy_from_slice(&uv[row * src_uvs..row * src_uvs + w]);
        }
    }
    f
}

/// libx265 or libaom opened by hand with the settings `VideoEncoder` uses for one slice.
fn bare_encoder(codec: Codec) -> encoder::Video {
    let name = codec.encoder_name();
    let mut enc = common::bare_context(name, format::Pixel::YUV420P, (WIDTH, HEIGHT), FPS, KBPS);
    enc.set_gop(i32::MAX as u32);
    let mut opts = Dictionary::new();
    match codec {
        Codec::Hevc => {
            opts.set("preset", "ultrafast");
            opts.set("tune", "zerolatency");
            opts.set("forced-idr", "1");
            opts.set(
                "x265-params",
                "keyint=-1:min-keyint=1:scenecut=0:bframes=0:repeat-headers=1:info=0:aud=0:hrd=0:\
                 frame-threads=1:pools=1:slices=1",
            );
        }
        Codec::Av1 => {
            opts.set("usage", "realtime");
            opts.set("cpu-used", "8");
            opts.set("lag-in-frames", "0");
            opts.set("row-mt", "1");
            opts.set("error-resilience", "default");
        }
        Codec::H264 => unreachable!("libx264's peer is common::bare_x264"),
    }
    enc.open_with(opts)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"))
}

/// Encodes `frames` in a loop with ours and the bare encoder, alternating which goes first;
/// returns the per-frame times (ours, bare) and the total encoded bytes of each.
fn run(codec: Codec, frames: &[Nv12Frame], measured: usize) -> [(Vec<Duration>, usize); 2] {
    let planar = codec != Codec::H264;
    let mut bare_frames: Vec<frame::Video> =
        frames.iter().map(|f| ffmpeg_frame(f, planar)).collect();
    let mut ours = VideoEncoder::new(EncoderOptions {
        codec,
        colorspace: COLORSPACE,
        ..EncoderOptions::new(WIDTH, HEIGHT, FPS, KBPS)
    })
    .unwrap();
    let mut bare = if planar {
        bare_encoder(codec)
    } else {
        bare_x264(WIDTH, HEIGHT, FPS, KBPS)
    };
    let mut packet = Packet::empty();
    let mut out = [
        (Vec::with_capacity(measured), 0usize),
        (Vec::with_capacity(measured), 0usize),
    ];
    for i in 0..WARMUP + measured {
        let k = i % frames.len();
        let mut times = [Duration::ZERO; 2];
        let mut sizes = [0usize; 2];
        for turn in 0..2 {
            if (turn + i) % 2 == 0 {
                let t = Instant::now();
                let enc = ours
                    .encode(&frames[k], false)
                    .unwrap()
                    .expect("a frame out per frame in");
                times[0] = t.elapsed();
                sizes[0] = enc.data.len();
                ours.recycle(black_box(enc));
            } else {
                let f = &mut bare_frames[k];
                f.set_pts(Some(i as i64));
                let t = Instant::now();
                bare.send_frame(f).unwrap();
                bare.receive_packet(&mut packet)
                    .expect("a packet out per frame in");
                times[1] = t.elapsed();
                sizes[1] = black_box(packet.size());
            }
        }
        if i >= WARMUP {
            for s in 0..2 {
                out[s].0.push(times[s]);
                out[s].1 += sizes[s];
            }
        }
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    // x265 reports its statistics through FFmpeg's log at info level; keep the table readable.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let measured: usize = std::env::var("CODECS_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let wanted = std::env::var("CODECS").unwrap_or_else(|_| "h264,hevc,av1".into());
    let codecs: Vec<(Codec, &str)> = [
        (Codec::H264, "h264"),
        (Codec::Hevc, "hevc"),
        (Codec::Av1, "av1"),
    ]
    .into_iter()
    .filter(|(c, name)| wanted.split(',').any(|w| w.trim() == *name) && c.is_available())
    .collect();
    println!(
        "{WIDTH}x{HEIGHT}@{FPS}, {KBPS} kbps, one slice; {WARMUP} warm-up + {measured} measured frames per encoder; times in ms"
    );
    println!(
        "{:<8} {:<6} {:>10} {:>9} {:>10} {:>9} {:>7} {:>11} {:>11}",
        "picture",
        "codec",
        "ours p50",
        "ours p99",
        "bare p50",
        "bare p99",
        "ratio",
        "ours kB/fr",
        "bare kB/fr"
    );
    for noise in [false, true] {
        let frames = pictures(noise);
        for &(codec, name) in &codecs {
            let [(mut ours, ours_bytes), (mut bare, bare_bytes)] = run(codec, &frames, measured);
            let (o50, o99) = (percentile(&mut ours, 50.0), percentile(&mut ours, 99.0));
            let (b50, b99) = (percentile(&mut bare, 50.0), percentile(&mut bare, 99.0));
            println!(
                "{:<8} {:<6} {:>10.3} {:>9.3} {:>10.3} {:>9.3} {:>7.3} {:>11.1} {:>11.1}",
                if noise { "noise" } else { "plain" },
                name,
                ms(o50),
                ms(o99),
                ms(b50),
                ms(b99),
                ms(o50) / ms(b50),
                ours_bytes as f64 / measured as f64 / 1e3,
                bare_bytes as f64 / measured as f64 / 1e3,
            );
        }
    }
}
