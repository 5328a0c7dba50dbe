//! The protocols games and toolkits use beyond the core: presentation time, decorations,
//! fractional scale, activation, idle inhibition, primary selection, cursor shapes, popups and
//! dialogs. Each is checked with what a client or the stream shows.

mod common;

use std::time::Duration;

use common::wl::WlClient;
use common::{have, pixel, Fixture, MODE};
use compositor::{Frame, InputEvent};
use wayland_protocols::xdg::activation::v1::client::xdg_activation_v1;
use wayland_protocols::xdg::decoration::zv1::client::{
    zxdg_decoration_manager_v1, zxdg_toplevel_decoration_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_positioner, xdg_toplevel};

const T: Duration = Duration::from_secs(5);

const RED: u32 = 0xffff_0000;
const GREEN: u32 = 0xff00_ff00;
const BLUE: u32 = 0xff00_00ff;

/// (B, G, R) as `pixel` returns it, for an `0xAARRGGBB` colour.
fn bgr(colour: u32) -> (u8, u8, u8) {
    (colour as u8, (colour >> 8) as u8, (colour >> 16) as u8)
}

fn socket(f: &Fixture) -> std::path::PathBuf {
    f.handle.runtime_dir().join(f.handle.socket_name())
}

#[test]
fn wayland_info_lists_the_protocols() {
    if !have("wayland-info") {
        return;
    }
    let f = Fixture::new(MODE);
    let mut info = f.spawn_client("wayland-info", &[]);
    let deadline = std::time::Instant::now() + T;
    while info.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give the reader threads a moment to collect the last lines.
    std::thread::sleep(Duration::from_millis(100));
    let out = info.output();
    for interface in [
        "wp_presentation",
        "zxdg_decoration_manager_v1",
        "wp_viewporter",
        "wp_fractional_scale_manager_v1",
        "xdg_activation_v1",
        "zwp_idle_inhibit_manager_v1",
        "zwp_primary_selection_device_manager_v1",
        "wp_cursor_shape_manager_v1",
        "wp_single_pixel_buffer_manager_v1",
        "zwp_tablet_manager_v2",
    ] {
        assert!(
            out.contains(&format!("'{interface}'")),
            "wayland-info does not list {interface}:\n{out}"
        );
    }
    // wayland-info reads the presentation clock: the monotonic one.
    assert!(
        out.contains("CLOCK_MONOTONIC"),
        "presentation clock is not CLOCK_MONOTONIC:\n{out}"
    );
    // Client dmabufs need a GPU's render node: without one, whichever renderer runs, nothing
    // is advertised that cannot work.
    let render_node = std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    if !render_node {
        for interface in ["zwp_linux_dmabuf_v1", "wl_drm"] {
            assert!(
                !out.contains(&format!("'{interface}'")),
                "{interface} is advertised without a render node:\n{out}"
            );
        }
    }
}

#[test]
fn a_single_pixel_buffer_is_stretched_by_its_viewport() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let below = c.create_single_pixel_toplevel(RED, (MODE.width as i32, MODE.height as i32));
    c.wait_mapped(below);
    f.wait_frame(T, |fr| {
        pixel(fr, 0, 0) == bgr(RED) && pixel(fr, MODE.width - 1, MODE.height - 1) == bgr(RED)
    })
    .expect("one red pixel fills the output");
    // A second window: one green pixel shown as 200 x 100. It keeps that size, so it is
    // fitted to the output (640 x 320, black bars above and below) and hides the red one.
    let above = c.create_single_pixel_toplevel(GREEN, (200, 100));
    c.wait_mapped(above);
    let frame = f
        .wait_frame(T, |fr| pixel(fr, 0, 80) == bgr(GREEN))
        .expect("the green pixel is drawn");
    assert_eq!(pixel(&frame, 639, 399), bgr(GREEN));
    assert_eq!(pixel(&frame, 320, 78), (0, 0, 0));
    assert_eq!(pixel(&frame, 320, 401), (0, 0, 0));
}

