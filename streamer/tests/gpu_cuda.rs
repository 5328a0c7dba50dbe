//! The CUDA hand-off for NVENC: frames converted on the GPU into the compositor's Y'CbCr textures,
//! registered with CUDA through GL interop and copied on the GPU, into CPU memory and into
//! a CUDA frame of FFmpeg's pool (what `*_nvenc` encodes), hold what the compositor reads back
//! of those textures, byte for byte, and that is the CPU's conversion within one code.
//!
//! Beside it, what CUDA takes on this machine: GL textures made five ways and EGL images of GBM
//! buffers made four ways. The compositor's kind of texture (GLES, on an EGL display on GBM's
//! platform) must be among them; the others say what a fix could turn to where it is not.
//!
//! Needs an NVIDIA GPU with its driver and a render node, so it is ignored in a plain
//! `cargo test`; `scripts/gpu-check.sh` runs the two (its `cuda` and `cuda-interop` stages):
//!
//! ```sh
//! cargo test -p streamer --test gpu_cuda -- --include-ignored frames_reach_cuda
//! cargo test -p streamer --test gpu_cuda -- --include-ignored cuda_registers
//! ```

mod gpu_common;

use std::ffi::CStr;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use compositor::{FrameData, YuvLayout, YuvStorage};
use gpu_common::PatternOnGpu;
use smithay::backend::allocator::dmabuf::AsDmabuf;
use smithay::backend::allocator::gbm::{GbmAllocator, GbmBufferFlags, GbmDevice};
use smithay::backend::allocator::{Allocator, Buffer, Fourcc, Modifier};
use smithay::backend::egl::display::EGLDisplayHandle;
use smithay::backend::egl::ffi::egl;
use smithay::backend::egl::{EGLDevice, EGLDisplay};
use smithay::backend::renderer::gles::ffi::{self as gl_ffi, Gles2};
use streamer::encode::cuda::{Cuda, CudaCopier, CudaFrames, PlaneDestination};
use streamer::encode::Colorspace;

const T: Duration = Duration::from_secs(30);

