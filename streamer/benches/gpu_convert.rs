//! Per-frame cost of getting a GPU frame to the encoder, each way, on the same frames: converted
//! on the GPU and the NV12 planes read back (what the host does with dmabuf frames for an encoder
//! that reads CPU memory), against the RGB pixels read back and converted on the CPU (what it
//! falls back to), and, where the render node has a VAAPI driver, converted on the GPU into a
//! buffer that is handed to VAAPI as a surface (what `*_vaapi` gets, no read-back), and where
//! CUDA runs on the node's GPU (NVIDIA), converted into a GL texture whose planes are copied on
//! the GPU into a CUDA frame (what `*_nvenc` gets, no read-back).
//!
//! Needs a render node (a GPU, or the virtual GPU of `scripts/gpu-vm.sh`); without one it says
//! so and measures nothing. At each size this starts the compositor in-process with GLES on the
//! node and dmabuf frames, connects the test pattern to it (with noise in its motion band) and
//! takes the frames it publishes. Each frame goes through every route, the routes taking turns
//! going first; the pictures convert the whole frame each time (they are invalidated first), as
//! for a game that changes everything. Each route's time starts with the frame in
//! hand and ends with its picture filled (or its surface handed over, the conversion done); the
//! summary gives the medians, p99s and each route's median over the CPU route's.
//!
//! Run with `cargo bench -p streamer --bench gpu_convert`; `GPU_CONVERT_FRAMES` sets the frames
//! measured per size (default 200, after 20 warm-up frames), `GPU_CONVERT_SIZES` the heights
//! (default `720,1080`; `2160` is 3840x2160).

use std::time::{Duration, Instant};

use std::sync::Arc;

use compositor::{FrameData, YuvLayout, YuvStorage};
use streamer::encode::cuda::{Cuda, CudaCopier, CudaFrames};
use streamer::encode::vaapi::SurfaceReader;
use streamer::encode::{BitDepth, Chroma, Colorspace, Picture, StreamPicture};

#[path = "../tests/gpu_common/mod.rs"]
mod gpu_common;
use gpu_common::PatternOnGpu;

const WARMUP: usize = 20;
const COLORSPACE: Colorspace = Colorspace::Rec709Limited;
const CPU_ROUTE: &str = "read + CPU convert";

/// Nearest-rank percentile of `v` (sorted in place), `q` in 0..=100, in ms.
fn percentile(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1].as_secs_f64() * 1e3
}

/// The sizes `GPU_CONVERT_SIZES` names by height, 16:9.
fn sizes() -> Vec<(u32, u32)> {
    let list = std::env::var("GPU_CONVERT_SIZES").unwrap_or_else(|_| "720,1080".into());
    list.split(',')
        .map(|h| {
            let h: u32 = h
                .trim()
                .parse()
                .expect("GPU_CONVERT_SIZES: heights, e.g. 720,1080");
            (h * 16 / 9, h)
        })
        .collect()
}

