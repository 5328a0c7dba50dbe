//! CUDA, for NVENC to take the frames the GPU converted ([`compositor::YuvImage`]) without a
//! trip through CPU memory.
//!
//! The route: the compositor converts a frame into one of its Y'CbCr textures (a GL texture
//! whose bytes are the planes) and lends it on its own thread, with its GL context current
//! ([`YuvImage::with_texture`]); there the texture is registered with CUDA once
//! (`cuGraphicsGLRegisterImage`, the registration kept with the texture), mapped, and its planes
//! copied on the GPU (`cuMemcpy2D`) into a CUDA frame of FFmpeg's pool ([`cuda_frames`]), which
//! `*_nvenc` encodes. GL interop, not EGL images of the compositor's dmabufs: desktop capture
//! tools say NVIDIA's desktop driver registers those with CUDA (`cuGraphicsEGLRegisterImage`)
//! on Tegra only, nor a GL texture made from one, and take a texture of their own, as this does.
//! gst-wayland-display registers EGL images of its own GBM buffers for NVIDIA's encoder, though;
//! [`Cuda::check_gl_texture`] and [`Cuda::check_egl_image`] (gpu-check's `cuda-interop` stage)
//! ask a machine's driver which it takes.
//! The colour conversion stays the compositor's shader, with the client's matrix and range:
//! NVENC's own conversion of RGB input uses a matrix of its choosing.
//!
//! libcuda is loaded at run time, so one binary starts on every machine; without it
//! [`Cuda::open`] says why and the stream takes the CPU's picture. CUDA picks the GPU that
//! renders: the one on the render node's PCI address.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use compositor::{TextureAccess, YuvImage, YuvLayout};

use super::color::Picture;
use super::video::{frame_planes, layout_format, EncoderOptions, HwBuffer};
use ffmpeg_next as ffmpeg;
use libloading::Library;
use tracing::{debug, info};

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuResource = *mut c_void;
type CuArray = *mut c_void;
/// `CUdeviceptr`: an address in the GPU's memory.
pub(crate) type DevicePtr = u64;

const CUDA_SUCCESS: CuResult = 0;
/// `CUDA_ERROR_INVALID_VALUE`.
const CUDA_ERROR_INVALID_VALUE: CuResult = 1;
/// `CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE`: the primary context's flags were set by its first user.
const CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE: CuResult = 708;
/// `CU_CTX_SCHED_BLOCKING_SYNC`: a wait for the GPU sleeps rather than spins on a core (as
/// FFmpeg's own CUDA contexts do); the game beside the stream needs the CPU.
const SCHED_BLOCKING_SYNC: c_uint = 0x04;
/// `CU_GRAPHICS_REGISTER_FLAGS_READ_ONLY`.
const REGISTER_READ_ONLY: c_uint = 1;
/// `GL_TEXTURE_2D`: what the compositor's Y'CbCr textures are.
const GL_TEXTURE_2D: c_uint = 0x0DE1;
/// `CU_EGL_FRAME_TYPE_ARRAY`; `CU_EGL_FRAME_TYPE_PITCH` is 1.
const EGL_FRAME_ARRAY: c_uint = 0;
/// `CUarray_format`'s `CU_AD_FORMAT_UNSIGNED_INT8`: the elements of an RGBA8 texture's array.
const ARRAY_FORMAT_U8: c_uint = 0x01;
/// `CUmemorytype`.
const MEMORY_HOST: c_uint = 1;
const MEMORY_DEVICE: c_uint = 2;
const MEMORY_ARRAY: c_uint = 3;

/// `CUDA_ARRAY_DESCRIPTOR` (`cuArrayGetDescriptor_v2`): a mapped texture's array.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ArrayDescriptor {
    width: usize,
    height: usize,
    format: c_uint,
    channels: c_uint,
}

/// `CUeglFrame` (CUDA 9 on): where a registered EGL image lies for CUDA.
#[repr(C)]
struct EglFrame {
    /// `pArray[3]` or `pPitch[3]`, as `frame_type` says.
    planes: [*mut c_void; 3],
    width: c_uint,
    height: c_uint,
    depth: c_uint,
    pitch: c_uint,
    plane_count: c_uint,
    channels: c_uint,
    frame_type: c_uint,
    color_format: c_uint,
    cu_format: c_uint,
}

/// `CUDA_MEMCPY2D`.
#[repr(C)]
struct Memcpy2d {
    src_x_in_bytes: usize,
    src_y: usize,
    src_memory_type: c_uint,
    src_host: *const c_void,
    src_device: DevicePtr,
    src_array: CuArray,
    src_pitch: usize,
    dst_x_in_bytes: usize,
    dst_y: usize,
    dst_memory_type: c_uint,
    dst_host: *mut c_void,
    dst_device: DevicePtr,
    dst_array: CuArray,
    dst_pitch: usize,
    width_in_bytes: usize,
    height: usize,
}

/// The driver API functions this module calls, by their versioned symbol names.
struct Functions {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_count: unsafe extern "C" fn(*mut c_int) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_by_pci: unsafe extern "C" fn(*mut CuDevice, *const c_char) -> CuResult,
    device_name: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    primary_set_flags: unsafe extern "C" fn(CuDevice, c_uint) -> CuResult,
    primary_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    primary_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    push: unsafe extern "C" fn(CuContext) -> CuResult,
    pop: unsafe extern "C" fn(*mut CuContext) -> CuResult,
    synchronize: unsafe extern "C" fn() -> CuResult,
    register_gl: unsafe extern "C" fn(*mut CuResource, c_uint, c_uint, c_uint) -> CuResult,
    map: unsafe extern "C" fn(c_uint, *mut CuResource, *mut c_void) -> CuResult,
    unmap: unsafe extern "C" fn(c_uint, *mut CuResource, *mut c_void) -> CuResult,
    mapped_array: unsafe extern "C" fn(*mut CuArray, CuResource, c_uint, c_uint) -> CuResult,
    array_descriptor: unsafe extern "C" fn(*mut ArrayDescriptor, CuArray) -> CuResult,
    unregister: unsafe extern "C" fn(CuResource) -> CuResult,
    memcpy_2d: unsafe extern "C" fn(*const Memcpy2d) -> CuResult,
    memcpy_2d_unaligned: unsafe extern "C" fn(*const Memcpy2d) -> CuResult,
    error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    /// CUDA's EGL interop, or the symbol the library lacks: only [`Cuda::check_egl_image`] asks
    /// it.
    egl: Result<EglFunctions, String>,
}

