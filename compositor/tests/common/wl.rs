//! A small Wayland client for protocol tests, driven from the test thread: solid-colour windows,
//! popups and dialogs, and the protocols no Debian client shows in a way a test can read
//! (presentation feedback, activation, cursor shapes, idle inhibition, fractional scale,
//! decorations). Everything it hears from the compositor is recorded in [`App`].

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use wayland_client::globals::{registry_queue_init, GlobalList, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_keyboard, wl_output, wl_pointer, wl_region,
    wl_registry, wl_seat, wl_shm, wl_shm_pool, wl_surface,
};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum};
use wayland_protocols::wp::cursor_shape::v1::client::{
    wp_cursor_shape_device_v1, wp_cursor_shape_manager_v1,
};
use wayland_protocols::wp::fractional_scale::v1::client::{
    wp_fractional_scale_manager_v1, wp_fractional_scale_v1,
};
use wayland_protocols::wp::idle_inhibit::zv1::client::{
    zwp_idle_inhibit_manager_v1, zwp_idle_inhibitor_v1,
};
use wayland_protocols::wp::presentation_time::client::{wp_presentation, wp_presentation_feedback};
use wayland_protocols::wp::single_pixel_buffer::v1::client::wp_single_pixel_buffer_manager_v1;
use wayland_protocols::wp::viewporter::client::{wp_viewport, wp_viewporter};
use wayland_protocols::xdg::activation::v1::client::{xdg_activation_token_v1, xdg_activation_v1};
use wayland_protocols::xdg::decoration::zv1::client::{
    zxdg_decoration_manager_v1, zxdg_toplevel_decoration_v1,
};
use wayland_protocols::xdg::shell::client::{
    xdg_popup, xdg_positioner, xdg_surface, xdg_toplevel, xdg_wm_base,
};

/// A connection to a compositor and everything heard on it.
pub struct WlClient {
    pub conn: Connection,
    queue: EventQueue<App>,
    pub app: App,
}

/// One presentation feedback that came back "presented".
#[derive(Debug, Clone, Copy)]
pub struct Presented {
    /// The surface's window index.
    pub window: usize,
    /// Presentation time, nanoseconds of the compositor's clock.
    pub time_ns: u128,
    /// Output refresh interval in nanoseconds.
    pub refresh_ns: u32,
    pub seq: u64,
}

/// A window (toplevel or popup) with a solid colour.
pub struct Window {
    pub surface: wl_surface::WlSurface,
    pub xdg: xdg_surface::XdgSurface,
    pub toplevel: Option<xdg_toplevel::XdgToplevel>,
    pub popup: Option<xdg_popup::XdgPopup>,
    /// `0xAARRGGBB`.
    pub colour: u32,
    /// A size the client insists on; `None` draws at the configured size.
    pub fixed_size: Option<(i32, i32)>,
    /// A frame of this colour and width drawn along the buffer's edges, over `colour`.
    pub border: Option<(u32, i32)>,
    /// The last toplevel configure: size and states.
    pub configured_size: Option<(i32, i32)>,
    pub states: Vec<xdg_toplevel::State>,
    /// The last popup configure: position relative to the parent and size.
    pub popup_geometry: Option<(i32, i32, i32, i32)>,
    pub popup_done: bool,
    pub configures: usize,
    /// The size of the buffer on screen.
    pub drawn_size: Option<(i32, i32)>,
    pub decoration: Option<zxdg_toplevel_decoration_v1::ZxdgToplevelDecorationV1>,
    /// Drawn as a single-pixel buffer scaled by a viewport to this size, instead of shm.
    pub single_pixel: Option<(wp_viewport::WpViewport, (i32, i32))>,
    /// Its `fixed_size` buffer stretched by this viewport to the configured size, as a game
    /// emulating a mode does (SDL2 on Wayland).
    pub stretched: Option<wp_viewport::WpViewport>,
    pub decoration_modes: Vec<zxdg_toplevel_decoration_v1::Mode>,
    pub preferred_scale: Option<u32>,
}

