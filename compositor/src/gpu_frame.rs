//! Frames that stay on the GPU: the output rendered into one of the compositor's GBM buffers,
//! handed out as a dmabuf ([`crate::FrameData::Dmabuf`]).

use std::any::Any;
use std::ops::Range;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer;
use smithay::backend::egl::EGLDisplay;
use smithay::backend::renderer::sync::SyncPoint;
use smithay::reexports::calloop::channel::Sender;
use tracing::warn;

use crate::backend::egl_lock;
use crate::backend::TextureSlot;
use crate::yuv::{ConvertError, YuvConversion, YuvLayout, YuvPicture};
use crate::PixelAccessError;

/// How long a read-back waits for the compositor thread, which reads back between renders.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The output rendered into a GBM buffer of the compositor's ring (see
/// [`crate::CompositorOptions::gpu_frames`]), or a client's dmabuf that is the whole output.
///
/// The buffer goes back to the ring when the last clone of the frame is dropped; while every
/// buffer of the ring is held, the compositor renders nothing, so consumers must drop frames
/// when done. The GPU may still be drawing when the frame arrives: a consumer on another GPU
/// queue waits for [`GpuFrame::render_fence`], one on the CPU calls
/// [`GpuFrame::wait_rendered`]. [`crate::Frame::with_pixels`] reads the buffer back into CPU
/// memory once (on the compositor's thread, which owns the GL context), for a software encoder.
pub struct GpuFrame {
    dmabuf: Dmabuf,
    sync: SyncPoint,
    /// Keeps the buffer out of the ring; given back to the compositor's thread on drop.
    hold: Hold,
    compositor: Sender<ToCompositor>,
    pixels: Mutex<Option<Arc<[u8]>>>,
    client: bool,
}

/// What keeps a frame's buffer from being drawn into again (a ring slot, a client's buffer).
pub(crate) type Hold = Box<dyn Any + Send + Sync>;

/// One plane of a [`GpuFrame`]'s dmabuf.
#[derive(Debug)]
pub struct DmabufPlane<'a> {
    /// The dmabuf's file descriptor for this plane.
    pub fd: BorrowedFd<'a>,
    /// Byte offset of the plane in the dmabuf.
    pub offset: u32,
    /// Bytes from the start of one row to the start of the next.
    pub stride: u32,
}

/// What GPU frames send the compositor's thread, which owns the GL context and the ring.
pub(crate) enum ToCompositor {
    /// Read a frame's dmabuf into CPU memory.
    ReadBack {
        dmabuf: Dmabuf,
        reply: mpsc::SyncSender<Result<Vec<u8>, String>>,
    },
    /// Convert a frame's dmabuf into Y'CbCr and read those luma rows (and their chroma rows)
    /// into CPU memory.
    ConvertYuv {
        dmabuf: Dmabuf,
        conversion: YuvConversion,
        rows: Vec<Range<u32>>,
        reply: mpsc::SyncSender<Result<YuvPicture, String>>,
    },
    /// Convert a frame's dmabuf into Y'CbCr in a buffer or texture of the compositor's, left
    /// on the GPU.
    ConvertYuvImage {
        dmabuf: Dmabuf,
        conversion: YuvConversion,
        storage: YuvStorage,
        reply: mpsc::SyncSender<Result<ConvertedImage, String>>,
    },
    /// Read a picture converted into one of the compositor's buffers or textures into CPU
    /// memory.
    ReadYuvImage {
        image: Stored,
        layout: YuvLayout,
        size: (u32, u32),
        reply: mpsc::SyncSender<Result<YuvPicture, String>>,
    },
    /// Lend a consumer the texture a picture was converted into, with the GL context current.
    UseTexture {
        slot: Arc<TextureSlot>,
        run: TextureUser,
        reply: mpsc::SyncSender<Result<(), String>>,
    },
    /// A frame was dropped: its render fence (which holds the EGL display) and what held its
    /// buffer, to be dropped on the compositor's thread, which may draw again.
    Dropped { sync: SyncPoint, hold: Hold },
}

