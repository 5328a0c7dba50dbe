//! The compositor state, split the way niri does it: [`State`] = backend + backend-free [`Core`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smithay::desktop::space::SpaceElement;
use smithay::desktop::{PopupManager, Space, Window, WindowSurfaceType};
use smithay::input::keyboard::XkbConfig;
use smithay::input::{Seat, SeatState};
use smithay::output::{Output, PhysicalProperties, Subpixel};
use smithay::reexports::calloop::{LoopHandle, RegistrationToken};
use smithay::reexports::wayland_server::backend::{ClientData, ClientId, DisconnectReason};
use smithay::reexports::wayland_server::protocol::wl_shm;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::DisplayHandle;
use smithay::utils::{Clock, Logical, Monotonic, Point, Size, Transform};
use smithay::wayland::compositor::{CompositorClientState, CompositorState};
use smithay::wayland::cursor_shape::CursorShapeManagerState;
use smithay::wayland::fractional_scale::FractionalScaleManagerState;
use smithay::wayland::idle_inhibit::IdleInhibitManagerState;
use smithay::wayland::output::OutputManagerState;
use smithay::wayland::presentation::PresentationState;
use smithay::wayland::selection::data_device::DataDeviceState;
use smithay::wayland::selection::primary_selection::PrimarySelectionState;
use smithay::wayland::shell::xdg::decoration::XdgDecorationState;
use smithay::wayland::shell::xdg::XdgShellState;
use smithay::wayland::shm::ShmState;
use smithay::wayland::single_pixel_buffer::SinglePixelBufferState;
use smithay::wayland::viewporter::ViewporterState;
use smithay::wayland::xdg_activation::XdgActivationState;
use tracing::{debug, warn};

use crate::backend::Backend;
use crate::element::WindowElement;
use crate::frame::Mailbox;
use crate::kiosk::KioskStack;
use crate::render::RenderStats;
use crate::scaling::{visible_windows, View};
use crate::xwayland::Xwayland;
use crate::{Error, KeymapOptions, Mode};

/// Everything the event loop callbacks get.
pub(crate) struct State {
    pub(crate) backend: Backend,
    pub(crate) core: Core,
}

/// Backend-free compositor state: protocol globals, windows, seat, output and frame pacing.
pub(crate) struct Core {
    pub(crate) display_handle: DisplayHandle,
    pub(crate) loop_handle: LoopHandle<'static, State>,
    pub(crate) start_time: Instant,

    pub(crate) compositor_state: CompositorState,
    pub(crate) xdg_shell_state: XdgShellState,
    pub(crate) shm_state: ShmState,
    pub(crate) seat_state: SeatState<State>,
    pub(crate) data_device_state: DataDeviceState,
    pub(crate) _output_manager_state: OutputManagerState,
    pub(crate) _viewporter_state: ViewporterState,
    pub(crate) _single_pixel_buffer_state: SinglePixelBufferState,
    pub(crate) _presentation_state: PresentationState,
    pub(crate) _xdg_decoration_state: XdgDecorationState,
    pub(crate) _fractional_scale_state: FractionalScaleManagerState,
    pub(crate) xdg_activation_state: XdgActivationState,
    pub(crate) _idle_inhibit_state: IdleInhibitManagerState,
    pub(crate) primary_selection_state: PrimarySelectionState,
    pub(crate) _cursor_shape_state: CursorShapeManagerState,
    /// zwp_linux_dmabuf_v1 and wl_drm, when the renderer runs on a GPU.
    pub(crate) gpu: crate::handlers::dmabuf::GpuBuffers,

    pub(crate) seat: Seat<State>,
    pub(crate) output: Output,
    pub(crate) mode: Mode,
    pub(crate) space: Space<WindowElement>,
    /// Toplevels whose surface has no buffer yet (or lost it).
    pub(crate) unmapped: Vec<Window>,
    /// Mapped toplevels in kiosk order.
    pub(crate) stack: KioskStack<WindowElement>,
    /// Popups of the Wayland windows; drawn with their window.
    pub(crate) popups: PopupManager,
    /// Surfaces with an idle inhibitor, and whether any is alive, shared with the handle.
    pub(crate) idle_inhibitors: Vec<WlSurface>,
    pub(crate) idle_inhibited: Arc<AtomicBool>,
    pub(crate) pointer_location: Point<f64, Logical>,
    /// How windows that keep their own size are scaled to the output.
    pub(crate) scaling: crate::Scaling,
    /// Pointer protocols, touch points and the cursor.
    pub(crate) input: crate::input::InputState,
    /// Xwayland, its window manager and the X11 windows.
    pub(crate) xwayland: Xwayland,

