//! Client buffer frames: a fullscreen opaque `wl_shm` client is handed out as the frame itself,
//! without compositing or copying, and the compositor falls back to compositing as soon as
//! something has to be drawn over it.
//!
//! One test function: the test pattern runs in this process and finds the compositor through
//! `WAYLAND_DISPLAY`, which parallel tests in the same binary would fight over.

mod common;

use std::time::{Duration, Instant};

use common::{pixel, Fixture};
use compositor::{CompositorOptions, Frame, FrameData, InputEvent, Mode};

const MODE: Mode = Mode {
    width: 640,
    height: 480,
    refresh_mhz: 60_000,
};

fn counter(frame: &Frame) -> Option<u64> {
    frame
        .with_pixels(|px| {
            testpattern::decode_counter(px, frame.width, frame.height, frame.stride() as usize)
        })
        .expect("readable frame")
}

fn is_client_buffer(frame: &Frame) -> bool {
    matches!(frame.data, FrameData::Client { .. })
}

#[test]
fn fullscreen_client_buffer_is_the_frame_until_a_cursor_covers_it() {
    let f = Fixture::with_options(CompositorOptions {
        client_buffer_frames: true,
        ..common::options(MODE)
    });
    std::env::set_var("WAYLAND_DISPLAY", f.handle.socket_name());
    std::env::set_var("XDG_RUNTIME_DIR", f.handle.runtime_dir());
    let client = std::thread::spawn(|| {
        testpattern::run(testpattern::Options {
            exit_after: Some(Duration::from_secs(30)),
            ..Default::default()
        })
    });

    // The pattern's own buffer becomes the frame: the bars show, the counter reads back.
    let first = f
        .wait_frame(Duration::from_secs(5), |fr| {
            is_client_buffer(fr) && counter(fr).is_some()
        })
        .expect("a client buffer frame of the test pattern");
    assert_eq!((first.width, first.height), (MODE.width, MODE.height));
    assert_eq!(first.stride(), MODE.width * 4, "the client's stride");
    // Second bar (yellow) at mid height: B=0, G=R=255.
    assert_eq!(
        pixel(&first, MODE.width / 8 + 10, MODE.height / 2),
        (0, 255, 255)
    );
    let start_counter = counter(&first).unwrap();
    drop(first);

    // Buffers go back to the client as frames are dropped, so it keeps drawing at the refresh
    // rate: a second of frames, every one the client's buffer, counters without gaps.
    let rx = f.handle.frames();
    let start = Instant::now();
    let mut counters = Vec::new();
    while start.elapsed() < Duration::from_secs(1) {
        if let Some(frame) = rx.recv_timeout(Duration::from_millis(200)) {
            assert!(
                is_client_buffer(&frame),
                "frame {} was composited",
                frame.seq
            );
            counters.push(counter(&frame).expect("counter"));
        }
    }
    eprintln!("{} client buffer frames in 1 s", counters.len());
    assert!(
        counters.len() >= 40,
        "only {} frames in 1 s",
        counters.len()
    );
    assert!(
        counters.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps: {counters:?}"
    );
    assert!(counters[0] > start_counter);

    // A consumer that holds a frame stalls nothing for good: the client continues once it
    // lets go.
    let held = rx.recv_timeout(Duration::from_secs(1)).expect("a frame");
    std::thread::sleep(Duration::from_millis(300));
    let held_counter = counter(&held).unwrap();
    drop(held);
    let later = f
        .wait_frame(Duration::from_secs(2), |fr| {
            counter(fr).is_some_and(|c| c > held_counter + 10)
        })
        .expect("the client keeps drawing after a held frame is dropped");
    drop(later);

    // Once the pointer moves, the cursor is drawn over the client, which needs compositing.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 200.0 });
    let composited = f
        .wait_frame(Duration::from_secs(2), |fr| !is_client_buffer(fr))
        .expect("a composited frame with the cursor");
    // The arrow's outline is black at its tip; the pattern there is a bar colour.
    assert_eq!(pixel(&composited, 100, 200), (0, 0, 0), "cursor tip drawn");
    assert!(counter(&composited).is_some(), "the pattern is still there");

    f.handle.shutdown();
    let _ = client.join();
}
