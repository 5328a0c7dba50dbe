//! Per-frame cost of each stage of the CPU video pipeline on real frames, next to bare libx264.
//!
//! For 1280x720 and 1920x1080 this starts the compositor in-process at that mode, connects the
//! test pattern client to it on a thread, and takes the frames the compositor publishes. Every
//! frame goes through the host's pipeline, each stage timed on its own:
//!
//! - `composite`: [`compositor::Frame::render_time`], measured inside the compositor (pixman
//!   composite plus the copy into the frame buffer);
//! - `convert`: BGRA -> NV12 into the stream's picture ([`StreamPicture::convert`]), as the host
//!   does it: only the rows the frame's damage covers when the picture holds the frame before
//!   (the plain test pattern damages its counter row and motion band; with noise it damages
//!   everything, as a game does);
//! - `encode`: [`VideoEncoder::encode`];
//! - `packetize`: [`VideoPacketizer::packetize`] with FEC (20 %) and AES-GCM on, as a client
//!   with video encryption gets it.
//!
//! The peer runs in the same loop on the same NV12 pictures: libx264 opened by hand through
//! FFmpeg with the settings `VideoEncoder` uses (`x264_bare`). The two encoders take turns going
//! first, so neither gets the warmer cache every time. The ratio is the median of the per-frame
//! sum of all four stages over the median of the bare encode. The summary line also gives how
//! long after its render each frame's conversion started. A frame that waited more than half an
//! interval while the loop was busy with the one before (two encoders per frame can take longer
//! than the interval, one, as in the host, does not) is passed over for the next one, so every
//! measured frame is read as fresh as the host reads it; the summary counts those.
//!
//! Run with `cargo bench -p streamer --bench pipeline`. `PIPELINE_FRAMES` sets the frames
//! measured per size (default 300; 30 more are taken first as warm-up and not counted).
//!
//! With `PIPELINE_READ_FLOOR=1`, every other measured frame is first read once, a load from
//! each 64-byte line of its pixels and nothing else, and then the picture's planes are filled
//! with one value, all on the loop's thread: the memory traffic of a conversion without its
//! arithmetic, the least a conversion on one thread pays where the pixels and the picture are
//! at that moment (a conversion split over threads can pay less). Only these are timed for such
//! a frame (the read alone, and read plus fill); it then goes through the pipeline untimed (its
//! conversion would find the pixels just read), so the stage figures come from the other half
//! of the frames.

use std::hint::black_box;
use std::time::{Duration, Instant};

use compositor::{Compositor, CompositorOptions, Mode};
use ffmpeg::{format, frame, Packet};
use ffmpeg_next as ffmpeg;
use protocol::video::{FrameType, VideoConfig, VideoDatagrams, VideoPacketizer};
use streamer::encode::{
    BitDepth, Chroma, Colorspace, EncoderOptions, Nv12Frame, Picture, StreamPicture, VideoEncoder,
};

mod common;
use common::bare_x264;

const SIZES: [(u32, u32, u32); 2] = [(1280, 720, 10_000), (1920, 1080, 20_000)];
const FPS: u32 = 60;
const WARMUP: usize = 30;
const COLORSPACE: Colorspace = Colorspace::Rec709Limited;

