//! The GLES renderer: an EGL device, a context on it and Smithay's `GlesRenderer`, rendering
//! offscreen into a renderbuffer that is read back into the frame's CPU buffer, or (with
//! [`crate::CompositorOptions::gpu_frames`] on a render node) into a ring of GBM buffers that
//! frames hand out as dmabufs.
//!
//! The device is a GPU's render node, or Mesa's software device (llvmpipe), which renders the
//! same GLES on the CPU. Frames are read back through a pixel buffer object (`glReadPixels`).

use std::any::Any;
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use std::fs::File;

use smithay::backend::allocator::dmabuf::{AsDmabuf, Dmabuf};
use smithay::backend::allocator::gbm::{GbmAllocator, GbmBuffer, GbmBufferFlags, GbmDevice};
use smithay::backend::allocator::{Buffer, Fourcc, Modifier, Slot, Swapchain};
use smithay::backend::egl::{EGLContext, EGLDevice, EGLDisplay};
use smithay::backend::renderer::gles::{ffi, GlesRenderbuffer, GlesRenderer, GlesTexture};
use smithay::backend::renderer::sync::SyncPoint;
use smithay::backend::renderer::{Bind, ExportMem, Offscreen, Texture as _, TextureFilter};
use smithay::utils::Rectangle;
use tracing::{debug, info, warn};

use super::convert::YuvConverter;
use super::{GpuBuffer, OutputRenderer, RingSpec};
use crate::gpu_frame::{EglImage, Hold, YuvImageBuffer};
use crate::{Mode, Rect};

/// Serializes making and dropping EGL displays across the process. Smithay keeps one registry
/// of displays, and every compositor on one device shares one EGL display: a compositor
/// starting while another stops could find that display half dropped (a panic in Smithay) or
/// terminated under it. Held while renderers are made ([`super::start_gles`]) and dropped
/// ([`EglGuarded`]). A thread that holds it already gets it again (a drop under the lock may
/// drop more EGL objects, such as the EGL images of [`crate::YuvImage`]s).
pub(crate) fn egl_lock() -> EglLock {
    static LOCK: Mutex<()> = Mutex::new(());
    if HOLDS_EGL_LOCK.get() {
        return EglLock(None);
    }
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    HOLDS_EGL_LOCK.set(true);
    EglLock(Some(guard))
}

thread_local! {
    /// Whether this thread holds [`egl_lock`].
    static HOLDS_EGL_LOCK: Cell<bool> = const { Cell::new(false) };
}

/// [`egl_lock`] held; released on drop by the call that took it.
pub(crate) struct EglLock(Option<MutexGuard<'static, ()>>);

impl Drop for EglLock {
    fn drop(&mut self) {
        if self.0.is_some() {
            HOLDS_EGL_LOCK.set(false);
        }
    }
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
    let display = display(device)?;
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

/// The EGL display to render on `device`: for a GPU's node, on GBM's platform (EGL's platform
/// of a GBM device on the node, as compositors on a DRM device have it); else, or where that
/// fails, on EGL's device platform. NVIDIA's CUDA registers GL textures of a display on GBM's
/// platform (see [`crate::YuvStorage::Texture`]), not of one on the device platform.
fn display(device: &Device) -> Result<EGLDisplay, String> {
    if let (Some(node), false) = (&device.node, device.software) {
        match gbm_display(node) {
            Ok(display) => {
                debug!(node = %node.display(), "EGL on GBM's platform");
                return Ok(display);
            }
            Err(err) => warn!(
                node = %node.display(),
                %err,
                "EGL on GBM's platform does not work; on EGL's device platform instead"
            ),
        }
    }
    // SAFETY: nothing else in the process gets or terminates an EGL display for this device
    // with `eglGetPlatformDisplay`/`eglTerminate`; Smithay's display is the only user.
    unsafe { EGLDisplay::new(device.egl.clone()) }.map_err(|err| format!("EGL display: {err}"))
}

/// An EGL display on GBM's platform, of a GBM device of its own on `node`.
fn gbm_display(node: &Path) -> Result<EGLDisplay, String> {
    let file = File::options()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|err| format!("opening {}: {err}", node.display()))?;
    let gbm = GbmDevice::new(file).map_err(|err| format!("GBM: {err}"))?;
    // SAFETY: the GBM device is new and this display's own (Smithay keeps it with the
    // display); nothing else gets or terminates an EGL display for it.
    unsafe { EGLDisplay::new(gbm) }.map_err(|err| format!("EGL display: {err}"))
}

/// How the read-back gets the pixels in XRGB8888 byte order (B, G, R, X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFormat {
    /// `GL_BGRA_EXT` straight into B, G, R, A.
    Bgra,
    /// `GL_RGBA`, red and blue swapped on the CPU (drivers without `EXT_read_format_bgra`).
    Rgba,
}

