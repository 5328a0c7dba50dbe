//! Windows that keep their own size are scaled to the output: the geometry each scaling mode
//! promises, read from pixels of a window with a known frame, and pointer positions mapped back
//! into the window, on Wayland and on X11.

mod common;
mod x11_client;

use std::time::Duration;

use common::wl::WlClient;
use common::{pixel, Fixture};
use compositor::{CompositorOptions, Frame, InputEvent, Mode, ScaleFilter, Scaling};
use wayland_protocols::xdg::shell::client::xdg_positioner;
use x11_client::{Props, X11Client};
use x11rb::protocol::Event;

const T: Duration = Duration::from_secs(10);
const MODE: Mode = Mode {
    width: 1280,
    height: 720,
    refresh_mhz: 60_000,
};
/// The window: 400 x 300, green inside a 10-pixel red frame.
const SIZE: (i32, i32) = (400, 300);
const BORDER: i32 = 10;
const GREEN: u32 = 0xff00_c000;
const RED: u32 = 0xffe0_0000;
const BLUE: u32 = 0xff00_00e0;
const BTN_LEFT: u32 = 0x110;
const FULLSCREEN: wayland_protocols::xdg::shell::client::xdg_toplevel::State =
    wayland_protocols::xdg::shell::client::xdg_toplevel::State::Fullscreen;

fn bgr(colour: u32) -> (u8, u8, u8) {
    (colour as u8, (colour >> 8) as u8, (colour >> 16) as u8)
}

const BLACK: (u8, u8, u8) = (0, 0, 0);

/// A pixel of the output and the colour it should have, as (B, G, R).
type Expected = ((u32, u32), (u8, u8, u8));

fn fixture(scaling: Scaling) -> Fixture {
    Fixture::with_options(CompositorOptions {
        scaling,
        // Sharp edges, so that pixels next to an edge have one colour or the other.
        scale_filter: ScaleFilter::Nearest,
        ..common::options(MODE)
    })
}

fn socket(f: &Fixture) -> std::path::PathBuf {
    f.handle.runtime_dir().join(f.handle.socket_name())
}

/// A window that draws itself at [`SIZE`] with its frame; `resizable: false` says so with equal
/// minimum and maximum sizes, as SDL does.
fn fixed_window(c: &mut WlClient, resizable: bool) -> usize {
    let window = c.create_toplevel(GREEN, Some(SIZE));
    c.app.windows[window].border = Some((RED, BORDER));
    if !resizable {
        let toplevel = c.app.windows[window].toplevel.as_ref().unwrap();
        toplevel.set_min_size(SIZE.0, SIZE.1);
        toplevel.set_max_size(SIZE.0, SIZE.1);
    }
    c.commit(window);
    c.wait_mapped(window);
    window
}

/// Waits for a frame in which every point has its colour; panics with the colours seen.
fn expect_pixels(f: &Fixture, what: &str, points: &[Expected]) -> Frame {
    let mut last = None;
    let matches = |fr: &Frame| {
        last = Some(fr.clone());
        points.iter().all(|&((x, y), c)| pixel(fr, x, y) == c)
    };
    if let Some(frame) = f.wait_frame(T, matches) {
        return frame;
    }
    let seen: Vec<_> = points
        .iter()
        .map(|&((x, y), want)| {
            let got = last.as_ref().map(|fr| pixel(fr, x, y));
            format!("({x}, {y}): want {want:?}, got {got:?}")
        })
        .collect();
    panic!("{what}:\n{}", seen.join("\n"));
}