#[test]
fn presentation_feedback_reports_each_frame_with_the_refresh() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let w = c.create_toplevel(RED, None);
    c.commit(w);
    c.wait_mapped(w);
    for _ in 0..10 {
        c.commit_with_feedback(w);
        assert!(c.wait_until(T, |app| app.frame_done), "no frame callback");
    }
    assert!(c.wait_until(T, |app| app.presented.len() >= 10));
    assert_eq!(c.app.clock_id, Some(libc::CLOCK_MONOTONIC as u32));
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_ns = now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128;
    let presented = &c.app.presented;
    for p in presented {
        // 60 Hz: 1e9 / 60 ns.
        assert_eq!(p.refresh_ns, 16_666_666, "{p:?}");
        assert!(
            p.time_ns <= now_ns && now_ns - p.time_ns < 10_000_000_000,
            "{p:?}"
        );
    }
    // Every presentation is a later frame, on a later refresh tick: whole refresh intervals
    // (within 0.1 ms) after the previous one.
    for pair in presented.windows(2) {
        assert!(pair[1].seq > pair[0].seq, "{pair:?}");
        let delta = pair[1].time_ns - pair[0].time_ns;
        let off = (delta % 16_666_666).min(16_666_666 - delta % 16_666_666);
        assert!(delta > 16_000_000 && off < 100_000, "{pair:?}");
    }
    assert_eq!(c.app.discarded, 0);
    // The frame the feedback names carries the window.
    let frame = f.wait_frame(T, |fr| pixel(fr, 10, 10) == bgr(RED));
    assert!(frame.is_some(), "the window is not on the output");
}

#[test]
fn presentation_feedback_of_a_hidden_window_is_discarded() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let below = c.create_toplevel(RED, None);
    c.commit(below);
    c.wait_mapped(below);
    let above = c.create_toplevel(GREEN, None);
    c.commit(above);
    c.wait_mapped(above);
    f.wait_frame(T, |fr| pixel(fr, 10, 10) == bgr(GREEN))
        .expect("the newer window covers the output");
    c.commit_with_feedback(below);
    c.commit_with_feedback(above);
    assert!(
        c.wait_until(T, |app| app.discarded >= 1 && !app.presented.is_empty()),
        "presented {:?}, discarded {}",
        c.app.presented,
        c.app.discarded
    );
    assert!(c.app.presented.iter().all(|p| p.window == above));
}

#[test]
fn decorations_are_server_side_whatever_the_client_asks() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let manager: zxdg_decoration_manager_v1::ZxdgDecorationManagerV1 = c.bind(1);
    let w = c.create_toplevel(RED, None);
    let toplevel = c.app.windows[w].toplevel.clone().unwrap();
    let decoration = manager.get_toplevel_decoration(&toplevel, &c.app.qh, w);
    decoration.set_mode(zxdg_toplevel_decoration_v1::Mode::ClientSide);
    c.commit(w);
    c.wait_mapped(w);
    assert_eq!(
        c.app.windows[w].decoration_modes.last(),
        Some(&zxdg_toplevel_decoration_v1::Mode::ServerSide)
    );
    // Asking again on a mapped window gets the same answer in a new configure.
    let configures = c.app.windows[w].configures;
    decoration.unset_mode();
    assert!(c.wait_until(T, |app| app.windows[w].configures > configures));
    assert_eq!(
        c.app.windows[w].decoration_modes.last(),
        Some(&zxdg_toplevel_decoration_v1::Mode::ServerSide)
    );
    c.app.windows[w].decoration = Some(decoration);
}

#[test]
fn foot_is_told_to_draw_no_decorations() {
    if !have("foot") {
        return;
    }
    let f = Fixture::new(MODE);
    // foot prefers server-side decorations; ask for client-side ones to see the answer win.
    let foot = f.spawn_client(
        "foot",
        &[
            "--config=/dev/null",
            "--log-level=info",
            "-o",
            "csd.preferred=client",
            "sh",
        ],
    );
    // foot logs the mode the compositor answered with.
    assert!(
        foot.wait_line("using SSD decorations", T).is_some(),
        "foot does not use server-side decorations:\n{}",
        foot.output()
    );
    assert!(!foot.output().contains("using CSD decorations"));
}