/// The render target and how to read it.
pub(crate) struct GlesTarget {
    surface: Surface,
    pub(crate) read: ReadFormat,
    /// The Y'CbCr conversion of GPU frames, made on first use (or why it could not be).
    pub(crate) yuv: Option<Result<YuvConverter, String>>,
    /// The buffers frames are converted into for a consumer on the GPU, made on first use.
    yuv_pool: Option<YuvPool>,
    /// The GL textures frames are converted into for a consumer through GL interop, made on
    /// first use.
    yuv_textures: Option<TexturePool>,
}

/// GBM buffers that frames are converted into on the GPU and handed out in
/// ([`crate::GpuFrame::to_yuv_image`], [`crate::YuvStorage::Buffer`]): ABGR8888 whose bytes
/// are the planes, as the converter's texture holds them, each with an EGL image on the
/// renderer's display.
struct YuvPool {
    swapchain: GbmRing,
    /// The packed planes' size the buffers are for (see [`crate::YuvLayout::packed_size`]).
    size: (u32, u32),
    /// Whether the buffers were allocated with GBM's linear usage flag, so that one without a
    /// modifier is linear too (see [`crate::YuvImageBuffer::is_linear`]).
    linear_flag: bool,
}

/// Rows the [`YuvPool`]'s buffers have past the packed planes. An encoder reads whole blocks:
/// 1080 luma rows are read as 1088 (16- or 64-row blocks) or 1152 (AV1's 128-row
/// superblocks), and the chroma plane's block rows past its last row (up to 64 for 4:2:0) lie
/// past the planes. Those reads land in the buffer, not beyond it. The conversion clears them.
const SLACK_ROWS: u32 = 64;

impl YuvPool {
    /// A pool of buffers for `size` texels of packed planes (and [`SLACK_ROWS`] more rows) on
    /// the ring's GBM device, linear where the renderer draws into
    /// linear ones (every consumer imports those: VA-API, a CPU mapping), else in a
    /// layout it draws into. A driver without modifiers (virgl) is asked for linear buffers
    /// through GBM's usage flag.
    fn new(renderer: &GlesRenderer, ring: &Ring, size: (u32, u32)) -> Result<Self, String> {
        let modifiers = render_modifiers(renderer, Fourcc::Abgr8888)?;
        let ring_allocator = ring.swapchain.allocator.clone();
        let (allocator, modifiers, linear_flag) = if modifiers.contains(&Modifier::Linear) {
            (ring_allocator, vec![Modifier::Linear], false)
        } else if modifiers.iter().all(|m| *m == Modifier::Invalid) {
            let device = ring_allocator.as_ref().clone();
            let flags = GbmBufferFlags::RENDERING | GbmBufferFlags::LINEAR;
            (GbmAllocator::new(device, flags), modifiers, true)
        } else {
            (ring_allocator, modifiers, false)
        };
        let rows = size.1 + SLACK_ROWS;
        let swapchain = Swapchain::new(allocator, size.0, rows, Fourcc::Abgr8888, modifiers);
        Ok(Self {
            swapchain,
            size,
            linear_flag,
        })
    }
}

/// How many pictures converted into GL textures may be held at once (as [`YuvPool`] has
/// buffers).
const TEXTURES: usize = 4;

/// GL textures that frames are converted into for a consumer that takes them through GL
/// interop ([`crate::YuvStorage::Texture`]): RGBA8 whose bytes are the planes, as in a
/// [`YuvPool`] buffer, [`SLACK_ROWS`] rows included. A slot is free while the pool holds the
/// only reference to it.
struct TexturePool {
    /// The packed planes' size the textures are for.
    size: (u32, u32),
    slots: Vec<Arc<TextureSlot>>,
}