#[test]
fn a_window_that_cannot_be_resized_keeps_its_size_and_is_fitted() {
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, false);
    // Not asked to take the output's size, nor told it is fullscreen.
    let w = &c.app.windows[window];
    assert!(
        w.configured_size.is_none_or(|(w, h)| (w, h) == (0, 0)),
        "configured to {:?}",
        w.configured_size
    );
    assert!(!w.states.contains(&FULLSCREEN));
    // 400 x 300 fitted to 1280 x 720: 960 x 720 at x = 160, scale 2.4 (the frame 24 pixels).
    let (red, green) = (bgr(RED), bgr(GREEN));
    expect_pixels(
        &f,
        "fitted: black bars left and right, the frame scaled by 2.4",
        &[
            ((158, 360), BLACK),
            ((162, 360), red),
            ((182, 360), red),
            ((186, 360), green),
            ((640, 2), red),
            ((640, 22), red),
            ((640, 26), green),
            ((640, 717), red),
            ((1116, 360), red),
            ((1121, 360), BLACK),
            ((1279, 719), BLACK),
        ],
    );
    // A pointer position on the output arrives where the window drew what is there.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 640.0, y: 360.0 });
    assert!(
        c.wait_until(T, |app| app.pointer_position.is_some_and(|(x, y)| {
            (x - 200.0).abs() < 0.01 && (y - 150.0).abs() < 0.01
        }))
    );
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 400.0, y: 120.0 });
    assert!(
        c.wait_until(T, |app| app.pointer_position.is_some_and(|(x, y)| {
            (x - 100.0).abs() < 0.01 && (y - 50.0).abs() < 0.01
        }))
    );
    assert_eq!(c.app.pointer_focus, Some(window));
    // A drag keeps mapping positions through the scale.
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: true,
    });
    f.handle
        .send_input(InputEvent::PointerMotionRelative { dx: 24.0, dy: 12.0 });
    assert!(
        c.wait_until(T, |app| app.pointer_position.is_some_and(|(x, y)| {
            (x - 110.0).abs() < 0.01 && (y - 55.0).abs() < 0.01
        }))
    );
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: false,
    });
    // The bars are outside the window.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 80.0, y: 360.0 });
    assert!(c.wait_until(T, |app| app.pointer_focus.is_none()));
}

#[test]
fn a_wayland_game_that_stretches_a_lower_mode_with_a_viewport_is_fitted() {
    // As SDL2 does for fullscreen at 640x480: a buffer of the mode's size, stretched to the
    // whole window by wp_viewporter. The picture keeps its shape: fitted, not stretched.
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = c.create_toplevel(GREEN, Some(SIZE));
    c.app.windows[window].border = Some((RED, BORDER));
    c.stretch_with_viewport(window);
    c.commit(window);
    c.wait_mapped(window);
    let (red, green) = (bgr(RED), bgr(GREEN));
    expect_pixels(
        &f,
        "fitted: the 400 x 300 picture at 960 x 720 in the middle, not stretched to 1280 x 720",
        &[
            ((158, 360), BLACK),
            ((162, 360), red),
            ((186, 360), green),
            ((640, 2), red),
            ((640, 26), green),
            ((1116, 360), red),
            ((1121, 360), BLACK),
        ],
    );
    // The window was given the output's size, which the viewport stretched the picture to.
    assert_eq!(c.app.windows[window].configured_size, Some((1280, 720)));

    // Pointer positions arrive in the window's own coordinates (1280 x 720, which the client
    // maps to its 400 x 300): the output's x = 400 is a quarter into the picture.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 400.0, y: 120.0 });
    assert!(
        c.wait_until(T, |app| app.pointer_position.is_some_and(|(x, y)| {
            (x - 320.0).abs() < 0.01 && (y - 120.0).abs() < 0.01
        })),
        "{:?}",
        c.app.pointer_position
    );
}

#[test]
fn a_games_own_cursor_is_scaled_with_its_window() {
    // A window at the output's size: the cursor at its own 10 x 10.
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = c.create_toplevel(GREEN, None);
    c.commit(window);
    c.wait_mapped(window);
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 640.0, y: 360.0 });
    assert!(c.wait_until(T, |app| app.pointer_focus == Some(window)));
    c.set_cursor(BLUE, 10, (5, 5));
    let blue = bgr(BLUE);
    expect_pixels(
        &f,
        "a 10 x 10 cursor with its hotspot at the pointer",
        &[
            ((635, 355), blue),
            ((644, 364), blue),
            ((633, 353), bgr(GREEN)),
            ((646, 366), bgr(GREEN)),
        ],
    );
    drop(c);
    drop(f);

    // A 400 x 300 window fitted at scale 2.4: the cursor 24 x 24, hotspot 12 pixels in.
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, false);
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 640.0, y: 360.0 });
    assert!(c.wait_until(T, |app| app.pointer_focus == Some(window)));
    c.set_cursor(BLUE, 10, (5, 5));
    expect_pixels(
        &f,
        "the cursor scaled by 2.4 with the window",
        &[
            ((629, 349), blue),
            ((650, 370), blue),
            ((626, 346), bgr(GREEN)),
            ((653, 373), bgr(GREEN)),
        ],
    );
}

