//! The GLES renderer: an EGL device, a context on it and Smithay's `GlesRenderer`, rendering
//! offscreen into a renderbuffer that is read back into the frame's CPU buffer.
//!
//! The device is a GPU's render node, or Mesa's software device (llvmpipe), which renders the
//! same GLES on the CPU. Frames are read back through a pixel buffer object (`glReadPixels`).

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use smithay::backend::allocator::Fourcc;
use smithay::backend::egl::{EGLContext, EGLDevice, EGLDisplay};
use smithay::backend::renderer::gles::{ffi, GlesRenderbuffer, GlesRenderer};
use smithay::backend::renderer::{Bind, ExportMem, Offscreen};
use smithay::utils::Rectangle;
use tracing::debug;

use super::OutputRenderer;
use crate::{Mode, Rect};

/// Serializes making and dropping EGL displays across the process. Smithay keeps one registry
/// of displays, and every compositor on one device shares one EGL display: a compositor
/// starting while another stops could find that display half dropped (a panic in Smithay) or
/// terminated under it. Held while renderers are made ([`super::start_gles`]) and dropped
/// ([`EglGuarded`]).
pub(crate) fn egl_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value owning EGL objects (a GLES renderer and its target), dropped under [`egl_lock`].
pub(crate) struct EglGuarded<T>(ManuallyDrop<T>);

impl<T> EglGuarded<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(ManuallyDrop::new(value))
    }
}

impl<T> Deref for EglGuarded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for EglGuarded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for EglGuarded<T> {
    fn drop(&mut self) {
        let _lock = egl_lock();
        // SAFETY: this is the only place the value is dropped, and it is not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.0) };
    }
}

/// An EGL device to render on, as found by [`devices`].
pub(crate) struct Device {
    egl: EGLDevice,
    /// The render node (`/dev/dri/renderD*`), or the DRM device node, if it has one.
    pub(crate) node: Option<PathBuf>,
    /// Mesa's software device (llvmpipe).
    pub(crate) software: bool,
}

impl Device {
    /// How the device is named in logs and the API: its node, or `software`.
    pub(crate) fn name(&self) -> String {
        match &self.node {
            Some(node) => node.display().to_string(),
            None if self.software => "software".into(),
            None => "an EGL device without a node".into(),
        }
    }

    /// Whether this device is the one at `path` (a render node or the card node of the GPU).
    pub(crate) fn is_at(&self, path: &Path) -> bool {
        let same = |p: Result<PathBuf, _>| {
            p.ok()
                .is_some_and(|p| p == path || same_file(&p, path).unwrap_or(false))
        };
        same(self.egl.render_device_path()) || same(self.egl.drm_device_path())
    }
}

fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.rdev() == b.rdev() && a.dev() == b.dev() && a.ino() == b.ino())
}

/// The EGL devices of this machine, hardware ones first.
pub(crate) fn devices() -> Result<Vec<Device>, String> {
    let devices = EGLDevice::enumerate().map_err(|err| format!("EGL devices: {err}"))?;
    let mut devices: Vec<Device> = devices
        .map(|egl| {
            let software = egl.is_software();
            let node = egl
                .render_device_path()
                .or_else(|_| egl.drm_device_path())
                .ok();
            Device {
                egl,
                node,
                software,
            }
        })
        .collect();
    devices.sort_by_key(|d| d.software);
    Ok(devices)
}

/// A GLES renderer on `device`, with what it calls itself (`GL_RENDERER`).
pub(crate) fn open(device: &Device) -> Result<(GlesRenderer, String), String> {
    // SAFETY: nothing else in the process gets or terminates an EGL display for this device
    // with `eglGetPlatformDisplay`/`eglTerminate`; Smithay's display is the only user.
    let display = unsafe { EGLDisplay::new(device.egl.clone()) }
        .map_err(|err| format!("EGL display: {err}"))?;
    let context = EGLContext::new(&display).map_err(|err| format!("EGL context: {err}"))?;
    // SAFETY: the context is new and not current on any other thread.
    let mut renderer =
        unsafe { GlesRenderer::new(context) }.map_err(|err| format!("GLES renderer: {err}"))?;
    let name = renderer
        .with_context(|gl| {
            // SAFETY: the context is current inside `with_context`; GL_RENDERER is a static
            // NUL-terminated string or null.
            unsafe {
                let ptr = gl.GetString(ffi::RENDERER);
                if ptr.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(ptr.cast())
                        .to_string_lossy()
                        .into_owned()
                }
            }
        })
        .map_err(|err| format!("querying the GL renderer: {err}"))?;
    debug!(device = %device.name(), gl_renderer = %name, "GLES renderer ready");
    Ok((renderer, name))
}

