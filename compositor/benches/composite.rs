//! Render step cost per frame at 720p, 1080p and 4K, next to a memcpy of one frame (the floor).
//!
//! Three cases per size, each a real client in a compositor started in-process at that mode:
//!
//! - `full/composited`: the test pattern (fullscreen, whole surface damaged every frame) with
//!   client buffer frames off, so every frame is a pixman composite plus the copy into the
//!   frame buffer;
//! - `full/direct`: the same client with client buffer frames on (what the host streams with):
//!   the frame is the client's buffer, the render step only tracks damage;
//! - `scaled`: weston-simple-shm, which redraws a 250x250 window each frame and keeps that
//!   size: it is fitted to the output (a square of the output's height), so each frame scales
//!   its picture, as for a game at its own resolution; then the frame is copied out.
//!
//! `memcpy` copies each received frame's bytes into a preallocated buffer in the same loop.
//! Every case runs on each renderer, pixman and GLES (on Mesa's llvmpipe without a GPU; the
//! GLES render step includes reading the frame back), one after the other at each size, and
//! the last lines give GLES's median over pixman's.
//!
//! Run with `cargo bench -p compositor --bench composite`. `COMPOSITE_FRAMES` sets the frames
//! measured per case (default 200, after 20 warm-up frames), `COMPOSITE_SIZES` the sizes
//! (default `720,1080,2160`: heights of 16:9 modes), `COMPOSITE_RENDERERS` the renderers
//! (default `pixman,gles`). `gles-dmabuf` is GLES with dmabuf frames (a GPU's render node
//! only): its render step is the render into a GBM buffer and the hand-off, without a read-back;
//! `memcpy` is then the wait for the GPU to finish the frame (its render fence), and the ratio
//! is over `gles`.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compositor::{Compositor, CompositorOptions, FrameData, Mode, RendererChoice};

const WARMUP: usize = 20;

/// Nearest-rank percentile of `v` (sorted in place), `q` in 0..=100, in ms.
fn percentile(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1].as_secs_f64() * 1e3
}

enum Client {
    Pattern(std::thread::JoinHandle<anyhow::Result<()>>),
    Process(Child),
}

/// A renderer, and whether its frames are dmabufs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Renderer {
    choice: RendererChoice,
    dmabufs: bool,
}

impl Renderer {
    fn name(self) -> &'static str {
        match (self.choice, self.dmabufs) {
            (RendererChoice::Pixman, _) => "pixman",
            (_, false) => "gles",
            (_, true) => "gles-dmabuf",
        }
    }
}

struct Case {
    name: &'static str,
    client_buffer_frames: bool,
    pattern: bool,
}

const CASES: [Case; 3] = [
    Case {
        name: "full/composited",
        client_buffer_frames: false,
        pattern: true,
    },
    Case {
        name: "full/direct",
        client_buffer_frames: true,
        pattern: true,
    },
    Case {
        name: "scaled",
        client_buffer_frames: false,
        pattern: false,
    },
];

