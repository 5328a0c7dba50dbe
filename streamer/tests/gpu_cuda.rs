//! The CUDA hand-off for NVENC: frames converted on the GPU into the compositor's Y'CbCr textures,
//! registered with CUDA through GL interop and copied on the GPU, into CPU memory and into
//! a CUDA frame of FFmpeg's pool (what `*_nvenc` encodes), hold what the compositor reads back
//! of those textures, byte for byte, and that is the CPU's conversion within one code.
//!
//! Beside it, which kinds of GL texture CUDA registers on this machine: the compositor's (GLES, on
//! an EGL display on GBM's platform) must be one; the others say what a fix could turn to where
//! it is not.
//!
//! Needs an NVIDIA GPU with its driver and a render node, so it is ignored in a plain
//! `cargo test`; `scripts/gpu-check.sh` runs it (its `cuda` stage):
//!
//! ```sh
//! cargo test -p streamer --test gpu_cuda -- --include-ignored
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
use smithay::backend::allocator::gbm::GbmDevice;
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

/// A kind of GL texture, by where it is made: what decides whether CUDA's GL interop takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TextureKind {
    /// Of an EGL display on GBM's platform (as the compositor's is), or on EGL's device platform.
    gbm: bool,
    /// Of a desktop GL context (`EGL_OPENGL_API`), or a GLES one (as the compositor's is).
    desktop_gl: bool,
    /// With immutable storage (`glTexStorage2D`), or made with `glTexImage2D` (as the
    /// compositor's are).
    immutable: bool,
}

/// The compositor's Y'CbCr textures.
const COMPOSITORS: TextureKind = TextureKind {
    gbm: true,
    desktop_gl: false,
    immutable: false,
};

/// The kinds tried: the compositor's first, then each made another way in one respect, and
/// desktop GL on the device platform.
const KINDS: [TextureKind; 5] = [
    COMPOSITORS,
    TextureKind {
        immutable: true,
        ..COMPOSITORS
    },
    TextureKind {
        desktop_gl: true,
        ..COMPOSITORS
    },
    TextureKind {
        gbm: false,
        ..COMPOSITORS
    },
    TextureKind {
        gbm: false,
        desktop_gl: true,
        immutable: false,
    },
];

impl std::fmt::Display for TextureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let platform = if self.gbm { "GBM" } else { "device" };
        let api = if self.desktop_gl { "GL" } else { "GLES" };
        let storage = if self.immutable {
            "glTexStorage2D"
        } else {
            "glTexImage2D"
        };
        write!(f, "{platform}/{api}/{storage}")
    }
}

/// An EGL context of its own, current on this thread until dropped.
struct CurrentContext {
    display: EGLDisplay,
    context: egl::types::EGLContext,
}

impl CurrentContext {
    /// A context of `kind`'s API on a display of `kind`'s platform for `node`, made current
    /// without a surface, as the compositor's is.
    fn new(node: &Path, kind: TextureKind) -> Result<CurrentContext, String> {
        let display = if kind.gbm {
            let file = File::options()
                .read(true)
                .write(true)
                .open(node)
                .map_err(|err| format!("opening {}: {err}", node.display()))?;
            let gbm = GbmDevice::new(file).map_err(|err| format!("GBM: {err}"))?;
            // SAFETY: the GBM device is this display's own; nothing else in this process
            // terminates EGL displays behind Smithay's back.
            unsafe { EGLDisplay::new(gbm) }
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
        .map_err(|err| format!("EGL display: {err}"))?;
        let handle = **display.get_display_handle();
        let (api, attributes) = if kind.desktop_gl {
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
                handle,
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
            if egl::MakeCurrent(handle, egl::NO_SURFACE, egl::NO_SURFACE, context) == egl::FALSE {
                return Err(format!("eglMakeCurrent: EGL error {:#x}", egl::GetError()));
            }
            Ok(current)
        }
    }
}

impl Drop for CurrentContext {
    fn drop(&mut self) {
        let handle = **self.display.get_display_handle();
        // SAFETY: our context, let go of on this thread and destroyed once.
        unsafe {
            egl::MakeCurrent(handle, egl::NO_SURFACE, egl::NO_SURFACE, egl::NO_CONTEXT);
            egl::DestroyContext(handle, self.context);
        }
    }
}

/// Makes an RGBA8 texture of `kind` for `node`'s GPU and asks `cuda` whether it takes it
/// ([`Cuda::check_gl_texture`]), on a thread of its own (EGL's API and current context are a
/// thread's). `Err` where the texture could not be made; else what CUDA said (`None` without
/// CUDA), after the context's `GL_VERSION`.
fn texture_for_cuda(
    node: &Path,
    kind: TextureKind,
    cuda: Option<Arc<Cuda>>,
) -> Result<(String, Option<Result<String, String>>), String> {
    let node = node.to_path_buf();
    let made = std::thread::spawn(move || {
        let _current = CurrentContext::new(&node, kind)?;
        // SAFETY: a context is current on this thread; GL's entry points come from its EGL.
        let gl = Gles2::load_with(|name| unsafe { smithay::backend::egl::get_proc_address(name) });
        let (width, height) = (640, 784);
        // SAFETY: GL calls on the context current on this thread; the texture is ours and
        // deleted before the context goes.
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
            if kind.immutable {
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
                Ok(cuda.map(|cuda| cuda.check_gl_texture(texture)))
            };
            gl.DeleteTextures(1, &texture);
            answer.map(|answer| (version, answer))
        }
    });
    made.join()
        .unwrap_or_else(|_| Err("the thread making the texture panicked".into()))
}

#[test]
#[ignore = "needs an NVIDIA GPU with a render node (scripts/gpu-check.sh)"]
fn cuda_registers_the_compositors_kind_of_texture_and_says_which_others() {
    let node = gpu_common::render_node().expect("a render node in /dev/dri");
    let cuda = Cuda::open(Some(&node));
    let tried: Vec<_> = KINDS
        .iter()
        .map(|&kind| (kind, texture_for_cuda(&node, kind, cuda.clone().ok())))
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
    let summary = format!(
        "CUDA registers GL textures of {}; not of {}",
        kinds(true),
        kinds(false)
    );
    let mut table = String::new();
    for (kind, t) in &tried {
        let line = match t {
            Err(err) => format!("no texture: {err}"),
            Ok((version, None)) => format!("made ({version}); no CUDA to ask"),
            Ok((version, Some(Ok(mapped)))) => format!("registered ({version}), {mapped}"),
            Ok((version, Some(Err(err)))) => format!("refused ({version}): {err}"),
        };
        table += &format!("\n  {kind}: {line}");
    }
    let cuda = match cuda {
        Ok(cuda) => cuda,
        Err(err) => panic!("no CUDA on the render node's GPU: {err}{table}"),
    };
    println!("[cuda-gl] {}: {summary}{table}", cuda.name());
    let compositors = &tried[0];
    assert!(
        matches!(compositors.1, Ok((_, Some(Ok(_))))),
        "CUDA does not register the compositor's kind of texture ({COMPOSITORS}); {summary}{table}"
    );
}
