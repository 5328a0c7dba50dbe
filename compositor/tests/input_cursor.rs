//! The cursor drawn into the frames: the default arrow where the pointer is, nothing when
//! `show_cursor` is off.

mod common;

use std::time::Duration;

use common::{non_black_pixels, pixel, Fixture, TempDir, MODE};
use compositor::{Compositor, InputEvent};

const T: Duration = Duration::from_secs(5);

#[test]
fn default_arrow_follows_the_pointer_over_the_background() {
    let f = Fixture::new(MODE);
    // Nothing drawn before the pointer moves.
    let first = f.wait_frame(T, |_| true).expect("first frame");
    assert_eq!(non_black_pixels(&first, 0, 0, 40, 40), 0);

    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 50.0 });
    let frame = f
        .wait_frame(T, |fr| non_black_pixels(fr, 100, 50, 12, 17) > 0)
        .expect("a frame with the cursor");
    // The white fill starts just below the tip, inside the black outline.
    assert_eq!(pixel(&frame, 101, 52), (255, 255, 255));
    assert!(non_black_pixels(&frame, 100, 50, 12, 17) > 40);
    // Nothing above or left of the hotspot.
    assert_eq!(non_black_pixels(&frame, 80, 30, 20, 60), 0);
    assert_eq!(non_black_pixels(&frame, 80, 30, 60, 20), 0);

    f.handle.send_input(InputEvent::PointerMotionRelative {
        dx: 200.0,
        dy: 100.0,
    });
    let moved = f
        .wait_frame(T, |fr| non_black_pixels(fr, 300, 150, 12, 17) > 0)
        .expect("a frame with the moved cursor");
    assert_eq!(pixel(&moved, 301, 152), (255, 255, 255));
    assert_eq!(
        non_black_pixels(&moved, 100, 50, 12, 17),
        0,
        "the old cursor is gone"
    );
    assert!(moved
        .damage
        .iter()
        .any(|r| r.x <= 100 && r.y <= 50 && r.x + r.width >= 112));
}

#[test]
fn show_cursor_off_draws_nothing() {
    common::init_logging();
    let dir = TempDir::new();
    let mut opts = common::options(MODE);
    opts.runtime_dir = Some(dir.0.clone());
    opts.show_cursor = false;
    let handle = Compositor::spawn(opts).expect("compositor starts");
    let rx = handle.frames();
    rx.recv_timeout(T).expect("first frame");
    handle.send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 50.0 });
    // No frame at all, or a black one.
    if let Some(frame) = rx.recv_timeout(Duration::from_millis(500)) {
        assert_eq!(non_black_pixels(&frame, 90, 40, 40, 40), 0);
    }
}

#[test]
fn pooled_frames_updated_by_damage_never_keep_an_old_cursor() {
    let f = Fixture::new(MODE);
    f.wait_frame(T, |_| true).expect("first frame");
    let arrow_at = |x: u32, y: u32| {
        f.handle.send_input(InputEvent::PointerMotionAbsolute {
            x: f64::from(x),
            y: f64::from(y),
        });
        f.wait_frame(T, |fr| pixel(fr, x + 1, y + 2) == (255, 255, 255))
            .unwrap_or_else(|| panic!("no frame with the cursor at {x},{y}"))
    };
    let first = arrow_at(20, 20);
    let arrow_pixels = non_black_pixels(&first, 0, 0, MODE.width, MODE.height);
    assert!(arrow_pixels > 40);
    // Keep the last two frames, so the compositor cycles through its pooled buffers, each of
    // which it updates from the damage since the frame it held: every frame shows exactly one
    // arrow, whole, wherever the pointer went before.
    let mut held = std::collections::VecDeque::from([first]);
    for i in 1..16u32 {
        let (x, y) = (20 + (i * 37) % 560, 20 + (i * 53) % 420);
        let frame = arrow_at(x, y);
        assert_eq!(
            non_black_pixels(&frame, 0, 0, MODE.width, MODE.height),
            arrow_pixels,
            "frame {} with the cursor at {x},{y}",
            frame.seq
        );
        held.push_back(frame);
        if held.len() > 2 {
            held.pop_front();
        }
    }
}