    pub(crate) mailbox: Arc<Mailbox>,
    /// Start of the frame clock: renders happen on its ticks.
    pub(crate) clock_epoch: Instant,
    /// `clock_epoch` on the monotonic clock that presentation times are given in: read once
    /// with it, so that every tick is a whole number of intervals from the others however
    /// late this thread runs later.
    pub(crate) clock_epoch_mono: Duration,
    pub(crate) last_render: Option<Instant>,
    pub(crate) redraw_timer: Option<RegistrationToken>,
    /// The pending redraw waits for a GPU buffer to be given back (see
    /// [`State::buffer_returned`]).
    pub(crate) waiting_for_buffer: bool,
    /// The source of GPU frames' read-backs and returned buffers, removed at shutdown so that
    /// frames outliving the compositor find it closed.
    pub(crate) gpu_frames_source: Option<RegistrationToken>,
    /// Frame callbacks waiting for their time (see `render.rs`).
    pub(crate) callback_timer: Option<RegistrationToken>,
    /// When frame callbacks last went out, until the next commit measures the drawing time.
    pub(crate) callbacks_sent_at: Option<Instant>,
    pub(crate) draw_times: crate::render::DrawTimes,
    pub(crate) frame_seq: u64,
    pub(crate) render_stats: RenderStats,
    /// Renders that failed in a row (see `State::render_failed`).
    pub(crate) render_failures: u32,
    pub(crate) running: bool,
}

/// Per-client data.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    pub(crate) compositor_state: CompositorClientState,
}

impl ClientData for ClientState {
    fn initialized(&self, client_id: ClientId) {
        debug!(?client_id, "client connected");
    }

    fn disconnected(&self, client_id: ClientId, reason: DisconnectReason) {
        match reason {
            DisconnectReason::ConnectionClosed => debug!(?client_id, "client disconnected"),
            DisconnectReason::ProtocolError(err) => {
                warn!(?client_id, %err, "client disconnected after a protocol error")
            }
        }
    }
}

impl Core {
    pub(crate) fn new(
        display_handle: DisplayHandle,
        loop_handle: LoopHandle<'static, State>,
        mode: Mode,
        keymap: &KeymapOptions,
        mailbox: Arc<Mailbox>,
    ) -> Result<Self, Error> {
        let dh = &display_handle;
        let compositor_state = CompositorState::new::<State>(dh);
        let xdg_shell_state = XdgShellState::new::<State>(dh);
        // ARGB8888 and XRGB8888 are always advertised; these are extra formats both renderers read.
        let shm_state =
            ShmState::new::<State>(dh, vec![wl_shm::Format::Abgr8888, wl_shm::Format::Xbgr8888]);
        let mut seat_state = SeatState::new();
        let data_device_state = DataDeviceState::new::<State>(dh);
        let output_manager_state = OutputManagerState::new_with_xdg_output::<State>(dh);
        let viewporter_state = ViewporterState::new::<State>(dh);
        let single_pixel_buffer_state = SinglePixelBufferState::new::<State>(dh);
        let presentation_state = PresentationState::new::<State>(dh, libc::CLOCK_MONOTONIC as u32);
        let xdg_decoration_state = XdgDecorationState::new::<State>(dh);
        let fractional_scale_state = FractionalScaleManagerState::new::<State>(dh);
        let xdg_activation_state = XdgActivationState::new::<State>(dh);
        let idle_inhibit_state = IdleInhibitManagerState::new::<State>(dh);
        let primary_selection_state = PrimarySelectionState::new::<State>(dh);
        let cursor_shape_state = CursorShapeManagerState::new::<State>(dh);

        let mut seat = seat_state.new_wl_seat(dh, "seat0");
        let xkb = XkbConfig {
            rules: "",
            model: &keymap.model,
            layout: &keymap.layout,
            variant: &keymap.variant,
            options: keymap.options.clone(),
        };
        seat.add_keyboard(xkb, keymap.repeat_delay_ms, keymap.repeat_rate)
            .map_err(|_| Error::Keymap(keymap.layout.clone()))?;
        seat.add_pointer();
        seat.add_touch();
        let input = crate::input::InputState::new(dh, &seat);

        let output = Output::new(
            "HEADLESS-1".into(),
            PhysicalProperties {
                size: (0, 0).into(),
                subpixel: Subpixel::Unknown,
                make: "punktfunk".into(),
                model: "virtual".into(),
            },
        );
        output.create_global::<State>(dh);
        let mut space = Space::default();
        space.map_output(&output, (0, 0));

        let xwayland = Xwayland::new(dh);

        let now = Instant::now();
        let mut core = Self {
            display_handle,
            loop_handle,
            start_time: now,
            compositor_state,
            xdg_shell_state,
            shm_state,
            seat_state,
            data_device_state,
            _output_manager_state: output_manager_state,
            _viewporter_state: viewporter_state,
            _single_pixel_buffer_state: single_pixel_buffer_state,
            _presentation_state: presentation_state,
            _xdg_decoration_state: xdg_decoration_state,
            _fractional_scale_state: fractional_scale_state,
            xdg_activation_state,
            _idle_inhibit_state: idle_inhibit_state,
            primary_selection_state,
            _cursor_shape_state: cursor_shape_state,
            gpu: Default::default(),
            seat,
            output,
            mode,
            space,
            unmapped: Vec::new(),
            stack: KioskStack::default(),
            popups: PopupManager::default(),
            idle_inhibitors: Vec::new(),
            idle_inhibited: Arc::default(),
            // The pointer starts in the middle of the output, as on a freshly plugged screen.
            pointer_location: (f64::from(mode.width) / 2.0, f64::from(mode.height) / 2.0).into(),
            scaling: crate::Scaling::default(),
            input,
            xwayland,
            mailbox,
            clock_epoch: now,
            clock_epoch_mono: monotonic_now(),
            last_render: None,
            redraw_timer: None,
            waiting_for_buffer: false,
            gpu_frames_source: None,
            callback_timer: None,
            callbacks_sent_at: None,
            draw_times: Default::default(),
            frame_seq: 0,
            render_stats: RenderStats::default(),
            render_failures: 0,
            running: true,
        };
        core.apply_output_mode(mode);
        Ok(core)
    }