#[test]
#[ignore = "needs an NVIDIA GPU with a render node (scripts/gpu-check.sh)"]
fn frames_reach_cuda_from_the_gpu_as_the_compositor_converted_them() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    let cuda = Cuda::open(Some(&node)).expect("CUDA on the GPU of the render node");
    let name = cuda.name().to_string();
    let (width, height) = (640, 480);
    let pattern = PatternOnGpu::start(Some(node), (width, height), false, Duration::from_secs(60))
        .expect("GLES on the render node");
    let frame = pattern.dmabuf_frame(T);
    let FrameData::Dmabuf(gpu) = &frame.data else {
        unreachable!("a dmabuf frame");
    };
    let pixels = frame.to_vec().expect("the frame read back");
    let mut copier = CudaCopier::new(cuda);
    for layout in YuvLayout::ALL {
        let conversion = Colorspace::Rec709Limited.yuv_conversion(layout);
        let image = gpu
            .to_yuv_image(&conversion, YuvStorage::Texture)
            .expect("converting into a texture");
        let want = image.read().expect("reading the texture back");
        // The conversion on this GPU is the CPU's, within one code.
        let cpu = compositor::convert_on_cpu(
            &pixels,
            width,
            height,
            frame.stride() as usize,
            &conversion,
        )
        .unwrap();
        for plane in 0..layout.planes() {
            for row in 0..layout.plane_rows(plane, height) {
                for i in 0..width {
                    let (g, c) = (want.sample(plane, row, i), cpu.sample(plane, row, i));
                    assert!(
                        g.unwrap().abs_diff(c.unwrap()) <= 1,
                        "{layout:?}: plane {plane} row {row} sample {i} is {g:?} on the GPU, \
                         {c:?} on the CPU"
                    );
                }
            }
        }
        let want = gpu_common::planes(&want);
        // Into CPU memory.
        let row = image.row_bytes() as usize;
        let mut host: Vec<Vec<u8>> = want.iter().map(|p| vec![0; p.len()]).collect();
        let destinations: Vec<PlaneDestination> = host
            .iter_mut()
            .map(|p| PlaneDestination::Host {
                ptr: p.as_mut_ptr(),
                pitch: row,
                len: p.len(),
            })
            .collect();
        // SAFETY: each destination is a vector of ours, of its plane's rows at `row` bytes.
        unsafe { copier.copy(&image, &destinations) }.expect("copying through CUDA");
        for (plane, (got, want)) in host.iter().zip(&want).enumerate() {
            assert!(
                got == want,
                "{layout:?}: plane {plane} differs after CUDA's copy"
            );
        }
        // Into a CUDA frame of FFmpeg's pool, and back, by the same copier (one registration
        // of each texture).
        let mut frames = CudaFrames::new(copier, layout, width, height).expect("CUDA frames");
        let through = frames.planes(&image).expect("a CUDA frame");
        copier = frames.into_copier();
        for (plane, (got, want)) in through.iter().zip(&want).enumerate() {
            assert!(
                got == want,
                "{layout:?}: plane {plane} differs in the CUDA frame"
            );
        }
    }
    drop(frame);
    // Frame after frame in one layout, as a stream goes: the pool's four textures come round
    // again (three images held at a time), each registered with CUDA once, and each copy holds
    // the frame just converted into its texture, not what CUDA saw there before.
    let conversion = Colorspace::Rec709Limited.yuv_conversion(YuvLayout::Nv12);
    let mut frames =
        CudaFrames::new(copier, YuvLayout::Nv12, width, height).expect("a pool of CUDA frames");
    let rx = pattern.comp.frames();
    let (mut held, mut last_seq, mut last_planes) = (std::collections::VecDeque::new(), 0, None);
    for n in 0..8 {
        let frame = loop {
            let frame = rx.recv_timeout(T).expect("a frame of the test pattern");
            if frame.seq > last_seq {
                break frame;
            }
        };
        last_seq = frame.seq;
        let FrameData::Dmabuf(gpu) = &frame.data else {
            panic!("frame {} is not a dmabuf", frame.seq);
        };
        let image = gpu
            .to_yuv_image(&conversion, YuvStorage::Texture)
            .expect("converting");
        let want = gpu_common::planes(&image.read().expect("reading the texture back"));
        let through = frames.planes(&image).expect("a CUDA frame");
        assert!(
            through == want,
            "frame {n} (seq {}): the CUDA frame is not the texture's picture",
            frame.seq
        );
        assert!(
            last_planes.as_ref() != Some(&want),
            "frames {} and the one before converted alike: the check would not see a stale copy",
            frame.seq
        );
        last_planes = Some(want);
        held.push_back(image);
        if held.len() > 3 {
            held.pop_front();
        }
    }
    drop(held);
    println!(
        "[cuda] {name}: {width}x{height} frames in NV12, 4:4:4, P010 and 4:4:4 16-bit reached \
         CUDA and a CUDA frame equal to the compositor's conversion, also frame after frame \
         through textures registered once"
    );
    drop(rx);
    pattern.stop();
}

/// What CUDA is handed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// An RGBA8 GL texture (CUDA's GL interop), of a desktop GL context (`EGL_OPENGL_API`) or a
    /// GLES one (as the compositor's), with immutable storage (`glTexStorage2D`) or made with
    /// `glTexImage2D` (as the compositor's).
    Texture { desktop_gl: bool, immutable: bool },
    /// An EGL image of an ABGR8888 GBM buffer's dmabuf (CUDA's EGL interop), the buffer linear
    /// or in a layout the display renders into (the driver's pick among its modifiers).
    EglImage { linear: bool },
}

/// A way to hand CUDA a picture of the GPU's, by what decides whether CUDA takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Kind {
    /// On an EGL display on GBM's platform (as the compositor's is), or on EGL's device platform.
    gbm: bool,
    source: Source,
}

/// The compositor's Y'CbCr textures.
const COMPOSITORS: Kind = Kind {
    gbm: true,
    source: Source::Texture {
        desktop_gl: false,
        immutable: false,
    },
};