fn main() {
    let frames: usize = std::env::var("GPU_CONVERT_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("frame to the encoder, {frames} frames per size; ms");
    println!(
        "{:<10} {:<26} {:>8} {:>8}",
        "size", "route", "median", "p99"
    );
    let mut ratios = Vec::new();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    for (width, height) in sizes() {
        // The size before pointed XDG_RUNTIME_DIR at its compositor's (now removed) directory.
        match &runtime_dir {
            Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
            None => std::env::remove_var("XDG_RUNTIME_DIR"),
        }
        let Some(routes) = run(width, height, frames) else {
            println!("{width}x{height}: skipped, no render node");
            continue;
        };
        let size = format!("{width}x{height}");
        let mut medians = Vec::new();
        for (route, mut samples) in routes {
            let (median, p99) = (
                percentile(&mut samples, 50.0),
                percentile(&mut samples, 99.0),
            );
            println!("{size:<10} {route:<26} {median:>8.3} {p99:>8.3}");
            medians.push((route, median));
        }
        let cpu = medians
            .iter()
            .find(|(route, _)| *route == CPU_ROUTE)
            .map(|m| m.1)
            .unwrap_or(f64::NAN);
        for (route, median) in medians {
            if route != CPU_ROUTE {
                ratios.push((size.clone(), route, median / cpu));
            }
        }
    }
    for (size, route, ratio) in ratios {
        println!("{size}: {route} over {CPU_ROUTE}, median: {ratio:.2}x");
    }
}

/// How a route hands the converted frame to the encoder's side on the GPU.
enum HandOff {
    /// A VA surface of the buffer, as `*_vaapi` gets it.
    Vaapi(SurfaceReader),
    /// A CUDA frame the texture's planes are copied into, as `*_nvenc` gets it.
    Cuda(CudaFrames),
}

/// Per-frame times of each route at one size; `None` without a node.
fn run(width: u32, height: u32, frames: usize) -> Option<Vec<(&'static str, Vec<Duration>)>> {
    let pattern = PatternOnGpu::start(None, (width, height), true, Duration::from_secs(600))?;
    let picture = || {
        let picture = Picture::new(Chroma::Yuv420, BitDepth::Eight, width, height);
        StreamPicture::new(picture.expect("allocating a picture"))
    };
    let (mut on_gpu, mut on_cpu) = (picture(), picture());
    on_cpu.set_gpu_conversion(false);
    let node = pattern.comp.renderer().render_node.clone();
    let node = node.expect("the compositor renders on the node it started on");
    let mut hand_offs = Vec::new();
    match SurfaceReader::new(&node, YuvLayout::Nv12, width, height) {
        Ok(reader) => hand_offs.push(("GPU convert, VA surface", HandOff::Vaapi(reader))),
        Err(err) => println!("{width}x{height}: no VAAPI route: {err}"),
    }
    match Cuda::open(Some(&node))
        .and_then(|cuda| CudaFrames::new(CudaCopier::new(cuda), YuvLayout::Nv12, width, height))
    {
        Ok(frames) => hand_offs.push(("GPU convert, CUDA frame", HandOff::Cuda(frames))),
        Err(err) => println!("{width}x{height}: no CUDA route: {err}"),
    }
    let rx = pattern.comp.frames();
    let routes = 2 + hand_offs.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); routes];
    let mut n = 0;
    while n < WARMUP + frames {
        let frame = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a frame within 10 s");
        let FrameData::Dmabuf(gpu) = &frame.data else {
            continue;
        };
        if frame.seq < 2 {
            continue;
        }
        let mut time = |route: usize| match route {
            0 | 1 => {
                let picture = if route == 0 { &mut on_gpu } else { &mut on_cpu };
                picture.invalidate();
                let t = Instant::now();
                picture.convert(&frame, COLORSPACE).expect("converting");
                t.elapsed()
            }
            _ => {
                let (name, hand_off) = &mut hand_offs[route - 2];
                let conversion = COLORSPACE.yuv_conversion(YuvLayout::Nv12);
                let t = Instant::now();
                let storage = match hand_off {
                    HandOff::Vaapi(_) => YuvStorage::Buffer,
                    HandOff::Cuda(_) => YuvStorage::Texture,
                };
                let image = Arc::new(gpu.to_yuv_image(&conversion, storage).expect("converting"));
                match hand_off {
                    HandOff::Vaapi(reader) => reader.hand_off(&image),
                    HandOff::Cuda(frames) => frames.hand_off(&image),
                }
                .unwrap_or_else(|err| panic!("{name}: {err}"));
                t.elapsed()
            }
        };
        let mut taken = vec![Duration::ZERO; routes];
        for i in 0..routes {
            let route = (n + i) % routes;
            taken[route] = time(route);
        }
        if n >= WARMUP {
            assert!(
                on_gpu.converted_on_gpu(),
                "the GPU route converted on the CPU"
            );
            for (route, t) in taken.iter().enumerate() {
                times[route].push(*t);
            }
        }
        n += 1;
    }
    pattern.stop();
    let mut times = times.into_iter();
    let mut out = vec![
        ("GPU convert + read", times.next().unwrap_or_default()),
        (CPU_ROUTE, times.next().unwrap_or_default()),
    ];
    out.extend(hand_offs.iter().map(|(name, _)| *name).zip(times));
    Some(out)
}