    /// Sets the wl_output mode; windows are reconfigured by the caller.
    pub(crate) fn apply_output_mode(&mut self, mode: Mode) {
        let smithay_mode = smithay::output::Mode {
            size: (mode.width as i32, mode.height as i32).into(),
            refresh: mode.refresh_mhz as i32,
        };
        if let Some(old) = self.output.current_mode() {
            if old != smithay_mode {
                self.output.delete_mode(old);
            }
        }
        self.output.change_current_state(
            Some(smithay_mode),
            Some(Transform::Normal),
            Some(smithay::output::Scale::Integer(1)),
            Some((0, 0).into()),
        );
        self.output.set_preferred(smithay_mode);
        self.mode = mode;
        self.clock_epoch = Instant::now();
        self.clock_epoch_mono = monotonic_now();
    }

    /// The output size in logical coordinates (scale is always 1).
    pub(crate) fn output_size(&self) -> Size<i32, Logical> {
        (self.mode.width as i32, self.mode.height as i32).into()
    }

    pub(crate) fn frame_interval(&self) -> Duration {
        self.mode.frame_interval()
    }

    /// Milliseconds since start, the timestamp for input events and frame callbacks.
    pub(crate) fn now_ms(&self) -> u32 {
        self.start_time.elapsed().as_millis() as u32
    }

    /// The mapped or unmapped window whose toplevel surface is `surface`.
    pub(crate) fn window_for_surface(&self, surface: &WlSurface) -> Option<&Window> {
        self.stack
            .iter()
            .filter_map(WindowElement::wayland)
            .chain(self.unmapped.iter())
            .find(|w| w.toplevel().is_some_and(|t| t.wl_surface() == surface))
    }

    /// The surface under `location` (output coordinates): the topmost window drawn there that
    /// takes input at that point, as drawn (scaled or not, see [`crate::scaling`]).
    pub(crate) fn surface_under(&self, location: Point<f64, Logical>) -> Option<Under> {
        visible_windows(&self.space, &self.output, self.scaling)
            .into_iter()
            .find_map(|(window, placement)| {
                let point = placement.input.to_window(location) - placement.location;
                if !window.is_in_input_region(&point) {
                    return None;
                }
                let (surface, loc) = window.surface_under(point, WindowSurfaceType::ALL)?;
                Some(Under {
                    surface,
                    origin: loc.to_f64() + placement.location,
                    input: placement.input,
                })
            })
    }
}

/// A surface under a point of the output, in the coordinates Smithay's seat gets for it.
#[derive(Debug, Clone)]
pub(crate) struct Under {
    pub(crate) surface: WlSurface,
    /// The surface's origin in `input`'s coordinates.
    pub(crate) origin: Point<f64, Logical>,
    /// The coordinates input over the surface's window is given in (see
    /// [`crate::scaling::Placement::input`]).
    pub(crate) input: View,
}

impl Under {
    /// The focus for Smithay's seat: the surface and its origin.
    pub(crate) fn focus(&self) -> (WlSurface, Point<f64, Logical>) {
        (self.surface.clone(), self.origin)
    }

    /// `location` (output coordinates) relative to the surface.
    pub(crate) fn local(&self, location: Point<f64, Logical>) -> Point<f64, Logical> {
        self.input.to_window(location) - self.origin
    }
}

/// The monotonic clock's reading (`CLOCK_MONOTONIC`, the clock of presentation times).
pub(crate) fn monotonic_now() -> Duration {
    Clock::<Monotonic>::new().now().into()
}
