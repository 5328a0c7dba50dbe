//! Per-frame cost of getting a GPU frame into the stream's NV12 picture, both ways, on the same
//! frames: converted on the GPU and the NV12 planes read back (what the host does with dmabuf
//! frames), against the RGB pixels read back and converted on the CPU (what it falls back to).
//!
//! Needs a render node (a GPU, or the virtual GPU of `scripts/gpu-vm.sh`); without one it says
//! so and measures nothing. At 1280x720 and 1920x1080 this starts the compositor in-process with
//! GLES on the node and dmabuf frames, connects the test pattern to it (with noise in its motion
//! band) and takes the frames it publishes. Each frame goes into two pictures, one per route,
//! the two taking turns going first; the CPU route converts the whole frame each time (its
//! picture is invalidated first), as for a game that changes everything. Each route's time
//! starts with the frame in hand and ends with its picture filled; the summary gives the medians,
//! p99s and the GPU route's median over the CPU route's.
//!
//! Run with `cargo bench -p streamer --bench gpu_convert`; `GPU_CONVERT_FRAMES` sets the frames
//! measured per size (default 200, after 20 warm-up frames).

use std::time::{Duration, Instant};

use compositor::FrameData;
use streamer::encode::{BitDepth, Chroma, Colorspace, Picture, StreamPicture};

#[path = "../tests/gpu_common/mod.rs"]
mod gpu_common;
use gpu_common::PatternOnGpu;

const SIZES: [(u32, u32); 2] = [(1280, 720), (1920, 1080)];
const WARMUP: usize = 20;
const COLORSPACE: Colorspace = Colorspace::Rec709Limited;

/// Nearest-rank percentile of `v` (sorted in place), `q` in 0..=100, in ms.
fn percentile(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1].as_secs_f64() * 1e3
}

fn main() {
    let frames: usize = std::env::var("GPU_CONVERT_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("frame into the stream's NV12 picture, {frames} frames per size; ms");
    println!(
        "{:<10} {:<22} {:>8} {:>8}",
        "size", "route", "median", "p99"
    );
    let mut ratios = Vec::new();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    for (width, height) in SIZES {
        // The size before pointed XDG_RUNTIME_DIR at its compositor's (now removed) directory.
        match &runtime_dir {
            Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
            None => std::env::remove_var("XDG_RUNTIME_DIR"),
        }
        let Some((gpu, cpu)) = run(width, height, frames) else {
            println!("{width}x{height}: skipped, no render node");
            continue;
        };
        let size = format!("{width}x{height}");
        let mut medians = Vec::new();
        for (route, mut samples) in [("GPU convert + read", gpu), ("read + CPU convert", cpu)] {
            let (median, p99) = (
                percentile(&mut samples, 50.0),
                percentile(&mut samples, 99.0),
            );
            println!("{size:<10} {route:<22} {median:>8.3} {p99:>8.3}");
            medians.push(median);
        }
        ratios.push((size, medians[0] / medians[1]));
    }
    for (size, ratio) in ratios {
        println!("{size}: GPU route over CPU route, median: {ratio:.2}x");
    }
}

/// Per-frame times of the GPU route and the CPU route at one size; `None` without a node.
fn run(width: u32, height: u32, frames: usize) -> Option<(Vec<Duration>, Vec<Duration>)> {
    let pattern = PatternOnGpu::start(None, (width, height), true, Duration::from_secs(600))?;
    let picture = || {
        let picture = Picture::new(Chroma::Yuv420, BitDepth::Eight, width, height);
        StreamPicture::new(picture.expect("allocating a picture"))
    };
    let (mut on_gpu, mut on_cpu) = (picture(), picture());
    on_cpu.set_gpu_conversion(false);
    let rx = pattern.comp.frames();
    let (mut gpu, mut cpu) = (Vec::new(), Vec::new());
    let mut n = 0;
    while n < WARMUP + frames {
        let frame = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a frame within 10 s");
        if !matches!(frame.data, FrameData::Dmabuf(_)) || frame.seq < 2 {
            continue;
        }
        let time = |picture: &mut StreamPicture| {
            picture.invalidate();
            let t = Instant::now();
            picture.convert(&frame, COLORSPACE).expect("converting");
            t.elapsed()
        };
        let (g, c) = if n % 2 == 0 {
            let g = time(&mut on_gpu);
            (g, time(&mut on_cpu))
        } else {
            let c = time(&mut on_cpu);
            (time(&mut on_gpu), c)
        };
        if n >= WARMUP {
            gpu.push(g);
            cpu.push(c);
        }
        n += 1;
    }
    pattern.stop();
    Some((gpu, cpu))
}
