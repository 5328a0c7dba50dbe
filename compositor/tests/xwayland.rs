//! X11 apps through Xwayland: real xterm, xeyes and xev from Debian (`apt-get install xwayland
//! xterm x11-apps x11-utils`), run with `DISPLAY` from the handle and no `WAYLAND_DISPLAY`.
//! A missing program skips the test with the reason.

mod common;

use std::time::Duration;

use common::{non_black_pixels, pixel, Client, Fixture, MODE};
use compositor::{Frame, InputEvent, Mode};

const KEY_A: u32 = 30;
const KEY_B: u32 = 48;
const KEY_LEFTCTRL: u32 = 29;
const BTN_LEFT: u32 = 0x110;
const T: Duration = Duration::from_secs(10);
/// xterm's background here, as the frame's (B, G, R).
const BLUE: (u8, u8, u8) = (255, 0, 0);
const BLACK: (u8, u8, u8) = (0, 0, 0);

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Whether every program is installed; prints why the caller skips if not.
fn have_all(programs: &[&str]) -> bool {
    for program in programs {
        if !on_path(program) {
            common::skip(&format!(
                "`{program}` is not installed (apt-get install xwayland xterm x11-apps x11-utils wev)"
            ));
            return false;
        }
    }
    true
}

/// A compositor with Xwayland, or `None` (with the reason printed) without one.
fn fixture() -> Option<Fixture> {
    if !have_all(&["Xwayland"]) {
        return None;
    }
    let f = Fixture::new(MODE);
    match f.handle.x11_display() {
        Some(_) => Some(f),
        None => {
            common::skip("Xwayland did not start (see the log)");
            None
        }
    }
}