/// Client state: globals and what the compositor said.
pub struct App {
    pub qh: QueueHandle<App>,
    pub globals: GlobalList,
    compositor: wl_compositor::WlCompositor,
    shm: wl_shm::WlShm,
    wm_base: xdg_wm_base::XdgWmBase,
    pub seat: wl_seat::WlSeat,
    pub pointer: Option<wl_pointer::WlPointer>,
    pub windows: Vec<Window>,
    /// wl_output current modes seen: (width, height, refresh in mHz).
    pub output_modes: Vec<(i32, i32, i32)>,
    /// The window with keyboard focus, and the serial of its enter event.
    pub keyboard_focus: Option<usize>,
    pub keyboard_serial: u32,
    /// The window under the pointer and the serial of the last pointer enter.
    pub pointer_focus: Option<usize>,
    pub pointer_serial: u32,
    /// Where the pointer is on the focused surface, from enter and motion events.
    pub pointer_position: Option<(f64, f64)>,
    /// Key events: (evdev code, pressed).
    pub keys: Vec<(u32, bool)>,
    /// The serial of the last pointer button press.
    pub button_serial: Option<u32>,
    pub presented: Vec<Presented>,
    pub discarded: usize,
    pub clock_id: Option<u32>,
    presentation: Option<wp_presentation::WpPresentation>,
    single_pixel: Option<wp_single_pixel_buffer_manager_v1::WpSinglePixelBufferManagerV1>,
    pub frame_done: bool,
    pub activation_token: Option<String>,
    /// Tablet seat announcements and tool events (see [`super::tablet`]).
    pub tablet: super::tablet::TabletLog,
}

