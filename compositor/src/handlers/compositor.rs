//! wl_compositor and wl_subcompositor.

use smithay::backend::renderer::utils::on_commit_buffer_handler;
use smithay::delegate_compositor;
use smithay::reexports::calloop::Interest;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{Client, DisplayHandle, Resource};
use smithay::wayland::compositor::{
    add_blocker, add_pre_commit_hook, get_parent, is_sync_subsurface, with_states,
    BufferAssignment, CompositorClientState, CompositorHandler, CompositorState, SurfaceAttributes,
};
use smithay::wayland::dmabuf::get_dmabuf;
use smithay::xwayland::XWaylandClientData;
use tracing::trace;

use crate::state::{ClientState, State};

impl CompositorHandler for State {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.core.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        // Every client is inserted with a ClientState in the event loop, except Xwayland,
        // which Smithay inserts with its own.
        if let Some(xwayland) = client.get_data::<XWaylandClientData>() {
            return &xwayland.compositor_state;
        }
        &client
            .get_data::<ClientState>()
            .expect("clients are created with ClientState")
            .compositor_state
    }

    fn new_surface(&mut self, surface: &WlSurface) {
        if self.core.gpu.offered() {
            add_pre_commit_hook::<Self, _>(surface, wait_for_dmabuf);
        }
    }

    fn commit(&mut self, surface: &WlSurface) {
        self.note_commit();
        on_commit_buffer_handler::<Self>(surface);
        if !is_sync_subsurface(surface) {
            let mut root = surface.clone();
            while let Some(parent) = get_parent(&root) {
                root = parent;
            }
            if let Some(window) = self.core.window_for_surface(&root) {
                window.on_commit();
            }
        }
        self.handle_toplevel_commit(surface);
        self.handle_popup_commit(surface);
        self.queue_redraw();
    }
}

/// Implicit sync: a commit that attaches a dmabuf the GPU is still rendering into waits
/// (without blocking the compositor) until the buffer is readable, so no frame shows a half
/// rendered picture. The client's later commits queue behind it.
fn wait_for_dmabuf(state: &mut State, _dh: &DisplayHandle, surface: &WlSurface) {
    let dmabuf = with_states(surface, |states| {
        let mut attributes = states.cached_state.get::<SurfaceAttributes>();
        match attributes.pending().buffer.as_ref() {
            Some(BufferAssignment::NewBuffer(buffer)) => get_dmabuf(buffer).ok().cloned(),
            _ => None,
        }
    });
    let Some(dmabuf) = dmabuf else { return };
    // Already readable: nothing to wait for.
    let Ok((blocker, source)) = dmabuf.generate_blocker(Interest::READ) else {
        return;
    };
    let Some(client) = surface.client() else {
        return;
    };
    let inserted = state
        .core
        .loop_handle
        .insert_source(source, move |_, _, state| {
            let dh = state.core.display_handle.clone();
            state
                .client_compositor_state(&client)
                .blocker_cleared(state, &dh);
            Ok(())
        });
    match inserted {
        Ok(_) => add_blocker(surface, blocker),
        Err(err) => trace!(?err, "cannot wait for a dmabuf; its commit goes ahead"),
    }
}

delegate_compositor!(State);