#[test]
fn preferred_fractional_scale_is_one() {
    use wayland_protocols::wp::fractional_scale::v1::client::wp_fractional_scale_manager_v1::WpFractionalScaleManagerV1;
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let manager: WpFractionalScaleManagerV1 = c.bind(1);
    let w = c.create_toplevel(RED, None);
    let _scale = manager.get_fractional_scale(&c.app.windows[w].surface, &c.app.qh, w);
    c.commit(w);
    c.wait_mapped(w);
    assert!(c.wait_until(T, |app| app.windows[w].preferred_scale.is_some()));
    // The scale is in 120ths: 120 is 1.0.
    assert_eq!(c.app.windows[w].preferred_scale, Some(120));
}

#[test]
fn activation_brings_an_existing_window_back_on_top() {
    let f = Fixture::new(MODE);
    let mut a = WlClient::connect(&socket(&f));
    let red = a.create_toplevel(RED, None);
    a.commit(red);
    a.wait_mapped(red);
    let mut b = WlClient::connect(&socket(&f));
    let blue = b.create_toplevel(BLUE, None);
    b.commit(blue);
    b.wait_mapped(blue);
    f.wait_frame(T, |fr| pixel(fr, 10, 10) == bgr(BLUE))
        .expect("the newer window is on top");
    assert!(a.wait_until(T, |app| app.keyboard_focus.is_none()));

    // The older window asks to be activated with a token of its own.
    let activation: xdg_activation_v1::XdgActivationV1 = a.bind(1);
    let token = activation.get_activation_token(&a.app.qh, ());
    token.set_surface(&a.app.windows[red].surface);
    token.commit();
    assert!(a.wait_until(T, |app| app.activation_token.is_some()));
    let token = a.app.activation_token.clone().unwrap();
    activation.activate(token, &a.app.windows[red].surface);
    a.roundtrip();

    f.wait_frame(T, |fr| pixel(fr, 10, 10) == bgr(RED))
        .expect("the activated window is on top again");
    assert!(
        a.wait_until(T, |app| app.keyboard_focus == Some(red)),
        "the activated window has no keyboard focus"
    );
    assert!(a.app.windows[red]
        .states
        .contains(&xdg_toplevel::State::Activated));
    assert!(b.wait_until(T, |app| app.keyboard_focus.is_none()));
}

#[test]
fn an_activated_window_brings_its_dialog_back_above_it() {
    let f = Fixture::new(MODE);
    let mut a = WlClient::connect(&socket(&f));
    let red = a.create_toplevel(RED, None);
    a.commit(red);
    a.wait_mapped(red);
    let dialog = a.create_toplevel(GREEN, Some((200, 100)));
    let parent = a.app.windows[red].toplevel.clone().unwrap();
    a.app.windows[dialog]
        .toplevel
        .as_ref()
        .unwrap()
        .set_parent(Some(&parent));
    a.commit(dialog);
    a.wait_mapped(dialog);
    let mut b = WlClient::connect(&socket(&f));
    let blue = b.create_toplevel(BLUE, None);
    b.commit(blue);
    b.wait_mapped(blue);
    let (cx, cy) = (MODE.width / 2, MODE.height / 2);
    f.wait_frame(T, |fr| pixel(fr, cx, cy) == bgr(BLUE))
        .expect("the other client covers both");

    let activation: xdg_activation_v1::XdgActivationV1 = a.bind(1);
    let token = activation.get_activation_token(&a.app.qh, ());
    token.commit();
    assert!(a.wait_until(T, |app| app.activation_token.is_some()));
    let token = a.app.activation_token.clone().unwrap();
    activation.activate(token, &a.app.windows[red].surface);
    a.roundtrip();
    f.wait_frame(T, |fr| {
        pixel(fr, cx, cy) == bgr(GREEN) && pixel(fr, 10, 10) == bgr(RED)
    })
    .expect("the parent is back with its dialog above it");
    assert!(a.wait_until(T, |app| app.keyboard_focus == Some(dialog)));
}