/// `cuGraphicsEGLRegisterImage` and `cuGraphicsResourceGetMappedEglFrame`.
struct EglFunctions {
    register: unsafe extern "C" fn(*mut CuResource, *mut c_void, c_uint) -> CuResult,
    mapped_frame: unsafe extern "C" fn(*mut EglFrame, CuResource, c_uint, c_uint) -> CuResult,
}

/// libcuda, loaded, with the primary context of the GPU that renders retained.
pub struct Cuda {
    f: Functions,
    device: CuDevice,
    context: CuContext,
    name: String,
    /// Keeps the functions above loaded; dropped last.
    _lib: Library,
}

// SAFETY: CUDA's driver API may be called from any thread; the context is made current around
// each use ([`Cuda::current`]) and released once, on drop.
unsafe impl Send for Cuda {}
// SAFETY: as above; nothing in `Cuda` changes after `open`.
unsafe impl Sync for Cuda {}

impl Cuda {
    /// Loads libcuda and takes the primary context of the GPU at `render_node`'s PCI address
    /// (the first CUDA device without a node). Fails, with a reason for the log, on a machine
    /// without the NVIDIA driver or a GPU for it.
    pub fn open(render_node: Option<&Path>) -> Result<Arc<Cuda>, String> {
        // SAFETY: loading the NVIDIA driver's library runs its initialisers, which is what
        // every CUDA program does.
        let lib = unsafe { Library::new("libcuda.so.1") }
            .map_err(|err| format!("libcuda.so.1 cannot be loaded (no NVIDIA driver): {err}"))?;
        // SAFETY: each symbol is looked up by its documented name and given its documented
        // signature (the `_v2` names where the API has them); the library outlives them.
        let f = unsafe {
            Functions {
                init: symbol(&lib, b"cuInit\0")?,
                device_count: symbol(&lib, b"cuDeviceGetCount\0")?,
                device_get: symbol(&lib, b"cuDeviceGet\0")?,
                device_by_pci: symbol(&lib, b"cuDeviceGetByPCIBusId\0")?,
                device_name: symbol(&lib, b"cuDeviceGetName\0")?,
                primary_set_flags: symbol(&lib, b"cuDevicePrimaryCtxSetFlags_v2\0")?,
                primary_retain: symbol(&lib, b"cuDevicePrimaryCtxRetain\0")?,
                primary_release: symbol(&lib, b"cuDevicePrimaryCtxRelease_v2\0")?,
                push: symbol(&lib, b"cuCtxPushCurrent_v2\0")?,
                pop: symbol(&lib, b"cuCtxPopCurrent_v2\0")?,
                synchronize: symbol(&lib, b"cuCtxSynchronize\0")?,
                register_gl: symbol(&lib, b"cuGraphicsGLRegisterImage\0")?,
                map: symbol(&lib, b"cuGraphicsMapResources\0")?,
                unmap: symbol(&lib, b"cuGraphicsUnmapResources\0")?,
                mapped_array: symbol(&lib, b"cuGraphicsSubResourceGetMappedArray\0")?,
                array_descriptor: symbol(&lib, b"cuArrayGetDescriptor_v2\0")?,
                unregister: symbol(&lib, b"cuGraphicsUnregisterResource\0")?,
                memcpy_2d: symbol(&lib, b"cuMemcpy2D_v2\0")?,
                memcpy_2d_unaligned: symbol(&lib, b"cuMemcpy2DUnaligned_v2\0")?,
                error_name: symbol(&lib, b"cuGetErrorName\0")?,
                egl: symbol(&lib, b"cuGraphicsEGLRegisterImage\0").and_then(|register| {
                    Ok(EglFunctions {
                        register,
                        mapped_frame: symbol(&lib, b"cuGraphicsResourceGetMappedEglFrame\0")?,
                    })
                }),
            }
        };
        // SAFETY: plain driver API calls with pointers to locals.
        match unsafe { Self::device(&f, render_node) } {
            Ok((device, context, name)) => Ok(Arc::new(Cuda {
                f,
                device,
                context,
                name,
                _lib: lib,
            })),
            Err(err) => {
                // The driver, once initialised, may have threads of its own: it stays loaded.
                std::mem::forget(lib);
                Err(err)
            }
        }
    }

