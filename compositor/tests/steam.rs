//! Steam's window contract (gamescope's X properties) with punktfunk's own X11 client
//! (`x11_client`): Steam's UI (`STEAM_GAME=769`) as the base layer, a game above it, Steam's
//! choice of the window on screen (`GAMESCOPECTRL_BASELAYER_APPID`), overlays, and the focus
//! published on the root window. Needs Xwayland (`apt-get install xwayland`); without it the
//! tests are skipped with the reason.

mod common;
mod x11_client;

use std::time::Duration;

use common::{pixel, Fixture, MODE};
use compositor::{Frame, InputEvent};
use x11_client::{Bgr, Props, X11Client};
use x11rb::protocol::xproto::{AtomEnum, Window};
use x11rb::protocol::Event;

const STEAM: u32 = 769;
const GAME: u32 = 4242;
/// Steam's, the game's and the overlay's colours, as the frame's (B, G, R).
const STEAM_BLUE: Bgr = (200, 80, 20);
const GAME_RED: Bgr = (30, 40, 220);
const OVERLAY_GREEN: Bgr = (40, 210, 60);
const PLAIN_GREY: Bgr = (128, 128, 128);
const KEY_A: u32 = 30;
const T: Duration = Duration::from_secs(10);

fn fixture() -> Option<(Fixture, X11Client)> {
    if !common::have("Xwayland") {
        return None;
    }
    let f = Fixture::new(MODE);
    let Some(display) = f.handle.x11_display() else {
        common::skip("Xwayland did not start (see the log)");
        return None;
    };
    let client = X11Client::connect(&display);
    Some((f, client))
}

/// Whether the corners and the middle of the bottom edge show `colour` (the top left corner
/// may hold the cursor).
fn shows(frame: &Frame, colour: Bgr) -> bool {
    let (w, h) = (frame.width, frame.height);
    [(w - 1, 0), (0, h - 1), (w - 1, h - 1), (w / 2, h - 1)]
        .iter()
        .all(|&(x, y)| pixel(frame, x, y) == colour)
}

thread_local! {
    /// The newest frame this test thread has seen: the screen as it is until a new frame comes.
    static SCREEN: std::cell::RefCell<Option<Frame>> = const { std::cell::RefCell::new(None) };
}

fn expect_screen(f: &Fixture, colour: Bgr, what: &str) {
    let mut seen = |fr: &Frame| {
        SCREEN.with(|s| *s.borrow_mut() = Some(fr.clone()));
        shows(fr, colour)
    };
    // A change that ends where the screen already was (another window raised and lowered
    // again before the next frame tick) renders no new frame: the last one is the screen.
    if f.wait_frame(Duration::from_millis(300), &mut seen)
        .is_some()
        || SCREEN.with(|s| s.borrow().as_ref().is_some_and(|fr| shows(fr, colour)))
    {
        return;
    }
    if f.wait_frame(T, seen).is_none() {
        let last = f.wait_frame(Duration::from_secs(1), |_| true);
        let seen = last.map(|fr| pixel(&fr, fr.width - 1, fr.height - 1));
        panic!("the screen never showed {what} {colour:?}; bottom right is {seen:?}");
    }
}

fn tap(f: &Fixture, code: u32) {
    for pressed in [true, false] {
        f.handle.send_input(InputEvent::Key { code, pressed });
    }
}

/// Waits for `window` to get the X input focus.
fn expect_focus_in(x: &X11Client, window: Window) {
    x.expect_event(
        &format!("FocusIn on {window:#x}"),
        |e| matches!(e, Event::FocusIn(e) if e.event == window),
        |_| false,
    );
}

/// Types `a` and checks that `window`, and no other window, gets it as keysym `a`.
fn expect_key_a_in(f: &Fixture, x: &X11Client, window: Window) {
    x.drain();
    tap(f, KEY_A);
    let event = x.expect_event(
        &format!("KeyPress on {window:#x}"),
        |e| matches!(e, Event::KeyPress(k) if k.event == window),
        |e| matches!(e, Event::KeyPress(_)),
    );
    let Event::KeyPress(key) = event else {
        unreachable!()
    };
    assert_eq!(
        x.keysym(key.detail),
        0x61,
        "keysym of keycode {}",
        key.detail
    );
}

