//! Frames out of the compositor: the [`Frame`] type and the newest-wins mailbox that carries it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::gpu_frame::GpuFrame;

/// One rendered image of the output.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout of [`Frame::data`].
    pub format: FrameFormat,
    /// The pixels.
    pub data: FrameData,
    /// Regions that changed since the frame with sequence number `seq - 1`.
    ///
    /// A consumer that missed frames (a gap in `seq`) must treat the whole frame as damaged.
    pub damage: Vec<Rect>,
    /// Render sequence number, starting at 0 for the first frame of the output; never skips.
    pub seq: u64,
    /// When the compositor finished rendering this frame.
    pub rendered_at: Instant,
    /// Time the compositor's render step took for this frame: compositing the output plus
    /// copying it into this frame's buffer (for benchmarks and statistics).
    pub render_time: Duration,
}

/// Pixel layout of a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameFormat {
    /// DRM `XR24`: 32 bits per pixel, little endian `0xXXRRGGBB`, i.e. the bytes B, G, R, X in
    /// memory. The X byte is undefined.
    Xrgb8888,
}

/// Where the pixels of a [`Frame`] live.
///
/// Every variant can be read on the CPU ([`Frame::with_pixels`]), whichever renderer made it: a
/// stream may fall back to a software encoder at any time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FrameData {
    /// CPU memory, `stride * height` bytes.
    ///
    /// The buffer comes from a small pool: once every clone of the `Arc` is dropped, the
    /// compositor reuses it for a later frame, so consumers should drop frames when done.
    Cpu {
        /// The pixels.
        bytes: Arc<[u8]>,
        /// Bytes from the start of one row to the start of the next.
        stride: u32,
    },
    /// The shared-memory buffer of the one client that covers the whole output, handed out
    /// without compositing or copying (see [`crate::CompositorOptions::client_buffer_frames`]).
    ///
    /// The client gets the buffer back (`wl_buffer.release`) only once every clone of the frame
    /// is dropped, so consumers must drop frames promptly or the client stalls.
    Client {
        /// The client's buffer.
        buffer: Arc<ClientBuffer>,
        /// Bytes from the start of one row to the start of the next in the client's buffer.
        stride: u32,
    },
    /// A dmabuf: the output rendered on the GPU into one of the compositor's GBM buffers (see
    /// [`crate::CompositorOptions::gpu_frames`]), or a fullscreen client's own dmabuf. Read on
    /// the CPU, it is read back once into rows `width * 4` bytes apart.
    Dmabuf(Arc<GpuFrame>),
}

impl FrameData {
    /// The bytes, if the frame is in the compositor's own CPU memory; `None` for
    /// [`FrameData::Client`] frames, which are read with [`Frame::with_pixels`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FrameData::Cpu { bytes, .. } => Some(bytes),
            FrameData::Client { .. } | FrameData::Dmabuf(_) => None,
        }
    }
}

impl Frame {
    /// Bytes from the start of one row to the start of the next in the pixels that
    /// [`Frame::with_pixels`] reads.
    pub fn stride(&self) -> u32 {
        match &self.data {
            FrameData::Cpu { stride, .. } | FrameData::Client { stride, .. } => *stride,
            FrameData::Dmabuf(_) => self.width * 4,
        }
    }

    /// Runs `read` on the frame's pixels ([`Frame::stride`] ` * height` bytes in
    /// [`Frame::format`]).
    ///
    /// A [`FrameData::Dmabuf`] frame is read back from the GPU on the first call (which waits
    /// for the compositor's thread to do it) and kept for the later ones.
    ///
    /// For a [`FrameData::Client`] frame this reads the client's shared memory in place, on the
    /// calling thread: `read` must not hand the slice to other threads (a client that shrinks
    /// its pool makes the read fault, and only this thread is guarded against that).
    pub fn with_pixels<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R, PixelAccessError> {
        let len = self.stride() as usize * self.height as usize;
        match &self.data {
            FrameData::Cpu { bytes, .. } => bytes
                .get(..len)
                .map(read)
                .ok_or(PixelAccessError::Truncated),
            FrameData::Client { buffer, .. } => buffer.with_bytes(len, read),
            FrameData::Dmabuf(gpu) => gpu
                .pixels()?
                .get(..len)
                .map(read)
                .ok_or(PixelAccessError::Truncated),
        }
    }

    /// A copy of the frame's pixels ([`Frame::stride`] ` * height` bytes).
    pub fn to_vec(&self) -> Result<Vec<u8>, PixelAccessError> {
        self.with_pixels(<[u8]>::to_vec)
    }
}

/// Why a frame's pixels could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PixelAccessError {
    /// The client's buffer memory is gone or smaller than the frame (the client truncated its
    /// pool); the client was sent a protocol error.
    #[error("the client's buffer memory is no longer readable")]
    ClientBufferGone,
    /// The frame's buffer is shorter than `stride * height`.
    #[error("the frame buffer is shorter than stride x height")]
    Truncated,
    /// A GPU frame could not be read back into CPU memory (logged with the reason).
    #[error("the GPU frame could not be read back")]
    GpuReadBack,
    /// A GPU frame outlived its compositor, which reads GPU frames back.
    #[error("the compositor that rendered the GPU frame is gone")]
    CompositorGone,
}

