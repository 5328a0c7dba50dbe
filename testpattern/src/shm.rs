//! wl_shm buffers backed by sealed memfds, with release tracking.
//!
//! Each buffer has its own memfd and pool, so a buffer of an old size can be destroyed on its own
//! once the compositor releases it, while buffers of the new size are already in use.

use std::os::fd::AsFd;
use std::ptr::NonNull;

use anyhow::Context as _;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use wayland_client::protocol::{wl_buffer, wl_shm, wl_shm_pool};
use wayland_client::QueueHandle;

use crate::pattern::BYTES_PER_PIXEL;

/// Most buffers a surface keeps at once (triple buffering).
pub(crate) const MAX_BUFFERS: usize = 3;

/// What a `wl_buffer` carries as user data: its slot in [`BufferSet`] and a generation, so a
/// release for a buffer that was since replaced is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BufferId {
    pub(crate) slot: usize,
    pub(crate) generation: u64,
}

/// One shared-memory buffer.
#[derive(Debug)]
pub(crate) struct Buffer {
    pub(crate) wl_buffer: wl_buffer::WlBuffer,
    pool: wl_shm_pool::WlShmPool,
    map: NonNull<u8>,
    len: usize,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: usize,
    /// The compositor holds it: attached and committed, and not released yet.
    pub(crate) busy: bool,
    pub(crate) id: BufferId,
}

impl Buffer {
    fn new<D>(
        shm: &wl_shm::WlShm,
        width: u32,
        height: u32,
        id: BufferId,
        qh: &QueueHandle<D>,
    ) -> anyhow::Result<Self>
    where
        D: wayland_client::Dispatch<wl_shm_pool::WlShmPool, ()>
            + wayland_client::Dispatch<wl_buffer::WlBuffer, BufferId>
            + 'static,
    {
        let stride = width as usize * BYTES_PER_PIXEL;
        let len = stride * height as usize;
        let size = i32::try_from(len).context("buffer larger than 2 GiB")?;
        let fd = rustix::fs::memfd_create(
            "punktfunk-testpattern",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .context("error creating a memfd")?;
        rustix::fs::ftruncate(&fd, len as u64).context("error sizing the memfd")?;
        // The compositor maps the fd too: sealing it against shrinking keeps it from faulting.
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .context("error sealing the memfd")?;
        // SAFETY: a fresh shared mapping of a memfd we own and sized to `len` (> 0, checked by the
        // caller); nothing else in this process aliases it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .context("error mapping the memfd")?;
        // mmap never returns null on success.
        let map = NonNull::new(ptr.cast::<u8>()).context("mmap returned null")?;
        let pool = shm.create_pool(fd.as_fd(), size, qh, ());
        let wl_buffer = pool.create_buffer(
            0,
            width as i32,
            height as i32,
            stride as i32,
            wl_shm::Format::Xrgb8888,
            qh,
            id,
        );
        // The pool keeps its own reference to the memory; our fd can close now.
        drop(fd);
        Ok(Self {
            wl_buffer,
            pool,
            map,
            len,
            width,
            height,
            stride,
            busy: false,
            id,
        })
    }

    /// The pixels, for drawing. Only write while the buffer is not busy.
    pub(crate) fn pixels(&mut self) -> &mut [u8] {
        // SAFETY: `map` is a live mapping of `len` bytes owned by this buffer until drop, and the
        // `&mut self` borrow makes this the only slice into it in this process.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.wl_buffer.destroy();
        self.pool.destroy();
        // SAFETY: the mapping was created in `Buffer::new` with this address and length and is
        // unmapped only here.
        if let Err(err) = unsafe { rustix::mm::munmap(self.map.as_ptr().cast(), self.len) } {
            eprintln!("testpattern: error unmapping a buffer: {err}");
        }
    }
}

/// Up to [`MAX_BUFFERS`] buffers of the current size.
#[derive(Debug, Default)]
pub(crate) struct BufferSet {
    slots: [Option<Buffer>; MAX_BUFFERS],
    /// Buffers of an earlier size that the compositor still holds; dropped on release.
    retired: Vec<Buffer>,
    next_generation: u64,
}

impl BufferSet {
    /// A free buffer of `width` x `height`, creating one if every existing one is busy and there
    /// is room. `None` when all [`MAX_BUFFERS`] are busy: draw again on the next release.
    pub(crate) fn acquire<D>(
        &mut self,
        shm: &wl_shm::WlShm,
        width: u32,
        height: u32,
        qh: &QueueHandle<D>,
    ) -> anyhow::Result<Option<&mut Buffer>>
    where
        D: wayland_client::Dispatch<wl_shm_pool::WlShmPool, ()>
            + wayland_client::Dispatch<wl_buffer::WlBuffer, BufferId>
            + 'static,
    {
        // Buffers of another size are of no more use: retire the busy ones, drop the free ones.
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|b| (b.width, b.height) != (width, height))
            {
                let old = slot.take().expect("checked to be Some above");
                if old.busy {
                    self.retired.push(old);
                }
            }
        }
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|b| !b.busy))
        {
            return Ok(self.slots[i].as_mut());
        }
        let Some(i) = self.slots.iter().position(Option::is_none) else {
            return Ok(None);
        };
        let id = BufferId {
            slot: i,
            generation: self.next_generation,
        };
        self.next_generation += 1;
        let buffer = Buffer::new(shm, width, height, id, qh)?;
        Ok(Some(self.slots[i].insert(buffer)))
    }

    /// Handles `wl_buffer.release`: the buffer is free to draw into again (or, if retired, gone).
    pub(crate) fn release(&mut self, id: BufferId) {
        if let Some(buffer) = self.slots.get_mut(id.slot).and_then(Option::as_mut) {
            if buffer.id == id {
                buffer.busy = false;
                return;
            }
        }
        self.retired.retain(|b| b.id != id);
    }
}