impl TexturePool {
    /// A free slot, a new texture while the pool has fewer than [`TEXTURES`].
    fn take(&mut self, renderer: &mut GlesRenderer) -> Result<Arc<TextureSlot>, String> {
        if let Some(slot) = self.slots.iter().find(|s| Arc::strong_count(s) == 1) {
            return Ok(slot.clone());
        }
        if self.slots.len() >= TEXTURES {
            return Err("every Y'CbCr texture is still held by its consumers".into());
        }
        let size = (self.size.0 as i32, (self.size.1 + SLACK_ROWS) as i32);
        let texture =
            Offscreen::<GlesTexture>::create_buffer(renderer, Fourcc::Abgr8888, size.into())
                .map_err(|err| format!("allocating a Y'CbCr texture: {err}"))?;
        // One level, no mipmaps: a complete texture, which GL interop registers (the default
        // filter asks for mipmaps the texture does not have).
        let id = texture.tex_id();
        renderer
            .with_context(|gl| {
                // SAFETY: the context is current; `id` is the texture just made on it.
                unsafe {
                    gl.BindTexture(ffi::TEXTURE_2D, id);
                    gl.TexParameteri(
                        ffi::TEXTURE_2D,
                        ffi::TEXTURE_MIN_FILTER,
                        ffi::NEAREST as i32,
                    );
                    gl.TexParameteri(
                        ffi::TEXTURE_2D,
                        ffi::TEXTURE_MAG_FILTER,
                        ffi::NEAREST as i32,
                    );
                    gl.TexParameteri(ffi::TEXTURE_2D, ffi::TEXTURE_MAX_LEVEL, 0);
                    gl.BindTexture(ffi::TEXTURE_2D, 0);
                }
            })
            .map_err(|err| format!("setting up a Y'CbCr texture: {err}"))?;
        let slot = Arc::new(TextureSlot {
            kept: Mutex::new(None),
            texture,
            thread: std::thread::current().id(),
        });
        self.slots.push(slot.clone());
        Ok(slot)
    }
}

/// A texture of the [`TexturePool`], and what a consumer keeps with it.
pub(crate) struct TextureSlot {
    /// A consumer's registration of the texture with another API: dropped before the texture
    /// (fields drop in order) on the compositor's thread, or left undone on another (where the
    /// compositor and its GL context went first).
    kept: Mutex<Option<Box<dyn Any + Send>>>,
    pub(crate) texture: GlesTexture,
    /// The compositor's thread, which made the texture.
    thread: std::thread::ThreadId,
}

impl Drop for TextureSlot {
    fn drop(&mut self) {
        if std::thread::current().id() != self.thread {
            let kept = self.kept.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(kept) = kept.take() {
                std::mem::forget(kept);
            }
        }
    }
}

impl TextureSlot {
    /// Runs `f` with this texture, on the compositor's thread with the GL context of
    /// `renderer` (which made the texture) current.
    pub(crate) fn use_with(
        &self,
        renderer: &mut GlesRenderer,
        f: impl FnOnce(crate::TextureAccess<'_>),
    ) -> Result<(), String> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let size = self.texture.size();
        let access = crate::TextureAccess {
            texture: self.texture.tex_id(),
            size: (size.w.max(0) as u32, size.h.max(0) as u32),
            kept: &mut kept,
        };
        renderer
            .with_context(|_| f(access))
            .map_err(|err| format!("making the GL context current: {err}"))
    }
}

impl GlesTarget {
    /// A free GL texture for `size` texels of packed planes (and [`SLACK_ROWS`] more rows) to
    /// convert a frame into.
    pub(crate) fn yuv_texture(
        &mut self,
        renderer: &mut GlesRenderer,
        size: (u32, u32),
    ) -> Result<Arc<TextureSlot>, String> {
        let pool = match &mut self.yuv_textures {
            Some(pool) if pool.size == size => pool,
            pool => pool.insert(TexturePool {
                size,
                slots: Vec::new(),
            }),
        };
        pool.take(renderer)
    }
}

