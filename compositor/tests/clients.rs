//! Real applications (foot, weston-terminal) and misbehaving clients.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{have, non_black_pixels, pixel, Fixture, MODE};
use compositor::{InputEvent, Mode};

const T: Duration = Duration::from_secs(10);

#[test]
fn foot_renders_and_reacts_to_typing() {
    if !have("foot") {
        return;
    }
    let f = Fixture::new(MODE);
    // A config that does not exist keeps the user's config out of the test.
    let _foot = f.spawn_client("foot", &["--config=/dev/null", "sh"]);
    let first = f
        .wait_frame(T, |fr| {
            non_black_pixels(fr, 0, 0, fr.width, fr.height) > 1000
        })
        .expect("foot draws its window");
    let before = first.data.as_bytes().unwrap().to_vec();

    // Type "x" into the shell; the frame must change where the character appears.
    f.handle.send_input(InputEvent::Key {
        code: 45,
        pressed: true,
    });
    f.handle.send_input(InputEvent::Key {
        code: 45,
        pressed: false,
    });
    let changed = f
        .wait_frame(T, |fr| fr.data.as_bytes().unwrap() != before.as_slice())
        .expect("typing changes the frame");
    assert!(!changed.damage.is_empty());
    let damaged: u64 = changed
        .damage
        .iter()
        .map(|r| u64::from(r.width * r.height))
        .sum();
    assert!(
        damaged < u64::from(MODE.width * MODE.height),
        "a keystroke should not damage everything"
    );
}

#[test]
fn weston_terminal_renders_and_echoes_typing() {
    if !have("weston-terminal") {
        return;
    }
    let f = Fixture::new(MODE);
    let _term = f.spawn_client("weston-terminal", &["--shell=/bin/sh"]);
    // The prompt and the cursor: light pixels on the dark background, and nothing else once
    // it is fullscreen (its first frame may still have its own title bar: the fullscreen state
    // comes once it mapped).
    let first = f
        .wait_frame(T, |fr| {
            let prompt = light_pixels(fr, 0, 0, 200, 60);
            prompt > 20 && light_pixels(fr, 0, 0, MODE.width, MODE.height) == prompt
        })
        .expect("weston-terminal draws its prompt");
    let prompt = light_pixels(&first, 0, 0, MODE.width, MODE.height);

    // A first key ("y"): weston-terminal, fullscreen only after it mapped (as every window is,
    // see `Core::configure_fullscreen`), repaints the echo of its first key with its next
    // event only.
    for pressed in [true, false] {
        f.handle.send_input(InputEvent::Key { code: 21, pressed });
    }
    // "x" echoed by the shell: more light pixels, all near the top left, where the prompt is.
    for pressed in [true, false] {
        f.handle.send_input(InputEvent::Key { code: 45, pressed });
    }
    let echoed = f
        .wait_frame(T, |fr| {
            light_pixels(fr, 0, 0, MODE.width, MODE.height) > prompt + 10
        })
        .expect("the typed character shows");
    let total = light_pixels(&echoed, 0, 0, MODE.width, MODE.height);
    assert_eq!(
        light_pixels(&echoed, 0, 0, 200, 60),
        total,
        "everything drawn is on the first line"
    );
}

/// How many pixels in the rectangle have every channel above 160 (text on a dark terminal).
fn light_pixels(frame: &compositor::Frame, x0: u32, y0: u32, w: u32, h: u32) -> usize {
    let mut n = 0;
    for y in y0..(y0 + h).min(frame.height) {
        for x in x0..(x0 + w).min(frame.width) {
            let (b, g, r) = pixel(frame, x, y);
            if b > 160 && g > 160 && r > 160 {
                n += 1;
            }
        }
    }
    n
}

/// A message header: object id, then size (high 16 bits) and opcode (low 16 bits).
fn header(object: u32, opcode: u16, size: usize) -> Vec<u8> {
    let mut msg = object.to_ne_bytes().to_vec();
    msg.extend_from_slice(&(((size as u32) << 16) | u32::from(opcode)).to_ne_bytes());
    msg
}

