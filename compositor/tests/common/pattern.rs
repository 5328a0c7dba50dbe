//! The test pattern drawn in a compositor, and pictures compared pixel by pixel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compositor::{Frame, FrameData};

use super::Fixture;

/// The largest difference allowed in any colour channel between two renderers' pictures.
pub const TOLERANCE: u8 = 2;

/// Asserts that two frames show the same picture, within [`TOLERANCE`].
pub fn assert_same(what: &str, pixman: &Frame, gles: &Frame) {
    assert_eq!(
        (pixman.width, pixman.height),
        (gles.width, gles.height),
        "{what}: sizes"
    );
    let (a, b) = (pixman.to_vec().unwrap(), gles.to_vec().unwrap());
    let (sa, sb) = (pixman.stride() as usize, gles.stride() as usize);
    let mut worst = (0u8, 0u32, 0u32);
    let mut off = 0usize;
    for y in 0..pixman.height {
        for x in 0..pixman.width {
            let (i, j) = (
                y as usize * sa + x as usize * 4,
                y as usize * sb + x as usize * 4,
            );
            let diff = (0..3).map(|c| a[i + c].abs_diff(b[j + c])).max().unwrap();
            if diff > TOLERANCE {
                off += 1;
            }
            if diff > worst.0 {
                worst = (diff, x, y);
            }
        }
    }
    let (diff, x, y) = worst;
    assert_eq!(
        off,
        0,
        "{what}: {off} pixels differ by more than {TOLERANCE}; the most ({diff}) at {x},{y}: \
         pixman {:?}, gles {:?}",
        super::pixel(pixman, x, y),
        super::pixel(gles, x, y)
    );
    eprintln!("{what}: same pixels (largest difference {diff})");
}

/// Asserts that at least `at_least` counters of the test pattern were drawn by both, each the
/// same picture (see [`assert_same`]).
pub fn assert_same_frames(
    pixman: &HashMap<u64, Frame>,
    gles: &HashMap<u64, Frame>,
    at_least: usize,
) {
    let mut common: Vec<u64> = pixman
        .keys()
        .filter(|n| gles.contains_key(n))
        .copied()
        .collect();
    common.sort_unstable();
    assert!(
        common.len() >= at_least,
        "{} counters drawn by both, not {at_least}: pixman {:?}, gles {:?}",
        common.len(),
        pixman.keys().collect::<Vec<_>>(),
        gles.keys().collect::<Vec<_>>()
    );
    for n in common {
        assert_same(&format!("test pattern frame {n}"), &pixman[&n], &gles[&n]);
    }
}

/// A copy of `frame` in CPU memory, so that holding it holds none of the compositor's buffers.
pub fn on_cpu(frame: &Frame) -> Frame {
    Frame {
        data: FrameData::Cpu {
            bytes: Arc::from(frame.to_vec().unwrap()),
            stride: frame.stride(),
        },
        ..frame.clone()
    }
}

/// Frames of the test pattern by their counter (copied into CPU memory), from `n` = 5 on (past
/// the first frames of a new window), for about a second; `each` sees every frame as it came.
///
/// The test pattern runs in this process and finds the compositor through `WAYLAND_DISPLAY`:
/// the tests of a binary that call this take turns.
pub fn pattern_frames(f: &Fixture, mut each: impl FnMut(&Frame)) -> HashMap<u64, Frame> {
    const T: Duration = Duration::from_secs(10);
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("WAYLAND_DISPLAY", f.handle.socket_name());
    std::env::set_var("XDG_RUNTIME_DIR", f.handle.runtime_dir());
    let client = std::thread::spawn(|| {
        testpattern::run(testpattern::Options {
            max_frames: Some(120),
            exit_after: Some(Duration::from_secs(20)),
            ..Default::default()
        })
    });
    let rx = f.handle.frames();
    let mut frames = HashMap::new();
    let deadline = Instant::now() + T;
    while frames.len() < 20 && Instant::now() < deadline {
        let Some(frame) = rx.recv_timeout(T) else {
            break;
        };
        each(&frame);
        let n = frame
            .with_pixels(|px| {
                testpattern::decode_counter(px, frame.width, frame.height, frame.stride() as usize)
            })
            .unwrap();
        if let Some(n) = n.filter(|n| (5..100).contains(n)) {
            frames.insert(n, on_cpu(&frame));
        }
    }
    client.join().unwrap().unwrap();
    frames
}