/// What the compositor's thread gives back for [`ToCompositor::ConvertYuvImage`].
pub(crate) struct ConvertedImage {
    pub(crate) stored: Stored,
    pub(crate) sync: SyncPoint,
    pub(crate) hold: Hold,
}

/// A consumer of a texture, run on the compositor's thread ([`YuvImage::with_texture`]).
pub(crate) type TextureUser = Box<dyn FnOnce(TextureAccess<'_>) + Send>;

/// Where a [`YuvImage`]'s planes are kept.
#[derive(Clone)]
pub(crate) enum Stored {
    Buffer(YuvImageBuffer),
    /// The slot goes back to the compositor's pool when the last reference to it is dropped.
    Texture(Arc<TextureSlot>),
    /// Given back to the compositor (in [`YuvImage`]'s drop).
    Released,
}

/// Where a frame converted to Y'CbCr on the GPU is kept ([`GpuFrame::to_yuv_image`]): what
/// its consumer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvStorage {
    /// A GBM buffer of the compositor's, as a dmabuf and an EGL image
    /// ([`YuvImage::buffer`]): for an API that imports dmabufs (VA-API).
    Buffer,
    /// A GL texture of the compositor's, lent on its thread ([`YuvImage::with_texture`]): for
    /// an API that takes GL textures (CUDA's `cuGraphicsGLRegisterImage`; NVIDIA's desktop
    /// driver registers no EGL image of a dmabuf with CUDA).
    Texture,
}

/// A GL texture holding a converted picture, lent to a consumer on the compositor's thread with
/// the compositor's GL context current ([`YuvImage::with_texture`]).
pub struct TextureAccess<'a> {
    /// The texture's GL name: a `GL_TEXTURE_2D` of internal format `GL_RGBA8`, whose bytes are
    /// the planes as in a buffer ([`YuvImage`]), row 0 first.
    pub texture: u32,
    /// Its size in texels: [`YuvImage::packed_size`] and rows to spare below.
    pub size: (u32, u32),
    /// What consumers keep with this texture while it lives, such as its registration with
    /// another API: `None` the first time, else what the last consumer left. It is dropped
    /// before the texture is deleted, on the compositor's thread, with the GL context current;
    /// where the compositor is gone first, it is left undone (forgotten, not dropped).
    pub kept: &'a mut Option<Box<dyn Any + Send>>,
}

/// Why a request to the compositor's thread got no answer.
enum Unanswered {
    /// The compositor is gone.
    Gone,
    /// It did not answer within [`READ_BACK_TIMEOUT`].
    Late,
}

/// Sends the compositor's thread the request `make` builds around a reply channel, and waits
/// for the answer.
fn ask<T>(
    compositor: &Sender<ToCompositor>,
    make: impl FnOnce(mpsc::SyncSender<Result<T, String>>) -> ToCompositor,
) -> Result<Result<T, String>, Unanswered> {
    let (reply, answer) = mpsc::sync_channel(1);
    if compositor.send(make(reply)).is_err() {
        return Err(Unanswered::Gone);
    }
    answer
        .recv_timeout(READ_BACK_TIMEOUT)
        .map_err(|err| match err {
            mpsc::RecvTimeoutError::Disconnected => Unanswered::Gone,
            mpsc::RecvTimeoutError::Timeout => Unanswered::Late,
        })
}

/// The answer to a conversion request, or why there is none; `what` the compositor did not do
/// in time.
fn converted<T>(
    asked: Result<Result<T, String>, Unanswered>,
    what: &str,
) -> Result<T, ConvertError> {
    match asked {
        Ok(result) => result.map_err(ConvertError::Failed),
        Err(Unanswered::Gone) => Err(ConvertError::CompositorGone),
        Err(Unanswered::Late) => Err(ConvertError::Failed(format!(
            "the compositor did not {what} in time"
        ))),
    }
}

/// Gives a buffer's render fence and what held it back to the compositor's thread, or drops
/// them under the EGL lock if the compositor is gone (the fence may hold the last reference to
/// its EGL display, which is terminated on drop).
fn give_back(compositor: &Sender<ToCompositor>, sync: SyncPoint, hold: Hold) {
    if let Err(returned) = compositor.send(ToCompositor::Dropped { sync, hold }) {
        let _lock = egl_lock();
        drop(returned);
    }
}