/// A wl_display.sync request creating callback object `id`.
fn sync_request(id: u32) -> Vec<u8> {
    let mut msg = header(1, 0, 12); // wl_display.sync
    msg.extend_from_slice(&id.to_ne_bytes());
    msg
}

/// A wl_display.get_registry request creating registry object `id`.
fn get_registry_request(id: u32) -> Vec<u8> {
    let mut msg = header(1, 1, 12); // wl_display.get_registry
    msg.extend_from_slice(&id.to_ne_bytes());
    msg
}

/// A wl_registry.bind request on `registry` for global `name`.
fn bind_request(registry: u32, name: u32, interface: &str, version: u32, id: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&name.to_ne_bytes());
    let len = interface.len() as u32 + 1;
    body.extend_from_slice(&len.to_ne_bytes());
    body.extend_from_slice(interface.as_bytes());
    body.push(0);
    while body.len() % 4 != 0 {
        body.push(0);
    }
    body.extend_from_slice(&version.to_ne_bytes());
    body.extend_from_slice(&id.to_ne_bytes());
    let mut msg = header(registry, 0, 8 + body.len()); // wl_registry.bind
    msg.extend_from_slice(&body);
    msg
}

/// Reads events until EOF or timeout; returns (object, opcode) pairs.
fn read_events(stream: &mut UnixStream) -> (Vec<(u32, u16)>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut eof = false;
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let mut events = Vec::new();
    let mut at = 0;
    while at + 8 <= buf.len() {
        let object = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
        let word = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
        let size = (word >> 16) as usize;
        events.push((object, (word & 0xffff) as u16));
        if size < 8 {
            break;
        }
        at += size;
    }
    (events, eof)
}

#[test]
fn protocol_violation_disconnects_only_that_client() {
    let f = Fixture::new(MODE);
    let socket = f.handle.runtime_dir().join(f.handle.socket_name());

    // A well-behaved raw client, connected before the bad one.
    let mut good = UnixStream::connect(&socket).unwrap();

    // Bad client: binds a global that does not exist, which is a protocol error.
    let mut bad = UnixStream::connect(&socket).unwrap();
    bad.write_all(&get_registry_request(2)).unwrap();
    bad.write_all(&bind_request(2, 9999, "wl_compositor", 1, 3))
        .unwrap();
    let (events, eof) = read_events(&mut bad);
    assert!(
        events.contains(&(1, 0)),
        "expected wl_display.error, got {events:?}"
    );
    assert!(eof, "the bad client should be disconnected");

    // Unknown opcode: the connection is dropped.
    let mut bad = UnixStream::connect(&socket).unwrap();
    bad.write_all(&header(1, 42, 8)).unwrap();
    let (_, eof) = read_events(&mut bad);
    assert!(
        eof,
        "the client with an unknown opcode should be disconnected"
    );

    // Garbage bytes: a header claiming a size smaller than the header itself.
    let mut garbage = UnixStream::connect(&socket).unwrap();
    garbage.write_all(&[0xff; 64]).unwrap();
    let (_, eof) = read_events(&mut garbage);
    assert!(eof, "the garbage client should be disconnected");

    // The good client still gets answers, and new clients can connect.
    good.write_all(&sync_request(2)).unwrap();
    let (events, _) = read_events(&mut good);
    assert!(
        events.contains(&(2, 0)),
        "expected wl_callback.done, got {events:?}"
    );

    let mut late = UnixStream::connect(&socket).unwrap();
    late.write_all(&sync_request(2)).unwrap();
    let (events, _) = read_events(&mut late);
    assert!(
        events.contains(&(2, 0)),
        "expected wl_callback.done, got {events:?}"
    );

    if have("weston-simple-shm") {
        let _shm = f.spawn_client("weston-simple-shm", &[]);
        f.wait_frame(T, |fr| non_black_pixels(fr, 0, 0, 250, 250) > 10_000)
            .expect("a real client still works");
    }
}