impl WlClient {
    /// Connects to the compositor's socket and binds the core globals.
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect to the compositor");
        let conn = Connection::from_socket(stream).expect("wayland connection");
        let (globals, mut queue) = registry_queue_init::<App>(&conn).expect("registry");
        let qh = queue.handle();
        let compositor = globals.bind(&qh, 4..=6, ()).expect("wl_compositor");
        let shm = globals.bind(&qh, 1..=1, ()).expect("wl_shm");
        let wm_base = globals.bind(&qh, 2..=6, ()).expect("xdg_wm_base");
        let seat = globals.bind(&qh, 5..=7, ()).expect("wl_seat");
        let _output: wl_output::WlOutput = globals.bind(&qh, 2..=4, ()).expect("wl_output");
        let mut app = App {
            qh,
            globals,
            compositor,
            shm,
            wm_base,
            seat,
            pointer: None,
            windows: Vec::new(),
            output_modes: Vec::new(),
            keyboard_focus: None,
            keyboard_serial: 0,
            pointer_focus: None,
            pointer_serial: 0,
            pointer_position: None,
            keys: Vec::new(),
            button_serial: None,
            presented: Vec::new(),
            discarded: 0,
            clock_id: None,
            presentation: None,
            single_pixel: None,
            frame_done: false,
            activation_token: None,
            tablet: Default::default(),
        };
        queue.roundtrip(&mut app).expect("roundtrip");
        WlClient { conn, queue, app }
    }

    /// Binds a global of the compositor; panics if it is missing.
    pub fn bind<I>(&self, version: u32) -> I
    where
        I: Proxy + 'static,
        App: Dispatch<I, ()>,
    {
        self.app
            .globals
            .bind(&self.app.qh, version..=version, ())
            .unwrap_or_else(|err| panic!("binding {}: {err}", I::interface().name))
    }

    /// Creates a toplevel of `colour`, drawn at the configured size or at `fixed_size`, and
    /// makes the initial commit. Returns the window index; it maps on the first configure.
    pub fn create_toplevel(&mut self, colour: u32, fixed_size: Option<(i32, i32)>) -> usize {
        let index = self.app.windows.len();
        let qh = &self.app.qh;
        let surface = self.app.compositor.create_surface(qh, index);
        let xdg = self.app.wm_base.get_xdg_surface(&surface, qh, index);
        let toplevel = xdg.get_toplevel(qh, index);
        self.app
            .windows
            .push(Window::new(surface, xdg, colour, fixed_size));
        self.app.windows[index].toplevel = Some(toplevel);
        index
    }

    /// Sets the pointer's image, at the last pointer enter, to a `size` square of `colour` with
    /// its hotspot at `hotspot`.
    pub fn set_cursor(&mut self, colour: u32, size: i32, hotspot: (i32, i32)) {
        let pointer = self.app.pointer.as_ref().expect("a pointer");
        // Not a window: its index is past every window's.
        let surface = self.app.compositor.create_surface(&self.app.qh, usize::MAX);
        pointer.set_cursor(
            self.app.pointer_serial,
            Some(&surface),
            hotspot.0,
            hotspot.1,
        );
        let buffer = solid_buffer(&self.app.shm, &self.app.qh, size, size, colour, None);
        surface.attach(Some(&buffer), 0, 0);
        surface.damage_buffer(0, 0, size, size);
        surface.commit();
        self.roundtrip();
    }

    /// Makes `window` stretch its `fixed_size` buffer to the size it is configured to with a
    /// `wp_viewport` from its next draw on, as a game emulating a mode does.
    pub fn stretch_with_viewport(&mut self, window: usize) {
        let viewporter: wp_viewporter::WpViewporter = self.bind(1);
        let viewport = viewporter.get_viewport(&self.app.windows[window].surface, &self.app.qh, ());
        self.app.windows[window].stretched = Some(viewport);
    }

    /// Creates a toplevel drawn as one pixel of `colour` (a `wp_single_pixel_buffer_v1`)
    /// stretched to `size` by a `wp_viewport`, and makes the initial commit.
    pub fn create_single_pixel_toplevel(&mut self, colour: u32, size: (i32, i32)) -> usize {
        let viewporter: wp_viewporter::WpViewporter = self.bind(1);
        let window = self.create_toplevel(colour, None);
        let viewport = viewporter.get_viewport(&self.app.windows[window].surface, &self.app.qh, ());
        self.app.windows[window].single_pixel = Some((viewport, size));
        if self.app.single_pixel.is_none() {
            self.app.single_pixel = Some(self.bind(1));
        }
        self.commit(window);
        window
    }

    /// Makes the initial commit of a window created with [`Self::create_toplevel`] after the
    /// caller set it up (parent, decoration, ...).
    /// Draws `window` again, in the colour it has now, and commits it.
    pub fn redraw(&mut self, window: usize) {
        self.app.draw(window);
        let _ = self.conn.flush();
    }

    pub fn commit(&self, window: usize) {
        self.app.windows[window].surface.commit();
        let _ = self.conn.flush();
    }

    /// Creates a popup of `colour` and `size` on `parent`, anchored to the rectangle
    /// `anchor_rect` of the parent's bottom right corner, with `adjustment` for constraints.
    pub fn create_popup(
        &mut self,
        parent: usize,
        colour: u32,
        size: (i32, i32),
        anchor_rect: (i32, i32, i32, i32),
        adjustment: xdg_positioner::ConstraintAdjustment,
    ) -> usize {
        self.create_popup_with_grab(parent, colour, size, anchor_rect, adjustment, None)
    }

    /// Like [`Self::create_popup`], taking an explicit grab (a menu) with the serial of the
    /// input event that opened it.
    pub fn create_popup_with_grab(
        &mut self,
        parent: usize,
        colour: u32,
        size: (i32, i32),
        anchor_rect: (i32, i32, i32, i32),
        adjustment: xdg_positioner::ConstraintAdjustment,
        grab_serial: Option<u32>,
    ) -> usize {
        self.create_popup_full(
            parent,
            colour,
            size,
            anchor_rect,
            adjustment,
            grab_serial,
            false,
        )
    }

    /// A popup as [`Self::create_popup_with_grab`] makes it; a `reactive` one may be moved by
    /// the compositor after it was shown.
    #[allow(clippy::too_many_arguments)]
    pub fn create_popup_full(
        &mut self,
        parent: usize,
        colour: u32,
        size: (i32, i32),
        anchor_rect: (i32, i32, i32, i32),
        adjustment: xdg_positioner::ConstraintAdjustment,
        grab_serial: Option<u32>,
        reactive: bool,
    ) -> usize {
        let index = self.app.windows.len();
        let qh = &self.app.qh;
        let positioner = self.app.wm_base.create_positioner(qh, ());
        positioner.set_size(size.0, size.1);
        let (x, y, w, h) = anchor_rect;
        positioner.set_anchor_rect(x, y, w, h);
        positioner.set_anchor(xdg_positioner::Anchor::BottomRight);
        positioner.set_gravity(xdg_positioner::Gravity::BottomRight);
        positioner.set_constraint_adjustment(adjustment);
        if reactive {
            positioner.set_reactive();
        }
        let surface = self.app.compositor.create_surface(qh, index);
        let xdg = self.app.wm_base.get_xdg_surface(&surface, qh, index);
        let popup = xdg.get_popup(Some(&self.app.windows[parent].xdg), &positioner, qh, index);
        positioner.destroy();
        if let Some(serial) = grab_serial {
            popup.grab(&self.app.seat, serial);
        }
        self.app
            .windows
            .push(Window::new(surface, xdg, colour, Some(size)));
        self.app.windows[index].popup = Some(popup);
        self.app.windows[index].surface.commit();
        let _ = self.conn.flush();
        index
    }

    /// Asks for presentation feedback and a frame callback on `window`, then draws it again
    /// (a new buffer, so the commit is a content update) and commits.
    pub fn commit_with_feedback(&mut self, window: usize) {
        if self.app.presentation.is_none() {
            self.app.presentation = Some(self.bind(1));
        }
        let win = &self.app.windows[window];
        if let Some(presentation) = &self.app.presentation {
            presentation.feedback(&win.surface, &self.app.qh, window);
        }
        win.surface.frame(&self.app.qh, ());
        self.app.frame_done = false;
        self.app.draw(window);
        let _ = self.conn.flush();
    }

    /// Dispatches events until `done` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&mut self, timeout: Duration, mut done: impl FnMut(&App) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.app) {
                // Requests made while handling the events (acks, redraws) go out now.
                let _ = self.conn.flush();
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            self.dispatch_timeout(left.min(Duration::from_millis(50)));
        }
    }

    /// Reads and dispatches what arrives within `timeout`.
    pub fn dispatch_timeout(&mut self, timeout: Duration) {
        self.queue
            .dispatch_pending(&mut self.app)
            .expect("dispatch");
        let _ = self.conn.flush();
        let Some(guard) = self.queue.prepare_read() else {
            self.queue
                .dispatch_pending(&mut self.app)
                .expect("dispatch");
            return;
        };
        let mut fds = [libc::pollfd {
            fd: guard.connection_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout.as_millis() as i32) };
        if ready > 0 {
            match guard.read() {
                Ok(_) => {}
                Err(wayland_client::backend::WaylandError::Io(err))
                    if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("the connection failed: {err}"),
            }
        } else {
            drop(guard);
        }
        self.queue
            .dispatch_pending(&mut self.app)
            .expect("dispatch");
    }

    /// A round trip: everything sent so far has been handled by the compositor.
    pub fn roundtrip(&mut self) {
        self.queue.roundtrip(&mut self.app).expect("roundtrip");
    }

    /// Waits until `window` has been configured and drawn.
    pub fn wait_mapped(&mut self, window: usize) {
        assert!(
            self.wait_until(Duration::from_secs(5), |app| app.windows[window]
                .drawn_size
                .is_some()),
            "window {window} was never configured"
        );
        self.roundtrip();
    }
}