impl GlesTarget {
    /// A free buffer of `size` (the packed planes) to convert a frame into, on the ring's render
    /// node, and what keeps it out of the pool until dropped; exported and made an EGL image
    /// once per buffer.
    pub(crate) fn yuv_buffer(
        &mut self,
        renderer: &GlesRenderer,
        size: (u32, u32),
    ) -> Result<(YuvImageBuffer, Hold), String> {
        let Surface::Ring(ring) = &self.surface else {
            return Err("frames are not rendered into GBM buffers".into());
        };
        let pool = match &mut self.yuv_pool {
            Some(pool) if pool.size == size => pool,
            pool => pool.insert(YuvPool::new(renderer, ring, size)?),
        };
        let slot = pool
            .swapchain
            .acquire()
            .map_err(|err| format!("allocating a GBM buffer for Y'CbCr: {err}"))?
            .ok_or("every Y'CbCr buffer is still held by its consumers")?;
        let (dmabuf, image) = match slot.userdata().get::<(Dmabuf, EglImage)>() {
            Some(kept) => kept.clone(),
            None => {
                let dmabuf = <GbmBuffer as AsDmabuf>::export(&slot)
                    .map_err(|err| format!("exporting a Y'CbCr buffer as a dmabuf: {err}"))?;
                let image = EglImage::new(renderer.egl_context().display(), &dmabuf)?;
                slot.userdata()
                    .insert_if_missing_threadsafe(|| (dmabuf.clone(), image.clone()));
                (dmabuf, image)
            }
        };
        // Linear by its modifier, or (without one) by the usage flag it was allocated with.
        let linear = match dmabuf.format().modifier {
            Modifier::Linear => true,
            Modifier::Invalid => pool.linear_flag,
            _ => false,
        };
        let hold: Hold = Box::new((slot, ring.node.clone()));
        Ok((
            YuvImageBuffer {
                dmabuf,
                image,
                linear,
            },
            hold,
        ))
    }
}

/// What the output is rendered into.
enum Surface {
    /// One GL renderbuffer, read back into each frame.
    Renderbuffer(GlesRenderbuffer),
    /// A ring of GBM buffers, each frame handed out as a dmabuf.
    Ring(Ring),
}

type GbmRing = Swapchain<GbmAllocator<Arc<File>>>;

/// The GBM buffers frames are rendered into, on the render node.
struct Ring {
    swapchain: GbmRing,
    /// The render node GBM allocates on; frames hold it too, as their buffers need it open.
    node: Arc<File>,
    /// The buffer being rendered, from [`OutputRenderer::acquire_buffer`] until
    /// [`OutputRenderer::rendered`] hands it to the frame.
    current: Option<(Slot<GbmBuffer>, Dmabuf)>,
}

/// The modifiers the renderer draws `fourcc` dmabufs in; an error if none.
fn render_modifiers(renderer: &GlesRenderer, fourcc: Fourcc) -> Result<Vec<Modifier>, String> {
    let modifiers: Vec<Modifier> = renderer
        .egl_context()
        .dmabuf_render_formats()
        .iter()
        .filter(|f| f.code == fourcc)
        .map(|f| f.modifier)
        .collect();
    if modifiers.is_empty() {
        return Err(format!("the GPU renders into no {fourcc:?} dmabuf"));
    }
    Ok(modifiers)
}

/// `spec` at 8 bits, after a 10-bit ring could not be made for `reason` (logged).
fn eight_bit<'a>(spec: RingSpec<'a>, reason: &str) -> RingSpec<'a> {
    warn!(%reason, "10-bit frames cannot be made; they are 8-bit");
    RingSpec {
        ten_bit: false,
        ..spec
    }
}

/// The format of a 10-bit ring: XBGR2101010, which GLES reads back as `RGB10_A2` (Smithay's
/// GLES renderer reads no XRGB2101010 framebuffer back), as every consumer may need to.
const TEN_BIT: Fourcc = Fourcc::Xbgr2101010;