/// Live mode changes while foot runs: every new mode gives frames of that size, foot refills the
/// whole output (its background reaches the far corner) without being restarted, and a client
/// drawing on every frame callback at its own size sees the new mode on wl_output, is scaled to
/// fit it, is paced at the new refresh and gets it in its presentation feedback.
#[test]
fn mode_changes_resize_a_running_client() {
    if !have("foot") {
        return;
    }
    let start = Mode {
        width: 1280,
        height: 720,
        refresh_mhz: 60_000,
    };
    let f = Fixture::new(start);
    let socket = f.handle.runtime_dir().join(f.handle.socket_name());
    let mut foot = f.spawn_client(
        "foot",
        &["--config=/dev/null", "-o", "colors.background=ff0000", "sh"],
    );
    let red_corner = |fr: &compositor::Frame| {
        let (b, g, r) = pixel(fr, fr.width - 2, fr.height - 2);
        r > 200 && g < 60 && b < 60
    };
    f.wait_frame(T, |fr| red_corner(fr))
        .expect("foot fills the output");
    // A game-like client on top of foot: a 64 x 64 window, redrawn every frame.
    let game = common::wl::FeedbackLoop::start(&socket, 0xff00_ff00, (64, 64));
    for mode in [
        start,
        Mode {
            width: 1920,
            height: 1080,
            refresh_mhz: 120_000,
        },
        Mode {
            width: 800,
            height: 600,
            refresh_mhz: 59_940,
        },
    ] {
        f.handle.set_mode(mode);
        let mut seen = None;
        let frame = f
            .wait_frame(T, |fr| {
                seen = Some((
                    (fr.width, fr.height),
                    pixel(fr, fr.width - 2, fr.height - 2),
                    pixel(fr, 2, 2),
                ));
                // The game's square window fills the output's height, centred, with black bars
                // (foot's red does not show through).
                let (w, h) = (fr.width, fr.height);
                fr.width == mode.width
                    && fr.height == mode.height
                    && pixel(fr, w / 2, 2) == (0, 255, 0)
                    && pixel(fr, w / 2, h - 2) == (0, 255, 0)
                    && pixel(fr, (w - h) / 2 + 2, h / 2) == (0, 255, 0)
                    && pixel(fr, 2, 2) == (0, 0, 0)
                    && pixel(fr, w - 2, h - 2) == (0, 0, 0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "the game is not fitted to {mode:?}; last frame (size, corner BGR, \
                     top-left BGR): {seen:?}"
                )
            });
        assert_eq!((frame.width, frame.height), (mode.width, mode.height));
        assert!(foot.is_running(), "foot was restarted or died at {mode:?}");

        // Frame pacing: consume frames for a second; no more than the refresh rate arrive.
        std::thread::sleep(Duration::from_millis(100));
        let before = game.log().presented.len();
        let rx = f.handle.frames();
        let t0 = std::time::Instant::now();
        let mut frames = 0u32;
        while t0.elapsed() < Duration::from_secs(1) {
            if rx.recv_timeout(Duration::from_millis(50)).is_some() {
                frames += 1;
            }
        }
        let hz = f64::from(mode.refresh_mhz) / 1000.0;
        eprintln!("{mode:?}: {frames} frames in 1 s");
        assert!(
            f64::from(frames) <= hz * 1.05 + 2.0,
            "{frames} frames in 1 s at {hz} Hz"
        );

        let log = game.log();
        let interval_ns = (1_000_000_000_000u64 / u64::from(mode.refresh_mhz)) as u32;
        let presented = &log.presented[before..];
        assert!(presented.len() >= 10, "{} presentations", presented.len());
        for p in presented {
            assert_eq!(p.refresh_ns, interval_ns, "at {mode:?}: {p:?}");
        }
        // Presentations are on the output's refresh ticks: whole intervals apart (a busy
        // machine may skip ticks), and the closest two are one interval apart.
        let deltas: Vec<u128> = presented
            .windows(2)
            .map(|w| w[1].time_ns - w[0].time_ns)
            .collect();
        let interval = u128::from(interval_ns);
        // Distance to the nearest whole number of intervals; the tick is computed from two
        // clock readings, so allow 0.1 ms.
        let off_tick = |d: u128| (d % interval).min(interval - d % interval) > 100_000;
        assert!(
            deltas.iter().all(|&d| d >= interval / 2 && !off_tick(d)),
            "presentation intervals at {mode:?} are not whole refresh intervals: {deltas:?}"
        );
        let closest = deltas.iter().min().copied().unwrap();
        assert!(
            closest < interval + interval / 2,
            "at {mode:?} the closest presentations are {closest} ns apart, the interval is \
             {interval} ns"
        );
        assert_eq!(
            log.output_modes.last(),
            Some(&(
                mode.width as i32,
                mode.height as i32,
                mode.refresh_mhz as i32
            ))
        );
        // It keeps its own size: no size is imposed on it.
        assert!(
            log.configured_size.is_none_or(|size| size == (0, 0)),
            "at {mode:?} configured to {:?}",
            log.configured_size
        );
    }
    // Without the game, foot shows, filling the last mode.
    drop(game);
    f.wait_frame(T, |fr| red_corner(fr) && fr.width == 800)
        .unwrap_or_else(|| panic!("foot does not fill 800 x 600; foot said: {}", foot.output()));
    assert!(foot.is_running(), "foot was restarted or died");
}