/// The kinds tried: the compositor's first; then textures made another way in one respect, and
/// desktop GL on the device platform; then EGL images of GBM buffers on either platform.
const KINDS: [Kind; 9] = {
    const fn texture(gbm: bool, desktop_gl: bool, immutable: bool) -> Kind {
        Kind {
            gbm,
            source: Source::Texture {
                desktop_gl,
                immutable,
            },
        }
    }
    const fn image(gbm: bool, linear: bool) -> Kind {
        Kind {
            gbm,
            source: Source::EglImage { linear },
        }
    }
    [
        COMPOSITORS,
        texture(true, false, true),
        texture(true, true, false),
        texture(false, false, false),
        texture(false, true, false),
        image(true, true),
        image(true, false),
        image(false, true),
        image(false, false),
    ]
};

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let platform = if self.gbm { "GBM" } else { "device" };
        match self.source {
            Source::Texture {
                desktop_gl,
                immutable,
            } => {
                let api = if desktop_gl { "GL" } else { "GLES" };
                let storage = if immutable { " (glTexStorage2D)" } else { "" };
                write!(f, "{platform}/{api} texture{storage}")
            }
            Source::EglImage { linear } => {
                let layout = if linear { "linear" } else { "driver's layout" };
                write!(f, "{platform}/EGL image ({layout})")
            }
        }
    }
}

/// An EGL display for `node`: on GBM's platform, of a GBM device of its own on the node (as the
/// compositor's), or on EGL's device platform.
fn egl_display(node: &Path, gbm: bool) -> Result<EGLDisplay, String> {
    if gbm {
        // SAFETY: the GBM device is this display's own; nothing else in this process
        // terminates EGL displays behind Smithay's back.
        unsafe { EGLDisplay::new(gbm_device(node)?) }
    } else {
        let same = |p: Result<PathBuf, _>| {
            p.ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.rdev())
                == std::fs::metadata(node).ok().map(|m| m.rdev())
        };
        let device = EGLDevice::enumerate()
            .map_err(|err| format!("EGL devices: {err}"))?
            .find(|d| same(d.render_device_path()) || same(d.drm_device_path()))
            .ok_or_else(|| format!("no EGL device is {}", node.display()))?;
        // SAFETY: as above; Smithay shares the display of a device among its users.
        unsafe { EGLDisplay::new(device) }
    }
    .map_err(|err| format!("EGL display: {err}"))
}

fn gbm_device(node: &Path) -> Result<GbmDevice<File>, String> {
    let file = File::options()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|err| format!("opening {}: {err}", node.display()))?;
    GbmDevice::new(file).map_err(|err| format!("GBM: {err}"))
}

/// An EGL context of its own, current on this thread until dropped.
struct CurrentContext {
    /// Keeps the display alive while the context is.
    display: Arc<EGLDisplayHandle>,
    context: egl::types::EGLContext,
}

impl CurrentContext {
    /// A desktop GL or GLES context on `display`, made current without a surface, as the
    /// compositor's is.
    fn new(display: &EGLDisplay, desktop_gl: bool) -> Result<CurrentContext, String> {
        let display = display.get_display_handle();
        let (api, attributes) = if desktop_gl {
            (egl::OPENGL_API, vec![egl::NONE as i32])
        } else {
            // What Smithay asks for the compositor's context.
            let version = egl::CONTEXT_CLIENT_VERSION as i32;
            (egl::OPENGL_ES_API, vec![version, 2, egl::NONE as i32])
        };
        // SAFETY: EGL calls on a live display, with a NONE-terminated attribute list; the
        // context is made current on this thread only, and destroyed by `drop`.
        unsafe {
            if egl::BindAPI(api) == egl::FALSE {
                return Err(format!("eglBindAPI: EGL error {:#x}", egl::GetError()));
            }
            let context = egl::CreateContext(
                **display,
                egl::NO_CONFIG_KHR,
                egl::NO_CONTEXT,
                attributes.as_ptr(),
            );
            if context == egl::NO_CONTEXT {
                return Err(format!(
                    "eglCreateContext: EGL error {:#x}",
                    egl::GetError()
                ));
            }
            let current = CurrentContext { display, context };
            let made =
                egl::MakeCurrent(**current.display, egl::NO_SURFACE, egl::NO_SURFACE, context);
            if made == egl::FALSE {
                return Err(format!("eglMakeCurrent: EGL error {:#x}", egl::GetError()));
            }
            Ok(current)
        }
    }
}

impl Drop for CurrentContext {
    fn drop(&mut self) {
        // SAFETY: our context, let go of on this thread and destroyed once.
        unsafe {
            egl::MakeCurrent(
                **self.display,
                egl::NO_SURFACE,
                egl::NO_SURFACE,
                egl::NO_CONTEXT,
            );
            egl::DestroyContext(**self.display, self.context);
        }
    }
}

