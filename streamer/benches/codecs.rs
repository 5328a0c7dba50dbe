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
//! `hevc10` and `av1-10` are the same encoders with 10-bit pictures (HEVC Main10, AV1 Main
//! 10-bit): the frames are converted to P010 up front, our encoder takes them as a stream does
//! (split into planar 10-bit 4:2:0 per frame) and the bare one gets planar 10-bit 4:2:0.
//!
//! Run with `cargo bench -p streamer --bench codecs`. `CODECS_FRAMES` sets the frames measured per
//! encoder (default 200; 20 more are encoded first as warm-up and not counted); `CODECS` picks
//! codecs (comma-separated, of `h264,hevc,av1,hevc10,av1-10`; default all five).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ffmpeg::{encoder, format, frame, Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use streamer::encode::{
    convert_bgra, convert_bgra_p010, BitDepth, Chroma, Codec, Colorspace, EncoderOptions, Picture,
    VideoEncoder,
};

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

/// The test pattern's frames `0..PICTURES`, converted to NV12 or P010.
fn pictures(noise: bool, depth: BitDepth) -> Vec<Picture> {
    let mut painter = testpattern::Painter::new(WIDTH, HEIGHT).with_noise(noise);
    let stride = WIDTH as usize * 4;
    let mut bgra = vec![0u8; stride * HEIGHT as usize];
    (0..PICTURES)
        .map(|n| {
            painter.draw(n, None, &mut bgra, stride);
            let mut picture = Picture::new(Chroma::Yuv420, depth, WIDTH, HEIGHT).unwrap();
            match &mut picture {
                Picture::Nv12(nv12) => convert_bgra(&bgra, stride, COLORSPACE, nv12).unwrap(),
                Picture::P010(p010) => convert_bgra_p010(&bgra, stride, COLORSPACE, p010).unwrap(),
                Picture::Yuv444(_) | Picture::Yuv444P10(_) => unreachable!("4:2:0 pictures only"),
            }
            picture
        })
        .collect()
}

/// `picture` as a plain FFmpeg frame: NV12 as is, or planar 4:2:0 with the chroma split out (10
/// bits in the low bits of 16 for P010).
fn ffmpeg_frame(picture: &Picture, planar: bool) -> frame::Video {
    let nv12 = match picture {
        Picture::Nv12(nv12) => nv12,
        Picture::P010(p010) => return planar_10bit(p010),
        Picture::Yuv444(_) | Picture::Yuv444P10(_) => unreachable!("4:2:0 pictures only"),
    };
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

/// A P010 picture as planar 10-bit 4:2:0 (`yuv420p10le`).
fn planar_10bit(p010: &streamer::encode::P010Frame) -> frame::Video {
    let mut f = frame::Video::new(format::Pixel::YUV420P10LE, WIDTH, HEIGHT);
    let put = |f: &mut frame::Video, plane: usize, x: u32, y: u32, v: u16| {
        let o = y as usize * f.stride(plane) + 2 * x as usize;
        f.data_mut(plane)[o..o + 2].copy_from_slice(&v.to_le_bytes());
    };
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            put(&mut f, 0, x, y, p010.luma(x, y));
        }
    }
    for y in 0..HEIGHT / 2 {
        for x in 0..WIDTH / 2 {
            let (cb, cr) = p010.chroma(2 * x, 2 * y);
            put(&mut f, 1, x, y, cb);
            put(&mut f, 2, x, y, cr);
        }
    }
    f
}

/// libx265 or libaom opened by hand with the settings `VideoEncoder` uses for one slice.
fn bare_encoder(codec: Codec, depth: BitDepth) -> encoder::Video {
    let name = codec.encoder_name();
    let pixel = match depth {
        BitDepth::Eight => format::Pixel::YUV420P,
        BitDepth::Ten => format::Pixel::YUV420P10LE,
    };
    let mut enc = common::bare_context(name, pixel, (WIDTH, HEIGHT), FPS, KBPS);
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
fn run(codec: Codec, frames: &[Picture], measured: usize) -> [(Vec<Duration>, usize); 2] {
    let planar = codec != Codec::H264;
    let depth = frames[0].depth();
    let mut bare_frames: Vec<frame::Video> =
        frames.iter().map(|f| ffmpeg_frame(f, planar)).collect();
    let mut ours = VideoEncoder::new(EncoderOptions {
        codec,
        colorspace: COLORSPACE,
        depth,
        ..EncoderOptions::new(WIDTH, HEIGHT, FPS, KBPS)
    })
    .unwrap();
    let mut bare = if planar {
        bare_encoder(codec, depth)
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
                    .encode_picture(&frames[k], false)
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
    let wanted = std::env::var("CODECS").unwrap_or_else(|_| "h264,hevc,av1,hevc10,av1-10".into());
    let codecs: Vec<(Codec, BitDepth, &str)> = [
        (Codec::H264, BitDepth::Eight, "h264"),
        (Codec::Hevc, BitDepth::Eight, "hevc"),
        (Codec::Av1, BitDepth::Eight, "av1"),
        (Codec::Hevc, BitDepth::Ten, "hevc10"),
        (Codec::Av1, BitDepth::Ten, "av1-10"),
    ]
    .into_iter()
    .filter(|(c, _, name)| wanted.split(',').any(|w| w.trim() == *name) && c.is_available())
    .collect();
    println!(
        "{WIDTH}x{HEIGHT}@{FPS}, {KBPS} kbps, one slice; {WARMUP} warm-up + {measured} measured frames per encoder; times in ms"
    );
    println!(
        "{:<8} {:<7} {:>10} {:>9} {:>10} {:>9} {:>7} {:>11} {:>11}",
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
        let frames = [BitDepth::Eight, BitDepth::Ten].map(|depth| {
            codecs
                .iter()
                .any(|c| c.1 == depth)
                .then(|| pictures(noise, depth))
        });
        for &(codec, depth, name) in &codecs {
            let frames = frames[usize::from(depth == BitDepth::Ten)]
                .as_deref()
                .unwrap();
            let [(mut ours, ours_bytes), (mut bare, bare_bytes)] = run(codec, frames, measured);
            let (o50, o99) = (percentile(&mut ours, 50.0), percentile(&mut ours, 99.0));
            let (b50, b99) = (percentile(&mut bare, 50.0), percentile(&mut bare, 99.0));
            println!(
                "{:<8} {:<7} {:>10.3} {:>9.3} {:>10.3} {:>9.3} {:>7.3} {:>11.1} {:>11.1}",
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
