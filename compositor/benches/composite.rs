//! Render step cost per frame at 720p, 1080p and 4K, next to a memcpy of one frame (the floor).
//!
//! Three cases per size, each a real client in a compositor started in-process at that mode:
//!
//! - `full/composited`: the test pattern (fullscreen, whole surface damaged every frame) with
//!   client buffer frames off, so every frame is a pixman composite plus the copy into the
//!   frame buffer;
//! - `full/direct`: the same client with client buffer frames on (what the host streams with):
//!   the frame is the client's buffer, the render step only tracks damage;
//! - `partial`: weston-simple-shm, which redraws a 250x250 window each frame: pixman composites
//!   only the damaged region, then the frame is copied out.
//!
//! `memcpy` copies each received frame's bytes into a preallocated buffer in the same loop.
//! Run with `cargo bench -p compositor --bench composite`; `COMPOSITE_FRAMES` sets the frames
//! measured per case (default 200, after 20 warm-up frames).

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compositor::{Compositor, CompositorOptions, Mode};

const SIZES: [(u32, u32); 3] = [(1280, 720), (1920, 1080), (3840, 2160)];
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
        name: "partial",
        client_buffer_frames: false,
        pattern: false,
    },
];

fn main() {
    let frames: usize = std::env::var("COMPOSITE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
    println!("render step per frame, {frames} frames per case after {WARMUP} warm-up; ms");
    println!(
        "{:<10} {:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>14}",
        "size", "case", "median", "p99", "memcpy", "memcpy99", "ratio", "damaged px"
    );
    for (width, height) in SIZES {
        for case in &CASES {
            run_case(width, height, case, frames, runtime_dir.as_deref());
        }
    }
}

fn run_case(
    width: u32,
    height: u32,
    case: &Case,
    frames: usize,
    runtime_dir: Option<&std::ffi::OsStr>,
) {
    // The previous case pointed XDG_RUNTIME_DIR at its compositor's (now removed) directory.
    match runtime_dir {
        Some(dir) => std::env::set_var("XDG_RUNTIME_DIR", dir),
        None => std::env::remove_var("XDG_RUNTIME_DIR"),
    }
    let comp = Compositor::spawn(CompositorOptions {
        client_buffer_frames: case.client_buffer_frames,
        xwayland: false,
        ..CompositorOptions::new(Mode {
            width,
            height,
            refresh_mhz: 60_000,
        })
    })
    .expect("starting the compositor");
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
                return;
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
        frame
            .with_pixels(|px| {
                let len = px.len().min(scratch.len());
                scratch[..len].copy_from_slice(&px[..len]);
            })
            .expect("readable frame");
        black_box(&scratch);
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
        "{:<10} {:<16} {median:>8.3} {p99:>8.3} {copy_median:>8.3} {copy_p99:>8.3} {:>10.3} {:>14}",
        format!("{width}x{height}"),
        case.name,
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
}