/// Starts an X client on the compositor's Xwayland, capturing its output lines.
fn spawn_x(f: &Fixture, program: &str, args: &[&str]) -> Client {
    f.spawn_x11_client(program, args)
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

/// The next line after `skip` that contains `first` and, in the same or a following line of
/// that event, `then` (xev prints one event over several lines).
fn expect_event(client: &Client, skip: usize, first: &str, then: &str) {
    let deadline = std::time::Instant::now() + T;
    loop {
        {
            let lines = client.lines.lock().unwrap();
            let mut in_event = false;
            for line in lines.iter().skip(skip) {
                if line.contains(first) {
                    in_event = true;
                } else if line.is_empty() {
                    in_event = false;
                }
                if in_event && line.contains(then) {
                    return;
                }
            }
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{} never reported {first:?} with {then:?}; output:\n{}",
                client.name,
                client.output()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tap(f: &Fixture, code: u32) {
    f.handle.send_input(InputEvent::Key {
        code,
        pressed: true,
    });
    f.handle.send_input(InputEvent::Key {
        code,
        pressed: false,
    });
}

fn click(f: &Fixture, pressed: bool) {
    f.handle.send_input(InputEvent::PointerButton {
        button: BTN_LEFT,
        pressed,
    });
}

/// Whether the output's corners show `colour`; not the top left corner, where the cursor
/// starts.
fn corners_are(frame: &Frame, colour: (u8, u8, u8)) -> bool {
    let (w, h) = (frame.width, frame.height);
    [(w - 1, 0), (0, h - 1), (w - 1, h - 1)]
        .iter()
        .all(|&(x, y)| pixel(frame, x, y) == colour)
}

fn start_xterm(f: &Fixture) -> (Client, Frame) {
    let xterm = spawn_x(f, "xterm", &["-bg", "blue", "-fg", "white", "+sb"]);
    let frame = f
        .wait_frame(T, |fr| corners_are(fr, BLUE))
        .unwrap_or_else(|| {
            panic!(
                "no frame with xterm's blue background in every corner; xterm said:\n{}",
                xterm.output()
            )
        });
    (xterm, frame)
}

#[test]
fn xterm_fills_the_output_and_draws_what_is_typed() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xterm"]) {
        return;
    }
    let (_xterm, frame) = start_xterm(&f);
    assert_eq!((frame.width, frame.height), (MODE.width, MODE.height));
    // Background everywhere but where the prompt and the cursor are.
    let blue = (0..frame.height)
        .step_by(7)
        .flat_map(|y| (0..frame.width).step_by(7).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(&frame, x, y) == BLUE)
        .count();
    let sampled = frame.height.div_ceil(7) * frame.width.div_ceil(7);
    assert!(
        blue as u32 > sampled * 9 / 10,
        "xterm covers only {blue} of {sampled} sampled pixels"
    );

    // Typing shows up: the frames change.
    let before = frame.data.as_bytes().unwrap().to_vec();
    for _ in 0..5 {
        tap(&f, KEY_A);
    }
    f.wait_frame(T, |fr| {
        corners_are(fr, BLUE) && fr.data.as_bytes().unwrap() != before.as_slice()
    })
    .expect("xterm draws the typed text");
}

/// How many pixels of `frame` are not `colour`.
fn other_than(frame: &Frame, colour: (u8, u8, u8)) -> usize {
    let total = (frame.width * frame.height) as usize;
    total - count_of(frame, colour).0
}

/// Pixels of `frame` that are `colour`, and their bounding box.
fn count_of(frame: &Frame, colour: (u8, u8, u8)) -> (usize, Option<(u32, u32, u32, u32)>) {
    let mut n = 0;
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for y in 0..frame.height {
        for x in 0..frame.width {
            if pixel(frame, x, y) == colour {
                n += 1;
                bbox = Some(match bbox {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
    }
    (n, bbox)
}

/// Writes `frame` as a PPM image when `PUNKTFUNK_TEST_DUMP` names a directory.
fn dump(frame: &Frame, name: &str) {
    let Some(dir) = std::env::var_os("PUNKTFUNK_TEST_DUMP") else {
        return;
    };
    let mut out = format!("P6\n{} {}\n255\n", frame.width, frame.height).into_bytes();
    for y in 0..frame.height {
        for x in 0..frame.width {
            let (b, g, r) = pixel(frame, x, y);
            out.extend([r, g, b]);
        }
    }
    let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.ppm")), out);
}

#[test]
fn xterm_menu_is_an_override_redirect_window_above_it() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xterm"]) {
        return;
    }
    let (xterm, frame) = start_xterm(&f);
    let text = other_than(&frame, BLUE);
    // Ctrl + left button opens xterm's main menu: an override-redirect window near the pointer.
    // It has xterm's colours and a black border, the only black on the output.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 300.0, y: 200.0 });
    std::thread::sleep(Duration::from_millis(200));
    f.handle.send_input(InputEvent::Key {
        code: KEY_LEFTCTRL,
        pressed: true,
    });
    click(&f, true);
    let menu = f.wait_frame(T, |fr| {
        // Still fullscreen underneath, and the menu's border.
        corners_are(fr, BLUE) && count_of(fr, BLACK).0 > 600
    });
    let Some(menu) = menu else {
        panic!(
            "xterm's menu did not show up; xterm said:\n{}",
            xterm.output()
        );
    };
    dump(&menu, "xterm-menu");
    let (_, Some((x0, y0, x1, y1))) = count_of(&menu, BLACK) else {
        unreachable!("the menu has a border")
    };
    // At its own position around the pointer, not at the origin like the managed window.
    assert!(
        x0 > 20 && y0 > 5 && (x0..=x1).contains(&300) && (y0..=y1).contains(&200),
        "the menu is at ({x0},{y0})-({x1},{y1})"
    );
    // Let go outside the menu, so that no entry is chosen.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 620.0, y: 20.0 });
    std::thread::sleep(Duration::from_millis(200));
    click(&f, false);
    f.handle.send_input(InputEvent::Key {
        code: KEY_LEFTCTRL,
        pressed: false,
    });
    f.wait_frame(T, |fr| count_of(fr, BLACK).0 < 300)
        .expect("the menu goes away");
    // xterm still has the keyboard: the menu never took it.
    tap(&f, KEY_A);
    f.wait_frame(T, |fr| other_than(fr, BLUE) > text)
        .expect("xterm still gets the keys after its menu");
}

#[test]
fn xeyes_draws_and_follows_the_pointer() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xeyes"]) {
        return;
    }
    let xeyes = spawn_x(&f, "xeyes", &[]);
    let first = f
        .wait_frame(T, |fr| {
            non_black_pixels(fr, 0, 0, fr.width, fr.height) > 10_000
        })
        .unwrap_or_else(|| panic!("xeyes never drew; it said:\n{}", xeyes.output()));
    let before = first.data.as_bytes().unwrap().to_vec();
    // The eyes look somewhere else.
    let mut changed = false;
    for (x, y) in [(5.0, 5.0), (630.0, 470.0), (5.0, 470.0)] {
        f.handle
            .send_input(InputEvent::PointerMotionAbsolute { x, y });
        if f.wait_frame(Duration::from_secs(3), |fr| {
            fr.data.as_bytes().unwrap() != before.as_slice()
        })
        .is_some()
        {
            changed = true;
            break;
        }
    }
    assert!(changed, "xeyes did not redraw when the pointer moved");
}

fn start_xev(f: &Fixture) -> Client {
    let xev = spawn_x(f, "xev", &[]);
    // Mapped, and the window manager gave it the input focus.
    expect_line(&xev, 0, "MapNotify event");
    expect_line(&xev, 0, "FocusIn event");
    xev
}

#[test]
fn xev_gets_keys_buttons_and_motion() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xev"]) {
        return;
    }
    let xev = start_xev(&f);

    // Its window fills the output: it was configured to the output size.
    expect_event(
        &xev,
        0,
        "ConfigureNotify event",
        &format!("width {}, height {}", MODE.width, MODE.height),
    );

    let skip = xev.line_count();
    tap(&f, KEY_A);
    expect_event(&xev, skip, "KeyPress event", "(keysym 0x61, a)");
    expect_event(&xev, skip, "KeyRelease event", "(keysym 0x61, a)");
    let skip = xev.line_count();
    tap(&f, KEY_B);
    expect_event(&xev, skip, "KeyPress event", "(keysym 0x62, b)");

    // Away from xev's inner 50x50 window at (10, 10); coordinates are relative to its window,
    // which is at the output's origin.
    let skip = xev.line_count();
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 200.0, y: 150.0 });
    expect_event(
        &xev,
        skip,
        "MotionNotify event",
        "(200,150), root:(200,150)",
    );
    let skip = xev.line_count();
    f.handle.send_input(InputEvent::PointerMotionRelative {
        dx: 33.0,
        dy: -20.0,
    });
    expect_event(
        &xev,
        skip,
        "MotionNotify event",
        "(233,130), root:(233,130)",
    );

    let skip = xev.line_count();
    click(&f, true);
    expect_event(&xev, skip, "ButtonPress event", "(233,130)");
    expect_event(&xev, skip, "ButtonPress event", "button 1,");
    click(&f, false);
    expect_event(&xev, skip, "ButtonRelease event", "button 1,");

    // A new mode: the window is configured to the new output size.
    let skip = xev.line_count();
    f.handle.set_mode(Mode {
        width: 800,
        height: 600,
        refresh_mhz: 60_000,
    });
    expect_event(&xev, skip, "ConfigureNotify event", "width 800, height 600");
    // The pointer reaches the new area once Xwayland committed a buffer of the new size.
    let skip = xev.line_count();
    let reached = (0..40).any(|i| {
        let x = 700.0 + f64::from(i % 2);
        f.handle
            .send_input(InputEvent::PointerMotionAbsolute { x, y: 550.0 });
        let needle = format!("({},550), root:({},550)", x as i32, x as i32);
        xev.wait_line_after(skip, &needle, Duration::from_millis(250))
            .is_some()
    });
    assert!(
        reached,
        "no motion in the enlarged window; xev said:\n{}",
        xev.output()
    );
}

