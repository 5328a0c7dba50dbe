//! Relative pointer and pointer lock, seen by a small Wayland client written here: before the
//! lock, relative input arrives as relative motion and as wl_pointer.motion; while locked, only
//! as relative motion, and absolute motion is ignored.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Fixture, MODE};
use compositor::InputEvent;
use wayland_client::protocol::{
    wl_buffer, wl_compositor, wl_pointer, wl_registry, wl_seat, wl_shm, wl_shm_pool, wl_surface,
};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, QueueHandle};
use wayland_protocols::wp::pointer_constraints::zv1::client::{
    zwp_locked_pointer_v1, zwp_pointer_constraints_v1,
};
use wayland_protocols::wp::relative_pointer::zv1::client::{
    zwp_relative_pointer_manager_v1, zwp_relative_pointer_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Enter(f64, f64),
    Motion(f64, f64),
    Relative(f64, f64),
    Locked,
}

#[derive(Default)]
struct App {
    compositor: Option<wl_compositor::WlCompositor>,
    shm: Option<wl_shm::WlShm>,
    seat: Option<wl_seat::WlSeat>,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    relative: Option<zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1>,
    constraints: Option<zwp_pointer_constraints_v1::ZwpPointerConstraintsV1>,
    /// Configured size, set once the first configure was acked and a buffer attached.
    configured: Option<(i32, i32)>,
    surface: Option<wl_surface::WlSurface>,
    seen: Vec<Seen>,
    dir: std::path::PathBuf,
}