impl GpuFrame {
    pub(crate) fn new(
        dmabuf: Dmabuf,
        sync: SyncPoint,
        hold: Hold,
        compositor: Sender<ToCompositor>,
        client: bool,
    ) -> Self {
        Self {
            dmabuf,
            sync,
            hold,
            compositor,
            pixels: Mutex::new(None),
            client,
        }
    }

    /// Whether the frame is a client's own dmabuf (a fullscreen window with nothing drawn over
    /// it, with [`crate::CompositorOptions::client_buffer_frames`]) rather than one of the
    /// compositor's buffers. The client gets it back when the last clone of the frame is
    /// dropped.
    pub fn is_client_buffer(&self) -> bool {
        self.client
    }

    /// The DRM fourcc of the buffer's pixels: `XR24` (XRGB8888), `XB30` (XBGR2101010) for a
    /// 10-bit ring ([`crate::CompositorHandle::set_ten_bit_frames`]), or a client buffer's
    /// `XR24`, `AR24`, `XB24`, `AB24`, `XB30`, `AB30`, `XR30` or `AR30` (alpha, where it has
    /// any, to be ignored). Read back into CPU memory, a frame is XRGB8888 whatever its buffer.
    pub fn fourcc(&self) -> u32 {
        self.dmabuf.format().code as u32
    }

    /// The DRM format modifier: how the pixels are laid out in memory (0 is linear).
    pub fn modifier(&self) -> u64 {
        self.dmabuf.format().modifier.into()
    }

    /// The dmabuf's planes (one for XRGB8888 and XBGR2101010; a layout with a compression plane
    /// has more).
    pub fn planes(&self) -> Vec<DmabufPlane<'_>> {
        dmabuf_planes(&self.dmabuf)
    }

    /// Whether the GPU has finished drawing the frame.
    pub fn is_rendered(&self) -> bool {
        self.sync.is_reached()
    }

    /// Blocks until the GPU has finished drawing the frame.
    pub fn wait_rendered(&self) -> Result<(), PixelAccessError> {
        self.sync.wait().map_err(|_| PixelAccessError::GpuReadBack)
    }

    /// A sync file that signals when the GPU has finished drawing the frame, for a consumer that
    /// waits on the GPU; `None` when the driver exports none (then [`GpuFrame::wait_rendered`]).
    pub fn render_fence(&self) -> Option<OwnedFd> {
        self.sync.export()
    }

    /// The frame's pixels in CPU memory, XRGB8888 rows `width * 4` bytes apart: read back from
    /// the GPU by the first call that succeeds, kept for the frame's later readers (which wait
    /// for a read-back under way).
    pub(crate) fn pixels(&self) -> Result<Arc<[u8]>, PixelAccessError> {
        let mut pixels = self.pixels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pixels) = &*pixels {
            return Ok(pixels.clone());
        }
        let read: Arc<[u8]> = self.read_back()?.into();
        *pixels = Some(read.clone());
        Ok(read)
    }

    /// The frame converted to Y'CbCr on the GPU, as `conversion` asks, and read into CPU
    /// memory: what a software encoder takes, with no conversion left for the CPU (for 4:2:0, a
    /// third of the bytes a read-back of the RGB pixels moves). Runs on the compositor's thread,
    /// like [`crate::Frame::with_pixels`]; nothing is kept for a second call.
    pub fn to_yuv(&self, conversion: &YuvConversion) -> Result<YuvPicture, ConvertError> {
        let (_, height) = self.size();
        self.to_yuv_rows(conversion, std::slice::from_ref(&(0..height)))
    }

    /// [`GpuFrame::to_yuv`] for luma rows `rows` (and their chroma rows) only, for a consumer
    /// that holds the frame before and takes what changed: the rest of the picture is zero.
    /// For 4:2:0 each span starts on an even row and ends on one (or at the last row).
    pub fn to_yuv_rows(
        &self,
        conversion: &YuvConversion,
        rows: &[Range<u32>],
    ) -> Result<YuvPicture, ConvertError> {
        let (width, height) = self.size();
        // Checked here too, to spare the round trip.
        conversion
            .layout
            .check(width, height, rows)
            .map_err(ConvertError::Failed)?;
        let asked = ask(&self.compositor, |reply| ToCompositor::ConvertYuv {
            dmabuf: self.dmabuf.clone(),
            conversion: *conversion,
            rows: rows.to_vec(),
            reply,
        });
        converted(asked, "convert the frame")
    }

    /// The frame converted to Y'CbCr on the GPU, as `conversion` asks, into a buffer or a
    /// texture of the compositor's (`storage`) that stays on the GPU: for an encoder that takes
    /// its picture there (VA-API, CUDA for NVENC). The compositor keeps four of each; each goes
    /// back to it when its [`YuvImage`] is dropped, and a fifth conversion while all four are
    /// held fails.
    pub fn to_yuv_image(
        &self,
        conversion: &YuvConversion,
        storage: YuvStorage,
    ) -> Result<YuvImage, ConvertError> {
        let (width, height) = self.size();
        conversion
            .layout
            .check(width, height, std::slice::from_ref(&(0..height)))
            .map_err(ConvertError::Failed)?;
        let asked = ask(&self.compositor, |reply| ToCompositor::ConvertYuvImage {
            dmabuf: self.dmabuf.clone(),
            conversion: *conversion,
            storage,
            reply,
        });
        let converted = converted(asked, "convert the frame")?;
        Ok(YuvImage {
            stored: converted.stored,
            sync: converted.sync,
            hold: converted.hold,
            compositor: self.compositor.clone(),
            layout: conversion.layout,
            width,
            height,
        })
    }

    /// The frame's width and height in pixels.
    fn size(&self) -> (u32, u32) {
        let size = self.dmabuf.size();
        (size.w.max(0) as u32, size.h.max(0) as u32)
    }

    fn read_back(&self) -> Result<Vec<u8>, PixelAccessError> {
        let asked = ask(&self.compositor, |reply| ToCompositor::ReadBack {
            dmabuf: self.dmabuf.clone(),
            reply,
        });
        match asked {
            Ok(Ok(pixels)) => Ok(pixels),
            Ok(Err(err)) => {
                warn!(%err, "reading a GPU frame back into CPU memory failed");
                Err(PixelAccessError::GpuReadBack)
            }
            Err(Unanswered::Gone) => Err(PixelAccessError::CompositorGone),
            Err(Unanswered::Late) => {
                warn!("the compositor did not read a GPU frame back in time");
                Err(PixelAccessError::GpuReadBack)
            }
        }
    }
}