    /// Initialises CUDA and retains the primary context of the device at `render_node`'s PCI
    /// address, or of the only device; returns the device, the context and the device's name.
    ///
    /// # Safety
    /// `f` must be libcuda's functions.
    unsafe fn device(
        f: &Functions,
        render_node: Option<&Path>,
    ) -> Result<(CuDevice, CuContext, String), String> {
        let check = |what: &str, result: CuResult| check(f, what, result);
        // SAFETY: driver API calls with pointers to locals, as the caller promises `f` is.
        unsafe {
            check("cuInit", (f.init)(0))?;
            let pci = render_node.and_then(|node| pci_address(Path::new("/sys"), node));
            let mut device = 0;
            match (&pci, render_node) {
                (Some(address), _) => {
                    let c = CString::new(address.as_str()).map_err(|e| e.to_string())?;
                    check(
                        &format!("finding the CUDA device at {address}"),
                        (f.device_by_pci)(&mut device, c.as_ptr()),
                    )?;
                }
                (None, node) => {
                    // Without an address to match, only a machine with one GPU is certain.
                    let mut count = 0;
                    check("cuDeviceGetCount", (f.device_count)(&mut count))?;
                    if count != 1 {
                        return Err(match node {
                            Some(node) => format!(
                                "{} has no PCI address to find its GPU among {count} CUDA devices",
                                node.display()
                            ),
                            None => format!("{count} CUDA devices and no render node to choose by"),
                        });
                    }
                    check("cuDeviceGet", (f.device_get)(&mut device, 0))?;
                }
            }
            let mut name = [0 as c_char; 128];
            let name = match (f.device_name)(name.as_mut_ptr(), name.len() as c_int, device) {
                CUDA_SUCCESS => CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
                _ => format!("CUDA device {device}"),
            };
            // Set before the context is made (since CUDA 11 this may also change an active
            // primary context; FFmpeg asks the same of its own).
            match (f.primary_set_flags)(device, SCHED_BLOCKING_SYNC) {
                CUDA_SUCCESS | CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE => {}
                other => debug!(
                    err = %check("cuDevicePrimaryCtxSetFlags", other).unwrap_err(),
                    "waits for the GPU may spin"
                ),
            }
            let mut context = ptr::null_mut();
            check(
                "retaining the primary context",
                (f.primary_retain)(&mut context, device),
            )?;
            debug!(%name, device, pci = ?pci, "CUDA ready");
            Ok((device, context, name))
        }
    }

    /// [`Cuda::open`], once per render node for the process: streams share the device. A
    /// failure is not kept: the next stream tries again (a GPU out of memory for a while).
    pub fn shared(render_node: Option<&Path>) -> Result<Arc<Cuda>, String> {
        type Opened = HashMap<Option<PathBuf>, Arc<Cuda>>;
        static OPENED: Mutex<Option<Opened>> = Mutex::new(None);
        let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
        let opened = opened.get_or_insert_with(HashMap::new);
        let key = render_node.map(Path::to_path_buf);
        if let Some(cuda) = opened.get(&key) {
            return Ok(cuda.clone());
        }
        let cuda = Cuda::open(render_node)?;
        opened.insert(key, cuda.clone());
        Ok(cuda)
    }

    /// The GPU's name, as CUDA gives it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether CUDA takes `texture`, an RGBA8 `GL_TEXTURE_2D` of `width` x `height` of the GL
    /// context current on this thread, as the copies for NVENC take the compositor's:
    /// registered, mapped and described, then unmapped and unregistered again; the mapped array
    /// must be what the copies read (four one-byte channels, the texture's size). Says how CUDA
    /// maps it, or which call refused it with which error. For diagnostics of the machine
    /// (gpu-check's `cuda-interop` stage): which GL textures this driver registers.
    ///
    /// # Safety
    /// `texture` is a live `GL_TEXTURE_2D` of the GL context current on this thread.
    pub unsafe fn check_gl_texture(
        &self,
        texture: u32,
        (width, height): (usize, usize),
    ) -> Result<String, String> {
        self.current(|| {
            // SAFETY: as the caller promises; this context is current inside `current`.
            let resource = unsafe { register(self, texture)? };
            // SAFETY: a registration of ours, mapped while described, unregistered once.
            let described = unsafe {
                let described =
                    while_mapped(self, resource, |r| mapped_array(self, r).map(|(_, d)| d));
                let unregistered = self.check(
                    "cuGraphicsUnregisterResource",
                    (self.f.unregister)(resource),
                );
                described.and_then(|d| unregistered.map(|()| d))?
            };
            array_row_bytes(&described)?;
            let seen = (described.width, described.height);
            if seen != (width, height) {
                return Err(format!(
                    "CUDA maps the {width}x{height} texture as {}x{}",
                    seen.0, seen.1
                ));
            }
            Ok(format!(
                "mapped as a {}x{} array of {} one-byte channels",
                described.width, described.height, described.channels
            ))
        })
    }

    /// Whether CUDA takes `image`, an EGL image (of a dmabuf, say) on a display of this GPU's
    /// driver, through CUDA's EGL interop: registered (`cuGraphicsEGLRegisterImage`) and its
    /// frame described (`cuGraphicsResourceGetMappedEglFrame`), then unregistered. Says how CUDA
    /// sees it (an array or pitched memory, planes, element format, size), or which call refused
    /// it. For diagnostics of the machine, beside [`Cuda::check_gl_texture`]: the route the
    /// copies for NVENC do not take.
    ///
    /// # Safety
    /// `image` is a live EGL image.
    pub unsafe fn check_egl_image(&self, image: *const c_void) -> Result<String, String> {
        let egl = self
            .f
            .egl
            .as_ref()
            .map_err(|err| format!("no EGL interop: {err}"))?;
        self.current(|| {
            let mut resource = ptr::null_mut();
            // SAFETY: as the caller promises; a registration of ours, unregistered once below;
            // `frame` is plain data (all zeros is a value), written by the call.
            unsafe {
                register_with(
                    self,
                    "registering the EGL image with CUDA (cuGraphicsEGLRegisterImage)",
                    |flags| (egl.register)(&mut resource, image.cast_mut(), flags),
                )?;
                let mut frame: EglFrame = std::mem::zeroed();
                let described = self.check(
                    "cuGraphicsResourceGetMappedEglFrame",
                    (egl.mapped_frame)(&mut frame, resource, 0, 0),
                );
                let unregistered = self.check(
                    "cuGraphicsUnregisterResource",
                    (self.f.unregister)(resource),
                );
                described.and(unregistered)?;
                let kind = if frame.frame_type == EGL_FRAME_ARRAY {
                    "an array"
                } else {
                    "pitched memory"
                };
                Ok(format!(
                    "seen as {kind}, {}x{}, pitch {}, {} planes of {} channels in format {:#x}, EGL \
                     colour format {}",
                    frame.width,
                    frame.height,
                    frame.pitch,
                    frame.plane_count,
                    frame.channels,
                    frame.cu_format,
                    frame.color_format
                ))
            }
        })
    }