impl Dispatch<wl_registry::WlRegistry, ()> for App {
    fn event(
        app: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let wl_registry::Event::Global {
            name, interface, ..
        } = event
        else {
            return;
        };
        match interface.as_str() {
            "wl_compositor" => app.compositor = Some(registry.bind(name, 4, qh, ())),
            "wl_shm" => app.shm = Some(registry.bind(name, 1, qh, ())),
            "wl_seat" => app.seat = Some(registry.bind(name, 5, qh, ())),
            "xdg_wm_base" => app.wm_base = Some(registry.bind(name, 1, qh, ())),
            "zwp_relative_pointer_manager_v1" => {
                app.relative = Some(registry.bind(name, 1, qh, ()))
            }
            "zwp_pointer_constraints_v1" => app.constraints = Some(registry.bind(name, 1, qh, ())),
            _ => {}
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for App {
    fn event(
        _: &mut Self,
        wm: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for App {
    fn event(
        app: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Configure { width, height, .. } = event {
            if width > 0 && height > 0 && app.configured.is_none() {
                app.configured = Some((-width, -height)); // pending: not yet drawn
            }
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for App {
    fn event(
        app: &mut Self,
        xdg: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let xdg_surface::Event::Configure { serial } = event else {
            return;
        };
        xdg.ack_configure(serial);
        let Some((w, h)) = app.configured.filter(|(w, _)| *w < 0) else {
            return;
        };
        let (w, h) = (-w, -h);
        // A mid-grey buffer of the configured size, from a file in the runtime directory.
        let path = app.dir.join("lock-client-buffer");
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file.write_all(&vec![0x80u8; (w * h * 4) as usize]).unwrap();
        let shm = app.shm.as_ref().unwrap();
        let pool = shm.create_pool(file.as_fd(), w * h * 4, qh, ());
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, qh, ());
        let surface = app.surface.as_ref().unwrap();
        surface.attach(Some(&buffer), 0, 0);
        surface.damage(0, 0, w, h);
        surface.commit();
        app.configured = Some((w, h));
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wl_pointer::Event::Enter {
                surface_x,
                surface_y,
                ..
            } => app.seen.push(Seen::Enter(surface_x, surface_y)),
            wl_pointer::Event::Motion {
                surface_x,
                surface_y,
                ..
            } => app.seen.push(Seen::Motion(surface_x, surface_y)),
            _ => {}
        }
    }
}

impl Dispatch<zwp_relative_pointer_v1::ZwpRelativePointerV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_relative_pointer_v1::ZwpRelativePointerV1,
        event: zwp_relative_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_relative_pointer_v1::Event::RelativeMotion { dx, dy, .. } = event {
            app.seen.push(Seen::Relative(dx, dy));
        }
    }
}

impl Dispatch<zwp_locked_pointer_v1::ZwpLockedPointerV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_locked_pointer_v1::ZwpLockedPointerV1,
        event: zwp_locked_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_locked_pointer_v1::Event::Locked = event {
            app.seen.push(Seen::Locked);
        }
    }
}

delegate_noop!(App: wl_compositor::WlCompositor);
delegate_noop!(App: ignore wl_surface::WlSurface);
delegate_noop!(App: ignore wl_shm::WlShm);
delegate_noop!(App: wl_shm_pool::WlShmPool);
delegate_noop!(App: ignore wl_buffer::WlBuffer);
delegate_noop!(App: ignore wl_seat::WlSeat);
delegate_noop!(App: zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1);
delegate_noop!(App: zwp_pointer_constraints_v1::ZwpPointerConstraintsV1);

/// Gives the compositor time to handle injected input, then reads what it sent.
fn pump(queue: &mut EventQueue<App>, app: &mut App) {
    std::thread::sleep(Duration::from_millis(150));
    queue.roundtrip(app).expect("roundtrip");
}

#[test]
fn locked_pointer_gets_relative_motion_only() {
    let f = Fixture::new(MODE);
    let socket = f.handle.runtime_dir().join(f.handle.socket_name());
    let conn = Connection::from_socket(UnixStream::connect(socket).unwrap()).unwrap();
    let mut queue = conn.new_event_queue();
    let qh = queue.handle();
    conn.display().get_registry(&qh, ());
    let mut app = App {
        dir: f.handle.runtime_dir().to_path_buf(),
        ..App::default()
    };
    queue.roundtrip(&mut app).unwrap();
    let (Some(compositor), Some(seat), Some(wm), Some(relative), Some(constraints)) = (
        app.compositor.clone(),
        app.seat.clone(),
        app.wm_base.clone(),
        app.relative.clone(),
        app.constraints.clone(),
    ) else {
        panic!("a global is missing (relative pointer or pointer constraints?)");
    };
    let surface = compositor.create_surface(&qh, ());
    let xdg = wm.get_xdg_surface(&surface, &qh, ());
    let _toplevel = xdg.get_toplevel(&qh, ());
    app.surface = Some(surface.clone());
    surface.commit();
    for _ in 0..50 {
        queue.roundtrip(&mut app).unwrap();
        if app.configured.is_some_and(|(w, _)| w > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        app.configured,
        Some((640, 480)),
        "the window was configured"
    );
    // Sends the buffer and commit made while handling the configure.
    queue.roundtrip(&mut app).unwrap();
    let mut last = None;
    let shown = f.wait_frame(Duration::from_secs(5), |fr| {
        last = Some(common::pixel(fr, 320, 240));
        last == Some((0x80, 0x80, 0x80))
    });
    assert!(
        shown.is_some(),
        "the window is shown; centre pixel {last:?}"
    );
    let pointer = seat.get_pointer(&qh, ());
    let _relative_pointer = relative.get_relative_pointer(&pointer, &qh, ());
    queue.roundtrip(&mut app).unwrap();

    // Unlocked: relative input moves the pointer and is reported both ways.
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 100.0, y: 100.0 });
    pump(&mut queue, &mut app);
    assert!(
        app.seen.contains(&Seen::Enter(100.0, 100.0))
            || app.seen.contains(&Seen::Motion(100.0, 100.0)),
        "{:?}",
        app.seen
    );
    app.seen.clear();
    f.handle
        .send_input(InputEvent::PointerMotionRelative { dx: 5.0, dy: -3.0 });
    pump(&mut queue, &mut app);
    assert_eq!(
        app.seen,
        [Seen::Relative(5.0, -3.0), Seen::Motion(105.0, 97.0)]
    );

    // Locked: relative motion only, the pointer stays where it is.
    app.seen.clear();
    let _lock = constraints.lock_pointer(
        &surface,
        &pointer,
        None,
        zwp_pointer_constraints_v1::Lifetime::Persistent,
        &qh,
        (),
    );
    pump(&mut queue, &mut app);
    assert_eq!(app.seen, [Seen::Locked]);
    app.seen.clear();
    f.handle
        .send_input(InputEvent::PointerMotionRelative { dx: 7.0, dy: 4.0 });
    f.handle
        .send_input(InputEvent::PointerMotionRelative { dx: -2.5, dy: 0.5 });
    f.handle
        .send_input(InputEvent::PointerMotionAbsolute { x: 300.0, y: 300.0 });
    pump(&mut queue, &mut app);
    assert_eq!(
        app.seen,
        [Seen::Relative(7.0, 4.0), Seen::Relative(-2.5, 0.5)],
        "no wl_pointer.motion while locked"
    );
}