/// Moves the pointer to (`px`, `py`) and checks that `window` reports the motion there.
fn expect_motion_in(f: &Fixture, x: &X11Client, window: Window, px: i16, py: i16) {
    x.expect_on_top_at(window, px, py);
    x.drain();
    f.handle.send_input(InputEvent::PointerMotionAbsolute {
        x: f64::from(px),
        y: f64::from(py),
    });
    // Motion at this position in another window fails; one at an earlier position (Xwayland
    // may still be delivering the last step's) does not.
    x.expect_event(
        &format!("MotionNotify at ({px},{py}) on {window:#x}"),
        |e| matches!(e, Event::MotionNotify(m) if m.event == window && (m.event_x, m.event_y) == (px, py)),
        |e| matches!(e, Event::MotionNotify(m) if m.event != window && (m.root_x, m.root_y) == (px, py)),
    );
}

/// Steam's UI, then a game above it; both on screen in turn.
fn start_steam_and_game(f: &Fixture, x: &X11Client) -> (Window, Window) {
    let steam = x.map_window(Props::app(STEAM), STEAM_BLUE);
    expect_screen(f, STEAM_BLUE, "Steam's UI");
    expect_focus_in(x, steam);
    let game = x.map_window(Props::app(GAME), GAME_RED);
    expect_screen(f, GAME_RED, "the game");
    expect_focus_in(x, game);
    (steam, game)
}

#[test]
fn the_game_gets_screen_and_input_and_steam_returns_when_it_exits() {
    let Some((f, x)) = fixture() else { return };
    let pid = std::process::id();
    let steam = x.map_window(Props::app(STEAM), STEAM_BLUE);
    expect_screen(&f, STEAM_BLUE, "Steam's UI");
    expect_focus_in(&x, steam);
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &[steam, STEAM, pid]);
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[steam]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[STEAM]);
    expect_key_a_in(&f, &x, steam);

    let game = x.map_window(Props::app(GAME), GAME_RED);
    expect_screen(&f, GAME_RED, "the game");
    expect_focus_in(&x, game);
    expect_key_a_in(&f, &x, game);
    expect_motion_in(&f, &x, game, 321, 123);
    // Newest first, windows as (window, app id, pid).
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[GAME, STEAM]);
    x.expect_root(
        "GAMESCOPE_FOCUSABLE_WINDOWS",
        &[game, GAME, pid, steam, STEAM, pid],
    );
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[game]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[GAME]);
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[GAME]);

    // The game exits: Steam is back on screen with the input.
    x.destroy(game);
    expect_screen(&f, STEAM_BLUE, "Steam's UI after the game");
    expect_focus_in(&x, steam);
    expect_key_a_in(&f, &x, steam);
    expect_motion_in(&f, &x, steam, 100, 200);
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &[steam, STEAM, pid]);
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[steam]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[STEAM]);
}

#[test]
fn baselayer_appid_chooses_the_window_on_screen() {
    let Some((f, x)) = fixture() else { return };
    let (steam, game) = start_steam_and_game(&f, &x);

    // Steam asks for itself over the running game.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[STEAM, GAME]);
    expect_screen(&f, STEAM_BLUE, "Steam's UI over the game");
    expect_focus_in(&x, steam);
    expect_key_a_in(&f, &x, steam);
    expect_motion_in(&f, &x, steam, 50, 60);
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[steam]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[STEAM]);
    // The game is still there to go back to.
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[GAME, STEAM]);

    // And back to the game.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[GAME, STEAM]);
    expect_screen(&f, GAME_RED, "the game again");
    expect_focus_in(&x, game);
    expect_key_a_in(&f, &x, game);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[GAME]);

    // An app without a window is skipped.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[5, STEAM]);
    expect_screen(
        &f,
        STEAM_BLUE,
        "Steam's UI, the first listed app with a window",
    );
    expect_focus_in(&x, steam);

    // A malformed list is no list: the newest window.
    x.set_raw(
        x.root,
        "GAMESCOPECTRL_BASELAYER_APPID",
        AtomEnum::STRING,
        8,
        b"769",
    );
    expect_screen(&f, GAME_RED, "the game once the control is malformed");
    expect_focus_in(&x, game);

    // The control names a window.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_WINDOW", &[steam]);
    expect_screen(&f, STEAM_BLUE, "the window named by BASELAYER_WINDOW");
    x.delete_property(x.root, "GAMESCOPECTRL_BASELAYER_WINDOW");
    expect_screen(&f, GAME_RED, "the game once the control is gone");
}

