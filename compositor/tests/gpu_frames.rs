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

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::dmabuf::DmabufClient;
use common::pattern::{assert_same_frames, pattern_frames};
use common::wl::WlClient;
use common::{have, pixel, Fixture, MODE};
use compositor::{
    CompositorOptions, ConvertError, Frame, FrameData, GpuFrame, PixelAccessError, RendererChoice,
    YuvConversion, YuvImage, YuvLayout, YuvStorage,
};

const T: Duration = Duration::from_secs(20);
const NEEDS_GPU: &str = "needs a render node: scripts/gpu-vm.sh -- cargo test -p compositor \
                         --test gpu_frames -- --ignored";
/// DRM_FORMAT_XRGB8888.
const XR24: u32 = u32::from_le_bytes(*b"XR24");
/// DRM_FORMAT_XRGB2101010 and DRM_FORMAT_XBGR2101010: the formats of a 10-bit ring.
const XR30: u32 = u32::from_le_bytes(*b"XR30");
const XB30: u32 = u32::from_le_bytes(*b"XB30");
/// DRM_FORMAT_XBGR8888: red in the low byte.
const XB24: u32 = u32::from_le_bytes(*b"XB24");

/// GLES on the render node, frames as dmabufs. Client buffer frames are on too: a fullscreen
/// `wl_shm` buffer is CPU memory, so with dmabuf frames it is drawn like everything else.
fn gpu_fixture() -> Fixture {
    gpu_fixture_at(MODE)
}

/// [`gpu_fixture`] with an output of `mode`.
fn gpu_fixture_at(mode: compositor::Mode) -> Fixture {
    let node = common::render_node(NEEDS_GPU);
    let f = Fixture::with_options(CompositorOptions {
        renderer: RendererChoice::Gles,
        render_node: Some(node.clone()),
        gpu_frames: true,
        client_buffer_frames: true,
        scale_filter: compositor::ScaleFilter::Nearest,
        ..CompositorOptions::new(mode)
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
    gpu_in(frame, &[XR24])
}

/// [`gpu`], for a buffer in one of `fourccs`.
fn gpu_in<'a>(frame: &'a Frame, fourccs: &[u32]) -> &'a GpuFrame {
    let FrameData::Dmabuf(gpu) = &frame.data else {
        panic!("frame {} is not a dmabuf: {:?}", frame.seq, frame.data);
    };
    assert!(fourccs.contains(&gpu.fourcc()), "{gpu:?}");
    let planes = gpu.planes();
    assert!(!planes.is_empty(), "{gpu:?}");
    let main = &planes[0];
    assert!(main.stride >= frame.width * 4, "{gpu:?}: {planes:?}");
    let fd = main.fd.as_raw_fd();
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
    // Holding on to none, one or two of the frames before the one just taken keeps as many
    // buffers out of the ring, so renders go to buffers that hold frames of one to four renders
    // ago: damage by buffer age. Between frames in a row, nothing outside a frame's damage
    // changed.
    let mut previous: std::collections::VecDeque<Frame> = Default::default();
    let mut last: Option<(u64, Vec<u8>)> = None;
    let (mut dmabufs, mut checked) = (0, 0);
    let f = gpu_fixture();
    let gles = pattern_frames(&f, |frame| {
        gpu(frame);
        dmabufs += 1;
        let pixels = frame.to_vec().unwrap();
        if let Some((seq, before)) = &last {
            if *seq + 1 == frame.seq {
                let changed = changed_outside_damage(frame, before, &pixels);
                assert_eq!(
                    changed, 0,
                    "frame {}: pixels changed outside its damage",
                    frame.seq
                );
                checked += 1;
            }
        }
        last = Some((frame.seq, pixels));
        previous.push_back(frame.clone());
        while previous.len() > (frame.seq % 3) as usize {
            previous.pop_front();
        }
    });
    drop(previous);
    assert!(
        checked >= 5,
        "only {checked} frames followed the one before"
    );
    assert_same_frames(&pixman, &gles, 5);
    eprintln!("{dmabufs} dmabuf frames, {checked} damage checked");
}

