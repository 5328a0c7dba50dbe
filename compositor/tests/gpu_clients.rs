//! Clients that render on the GPU: their buffers come as dmabufs (`zwp_linux_dmabuf_v1`, and
//! `wl_drm` for Xwayland and older Mesa), imported by the GLES renderer on the render node.
//!
//! These tests need a render node with dmabuf import, which a machine without a GPU lacks:
//! they are ignored in a plain `cargo test` and run on a virtual GPU by `scripts/test.sh`:
//!
//! ```sh
//! scripts/gpu-vm.sh -- cargo test -p compositor --test gpu_clients -- --ignored
//! ```
//!
//! Run that way, a missing render node fails them.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use common::dmabuf::{connect, DmabufClient, Heard};
use common::wl::WlClient;
use common::{have, pixel, Fixture, MODE};
use compositor::{CompositorOptions, Frame, RendererChoice};
use smithay::reexports::wayland_protocols::wp::linux_drm_syncobj::v1::client::{
    wp_linux_drm_syncobj_manager_v1 as syncobj_manager,
    wp_linux_drm_syncobj_surface_v1 as syncobj_surface,
    wp_linux_drm_syncobj_timeline_v1 as syncobj_timeline,
};
use wayland_client::protocol::{wl_buffer, wl_subcompositor, wl_subsurface, wl_surface};
use wayland_client::{delegate_noop, Connection, Dispatch, QueueHandle};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_v1,
};

const T: Duration = Duration::from_secs(20);
const NEEDS_GPU: &str = "needs a render node: scripts/gpu-vm.sh -- cargo test -p compositor \
                         --test gpu_clients -- --ignored";

/// wl_drm's client side, from the compositor's own protocol description.
#[allow(
    missing_docs,
    unused_qualifications,
    non_upper_case_globals,
    clippy::all
)]
mod drm {
    use wayland_client;
    use wayland_client::protocol::*;

    pub(crate) mod __interfaces {
        use wayland_client::backend as wayland_backend;
        use wayland_client::protocol::__interfaces::*;
        wayland_scanner::generate_interfaces!("protocols/wayland-drm.xml");
    }
    use self::__interfaces::*;

    wayland_scanner::generate_client_code!("protocols/wayland-drm.xml");
}

fn render_node() -> PathBuf {
    common::render_node(NEEDS_GPU)
}

/// A compositor with `renderer = "auto"`, which must have picked GLES on the render node.
fn gpu_fixture() -> Fixture {
    gpu_fixture_with(CompositorOptions::new(MODE))
}

/// [`gpu_fixture`] with `options` besides.
fn gpu_fixture_with(options: CompositorOptions) -> Fixture {
    let node = render_node();
    let f = Fixture::with_options(CompositorOptions {
        renderer: RendererChoice::Auto,
        ..options
    });
    let info = f.handle.renderer().clone();
    assert_eq!(
        info.name,
        "gles",
        "auto did not pick GLES on {}: {info:?}",
        node.display()
    );
    assert_eq!(
        info.render_node.as_deref(),
        Some(node.as_path()),
        "{info:?}"
    );
    f
}

fn socket(f: &Fixture) -> PathBuf {
    f.handle.runtime_dir().join(f.handle.socket_name())
}

/// Whether `(b, g, r)` is close to the named primary or secondary colour.
fn near(px: (u8, u8, u8), rgb: (u8, u8, u8)) -> bool {
    let (b, g, r) = px;
    let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
    d(r, rgb.0) < 80 && d(g, rgb.1) < 80 && d(b, rgb.2) < 80
}