/// The size of what is handed to CUDA: a 640x480 frame's NV12 planes packed into RGBA8 texels,
/// with rows to spare.
const SIZE: (i32, i32) = (160, 784);

/// Makes what `kind` hands CUDA on `node`'s GPU and asks `cuda` whether it takes it, on a thread
/// of its own (EGL's API and current context are a thread's). `Err` where it could not be made;
/// else what it is (a texture's `GL_VERSION`, a buffer's modifier) and what CUDA said (`None`
/// without CUDA).
fn try_kind(
    node: &Path,
    kind: Kind,
    cuda: Option<Arc<Cuda>>,
) -> Result<(String, Option<Result<String, String>>), String> {
    let node = node.to_path_buf();
    let made = std::thread::spawn(move || {
        let display = egl_display(&node, kind.gbm)?;
        match kind.source {
            Source::Texture {
                desktop_gl,
                immutable,
            } => texture_for_cuda(&display, desktop_gl, immutable, cuda.as_deref()),
            Source::EglImage { linear } => image_for_cuda(&node, &display, linear, cuda.as_deref()),
        }
    });
    made.join()
        .unwrap_or_else(|_| Err("the thread making it died (its panic is in the log)".into()))
}

/// An RGBA8 texture on a context of its own on `display`, as [`try_kind`] says.
fn texture_for_cuda(
    display: &EGLDisplay,
    desktop_gl: bool,
    immutable: bool,
    cuda: Option<&Cuda>,
) -> Result<(String, Option<Result<String, String>>), String> {
    let _current = CurrentContext::new(display, desktop_gl)?;
    // SAFETY: a context is current on this thread; GL's entry points come from its EGL.
    let gl = Gles2::load_with(|name| unsafe { smithay::backend::egl::get_proc_address(name) });
    let (width, height) = SIZE;
    // SAFETY: GL calls on the context current on this thread; the texture is ours and deleted
    // before the context goes.
    unsafe {
        let version = gl.GetString(gl_ffi::VERSION);
        let version = if version.is_null() {
            "no GL_VERSION".into()
        } else {
            CStr::from_ptr(version.cast())
                .to_string_lossy()
                .into_owned()
        };
        let mut texture = 0;
        gl.GenTextures(1, &mut texture);
        gl.BindTexture(gl_ffi::TEXTURE_2D, texture);
        if immutable {
            gl.TexStorage2D(gl_ffi::TEXTURE_2D, 1, gl_ffi::RGBA8, width, height);
        } else {
            gl.TexImage2D(
                gl_ffi::TEXTURE_2D,
                0,
                gl_ffi::RGBA8 as i32,
                width,
                height,
                0,
                gl_ffi::RGBA,
                gl_ffi::UNSIGNED_BYTE,
                std::ptr::null(),
            );
        }
        // One level, sampled nearest: complete, as the compositor's are.
        for (name, value) in [
            (gl_ffi::TEXTURE_MIN_FILTER, gl_ffi::NEAREST as i32),
            (gl_ffi::TEXTURE_MAG_FILTER, gl_ffi::NEAREST as i32),
            (gl_ffi::TEXTURE_MAX_LEVEL, 0),
        ] {
            gl.TexParameteri(gl_ffi::TEXTURE_2D, name, value);
        }
        gl.BindTexture(gl_ffi::TEXTURE_2D, 0);
        gl.Finish();
        let error = gl.GetError();
        let answer = if error != gl_ffi::NO_ERROR {
            Err(format!("GL error {error:#x} making the texture"))
        } else {
            let size = (width as usize, height as usize);
            Ok(cuda.map(|cuda| cuda.check_gl_texture(texture, size)))
        };
        gl.DeleteTextures(1, &texture);
        answer.map(|answer| (version, answer))
    }
}