#[test]
fn an_overlay_is_drawn_above_the_game_without_taking_its_input() {
    let Some((f, x)) = fixture() else { return };
    let pid = std::process::id();
    let (steam, game) = start_steam_and_game(&f, &x);

    let overlay = x.map_window(
        Props {
            app_id: Some(STEAM),
            overlay: Some(1),
            input_focus: None,
            argb: true,
            fixed_size: None,
        },
        OVERLAY_GREEN,
    );
    expect_screen(&f, OVERLAY_GREEN, "the overlay above the game");
    // Steam hides its overlay with _NET_WM_WINDOW_OPACITY 0: the game shows through.
    x.set_cardinals(overlay, "_NET_WM_WINDOW_OPACITY", &[0]);
    expect_screen(&f, GAME_RED, "the game under an invisible overlay");
    x.set_cardinals(overlay, "_NET_WM_WINDOW_OPACITY", &[u32::MAX]);
    expect_screen(&f, OVERLAY_GREEN, "the opaque overlay");
    // Keys and the pointer still go to the game.
    expect_key_a_in(&f, &x, game);
    expect_motion_in(&f, &x, game, 200, 100);
    // The overlay is not a window to focus.
    x.expect_root(
        "GAMESCOPE_FOCUSABLE_WINDOWS",
        &[game, GAME, pid, steam, STEAM, pid],
    );
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[game]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[GAME]);

    // Steam wants the input for its overlay (the Steam button's menu).
    x.set_cardinals(overlay, "STEAM_INPUT_FOCUS", &[1]);
    expect_focus_in(&x, overlay);
    expect_key_a_in(&f, &x, overlay);
    expect_motion_in(&f, &x, overlay, 210, 110);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[GAME]);
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[game]);
    expect_screen(&f, OVERLAY_GREEN, "the overlay with input");

    // The pointer only: the keyboard goes back to the game.
    x.set_cardinals(overlay, "STEAM_INPUT_FOCUS", &[2]);
    expect_focus_in(&x, game);
    expect_key_a_in(&f, &x, game);
    expect_motion_in(&f, &x, overlay, 220, 120);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[GAME]);

    // And gives it back.
    x.set_cardinals(overlay, "STEAM_INPUT_FOCUS", &[0]);
    // Published once the compositor handled the change (it comes on another connection).
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[GAME]);
    expect_motion_in(&f, &x, game, 230, 130);
    expect_key_a_in(&f, &x, game);

    // The overlay goes: the game shows again.
    x.destroy(overlay);
    expect_screen(&f, GAME_RED, "the game without the overlay");
    expect_key_a_in(&f, &x, game);
}

#[test]
fn windows_without_a_valid_steam_game_are_plain_kiosk_windows() {
    let Some((f, x)) = fixture() else { return };
    let pid = std::process::id();
    let steam = x.map_window(Props::app(STEAM), STEAM_BLUE);
    expect_screen(&f, STEAM_BLUE, "Steam's UI");
    // A plain window mapped later is on top: the kiosk rule.
    let plain = x.map_window(Props::default(), PLAIN_GREY);
    expect_screen(&f, PLAIN_GREY, "the plain window");
    expect_focus_in(&x, plain);
    expect_key_a_in(&f, &x, plain);
    // Listed with app id 0, not among the apps.
    x.expect_root(
        "GAMESCOPE_FOCUSABLE_WINDOWS",
        &[plain, 0, pid, steam, STEAM, pid],
    );
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[STEAM]);
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[plain]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[]);

    // Given an app id later, it counts.
    let listed = |app: u32| [plain, app, pid, steam, STEAM, pid];
    x.set_cardinals(plain, "STEAM_GAME", &[GAME]);
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &listed(GAME));
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[GAME, STEAM]);
    // Replaced by a string, or by 16-bit values, it counts as none again.
    x.set_raw(plain, "STEAM_GAME", AtomEnum::STRING, 8, b"4242");
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &listed(0));
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[STEAM]);
    x.set_cardinals(plain, "STEAM_GAME", &[GAME]);
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &listed(GAME));
    x.set_raw(
        plain,
        "STEAM_GAME",
        AtomEnum::CARDINAL,
        16,
        &(GAME as u16).to_ne_bytes(),
    );
    x.expect_root("GAMESCOPE_FOCUSABLE_WINDOWS", &listed(0));
    // The compositor still serves it.
    expect_key_a_in(&f, &x, plain);
}

