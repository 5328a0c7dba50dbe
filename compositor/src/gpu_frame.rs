//! Frames that stay on the GPU: the output rendered into one of the compositor's GBM buffers,
//! handed out as a dmabuf ([`crate::FrameData::Dmabuf`]).

use std::any::Any;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer;
use smithay::backend::renderer::sync::SyncPoint;
use smithay::reexports::calloop::channel::Sender;
use tracing::warn;

use crate::PixelAccessError;

/// How long a read-back waits for the compositor thread, which reads back between renders.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The output rendered into a GBM buffer of the compositor's ring (see
/// [`crate::CompositorOptions::gpu_frames`]).
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
    /// Keeps the buffer out of the ring.
    _hold: Box<dyn Any + Send + Sync>,
    read_back: Sender<ReadBack>,
    pixels: OnceLock<Result<Arc<[u8]>, PixelAccessError>>,
}

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

/// A request to the compositor thread to read a frame's dmabuf into CPU memory.
pub(crate) struct ReadBack {
    pub(crate) dmabuf: Dmabuf,
    pub(crate) reply: mpsc::SyncSender<Result<Vec<u8>, String>>,
}

impl GpuFrame {
    pub(crate) fn new(
        dmabuf: Dmabuf,
        sync: SyncPoint,
        hold: Box<dyn Any + Send + Sync>,
        read_back: Sender<ReadBack>,
    ) -> Self {
        Self {
            dmabuf,
            sync,
            _hold: hold,
            read_back,
            pixels: OnceLock::new(),
        }
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
    /// the GPU on the first call, kept for the frame's later readers.
    pub(crate) fn pixels(&self) -> Result<&[u8], PixelAccessError> {
        self.pixels
            .get_or_init(|| self.read_back().map(Arc::from))
            .as_deref()
            .map_err(|err| *err)
    }

    fn read_back(&self) -> Result<Vec<u8>, PixelAccessError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let request = ReadBack {
            dmabuf: self.dmabuf.clone(),
            reply,
        };
        if self.read_back.send(request).is_err() {
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

impl std::fmt::Debug for GpuFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuFrame")
            .field("fourcc", &self.dmabuf.format().code)
            .field("modifier", &self.dmabuf.format().modifier)
            .field("rendered", &self.is_rendered())
            .finish_non_exhaustive()
    }
}