/// An ABGR8888 GBM buffer on `node`, imported into `display` as an EGL image, as [`try_kind`]
/// says.
fn image_for_cuda(
    node: &Path,
    display: &EGLDisplay,
    linear: bool,
    cuda: Option<&Cuda>,
) -> Result<(String, Option<Result<String, String>>), String> {
    let (width, height) = (SIZE.0 as u32, SIZE.1 as u32);
    let mut allocator = GbmAllocator::new(gbm_device(node)?, GbmBufferFlags::RENDERING);
    let buffer = if linear {
        allocator.create_buffer_with_flags(
            width,
            height,
            Fourcc::Abgr8888,
            &[Modifier::Linear],
            GbmBufferFlags::RENDERING | GbmBufferFlags::LINEAR,
        )
    } else {
        // As the compositor allocates: with the modifiers the display renders into (none where
        // the driver has none, and then the layout GBM picks).
        let mut modifiers: Vec<Modifier> = display
            .dmabuf_render_formats()
            .iter()
            .filter(|f| f.code == Fourcc::Abgr8888)
            .map(|f| f.modifier)
            .collect();
        if modifiers.is_empty() {
            modifiers.push(Modifier::Invalid);
        }
        allocator.create_buffer(width, height, Fourcc::Abgr8888, &modifiers)
    }
    .map_err(|err| format!("GBM buffer: {err}"))?;
    let dmabuf = buffer
        .export()
        .map_err(|err| format!("the buffer's dmabuf: {err}"))?;
    let modifier = u64::from(dmabuf.format().modifier);
    let image = display
        .create_image_from_dmabuf(&dmabuf)
        .map_err(|err| format!("EGL image of the dmabuf: {err}"))?;
    // SAFETY: the image is alive until destroyed below, once.
    let answer = cuda.map(|cuda| unsafe { cuda.check_egl_image(image) });
    // SAFETY: as above.
    unsafe { egl::DestroyImageKHR(**display.get_display_handle(), image) };
    Ok((format!("modifier {modifier:#x}"), answer))
}

/// What the test below asks CUDA about is made on any GPU with Mesa's drivers too: each kind's
/// context and texture, each GBM buffer and its EGL image. Run on the virtual GPU in CI
/// (`scripts/test.sh`), so that the question is still asked right when an NVIDIA GPU comes.
#[test]
#[ignore = "needs a render node (scripts/gpu-vm.sh)"]
fn every_kind_handed_to_cuda_is_made_on_the_render_node() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    for kind in KINDS {
        match try_kind(&node, kind, None) {
            Ok((what, None)) => println!("{kind}: made ({what})"),
            Ok((_, Some(_))) => unreachable!("CUDA was not asked"),
            Err(err) => panic!("{kind} was not made on {}: {err}", node.display()),
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU with a render node (scripts/gpu-check.sh)"]
fn cuda_registers_the_compositors_kind_of_texture_and_says_which_others() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    let cuda = Cuda::open(Some(&node));
    let tried: Vec<_> = KINDS
        .iter()
        .map(|&kind| (kind, try_kind(&node, kind, cuda.clone().ok())))
        .collect();
    let kinds = |registered: bool| {
        let kinds: Vec<String> = tried
            .iter()
            .filter(|(_, t)| matches!(t, Ok((_, Some(answer))) if answer.is_ok() == registered))
            .map(|(kind, _)| kind.to_string())
            .collect();
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        }
    };
    let not_made: Vec<String> = tried
        .iter()
        .filter(|(_, t)| t.is_err())
        .map(|(kind, _)| kind.to_string())
        .collect();
    let mut summary = format!("CUDA takes {}; not {}", kinds(true), kinds(false));
    if !not_made.is_empty() {
        summary += &format!("; not made here: {}", not_made.join(", "));
    }
    let mut table = String::new();
    for (kind, t) in &tried {
        let line = match t {
            Err(err) => format!("not made: {err}"),
            Ok((what, None)) => format!("made ({what}); no CUDA to ask"),
            Ok((what, Some(Ok(seen)))) => format!("taken ({what}), {seen}"),
            Ok((what, Some(Err(err)))) => format!("refused ({what}): {err}"),
        };
        table += &format!("\n  {kind}: {line}");
    }
    let cuda = match cuda {
        Ok(cuda) => cuda,
        Err(err) => panic!("no CUDA on the render node's GPU: {err}{table}"),
    };
    println!("[cuda-interop] {}: {summary}{table}", cuda.name());
    if let Err(err) = &tried[0].1 {
        panic!("the compositor's kind of texture ({COMPOSITORS}) could not be made: {err}; {summary}{table}");
    }
    assert!(
        matches!(tried[0].1, Ok((_, Some(Ok(_))))),
        "CUDA does not register the compositor's kind of texture ({COMPOSITORS}); {summary}{table}"
    );
}