    /// Runs `f` with this context current on the calling thread.
    fn current<T>(&self, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        // SAFETY: the context is retained while `self` lives; it is popped again below.
        unsafe { self.check("making the context current", (self.f.push)(self.context))? };
        let result = f();
        let mut popped = ptr::null_mut();
        // SAFETY: pops what was pushed above.
        unsafe { (self.f.pop)(&mut popped) };
        result
    }

    fn check(&self, what: &str, result: CuResult) -> Result<(), String> {
        check(&self.f, what, result)
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        // SAFETY: releases the retain of `open`, once.
        unsafe { (self.f.primary_release)(self.device) };
    }
}

/// Looks up `name` in `lib` as a `T` (a function pointer type).
///
/// # Safety
/// `T` must be the symbol's real type.
unsafe fn symbol<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, String> {
    // SAFETY: as the caller promises.
    unsafe { lib.get::<T>(name) }
        .map(|s| *s)
        .map_err(|err| format!("libcuda has no {}: {err}", String::from_utf8_lossy(name)))
}

fn check(f: &Functions, what: &str, result: CuResult) -> Result<(), String> {
    if result == CUDA_SUCCESS {
        return Ok(());
    }
    let mut name = ptr::null();
    // SAFETY: cuGetErrorName points `name` at a static string, or fails and leaves it null.
    let name = unsafe {
        if (f.error_name)(result, &mut name) == CUDA_SUCCESS && !name.is_null() {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        } else {
            format!("CUDA error {result}")
        }
    };
    Err(format!("{what}: {name}"))
}

/// Where [`CudaCopier::copy`] puts a plane.
#[derive(Debug, Clone, Copy)]
pub enum PlaneDestination {
    /// CPU memory: `len` bytes at `ptr`, rows `pitch` bytes apart.
    Host {
        ptr: *mut u8,
        pitch: usize,
        len: usize,
    },
    /// GPU memory (a CUDA frame's plane), rows `pitch` bytes apart.
    Device { ptr: DevicePtr, pitch: usize },
}

impl PlaneDestination {
    /// Whether this destination holds `rows` rows of `width` bytes.
    fn check(&self, rows: u32, width: usize) -> Result<(), String> {
        let (pitch, room) = match *self {
            PlaneDestination::Host { pitch, len, .. } => (pitch, Some(len)),
            PlaneDestination::Device { pitch, .. } => (pitch, None),
        };
        let needed = pitch * (rows as usize).saturating_sub(1) + width;
        if pitch < width || room.is_some_and(|room| room < needed) {
            return Err(format!(
                "a plane of {rows} rows of {width} bytes does not fit its destination"
            ));
        }
        Ok(())
    }
}

/// One plane's copy out of a packed Y'CbCr texture ([`YuvImage`]): `rows` rows of `row_bytes`
/// from row `first_row` on; a texture row holds `texel_bytes` (`row_bytes` padded to whole
/// four-byte texels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlaneCopy {
    pub(crate) first_row: u32,
    pub(crate) rows: u32,
    pub(crate) row_bytes: u32,
    pub(crate) texel_bytes: u32,
}

impl PlaneCopy {
    /// The texture row past the plane's last.
    fn end_row(&self) -> usize {
        (self.first_row + self.rows) as usize
    }
}

/// The copies that take a `width` x `height` picture in `layout` out of its packed buffer,
/// plane by plane.
pub(crate) fn plane_copies(layout: YuvLayout, width: u32, height: u32) -> Vec<PlaneCopy> {
    (0..layout.planes())
        .map(|plane| {
            let span = layout.plane_span(plane, height, &(0..height));
            PlaneCopy {
                first_row: span.start,
                rows: span.len() as u32,
                row_bytes: width * layout.bytes_per_sample(),
                texel_bytes: layout.packed_size(width, height).0 * 4,
            }
        })
        .collect()
}

/// How many bytes a row of a mapped texture's array holds, once its elements are checked to be
/// what an RGBA8 texture's are: four one-byte channels.
fn array_row_bytes(array: &ArrayDescriptor) -> Result<usize, String> {
    if (array.format, array.channels) != (ARRAY_FORMAT_U8, 4) {
        return Err(format!(
            "CUDA maps the texture with elements other than four bytes (array format {:#x}, {} \
             channels)",
            array.format, array.channels
        ));
    }
    Ok(array.width * 4)
}

/// The PCI address (`0000:01:00.0`) of the GPU behind a DRM node, from sysfs under `sys`.
fn pci_address(sys: &Path, node: &Path) -> Option<String> {
    let name = node.file_name()?;
    let device: PathBuf = sys.join("class/drm").join(name).join("device");
    let target = std::fs::read_link(&device).ok()?;
    let address = target.file_name()?.to_str()?.to_string();
    // domain:bus:device.function, the domain four hex digits or more.
    let parts: Vec<&str> = address.split([':', '.']).collect();
    let looks_right = parts.len() == 4
        && parts[0].len() >= 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()));
    looks_right.then_some(address)
}

/// Copies [`YuvImage`]s (in textures, [`compositor::YuvStorage::Texture`]) into memory of a
/// [`Cuda`] device: a stream's CUDA side. The textures' registrations with CUDA stay with them
/// in the compositor, one per texture (registering costs about as much as a frame's copy), and
/// serve every stream on the device.
pub struct CudaCopier {
    cuda: Arc<Cuda>,
    /// Whether the first mapped texture was logged.
    described: Arc<AtomicBool>,
}

