//! Frames as dmabufs: with `gpu_frames`, GLES on a render node renders the output into a ring
//! of GBM buffers and hands each frame out as its buffer; read on the CPU, a frame is read back
//! once and shows what pixman draws.
//!
//! The tests with a render node are ignored in a plain `cargo test` (a machine without a GPU has
//! none) and run on a virtual GPU by `scripts/test.sh`:
//!
//! ```sh
//! scripts/gpu-vm.sh -- cargo test -p compositor --test gpu_frames -- --include-ignored
//! ```
//!
//! Run that way, a missing render node fails them.

mod common;

use std::time::{Duration, Instant};

use common::pattern::{assert_same, pattern_frames};
use common::wl::WlClient;
use common::{pixel, Fixture, MODE};
use compositor::{CompositorOptions, Frame, FrameData, GpuFrame, PixelAccessError, RendererChoice};

const T: Duration = Duration::from_secs(20);
const NEEDS_GPU: &str = "needs a render node: scripts/gpu-vm.sh -- cargo test -p compositor \
                         --test gpu_frames -- --ignored";
/// DRM_FORMAT_XRGB8888.
const XR24: u32 = u32::from_le_bytes(*b"XR24");

/// GLES on the render node, frames as dmabufs. Client buffer frames are on too: a fullscreen
/// `wl_shm` buffer is CPU memory, so with dmabuf frames it is drawn like everything else.
fn gpu_fixture() -> Fixture {
    let node = common::render_node(NEEDS_GPU);
    let f = Fixture::with_options(CompositorOptions {
        renderer: RendererChoice::Gles,
        render_node: Some(node.clone()),
        gpu_frames: true,
        client_buffer_frames: true,
        scale_filter: compositor::ScaleFilter::Nearest,
        ..CompositorOptions::new(MODE)
    });
    assert_eq!(
        f.handle.renderer().render_node.as_deref(),
        Some(node.as_path())
    );
    f
}

/// The frame's GPU buffer, checked: XRGB8888, planes with open file descriptors and room for
/// a row, drawn.
fn gpu(frame: &Frame) -> &GpuFrame {
    let FrameData::Dmabuf(gpu) = &frame.data else {
        panic!("frame {} is not a dmabuf: {:?}", frame.seq, frame.data);
    };
    assert_eq!(gpu.fourcc(), XR24, "{gpu:?}");
    let planes = gpu.planes();
    assert!(!planes.is_empty(), "{gpu:?}");
    let main = &planes[0];
    assert!(main.stride >= frame.width * 4, "{gpu:?}: {planes:?}");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&main.fd);
    // SAFETY: fcntl(F_GETFD) on a descriptor the frame keeps open; reads flags only.
    assert!(
        unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0,
        "plane fd {fd}"
    );
    gpu.wait_rendered().expect("the GPU finishes the frame");
    assert!(gpu.is_rendered());
    gpu
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn the_test_pattern_in_dmabuf_frames_shows_what_pixman_draws() {
    common::init_logging();
    let pixman = pattern_frames(
        &Fixture::with_options(CompositorOptions {
            renderer: RendererChoice::Pixman,
            ..CompositorOptions::new(MODE)
        }),
        |_| {},
    );
    // Holding on to the frame before the one just taken keeps two buffers out of the ring, so
    // renders go to buffers that hold frames of two and three renders ago: damage by buffer age.
    let mut previous = None;
    let mut dmabufs = 0;
    let f = gpu_fixture();
    let gles = pattern_frames(&f, |frame| {
        gpu(frame);
        dmabufs += 1;
        previous = Some(frame.clone());
    });
    drop(previous);
    let common: Vec<u64> = pixman
        .keys()
        .filter(|n| gles.contains_key(n))
        .copied()
        .collect();
    assert!(
        common.len() >= 5,
        "few counters drawn by both: pixman {:?}, gles {:?}",
        pixman.keys().collect::<Vec<_>>(),
        gles.keys().collect::<Vec<_>>()
    );
    for n in common {
        assert_same(&format!("test pattern frame {n}"), &pixman[&n], &gles[&n]);
    }
    eprintln!("{dmabufs} dmabuf frames");
}

/// A client whose one window is filled with `colour`, committed again with each new colour.
struct Painter {
    client: WlClient,
    window: usize,
}

impl Painter {
    fn new(f: &Fixture, colour: u32) -> Self {
        let mut client = WlClient::connect(&f.handle.runtime_dir().join(f.handle.socket_name()));
        let window = client.create_toplevel(colour, None);
        client.commit(window);
        client.wait_mapped(window);
        Self { client, window }
    }

    fn paint(&mut self, colour: u32) {
        self.client.app.windows[self.window].colour = colour;
        self.client.redraw(self.window);
    }
}