#[test]
fn touch_and_the_pen_on_a_fitted_window_land_where_it_drew() {
    use common::tablet::ToolEvent;
    use compositor::TabletTool;
    use wayland_protocols::wp::tablet::zv2::client::zwp_tablet_tool_v2::Type;

    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    c.bind_tablet_seat();
    let pen = c.tablet_tool(Type::Pen).expect("a pen");
    let window = fixed_window(&mut c, false);
    expect_pixels(
        &f,
        "fitted at x = 160, scale 2.4",
        &[
            ((158, 360), BLACK),
            ((162, 360), bgr(RED)),
            ((186, 360), bgr(GREEN)),
        ],
    );

    // A finger at (400, 120) of the stream touches the window at (100, 50), as the pointer does.
    f.handle.send_input(InputEvent::TouchDown {
        id: 1,
        x: 400.0,
        y: 120.0,
    });
    assert!(
        c.wait_until(T, |app| !app.tablet.touch_downs.is_empty()),
        "no touch arrived"
    );
    let (x, y) = c.app.tablet.touch_downs[0];
    assert!(
        (x - 100.0).abs() < 0.01 && (y - 50.0).abs() < 0.01,
        "touch at ({x}, {y})"
    );
    f.handle.send_input(InputEvent::TouchUp { id: 1 });

    // The pen over the middle of the stream is over the middle of the window.
    f.handle.send_input(InputEvent::TabletProximityIn {
        tool: TabletTool::Pen,
        x: 640.0,
        y: 360.0,
    });
    let arrived = c.wait_until(T, |app| {
        app.tablet
            .events
            .iter()
            .any(|e| matches!(e, ToolEvent::Motion { .. }))
    });
    let events: Vec<_> = c
        .app
        .tablet
        .events
        .iter()
        .filter(|e| !matches!(e, ToolEvent::Frame { .. }))
        .cloned()
        .collect();
    assert!(arrived, "{events:?}");
    assert_eq!(
        events[..2],
        [
            ToolEvent::ProximityIn {
                tool: pen,
                tablet: 0,
                window: Some(window)
            },
            ToolEvent::Motion {
                tool: pen,
                x: 200.0,
                y: 150.0
            },
        ]
    );
}

#[test]
fn a_window_that_draws_at_its_own_size_is_fitted_and_hides_the_windows_below() {
    let f = fixture(Scaling::Fit);
    let mut other = WlClient::connect(&socket(&f));
    let below = other.create_toplevel(BLUE, None);
    other.commit(below);
    other.wait_mapped(below);
    expect_pixels(
        &f,
        "the window below fills the output",
        &[((80, 360), bgr(BLUE))],
    );
    // Asked to fill the output, this one keeps drawing at 400 x 300.
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, true);
    // Once it drew at its own size, the output's is no longer imposed on it.
    let w = &c.app.windows[window];
    assert!(
        w.configured_size.is_none_or(|size| size == (0, 0)),
        "configured to {:?}",
        w.configured_size
    );
    assert!(!w.states.contains(&FULLSCREEN));
    expect_pixels(
        &f,
        "fitted, with black bars instead of the window below",
        &[
            ((80, 360), BLACK),
            ((1200, 360), BLACK),
            ((170, 360), bgr(RED)),
            ((640, 360), bgr(GREEN)),
        ],
    );
    // A click in a bar reaches neither window.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 80.0, y: 360.0 });
    other.roundtrip();
    c.roundtrip();
    assert!(c.wait_until(T, |app| app.pointer_focus.is_none()));
    assert_eq!(other.app.pointer_focus, None);
}

#[test]
fn a_window_that_kept_its_size_gets_the_output_when_it_asks_for_fullscreen() {
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, true);
    assert!(c.wait_until(T, |app| app.windows[window]
        .configured_size
        .is_some_and(|size| size == (0, 0))));
    c.app.windows[window]
        .toplevel
        .as_ref()
        .unwrap()
        .set_fullscreen(None);
    let _ = c.conn.flush();
    let full = (MODE.width as i32, MODE.height as i32);
    assert!(
        c.wait_until(T, |app| {
            let w = &app.windows[window];
            w.configured_size == Some(full) && w.states.contains(&FULLSCREEN)
        }),
        "configured to {:?} {:?}",
        c.app.windows[window].configured_size,
        c.app.windows[window].states
    );
}

#[test]
fn a_window_that_asks_for_fullscreen_before_it_maps_is_configured_fullscreen_at_once() {
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = c.create_toplevel(GREEN, None);
    c.app.windows[window]
        .toplevel
        .as_ref()
        .unwrap()
        .set_fullscreen(None);
    c.commit(window);
    let full = (MODE.width as i32, MODE.height as i32);
    assert!(c.wait_until(T, |app| app.windows[window].configures > 0));
    let w = &c.app.windows[window];
    assert_eq!(w.configured_size, Some(full));
    assert!(
        w.states.contains(&FULLSCREEN),
        "first configure: {:?}",
        w.states
    );
}

