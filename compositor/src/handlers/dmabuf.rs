//! zwp_linux_dmabuf_v1: clients that render on the GPU hand their buffers over as dmabufs.
//!
//! The global exists only when the renderer runs on a GPU's render node and imports dmabufs
//! (see [`State::offer_gpu_buffers`]). Every buffer a client creates is imported once when it
//! is created; what the renderer cannot read is refused then, with the protocol's failure.
//!
//! Explicit sync (`wp_linux_drm_syncobj_manager_v1`) is offered beside them when the render
//! node's kernel driver has timeline syncobjs that can be waited on with an eventfd (Linux 6.6
//! and later): a commit then waits for its acquire point instead of the buffer's implicit
//! fences, and the release point is signalled once nothing reads the buffer any more.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer;
use smithay::backend::drm::DrmDeviceFd;
use smithay::reexports::wayland_server::backend::GlobalId;
use smithay::reexports::wayland_server::DisplayHandle;
use smithay::utils::DeviceFd;
use smithay::wayland::dmabuf::{
    DmabufFeedbackBuilder, DmabufGlobal, DmabufHandler, DmabufState, ImportNotifier,
};
use smithay::wayland::drm_syncobj::{supports_syncobj_eventfd, DrmSyncobjHandler, DrmSyncobjState};
use smithay::{delegate_dmabuf, delegate_drm_syncobj};
use tracing::{debug, info, warn};

use crate::backend::driver_hint;
use crate::state::State;

/// The globals through which clients hand GPU buffers over; empty without a GPU.
#[derive(Debug)]
pub(crate) struct GpuBuffers {
    pub(crate) dmabuf_state: DmabufState,
    dmabuf: Option<DmabufGlobal>,
    wl_drm: Option<GlobalId>,
    /// `wp_linux_drm_syncobj_manager_v1`, where the render node supports it.
    syncobj: Option<DrmSyncobjState>,
    /// Whether a client buffer was imported yet (the first is logged).
    any_imported: bool,
}

impl Default for GpuBuffers {
    fn default() -> Self {
        Self {
            dmabuf_state: DmabufState::new(),
            dmabuf: None,
            wl_drm: None,
            syncobj: None,
            any_imported: false,
        }
    }
}

impl GpuBuffers {
    /// Whether clients are offered dmabufs.
    pub(crate) fn offered(&self) -> bool {
        self.dmabuf.is_some()
    }
}

impl State {
    /// Imports a client's dmabuf (from either global) into the renderer, where it stays cached
    /// for the renders that show it; the first one imported is logged.
    pub(crate) fn import_client_dmabuf(&mut self, dmabuf: &Dmabuf) -> Result<(), String> {
        if let Err(err) = self.backend.import_dmabuf(dmabuf) {
            debug!(
                format = ?dmabuf.format(),
                size = ?dmabuf.size(),
                %err,
                "refusing a client's dmabuf the renderer cannot import"
            );
            return Err(err);
        }
        if !self.core.gpu.any_imported {
            self.core.gpu.any_imported = true;
            info!(
                format = ?dmabuf.format(),
                size = ?dmabuf.size(),
                "the first GPU buffer from a client is imported"
            );
        }
        Ok(())
    }

    /// Offers `zwp_linux_dmabuf_v1` (default feedback: `node`, and the formats and modifiers the
    /// renderer imports) and `wl_drm` on `node`, when the renderer imports dmabufs. Called once
    /// at start with the render node GLES runs on.
    pub(crate) fn offer_gpu_buffers(&mut self, node: &Path) {
        let formats = self.backend.dmabuf_formats();
        if formats.is_empty() {
            let reason = driver_hint::explain("the renderer imports no dmabufs", Some(node));
            info!(node = %node.display(), "{reason}: clients are offered only wl_shm");
            return;
        }
        let device = match std::fs::metadata(node) {
            Ok(meta) => meta.rdev(),
            Err(err) => {
                warn!(node = %node.display(), %err, "no dmabufs for clients: cannot read the render node");
                return;
            }
        };
        let feedback = match DmabufFeedbackBuilder::new(device, formats.iter().copied()).build() {
            Ok(feedback) => feedback,
            Err(err) => {
                warn!(%err, "no dmabufs for clients: cannot build the dmabuf feedback");
                return;
            }
        };
        let dh = self.core.display_handle.clone();
        let gpu = &mut self.core.gpu;
        gpu.dmabuf = Some(
            gpu.dmabuf_state
                .create_global_with_default_feedback::<State>(&dh, &feedback),
        );
        let fourccs = formats.iter().map(|f| f.code);
        gpu.wl_drm = Some(super::wl_drm::create_global(
            &dh,
            node.to_path_buf(),
            fourccs,
        ));
        info!(
            node = %node.display(),
            formats = formats.len(),
            "clients may hand over GPU buffers: zwp_linux_dmabuf_v1 and wl_drm offered"
        );
        gpu.syncobj = explicit_sync(&dh, node);
    }
}

/// `wp_linux_drm_syncobj_manager_v1` on `node`, when its driver has timeline syncobjs that can
/// be waited on with an eventfd; otherwise `None` and one log line saying why.
fn explicit_sync(dh: &DisplayHandle, node: &Path) -> Option<DrmSyncobjState> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
    {
        Ok(file) => file,
        Err(err) => {
            warn!(node = %node.display(), %err, "no explicit sync: cannot open the render node");
            return None;
        }
    };
    let device = DrmDeviceFd::new(DeviceFd::from(OwnedFd::from(file)));
    if !supports_syncobj_eventfd(&device) {
        info!(
            node = %node.display(),
            "no explicit sync: the render node's driver cannot wait on timeline syncobjs with \
             an eventfd (Linux 6.6 or later); clients' GPU buffers sync implicitly"
        );
        return None;
    }
    info!(
        node = %node.display(),
        "explicit sync offered: wp_linux_drm_syncobj_manager_v1"
    );
    Some(DrmSyncobjState::new::<State>(dh, device))
}

impl DrmSyncobjHandler for State {
    fn drm_syncobj_state(&mut self) -> Option<&mut DrmSyncobjState> {
        self.core.gpu.syncobj.as_mut()
    }
}

delegate_drm_syncobj!(State);

impl DmabufHandler for State {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.core.gpu.dmabuf_state
    }

    fn dmabuf_imported(
        &mut self,
        _global: &DmabufGlobal,
        dmabuf: Dmabuf,
        notifier: ImportNotifier,
    ) {
        if self.import_client_dmabuf(&dmabuf).is_ok() {
            // Fails only when the client is already gone.
            let _ = notifier.successful::<State>();
        } else {
            notifier.failed();
        }
    }
}

delegate_dmabuf!(State);
