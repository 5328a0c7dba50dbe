//! GLES and pixman draw the same scenes to the same pixels (at most 2 apart per channel): the
//! test pattern, weston-simple-shm, foot, xterm through Xwayland, a popup over a window, and the
//! cursor. Without a GPU, GLES runs on Mesa's software device (llvmpipe).
//!
//! One test function: the test pattern runs in this process and finds its compositor through
//! `WAYLAND_DISPLAY`, which parallel tests in the same binary would fight over. The programs
//! come from Debian (`scripts/deps.sh --test`); a missing one fails the test under CI and skips
//! that scene elsewhere.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::pattern::{assert_same, assert_same_frames, pattern_frames, TOLERANCE};
use common::wl::WlClient;
use common::{Fixture, MODE};
use compositor::{Frame, InputEvent, RendererChoice};
use wayland_protocols::xdg::shell::client::xdg_positioner;

const T: Duration = Duration::from_secs(10);
/// How long a scene must stay unchanged to count as drawn.
const SETTLE: Duration = Duration::from_millis(800);

fn fixture(renderer: RendererChoice) -> Fixture {
    let f = Fixture::with_options(compositor::CompositorOptions {
        renderer,
        // weston-simple-shm keeps its own size and is scaled to the output: nearest neighbour
        // has one right answer, where the two renderers' bilinear filters round differently.
        scale_filter: compositor::ScaleFilter::Nearest,
        ..common::options(MODE)
    });
    let expected = match renderer {
        RendererChoice::Gles => "gles",
        _ => "pixman",
    };
    assert_eq!(
        f.handle.renderer().name,
        expected,
        "{:?}",
        f.handle.renderer()
    );
    f
}

/// The last frame once `pred` held and no new frame came for [`SETTLE`].
fn settled(f: &Fixture, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
    let mut last = f
        .wait_frame(T, pred)
        .unwrap_or_else(|| panic!("{what}: no frame drawn"));
    let rx = f.handle.frames();
    let deadline = Instant::now() + T;
    while let Some(frame) = rx.recv_timeout(SETTLE) {
        last = frame;
        assert!(Instant::now() < deadline, "{what} never stops drawing");
    }
    last
}

fn non_black(frame: &Frame) -> usize {
    common::non_black_pixels(frame, 0, 0, frame.width, frame.height)
}

fn test_pattern(renderer: RendererChoice) -> HashMap<u64, Frame> {
    pattern_frames(&fixture(renderer), |_| {})
}

/// weston-simple-shm's first pictures. It animates by the time of each frame callback, which
/// differs between two compositors; its first picture is drawn for time 0 in both.
fn simple_shm(renderer: RendererChoice) -> Vec<Frame> {
    let f = fixture(renderer);
    let _client = f.spawn_client("weston-simple-shm", &[]);
    let first = f
        .wait_frame(T, |fr| non_black(fr) > 1000)
        .expect("weston-simple-shm draws");
    let rx = f.handle.frames();
    let mut frames = vec![first];
    while frames.len() < 5 {
        frames.extend(rx.recv_timeout(T));
    }
    frames
}

/// The most pixels two frames differ in by more than [`TOLERANCE`].
fn pixels_apart(a: &Frame, b: &Frame) -> usize {
    let (pa, pb) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    let (sa, sb) = (a.stride() as usize, b.stride() as usize);
    let mut off = 0;
    for y in 0..a.height.min(b.height) as usize {
        for x in 0..a.width.min(b.width) as usize {
            let (i, j) = (y * sa + x * 4, y * sb + x * 4);
            off += usize::from((0..3).any(|c| pa[i + c].abs_diff(pb[j + c]) > TOLERANCE));
        }
    }
    off
}

/// foot, with the pointer over it: its cursor is a surface of its own (from the cursor theme),
/// drawn with its hotspot at the pointer.
fn foot(renderer: RendererChoice) -> Frame {
    let f = fixture(renderer);
    let _foot = f.spawn_client("foot", &["--config=/dev/null", "sh"]);
    f.wait_frame(T, |fr| non_black(fr) > 1000)
        .expect("foot draws its window");
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 300.5, y: 200.5 });
    settled(&f, "foot", |fr| non_black(fr) > 1000)
}

fn xterm(renderer: RendererChoice) -> Frame {
    let f = fixture(renderer);
    assert!(f.handle.x11_display().is_some(), "Xwayland runs");
    // A fixed text: a shell's prompt would show the fixture's directory, which differs.
    let _xterm = f.spawn_x11_client(
        "xterm",
        &[
            "-bg",
            "blue",
            "-fg",
            "white",
            "+sb",
            "-e",
            "sh",
            "-c",
            "echo punktfunk; exec cat",
        ],
    );
    settled(&f, "xterm", |fr| {
        common::pixel(fr, fr.width - 1, fr.height - 1) == (255, 0, 0)
    })
}

/// A window, a popup over it, and the default cursor over the popup's edge.
fn popup_and_cursor(renderer: RendererChoice) -> Frame {
    let f = fixture(renderer);
    let socket = f.handle.runtime_dir().join(f.handle.socket_name());
    let mut c = WlClient::connect(&socket);
    let parent = c.create_toplevel(0xff20_4080, None);
    c.commit(parent);
    c.wait_mapped(parent);
    let popup = c.create_popup(
        parent,
        0xffe0_c040,
        (160, 100),
        (200, 150, 10, 10),
        xdg_positioner::ConstraintAdjustment::empty(),
    );
    c.wait_mapped(popup);
    let (x, y, _, _) = c.app.windows[popup].popup_geometry.unwrap();
    f.handle.send_input(InputEvent::PointerMotionAbsolute {
        x: f64::from(x) - 4.0,
        y: f64::from(y) + 20.0,
    });
    settled(&f, "popup and cursor", |fr| {
        // The arrow's white fill just below its tip.
        common::pixel(fr, x as u32 - 3, y as u32 + 22) == (255, 255, 255)
    })
}

#[test]
fn gles_and_pixman_draw_the_same_pixels() {
    let pixman = test_pattern(RendererChoice::Pixman);
    let gles = test_pattern(RendererChoice::Gles);
    assert_same_frames(&pixman, &gles, 1);

    if common::have("weston-simple-shm") {
        // The time-0 picture reaches the consumer unless it is replaced before it is taken:
        // match the first pictures of each by content.
        let (pixman, gles) = (
            simple_shm(RendererChoice::Pixman),
            simple_shm(RendererChoice::Gles),
        );
        let pair = pixman
            .iter()
            .flat_map(|p| gles.iter().map(move |g| (p, g)))
            .find(|(p, g)| pixels_apart(p, g) == 0);
        let (p, g) = pair.unwrap_or_else(|| {
            panic!(
                "no picture of weston-simple-shm's first {} drawn alike by both; the first pair \
                 differs in {} pixels",
                pixman.len(),
                pixels_apart(&pixman[0], &gles[0])
            )
        });
        assert_same("weston-simple-shm", p, g);
    }
    if common::have("foot") {
        assert_same(
            "foot",
            &foot(RendererChoice::Pixman),
            &foot(RendererChoice::Gles),
        );
    }
    if common::have("Xwayland") && common::have("xterm") {
        assert_same(
            "xterm",
            &xterm(RendererChoice::Pixman),
            &xterm(RendererChoice::Gles),
        );
    }
    assert_same(
        "popup and cursor",
        &popup_and_cursor(RendererChoice::Pixman),
        &popup_and_cursor(RendererChoice::Gles),
    );
}