fn dmabuf_planes(dmabuf: &Dmabuf) -> Vec<DmabufPlane<'_>> {
    dmabuf
        .handles()
        .zip(dmabuf.offsets())
        .zip(dmabuf.strides())
        .map(|((fd, offset), stride)| DmabufPlane { fd, offset, stride })
        .collect()
}

impl Drop for GpuFrame {
    fn drop(&mut self) {
        let sync = std::mem::take(&mut self.sync);
        let hold = std::mem::replace(&mut self.hold, Box::new(()));
        give_back(&self.compositor, sync, hold);
    }
}

impl std::fmt::Debug for GpuFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuFrame")
            .field("fourcc", &self.dmabuf.format().code)
            .field("modifier", &self.dmabuf.format().modifier)
            .field("rendered", &self.is_rendered())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A frame converted to Y'CbCr on the GPU and left there ([`GpuFrame::to_yuv_image`]): a
/// buffer or a GL texture of the compositor's whose bytes are the picture's planes, one after
/// another, as FFmpeg lays out the [`YuvLayout`] in memory, each row padded to whole texels.
///
/// Plane `p` starts at row [`YuvImage::plane_row`]`(p)` and has [`YuvLayout::plane_rows`] rows
/// of [`YuvImage::row_bytes`] bytes (for NV12 and P010 the chroma plane's rows hold Cb, Cr
/// pairs). The buffer or texture is ABGR8888 (RGBA8) to the GPU, four bytes a texel; a buffer
/// is a dmabuf and an EGL image ([`YuvImage::buffer`]), a texture is lent on the compositor's
/// thread ([`YuvImage::with_texture`]). The GPU may still be drawing when the image arrives:
/// wait for [`YuvImage::wait_rendered`] before another API reads it. The buffer or texture
/// goes back to the compositor when the image is dropped.
pub struct YuvImage {
    stored: Stored,
    sync: SyncPoint,
    hold: Hold,
    compositor: Sender<ToCompositor>,
    layout: YuvLayout,
    width: u32,
    height: u32,
}