/// The box of pixels that are not black.
fn drawn_box(frame: &Frame) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in (0..frame.height).step_by(2) {
        for x in (0..frame.width).step_by(2) {
            let (b, g, r) = pixel(frame, x, y);
            if u32::from(b) + u32::from(g) + u32::from(r) > 60 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 <= x1 && y0 <= y1).then_some((x0, y0, x1, y1))
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_gl_client_renders_on_the_gpu_and_hands_over_dmabufs() {
    assert!(
        have("weston-simple-dmabuf-egl"),
        "weston-simple-dmabuf-egl is missing"
    );
    let f = gpu_fixture();
    // The client renders with EGL into GBM buffers and hands each over with
    // zwp_linux_buffer_params_v1.create; WAYLAND_DEBUG shows the compositor's answers.
    let client = f.spawn_with_env(
        "weston-simple-dmabuf-egl",
        &[],
        &[("WAYLAND_DEBUG", "client")],
    );
    // Its square: green at the top left, yellow at the top right, red at the bottom left, blue
    // at the bottom right, fitted to the output.
    let frame = f.wait_frame(T, |fr| {
        let Some((x0, y0, x1, y1)) = drawn_box(fr) else {
            return false;
        };
        let inset = |a: u32, b: u32| (a + (b - a) / 20, b - (b - a) / 20);
        let ((l, r), (t, b)) = (inset(x0, x1), inset(y0, y1));
        x1 - x0 > 100
            && near(pixel(fr, l, t), (0, 255, 0))
            && near(pixel(fr, r, t), (255, 255, 0))
            && near(pixel(fr, l, b), (255, 0, 0))
            && near(pixel(fr, r, b), (0, 0, 255))
    });
    let log = client.output();
    assert!(
        frame.is_some(),
        "the GL client's square never showed; its protocol log:\n{}",
        tail(&log)
    );
    let created = log
        .lines()
        .filter(|l| l.contains("zwp_linux_buffer_params_v1") && l.contains(".created("))
        .count();
    assert!(
        created > 0,
        "no dmabuf was accepted (zwp_linux_buffer_params_v1.created):\n{}",
        tail(&log)
    );
    assert!(
        !log.contains(".failed("),
        "the compositor refused a dmabuf:\n{}",
        tail(&log)
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Dispatch<drm::wl_drm::WlDrm, ()> for Heard {
    fn event(
        state: &mut Self,
        _: &drm::wl_drm::WlDrm,
        event: drm::wl_drm::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            drm::wl_drm::Event::Device { name } => state.device = Some(name),
            drm::wl_drm::Event::Capabilities { value } => state.capabilities = Some(value),
            drm::wl_drm::Event::Format { format } => state.drm_formats.push(format),
            drm::wl_drm::Event::Authenticated => state.authenticated = true,
        }
    }
}

/// A memfd the size of a `width` x `height` XRGB8888 picture: shared memory, not a dmabuf.
fn fake_dmabuf(width: u32, height: u32) -> std::fs::File {
    // SAFETY: the name is a NUL-terminated string; the result is checked.
    let fd = unsafe { libc::memfd_create(c"fake-dmabuf".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(&vec![0x80; (width * height * 4) as usize])
        .unwrap();
    file
}

const XRGB8888: u32 = u32::from_le_bytes(*b"XR24");

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_fake_dmabuf_is_refused_and_the_compositor_keeps_serving() {
    let f = gpu_fixture();
    let (conn, mut queue, globals) = connect(&socket(&f));
    let qh = queue.handle();
    let mut heard = Heard::default();
    let dmabuf: zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1 = globals
        .bind(&qh, 3..=3, ())
        .expect("zwp_linux_dmabuf_v1 version 3 is offered");
    queue.roundtrip(&mut heard).unwrap();
    let modifier = heard
        .dmabuf_formats
        .iter()
        .find(|(format, _)| *format == XRGB8888)
        .map(|(_, modifier)| *modifier)
        .unwrap_or_else(|| panic!("XRGB8888 is not offered: {:x?}", heard.dmabuf_formats));

    // `create`: the compositor answers `failed`, and the connection lives on.
    let memfd = fake_dmabuf(64, 64);
    // Parameters of one plane: the memfd, 64 rows of 256 bytes.
    let fake_params = || {
        let params = dmabuf.create_params(&qh, ());
        let (hi, lo) = ((modifier >> 32) as u32, modifier as u32);
        params.add(memfd.as_fd(), 0, 0, 256, hi, lo);
        params
    };
    let params = fake_params();
    params.create(64, 64, XRGB8888, zwp_linux_buffer_params_v1::Flags::empty());
    queue.roundtrip(&mut heard).unwrap();
    assert!(heard.failed, "a memfd passed for a dmabuf was not refused");
    assert!(heard.created.is_none());

    // `create_immed`: the buffer exists at once, so refusing it is the protocol error.
    let params = fake_params();
    let _buffer = params.create_immed(
        64,
        64,
        XRGB8888,
        zwp_linux_buffer_params_v1::Flags::empty(),
        &qh,
        (),
    );
    let _ = queue.roundtrip(&mut heard);
    let error = conn
        .protocol_error()
        .expect("create_immed of a memfd ends in a protocol error");
    assert_eq!(
        error.object_interface, "zwp_linux_buffer_params_v1",
        "{error:?}"
    );
    assert_eq!(
        error.code,
        zwp_linux_buffer_params_v1::Error::InvalidWlBuffer as u32,
        "{error:?}"
    );

    // The same over wl_drm, each on a new connection: `create_prime_buffer` of the memfd as
    // `height` rows of 256 bytes, and the protocol error that ends the connection.
    let prime_error = |height: i32| {
        let (conn, mut queue, globals) = connect(&socket(&f));
        let qh = queue.handle();
        let drm: drm::wl_drm::WlDrm = globals
            .bind(&qh, 2..=2, ())
            .expect("wl_drm version 2 is offered");
        let _buffer = drm.create_prime_buffer(
            memfd.as_fd(),
            64,
            height,
            XRGB8888,
            0,
            256,
            0,
            0,
            0,
            0,
            &qh,
            (),
        );
        let _ = queue.roundtrip(&mut Heard::default());
        conn.protocol_error()
    };
    // A memfd for a PRIME buffer is the protocol error too.
    let error = prime_error(64).expect("a memfd over wl_drm ends in a protocol error");
    assert_eq!(error.object_interface, "wl_drm", "{error:?}");
    // A picture larger than its buffer is refused before the GPU sees it.
    let error = prime_error(65).expect("an oversized wl_drm buffer is refused");
    assert!(error.message.contains("do not fit"), "{error:?}");

    // No height, and an offset and stride whose sum overflows: refused, not a crash.
    let (conn, mut queue, globals) = connect(&socket(&f));
    let qh = queue.handle();
    let dmabuf: zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1 = globals.bind(&qh, 3..=3, ()).unwrap();
    let params = dmabuf.create_params(&qh, ());
    let (hi, lo) = ((modifier >> 32) as u32, modifier as u32);
    params.add(memfd.as_fd(), 0, 1, u32::MAX, hi, lo);
    let _buffer = params.create_immed(
        64,
        0,
        XRGB8888,
        zwp_linux_buffer_params_v1::Flags::empty(),
        &qh,
        (),
    );
    let _ = queue.roundtrip(&mut heard);
    let error = conn
        .protocol_error()
        .expect("a buffer without height is refused");
    assert_eq!(
        error.object_interface, "zwp_linux_buffer_params_v1",
        "{error:?}"
    );

    // Everyone else is served as before: a new client's window shows.
    let mut c = WlClient::connect(&socket(&f));
    let w = c.create_toplevel(0xff00_00ff, None);
    c.commit(w);
    // A virtual GPU's guest is slow: more time than `wait_mapped` gives.
    assert!(
        c.wait_until(T, |app| app.windows[w].drawn_size.is_some()),
        "a new client's window was never configured after the refused buffers"
    );
    f.wait_frame(T, |fr| {
        pixel(fr, MODE.width / 2, MODE.height / 2) == (0xff, 0, 0)
    })
    .expect("a new client's blue window shows after the refused buffers");
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn wl_drm_names_the_render_node_and_offers_prime() {
    let node = render_node();
    let f = gpu_fixture();
    let (_conn, mut queue, globals) = connect(&socket(&f));
    let qh = queue.handle();
    let mut heard = Heard::default();
    let drm: drm::wl_drm::WlDrm = globals
        .bind(&qh, 2..=2, ())
        .expect("wl_drm version 2 is offered");
    drm.authenticate(0);
    queue.roundtrip(&mut heard).unwrap();
    assert_eq!(
        heard.device.as_deref(),
        Some(node.to_string_lossy().as_ref())
    );
    assert_eq!(
        heard.capabilities,
        Some(drm::wl_drm::Capability::Prime as u32)
    );
    assert!(
        heard.drm_formats.contains(&XRGB8888),
        "{:x?}",
        heard.drm_formats
    );
    assert!(heard.authenticated, "authenticate was not answered");
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn pixman_offers_no_dmabufs_even_beside_a_render_node() {
    render_node();
    let f = Fixture::with_options(CompositorOptions {
        renderer: RendererChoice::Pixman,
        ..CompositorOptions::new(MODE)
    });
    let (_conn, _queue, globals) = connect(&socket(&f));
    let names: Vec<String> = globals
        .contents()
        .clone_list()
        .into_iter()
        .map(|g| g.interface)
        .collect();
    for interface in ["zwp_linux_dmabuf_v1", "wl_drm"] {
        assert!(
            !names.iter().any(|n| n == interface),
            "{interface} offered by pixman: {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "wl_shm"), "{names:?}");
}

delegate_noop!(Heard: wl_subcompositor::WlSubcompositor);
delegate_noop!(Heard: wl_subsurface::WlSubsurface);
delegate_noop!(Heard: syncobj_manager::WpLinuxDrmSyncobjManagerV1);
delegate_noop!(Heard: syncobj_surface::WpLinuxDrmSyncobjSurfaceV1);
delegate_noop!(Heard: syncobj_timeline::WpLinuxDrmSyncobjTimelineV1);

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn explicit_sync_shows_a_buffer_at_its_acquire_point_and_signals_its_release_point() {
    common::init_logging();
    // Frames read back into CPU memory; frames left on the GPU, composited (the render reads
    // the client's dmabuf) or the client's dmabuf itself as the frame.
    for (gpu_frames, client_buffer_frames) in [(false, false), (true, false), (true, true)] {
        eprintln!("gpu_frames {gpu_frames}, client_buffer_frames {client_buffer_frames}");
        explicit_sync_round(gpu_fixture_with(CompositorOptions {
            gpu_frames,
            client_buffer_frames,
            ..CompositorOptions::new(MODE)
        }));
    }
}

/// A connected client ([`DmabufClient`]) with a mapped toplevel that syncs explicitly, as
/// Mesa's and NVIDIA's drivers do where the compositor offers
/// `wp_linux_drm_syncobj_manager_v1`: its buffers are dmabufs it fills from the CPU, and its
/// timelines are syncobjs it signals itself, so the test decides when a buffer is "rendered".
struct SyncClient {
    client: DmabufClient,
    manager: syncobj_manager::WpLinuxDrmSyncobjManagerV1,
}

impl std::ops::Deref for SyncClient {
    type Target = DmabufClient;
    fn deref(&self) -> &DmabufClient {
        &self.client
    }
}

impl std::ops::DerefMut for SyncClient {
    fn deref_mut(&mut self) -> &mut DmabufClient {
        &mut self.client
    }
}

impl SyncClient {
    fn connect(f: &Fixture) -> Self {
        let client = DmabufClient::connect(
            &socket(f),
            &render_node(),
            "explicit sync",
            (MODE.width, MODE.height),
        );
        let manager = client
            .globals
            .bind(&client.queue.handle(), 1..=1, ())
            .expect(
            "wp_linux_drm_syncobj_manager_v1 is offered on a render node with timeline syncobjs \
             (the virtual GPU's kernel is 6.12)",
        );
        Self { client, manager }
    }

    /// A window-sized linear XRGB8888 buffer of one colour (bytes B, G, R, X), and its
    /// `wl_buffer`.
    fn buffer(
        &self,
        bgrx: [u8; 4],
    ) -> (
        smithay::reexports::gbm::BufferObject<()>,
        wl_buffer::WlBuffer,
    ) {
        self.client
            .buffer(XRGB8888, |_, _| u32::from_le_bytes(bgrx))
    }

    /// A new DRM timeline syncobj, and the compositor's handle to it.
    fn timeline(
        &self,
    ) -> (
        smithay::reexports::drm::control::syncobj::Handle,
        syncobj_timeline::WpLinuxDrmSyncobjTimelineV1,
    ) {
        use smithay::reexports::drm::control::Device as _;
        let handle = self.drm.create_syncobj(false).expect("a DRM syncobj");
        let fd = self
            .drm
            .syncobj_to_fd(handle, false)
            .expect("exporting the syncobj");
        let timeline = self
            .manager
            .import_timeline(fd.as_fd(), &self.queue.handle(), ());
        (handle, timeline)
    }

    /// The last signalled point of `handle`'s timeline.
    fn signalled(&self, handle: smithay::reexports::drm::control::syncobj::Handle) -> u64 {
        use smithay::reexports::drm::control::Device as _;
        let mut points = [0u64];
        self.drm
            .syncobj_timeline_query(&[handle], &mut points, false)
            .expect("querying a timeline");
        points[0]
    }

    fn signal(&self, handle: smithay::reexports::drm::control::syncobj::Handle, point: u64) {
        use smithay::reexports::drm::control::Device as _;
        self.drm
            .syncobj_timeline_signal(&[handle], &[point])
            .expect("signalling a timeline point");
    }
}

fn explicit_sync_round(f: Fixture) {
    let mut c = SyncClient::connect(&f);
    let (_red_bo, red) = c.buffer([0, 0, 0xff, 0xff]);
    let (_green_bo, green) = c.buffer([0, 0xff, 0, 0xff]);
    // Two timelines: one for the points the buffers are ready at, one for their release.
    let (acquire_handle, acquire) = c.timeline();
    let (release_handle, release) = c.timeline();
    let sync_surface = c.manager.get_surface(&c.surface, &c.queue.handle(), ());
    let commit = |c: &SyncClient, buffer: &wl_buffer::WlBuffer, point: u64| {
        sync_surface.set_acquire_point(&acquire, (point >> 32) as u32, point as u32);
        sync_surface.set_release_point(&release, (point >> 32) as u32, point as u32);
        c.surface.attach(Some(buffer), 0, 0);
        c.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        c.surface.commit();
        c.conn.flush().unwrap();
    };
    let centre = |fr: &Frame| pixel(fr, MODE.width / 2, MODE.height / 2);

    // Red at acquire point 1, which nothing has signalled: the commit waits, red never shows.
    commit(&c, &red, 1);
    c.roundtrip();
    let early = f.wait_frame(Duration::from_secs(2), |fr| centre(fr) == (0, 0, 0xff));
    assert!(
        early.is_none(),
        "a buffer showed before its acquire point was signalled"
    );
    // Signalled (as a GPU would when it finished drawing): red shows.
    c.signal(acquire_handle, 1);
    assert!(
        f.wait_frame(T, |fr| centre(fr) == (0, 0, 0xff)).is_some(),
        "the buffer never showed after its acquire point was signalled"
    );
    c.roundtrip();
    assert_eq!(
        c.signalled(release_handle),
        0,
        "the buffer on screen was released"
    );

    // Green at point 2, signalled before the commit: it shows, and red's release point (1) is
    // signalled once nothing reads red any more.
    c.signal(acquire_handle, 2);
    commit(&c, &green, 2);
    assert!(
        f.wait_frame(T, |fr| centre(fr) == (0, 0xff, 0)).is_some(),
        "the second buffer never showed"
    );
    let deadline = std::time::Instant::now() + T;
    while c.signalled(release_handle) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced buffer's release point was never signalled"
        );
        c.roundtrip();
        // Frames not yet taken keep what they were drawn from: take them.
        f.wait_frame(Duration::from_millis(50), |_| false);
    }
    c.roundtrip();
    assert_eq!(
        c.signalled(release_handle),
        1,
        "the buffer on screen was released with the one it replaced"
    );
    assert!(
        c.app.released.contains(&red) && !c.app.released.contains(&green),
        "wl_buffer.release: {:?}",
        c.app.released
    );
}

/// The compositor's open file descriptors (the tests run it in this process).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn explicit_sync_refuses_bad_timelines_and_bounds_and_drops_abandoned_waits() {
    common::init_logging();
    let f = gpu_fixture();

    // A memfd for a timeline: the protocol's error, on that connection only.
    let mut c = SyncClient::connect(&f);
    let memfd = fake_dmabuf(4, 4);
    let _timeline = c
        .manager
        .import_timeline(memfd.as_fd(), &c.queue.handle(), ());
    let _ = c.client.queue.roundtrip(&mut c.client.app);
    let error = c
        .conn
        .protocol_error()
        .expect("a memfd imported as a timeline is a protocol error");
    assert_eq!(
        error.object_interface, "wp_linux_drm_syncobj_manager_v1",
        "{error:?}"
    );
    drop(c);

    // An acquire point without a release point: the protocol's error.
    let mut c = SyncClient::connect(&f);
    let (_bo, buffer) = c.buffer([0xff, 0, 0, 0xff]);
    let (_, acquire) = c.timeline();
    let sync_surface = c.manager.get_surface(&c.surface, &c.queue.handle(), ());
    sync_surface.set_acquire_point(&acquire, 0, 1);
    c.surface.attach(Some(&buffer), 0, 0);
    c.surface.commit();
    let _ = c.client.queue.roundtrip(&mut c.client.app);
    let error = c
        .conn
        .protocol_error()
        .expect("an acquire point without a release point is a protocol error");
    assert_eq!(
        error.object_interface, "wp_linux_drm_syncobj_surface_v1",
        "{error:?}"
    );
    drop(c);

    // Forty commits at points nobody signals: at most 16 wait (each an eventfd in the
    // compositor), and when the client goes, so do they.
    std::thread::sleep(Duration::from_millis(500));
    let before = open_fds();
    let mut c = SyncClient::connect(&f);
    let (bo, buffer) = c.buffer([0xff, 0, 0, 0xff]);
    let (_, acquire) = c.timeline();
    let (_, release) = c.timeline();
    let sync_surface = c.manager.get_surface(&c.surface, &c.queue.handle(), ());
    c.roundtrip();
    let connected = open_fds();
    for point in 1..=40u32 {
        sync_surface.set_acquire_point(&acquire, 0, point);
        sync_surface.set_release_point(&release, 0, point);
        c.surface.attach(Some(&buffer), 0, 0);
        c.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        c.surface.commit();
    }
    c.roundtrip();
    let waiting = open_fds().saturating_sub(connected);
    eprintln!("[explicit-sync] 40 commits waiting: {waiting} descriptors more");
    assert!(
        (16..=20).contains(&waiting),
        "{waiting} descriptors more with 40 commits waiting (16 waits expected)"
    );
    drop((c, bo, sync_surface, acquire, release, buffer));
    let deadline = std::time::Instant::now() + T;
    while open_fds() > before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} descriptors more than before the client came, after it went",
            open_fds() - before
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Everyone else is served as before.
    let mut other = WlClient::connect(&socket(&f));
    let w = other.create_toplevel(0xff00_00ff, None);
    other.commit(w);
    assert!(
        other.wait_until(T, |app| app.windows[w].drawn_size.is_some()),
        "a new client's window was never configured"
    );
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_subsurface_that_goes_while_waiting_for_its_acquire_point_does_not_hold_up_its_parent() {
    common::init_logging();
    let f = gpu_fixture();
    let mut c = SyncClient::connect(&f);
    let qh = c.queue.handle();
    let centre = |fr: &Frame| pixel(fr, MODE.width / 2, MODE.height / 2);
    let (_green_bo, green) = c.buffer([0, 0xff, 0, 0xff]);
    let (_blue_bo, blue) = c.buffer([0xff, 0, 0, 0xff]);
    let (_red_bo, red) = c.buffer([0, 0, 0xff, 0xff]);

    // The window: green, synced implicitly.
    c.surface.attach(Some(&green), 0, 0);
    c.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
    c.surface.commit();
    c.roundtrip();
    assert!(
        f.wait_frame(T, |fr| centre(fr) == (0, 0xff, 0)).is_some(),
        "the window never showed"
    );

    // A synchronized subsurface commits red at a point nobody signals; its commit goes with the
    // parent's next one (blue), which therefore waits too.
    let sub: wl_subcompositor::WlSubcompositor = c.globals.bind(&qh, 1..=1, ()).unwrap();
    let child: wl_surface::WlSurface = c.compositor.create_surface(&qh, ());
    let subsurface = sub.get_subsurface(&child, &c.surface, &qh, ());
    let (_, acquire) = c.timeline();
    let (_, release) = c.timeline();
    let sync_child = c.manager.get_surface(&child, &qh, ());
    sync_child.set_acquire_point(&acquire, 0, 1);
    sync_child.set_release_point(&release, 0, 1);
    child.attach(Some(&red), 0, 0);
    child.damage_buffer(0, 0, i32::MAX, i32::MAX);
    child.commit();
    c.surface.attach(Some(&blue), 0, 0);
    c.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
    c.surface.commit();
    c.roundtrip();
    assert!(
        f.wait_frame(Duration::from_secs(2), |fr| centre(fr) == (0xff, 0, 0))
            .is_none(),
        "the parent's commit did not wait for its subsurface's acquire point"
    );

    // The subsurface goes before its point is signalled: the parent's blue shows.
    sync_child.destroy();
    subsurface.destroy();
    child.destroy();
    c.roundtrip();
    assert!(
        f.wait_frame(T, |fr| centre(fr) == (0xff, 0, 0)).is_some(),
        "the window stayed frozen after its subsurface went"
    );
    // And it goes on taking commits.
    c.surface.attach(Some(&green), 0, 0);
    c.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
    c.surface.commit();
    c.roundtrip();
    assert!(
        f.wait_frame(T, |fr| centre(fr) == (0, 0xff, 0)).is_some(),
        "the window took no commit after its subsurface went"
    );
}