impl Ring {
    /// A ring of buffers of `mode`'s size on `spec`'s node, in a layout the renderer can draw
    /// into: XRGB8888, or [`TEN_BIT`] where `spec` asks for 10 bits.
    fn new(renderer: &GlesRenderer, spec: RingSpec<'_>, mode: Mode) -> Result<Self, String> {
        let node = spec.node;
        let fourcc = if spec.ten_bit {
            TEN_BIT
        } else {
            Fourcc::Xrgb8888
        };
        let modifiers = render_modifiers(renderer, fourcc)?;
        let file = File::options()
            .read(true)
            .write(true)
            .open(node)
            .map_err(|err| format!("opening {}: {err}", node.display()))?;
        let file = Arc::new(file);
        let device = GbmDevice::new(file.clone())
            .map_err(|err| format!("GBM on {}: {err}", node.display()))?;
        let allocator = GbmAllocator::new(device, GbmBufferFlags::RENDERING);
        let swapchain = Swapchain::new(allocator, mode.width, mode.height, fourcc, modifiers);
        Ok(Self {
            swapchain,
            node: file,
            current: None,
        })
    }

    /// Takes a free buffer for the next render (the one [`Ring::free`] found, if it did); its
    /// age (see [`OutputRenderer::acquire_buffer`]).
    fn acquire(&mut self, valid: bool) -> Result<usize, String> {
        if !valid {
            // Buffers held by frames leave the ring; new ones take their places.
            self.current = None;
            self.swapchain.reset_buffer_ages();
        }
        if !self.free()? {
            return Err("every frame buffer is still held by the frames' consumers".into());
        }
        let age = self.current.as_ref().map_or(0, |(slot, _)| slot.age());
        Ok(usize::from(age))
    }

    /// Whether a buffer is free for the next render; takes it if so.
    fn free(&mut self) -> Result<bool, String> {
        if self.current.is_some() {
            return Ok(true);
        }
        let Some(slot) = self
            .swapchain
            .acquire()
            .map_err(|err| format!("allocating a GBM buffer: {err}"))?
        else {
            return Ok(false);
        };
        // Exported once per buffer, kept with it where any thread may drop it.
        let dmabuf = match slot.userdata().get::<Dmabuf>() {
            Some(dmabuf) => dmabuf.clone(),
            None => {
                let dmabuf = <GbmBuffer as AsDmabuf>::export(&slot)
                    .map_err(|err| format!("exporting a GBM buffer as a dmabuf: {err}"))?;
                slot.userdata()
                    .insert_if_missing_threadsafe(|| dmabuf.clone());
                dmabuf
            }
        };
        self.current = Some((slot, dmabuf));
        Ok(true)
    }
}

impl GlesTarget {
    fn renderbuffer(renderer: &mut GlesRenderer, mode: Mode) -> Result<Surface, String> {
        let size = (mode.width as i32, mode.height as i32).into();
        Offscreen::<GlesRenderbuffer>::create_buffer(renderer, Fourcc::Abgr8888, size)
            .map(Surface::Renderbuffer)
            .map_err(|err| {
                format!(
                    "allocating a {}x{} renderbuffer: {err}",
                    mode.width, mode.height
                )
            })
    }
}

impl OutputRenderer for GlesRenderer {
    type Target = GlesTarget;

    fn create_target(
        &mut self,
        mode: Mode,
        ring: Option<RingSpec<'_>>,
    ) -> Result<GlesTarget, String> {
        // A ring the GPU cannot draw in 10 bits is 8-bit; one that cannot be made at all is a
        // renderbuffer read back into CPU memory.
        let ring = ring.map(
            |spec| match spec.ten_bit.then(|| render_modifiers(self, TEN_BIT)) {
                Some(Err(reason)) => eight_bit(spec, &reason),
                _ => spec,
            },
        );
        let surface = match ring {
            Some(spec) => match Ring::new(self, spec, mode) {
                Ok(ring) => Surface::Ring(ring),
                Err(reason) => {
                    let reason = super::driver_hint::explain(reason, Some(spec.node));
                    warn!(%reason, "frames cannot be dmabufs; they are read back into CPU memory");
                    GlesTarget::renderbuffer(self, mode)?
                }
            },
            None => GlesTarget::renderbuffer(self, mode)?,
        };
        let mut target = GlesTarget {
            surface,
            read: ReadFormat::Bgra,
            yuv: None,
            yuv_pool: None,
            yuv_textures: None,
        };
        // Find out once whether the driver reads BGRA; a ring is also tried out on its first
        // buffer, which must be drawable.
        let probe = |renderer: &mut GlesRenderer, target: &mut GlesTarget| {
            if let Surface::Ring(ring) = &mut target.surface {
                ring.acquire(false)?;
            }
            let whole = [Rect::whole(1, 1)];
            renderer.read_target(target, &whole, &mut [0; 4], 4)
        };
        if probe(self, &mut target).is_err() {
            debug!("the GL driver does not read back BGRA; swapping red and blue on the CPU");
            target.read = ReadFormat::Rgba;
            if let Err(err) = probe(self, &mut target) {
                let Some(spec) = ring.filter(|_| matches!(target.surface, Surface::Ring(_))) else {
                    return Err(err);
                };
                if spec.ten_bit {
                    let reason = format!("its buffers cannot be read back: {err}");
                    return self.create_target(mode, Some(eight_bit(spec, &reason)));
                }
                let reason = super::driver_hint::explain(err, Some(spec.node));
                warn!(%reason, "frames cannot be dmabufs; they are read back into CPU memory");
                return self.create_target(mode, None);
            }
        }
        if let Surface::Ring(ring) = &mut target.surface {
            ring.current = None;
            info!(
                format = ?ring.swapchain.format(),
                modifiers = ring.swapchain.modifiers().len(),
                size = %format!("{}x{}", mode.width, mode.height),
                "frames are rendered into a ring of GBM buffers and handed out as dmabufs"
            );
        }
        Ok(target)
    }