impl Window {
    fn new(
        surface: wl_surface::WlSurface,
        xdg: xdg_surface::XdgSurface,
        colour: u32,
        fixed_size: Option<(i32, i32)>,
    ) -> Self {
        Window {
            surface,
            xdg,
            toplevel: None,
            popup: None,
            colour,
            fixed_size,
            border: None,
            configured_size: None,
            states: Vec::new(),
            popup_geometry: None,
            popup_done: false,
            configures: 0,
            drawn_size: None,
            decoration: None,
            single_pixel: None,
            stretched: None,
            decoration_modes: Vec::new(),
            preferred_scale: None,
        }
    }
}

impl App {
    /// Draws `window` at the size it should have now.
    fn draw(&mut self, window: usize) {
        let win = &self.windows[window];
        if let (Some((viewport, size)), Some(manager)) = (&win.single_pixel, &self.single_pixel) {
            // Channels are premultiplied 32-bit values: scale each 8-bit one up.
            let channel = |shift: u32| ((win.colour >> shift) & 0xff) * 0x0101_0101;
            let buffer = manager.create_u32_rgba_buffer(
                channel(16),
                channel(8),
                channel(0),
                channel(24),
                &self.qh,
                (),
            );
            viewport.set_destination(size.0, size.1);
            win.surface.attach(Some(&buffer), 0, 0);
            win.surface.damage_buffer(0, 0, 1, 1);
            win.surface.commit();
            let size = *size;
            self.windows[window].drawn_size = Some(size);
            return;
        }
        let (w, h) = match (win.fixed_size, win.configured_size) {
            (Some(size), _) => size,
            (None, Some((w, h))) if w > 0 && h > 0 => (w, h),
            _ => (64, 64),
        };
        let buffer = solid_buffer(&self.shm, &self.qh, w, h, win.colour, win.border);
        if let (Some(viewport), Some((cw, ch))) = (&win.stretched, win.configured_size) {
            if cw > 0 && ch > 0 {
                viewport.set_source(0.0, 0.0, f64::from(w), f64::from(h));
                viewport.set_destination(cw, ch);
            }
        }
        if win.colour >> 24 == 0xff {
            // Opaque, as real clients say: the compositor may skip what lies below.
            let region = self.compositor.create_region(&self.qh, ());
            region.add(0, 0, w, h);
            win.surface.set_opaque_region(Some(&region));
            region.destroy();
        }
        win.surface.attach(Some(&buffer), 0, 0);
        win.surface.damage_buffer(0, 0, w, h);
        win.surface.commit();
        self.windows[window].drawn_size = Some((w, h));
    }