/// `/bin/sh` copied as `reaper` into the fixture's directory: Steam's launcher, as far as the
/// process table shows.
fn fake_reaper(f: &Fixture) -> String {
    let reaper = f._dir.0.join("reaper");
    std::fs::copy("/bin/sh", &reaper).expect("copy /bin/sh");
    reaper.to_string_lossy().into_owned()
}

#[test]
fn windows_get_the_app_id_steam_launched_their_process_as() {
    let Some((f, x)) = fixture() else { return };
    if !common::have("xev") || !common::have("wev") {
        return;
    }
    const LAUNCHED: u32 = 4343;
    const WAYLAND_LAUNCHED: u32 = 4444;
    let steam = x.map_window(Props::app(STEAM), STEAM_BLUE);
    expect_screen(&f, STEAM_BLUE, "Steam's UI");
    let reaper = fake_reaper(&f);
    // `reaper SteamLaunch AppId=N -- game`, the game a child of the reaper.
    let launch = |app: u32, game: &str| {
        vec![
            "-c".to_string(),
            format!("{game}; :"),
            "SteamLaunch".into(),
            format!("AppId={app}"),
            "--".into(),
            game.into(),
        ]
    };
    let args = launch(LAUNCHED, "xev");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let xev = f.spawn_x11_client(&reaper, &args);
    // xev's window is white.
    expect_screen(&f, (255, 255, 255), "xev");
    x.expect_root("GAMESCOPE_FOCUSABLE_APPS", &[LAUNCHED, STEAM]);
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[LAUNCHED]);
    let windows = x.root_cardinals("GAMESCOPE_FOCUSABLE_WINDOWS").unwrap();
    assert_eq!(windows.len(), 6, "{windows:?}");
    assert_eq!(windows[1], LAUNCHED, "{windows:?}");
    assert_ne!(windows[2], std::process::id(), "xev's pid: {windows:?}");
    assert_eq!(windows[3..], [steam, STEAM, std::process::id()]);

    // Steam picks the window by that id.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[STEAM, LAUNCHED]);
    expect_screen(&f, STEAM_BLUE, "Steam's UI over xev");
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[LAUNCHED, STEAM]);
    expect_screen(&f, (255, 255, 255), "xev again");

    // A Wayland game has no X properties at all: only its launch tells its app id.
    x.delete_property(x.root, "GAMESCOPECTRL_BASELAYER_APPID");
    let args = launch(WAYLAND_LAUNCHED, "wev");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let wev = f.spawn_client(&reaper, &args);
    wev.wait_line("wl_keyboard] enter", T)
        .unwrap_or_else(|| panic!("wev got no keyboard focus:\n{}", wev.output()));
    x.expect_root(
        "GAMESCOPE_FOCUSABLE_APPS",
        &[WAYLAND_LAUNCHED, LAUNCHED, STEAM],
    );
    x.expect_root("GAMESCOPE_FOCUSED_APP", &[WAYLAND_LAUNCHED]);
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[WAYLAND_LAUNCHED]);
    // Not an X11 window: none on screen.
    x.expect_root("GAMESCOPE_FOCUSED_WINDOW", &[]);
    // Steam switches between the two games by app id.
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[LAUNCHED]);
    expect_screen(&f, (255, 255, 255), "xev over the Wayland game");
    wev.wait_line("wl_keyboard] leave", T)
        .unwrap_or_else(|| panic!("wev kept the keyboard:\n{}", wev.output()));
    let skip = wev.line_count();
    x.set_cardinals(x.root, "GAMESCOPECTRL_BASELAYER_APPID", &[WAYLAND_LAUNCHED]);
    wev.wait_line_after(skip, "wl_keyboard] enter", T)
        .unwrap_or_else(|| panic!("wev did not get the keyboard back:\n{}", wev.output()));
    x.expect_root("GAMESCOPE_FOCUSED_APP_GFX", &[WAYLAND_LAUNCHED]);
    drop(xev);
}