/// The GBM buffer a [`YuvImage`] of [`YuvStorage::Buffer`] is kept in.
#[derive(Clone)]
pub struct YuvImageBuffer {
    pub(crate) dmabuf: Dmabuf,
    pub(crate) image: EglImage,
    pub(crate) linear: bool,
}

impl YuvImage {
    /// How the samples lie in memory.
    pub fn layout(&self) -> YuvLayout {
        self.layout
    }

    /// The picture's width in pixels (the frame's).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The picture's height in pixels (the frame's).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The bytes of one row of any plane: `width` samples (for 4:2:0 chroma, `width / 2` pairs),
    /// each one or two bytes.
    pub fn row_bytes(&self) -> u32 {
        self.width * self.layout.bytes_per_sample()
    }

    /// The row of the buffer or texture that plane `plane` starts at.
    pub fn plane_row(&self, plane: usize) -> u32 {
        self.layout.plane_span(plane, self.height, &(0..0)).start
    }

    /// The planes' size in the buffer or texture, in ABGR8888 texels: see
    /// [`YuvLayout::packed_size`]. It has some rows to spare past the planes.
    pub fn packed_size(&self) -> (u32, u32) {
        self.layout.packed_size(self.width, self.height)
    }

    /// The GBM buffer the picture is in; `None` for one in a texture.
    pub fn buffer(&self) -> Option<&YuvImageBuffer> {
        match &self.stored {
            Stored::Buffer(buffer) => Some(buffer),
            Stored::Texture(_) | Stored::Released => None,
        }
    }

    /// Runs `f` on the compositor's thread with the texture the picture is in and the
    /// compositor's GL context current, and returns what it returned; fails for a picture in
    /// a buffer. While `f` runs, the texture holds this picture and the compositor draws
    /// nothing. `f` may still run after a failure that says the compositor did not answer in
    /// time: what it writes must outlive the call, or be checked by it first.
    pub fn with_texture<T: Send + 'static>(
        &self,
        f: impl FnOnce(TextureAccess<'_>) -> T + Send + 'static,
    ) -> Result<T, ConvertError> {
        let Stored::Texture(slot) = &self.stored else {
            return Err(ConvertError::Failed(
                "the picture is not in a GL texture".into(),
            ));
        };
        let (result, returned) = mpsc::sync_channel(1);
        let run: TextureUser = Box::new(move |access| {
            let _ = result.send(f(access));
        });
        let asked = ask(&self.compositor, |reply| ToCompositor::UseTexture {
            slot: slot.clone(),
            run,
            reply,
        });
        converted(asked, "lend the texture")?;
        returned
            .try_recv()
            .map_err(|_| ConvertError::Failed("the texture was not lent".into()))
    }

    /// The picture read into CPU memory, for a consumer that cannot take it on the GPU after
    /// all (an encoder that failed). Runs on the compositor's thread, like
    /// [`GpuFrame::to_yuv`].
    pub fn read(&self) -> Result<YuvPicture, ConvertError> {
        let asked = ask(&self.compositor, |reply| ToCompositor::ReadYuvImage {
            image: self.stored.clone(),
            layout: self.layout,
            size: (self.width, self.height),
            reply,
        });
        converted(asked, "read the picture")
    }

    /// Blocks until the GPU has finished the conversion.
    pub fn wait_rendered(&self) -> Result<(), ConvertError> {
        self.sync
            .wait()
            .map_err(|_| ConvertError::Failed("waiting for the conversion failed".into()))
    }
}

impl YuvImageBuffer {
    /// Bytes from the start of one row of the buffer to the next (at least
    /// [`YuvImage::row_bytes`]).
    pub fn pitch(&self) -> u32 {
        self.dmabuf.strides().next().unwrap_or(0)
    }