#[test]
fn an_invalid_activation_token_changes_nothing() {
    let f = Fixture::new(MODE);
    let mut a = WlClient::connect(&socket(&f));
    let red = a.create_toplevel(RED, None);
    a.commit(red);
    a.wait_mapped(red);
    let blue = a.create_toplevel(BLUE, None);
    a.commit(blue);
    a.wait_mapped(blue);
    let activation: xdg_activation_v1::XdgActivationV1 = a.bind(1);
    activation.activate("made-up".into(), &a.app.windows[red].surface);
    a.roundtrip();
    std::thread::sleep(Duration::from_millis(200));
    a.dispatch_timeout(Duration::from_millis(50));
    assert_eq!(a.app.keyboard_focus, Some(blue));
    let frame = f
        .wait_frame(T, |fr| pixel(fr, 10, 10) != (0, 0, 0))
        .unwrap();
    assert_eq!(pixel(&frame, 10, 10), bgr(BLUE));
}

#[test]
fn idle_inhibition_is_recorded_while_the_inhibitor_lives() {
    use wayland_protocols::wp::idle_inhibit::zv1::client::zwp_idle_inhibit_manager_v1::ZwpIdleInhibitManagerV1;
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let w = c.create_toplevel(RED, None);
    c.commit(w);
    c.wait_mapped(w);
    assert!(!f.handle.idle_inhibited());
    let manager: ZwpIdleInhibitManagerV1 = c.bind(1);
    let inhibitor = manager.create_inhibitor(&c.app.windows[w].surface, &c.app.qh, ());
    c.roundtrip();
    assert!(f.handle.idle_inhibited());
    inhibitor.destroy();
    c.roundtrip();
    assert!(!f.handle.idle_inhibited());

    // A client that goes away takes its inhibitor with it.
    let _again = manager.create_inhibitor(&c.app.windows[w].surface, &c.app.qh, ());
    c.roundtrip();
    assert!(f.handle.idle_inhibited());
    drop(c);
    let deadline = std::time::Instant::now() + T;
    while f.handle.idle_inhibited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!f.handle.idle_inhibited());
}

#[test]
fn primary_selection_goes_from_one_client_to_another() {
    if !have("wl-copy") || !have("wl-paste") {
        return;
    }
    let f = Fixture::new(MODE);
    // wl-copy takes keyboard focus with a window of its own, sets the primary selection and
    // keeps serving it; wl-paste reads it with its own focused window. A wl-paste that maps
    // before wl-copy has set the selection takes the focus wl-copy needs, so a round that finds
    // no selection starts both again.
    let spawn_copy = || {
        f.spawn_client(
            "wl-copy",
            &["--primary", "--foreground", "punktfunk primary"],
        )
    };
    let mut copy = spawn_copy();
    let until = std::time::Instant::now() + 2 * T;
    let mut last = String::new();
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(300));
        let mut paste = f.spawn_client("wl-paste", &["--primary", "--no-newline"]);
        let done = std::time::Instant::now() + T;
        while paste.is_running() && std::time::Instant::now() < done {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        last = paste.output();
        if last.contains("punktfunk primary") {
            break;
        }
        copy.kill();
        copy = spawn_copy();
    }
    assert!(
        last.contains("punktfunk primary"),
        "wl-paste --primary said {last:?}; wl-copy said {:?}",
        copy.output()
    );
    // The regular clipboard is a different selection.
    let mut paste = f.spawn_client("wl-paste", &["--no-newline"]);
    let done = std::time::Instant::now() + T;
    while paste.is_running() && std::time::Instant::now() < done {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(!paste.output().contains("punktfunk primary"));
    copy.kill();
}

/// The cursor's pixels around the pointer at (`x`, `y`): how many are black and how many white
/// in a 24 x 24 box whose top-left is 12 pixels up and left of the pointer.
fn cursor_pixels(frame: &Frame, x: u32, y: u32, background: (u8, u8, u8)) -> Vec<(u32, u32)> {
    let mut drawn = Vec::new();
    for yy in y.saturating_sub(12)..(y + 12).min(frame.height) {
        for xx in x.saturating_sub(12)..(x + 12).min(frame.width) {
            if pixel(frame, xx, yy) != background {
                drawn.push((xx, yy));
            }
        }
    }
    drawn
}

