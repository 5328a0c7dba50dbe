//! Text typed as keysyms (including characters the keymap lacks) and touch points, checked
//! through what wev reports it received.

mod common;

use std::time::Duration;

use common::{have, Client, Fixture, MODE};
use compositor::InputEvent;

const KEY_A: u32 = 30;
const T: Duration = Duration::from_secs(5);

fn expect_line(client: &Client, skip: usize, needle: &str) -> String {
    client.wait_line_after(skip, needle, T).unwrap_or_else(|| {
        panic!(
            "{} never printed {needle:?}; output:\n{}",
            client.name,
            client.output()
        )
    })
}

/// Keysym names of the key presses wev printed after line `skip`, in order.
fn pressed_syms(wev: &Client, skip: usize) -> Vec<String> {
    let lines = wev.lines.lock().unwrap();
    let mut syms = Vec::new();
    let mut pressed = false;
    for line in lines.iter().skip(skip) {
        if line.contains("wl_keyboard] key:") {
            pressed = line.contains("state: 1 (pressed)");
        } else if pressed && line.trim_start().starts_with("sym:") {
            let name = line.trim_start()["sym:".len()..].split_whitespace().next();
            syms.push(name.unwrap_or_default().to_string());
        }
    }
    syms
}

#[test]
fn text_outside_the_keymap_arrives_as_keysyms_and_the_keymap_comes_back() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");

    let skip = wev.line_count();
    f.handle.send_input(InputEvent::Text {
        text: "Grüße 日本".into(),
    });
    expect_line(&wev, skip, "utf8: '本'");
    for utf8 in ["'G'", "'r'", "'ü'", "'ß'", "'e'", "'日'"] {
        expect_line(&wev, skip, &format!("utf8: {utf8}"));
    }
    let syms = pressed_syms(&wev, skip);
    let typed: Vec<&str> = syms
        .iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("Shift"))
        .collect();
    assert_eq!(
        typed,
        [
            "G",
            "r",
            "udiaeresis",
            "ssharp",
            "e",
            "space",
            "U65E5",
            "U672C"
        ],
        "wev output:\n{}",
        wev.output()
    );

    // The original keymap is back: KEY_A is 'a' again, on a us keymap.
    let skip = wev.line_count();
    f.handle.send_input(InputEvent::Key {
        code: KEY_A,
        pressed: true,
    });
    f.handle.send_input(InputEvent::Key {
        code: KEY_A,
        pressed: false,
    });
    expect_line(&wev, skip, "sym: a ");
    assert_eq!(pressed_syms(&wev, skip), ["a"]);
}

#[test]
fn touch_points_arrive_at_surface_coordinates() {
    if !have("wev") {
        return;
    }
    let f = Fixture::new(MODE);
    let wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");

    f.handle.send_input(InputEvent::TouchDown {
        id: 3,
        x: 120.0,
        y: 80.0,
    });
    let down = expect_line(&wev, 0, "wl_touch] down");
    assert!(
        down.contains("id: 3; x, y: 120.000000, 80.000000"),
        "{down}"
    );

    f.handle.send_input(InputEvent::TouchMotion {
        id: 3,
        x: 130.5,
        y: 90.0,
    });
    let motion = expect_line(&wev, 0, "wl_touch] motion");
    assert!(
        motion.contains("id: 3; x, y: 130.500000, 90.000000"),
        "{motion}"
    );

    // A motion for a point that is not down is dropped.
    f.handle.send_input(InputEvent::TouchMotion {
        id: 9,
        x: 1.0,
        y: 1.0,
    });
    f.handle.send_input(InputEvent::TouchUp { id: 3 });
    let up = expect_line(&wev, 0, "wl_touch] up");
    assert!(up.contains("id: 3"), "{up}");
    assert!(
        !wev.output().contains("id: 9"),
        "unknown point was delivered:\n{}",
        wev.output()
    );

    f.handle.send_input(InputEvent::TouchDown {
        id: 4,
        x: 10.0,
        y: 10.0,
    });
    expect_line(&wev, 0, "id: 4; x, y: 10.000000, 10.000000");
    f.handle.send_input(InputEvent::TouchCancel);
    expect_line(&wev, 0, "wl_touch] cancel");
}