fn main() {
    let frames: usize = std::env::var("COMPOSITE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sizes: Vec<(u32, u32)> = std::env::var("COMPOSITE_SIZES")
        .unwrap_or_else(|_| "720,1080,2160".into())
        .split(',')
        .map(|h| {
            let h: u32 = h
                .trim()
                .parse()
                .expect("COMPOSITE_SIZES: heights such as 720,1080");
            (h * 16 / 9, h)
        })
        .collect();
    let renderers: Vec<Renderer> = std::env::var("COMPOSITE_RENDERERS")
        .unwrap_or_else(|_| "pixman,gles".into())
        .split(',')
        .map(|r| match r.trim() {
            "pixman" => (RendererChoice::Pixman, false),
            "gles" => (RendererChoice::Gles, false),
            "gles-dmabuf" => (RendererChoice::Gles, true),
            other => panic!("COMPOSITE_RENDERERS: {other:?} is not pixman, gles or gles-dmabuf"),
        })
        .map(|(choice, dmabufs)| Renderer { choice, dmabufs })
        .collect();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    println!("render step per frame, {frames} frames per case after {WARMUP} warm-up; ms");
    println!(
        "{:<10} {:<16} {:<11} {:>8} {:>8} {:>8} {:>8} {:>10} {:>14}",
        "size", "case", "renderer", "median", "p99", "memcpy", "memcpy99", "ratio", "damaged px"
    );
    let mut medians = Vec::new();
    for &(width, height) in &sizes {
        for case in &CASES {
            for &renderer in &renderers {
                let dir = runtime_dir.as_deref();
                if let Some(median) = run_case(width, height, case, renderer, frames, dir) {
                    medians.push(((width, height), case.name, renderer, median));
                }
            }
        }
    }
    // GLES over pixman, and dmabuf frames over GLES read back.
    for (over, under) in [("gles", "pixman"), ("gles-dmabuf", "gles")] {
        println!("{over} over {under}, median render step:");
        for &(size, case, renderer, top) in &medians {
            if renderer.name() != over {
                continue;
            }
            let bottom = medians
                .iter()
                .find(|m| (m.0, m.1) == (size, case) && m.2.name() == under);
            if let Some(&(.., bottom)) = bottom {
                println!(
                    "{:<10} {:<16} {:.2}x ({top:.3} / {bottom:.3} ms)",
                    format!("{}x{}", size.0, size.1),
                    case,
                    top / bottom
                );
            }
        }
    }
}

/// Runs one case; its median render step in ms, or `None` when it was skipped.
fn run_case(
    width: u32,
    height: u32,
    case: &Case,
    renderer: Renderer,
    frames: usize,
    runtime_dir: Option<&std::ffi::OsStr>,
) -> Option<f64> {
    // The previous case pointed XDG_RUNTIME_DIR at its compositor's (now removed) directory.
    match runtime_dir {
        Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
        None => std::env::remove_var("XDG_RUNTIME_DIR"),
    }
    let comp = Compositor::spawn(CompositorOptions {
        client_buffer_frames: case.client_buffer_frames,
        xwayland: false,
        renderer: renderer.choice,
        gpu_frames: renderer.dmabufs,
        ..CompositorOptions::new(Mode {
            width,
            height,
            refresh_mhz: 60_000,
        })
    })
    .expect("starting the compositor");
    if renderer.dmabufs && comp.renderer().render_node.is_none() {
        println!(
            "{width}x{height} {}: gles-dmabuf skipped, no render node",
            case.name
        );
        comp.shutdown();
        return None;
    }
    let client = if case.pattern {
        std::env::set_var("WAYLAND_DISPLAY", comp.socket_name());
        std::env::set_var("XDG_RUNTIME_DIR", comp.runtime_dir());
        Client::Pattern(std::thread::spawn(|| {
            testpattern::run(testpattern::Options {
                exit_after: Some(Duration::from_secs(300)),
                ..Default::default()
            })
        }))
    } else {
        match Command::new("weston-simple-shm")
            .env("WAYLAND_DISPLAY", comp.socket_name())
            .env("XDG_RUNTIME_DIR", comp.runtime_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => Client::Process(child),
            Err(err) => {
                println!(
                    "{width}x{height} {}: skipped, weston-simple-shm: {err}",
                    case.name
                );
                comp.shutdown();
                return None;
            }
        }
    };

    let rx = comp.frames();
    let mut scratch = vec![0u8; width as usize * height as usize * 4];
    let (mut render, mut copy) = (Vec::new(), Vec::new());
    let mut damaged = 0u64;
    let mut n = 0;
    while n < WARMUP + frames {
        let Some(frame) = rx.recv_timeout(Duration::from_secs(5)) else {
            panic!("no frame for 5 s at {width}x{height} ({})", case.name);
        };
        if frame.seq == 0 {
            continue;
        }
        let t = Instant::now();
        if let FrameData::Dmabuf(gpu) = &frame.data {
            gpu.wait_rendered().expect("the GPU finishes the frame");
        } else {
            frame
                .with_pixels(|px| {
                    let len = px.len().min(scratch.len());
                    scratch[..len].copy_from_slice(&px[..len]);
                })
                .expect("readable frame");
            black_box(&scratch);
        }
        let memcpy = t.elapsed();
        if n >= WARMUP {
            render.push(frame.render_time);
            copy.push(memcpy);
            damaged += frame
                .damage
                .iter()
                .map(|r| u64::from(r.width) * u64::from(r.height))
                .sum::<u64>();
        }
        n += 1;
    }
    let (median, p99) = (percentile(&mut render, 50.0), percentile(&mut render, 99.0));
    let (copy_median, copy_p99) = (percentile(&mut copy, 50.0), percentile(&mut copy, 99.0));
    println!(
        "{:<10} {:<16} {:<11} {median:>8.3} {p99:>8.3} {copy_median:>8.3} {copy_p99:>8.3} {:>10.3} {:>14}",
        format!("{width}x{height}"),
        case.name,
        renderer.name(),
        median / copy_median,
        damaged / frames as u64,
    );
    comp.shutdown();
    match client {
        // The pattern sees the compositor go away and returns; how it ends does not matter.
        Client::Pattern(thread) => drop(thread.join()),
        Client::Process(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    Some(median)
}