    fn acquire_buffer(&mut self, target: &mut GlesTarget, valid: bool) -> Result<usize, String> {
        match &mut target.surface {
            Surface::Renderbuffer(_) => Ok(usize::from(valid)),
            Surface::Ring(ring) => ring.acquire(valid),
        }
    }

    fn gives_dmabufs(target: &GlesTarget) -> bool {
        matches!(target.surface, Surface::Ring(_))
    }

    fn ten_bit(target: &GlesTarget) -> bool {
        matches!(&target.surface, Surface::Ring(ring) if ring.swapchain.format() == TEN_BIT)
    }

    fn buffer_free(&mut self, target: &mut GlesTarget) -> bool {
        match &mut target.surface {
            Surface::Renderbuffer(_) => true,
            // An allocation that fails is for the render to report.
            Surface::Ring(ring) => ring.free().unwrap_or(true),
        }
    }

    fn bind_target<'a>(
        &mut self,
        target: &'a mut GlesTarget,
    ) -> Result<Self::Framebuffer<'a>, String> {
        match &mut target.surface {
            Surface::Renderbuffer(buffer) => self
                .bind(buffer)
                .map_err(|err| format!("binding the renderbuffer: {err}")),
            Surface::Ring(ring) => {
                let (_, dmabuf) = ring.current.as_mut().ok_or("no GBM buffer acquired")?;
                self.bind(dmabuf)
                    .map_err(|err| format!("binding a GBM buffer: {err}"))
            }
        }
    }

    fn rendered(&mut self, target: &mut GlesTarget, sync: SyncPoint) -> Option<GpuBuffer> {
        let Surface::Ring(ring) = &mut target.surface else {
            return None;
        };
        let (slot, dmabuf) = ring.current.take()?;
        ring.swapchain.submitted(&slot);
        Some(GpuBuffer {
            dmabuf,
            sync,
            hold: Box::new((slot, ring.node.clone())),
        })
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
        let regions: Vec<Rect> = if asked * 2 >= bounds.area() {
            vec![bounds]
        } else {
            rects.iter().filter(|r| r.area() > 0).copied().collect()
        };
        let read = target.read;
        match &mut target.surface {
            Surface::Renderbuffer(buffer) => {
                read_regions(self, buffer, read, &regions, dst, stride)
            }
            Surface::Ring(ring) => {
                // Only the probe reads a ring's buffer here, the one just acquired; frames of a
                // ring are read back through `read_dmabuf`.
                let (_, dmabuf) = ring.current.as_mut().ok_or("no GBM buffer acquired")?;
                read_regions(self, dmabuf, read, &regions, dst, stride)
            }
        }
    }
}

