//! Input injection and kiosk focus, checked through what wev reports it received.

mod common;

use std::time::Duration;

use common::{have, Client, Fixture, MODE};
use compositor::InputEvent;

const KEY_A: u32 = 30;
const KEY_LEFTSHIFT: u32 = 42;
const BTN_LEFT: u32 = 0x110;
const T: Duration = Duration::from_secs(5);

fn press(f: &Fixture, code: u32, pressed: bool) {
    f.handle.send_input(InputEvent::Key { code, pressed });
}

fn tap(f: &Fixture, code: u32) {
    press(f, code, true);
    press(f, code, false);
}

fn expect_line(client: &Client, skip: usize, needle: &str) -> String {
    client.wait_line_after(skip, needle, T).unwrap_or_else(|| {
        panic!(
            "{} never printed {needle:?}; output:\n{}",
            client.name,
            client.output()
        )
    })
}

fn start_wev(f: &Fixture) -> Client {
    let wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");
    wev
}

#[test]
fn keys_arrive_as_keysyms_with_modifiers() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let wev = start_wev(&f);

    tap(&f, KEY_A);
    expect_line(&wev, 0, "sym: a ");

    let skip = wev.line_count();
    press(&f, KEY_LEFTSHIFT, true);
    tap(&f, KEY_A);
    press(&f, KEY_LEFTSHIFT, false);
    expect_line(&wev, skip, "depressed: 00000001");
    expect_line(&wev, skip, "sym: A ");
    // After shift is released, the modifiers are cleared again and 'a' is lower case.
    let skip = wev.line_count();
    tap(&f, KEY_A);
    expect_line(&wev, skip, "sym: a ");
}

#[test]
fn pointer_motion_buttons_and_wheel() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let wev = start_wev(&f);

    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 50.0 });
    expect_line(&wev, 0, "x, y: 100.000000, 50.000000");

    f.handle.send_input(InputEvent::PointerMotionRelative {
        dx: 10.5,
        dy: -20.0,
    });
    expect_line(&wev, 0, "x, y: 110.500000, 30.000000");

    // Positions outside the output are clamped to its last pixel.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 5000.0, y: -3.0 });
    expect_line(&wev, 0, "x, y: 639.000000, 0.000000");

    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: true,
    });
    expect_line(&wev, 0, "button: 272 (left), state: 1 (pressed)");
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed: false,
    });
    expect_line(&wev, 0, "button: 272 (left), state: 0 (released)");

    // Windows convention: +120 is one detent away from the user (scroll up), which is
    // negative on Wayland's vertical axis.
    f.handle.send_input(InputEvent::PointerAxis {
        horizontal: false,
        value120: 120,
    });
    expect_line(&wev, 0, "axis: 0 (vertical), value: -15.000000");
    f.handle.send_input(InputEvent::PointerAxis {
        horizontal: true,
        value120: 120,
    });
    expect_line(&wev, 0, "axis: 1 (horizontal), value: 15.000000");
}

#[test]
fn kiosk_newest_window_has_focus_and_focus_returns() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let a = start_wev(&f);
    let mut b = start_wev(&f);
    // A lost the keyboard to B.
    expect_line(&a, 0, "wl_keyboard] leave");

    let a_before = a.line_count();
    tap(&f, KEY_A);
    expect_line(&b, 0, "sym: a ");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        a.wait_line_after(a_before, "sym: a", Duration::ZERO)
            .is_none(),
        "the lower window got the key"
    );

    // The pointer is on B too.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 20.0, y: 30.0 });
    expect_line(&b, 0, "x, y: 20.000000, 30.000000");

    let skip = a.line_count();
    b.kill();
    expect_line(&a, skip, "wl_keyboard] enter");
    tap(&f, KEY_A);
    expect_line(&a, skip, "sym: a ");
    expect_line(&a, skip, "wl_pointer] enter");
}