impl CudaCopier {
    pub fn new(cuda: Arc<Cuda>) -> CudaCopier {
        CudaCopier {
            cuda,
            described: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The device the copies go to.
    pub fn cuda(&self) -> &Arc<Cuda> {
        &self.cuda
    }

    /// Copies the planes of `image` into `planes` (one destination a plane, in the image's
    /// plane order), on the compositor's thread, which lends the image's texture; registers the
    /// texture with CUDA the first time. Returns once the copy is done: the image may be
    /// dropped then.
    ///
    /// # Safety
    /// Each destination must be memory that may be written, of the calling process (host) or
    /// of this copier's device (device), holding its plane's rows at its pitch, each row room
    /// for the plane's whole texels (its row bytes rounded up to four); host ones are checked
    /// against their length. It is written only before this returns.
    pub unsafe fn copy(
        &mut self,
        image: &YuvImage,
        planes: &[PlaneDestination],
    ) -> Result<(), String> {
        let copies = plane_copies(image.layout(), image.width(), image.height());
        if planes.len() != copies.len() {
            return Err(format!(
                "{} destinations for {} planes",
                planes.len(),
                copies.len()
            ));
        }
        let given_up = Arc::new(Mutex::new(false));
        let job = CopyJob {
            cuda: self.cuda.clone(),
            copies,
            planes: planes.to_vec(),
            described: self.described.clone(),
            given_up: given_up.clone(),
        };
        match image.with_texture(move |texture| job.run(texture)) {
            Ok(copied) => copied,
            Err(err) => {
                // The compositor may still run the job: from now on it copies nothing. Taking
                // the lock waits for a copy under way, into memory that is still the caller's.
                *given_up.lock().unwrap_or_else(|e| e.into_inner()) = true;
                Err(err.to_string())
            }
        }
    }
}

/// A copy of [`CudaCopier::copy`], run on the compositor's thread with the texture.
struct CopyJob {
    cuda: Arc<Cuda>,
    copies: Vec<PlaneCopy>,
    planes: Vec<PlaneDestination>,
    described: Arc<AtomicBool>,
    /// Set when the caller stopped waiting; held while the job copies.
    given_up: Arc<Mutex<bool>>,
}

// SAFETY: the destinations are written only while `given_up` is held and not set, which is
// while the caller of `CudaCopier::copy`, who promised them, still waits for the copy; the rest
// is CUDA's, usable from any thread.
unsafe impl Send for CopyJob {}

impl CopyJob {
    /// Registers the texture (once), maps it, copies its planes and unmaps it. The GL context
    /// the texture belongs to is current.
    fn run(self, texture: TextureAccess<'_>) -> Result<(), String> {
        let given_up = self.given_up.lock().unwrap_or_else(|e| e.into_inner());
        if *given_up {
            return Err("the copy was given up".into());
        }
        let cuda = &*self.cuda;
        cuda.current(|| {
            // SAFETY: the compositor lends its texture with its GL context current on this
            // thread, and `current` made CUDA's.
            let resource = unsafe { registration(&self.cuda, texture.texture, texture.kept)? };
            // SAFETY: a live registration of this context's device; the destinations are as
            // the caller of `copy` promised.
            let copied = unsafe { while_mapped(cuda, resource, |r| self.copy_mapped(r)) };
            // A copy into device memory may still run when cuMemcpy2D returns; the frame goes
            // to the encoder once this returns.
            // SAFETY: waits for this context's work.
            let synchronized = unsafe { cuda.check("cuCtxSynchronize", (cuda.f.synchronize)()) };
            copied.and(synchronized)
        })
    }

    /// The copies out of the mapped texture `resource`, with the context current.
    ///
    /// # Safety
    /// `resource` is mapped; the destinations are as [`CudaCopier::copy`] promises.
    unsafe fn copy_mapped(&self, resource: CuResource) -> Result<(), String> {
        let cuda = &*self.cuda;
        // SAFETY: `resource` is mapped, with the context current (`CopyJob::run`).
        let (array, described) = unsafe { mapped_array(cuda, resource)? };
        if !self.described.swap(true, Ordering::Relaxed) {
            info!(
                array_format = described.format,
                channels = described.channels,
                size = %format!("{}x{}", described.width, described.height),
                "CUDA maps the compositor's Y'CbCr textures so"
            );
        }
        let source_bytes = array_row_bytes(&described)?;
        for (copy, destination) in self.copies.iter().zip(&self.planes) {
            // Whole texels: an array's rows are of four-byte elements; the bytes past a row's
            // samples are padding.
            let width = copy.texel_bytes as usize;
            if source_bytes < width || described.height < copy.end_row() {
                return Err(format!(
                    "CUDA sees the texture as {}x{} ({source_bytes} bytes a row), short of the \
                     plane's {} rows of {width} bytes from row {}",
                    described.width, described.height, copy.rows, copy.first_row
                ));
            }
            destination.check(copy.rows, width)?;
            let mut op = Memcpy2d {
                src_x_in_bytes: 0,
                src_y: copy.first_row as usize,
                src_memory_type: MEMORY_ARRAY,
                src_host: ptr::null(),
                src_device: 0,
                src_array: array,
                src_pitch: 0,
                dst_x_in_bytes: 0,
                dst_y: 0,
                dst_memory_type: MEMORY_HOST,
                dst_host: ptr::null_mut(),
                dst_device: 0,
                dst_array: ptr::null_mut(),
                dst_pitch: 0,
                width_in_bytes: width,
                height: copy.rows as usize,
            };
            match *destination {
                PlaneDestination::Host { ptr, pitch, .. } => {
                    op.dst_host = ptr.cast();
                    op.dst_pitch = pitch;
                }
                PlaneDestination::Device { ptr, pitch } => {
                    op.dst_memory_type = MEMORY_DEVICE;
                    op.dst_device = ptr;
                    op.dst_pitch = pitch;
                }
            }
            // SAFETY: the source is the mapped texture, checked above to hold the rows; the
            // destination holds `rows` rows of `width` at its pitch (checked for host memory,
            // promised by the caller for device memory).
            unsafe {
                let mut copy = ("cuMemcpy2D", (cuda.f.memcpy_2d)(&op));
                // A copy into device memory may be refused for a pitch CUDA did not allocate;
                // the unaligned copy takes any.
                if copy.1 == CUDA_ERROR_INVALID_VALUE && op.dst_memory_type == MEMORY_DEVICE {
                    copy = ("cuMemcpy2DUnaligned", (cuda.f.memcpy_2d_unaligned)(&op));
                }
                cuda.check(copy.0, copy.1)?;
            }
        }
        Ok(())
    }
}

/// A texture's registration with CUDA, kept with the texture in the compositor
/// ([`TextureAccess::kept`]) and unregistered when the texture goes.
struct Registration {
    cuda: Arc<Cuda>,
    texture: u32,
    resource: CuResource,
}

// SAFETY: a CUDA handle, usable from any thread with its context current, which `drop` makes
// it.
unsafe impl Send for Registration {}

impl Drop for Registration {
    fn drop(&mut self) {
        let cuda = &*self.cuda;
        let _ = cuda.current(|| {
            // SAFETY: a registration of ours, unregistered once, before its texture goes.
            unsafe { (cuda.f.unregister)(self.resource) };
            Ok(())
        });
    }
}

/// The registration of `texture` with `cuda`, kept in `kept`: made on first sight, and again
/// where `kept` holds another (an older texture's, another device's, another consumer's).
///
/// # Safety
/// `texture` is a live `GL_TEXTURE_2D` of the GL context current on this thread, and `cuda`'s
/// context is current.
unsafe fn registration(
    cuda: &Arc<Cuda>,
    texture: u32,
    kept: &mut Option<Box<dyn Any + Send>>,
) -> Result<CuResource, String> {
    let ours = kept
        .as_ref()
        .and_then(|k| k.downcast_ref::<Registration>())
        .filter(|r| Arc::ptr_eq(&r.cuda, cuda) && r.texture == texture);
    if let Some(registration) = ours {
        return Ok(registration.resource);
    }
    // What was kept goes first.
    *kept = None;
    // SAFETY: as this function's caller promises.
    let resource = unsafe { register(cuda, texture)? };
    debug!(gpu = %cuda.name, texture, "a Y'CbCr texture registered with CUDA");
    *kept = Some(Box::new(Registration {
        cuda: cuda.clone(),
        texture,
        resource,
    }));
    Ok(resource)
}

/// Runs `f` on `resource` mapped (`cuGraphicsMapResources`, which orders the GL work before it
/// before the CUDA work in `f`), and unmaps it again (the GL work after waits for `f`'s). `f`'s
/// error comes first, then the unmapping's.
///
/// # Safety
/// `resource` is a live registration of `cuda`'s device, whose context is current; `f` may
/// rely on it being mapped.
unsafe fn while_mapped<T>(
    cuda: &Cuda,
    mut resource: CuResource,
    f: impl FnOnce(CuResource) -> Result<T, String>,
) -> Result<T, String> {
    // SAFETY: as the caller promises.
    unsafe {
        cuda.check(
            "cuGraphicsMapResources",
            (cuda.f.map)(1, &mut resource, ptr::null_mut()),
        )?;
    }
    let result = f(resource);
    // SAFETY: unmaps what was mapped above.
    let unmapped = unsafe {
        cuda.check(
            "cuGraphicsUnmapResources",
            (cuda.f.unmap)(1, &mut resource, ptr::null_mut()),
        )
    };
    result.and_then(|value| unmapped.map(|()| value))
}

/// The array a mapped texture is, and its description.
///
/// # Safety
/// `resource` is mapped, and `cuda`'s context is current.
unsafe fn mapped_array(
    cuda: &Cuda,
    resource: CuResource,
) -> Result<(CuArray, ArrayDescriptor), String> {
    let mut array = ptr::null_mut();
    let mut described = ArrayDescriptor::default();
    // SAFETY: as the caller promises; both are written by the calls.
    unsafe {
        cuda.check(
            "cuGraphicsSubResourceGetMappedArray",
            (cuda.f.mapped_array)(&mut array, resource, 0, 0),
        )?;
        cuda.check(
            "cuArrayGetDescriptor",
            (cuda.f.array_descriptor)(&mut described, array),
        )?;
    }
    Ok((array, described))
}

/// Registers `texture` with `cuda` (`cuGraphicsGLRegisterImage`), read-only where the driver
/// takes the hint.
///
/// # Safety
/// `texture` is a live `GL_TEXTURE_2D` of the GL context current on this thread, and `cuda`'s
/// context is current.
unsafe fn register(cuda: &Cuda, texture: u32) -> Result<CuResource, String> {
    let mut resource = ptr::null_mut();
    register_with(
        cuda,
        "registering the texture with CUDA (cuGraphicsGLRegisterImage)",
        // SAFETY: as the caller promises; `resource` is written by the call.
        |flags| unsafe { (cuda.f.register_gl)(&mut resource, texture, GL_TEXTURE_2D, flags) },
    )?;
    Ok(resource)
}

/// Runs a registration `register(flags)`, read-only first: read-only is a hint, and a driver
/// that refuses it takes none.
fn register_with(
    cuda: &Cuda,
    what: &str,
    mut register: impl FnMut(c_uint) -> CuResult,
) -> Result<(), String> {
    let mut result = register(REGISTER_READ_ONLY);
    if result == CUDA_ERROR_INVALID_VALUE {
        result = register(0);
    }
    cuda.check(what, result)
}

/// `AVCUDADeviceContext` (libavutil/hwcontext_cuda.h), which ffmpeg-sys does not bind.
#[repr(C)]
struct AvCudaDeviceContext {
    cuda_ctx: CuContext,
    stream: *mut c_void,
    internal: *mut c_void,
}

/// FFmpeg's pool of CUDA frames for NVENC (`AVHWFramesContext` of `AV_PIX_FMT_CUDA`) on the
/// device of `cuda`, in the layout the compositor converts into, through an FFmpeg CUDA device
/// on `cuda`'s context.
pub(super) fn cuda_frames(
    cuda: &Cuda,
    layout: YuvLayout,
    width: u32,
    height: u32,
) -> Result<HwBuffer, String> {
    // FFmpeg's CUDA device on our context (which it then neither checks nor releases: `cuda`
    // keeps it, and outlives the pool).
    // SAFETY: av_hwdevice_ctx_alloc gives a zeroed device context whose `hwctx` is an
    // AVCUDADeviceContext; the context is set before av_hwdevice_ctx_init, as FFmpeg documents
    // for a context of the caller's.
    let device = unsafe {
        let device = HwBuffer(ffmpeg::ffi::av_hwdevice_ctx_alloc(
            ffmpeg::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
        ));
        if device.0.is_null() {
            return Err("FFmpeg has no CUDA device type".into());
        }
        let dc = &mut *((*device.0).data as *mut ffmpeg::ffi::AVHWDeviceContext);
        let hw = &mut *(dc.hwctx as *mut AvCudaDeviceContext);
        hw.cuda_ctx = cuda.context;
        let ret = ffmpeg::ffi::av_hwdevice_ctx_init(device.0);
        if ret < 0 {
            return Err(format!(
                "FFmpeg's CUDA device on {}: {}",
                cuda.name,
                ffmpeg::Error::from(ret)
            ));
        }
        device
    };
    device
        .frames(
            ffmpeg::format::Pixel::CUDA,
            layout_format(layout),
            width,
            height,
        )
        .map_err(|err| format!("{width}x{height} {layout:?} CUDA frames: {err}"))
}

impl HwBuffer {
    /// Gives `frame` a CUDA frame of this pool (made by [`cuda_frames`]), filled with
    /// `image`'s planes on the GPU.
    pub(super) fn fill_cuda(
        &self,
        copier: &mut CudaCopier,
        image: &YuvImage,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<(), String> {
        // SAFETY: `frame` is ours; it is unreferenced and given a buffer of the pool, whose
        // planes are CUDA device pointers `linesize` bytes a row.
        let planes = unsafe {
            let f = frame.as_mut_ptr();
            ffmpeg::ffi::av_frame_unref(f);
            let ret = ffmpeg::ffi::av_hwframe_get_buffer(self.0, f, 0);
            if ret < 0 {
                return Err(format!("a CUDA frame: {}", ffmpeg::Error::from(ret)));
            }
            (0..image.layout().planes())
                .map(|i| PlaneDestination::Device {
                    ptr: (*f).data[i] as DevicePtr,
                    pitch: (*f).linesize[i].max(0) as usize,
                })
                .collect::<Vec<_>>()
        };
        // SAFETY: the planes of a frame FFmpeg just gave us from a CUDA pool on the copier's
        // device, each `linesize` bytes a row for the pool's size and format.
        let copied = unsafe { copier.copy(image, &planes) };
        if copied.is_err() {
            // The pool's frame goes back now, not with the next frame.
            // SAFETY: `frame` is ours.
            unsafe { ffmpeg::ffi::av_frame_unref(frame.as_mut_ptr()) };
        }
        copied
    }
}

/// The compositor's textures copied into CUDA frames of an FFmpeg pool, as NVENC gets them: a
/// pool on a CUDA device and a copier, kept from image to image as an encoder keeps them. A
/// check and a timing of the hand-off on a machine with CUDA.
pub struct CudaFrames {
    // Dropped in this order: the frame and the pool's memory go while the copier still holds
    // the CUDA context they live in.
    frame: ffmpeg::frame::Video,
    frames: HwBuffer,
    copier: CudaCopier,
    layout: YuvLayout,
}

impl CudaFrames {
    /// A pool of `width` x `height` CUDA frames of `layout` on the device of `copier`, which
    /// fills them.
    pub fn new(
        copier: CudaCopier,
        layout: YuvLayout,
        width: u32,
        height: u32,
    ) -> Result<CudaFrames, String> {
        Ok(CudaFrames {
            frame: ffmpeg::frame::Video::empty(),
            frames: cuda_frames(copier.cuda(), layout, width, height)?,
            copier,
            layout,
        })
    }

    /// The copier, for copies of its own.
    pub fn copier(&mut self) -> &mut CudaCopier {
        &mut self.copier
    }

    /// The copier back, the pool and its frame gone.
    pub fn into_copier(self) -> CudaCopier {
        let CudaFrames {
            frame,
            frames,
            copier,
            ..
        } = self;
        drop(frame);
        drop(frames);
        copier
    }

    /// Hands `image` over as the encoder gets it: its planes copied on the GPU into a CUDA
    /// frame of the pool (its texture registered with CUDA the first time it is seen), the copy
    /// done. The hand-off alone, for timing it.
    pub fn hand_off(&mut self, image: &YuvImage) -> Result<(), String> {
        self.frames
            .fill_cuda(&mut self.copier, image, &mut self.frame)
    }

    /// The planes of `image` as NVENC would read them: the CUDA frame of
    /// [`CudaFrames::hand_off`] downloaded, each plane's rows one after another,
    /// [`YuvImage::row_bytes`] each.
    pub fn planes(&mut self, image: &YuvImage) -> Result<Vec<Vec<u8>>, String> {
        self.hand_off(image)?;
        let down = self.frames.download(&self.frame)?;
        Ok(frame_planes(
            &down,
            self.layout,
            image.height(),
            image.row_bytes(),
        ))
    }
}

/// NVENC's CUDA side for a stream of `options`: a pool of CUDA frames and a copier into them,
/// on the GPU at `options.frames_on`.
pub(super) fn cuda_input(options: &EncoderOptions) -> Result<(HwBuffer, CudaCopier), String> {
    let cuda = Cuda::shared(options.frames_on.as_deref())?;
    let layout = Picture::layout_of(options.chroma, options.depth);
    let frames = cuda_frames(&cuda, layout, options.width, options.height)?;
    Ok((frames, CudaCopier::new(cuda)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copies, done on the CPU over a packed picture, give the planes the compositor's
    /// read-back gives.
    #[test]
    fn plane_copies_take_each_plane_out_of_the_packed_buffer() {
        let (width, height) = (6, 4);
        let pixels: Vec<u8> = (0..width * height * 4).map(|i| (i * 37) as u8).collect();
        for layout in YuvLayout::ALL {
            let conversion = compositor::YuvConversion {
                layout,
                kr: 0.2126,
                kb: 0.0722,
                full_range: false,
            };
            let picture =
                compositor::convert_on_cpu(&pixels, width, height, width as usize * 4, &conversion)
                    .unwrap();
            // The planes one after another, as the compositor's buffer holds them (its rows
            // padded to whole texels, these not: the copies count rows, not bytes).
            let pitch = picture.stride();
            let packed: Vec<u8> = (0..layout.planes())
                .flat_map(|p| picture.plane(p).unwrap().to_vec())
                .collect();
            let copies = plane_copies(layout, width, height);
            assert_eq!(copies.len(), layout.planes());
            for (plane, copy) in copies.iter().enumerate() {
                assert_eq!(copy.rows, layout.plane_rows(plane, height), "{layout:?}");
                assert_eq!(copy.row_bytes as usize, picture.row_bytes(), "{layout:?}");
                let expected = picture.plane(plane).unwrap();
                for r in 0..copy.rows as usize {
                    let start = (copy.first_row as usize + r) * pitch;
                    let ours = &packed[start..start + copy.row_bytes as usize];
                    let theirs = &expected[r * pitch..r * pitch + picture.row_bytes()];
                    assert_eq!(ours, theirs, "{layout:?} plane {plane} row {r}");
                }
            }
        }
    }

    #[test]
    fn a_destination_too_small_for_its_plane_is_refused() {
        // NV12 66 wide: chroma rows of 66 bytes, 68 in the buffer's whole texels.
        let copy = plane_copies(YuvLayout::Nv12, 66, 32)[1];
        assert_eq!((copy.rows, copy.row_bytes, copy.texel_bytes), (16, 66, 68));
        let mut room = vec![0u8; 66 * 16];
        let fits = PlaneDestination::Host {
            ptr: room.as_mut_ptr(),
            pitch: 66,
            len: room.len(),
        };
        assert!(fits.check(copy.rows, 66).is_ok());
        // Whole texels need more room than this pitch has.
        assert!(fits.check(copy.rows, 68).is_err());
        let short = PlaneDestination::Host {
            ptr: room.as_mut_ptr(),
            pitch: 66,
            len: room.len() - 1,
        };
        assert!(short.check(copy.rows, 66).is_err());
        let narrow = PlaneDestination::Device { ptr: 1, pitch: 65 };
        assert!(narrow.check(copy.rows, 66).is_err());
    }

    #[test]
    fn a_mapped_texture_is_read_only_as_four_byte_elements() {
        let array = |format, channels| ArrayDescriptor {
            width: 160,
            height: 720,
            format,
            channels,
        };
        // An RGBA8 texture's array: four bytes an element.
        assert_eq!(array_row_bytes(&array(ARRAY_FORMAT_U8, 4)), Ok(640));
        // Arrays the copies do not describe.
        for odd in [array(ARRAY_FORMAT_U8, 1), array(0x02, 4), array(0x08, 4)] {
            let err = array_row_bytes(&odd).unwrap_err();
            assert!(err.contains("other than four bytes"), "{err}");
        }
    }

    #[test]
    fn the_gpu_behind_a_render_node_is_found_by_its_pci_address() {
        let sys = tempfile::tempdir().unwrap();
        let drm = sys.path().join("class/drm/renderD129");
        std::fs::create_dir_all(&drm).unwrap();
        std::os::unix::fs::symlink("../../../0000:41:00.0", drm.join("device")).unwrap();
        let node = Path::new("/dev/dri/renderD129");
        assert_eq!(
            pci_address(sys.path(), node).as_deref(),
            Some("0000:41:00.0")
        );
        // A PCI domain of more than four digits.
        let wide = sys.path().join("class/drm/renderD132");
        std::fs::create_dir_all(&wide).unwrap();
        std::os::unix::fs::symlink("../../../10000:e1:00.0", wide.join("device")).unwrap();
        assert_eq!(
            pci_address(sys.path(), Path::new("/dev/dri/renderD132")).as_deref(),
            Some("10000:e1:00.0")
        );
        // A node sysfs does not know, or a device that is not on PCI.
        assert_eq!(
            pci_address(sys.path(), Path::new("/dev/dri/renderD130")),
            None
        );
        let virtual_drm = sys.path().join("class/drm/renderD131");
        std::fs::create_dir_all(&virtual_drm).unwrap();
        std::os::unix::fs::symlink("../../../vgem", virtual_drm.join("device")).unwrap();
        assert_eq!(
            pci_address(sys.path(), Path::new("/dev/dri/renderD131")),
            None
        );
    }

    #[test]
    fn without_the_nvidia_driver_cuda_says_so() {
        if Path::new("/dev/nvidiactl").exists() {
            eprintln!("skipped: this machine has the NVIDIA driver");
            return;
        }
        let err = Cuda::open(None)
            .err()
            .expect("no CUDA without the NVIDIA driver");
        assert!(err.contains("libcuda.so.1 cannot be loaded"), "{err}");
    }
}