/// Whether [`read_dmabuf`] reads a dmabuf of `fourcc`: of the formats a frame comes in, those
/// Smithay's GLES renderer reads a framebuffer of (8 bits a channel in either order, 10 in XBGR
/// order, with or without alpha). XRGB2101010 and ARGB2101010 ([`read_texture`]) are drawn
/// into a buffer that reads back first; their 8-bit codes may then differ by one from a read
/// of the same 10-bit values in XBGR order, where the driver rounds.
pub(crate) fn reads_back(fourcc: Fourcc) -> bool {
    matches!(
        fourcc,
        Fourcc::Xrgb8888
            | Fourcc::Argb8888
            | Fourcc::Xbgr8888
            | Fourcc::Abgr8888
            | Fourcc::Xbgr2101010
            | Fourcc::Abgr2101010
    )
}

/// Reads `texture` (a frame's dmabuf imported, in a format [`read_dmabuf`] does not read) into
/// CPU memory as XRGB8888 rows `width * 4` bytes apart: drawn opaque, texel for texel, into an
/// RGBA8 renderbuffer, which is read back. `filter` is the renderer's scale filter, put back
/// afterwards.
pub(crate) fn read_texture(
    renderer: &mut GlesRenderer,
    texture: &GlesTexture,
    filter: TextureFilter,
) -> Result<Vec<u8>, String> {
    let size = texture.size();
    super::convert::with_nearest(renderer, filter, |renderer| {
        let mut target: GlesRenderbuffer =
            Offscreen::<GlesRenderbuffer>::create_buffer(renderer, Fourcc::Abgr8888, size)
                .map_err(|err| format!("allocating a buffer to read the frame through: {err}"))?;
        // The read below is ordered after the draw in the same context: no fence to wait for.
        let _ = super::convert::draw_opaque(renderer, &mut target, size, texture, size, None)
            .map_err(|err| format!("drawing the frame to read it: {err}"))?;
        read_whole(renderer, &mut target, ReadFormat::Rgba, size)
    })
}

/// Reads a whole dmabuf the renderer can draw into (a frame's GBM buffer) into CPU memory,
/// XRGB8888 rows `width * 4` bytes apart; its format is one [`reads_back`] names.
pub(crate) fn read_dmabuf(
    renderer: &mut GlesRenderer,
    dmabuf: &Dmabuf,
    read: ReadFormat,
) -> Result<Vec<u8>, String> {
    // Every driver reads RGBA (GLES guarantees it for every normalized format). `read` was
    // found for the ring: where that reads BGRA, it spares the swap for a frame in
    // XRGB8888's order. A frame in another format (a client's buffer, an earlier ring's) is
    // not tried as BGRA: a refused read costs more than the swap.
    let read = match dmabuf.format().code {
        Fourcc::Xrgb8888 | Fourcc::Argb8888 => read,
        _ => ReadFormat::Rgba,
    };
    read_whole(renderer, &mut dmabuf.clone(), read, dmabuf.size())
}

/// Reads all of `target`, `size` texels, into CPU memory as XRGB8888 rows `width * 4` bytes
/// apart.
fn read_whole<T>(
    renderer: &mut GlesRenderer,
    target: &mut T,
    read: ReadFormat,
    size: smithay::utils::Size<i32, smithay::utils::Buffer>,
) -> Result<Vec<u8>, String>
where
    GlesRenderer: Bind<T>,
{
    let (width, height) = (size.w.max(0) as u32, size.h.max(0) as u32);
    let stride = width as usize * 4;
    let mut pixels = vec![0; stride * height as usize];
    let whole = [Rect::whole(width, height)];
    read_regions(renderer, target, read, &whole, &mut pixels, stride)?;
    Ok(pixels)
}

/// Reads each of `regions` of `target` into the same place of `dst`, XRGB8888 rows `stride`
/// bytes apart: the target is bound once, and every read is issued (into a pixel buffer object
/// each) before the first is mapped, so the driver can run them back to back.
fn read_regions<T>(
    renderer: &mut GlesRenderer,
    target: &mut T,
    read: ReadFormat,
    regions: &[Rect],
    dst: &mut [u8],
    stride: usize,
) -> Result<(), String>
where
    GlesRenderer: Bind<T>,
{
    let fourcc = match read {
        ReadFormat::Bgra => Fourcc::Argb8888,
        ReadFormat::Rgba => Fourcc::Abgr8888,
    };
    let framebuffer = renderer
        .bind(target)
        .map_err(|err| format!("binding the frame to read it: {err}"))?;
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
    let swap = read == ReadFormat::Rgba;
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
