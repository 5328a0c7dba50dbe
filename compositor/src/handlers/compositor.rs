//! wl_compositor and wl_subcompositor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use smithay::backend::renderer::sync::Fence;
use smithay::backend::renderer::utils::on_commit_buffer_handler;
use smithay::delegate_compositor;
use smithay::reexports::calloop::{EventSource, Interest, RegistrationToken};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{Client, DisplayHandle, Resource};
use smithay::wayland::compositor::{
    add_blocker, add_destruction_hook, add_pre_commit_hook, get_parent, is_sync_subsurface,
    with_states, Blocker, BlockerState, BufferAssignment, CompositorClientState, CompositorHandler,
    CompositorState, SurfaceAttributes,
};
use smithay::wayland::dmabuf::get_dmabuf;
use smithay::wayland::drm_syncobj::{DrmSyncPoint, DrmSyncPointBlocker, DrmSyncobjCachedState};
use smithay::xwayland::XWaylandClientData;
use tracing::{debug, trace};

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
            add_destruction_hook::<Self, _>(surface, stop_waiting_for_acquire_points);
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

/// A commit that attaches a dmabuf the GPU is still rendering into waits (without blocking the
/// compositor) until the buffer is readable, so no frame shows a half rendered picture; the
/// client's later commits queue behind it. With explicit sync the commit names the point of a
/// timeline that says so (its acquire point); otherwise the buffer's own (implicit) fences do.
fn wait_for_dmabuf(state: &mut State, _dh: &DisplayHandle, surface: &WlSurface) {
    let (dmabuf, acquire) = with_states(surface, |states| {
        let mut attributes = states.cached_state.get::<SurfaceAttributes>();
        let dmabuf = match attributes.pending().buffer.as_ref() {
            Some(BufferAssignment::NewBuffer(buffer)) => get_dmabuf(buffer).ok().cloned(),
            _ => None,
        };
        let mut syncobj = states.cached_state.get::<DrmSyncobjCachedState>();
        (dmabuf, syncobj.pending().acquire_point.clone())
    });
    let Some(dmabuf) = dmabuf else { return };
    if let Some(acquire) = acquire {
        wait_for_acquire_point(state, surface, &acquire);
        return;
    }
    // Already readable: nothing to wait for.
    if let Ok((blocker, source)) = dmabuf.generate_blocker(Interest::READ) {
        block_until(state, surface, blocker, source, |_| {});
    }
}

/// How many of one surface's commits may wait on acquire points at once. A client's commits
/// queue behind the first that waits, so a well-behaved one has one or two waiting; each wait
/// costs the compositor an eventfd.
const MAX_ACQUIRE_WAITS: usize = 16;

/// The waits for acquire points a surface's commits are held back by: their event sources,
/// removed when they fire or when the surface goes (a client that ends before signalling its
/// points leaves none behind).
#[derive(Default)]
struct AcquireWaits {
    pending: Vec<AcquireWait>,
    /// The surface's client, told to apply what no longer waits once the surface goes.
    client: Option<Client>,
}

struct AcquireWait {
    token: RegistrationToken,
    /// Shared with the wait's blocker; also what tells the waits apart.
    gone: Arc<AtomicBool>,
}

/// An acquire point's blocker that also lets go when its surface goes: a synchronized
/// subsurface's commit is applied with its parent's, so the parent's later commits would wait
/// behind a subsurface that no longer exists.
struct AcquireBlocker {
    point: DrmSyncPointBlocker,
    gone: Arc<AtomicBool>,
}

impl Blocker for AcquireBlocker {
    fn state(&self) -> BlockerState {
        if self.gone.load(Ordering::SeqCst) {
            BlockerState::Released
        } else {
            self.point.state()
        }
    }
}

/// Runs `f` on `surface`'s [`AcquireWaits`].
fn with_waits<T>(surface: &WlSurface, f: impl FnOnce(&mut AcquireWaits) -> T) -> T {
    with_states(surface, |states| {
        let waits = states
            .data_map
            .get_or_insert_threadsafe(Mutex::<AcquireWaits>::default);
        let mut waits = waits.lock().unwrap();
        f(&mut waits)
    })
}

fn wait_for_acquire_point(state: &mut State, surface: &WlSurface, acquire: &DrmSyncPoint) {
    if acquire.is_signaled() {
        return;
    }
    let waiting = with_waits(surface, |waits| waits.pending.len());
    if waiting >= MAX_ACQUIRE_WAITS {
        debug!(
            waiting,
            "a surface has too many commits waiting for acquire points; this one goes ahead"
        );
        return;
    }
    let (point, source) = match acquire.generate_blocker() {
        Ok(wait) => wait,
        // The point was checked when it was set; what is left is the kernel refusing an
        // eventfd: the commit goes ahead, as it would with nothing to wait for.
        Err(err) => {
            debug!(%err, "cannot wait for a buffer's acquire point; its commit goes ahead");
            return;
        }
    };
    let gone = Arc::new(AtomicBool::new(false));
    let blocker = AcquireBlocker {
        point,
        gone: gone.clone(),
    };
    let weak = surface.downgrade();
    let this = gone.clone();
    let done = move |_: &mut State| {
        if let Ok(surface) = weak.upgrade() {
            with_waits(&surface, |waits| {
                waits.pending.retain(|wait| !Arc::ptr_eq(&wait.gone, &this))
            });
        }
    };
    if let Some(token) = block_until(state, surface, blocker, source, done) {
        with_waits(surface, |waits| {
            waits.client = surface.client();
            waits.pending.push(AcquireWait { token, gone });
        });
    }
}

/// A surface goes: the waits for its acquire points go with it, and what waited on them (a
/// parent's commit, for a subsurface's) is applied.
fn stop_waiting_for_acquire_points(state: &mut State, surface: &WlSurface) {
    let (pending, client) = with_waits(surface, |waits| {
        (std::mem::take(&mut waits.pending), waits.client.take())
    });
    if pending.is_empty() {
        return;
    }
    for wait in pending {
        wait.gone.store(true, Ordering::SeqCst);
        state.core.loop_handle.remove(wait.token);
    }
    // Not from inside the surface's destruction: once the event loop is idle again.
    if let Some(client) = client {
        state.core.loop_handle.insert_idle(move |state| {
            let dh = state.core.display_handle.clone();
            state
                .client_compositor_state(&client)
                .blocker_cleared(state, &dh);
        });
    }
}

/// Holds `surface`'s pending commit back until `source` fires; then runs `done` and lets the
/// commit go. The source's token, when it could be added to the event loop.
fn block_until<B, S>(
    state: &mut State,
    surface: &WlSurface,
    blocker: B,
    source: S,
    done: impl Fn(&mut State) + 'static,
) -> Option<RegistrationToken>
where
    B: Blocker + Send + 'static,
    S: EventSource<Event = (), Ret = Result<(), std::io::Error>> + 'static,
{
    let client = surface.client()?;
    let inserted = state
        .core
        .loop_handle
        .insert_source(source, move |_, _, state| {
            done(state);
            let dh = state.core.display_handle.clone();
            state
                .client_compositor_state(&client)
                .blocker_cleared(state, &dh);
            Ok(())
        });
    match inserted {
        Ok(token) => {
            add_blocker(surface, blocker);
            Some(token)
        }
        Err(err) => {
            trace!(?err, "cannot wait for a dmabuf; its commit goes ahead");
            None
        }
    }
}

delegate_compositor!(State);