#[test]
fn kiosk_newest_of_wayland_and_x11_has_focus() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xev", "wev"]) {
        return;
    }
    // X11 first, then Wayland: the Wayland window takes over.
    let xev = start_xev(&f);
    let skip = xev.line_count();
    let mut wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");
    expect_line(&xev, skip, "FocusOut event");

    let xev_before = xev.line_count();
    tap(&f, KEY_A);
    expect_line(&wev, 0, "sym: a ");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        xev.wait_line_after(xev_before, "KeyPress", Duration::ZERO)
            .is_none(),
        "the X11 window below got the key:\n{}",
        xev.output()
    );

    // The Wayland window goes: focus returns to the X11 one.
    let skip = xev.line_count();
    wev.kill();
    expect_line(&xev, skip, "FocusIn event");
    tap(&f, KEY_B);
    expect_event(&xev, skip, "KeyPress event", "(keysym 0x62, b)");
}

#[test]
fn kiosk_x11_window_mapped_last_takes_focus_from_wayland() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xev", "wev"]) {
        return;
    }
    let wev = f.spawn_client("wev", &[]);
    expect_line(&wev, 0, "wl_keyboard] enter");
    let mut xev = start_xev(&f);
    expect_line(&wev, 0, "wl_keyboard] leave");

    let wev_before = wev.line_count();
    tap(&f, KEY_A);
    expect_event(&xev, 0, "KeyPress event", "(keysym 0x61, a)");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        wev.wait_line_after(wev_before, "sym: a", Duration::ZERO)
            .is_none(),
        "the Wayland window below got the key"
    );
    // The pointer is on the X11 window too.
    let skip = xev.line_count();
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 300.0, y: 300.0 });
    expect_event(&xev, skip, "MotionNotify event", "(300,300)");

    let skip = wev.line_count();
    xev.kill();
    expect_line(&wev, skip, "wl_keyboard] enter");
    tap(&f, KEY_B);
    expect_line(&wev, skip, "sym: b ");
}