/// Two compositors in one process are separate: each shows only its own clients, and input
/// sent to one reaches only the clients of that one.
#[test]
fn two_compositors_do_not_share_clients_or_input() {
    let a = Fixture::new(MODE);
    let b = Fixture::new(MODE);
    let socket = |f: &Fixture| f.handle.runtime_dir().join(f.handle.socket_name());
    let mut on_a = common::wl::WlClient::connect(&socket(&a));
    let red = on_a.create_toplevel(0xffff_0000, None);
    on_a.commit(red);
    on_a.wait_mapped(red);
    let mut on_b = common::wl::WlClient::connect(&socket(&b));
    let blue = on_b.create_toplevel(0xff00_00ff, None);
    on_b.commit(blue);
    on_b.wait_mapped(blue);

    // Each output shows its own client only.
    a.wait_frame(T, |fr| pixel(fr, 10, 10) == (0, 0, 255))
        .expect("A shows its red window");
    b.wait_frame(T, |fr| pixel(fr, 10, 10) == (255, 0, 0))
        .expect("B shows its blue window");
    assert!(on_a.wait_until(T, |app| app.keyboard_focus == Some(red)));
    assert!(on_b.wait_until(T, |app| app.keyboard_focus == Some(blue)));

    // A key sent to A reaches A's client and not B's.
    for pressed in [true, false] {
        a.handle.send_input(InputEvent::Key { code: 30, pressed });
    }
    assert!(
        on_a.wait_until(T, |app| app.keys == [(30, true), (30, false)]),
        "A's client got {:?}",
        on_a.app.keys
    );
    // The pointer moved on B moves over B's window; A's pointer stays where it started.
    b.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 50.0, y: 50.0 });
    assert!(on_b.wait_until(T, |app| app.pointer_position == Some((50.0, 50.0))));
    on_a.roundtrip();
    on_b.roundtrip();
    assert!(
        on_b.app.keys.is_empty(),
        "B's client got {:?}",
        on_b.app.keys
    );
    assert_ne!(on_a.app.pointer_position, Some((50.0, 50.0)));

    // Closing A's client leaves B's alone: B keeps presenting its window.
    drop(on_a);
    a.wait_frame(T, |fr| pixel(fr, 10, 10) == (0, 0, 0))
        .expect("A is empty again");
    on_b.commit_with_feedback(blue);
    assert!(on_b.wait_until(T, |app| !app.presented.is_empty()));
    assert_eq!(on_b.app.keyboard_focus, Some(blue));
}