/// A client's `wl_shm` buffer, held for a frame (see [`FrameData::Client`]).
pub struct ClientBuffer {
    /// `Some` until dropped; dropping it sends `wl_buffer.release`.
    buffer: Option<smithay::backend::renderer::utils::Buffer>,
    /// Byte offset of the first pixel inside the pool.
    offset: usize,
    /// Wakes the compositor so it sends the release to the client without delay.
    flush: smithay::reexports::calloop::ping::Ping,
}

impl ClientBuffer {
    pub(crate) fn new(
        buffer: smithay::backend::renderer::utils::Buffer,
        offset: usize,
        flush: smithay::reexports::calloop::ping::Ping,
    ) -> Self {
        Self {
            buffer: Some(buffer),
            offset,
            flush,
        }
    }

    fn with_bytes<R>(
        &self,
        len: usize,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, PixelAccessError> {
        let buffer = self
            .buffer
            .as_ref()
            .ok_or(PixelAccessError::ClientBufferGone)?;
        let offset = self.offset;
        smithay::wayland::shm::with_buffer_contents(buffer, |ptr, pool_len, _| {
            if offset.checked_add(len).is_none_or(|end| end > pool_len) {
                return Err(PixelAccessError::ClientBufferGone);
            }
            // SAFETY: `ptr` is the start of the pool's mapping, `pool_len` bytes long, and the
            // range was checked above. Smithay keeps the mapping alive and unmoved while this
            // closure runs (it holds the pool's lock) and turns a fault from a truncated file
            // into an error for this thread. The client must not write a buffer it committed
            // until it is released; one that does only garbles its own picture.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.add(offset), len) };
            Ok(read(bytes))
        })
        .map_err(|_| PixelAccessError::ClientBufferGone)?
    }
}

impl Drop for ClientBuffer {
    fn drop(&mut self) {
        // Release first, then wake the compositor to flush the event out to the client.
        drop(self.buffer.take());
        self.flush.ping();
    }
}

impl std::fmt::Debug for ClientBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuffer")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// A rectangle in output pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rect {
    /// The whole of a `width` x `height` picture.
    pub fn whole(width: u32, height: u32) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// Width times height.
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The smallest rectangle around all of `rects`; `None` when they cover nothing.
    pub fn bounds(rects: &[Rect]) -> Option<Rect> {
        let mut covering = rects.iter().filter(|r| r.width > 0 && r.height > 0);
        let first = *covering.next()?;
        let (mut x0, mut y0) = (first.x, first.y);
        let (mut x1, mut y1) = (first.x + first.width, first.y + first.height);
        for r in covering {
            x0 = x0.min(r.x);
            y0 = y0.min(r.y);
            x1 = x1.max(r.x + r.width);
            y1 = y1.max(r.y + r.height);
        }
        Some(Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }
}

/// The consumer side of the frame mailbox.
///
/// The mailbox holds at most one frame: a frame that was not taken before the next one was
/// rendered is replaced (latency beats completeness). Clones share the same mailbox, so with
/// several receivers each frame goes to only one of them.
#[derive(Debug, Clone)]
pub struct FrameReceiver {
    mailbox: Arc<Mailbox>,
}

impl FrameReceiver {
    /// Waits up to `timeout` for a frame. Returns `None` on timeout or once the compositor has
    /// shut down and the mailbox is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.mailbox.lock();
        loop {
            if let Some(frame) = slot.take() {
                return Some(frame);
            }
            if self.mailbox.closed.load(Ordering::Acquire) {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = match self.mailbox.ready.wait_timeout(slot, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Takes the waiting frame, if there is one.
    pub fn try_recv(&self) -> Option<Frame> {
        self.mailbox.lock().take()
    }
}

/// The shared slot between the compositor thread and the consumers.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    slot: Mutex<Option<Frame>>,
    ready: Condvar,
    closed: AtomicBool,
}

impl Mailbox {
    pub(crate) fn receiver(self: &Arc<Self>) -> FrameReceiver {
        FrameReceiver {
            mailbox: self.clone(),
        }
    }

    /// Puts `frame` in the slot, dropping a frame nobody took.
    pub(crate) fn publish(&self, frame: Frame) {
        *self.lock() = Some(frame);
        self.ready.notify_all();
    }

    /// Whether a published frame is still waiting for its consumer.
    pub(crate) fn is_full(&self) -> bool {
        self.lock().is_some()
    }

    /// Wakes waiting receivers for good; they return `None` once the slot is empty.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Take the lock so a receiver between its check and its wait cannot miss the wakeup.
        drop(self.lock());
        self.ready.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Frame>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reusable CPU buffers for frames: a buffer is reused once all its consumers dropped it.
///
/// Each buffer remembers the sequence number of the frame it holds, so a new frame can be
/// written as an update of what is already there.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    buffers: Vec<(Arc<[u8]>, Option<u64>)>,
}

/// Buffers kept for reuse: one in the mailbox, one with the encoder, one being written.
const POOL_SIZE: usize = 3;

impl BufferPool {
    /// Returns a buffer of `len` bytes for frame `seq`, filled by `fill`, which gets the buffer
    /// and the sequence number of the frame it still holds (`None`: garbage or zeros).
    pub(crate) fn fill_with(
        &mut self,
        len: usize,
        seq: u64,
        fill: impl FnOnce(&mut [u8], Option<u64>),
    ) -> Arc<[u8]> {
        self.buffers.retain(|(b, _)| b.len() == len);
        for (buffer, held) in &mut self.buffers {
            if let Some(bytes) = Arc::get_mut(buffer) {
                fill(bytes, *held);
                *held = Some(seq);
                return buffer.clone();
            }
        }
        let mut fresh: Arc<[u8]> = vec![0u8; len].into();
        // The Arc was just created, so it is unique.
        fill(
            Arc::get_mut(&mut fresh).expect("fresh buffer is unique"),
            None,
        );
        if self.buffers.len() < POOL_SIZE {
            self.buffers.push((fresh.clone(), Some(seq)));
        }
        fresh
    }

    /// Forgets what every pooled buffer holds (after a failed fill): each is written whole
    /// next time.
    pub(crate) fn forget(&mut self) {
        for (_, held) in &mut self.buffers {
            *held = None;
        }
    }
}

/// The damage of the last few frames, to bring a pooled buffer from the frame it holds up to
/// the newest one by copying only what changed in between.
#[derive(Debug, Default)]
pub(crate) struct DamageHistory {
    /// `(seq, damage)`, oldest first, consecutive sequence numbers.
    frames: std::collections::VecDeque<(u64, Vec<Rect>)>,
}

impl DamageHistory {
    /// Records the damage of frame `seq`; a gap in sequence numbers forgets everything older.
    pub(crate) fn push(&mut self, seq: u64, damage: &[Rect]) {
        if self.frames.back().is_some_and(|(last, _)| last + 1 != seq) {
            self.frames.clear();
        }
        if self.frames.len() > POOL_SIZE + 1 {
            self.frames.pop_front();
        }
        self.frames.push_back((seq, damage.to_vec()));
    }

    /// Everything that changed after frame `since` up to the newest frame, or `None` when that
    /// is no longer known (then the whole frame has to be redrawn).
    pub(crate) fn since(&self, since: u64) -> Option<Vec<Rect>> {
        let first = self.frames.front()?.0;
        if since + 1 < first {
            return None;
        }
        Some(
            self.frames
                .iter()
                .filter(|(seq, _)| *seq > since)
                .flat_map(|(_, rects)| rects.iter().copied())
                .collect(),
        )
    }

    /// Forgets everything: no pooled buffer can be updated, only redrawn.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            width: 1,
            height: 1,
            format: FrameFormat::Xrgb8888,
            data: FrameData::Cpu {
                bytes: vec![0u8; 4].into(),
                stride: 4,
            },
            damage: Vec::new(),
            seq,
            rendered_at: Instant::now(),
            render_time: Duration::ZERO,
        }
    }