#[test]
fn a_popup_of_a_scaled_window_is_kept_inside_what_the_output_shows() {
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, false);
    // 80 x 120 below (300, 250) would reach window row 371; the window (2.4 times, 720 rows
    // of output) shows rows 0..300, so the popup slides up to end at 300.
    let popup = c.create_popup(
        window,
        BLUE,
        (80, 120),
        (300, 250, 1, 1),
        xdg_positioner::ConstraintAdjustment::SlideY,
    );
    c.wait_mapped(popup);
    assert_eq!(
        c.app.windows[popup].popup_geometry,
        Some((301, 180, 80, 120))
    );
    // Drawn scaled with its window: window (301..381, 180..300) is output (882..1074, 432..720).
    expect_pixels(
        &f,
        "the popup scaled with its window",
        &[((886, 436), bgr(BLUE)), ((1070, 716), bgr(BLUE))],
    );
}

#[test]
fn a_drag_from_a_scaled_window_ending_on_its_dialog_gives_the_dialog_its_own_coordinates() {
    let f = fixture(Scaling::Fit);
    let mut c = WlClient::connect(&socket(&f));
    let window = fixed_window(&mut c, false);
    // A 200 x 100 dialog, unscaled in the middle of the output: (540, 310).
    let dialog = c.create_toplevel(BLUE, Some((200, 100)));
    let parent = c.app.windows[window].toplevel.clone().unwrap();
    c.app.windows[dialog]
        .toplevel
        .as_ref()
        .unwrap()
        .set_parent(Some(&parent));
    c.commit(dialog);
    c.wait_mapped(dialog);
    expect_pixels(&f, "the dialog", &[((545, 315), bgr(BLUE))]);
    // Pressed on the scaled window, moved over the dialog, released there.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 300.0, y: 600.0 });
    assert!(c.wait_until(T, |app| app.pointer_focus == Some(window)));
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: true,
    });
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 600.0, y: 350.0 });
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: false,
    });
    assert!(
        c.wait_until(T, |app| app.pointer_focus == Some(dialog)
            && app.pointer_position.is_some_and(|(x, y)| {
                (x - 60.0).abs() < 0.01 && (y - 40.0).abs() < 0.01
            })),
        "pointer on {:?} at {:?}",
        c.app.pointer_focus,
        c.app.pointer_position
    );
}

#[test]
fn stretch_fill_and_integer_scale_as_they_promise() {
    let (red, green) = (bgr(RED), bgr(GREEN));
    // Stretch: 3.2 across, 2.4 down; the frame 32 pixels at the sides, 24 at top and bottom.
    let stretch = [
        ((1, 360), red),
        ((30, 360), red),
        ((34, 360), green),
        ((1249, 360), red),
        ((1245, 360), green),
        ((640, 22), red),
        ((640, 26), green),
        ((640, 700), red),
    ];
    // Fill: 3.2 both ways, 1280 x 960 at y = -120: the top and bottom frame are cut off.
    let fill = [
        ((1, 360), red),
        ((30, 360), red),
        ((34, 360), green),
        ((640, 0), green),
        ((640, 719), green),
        ((1278, 360), red),
    ];
    // Integer: 2x (2.4x would fit), 800 x 600 at (240, 60); the frame 20 pixels.
    let integer = [
        ((238, 360), BLACK),
        ((241, 360), red),
        ((258, 360), red),
        ((262, 360), green),
        ((640, 58), BLACK),
        ((640, 61), red),
        ((640, 78), red),
        ((640, 82), green),
        ((1041, 360), BLACK),
        ((1038, 360), red),
        ((640, 661), BLACK),
    ];
    for (scaling, points) in [
        (Scaling::Stretch, &stretch[..]),
        (Scaling::Fill, &fill[..]),
        (Scaling::Integer, &integer[..]),
    ] {
        let f = fixture(scaling);
        let mut c = WlClient::connect(&socket(&f));
        fixed_window(&mut c, false);
        expect_pixels(&f, &format!("{scaling:?}"), points);
        // The middle of the output is the middle of the window in every mode.
        f.handle
            .send_input(InputEvent::PointerMotionAbsolute { x: 640.0, y: 360.0 });
        assert!(
            c.wait_until(T, |app| app.pointer_position.is_some_and(|(x, y)| {
                (x - 200.0).abs() < 0.01 && (y - 150.0).abs() < 0.01
            }))
        );
    }
}

