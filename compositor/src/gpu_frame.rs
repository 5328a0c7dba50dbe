//! Frames that stay on the GPU: the output rendered into one of the compositor's GBM buffers,
//! handed out as a dmabuf ([`crate::FrameData::Dmabuf`]).

use std::any::Any;
use std::ops::Range;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer;
use smithay::backend::renderer::sync::SyncPoint;
use smithay::reexports::calloop::channel::Sender;
use tracing::warn;

use crate::backend::egl_lock;
use crate::yuv::{ConvertError, YuvConversion, YuvPicture};
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
    /// A frame was dropped: its render fence (which holds the EGL display) and what held its
    /// buffer, to be dropped on the compositor's thread, which may draw again.
    Dropped { sync: SyncPoint, hold: Hold },
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

    /// The DRM fourcc of the pixels (`XR24` for [`crate::FrameFormat::Xrgb8888`]).
    pub fn fourcc(&self) -> u32 {
        self.dmabuf.format().code as u32
    }

    /// The DRM format modifier: how the pixels are laid out in memory (0 is linear).
    pub fn modifier(&self) -> u64 {
        self.dmabuf.format().modifier.into()
    }

    /// The dmabuf's planes (one for XRGB8888; a layout with a compression plane has more).
    pub fn planes(&self) -> Vec<DmabufPlane<'_>> {
        self.dmabuf
            .handles()
            .zip(self.dmabuf.offsets())
            .zip(self.dmabuf.strides())
            .map(|((fd, offset), stride)| DmabufPlane { fd, offset, stride })
            .collect()
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
        let height = self.dmabuf.size().h.max(0) as u32;
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
        let size = self.dmabuf.size();
        let (width, height) = (size.w.max(0) as u32, size.h.max(0) as u32);
        // Checked here too, to spare the round trip.
        conversion
            .layout
            .check(width, height, rows)
            .map_err(ConvertError::Failed)?;
        let (reply, answer) = mpsc::sync_channel(1);
        let request = ToCompositor::ConvertYuv {
            dmabuf: self.dmabuf.clone(),
            conversion: *conversion,
            rows: rows.to_vec(),
            reply,
        };
        if self.compositor.send(request).is_err() {
            return Err(ConvertError::CompositorGone);
        }
        match answer.recv_timeout(READ_BACK_TIMEOUT) {
            Ok(result) => result.map_err(ConvertError::Failed),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ConvertError::CompositorGone),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ConvertError::Failed(
                "the compositor did not convert the frame in time".into(),
            )),
        }
    }

    fn read_back(&self) -> Result<Vec<u8>, PixelAccessError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let request = ToCompositor::ReadBack {
            dmabuf: self.dmabuf.clone(),
            reply,
        };
        if self.compositor.send(request).is_err() {
            return Err(PixelAccessError::CompositorGone);
        }
        match answer.recv_timeout(READ_BACK_TIMEOUT) {
            Ok(Ok(pixels)) => Ok(pixels),
            Ok(Err(err)) => {
                warn!(%err, "reading a GPU frame back into CPU memory failed");
                Err(PixelAccessError::GpuReadBack)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(PixelAccessError::CompositorGone),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                warn!("the compositor did not read a GPU frame back in time");
                Err(PixelAccessError::GpuReadBack)
            }
        }
    }
}

impl Drop for GpuFrame {
    fn drop(&mut self) {
        let sync = std::mem::take(&mut self.sync);
        let hold = std::mem::replace(&mut self.hold, Box::new(()));
        let returned = self.compositor.send(ToCompositor::Dropped { sync, hold });
        if let Err(returned) = returned {
            // The compositor is gone. The fence may hold the last reference to its EGL display,
            // which is terminated on drop: that happens under the lock that guards EGL
            // displays.
            let _lock = egl_lock();
            drop(returned);
        }
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