    #[test]
    fn newest_frame_wins() {
        let mailbox = Arc::new(Mailbox::default());
        let rx = mailbox.receiver();
        mailbox.publish(frame(1));
        mailbox.publish(frame(2));
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(2));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn closed_mailbox_stops_waiting() {
        let mailbox = Arc::new(Mailbox::default());
        let rx = mailbox.receiver();
        mailbox.close();
        let start = Instant::now();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_none());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn pool_reuses_dropped_buffers_and_knows_what_they_hold() {
        let mut pool = BufferPool::default();
        let a = pool.fill_with(8, 1, |b, held| {
            assert_eq!(held, None);
            b.fill(1)
        });
        let ptr = a.as_ptr();
        drop(a);
        let b = pool.fill_with(8, 2, |b, held| {
            assert_eq!(held, Some(1));
            b.fill(2)
        });
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(&b[..], &[2u8; 8]);
        let c = pool.fill_with(8, 3, |b, held| {
            assert_eq!(held, None);
            b.fill(3)
        });
        assert_ne!(c.as_ptr(), ptr);
    }

    fn rect(x: u32) -> Rect {
        Rect {
            x,
            y: 0,
            width: 1,
            height: 1,
        }
    }

    #[test]
    fn damage_history_unions_what_changed_since_a_frame() {
        let mut history = DamageHistory::default();
        for seq in 1..=3 {
            history.push(seq, &[rect(seq as u32)]);
        }
        assert_eq!(history.since(3), Some(vec![]));
        assert_eq!(history.since(1), Some(vec![rect(2), rect(3)]));
        assert_eq!(history.since(0), Some(vec![rect(1), rect(2), rect(3)]));
        // Older than the first recorded frame: unknown.
        for seq in 4..=10 {
            history.push(seq, &[rect(seq as u32)]);
        }
        assert_eq!(history.since(1), None);
        assert!(history.since(9).is_some());
        // A gap forgets the past.
        history.push(12, &[rect(12)]);
        assert_eq!(history.since(10), None);
        assert_eq!(history.since(11), Some(vec![rect(12)]));
    }
}