/// A compositor scaling with `fit`, and an X11 client of its Xwayland.
fn x11_fixture() -> Option<(Fixture, X11Client)> {
    if !common::have("Xwayland") {
        return None;
    }
    let f = fixture(Scaling::Fit);
    let Some(display) = f.handle.x11_display() else {
        common::skip("Xwayland did not start (see the log)");
        return None;
    };
    let x = X11Client::connect(&display);
    Some((f, x))
}

/// Clicks at `at` on the output; where the X11 window got the button press.
fn x11_click(f: &Fixture, x: &X11Client, at: (f64, f64)) -> (i16, i16) {
    x.drain();
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: at.0, y: at.1 });
    for pressed in [true, false] {
        f.handle.send_input(InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed,
        });
    }
    let event = x.expect_event(
        "a button press",
        |e| matches!(e, Event::ButtonPress(_)),
        |_| false,
    );
    let Event::ButtonPress(press) = event else {
        unreachable!()
    };
    (press.event_x, press.event_y)
}

/// A game that sets a lower mode with XRandR: it sees its mode (its fullscreen window has the
/// mode's size), the stream shows it fitted to the output, and clicks land where it drew.
#[test]
fn an_x11_game_that_sets_a_lower_mode_is_fitted() {
    let Some((f, x)) = x11_fixture() else {
        return;
    };
    x.set_mode(800, 600);
    let colour = (30, 40, 220);
    let window = x.map_window(Props::default(), colour);
    // 800 x 600 fitted to 1280 x 720: 960 x 720 at x = 160.
    expect_pixels(
        &f,
        "the game's mode fitted with black bars",
        &[
            ((158, 360), BLACK),
            ((162, 360), colour),
            ((640, 1), colour),
            ((1117, 718), colour),
            ((1121, 360), BLACK),
        ],
    );
    assert_eq!(
        x.size(window),
        (800, 600),
        "the window does not have the mode's size"
    );
    // Its menu at (250, 200) of the X screen, 50 x 40, is scaled with it: 60 x 48 at
    // (460, 240), whatever Xwayland did to the window's own surface.
    let green = (40, 210, 60);
    x.map_menu(250, 200, 50, 40, green);
    expect_pixels(
        &f,
        "the menu scaled with the game",
        &[
            ((462, 242), green),
            ((517, 285), green),
            ((457, 260), colour),
            ((522, 260), colour),
            ((490, 290), colour),
        ],
    );
    assert_eq!(x11_click(&f, &x, (400.0, 120.0)), (200, 100));
}

#[test]
fn an_x11_game_that_sets_a_lower_mode_with_xf86vidmode_is_fitted() {
    let Some((f, x)) = x11_fixture() else {
        return;
    };
    x.set_vidmode(800, 600);
    let colour = (200, 60, 30);
    let window = x.map_window(Props::default(), colour);
    expect_pixels(
        &f,
        "the XF86VidMode mode fitted with black bars",
        &[
            ((158, 360), BLACK),
            ((162, 360), colour),
            ((640, 1), colour),
            ((1117, 718), colour),
            ((1121, 360), BLACK),
        ],
    );
    assert_eq!(x.size(window), (800, 600));
    assert_eq!(x11_click(&f, &x, (400.0, 120.0)), (200, 100));
}

#[test]
fn an_x11_window_that_cannot_be_resized_keeps_its_size_and_is_fitted() {
    let Some((f, x)) = x11_fixture() else {
        return;
    };
    let colour = (30, 40, 220);
    let window = x.map_window(
        Props {
            fixed_size: Some((400, 300)),
            ..Props::default()
        },
        colour,
    );
    // 400 x 300 fitted: 960 x 720 at x = 160.
    expect_pixels(
        &f,
        "the X11 window fitted with black bars",
        &[
            ((158, 360), BLACK),
            ((162, 360), colour),
            ((640, 1), colour),
            ((1117, 718), colour),
            ((1121, 360), BLACK),
        ],
    );
    assert_eq!(x.size(window), (400, 300), "the window was resized");
    // A menu at (250, 200) of the X screen, 50 x 40, is scaled with the game: 120 x 96 at
    // (760, 480).
    let green = (40, 210, 60);
    x.map_menu(250, 200, 50, 40, green);
    expect_pixels(
        &f,
        "the menu scaled with the window it belongs to",
        &[
            ((762, 482), green),
            ((877, 573), green),
            ((757, 520), colour),
            ((882, 520), colour),
            ((820, 578), colour),
        ],
    );
    // A click on the output lands where the window drew it.
    assert_eq!(x11_click(&f, &x, (400.0, 120.0)), (100, 50));
}