    /// The buffer's rows: the planes' ([`YuvImage::packed_size`]) and more, to spare for an
    /// encoder that reads whole blocks.
    pub fn rows(&self) -> u32 {
        self.dmabuf.size().h.max(0) as u32
    }

    /// The DRM format modifier of the buffer (0 is linear, which a CPU mapping can read).
    pub fn modifier(&self) -> u64 {
        self.dmabuf.format().modifier.into()
    }

    /// Whether the buffer's rows lie one after another in memory at
    /// [`YuvImageBuffer::pitch`], so that its bytes are the planes (an API that imports the
    /// dmabuf as Y'CbCr planes needs that): modifier 0, or a driver without modifiers whose
    /// buffer was allocated linear.
    pub fn is_linear(&self) -> bool {
        self.linear
    }

    /// The buffer's dmabuf planes (one, for a linear buffer).
    pub fn planes(&self) -> Vec<DmabufPlane<'_>> {
        dmabuf_planes(&self.dmabuf)
    }

    /// The buffer as an EGL image of the compositor's display.
    pub fn egl_image(&self) -> &EglImage {
        &self.image
    }
}

impl Drop for YuvImage {
    fn drop(&mut self) {
        let sync = std::mem::take(&mut self.sync);
        let hold = std::mem::replace(&mut self.hold, Box::new(()));
        // A texture's slot is held by the image itself: it goes back with the rest, to be
        // dropped on the compositor's thread.
        let stored = std::mem::replace(&mut self.stored, Stored::Released);
        give_back(&self.compositor, sync, Box::new((hold, stored)));
    }
}

impl std::fmt::Debug for YuvImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuvImage")
            .field("layout", &self.layout)
            .field("size", &(self.width, self.height))
            .field("buffer", &self.buffer())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for YuvImageBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuvImageBuffer")
            .field("modifier", &self.dmabuf.format().modifier)
            .field("linear", &self.linear)
            .finish_non_exhaustive()
    }
}

/// A dmabuf of the compositor's imported into its EGL display (`EGLImageKHR`): for an API that
/// takes EGL images, and the buffer's identity for one that keeps state per buffer (a VA
/// surface). Clones share the image, which is destroyed with the last of them: whoever keeps
/// state of the buffer keeps a clone with it.
#[derive(Clone)]
pub struct EglImage(Arc<EglImageInner>);

struct EglImageInner {
    image: smithay::backend::egl::ffi::egl::types::EGLImage,
    /// Taken, and dropped under the EGL lock, when the image is destroyed.
    display: Option<EGLDisplay>,
}

// SAFETY: an EGLImage is a handle of the EGL display, which EGL lets any thread use; it is only
// destroyed once, by the last clone.
unsafe impl Send for EglImageInner {}
// SAFETY: as above; `&EglImage` only reads the handle.
unsafe impl Sync for EglImageInner {}

impl EglImage {
    /// `dmabuf` imported into `display`.
    pub(crate) fn new(display: &EGLDisplay, dmabuf: &Dmabuf) -> Result<Self, String> {
        let image = display
            .create_image_from_dmabuf(dmabuf)
            .map_err(|err| format!("importing a dmabuf as an EGL image: {err}"))?;
        Ok(Self(Arc::new(EglImageInner {
            image,
            display: Some(display.clone()),
        })))
    }

    /// The `EGLImageKHR`, valid while this value (or a clone) lives.
    pub fn as_ptr(&self) -> *const std::ffi::c_void {
        self.0.image
    }

    /// Whether `self` and `other` are the same image.
    pub fn same(&self, other: &EglImage) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for EglImageInner {
    fn drop(&mut self) {
        let _lock = egl_lock();
        if let Some(display) = self.display.take() {
            // SAFETY: the image was made on this display, which is alive, and no clone is left.
            unsafe {
                smithay::backend::egl::ffi::egl::DestroyImageKHR(
                    **display.get_display_handle(),
                    self.image,
                );
            }
            drop(display);
        }
    }
}

impl std::fmt::Debug for EglImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EglImage").field(&self.0.image).finish()
    }
}