/// How the read-back gets the pixels in XRGB8888 byte order (B, G, R, X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFormat {
    /// `GL_BGRA_EXT` straight into B, G, R, A.
    Bgra,
    /// `GL_RGBA`, red and blue swapped on the CPU (drivers without `EXT_read_format_bgra`).
    Rgba,
}

/// The render target and how to read it.
pub(crate) struct GlesTarget {
    buffer: GlesRenderbuffer,
    read: ReadFormat,
}

impl OutputRenderer for GlesRenderer {
    type Target = GlesTarget;

    fn create_target(&mut self, mode: Mode) -> Result<GlesTarget, String> {
        let size = (mode.width as i32, mode.height as i32).into();
        let buffer = Offscreen::<GlesRenderbuffer>::create_buffer(self, Fourcc::Abgr8888, size)
            .map_err(|err| {
                format!(
                    "allocating a {}x{} renderbuffer: {err}",
                    mode.width, mode.height
                )
            })?;
        let mut target = GlesTarget {
            buffer,
            read: ReadFormat::Bgra,
        };
        // Find out once whether the driver reads BGRA.
        let probe = |renderer: &mut GlesRenderer, target: &mut GlesTarget| {
            read_regions(renderer, target, &[Rect::whole(1, 1)], &mut [0; 4], 4)
        };
        if probe(self, &mut target).is_err() {
            debug!("the GL driver does not read back BGRA; swapping red and blue on the CPU");
            target.read = ReadFormat::Rgba;
            probe(self, &mut target)?;
        }
        Ok(target)
    }

    fn bind_target<'a>(
        &mut self,
        target: &'a mut GlesTarget,
    ) -> Result<Self::Framebuffer<'a>, String> {
        self.bind(&mut target.buffer)
            .map_err(|err| format!("binding the renderbuffer: {err}"))
    }

    fn read_target(
        &mut self,
        target: &mut GlesTarget,
        rects: &[Rect],
        dst: &mut [u8],
        stride: usize,
    ) -> Result<(), String> {
        // One read of the box around everything asked for, unless that box is mostly what was
        // not asked for (a change at the top and one at the bottom): then one per rectangle.
        let Some(bounds) = Rect::bounds(rects) else {
            return Ok(());
        };
        let asked: u64 = rects.iter().map(Rect::area).sum();
        if asked * 2 >= bounds.area() {
            return read_regions(self, target, &[bounds], dst, stride);
        }
        let regions: Vec<Rect> = rects.iter().filter(|r| r.area() > 0).copied().collect();
        read_regions(self, target, &regions, dst, stride)
    }
}

/// Reads each of `regions` of the target into the same place of `dst`, XRGB8888 rows `stride`
/// bytes apart: the target is bound once, and every read is issued (into a pixel buffer object
/// each) before the first is mapped, so the driver can run them back to back.
fn read_regions(
    renderer: &mut GlesRenderer,
    target: &mut GlesTarget,
    regions: &[Rect],
    dst: &mut [u8],
    stride: usize,
) -> Result<(), String> {
    let fourcc = match target.read {
        ReadFormat::Bgra => Fourcc::Argb8888,
        ReadFormat::Rgba => Fourcc::Abgr8888,
    };
    let framebuffer = renderer
        .bind(&mut target.buffer)
        .map_err(|err| format!("binding the renderbuffer: {err}"))?;
    let mut reads = Vec::with_capacity(regions.len());
    for r in regions {
        let region = Rectangle::new(
            (r.x as i32, r.y as i32).into(),
            (r.width as i32, r.height as i32).into(),
        );
        let mapping = renderer
            .copy_framebuffer(&framebuffer, region, fourcc)
            .map_err(|err| format!("reading back the frame: {err}"))?;
        reads.push((r, mapping));
    }
    drop(framebuffer);
    let swap = target.read == ReadFormat::Rgba;
    for (r, mapping) in &reads {
        let pixels = renderer
            .map_texture(mapping)
            .map_err(|err| format!("mapping the read-back: {err}"))?;
        let row = r.width as usize * 4;
        for (y, src) in pixels.chunks_exact(row).enumerate() {
            let start = (r.y as usize + y) * stride + r.x as usize * 4;
            let Some(out) = dst.get_mut(start..start + row) else {
                break;
            };
            out.copy_from_slice(src);
            if swap {
                for px in out.chunks_exact_mut(4) {
                    px.swap(0, 2);
                }
            }
        }
    }
    Ok(())
}