/// Whether the middle of the frame shows `rgb`.
fn shows(frame: &Frame, rgb: (u8, u8, u8)) -> bool {
    let (b, g, r) = pixel(frame, frame.width / 2, frame.height / 2);
    (r, g, b) == rgb
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn frames_hold_their_buffers_and_give_them_back_when_dropped() {
    common::init_logging();
    let f = gpu_fixture();
    let mut painter = Painter::new(&f, 0xff20_4060);
    let rx = f.handle.frames();
    // Hold every frame while the client keeps drawing: the ring runs out and the compositor
    // waits, rendering nothing, but keeps serving the client.
    let mut held: Vec<Frame> = Vec::new();
    let mut quiet_since = Instant::now();
    let mut colour = 0u32;
    while quiet_since.elapsed() < Duration::from_millis(1500) {
        assert!(
            held.len() <= 8,
            "the ring never ran out: {} frames",
            held.len()
        );
        colour += 1;
        painter.paint(0xff00_0000 | ((colour * 8) & 0x00ff_ffff));
        painter.client.dispatch_timeout(Duration::from_millis(30));
        if let Some(frame) = rx.recv_timeout(Duration::from_millis(30)) {
            gpu(&frame);
            held.push(frame);
            quiet_since = Instant::now();
        }
    }
    assert!(
        (2..=4).contains(&held.len()),
        "{} frames held when the ring ran out; it has 4 buffers, one of them for the next render",
        held.len()
    );
    let distinct: std::collections::HashSet<i32> = held
        .iter()
        .map(|fr| std::os::fd::AsRawFd::as_raw_fd(&gpu(fr).planes()[0].fd))
        .collect();
    assert_eq!(
        distinct.len(),
        held.len(),
        "each held frame has a buffer of its own"
    );
    painter.client.roundtrip();

    // Given back, the buffers are drawn into again: the newest colour shows.
    drop(held);
    painter.paint(0xff10_e010);
    let frame = f
        .wait_frame(T, |fr| shows(fr, (0x10, 0xe0, 0x10)))
        .expect("no frame after the held ones were dropped");
    gpu(&frame);
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn dmabuf_frames_switch_to_cpu_memory_and_back_at_run_time() {
    common::init_logging();
    let f = gpu_fixture();
    let mut painter = Painter::new(&f, 0xffc0_2030);
    let frame = f
        .wait_frame(T, |fr| shows(fr, (0xc0, 0x20, 0x30)))
        .expect("the window in a dmabuf frame");
    gpu(&frame);

    // Off, as when the encoder falls back to software: CPU frames of the same picture (the
    // client's own buffer, the window being fullscreen). The dmabuf frame taken before stays
    // readable.
    f.handle.set_gpu_frames(false);
    painter.paint(0xff30_c020);
    let cpu = f
        .wait_frame(T, |fr| shows(fr, (0x30, 0xc0, 0x20)))
        .expect("the new colour after switching");
    assert!(
        matches!(cpu.data, FrameData::Client { .. } | FrameData::Cpu { .. }),
        "{:?}",
        cpu.data
    );
    assert!(shows(&frame, (0xc0, 0x20, 0x30)));

    f.handle.set_gpu_frames(true);
    painter.paint(0xff20_30c0);
    let back = f
        .wait_frame(T, |fr| shows(fr, (0x20, 0x30, 0xc0)))
        .expect("the new colour after switching back");
    gpu(&back);
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_dmabuf_frame_outliving_its_compositor_says_so_when_read() {
    common::init_logging();
    let f = gpu_fixture();
    let _painter = Painter::new(&f, 0xff80_8080);
    let frame = f
        .wait_frame(T, |fr| matches!(fr.data, FrameData::Dmabuf(_)))
        .expect("a dmabuf frame");
    drop(_painter);
    drop(f);
    // Never read while the compositor ran, it cannot be read back now; it says so at once.
    let started = Instant::now();
    assert_eq!(
        frame.to_vec().unwrap_err(),
        PixelAccessError::CompositorGone
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The buffer itself is still there for a GPU consumer.
    gpu(&frame);
}

#[test]
fn without_a_render_node_frames_stay_in_cpu_memory() {
    common::init_logging();
    // Pixman here; GLES on Mesa's software device has no GBM either (both log why).
    for renderer in [RendererChoice::Pixman, common::test_renderer()] {
        let f = Fixture::with_options(CompositorOptions {
            renderer,
            gpu_frames: true,
            ..CompositorOptions::new(MODE)
        });
        if f.handle.renderer().render_node.is_some() {
            continue;
        }
        let _painter = Painter::new(&f, 0xff40_a0e0);
        let frame = f
            .wait_frame(T, |fr| shows(fr, (0x40, 0xa0, 0xe0)))
            .expect("the window");
        assert!(
            matches!(frame.data, FrameData::Cpu { .. }),
            "{:?} on {:?}",
            frame.data,
            f.handle.renderer()
        );
    }
}