    /// The index of the window whose surface is `surface`.
    fn window_of(&self, surface: &wl_surface::WlSurface) -> Option<usize> {
        self.windows.iter().position(|w| w.surface == *surface)
    }
}

/// A `w` x `h` ARGB8888 buffer filled with `colour`.
fn solid_buffer(
    shm: &wl_shm::WlShm,
    qh: &QueueHandle<App>,
    w: i32,
    h: i32,
    colour: u32,
    border: Option<(u32, i32)>,
) -> wl_buffer::WlBuffer {
    let stride = w * 4;
    let len = (stride * h) as usize;
    // SAFETY: memfd_create takes a NUL-terminated name; the returned fd is owned by the File.
    let file = unsafe {
        let fd = libc::memfd_create(c"punktfunk-test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create failed");
        File::from_raw_fd(fd)
    };
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            match border {
                Some((edge, width))
                    if x < width || y < width || x >= w - width || y >= h - width =>
                {
                    edge.to_le_bytes()
                }
                _ => colour.to_le_bytes(),
            }
        })
        .collect();
    file.write_all_at(&pixels, 0).expect("fill the buffer");
    let pool = shm.create_pool(file.as_fd(), len as i32, qh, ());
    let buffer = pool.create_buffer(0, w, h, stride, wl_shm::Format::Argb8888, qh, ());
    pool.destroy();
    buffer
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for App {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

delegate_noop!(App: ignore wl_compositor::WlCompositor);
delegate_noop!(App: ignore wl_region::WlRegion);
delegate_noop!(App: ignore wl_shm::WlShm);
delegate_noop!(App: ignore wl_shm_pool::WlShmPool);
delegate_noop!(App: ignore xdg_positioner::XdgPositioner);
delegate_noop!(App: ignore zwp_idle_inhibit_manager_v1::ZwpIdleInhibitManagerV1);
delegate_noop!(App: ignore zwp_idle_inhibitor_v1::ZwpIdleInhibitorV1);
delegate_noop!(App: ignore wp_cursor_shape_manager_v1::WpCursorShapeManagerV1);
delegate_noop!(App: ignore wp_cursor_shape_device_v1::WpCursorShapeDeviceV1);
delegate_noop!(App: ignore zxdg_decoration_manager_v1::ZxdgDecorationManagerV1);
delegate_noop!(App: ignore wp_fractional_scale_manager_v1::WpFractionalScaleManagerV1);
delegate_noop!(App: ignore xdg_activation_v1::XdgActivationV1);
delegate_noop!(App: ignore wp_viewporter::WpViewporter);
delegate_noop!(App: ignore wp_viewport::WpViewport);
delegate_noop!(App: ignore wp_single_pixel_buffer_manager_v1::WpSinglePixelBufferManagerV1);

impl Dispatch<wl_surface::WlSurface, usize> for App {
    fn event(
        _: &mut Self,
        _: &wl_surface::WlSurface,
        _: wl_surface::Event,
        _: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<wl_buffer::WlBuffer, ()> for App {
    fn event(
        _: &mut Self,
        buffer: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // Each buffer is attached once; the compositor is done with it.
        if let wl_buffer::Event::Release = event {
            buffer.destroy();
        }
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_callback::WlCallback,
        _: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        app.frame_done = true;
    }
}

impl Dispatch<wl_output::WlOutput, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_output::WlOutput,
        event: wl_output::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_output::Event::Mode {
            flags: WEnum::Value(flags),
            width,
            height,
            refresh,
        } = event
        {
            if flags.contains(wl_output::Mode::Current) {
                app.output_modes.push((width, height, refresh));
            }
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for App {
    fn event(
        _: &mut Self,
        wm_base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm_base.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, usize> for App {
    fn event(
        app: &mut Self,
        xdg: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            xdg.ack_configure(serial);
            app.windows[*window].configures += 1;
            app.draw(*window);
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, usize> for App {
    fn event(
        app: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Configure {
            width,
            height,
            states,
        } = event
        {
            let win = &mut app.windows[*window];
            win.configured_size = Some((width, height));
            win.states = states
                .chunks_exact(4)
                .filter_map(|b| {
                    let v = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                    xdg_toplevel::State::try_from(v).ok()
                })
                .collect();
        }
    }
}

impl Dispatch<xdg_popup::XdgPopup, usize> for App {
    fn event(
        app: &mut Self,
        _: &xdg_popup::XdgPopup,
        event: xdg_popup::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_popup::Event::Configure {
                x,
                y,
                width,
                height,
            } => app.windows[*window].popup_geometry = Some((x, y, width, height)),
            xdg_popup::Event::PopupDone => app.windows[*window].popup_done = true,
            _ => {}
        }
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for App {
    fn event(
        app: &mut Self,
        seat: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            if caps.contains(wl_seat::Capability::Pointer) && app.pointer.is_none() {
                app.pointer = Some(seat.get_pointer(qh, ()));
            }
            if caps.contains(wl_seat::Capability::Keyboard) {
                seat.get_keyboard(qh, ());
            }
        }
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wl_pointer::Event::Enter {
                serial,
                surface,
                surface_x,
                surface_y,
            } => {
                app.pointer_focus = app.window_of(&surface);
                app.pointer_serial = serial;
                app.pointer_position = Some((surface_x, surface_y));
            }
            wl_pointer::Event::Leave { .. } => app.pointer_focus = None,
            wl_pointer::Event::Motion {
                surface_x,
                surface_y,
                ..
            } => app.pointer_position = Some((surface_x, surface_y)),
            wl_pointer::Event::Button {
                serial,
                state: WEnum::Value(wl_pointer::ButtonState::Pressed),
                ..
            } => app.button_serial = Some(serial),
            _ => {}
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wl_keyboard::Event::Enter {
                serial, surface, ..
            } => {
                app.keyboard_focus = app.window_of(&surface);
                app.keyboard_serial = serial;
            }
            wl_keyboard::Event::Leave { .. } => app.keyboard_focus = None,
            wl_keyboard::Event::Key { key, state, .. } => {
                let pressed = state == WEnum::Value(wl_keyboard::KeyState::Pressed);
                app.keys.push((key, pressed));
            }
            _ => {}
        }
    }
}

impl Dispatch<wp_presentation::WpPresentation, ()> for App {
    fn event(
        app: &mut Self,
        _: &wp_presentation::WpPresentation,
        event: wp_presentation::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wp_presentation::Event::ClockId { clk_id } = event {
            app.clock_id = Some(clk_id);
        }
    }
}

impl Dispatch<wp_presentation_feedback::WpPresentationFeedback, usize> for App {
    fn event(
        app: &mut Self,
        _: &wp_presentation_feedback::WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wp_presentation_feedback::Event::Presented {
                tv_sec_hi,
                tv_sec_lo,
                tv_nsec,
                refresh,
                seq_hi,
                seq_lo,
                ..
            } => {
                let secs = (u64::from(tv_sec_hi) << 32) | u64::from(tv_sec_lo);
                app.presented.push(Presented {
                    window: *window,
                    time_ns: u128::from(secs) * 1_000_000_000 + u128::from(tv_nsec),
                    refresh_ns: refresh,
                    seq: (u64::from(seq_hi) << 32) | u64::from(seq_lo),
                });
            }
            wp_presentation_feedback::Event::Discarded => app.discarded += 1,
            _ => {}
        }
    }
}

impl Dispatch<xdg_activation_token_v1::XdgActivationTokenV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &xdg_activation_token_v1::XdgActivationTokenV1,
        event: xdg_activation_token_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_activation_token_v1::Event::Done { token } = event {
            app.activation_token = Some(token);
        }
    }
}

impl Dispatch<zxdg_toplevel_decoration_v1::ZxdgToplevelDecorationV1, usize> for App {
    fn event(
        app: &mut Self,
        _: &zxdg_toplevel_decoration_v1::ZxdgToplevelDecorationV1,
        event: zxdg_toplevel_decoration_v1::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zxdg_toplevel_decoration_v1::Event::Configure {
            mode: WEnum::Value(mode),
        } = event
        {
            app.windows[*window].decoration_modes.push(mode);
        }
    }
}

impl Dispatch<wp_fractional_scale_v1::WpFractionalScaleV1, usize> for App {
    fn event(
        app: &mut Self,
        _: &wp_fractional_scale_v1::WpFractionalScaleV1,
        event: wp_fractional_scale_v1::Event,
        window: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wp_fractional_scale_v1::Event::PreferredScale { scale } = event {
            app.windows[*window].preferred_scale = Some(scale);
        }
    }
}

/// What a [`FeedbackLoop`] has heard so far.
#[derive(Debug, Default, Clone)]
pub struct FeedbackLog {
    pub presented: Vec<Presented>,
    pub discarded: usize,
    /// wl_output current modes: (width, height, refresh in mHz).
    pub output_modes: Vec<(i32, i32, i32)>,
    /// The window's last configured size.
    pub configured_size: Option<(i32, i32)>,
    /// When each commit (a new picture) was sent.
    pub commits: Vec<Instant>,
}

/// A client on its own thread that shows a small window of `colour` and redraws it on every
/// frame callback with presentation feedback, like a game's render loop.
pub struct FeedbackLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<FeedbackLog>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FeedbackLoop {
    pub fn start(socket: &Path, colour: u32, size: (i32, i32)) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(FeedbackLog::default()));
        let mut client = WlClient::connect(socket);
        let window = client.create_toplevel(colour, Some(size));
        client.commit(window);
        client.wait_mapped(window);
        let (thread_stop, thread_log) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                client.commit_with_feedback(window);
                thread_log.lock().unwrap().commits.push(Instant::now());
                client.wait_until(Duration::from_millis(200), |app| app.frame_done);
                let mut log = thread_log.lock().unwrap();
                log.presented = client.app.presented.clone();
                log.discarded = client.app.discarded;
                log.output_modes = client.app.output_modes.clone();
                log.configured_size = client.app.windows[window].configured_size;
            }
        });
        FeedbackLoop {
            stop,
            log,
            thread: Some(thread),
        }
    }

    pub fn log(&self) -> FeedbackLog {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FeedbackLoop {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
