//! Real applications (foot) and misbehaving clients.

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

/// Live mode changes while foot runs: every new mode gives frames of that size, and foot
/// refills the whole output (its background reaches the far corner) without being restarted.
#[test]
fn mode_changes_resize_a_running_client() {
    if !have("foot") {
        eprintln!("SKIPPED mode_changes_resize_a_running_client: foot is not installed");
        return;
    }
    let f = Fixture::new(MODE);
    let mut foot = f.spawn_client(
        "foot",
        &["--config=/dev/null", "-o", "colors.background=ff0000", "sh"],
    );
    let red_corner = |fr: &compositor::Frame| {
        let (b, g, r) = pixel(fr, fr.width - 2, fr.height - 2);
        r > 200 && g < 60 && b < 60
    };
    for mode in [
        MODE,
        Mode { width: 1920, height: 1080, refresh_mhz: 120_000 },
        Mode { width: 800, height: 600, refresh_mhz: 59_940 },
    ] {
        f.handle.set_mode(mode);
        let mut seen = None;
        let frame = f
            .wait_frame(Duration::from_secs(5), |fr| {
                seen = Some(((fr.width, fr.height), pixel(fr, fr.width - 2, fr.height - 2), pixel(fr, 2, 2)));
                fr.width == mode.width && fr.height == mode.height && red_corner(fr)
            })
            .unwrap_or_else(|| {
                panic!("foot does not fill the output at {mode:?}; last frame (size, corner BGR, \
                        top-left BGR): {seen:?}; foot said: {}", foot.output())
            });
        assert_eq!((frame.width, frame.height), (mode.width, mode.height));
        assert!(foot.is_running(), "foot was restarted or died at {mode:?}");
    }
}