#[test]
fn cursor_shapes_change_the_drawn_cursor() {
    use wayland_protocols::wp::cursor_shape::v1::client::wp_cursor_shape_device_v1::Shape;
    use wayland_protocols::wp::cursor_shape::v1::client::wp_cursor_shape_manager_v1::WpCursorShapeManagerV1;
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let w = c.create_toplevel(BLUE, None);
    c.commit(w);
    c.wait_mapped(w);
    let (x, y) = (200u32, 150u32);
    f.handle.send_input(InputEvent::PointerMotionAbsolute {
        x: f64::from(x),
        y: f64::from(y),
    });
    assert!(c.wait_until(T, |app| app.pointer_focus == Some(w)));
    let blue = bgr(BLUE);
    let arrow = f
        .wait_frame(T, |fr| {
            pixel(fr, 5, 5) == blue && !cursor_pixels(fr, x, y, blue).is_empty()
        })
        .expect("the default cursor is drawn over the window");
    let arrow = cursor_pixels(&arrow, x, y, blue);
    // The arrow's tip is at the pointer and it extends down and right.
    assert!(arrow.contains(&(x, y)));
    assert!(
        arrow.iter().all(|&(px, py)| px >= x && py >= y),
        "the arrow is not below and right of the pointer: {arrow:?}"
    );

    let manager: WpCursorShapeManagerV1 = c.bind(1);
    let device = manager.get_pointer(c.app.pointer.as_ref().unwrap(), &c.app.qh, ());
    let mut seen = vec![arrow.clone()];
    for shape in [Shape::Text, Shape::Crosshair, Shape::Pointer, Shape::Wait] {
        device.set_shape(c.app.pointer_serial, shape);
        c.roundtrip();
        let previous = seen.last().unwrap().clone();
        let frame = f
            .wait_frame(T, |fr| {
                let now = cursor_pixels(fr, x, y, blue);
                !now.is_empty() && now != previous
            })
            .unwrap_or_else(|| panic!("the cursor does not change for {shape:?}"));
        let drawn = cursor_pixels(&frame, x, y, blue);
        assert!(
            !seen.contains(&drawn),
            "{shape:?} looks like an earlier shape"
        );
        if shape == Shape::Text || shape == Shape::Crosshair {
            // Centred shapes: drawn on both sides of the pointer.
            assert!(drawn.iter().any(|&(_, py)| py < y), "{shape:?} not centred");
            assert!(drawn.iter().any(|&(_, py)| py > y), "{shape:?} not centred");
        }
        seen.push(drawn);
    }
}

#[test]
fn popups_are_drawn_above_their_parent_inside_the_output() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let parent = c.create_toplevel(RED, None);
    c.commit(parent);
    c.wait_mapped(parent);
    // A menu opened at the bottom right corner would hang off the output; sliding moves it in.
    let (pw, ph) = (120, 90);
    let anchor = (MODE.width as i32 - 20, MODE.height as i32 - 20, 10, 10);
    let slide =
        xdg_positioner::ConstraintAdjustment::SlideX | xdg_positioner::ConstraintAdjustment::SlideY;
    let popup = c.create_popup(parent, GREEN, (pw, ph), anchor, slide);
    c.wait_mapped(popup);
    let (x, y, w, h) = c.app.windows[popup].popup_geometry.unwrap();
    assert_eq!((w, h), (pw, ph));
    assert_eq!((x + w, y + h), (MODE.width as i32, MODE.height as i32));
    assert!(!c.app.windows[popup].popup_done);
    let frame = f
        .wait_frame(T, |fr| {
            pixel(fr, MODE.width - 2, MODE.height - 2) == bgr(GREEN)
        })
        .expect("the popup is drawn in the corner");
    // Above the parent, which still fills the rest of the output.
    let (x, y) = (x as u32, y as u32);
    assert_eq!(pixel(&frame, x + 1, y + 1), bgr(GREEN));
    assert_eq!(pixel(&frame, x - 1, y - 1), bgr(RED));
    assert_eq!(pixel(&frame, 10, 10), bgr(RED));
    // The parent keeps the keyboard: a popup without a grab takes no focus.
    assert_eq!(c.app.keyboard_focus, Some(parent));
}