/// Converts `frame` (8 bits a channel) on the GPU into `layout` with Rec. 601 limited and Rec. 709 full range,
/// and checks each picture against the CPU's conversion of the frame's read-back pixels:
/// every sample within one code. Returns how many samples were off by one.
fn assert_converts_like_the_cpu(frame: &Frame, layouts: &[YuvLayout]) -> usize {
    let pixels = frame.to_vec().unwrap();
    let mut off = 0;
    for &layout in layouts {
        for (kr, kb, full_range) in [(0.299, 0.114, false), (0.2126, 0.0722, true)] {
            let conversion = YuvConversion {
                layout,
                kr,
                kb,
                full_range,
            };
            let gpu = gpu_in(frame, &[XR24, XB24])
                .to_yuv(&conversion)
                .expect("converting on the GPU");
            let cpu = compositor::convert_on_cpu(
                &pixels,
                frame.width,
                frame.height,
                frame.stride() as usize,
                &conversion,
            )
            .unwrap();
            for plane in 0..layout.planes() {
                for row in 0..layout.plane_rows(plane, frame.height) {
                    for i in 0..frame.width {
                        let (g, c) = (gpu.sample(plane, row, i), cpu.sample(plane, row, i));
                        let d = g.unwrap().abs_diff(c.unwrap());
                        assert!(
                            d <= 1,
                            "frame {}, {conversion:?}: plane {plane} row {row} sample {i} is \
                             {g:?} on the GPU, {c:?} on the CPU",
                            frame.seq
                        );
                        off += usize::from(d);
                    }
                }
            }
        }
    }
    off
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn dmabuf_frames_convert_to_yuv_on_the_gpu_like_the_cpu() {
    common::init_logging();
    let f = gpu_fixture();
    // Two frames of the pattern, some renders apart, kept (with their buffers) and converted
    // once the pattern has stopped: the CPU's reference is slow on an emulated CPU.
    let mut kept: Vec<Frame> = Vec::new();
    pattern_frames(&f, |frame| {
        gpu(frame);
        let wanted = match kept.last() {
            None => frame.seq >= 8,
            Some(last) => kept.len() < 2 && frame.seq >= last.seq + 4,
        };
        if wanted {
            kept.push(frame.clone());
        }
    });
    assert_eq!(kept.len(), 2, "frames of the pattern kept");
    // Every layout on one, NV12 (what most streams take) on the other.
    let mut off = assert_converts_like_the_cpu(&kept[0], &YuvLayout::ALL);
    off += assert_converts_like_the_cpu(&kept[1], &[YuvLayout::Nv12]);
    eprintln!(
        "frames {} and {} converted; {off} samples one code off",
        kept[0].seq, kept[1].seq
    );
}

/// The rows of a single-plane buffer of `width` x `height` texels of 4 bytes, as another user of
/// the render node sees them: imported into a GBM device of its own and mapped (a transfer from
/// the GPU where its memory is not the CPU's).
fn mapped_rows(
    fd: std::os::fd::BorrowedFd<'_>,
    (width, height, stride): (u32, u32, u32),
    format: smithay::reexports::gbm::Format,
) -> Vec<Vec<u8>> {
    use smithay::reexports::gbm::{self, BufferObjectFlags};
    let node = std::fs::File::options()
        .read(true)
        .write(true)
        .open(common::render_node(NEEDS_GPU))
        .unwrap();
    let device = gbm::Device::new(node).expect("GBM on the render node");
    let bo = device
        .import_buffer_object_from_dma_buf::<()>(
            fd,
            width,
            height,
            stride,
            format,
            BufferObjectFlags::empty(),
        )
        .expect("importing the buffer into GBM");
    bo.map(0, 0, width, height, |mapped| {
        let stride = mapped.stride() as usize;
        mapped
            .buffer()
            .chunks(stride)
            .take(height as usize)
            .map(|r| r[..width as usize * 4].to_vec())
            .collect()
    })
    .expect("mapping the buffer")
}

/// The bytes of `image`'s buffer as another user of the render node sees them ([`mapped_rows`]).
/// All its rows, the planes' and those to spare.
fn image_bytes(image: &YuvImage) -> Vec<u8> {
    let buffer = image.buffer().expect("a picture in a buffer");
    let planes = buffer.planes();
    assert_eq!(planes.len(), 1, "{image:?}");
    let size = (image.packed_size().0, buffer.rows(), buffer.pitch());
    let format = smithay::reexports::gbm::Format::Abgr8888;
    mapped_rows(planes[0].fd, size, format).concat()
}

/// A dmabuf frame of the test pattern (the eighth or a later one), with the fixture whose
/// compositor rendered it and converts it.
fn pattern_frame() -> (Fixture, Frame) {
    let f = gpu_fixture();
    let mut kept = None;
    pattern_frames(&f, |frame| {
        if kept.is_none() && frame.seq >= 8 {
            kept = Some(frame.clone());
        }
    });
    let frame = kept.expect("a frame of the pattern");
    (f, frame)
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn dmabuf_frames_convert_into_yuv_images_left_on_the_gpu() {
    common::init_logging();
    let (_f, frame) = pattern_frame();
    let gpu = gpu(&frame);
    for layout in YuvLayout::ALL {
        let conversion = YuvConversion {
            layout,
            kr: 0.2126,
            kb: 0.0722,
            full_range: layout == YuvLayout::Nv12,
        };
        let image = gpu
            .to_yuv_image(&conversion, YuvStorage::Buffer)
            .expect("converting into a buffer");
        image.wait_rendered().unwrap();
        let buffer = image.buffer().expect("a picture in a buffer");
        assert!(!buffer.egl_image().as_ptr().is_null());
        assert_eq!((image.width(), image.height()), (frame.width, frame.height));
        // Linear where the GPU lists it; virgl lists only the driver's implicit layout.
        assert!(
            [0, (1 << 56) - 1].contains(&buffer.modifier()),
            "linear or implicit: {image:?}"
        );
        assert_eq!(
            image.packed_size(),
            layout.packed_size(frame.width, frame.height)
        );
        // Linear, and with rows to spare past the planes for an encoder that reads whole
        // blocks (its chroma plane's last block too).
        assert!(buffer.is_linear(), "{image:?}");
        let planes = buffer.planes();
        // SAFETY: a plain call on the buffer's descriptor, which nothing reads at an offset.
        let size = unsafe { libc::lseek(planes[0].fd.as_raw_fd(), 0, libc::SEEK_END) };
        let bytes = (size.max(0) as u64).saturating_sub(u64::from(planes[0].offset));
        let rows = bytes / u64::from(buffer.pitch());
        // SLACK_ROWS in compositor/src/backend/gles.rs.
        assert!(
            rows >= u64::from(image.packed_size().1 + 64),
            "{layout:?}: {rows} rows for {} packed",
            image.packed_size().1
        );
        drop(planes);
        assert_eq!(buffer.rows(), image.packed_size().1 + 64, "{layout:?}");
        // What the GPU read back for the same conversion (checked against the CPU's elsewhere)
        // is what the buffer holds, byte for byte, plane by plane.
        let read = gpu.to_yuv(&conversion).unwrap();
        let bytes = image_bytes(&image);
        let row = texels_bytes(&image);
        for plane in 0..layout.planes() {
            let first = image.plane_row(plane) as usize;
            for r in 0..layout.plane_rows(plane, frame.height) as usize {
                let ours = &bytes[(first + r) * row..][..image.row_bytes() as usize];
                let theirs = &read.plane(plane).unwrap()[r * read.stride()..][..read.row_bytes()];
                assert!(ours == theirs, "{layout:?}: plane {plane} row {r} differs");
            }
        }
        // The rows past the planes hold nothing: the picture lies in the top rows. (Cleared by
        // the conversion; a new buffer is zeros anyway, so this does not show the clear.)
        let past = image.packed_size().1 as usize * row;
        assert!(
            bytes[past..].iter().all(|&b| b == 0),
            "{layout:?}: the rows past the planes are not zeros"
        );
        // Read back into CPU memory (for an encoder that fails on the GPU), the same again;
        // and so is the same conversion into a texture.
        let texture = gpu
            .to_yuv_image(&conversion, YuvStorage::Texture)
            .expect("converting into a texture");
        assert!(texture.buffer().is_none());
        texture.wait_rendered().unwrap();
        for (what, image) in [("buffer", &image), ("texture", &texture)] {
            let back = image.read().expect("reading the image back");
            for plane in 0..layout.planes() {
                assert!(
                    back.plane(plane) == read.plane(plane),
                    "{layout:?}: plane {plane} of the {what}"
                );
            }
        }
        // A picture in a buffer lends no texture.
        let err = image.with_texture(|_| ()).unwrap_err();
        assert!(err.to_string().contains("not in a GL texture"), "{err}");
    }
    // Four buffers: a fifth conversion while four images are held fails, and works again once
    // one is dropped.
    let nv12 = YuvConversion {
        layout: YuvLayout::Nv12,
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    let into_buffer = || gpu.to_yuv_image(&nv12, YuvStorage::Buffer);
    let egl_image = |image: &YuvImage| image.buffer().unwrap().egl_image().clone();
    let mut held: Vec<YuvImage> = (0..4).map(|_| into_buffer().unwrap()).collect();
    assert!(!egl_image(&held[0]).same(&egl_image(&held[1])));
    match into_buffer() {
        Err(ConvertError::Failed(reason)) => assert!(reason.contains("held"), "{reason}"),
        other => panic!("a fifth image while four are held: {other:?}"),
    }
    let first = held.remove(0);
    let image = egl_image(&first);
    drop(first);
    let again = into_buffer().expect("a buffer back in the pool");
    assert!(
        egl_image(&again).same(&image),
        "the dropped buffer is used again"
    );
}

/// Where a [`Kept`] was dropped: on which thread, if it was.
type DroppedOn = Arc<Mutex<Option<ThreadId>>>;

/// What a consumer keeps with a texture ([`compositor::TextureAccess::kept`]); says where it is
/// dropped.
struct Kept(DroppedOn);

impl Drop for Kept {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(std::thread::current().id());
    }
}

/// What [`YuvImage::with_texture`] showed the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lent {
    texture: u32,
    size: (u32, u32),
    kept_ours: bool,
    /// `glIsTexture` of the texture: the GL context it lives in is current.
    texture_current: bool,
}

/// Lends `image`'s texture, keeps a [`Kept`] with it where nothing is kept yet, and says what
/// the consumer saw.
fn lend(image: &YuvImage, dropped: &DroppedOn) -> Lent {
    let dropped = dropped.clone();
    let test_thread = std::thread::current().id();
    image
        .with_texture(move |access| {
            assert_ne!(
                std::thread::current().id(),
                test_thread,
                "not the compositor's thread"
            );
            let kept_ours = access
                .kept
                .as_ref()
                .is_some_and(|k| k.downcast_ref::<Kept>().is_some());
            if access.kept.is_none() {
                *access.kept = Some(Box::new(Kept(dropped)));
            }
            // SAFETY: EGL is loaded (the compositor runs on it), and gives glIsTexture's address
            // (GLboolean glIsTexture(GLuint)), whose call asks the current context.
            let texture_current = unsafe {
                let address = smithay::backend::egl::get_proc_address("glIsTexture");
                assert!(!address.is_null(), "no glIsTexture");
                let is_texture: extern "system" fn(u32) -> u8 = std::mem::transmute(address);
                is_texture(access.texture) == 1
            };
            Lent {
                texture: access.texture,
                size: access.size,
                kept_ours,
                texture_current,
            }
        })
        .expect("lending the texture")
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn textures_are_lent_with_the_context_current_and_keep_what_consumers_leave() {
    common::init_logging();
    let (_f, frame) = pattern_frame();
    let gpu = gpu(&frame);
    let conversion = |layout| YuvConversion {
        layout,
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };
    let into_texture = |layout| gpu.to_yuv_image(&conversion(layout), YuvStorage::Texture);
    let dropped = DroppedOn::default();
    let first = into_texture(YuvLayout::Nv12).expect("converting into a texture");
    let lent = lend(&first, &dropped);
    let packed = first.packed_size();
    // SLACK_ROWS in compositor/src/backend/gles.rs.
    assert_eq!(lent.size, (packed.0, packed.1 + 64));
    assert!(lent.texture_current, "{lent:?}");
    assert!(!lent.kept_ours, "a new texture has nothing kept");
    // The texture comes back for the next picture, with what the consumer kept.
    drop(first);
    let second = into_texture(YuvLayout::Nv12).expect("converting again");
    let again = lend(&second, &dropped);
    assert_eq!(
        again.texture, lent.texture,
        "the texture given back is used again"
    );
    assert!(
        again.kept_ours,
        "what the consumer kept stays with the texture"
    );
    // Four textures: a fifth picture while four are held fails.
    let mut held = vec![second];
    held.extend((0..3).map(|_| into_texture(YuvLayout::Nv12).expect("a texture")));
    let others: Vec<Lent> = held[1..].iter().map(|i| lend(i, &dropped)).collect();
    assert!(others
        .iter()
        .all(|o| o.texture != lent.texture && !o.kept_ours));
    match into_texture(YuvLayout::Nv12) {
        Err(ConvertError::Failed(reason)) => assert!(reason.contains("held"), "{reason}"),
        other => panic!("a fifth texture while four are held: {other:?}"),
    }
    // Pictures of another size take new textures; the old ones go once no picture holds them,
    // and what was kept with them goes first.
    drop(held);
    assert_eq!(*dropped.lock().unwrap(), None);
    let bigger = into_texture(YuvLayout::Yuv444).expect("a texture of another size");
    assert!(!lend(&bigger, &DroppedOn::default()).kept_ours);
    let dropped_on = dropped.lock().unwrap().take();
    let dropped_on = dropped_on.expect("what the consumers kept went with the old textures");
    assert_ne!(
        dropped_on,
        std::thread::current().id(),
        "dropped on the compositor's thread"
    );
}

/// Bytes a row of a packed Y'CbCr buffer takes, as mapped by [`image_bytes`].
fn texels_bytes(image: &YuvImage) -> usize {
    image.packed_size().0 as usize * 4
}

/// How many pixels differ between `before` and `after` (the pixels of `frame`) outside
/// `frame`'s damage.
fn changed_outside_damage(frame: &Frame, before: &[u8], after: &[u8]) -> usize {
    let stride = frame.stride() as usize;
    let damaged = |x: u32, y: u32| {
        frame
            .damage
            .iter()
            .any(|r| (r.x..r.x + r.width).contains(&x) && (r.y..r.y + r.height).contains(&y))
    };
    let mut changed = 0;
    for y in 0..frame.height {
        for x in 0..frame.width {
            let i = y as usize * stride + x as usize * 4;
            if before[i..i + 3] != after[i..i + 3] && !damaged(x, y) {
                changed += 1;
            }
        }
    }
    changed
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
    // Hold every frame while the client keeps drawing: the ring runs out after four and the
    // compositor waits, rendering nothing, but keeps serving the client.
    let mut held: Vec<Frame> = Vec::new();
    let mut colour = 0u32;
    let mut paint = |painter: &mut Painter| {
        colour += 1;
        painter.paint(0xff00_0000 | ((colour * 8) & 0x00ff_ffff));
        painter.client.dispatch_timeout(Duration::from_millis(20));
    };
    let deadline = Instant::now() + T;
    while held.len() < 4 && Instant::now() < deadline {
        paint(&mut painter);
        if let Some(frame) = rx.recv_timeout(Duration::from_millis(20)) {
            gpu(&frame);
            held.push(frame);
        }
    }
    assert_eq!(held.len(), 4, "frames held before the ring ran out");
    let quiet = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet {
        paint(&mut painter);
        if let Some(frame) = rx.recv_timeout(Duration::from_millis(20)) {
            panic!("a fifth frame while four are held: {frame:?}");
        }
    }
    let distinct: std::collections::HashSet<i32> = held
        .iter()
        .map(|fr| gpu(fr).planes()[0].fd.as_raw_fd())
        .collect();
    assert_eq!(distinct.len(), 4, "each held frame has a buffer of its own");
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
fn a_mode_change_while_frames_are_held_gets_a_new_ring() {
    common::init_logging();
    let f = gpu_fixture();
    let mut painter = Painter::new(&f, 0xff60_2090);
    let old = f
        .wait_frame(T, |fr| shows(fr, (0x60, 0x20, 0x90)))
        .expect("the window");
    gpu(&old);
    // One more, not read yet: the read-back comes after its ring is gone.
    painter.paint(0xff70_3090);
    let unread = f
        .wait_frame(T, |fr| matches!(fr.data, FrameData::Dmabuf(_)))
        .expect("another frame");
    // A client asks for another size while the encoder still holds frames of the old one.
    let mode = compositor::Mode {
        width: 800,
        height: 600,
        refresh_mhz: 60_000,
    };
    f.handle.set_mode(mode);
    painter.client.dispatch_timeout(Duration::from_millis(200));
    painter.paint(0xff90_6020);
    let new = f
        .wait_frame(T, |fr| fr.width == 800 && shows(fr, (0x90, 0x60, 0x20)))
        .expect("a frame at the new size");
    let planes = gpu(&new).planes();
    assert!(planes[0].stride >= 800 * 4);
    // The old frames are still whole, at their own size.
    assert_eq!((unread.width, unread.height), (640, 480));
    assert!(
        shows(&unread, (0x70, 0x30, 0x90)) || shows(&unread, (0x60, 0x20, 0x90)),
        "{:?}",
        pixel(&unread, 320, 240)
    );
    assert!(shows(&old, (0x60, 0x20, 0x90)));
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
fn a_fullscreen_client_dmabuf_is_the_frame_while_nothing_is_drawn_over_it() {
    common::init_logging();
    assert!(have("weston-simple-egl"), "weston-simple-egl is missing");
    let f = gpu_fixture();
    // Opaque, made fullscreen by the compositor: EGL on the GPU draws its triangle into a
    // dmabuf at the output's size, which nothing covers. (Not `-f`: then it hides the cursor.)
    let _client = f.spawn_client("weston-simple-egl", &["-o"]);
    let rx = f.handle.frames();
    let deadline = Instant::now() + T;
    let (mut client_frames, mut lit) = (0, 0);
    while client_frames < 10 {
        assert!(
            Instant::now() < deadline,
            "{client_frames} frames were the client's own dmabuf"
        );
        let Some(frame) = rx.recv_timeout(T) else {
            continue;
        };
        if gpu(&frame).is_client_buffer() {
            client_frames += 1;
            // Read back from the client's buffer: the triangle is there.
            lit = lit.max(common::non_black_pixels(
                &frame,
                0,
                0,
                frame.width,
                frame.height,
            ));
            if client_frames == 1 {
                // The client's buffer converts like the compositor's own.
                assert_converts_like_the_cpu(&frame, &[YuvLayout::Nv12]);
            }
        }
        // Dropped at once: the client gets each buffer back and keeps drawing.
    }
    assert!(lit > 1000, "the triangle: {lit} pixels lit");

    // A window over it (the client hides the cursor while fullscreen): drawn into the ring.
    let painter = Painter::new(&f, 0xff20_c0c0);
    let composited = f
        .wait_frame(T, |fr| shows(fr, (0x20, 0xc0, 0xc0)))
        .expect("the window over the client");
    assert!(!gpu(&composited).is_client_buffer());
    drop(composited);
    // Gone again: the client's buffers are the frames once more.
    drop(painter);
    let again = f
        .wait_frame(
            T,
            |fr| matches!(&fr.data, FrameData::Dmabuf(g) if g.is_client_buffer()),
        )
        .expect("the client's own buffer as the frame again");
    assert!(common::non_black_pixels(&again, 0, 0, again.width, again.height) > 1000);
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
    let nv12 = YuvConversion {
        layout: YuvLayout::Nv12,
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    assert_eq!(
        gpu(&frame).to_yuv(&nv12).unwrap_err(),
        ConvertError::CompositorGone
    );
    // Not after waiting for a read-back (5 s) that nobody serves.
    assert!(started.elapsed() < Duration::from_secs(4));
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
        let mut painter = Painter::new(&f, 0xff40_a0e0);
        let frame = f
            .wait_frame(T, |fr| shows(fr, (0x40, 0xa0, 0xe0)))
            .expect("the window");
        assert!(
            matches!(frame.data, FrameData::Cpu { .. }),
            "{:?} on {:?}",
            frame.data,
            f.handle.renderer()
        );
        // 10-bit frames asked for (a 10-bit stream): there is no ring to make in 10 bits, so
        // the target stays as it is and nothing is drawn anew.
        let rx = f.handle.frames();
        f.handle.set_ten_bit_frames(true);
        if let Some(frame) = rx.recv_timeout(Duration::from_secs(2)) {
            panic!(
                "frame {} drawn for nothing on {:?}",
                frame.seq,
                f.handle.renderer()
            );
        }
        painter.paint(0xff80_2040);
        let frame = f
            .wait_frame(T, |fr| shows(fr, (0x80, 0x20, 0x40)))
            .expect("the new colour");
        assert!(
            matches!(frame.data, FrameData::Cpu { .. }),
            "{:?}",
            frame.data
        );
    }
}

/// Each pixel of a frame's buffer, row by row, as R, G and B codes the way the buffer holds them
/// (imported into a GBM device of the test's own and mapped): 8 bits in XRGB8888 and
/// XBGR8888, 10 in XRGB2101010 and XBGR2101010.
fn texels(frame: &Frame) -> Vec<[u32; 3]> {
    let gpu = gpu_in(frame, &[XR24, XB24, XR30, XB30]);
    let planes = gpu.planes();
    let format = smithay::reexports::gbm::Format::try_from(gpu.fourcc()).expect("a DRM format");
    let rgb = |t: u32| match gpu.fourcc() {
        XR30 => [(t >> 20) & 0x3ff, (t >> 10) & 0x3ff, t & 0x3ff],
        XB30 => [t & 0x3ff, (t >> 10) & 0x3ff, (t >> 20) & 0x3ff],
        XB24 => [t & 0xff, (t >> 8) & 0xff, (t >> 16) & 0xff],
        _ => [(t >> 16) & 0xff, (t >> 8) & 0xff, t & 0xff],
    };
    let size = (frame.width, frame.height, planes[0].stride);
    mapped_rows(planes[0].fd, size, format)
        .iter()
        .flat_map(|row| row.chunks_exact(4))
        .map(|t| rgb(u32::from_le_bytes([t[0], t[1], t[2], t[3]])))
        .collect()
}

/// How many red levels `texels` holds.
fn red_levels(texels: &[[u32; 3]]) -> usize {
    let reds: std::collections::BTreeSet<u32> = texels.iter().map(|t| t[0]).collect();
    reds.len()
}

/// Checks that `frame` read back into CPU memory is `texels` (its buffer's codes, up to `max`)
/// in 8 bits, each channel in its place, within one code.
fn assert_read_back_is(frame: &Frame, texels: &[[u32; 3]], max: f64) {
    let (width, height) = (frame.width as usize, frame.height as usize);
    let stride = frame.stride() as usize;
    frame
        .with_pixels(|data| {
            for y in 0..height {
                for x in 0..width {
                    let want = texels[y * width + x].map(|c| f64::from(c) * 255.0 / max);
                    let at = y * stride + x * 4;
                    let got = [data[at + 2], data[at + 1], data[at]];
                    for (c, (&got, want)) in got.iter().zip(want).enumerate() {
                        assert!(
                            (f64::from(got) - want).abs() <= 1.0,
                            "({x}, {y}) channel {c}: read back {got}, the buffer holds {want:.1}"
                        );
                    }
                }
            }
        })
        .expect("the frame read back");
}

/// Checks that `frame`, converted on the GPU for a 10-bit stream (P010, Rec. 709 full range),
/// has the luma of `texels`, its buffer's 10-bit codes: within one code for 99% of the samples.
fn assert_ten_bit_luma_is(frame: &Frame, texels: &[[u32; 3]]) {
    let (width, height) = (frame.width as usize, frame.height as usize);
    let (kr, kb) = (0.2126, 0.0722);
    let p010 = YuvConversion {
        layout: YuvLayout::P010,
        kr,
        kb,
        full_range: true,
    };
    let yuv = gpu_in(frame, &[XR30, XB30]).to_yuv(&p010).unwrap();
    let plane = yuv.plane(0).unwrap();
    let mut off = 0;
    for y in 0..height {
        let row = &plane[y * yuv.stride()..][..yuv.row_bytes()];
        for (x, sample) in row.chunks_exact(2).enumerate() {
            let luma = u16::from_le_bytes([sample[0], sample[1]]) >> 6;
            let [r, g, b] = texels[y * width + x].map(f64::from);
            let want =
                f64::from(kr) * r + (1.0 - f64::from(kr) - f64::from(kb)) * g + f64::from(kb) * b;
            if (f64::from(luma) - want).abs() > 1.0 {
                off += 1;
            }
        }
    }
    assert!(
        off < width * height / 100,
        "{off} of {} luma samples are off the 10-bit codes' luma by more than one",
        width * height
    );
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn ten_bit_frames_keep_the_levels_a_ten_bit_client_draws() {
    common::init_logging();
    assert!(
        have("weston-simple-dmabuf-egl"),
        "weston-simple-dmabuf-egl is missing"
    );
    let f = gpu_fixture();
    // A square with a colour gradient, drawn with GL into XRGB2101010 buffers of the client's
    // own, smaller than the output: composited into the ring. It moves, so not every frame
    // shows all of it.
    let _client = f.spawn_client(
        "weston-simple-dmabuf-egl",
        &["-f", "0x30335258", "-s", "480"],
    );
    let lit = |fr: &Frame| common::non_black_pixels(fr, 0, 0, fr.width, fr.height) > 10_000;
    let in_format = |fr: &Frame, fourccs: &[u32]| matches!(&fr.data, FrameData::Dmabuf(g) if fourccs.contains(&g.fourcc()));
    f.wait_frame(T, |fr| in_format(fr, &[XR24]) && lit(fr))
        .expect("the client's gradient in an 8-bit frame");

    f.handle.set_ten_bit_frames(true);
    // 10 bits: the square's gradient spans more red levels than 8 bits have.
    let mut most = 0;
    let ten = f
        .wait_frame(T, |fr| {
            if !(in_format(fr, &[XR30, XB30]) && lit(fr)) {
                return false;
            }
            most = most.max(red_levels(&texels(fr)));
            most > 300
        })
        .unwrap_or_else(|| panic!("no 10-bit frame with over 300 red levels; at most {most}"));
    let ten_texels = texels(&ten);
    // Read back into CPU memory, it is the same picture in 8 bits; converted for a 10-bit
    // stream, its luma is that of the buffer's 10-bit codes.
    assert_read_back_is(&ten, &ten_texels, 1023.0);
    assert_ten_bit_luma_is(&ten, &ten_texels);

    f.handle.set_ten_bit_frames(false);
    f.wait_frame(T, |fr| in_format(fr, &[XR24]) && lit(fr))
        .expect("8-bit frames again");
}

#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn a_fullscreen_client_dmabuf_in_rgba_order_or_ten_bits_is_the_frame() {
    common::init_logging();
    let f = gpu_fixture();
    let socket = f.handle.runtime_dir().join(f.handle.socket_name());
    let node = common::render_node(NEEDS_GPU);
    let mut c = DmabufClient::connect(&socket, &node, "game", (MODE.width, MODE.height));
    assert_eq!(
        c.size,
        (MODE.width, MODE.height),
        "the window fills the output"
    );
    let (w, h) = c.size;
    // Gradients the test knows texel by texel: red along x, green along y, blue fixed.
    let ramp = |at: u32, len: u32, max: u32| at * max / (len - 1);
    let gradient = |max: u32| move |x: u32, y: u32| [ramp(x, w, max), ramp(y, h, max), max / 2];
    let client_frame = |fr: &Frame, fourcc: u32| matches!(&fr.data, FrameData::Dmabuf(g) if g.is_client_buffer() && g.fourcc() == fourcc);
    // Each buffer shown until its frame comes; `c` keeps the buffers alive.
    let mut show = |fourcc: u32, pack: fn([u32; 3]) -> u32, max: u32| {
        let texel = gradient(max);
        let (bo, buffer) = c.buffer(fourcc, |x, y| pack(texel(x, y)));
        c.show(&buffer);
        c.roundtrip();
        let want: Vec<[u32; 3]> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| texel(x, y))
            .collect();
        (bo, buffer, want)
    };

    // 8 bits with red in the low byte (Vulkan's R8G8B8A8): the buffer is the frame as it is,
    // read back and converted with each channel in its place.
    let pack_xb24: fn([u32; 3]) -> u32 = |[r, g, b]| r | g << 8 | b << 16;
    let (_bo, _buffer, want) = show(XB24, pack_xb24, 255);
    let frame = f
        .wait_frame(T, |fr| client_frame(fr, XB24))
        .expect("the client's XBGR8888 buffer as the frame");
    assert!(
        texels(&frame) == want,
        "the frame is not the client's buffer"
    );
    assert_read_back_is(&frame, &want, 255.0);
    assert_converts_like_the_cpu(&frame, &[YuvLayout::Nv12]);
    drop(frame);

    // 10 bits (Vulkan's A2B10G10R10, a game's HDR swapchain), for a 10-bit stream: the buffer
    // is the frame, its 10-bit codes reach the conversion, and it reads back in 8 bits.
    f.handle.set_ten_bit_frames(true);
    let pack_xb30: fn([u32; 3]) -> u32 = |[r, g, b]| r | g << 10 | b << 20;
    let (_bo, _buffer, want) = show(XB30, pack_xb30, 1023);
    let ten = f
        .wait_frame(T, |fr| client_frame(fr, XB30))
        .expect("the client's XBGR2101010 buffer as the frame");
    assert!(texels(&ten) == want, "the frame is not the client's buffer");
    assert_read_back_is(&ten, &want, 1023.0);
    assert_ten_bit_luma_is(&ten, &want);
    drop(ten);

    // The other 10-bit order (Vulkan's A2R10G10B10, an X11 window of depth 30), which Smithay
    // does not read back: the frame all the same, read back through a buffer it is drawn into.
    let pack_xr30: fn([u32; 3]) -> u32 = |[r, g, b]| r << 20 | g << 10 | b;
    let (_bo, _buffer, want) = show(XR30, pack_xr30, 1023);
    let ten = f
        .wait_frame(T, |fr| client_frame(fr, XR30))
        .expect("the client's XRGB2101010 buffer as the frame");
    assert!(texels(&ten) == want, "the frame is not the client's buffer");
    assert_read_back_is(&ten, &want, 1023.0);
    assert_ten_bit_luma_is(&ten, &want);
}
