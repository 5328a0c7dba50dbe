//! What an encoder keeps per buffer of the compositor's Y'CbCr pool: a VA surface
//! (`vaapi.rs`), which belongs to the encoder's pool of surfaces.

use compositor::EglImage;

/// More than the compositor's four buffers: a pool made again for a new size leaves the old
/// buffers' state behind, which goes, oldest first, once this many are kept.
const KEPT: usize = 8;

/// State per compositor buffer, found by the buffer's EGL image. The image is kept with it, so
/// that it names that buffer (and no new one) while the state lives.
pub(crate) struct PerBuffer<T> {
    /// The most recently used last.
    entries: Vec<(EglImage, T)>,
}

impl<T> PerBuffer<T> {
    pub(crate) fn new() -> Self {
        PerBuffer {
            entries: Vec::new(),
        }
    }

    /// The state of `image`'s buffer, made by `make` the first time it is seen. Where the
    /// oldest entry has to go to make room, `evict` gets its state before its image goes.
    pub(crate) fn get_or_make(
        &mut self,
        image: &EglImage,
        make: impl FnOnce() -> Result<T, String>,
        evict: impl FnOnce(T),
    ) -> Result<&T, String> {
        if let Some(i) = self.entries.iter().position(|(e, _)| e.same(image)) {
            let entry = self.entries.remove(i);
            self.entries.push(entry);
        } else {
            let state = make()?;
            if self.entries.len() >= KEPT {
                let (old_image, old) = self.entries.remove(0);
                evict(old);
                drop(old_image);
            }
            self.entries.push((image.clone(), state));
        }
        Ok(&self.entries.last().expect("just kept").1)
    }

    /// Whether nothing is kept yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