#[test]
fn dialogs_are_drawn_above_their_parent_at_their_own_size() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let parent = c.create_toplevel(RED, None);
    c.commit(parent);
    c.wait_mapped(parent);
    let (dw, dh) = (200, 100);
    let dialog = c.create_toplevel(GREEN, Some((dw, dh)));
    let parent_toplevel = c.app.windows[parent].toplevel.clone().unwrap();
    c.app.windows[dialog]
        .toplevel
        .as_ref()
        .unwrap()
        .set_parent(Some(&parent_toplevel));
    c.commit(dialog);
    c.wait_mapped(dialog);
    // The dialog picks its own size and is not fullscreen.
    assert_eq!(c.app.windows[dialog].configured_size, Some((0, 0)));
    assert!(!c.app.windows[dialog]
        .states
        .contains(&xdg_toplevel::State::Fullscreen));
    let (cx, cy) = (MODE.width / 2, MODE.height / 2);
    let frame = f
        .wait_frame(T, |fr| pixel(fr, cx, cy) == bgr(GREEN))
        .expect("the dialog is drawn in the middle");
    let (x0, y0) = (cx - dw as u32 / 2, cy - dh as u32 / 2);
    assert_eq!(pixel(&frame, x0, y0), bgr(GREEN));
    assert_eq!(
        pixel(&frame, x0 + dw as u32 - 1, y0 + dh as u32 - 1),
        bgr(GREEN)
    );
    assert_eq!(pixel(&frame, x0 - 1, y0 - 1), bgr(RED));
    assert_eq!(pixel(&frame, 10, 10), bgr(RED));
    // The dialog has the keyboard; closing it gives the keyboard back to the parent.
    assert!(c.wait_until(T, |app| app.keyboard_focus == Some(dialog)));
    let d = &c.app.windows[dialog];
    d.toplevel.as_ref().unwrap().destroy();
    d.xdg.destroy();
    d.surface.destroy();
    assert!(c.wait_until(T, |app| app.keyboard_focus == Some(parent)));
    f.wait_frame(T, |fr| pixel(fr, cx, cy) == bgr(RED))
        .expect("the parent fills the output again");
}

#[test]
fn a_menu_takes_the_keyboard_and_a_click_outside_its_client_closes_it() {
    let f = Fixture::new(MODE);
    // Another client's window fills the output below.
    let mut other = WlClient::connect(&socket(&f));
    let below = other.create_toplevel(BLUE, None);
    other.commit(below);
    other.wait_mapped(below);
    // The focused client draws a 300 x 300 window: it keeps its size and is fitted to the
    // output, 480 x 480 at x = 80 (1.6 times), hiding the other client's window.
    let mut c = WlClient::connect(&socket(&f));
    let parent = c.create_toplevel(RED, Some((300, 300)));
    c.commit(parent);
    c.wait_mapped(parent);
    // A right click opens a menu at the pointer.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 100.0 });
    f.handle.send_input(InputEvent::PointerButton {
        button: 0x111,
        pressed: true,
    });
    assert!(c.wait_until(T, |app| app.button_serial.is_some()));
    let serial = c.app.button_serial.unwrap();
    let menu = c.create_popup_with_grab(
        parent,
        GREEN,
        (80, 120),
        (100, 100, 1, 1),
        xdg_positioner::ConstraintAdjustment::empty(),
        Some(serial),
    );
    f.handle.send_input(InputEvent::PointerButton {
        button: 0x111,
        pressed: false,
    });
    c.wait_mapped(menu);
    assert_eq!(
        c.app.windows[menu].popup_geometry,
        Some((101, 101, 80, 120))
    );
    // The menu (window pixels 101..181 x 101..221) is drawn scaled with its window.
    f.wait_frame(T, |fr| {
        pixel(fr, 245, 165) == bgr(GREEN)
            && pixel(fr, 365, 350) == bgr(GREEN)
            && pixel(fr, 375, 360) == bgr(RED)
            && pixel(fr, 500, 400) == bgr(RED)
            && pixel(fr, 40, 240) == (0, 0, 0)
    })
    .expect("the menu is drawn above its window");
    // The menu has the keyboard while it is open.
    assert!(c.wait_until(T, |app| app.keyboard_focus == Some(menu)));
    // A click outside the client's windows (on a bar beside the scaled window) closes the
    // menu; the parent gets the keyboard back.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 40.0, y: 240.0 });
    for pressed in [true, false] {
        f.handle.send_input(InputEvent::PointerButton {
            button: 0x110,
            pressed,
        });
    }
    assert!(
        c.wait_until(T, |app| app.windows[menu].popup_done),
        "the menu was not dismissed"
    );
    let m = &c.app.windows[menu];
    m.popup.as_ref().unwrap().destroy();
    m.xdg.destroy();
    m.surface.destroy();
    assert!(c.wait_until(T, |app| app.keyboard_focus == Some(parent)));
    f.wait_frame(T, |fr| pixel(fr, 300, 250) == bgr(RED))
        .expect("the menu is gone from the output");
}

