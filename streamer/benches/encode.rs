//! Per-frame cost of the CPU video path at 1280x720 and 1920x1080:
//!
//! - `convert`: BGRA -> NV12 ([`convert_bgra`]), the same source over and over (cache-warm);
//!   `convert/p010_*` and `convert/yuv444p10_*` are the 10-bit conversions
//!   ([`convert_bgra_p010`], [`convert_bgra_444_10`]) the same way;
//! - `convert_fresh`: the same conversion of a frame another thread has written, as an app
//!   does, started right away or 2 or 10 ms later, the converting thread sleeping meanwhile (or,
//!   in `_spinning`, busy);
//! - `x264`: [`VideoEncoder::encode`] on already converted frames;
//! - `x264_bare`: the peer, libx264 with the same settings through the same FFmpeg binding, fed
//!   the same NV12 frames directly (no wrapper, no copy of the output, no NAL scan).
//!
//! Run with `cargo bench -p streamer --bench encode`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ffmpeg::{format, frame, Packet};
use ffmpeg_next as ffmpeg;
use streamer::encode::{
    convert_bgra, convert_bgra_444_10, convert_bgra_p010, Colorspace, EncoderOptions, Nv12Frame,
    P010Frame, VideoEncoder,
};

mod common;
use common::bare_x264;

const SIZES: [(u32, u32, u32); 2] = [(1280, 720, 10_000), (1920, 1080, 20_000)];
const FPS: u32 = 60;
const FRAMES: u32 = 16;
const COLORSPACE: Colorspace = Colorspace::Rec709Limited;

/// A desktop-like moving picture: colour bars that scroll, a diagonal gradient and a block of
/// pseudo-random texture that changes every frame, so the encoder has real work to do.
fn synthetic_bgra(width: u32, height: u32, n: u32) -> Vec<u8> {
    let mut px = vec![0u8; (width * height * 4) as usize];
    let mut state = 0x9e37_79b9_u32 ^ n;
    for y in 0..height {
        for x in 0..width {
            let (r, g, b) = if y < height / 2 {
                let bar = ((x + n * 8) * 8 / width) % 8;
                let on = |bit| if bar & bit != 0 { 16 } else { 235 };
                (on(2), on(4), on(1))
            } else if x < width / 2 {
                let v = ((x + y + n * 3) & 0xff) as u8;
                (v, v / 2, 255 - v)
            } else {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = (state >> 24) as u8;
                (v, v, v)
            };
            let o = ((y * width + x) * 4) as usize;
            px[o..o + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    px
}

fn converted(width: u32, height: u32) -> Vec<Nv12Frame> {
    (0..FRAMES)
        .map(|n| {
            let mut nv12 = Nv12Frame::new(width, height).unwrap();
            convert_bgra(
                &synthetic_bgra(width, height, n),
                width as usize * 4,
                COLORSPACE,
                &mut nv12,
            )
            .unwrap();
            nv12
        })
        .collect()
}

fn bench_convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert");
    for (w, h, _) in SIZES {
        let bgra = synthetic_bgra(w, h, 0);
        let mut nv12 = Nv12Frame::new(w, h).unwrap();
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| {
                convert_bgra(black_box(&bgra), w as usize * 4, COLORSPACE, &mut nv12).unwrap()
            })
        });
        let mut p010 = P010Frame::new(w, h).unwrap();
        group.bench_function(format!("p010_{w}x{h}"), |b| {
            b.iter(|| {
                convert_bgra_p010(black_box(&bgra), w as usize * 4, COLORSPACE, &mut p010).unwrap()
            })
        });
        let mut yuv = streamer::encode::Yuv444P10Frame::new(w, h).unwrap();
        group.bench_function(format!("yuv444p10_{w}x{h}"), |b| {
            b.iter(|| {
                convert_bgra_444_10(black_box(&bgra), w as usize * 4, COLORSPACE, &mut yuv).unwrap()
            })
        });
    }
    group.finish();
}

fn bench_convert_fresh(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_fresh");
    group.sample_size(20);
    for (w, h, _) in SIZES {
        let mut bgra = synthetic_bgra(w, h, 0);
        let mut nv12 = Nv12Frame::new(w, h).unwrap();
        for (age_ms, spin) in [(0, false), (2, false), (2, true), (10, false)] {
            let name = format!(
                "{w}x{h}/after_{age_ms}ms{}",
                if spin { "_spinning" } else { "" }
            );
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        // The "app" redraws the whole frame on another thread.
                        std::thread::scope(|s| {
                            s.spawn(|| {
                                for (j, row) in bgra.chunks_mut(4096).enumerate() {
                                    row.fill((i as usize + j) as u8);
                                }
                            });
                        });
                        let age = Duration::from_millis(age_ms);
                        if spin {
                            let written = Instant::now();
                            while written.elapsed() < age {
                                std::hint::spin_loop();
                            }
                        } else {
                            std::thread::sleep(age);
                        }
                        let t = Instant::now();
                        convert_bgra(black_box(&bgra), w as usize * 4, COLORSPACE, &mut nv12)
                            .unwrap();
                        total += t.elapsed();
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

fn bench_x264(c: &mut Criterion) {
    let mut group = c.benchmark_group("x264");
    group.sample_size(60);
    for (w, h, kbps) in SIZES {
        let frames = converted(w, h);
        let options = EncoderOptions {
            colorspace: COLORSPACE,
            ..EncoderOptions::new(w, h, FPS, kbps)
        };
        let mut enc = VideoEncoder::new(options).unwrap();
        let mut i = 0;
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| {
                let out = enc
                    .encode(&frames[i % frames.len()], false)
                    .unwrap()
                    .unwrap();
                i += 1;
                enc.recycle(black_box(out));
            })
        });
    }
    group.finish();
}

fn bench_x264_bare(c: &mut Criterion) {
    let mut group = c.benchmark_group("x264_bare");
    group.sample_size(60);
    for (w, h, kbps) in SIZES {
        // The same pictures, copied once into plain FFmpeg frames.
        let frames: Vec<frame::Video> = converted(w, h)
            .iter()
            .map(|nv12| {
                let mut f = frame::Video::new(format::Pixel::NV12, w, h);
                let (ys, uvs) = (f.stride(0), f.stride(1));
                let (y, src_ys) = nv12.y_plane();
                for row in 0..h as usize {
                    f.data_mut(0)[row * ys..row * ys + w as usize]
                        .copy_from_slice(&y[row * src_ys..row * src_ys + w as usize]);
                }
                let (uv, src_uvs) = nv12.uv_plane();
                for row in 0..h as usize / 2 {
                    f.data_mut(1)[row * uvs..row * uvs + w as usize]
                        .copy_from_slice(&uv[row * src_uvs..row * src_uvs + w as usize]);
                }
                f
            })
            .collect();
        let mut frames = frames;
        let mut enc = bare_x264(w, h, FPS, kbps);
        let mut packet = Packet::empty();
        let mut pts = 0i64;
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| {
                let n = frames.len();
                let f = &mut frames[pts as usize % n];
                f.set_pts(Some(pts));
                pts += 1;
                enc.send_frame(f).unwrap();
                enc.receive_packet(&mut packet).unwrap();
                black_box(packet.size());
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_convert,
    bench_convert_fresh,
    bench_x264,
    bench_x264_bare
);
criterion_main!(benches);