/// Per-frame durations of one stage.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Nearest-rank percentile, `q` in 0..=100.
    fn percentile(&self, q: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    fn median(&self) -> Duration {
        self.percentile(50.0)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Copies an NV12 picture into a plain FFmpeg frame (not timed).
fn copy_to_ffmpeg(nv12: &Nv12Frame, f: &mut frame::Video) {
    let (w, h) = (nv12.width() as usize, nv12.height() as usize);
    let (ys, uvs) = (f.stride(0), f.stride(1));
    let (y, src_ys) = nv12.y_plane();
    for row in 0..h {
        f.data_mut(0)[row * ys..row * ys + w].copy_from_slice(&y[row * src_ys..][..w]);
    }
    let (uv, src_uvs) = nv12.uv_plane();
    for row in 0..h / 2 {
        f.data_mut(1)[row * uvs..row * uvs + w].copy_from_slice(&uv[row * src_uvs..][..w]);
    }
}

struct Results {
    composite: Samples,
    convert: Samples,
    encode: Samples,
    packetize: Samples,
    total: Samples,
    bare: Samples,
    /// How long after the compositor rendered it each frame's conversion started: a frame
    /// the loop could not take at once (its encoders being slower than the frame rate) waits,
    /// and its pixels leave the caches meanwhile.
    age: Samples,
    /// With `PIPELINE_READ_FLOOR`: one read of the pixels of every other frame.
    read: Samples,
    /// The same read, then a write of every byte of the picture (the frame's NV12 planes).
    read_write: Samples,
    frames_seen: u64,
    /// Measured frames that were the client's own buffer (no composite, no copy).
    direct: usize,
    /// Picture rows converted, over the measured frames.
    rows: u64,
    /// Frames passed over because they had waited for the loop.
    stale: usize,
    datagrams: usize,
    bytes: usize,
}

fn run_size(
    width: u32,
    height: u32,
    kbps: u32,
    frames: usize,
    (client_buffer_frames, noise): (bool, bool),
    read_floor: bool,
    runtime_dir: Option<&std::ffi::OsStr>,
) -> Results {
    // The previous size pointed XDG_RUNTIME_DIR at its compositor's (now removed) directory.
    match runtime_dir {
        Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
        None => std::env::remove_var("XDG_RUNTIME_DIR"),
    }
    let comp = Compositor::spawn(CompositorOptions {
        client_buffer_frames,
        ..CompositorOptions::new(Mode {
            width,
            height,
            refresh_mhz: FPS * 1000,
        })
    })
    .expect("starting the compositor");
    // The test pattern finds the compositor through the environment, like any Wayland client.
    std::env::set_var("WAYLAND_DISPLAY", comp.socket_name());
    std::env::set_var("XDG_RUNTIME_DIR", comp.runtime_dir());
    let client = std::thread::Builder::new()
        .name("testpattern".into())
        .spawn(move || {
            testpattern::run(testpattern::Options {
                noise,
                exit_after: Some(Duration::from_secs(600)),
                ..Default::default()
            })
        })
        .unwrap();

    let rx = comp.frames();
    let mut encoder = VideoEncoder::new(EncoderOptions {
        colorspace: COLORSPACE,
        ..EncoderOptions::new(width, height, FPS, kbps)
    })
    .unwrap();
    let mut bare = bare_x264(width, height, FPS, kbps);
    let mut bare_in = frame::Video::new(format::Pixel::NV12, width, height);
    let mut bare_out = Packet::empty();
    let picture = Picture::new(Chroma::Yuv420, BitDepth::Eight, width, height).unwrap();
    let mut picture = StreamPicture::new(picture);
    let mut packetizer = VideoPacketizer::new(VideoConfig {
        encryption_key: Some(*b"punktfunk-bench!"),
        ..VideoConfig::default()
    })
    .unwrap();
    let mut datagrams = VideoDatagrams::new();

    let mut r = Results {
        composite: Samples::default(),
        convert: Samples::default(),
        encode: Samples::default(),
        packetize: Samples::default(),
        total: Samples::default(),
        bare: Samples::default(),
        age: Samples::default(),
        read: Samples::default(),
        read_write: Samples::default(),
        frames_seen: 0,
        direct: 0,
        rows: 0,
        stale: 0,
        datagrams: 0,
        bytes: 0,
    };
    let mut first_seq = None;
    let mut last_seq = 0;
    let mut n = 0usize;
    while n < WARMUP + frames {
        let Some(frame) = rx.recv_timeout(Duration::from_secs(5)) else {
            panic!("no frame from the compositor for 5 s (is the test pattern running?)");
        };
        // Skip the compositor's initial black frame and anything before the client mapped.
        if frame.seq == 0 {
            continue;
        }
        // A frame rendered while this loop was still busy with the one before (two encoders
        // per frame can take longer than the interval) has waited, and its pixels have left
        // the caches; the host's video thread, with one encoder, takes each frame at once. So
        // such a frame is passed over for the next, fresh one, as the compositor renders it.
        if frame.rendered_at.elapsed() > Duration::from_secs(1) / FPS / 2 {
            r.stale += 1;
            continue;
        }
        let measured = n >= WARMUP;
        let probed = measured && read_floor && n % 2 == 1;
        if probed {
            let t = Instant::now();
            let sum = frame.with_pixels(touch_every_line).unwrap();
            r.read.push(t.elapsed());
            let Picture::Nv12(nv12) = picture.picture_mut() else {
                unreachable!("an 8-bit 4:2:0 picture is NV12")
            };
            let (y, _, uv, _) = nv12.planes_mut().unwrap();
            y.fill(sum as u8);
            uv.fill(sum as u8);
            r.read_write.push(t.elapsed());
        }
        // With the read floor only every other frame is timed: those take turns too.
        let bare_first = if read_floor {
            n / 2 % 2 == 1
        } else {
            n % 2 == 1
        };

        let mut bare_time = Duration::ZERO;
        let mut run_bare = |nv12: &Nv12Frame| {
            copy_to_ffmpeg(nv12, &mut bare_in);
            bare_in.set_pts(Some(n as i64));
            let t = Instant::now();
            bare.send_frame(&bare_in).unwrap();
            bare.receive_packet(&mut bare_out).unwrap();
            black_box(bare_out.size());
            t.elapsed()
        };

        let t0 = Instant::now();
        let age = t0.saturating_duration_since(frame.rendered_at);
        let rows = picture.convert(&frame, COLORSPACE).unwrap();
        let t1 = Instant::now();
        let Picture::Nv12(nv12) = picture.picture() else {
            unreachable!("an 8-bit 4:2:0 picture is NV12")
        };
        // As the stream does: the frame (maybe the client's own buffer) goes back right away.
        let (seq, render_time, direct) = (
            frame.seq,
            frame.render_time,
            matches!(frame.data, compositor::FrameData::Client { .. }),
        );
        drop(frame);
        if bare_first {
            bare_time = run_bare(nv12);
        }
        let t2 = Instant::now();
        let encoded = encoder
            .encode(nv12, false)
            .unwrap()
            .expect("no frame held back");
        let t3 = Instant::now();
        let kind = if encoded.is_idr {
            FrameType::Idr
        } else {
            FrameType::P
        };
        packetizer
            .packetize(&encoded.data, kind, 0, 0, &mut datagrams)
            .unwrap();
        let t4 = Instant::now();
        if !bare_first {
            bare_time = run_bare(nv12);
        }
        encoder.recycle(encoded);

        if measured && !probed {
            let (convert, encode, packetize) = (t1 - t0, t3 - t2, t4 - t3);
            r.composite.push(render_time);
            r.direct += usize::from(direct);
            r.convert.push(convert);
            r.encode.push(encode);
            r.packetize.push(packetize);
            r.total.push(render_time + convert + encode + packetize);
            r.bare.push(bare_time);
            r.age.push(age);
            r.rows += u64::from(rows);
            r.datagrams += datagrams.len();
            r.bytes += datagrams.as_bytes().len();
            first_seq.get_or_insert(seq);
            last_seq = seq;
        }
        n += 1;
    }
    r.frames_seen = last_seq - first_seq.unwrap_or(last_seq) + 1;
    comp.shutdown();
    // The client sees the compositor go away and returns; how it ends does not matter here.
    let _ = client.join();
    r
}

/// Loads one byte of every 64-byte line of `bytes`.
fn touch_every_line(bytes: &[u8]) -> u64 {
    bytes.iter().step_by(64).map(|&b| u64::from(b)).sum()
}

fn main() {
    let frames: usize = std::env::var("PIPELINE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    let read_floor = std::env::var_os("PIPELINE_READ_FLOOR").is_some_and(|v| v == "1");
    println!(
        "pipeline: compositor + test pattern in-process, {frames} frames per size after {WARMUP} warm-up; times in ms"
    );
    println!(
        "{:<10} {:<13} {:<10} {:>8} {:>8}",
        "size", "path", "stage", "median", "p99"
    );
    // Client buffer frames are what the host streams with; the composited path (every frame
    // composited by pixman and copied out) is what any other window layout costs. The noise
    // pattern gives frames of a game's size in bits, so the encoder works as hard as for one.
    let runs: Vec<(bool, bool)> = match std::env::var("PIPELINE_PATHS").as_deref() {
        Ok("direct") => vec![(true, false), (true, true)],
        Ok("composited") => vec![(false, false)],
        _ => vec![(true, false), (true, true), (false, false)],
    };
    for (w, h, kbps) in SIZES {
        for &(client_buffer_frames, noise) in &runs {
            let r = run_size(
                w,
                h,
                kbps,
                frames,
                (client_buffer_frames, noise),
                read_floor,
                runtime_dir.as_deref(),
            );
            let path = match (client_buffer_frames, noise) {
                (true, false) => "direct",
                (true, true) => "direct+noise",
                (false, _) => "composited",
            };
            let size = format!("{w}x{h}");
            for (name, s) in [
                ("composite", &r.composite),
                ("convert", &r.convert),
                ("encode", &r.encode),
                ("packetize", &r.packetize),
                ("pipeline", &r.total),
                ("x264_bare", &r.bare),
            ] {
                println!(
                    "{size:<10} {path:<13} {name:<10} {:>8.3} {:>8.3}",
                    ms(s.median()),
                    ms(s.percentile(99.0))
                );
            }
            let ratio = ms(r.total.median()) / ms(r.bare.median());
            let enc_ratio = ms(r.encode.median()) / ms(r.bare.median());
            // Every timed frame has a pipeline sample.
            let timed = r.total.0.len();
            println!(
                "{size:<10} {path:<13} ratio pipeline/x264_bare (medians) = {ratio:.3}; encode/x264_bare = {enc_ratio:.3}; \
                 {} of {} timed frames were client buffers; {} compositor frames spanned, {:.1} datagrams and {:.0} bytes per frame; \
                 {:.0} of {h} rows converted per frame; {} frames passed over for having waited; conversion started {:.2} ms (median) after the render",
                r.direct,
                timed,
                r.frames_seen,
                r.datagrams as f64 / timed as f64,
                r.bytes as f64 / timed as f64,
                r.rows as f64 / timed as f64,
                r.stale,
                ms(r.age.median()),
            );
            if !r.read.0.is_empty() {
                let (read, moved) = (ms(r.read.median()), ms(r.read_write.median()));
                let bare = ms(r.bare.median());
                println!(
                    "{size:<10} {path:<13} one-thread floor over {} other frames: reading the frame's pixels {read:.3} ms (p99 {:.3}), \
                     and writing the picture too {moved:.3} ms (p99 {:.3}); (x264_bare + both) / x264_bare = {:.3}",
                    r.read.0.len(),
                    ms(r.read.percentile(99.0)),
                    ms(r.read_write.percentile(99.0)),
                    (bare + moved) / bare,
                );
            }
        }
    }
}