#[test]
fn dialogs_and_popups_stay_inside_the_output_when_the_mode_changes() {
    let f = Fixture::new(MODE);
    let mut c = WlClient::connect(&socket(&f));
    let parent = c.create_toplevel(RED, None);
    c.commit(parent);
    c.wait_mapped(parent);
    let dialog = c.create_toplevel(GREEN, Some((200, 100)));
    let parent_toplevel = c.app.windows[parent].toplevel.clone().unwrap();
    c.app.windows[dialog]
        .toplevel
        .as_ref()
        .unwrap()
        .set_parent(Some(&parent_toplevel));
    c.commit(dialog);
    c.wait_mapped(dialog);
    // Two popups of the parent near its right edge: one reactive (the compositor may move it
    // later), one not.
    let slide =
        xdg_positioner::ConstraintAdjustment::SlideX | xdg_positioner::ConstraintAdjustment::SlideY;
    let anchor = (MODE.width as i32 - 20, MODE.height as i32 - 20, 10, 10);
    let popup = c.create_popup_full(parent, BLUE, (100, 50), anchor, slide, None, true);
    c.wait_mapped(popup);
    assert_eq!(
        c.app.windows[popup].popup_geometry,
        Some((540, 430, 100, 50))
    );
    let anchor = (MODE.width as i32 - 20, 0, 10, 10);
    let fixed = c.create_popup(parent, BLUE, (100, 50), anchor, slide);
    c.wait_mapped(fixed);
    assert_eq!(
        c.app.windows[fixed].popup_geometry,
        Some((540, 10, 100, 50))
    );
    f.wait_frame(T, |fr| {
        pixel(fr, 639, 479) == bgr(BLUE) && pixel(fr, 639, 10) == bgr(BLUE)
    })
    .expect("both popups are drawn");

    let smaller = compositor::Mode {
        width: 400,
        height: 300,
        refresh_mhz: 60_000,
    };
    f.handle.set_mode(smaller);
    // The popup is moved inside the smaller output and told so.
    assert!(
        c.wait_until(T, |app| app.windows[popup].popup_geometry
            == Some((300, 250, 100, 50))),
        "popup at {:?}",
        c.app.windows[popup].popup_geometry
    );
    // The other one cannot move, so it is closed.
    assert!(c.wait_until(T, |app| app.windows[fixed].popup_done));
    let closed = &c.app.windows[fixed];
    closed.popup.as_ref().unwrap().destroy();
    closed.xdg.destroy();
    closed.surface.destroy();
    c.roundtrip();
    let mut seen = None;
    let frame = f
        .wait_frame(T, |fr| {
            seen = Some((
                (fr.width, fr.height),
                pixel(fr, 399, 299),
                pixel(fr, 200, 150),
            ));
            fr.width == 400 && pixel(fr, 399, 299) == bgr(BLUE) && pixel(fr, 200, 150) == bgr(GREEN)
        })
        .unwrap_or_else(|| {
            panic!(
                "the dialog is not centred or the popup not in the corner of the new output; \
                 last frame (size, corner BGR, middle BGR): {seen:?}"
            )
        });
    // The dialog is centred: 200 x 100 in the middle of 400 x 300.
    assert_eq!(pixel(&frame, 100, 100), bgr(GREEN));
    assert_eq!(pixel(&frame, 299, 199), bgr(GREEN));
    assert_eq!(pixel(&frame, 99, 99), bgr(RED));
    assert_eq!(
        pixel(&frame, 350, 50),
        bgr(RED),
        "the closed popup is still drawn"
    );
}