#[test]
fn a_killed_xwayland_is_started_again_on_the_same_display_and_leaves_no_process() {
    let Some(f) = fixture() else { return };
    if !have_all(&["xterm"]) {
        return;
    }
    let display = f.handle.x11_display().expect("an X display");
    let (mut xterm, _) = start_xterm(&f);
    let old = f
        .handle
        .xwayland_pid()
        .expect("Xwayland runs as this process's child");
    // SAFETY: kill(2) has no memory-safety preconditions; `old` is our own child.
    assert_eq!(unsafe { libc::kill(old, libc::SIGKILL) }, 0);

    // Its window goes with it, and so does the X client.
    f.wait_frame(T, |fr| corners_are(fr, BLACK))
        .expect("xterm's window leaves the picture");
    let deadline = std::time::Instant::now() + T;
    while xterm.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!xterm.is_running(), "xterm outlived its X server");

    // A new Xwayland serves the same display; the dead one was reaped.
    let deadline = std::time::Instant::now() + T;
    let new = loop {
        match f.handle.xwayland_pid() {
            Some(pid) if pid != old => break pid,
            _ if std::time::Instant::now() > deadline => panic!("no new Xwayland on {display}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_ne!(new, old);
    while std::path::Path::new(&format!("/proc/{old}")).exists() {
        assert!(
            std::time::Instant::now() < deadline + T,
            "the killed Xwayland was never reaped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(f.handle.x11_display().as_deref(), Some(display.as_str()));
    let (_again, frame) = start_xterm(&f);
    assert_eq!((frame.width, frame.height), (MODE.width, MODE.height));
}

/// A descriptor of our own for each socket process `pid` has open at `path` (the abstract
/// name, `@/tmp/.X11-unix/X1`), taken with pidfd_getfd(2): while we hold them, the name stays
/// bound after the process is gone.
fn take_sockets(pid: i32, path: &str) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let unix = std::fs::read_to_string("/proc/net/unix").expect("/proc/net/unix");
    // Num RefCount Protocol Flags Type St Inode Path
    let inodes: Vec<String> = unix
        .lines()
        .filter(|l| l.split_whitespace().nth(7) == Some(path))
        .filter_map(|l| l.split_whitespace().nth(6).map(|s| format!("socket:[{s}]")))
        .collect();
    // SAFETY: plain system calls; the results are checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `pidfd` is a new descriptor of ours.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
    let mut taken = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the process's fds") {
        let entry = entry.unwrap();
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !inodes.iter().any(|i| link.to_str() == Some(i)) {
            continue;
        }
        let target: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        // SAFETY: as above.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                target,
                0,
            )
        } as i32;
        assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        // SAFETY: a new descriptor of ours.
        taken.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    }
    taken
}

#[test]
fn a_restart_waits_for_a_killed_xwayland_to_let_go_of_its_display() {
    let Some(f) = fixture() else { return };
    let display = f.handle.x11_display().expect("an X display");
    let old = f.handle.xwayland_pid().expect("Xwayland runs");
    // The dead server's listening socket stays bound while we hold a copy, as it does while
    // a killed server is still exiting.
    let path = format!("@/tmp/.X11-unix/X{}", display.trim_start_matches(':'));
    let held = take_sockets(old, &path);
    assert!(!held.is_empty(), "no socket of Xwayland's at {path}");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(old, libc::SIGKILL) }, 0);
    // Longer than a restart takes: without its retries, the restart has failed by now.
    std::thread::sleep(Duration::from_millis(700));
    // Let go: the restart, tried again meanwhile, now starts a new server on the same display.
    drop(held);
    let deadline = std::time::Instant::now() + T;
    loop {
        match f.handle.xwayland_pid() {
            Some(pid) if pid != old => break,
            _ if std::time::Instant::now() > deadline => {
                panic!("no new Xwayland on {display} after the old one let go")
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert_eq!(f.handle.x11_display().as_deref(), Some(display.as_str()));
    if have_all(&["xterm"]) {
        let (_xterm, frame) = start_xterm(&f);
        assert_eq!((frame.width, frame.height), (MODE.width, MODE.height));
    }
}
