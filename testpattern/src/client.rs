//! The Wayland client: globals, the xdg toplevel, the frame loop and input.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use wayland_client::globals::{registry_queue_init, GlobalList, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_keyboard, wl_pointer, wl_registry, wl_seat, wl_shm,
    wl_shm_pool, wl_surface,
};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum};
use wayland_protocols::wp::relative_pointer::zv1::client::{
    zwp_relative_pointer_manager_v1, zwp_relative_pointer_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};
use xkbcommon::xkb;

use crate::events::{self, emit};
use crate::pattern::{Painter, Region};
use crate::shm::{BufferId, BufferSet};
use crate::Options;

mod tablet;

/// Size used when the compositor leaves the choice to us (configure 0x0) and no hint is given.
const FALLBACK_SIZE: (u32, u32) = (1280, 720);
/// Highest wl_seat version we speak: v8 brings `axis_value120`.
const SEAT_VERSION: u32 = 8;

pub(crate) fn run(opts: Options) -> anyhow::Result<()> {
    events::set_timestamps(opts.timestamps);
    let conn = Connection::connect_to_env().context(
        "error connecting to the Wayland compositor (WAYLAND_DISPLAY / XDG_RUNTIME_DIR)",
    )?;
    let (globals, mut queue) =
        registry_queue_init::<State>(&conn).context("error reading the Wayland globals")?;
    let qh = queue.handle();
    let mut state = State::new(&globals, &qh, opts)?;

    // An initial commit without a buffer asks for the first configure.
    state.surface.commit();
    let exit = event_loop(&conn, &mut queue, &mut state)?;
    emit(events::exit(state.frames, exit.as_str()));

    // Let the compositor see everything we sent before the objects go away.
    queue
        .roundtrip(&mut state)
        .context("error in the final roundtrip")?;
    state.toplevel.destroy();
    state.xdg_surface.destroy();
    state.surface.destroy();
    state.wm_base.destroy();
    drop(state);
    conn.flush()
        .context("error flushing the Wayland connection")?;
    Ok(())
}

/// Why the pattern stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    MaxFrames,
    Deadline,
    Closed,
}

impl Exit {
    fn as_str(self) -> &'static str {
        match self {
            Exit::MaxFrames => "max_frames",
            Exit::Deadline => "exit_after",
            Exit::Closed => "closed",
        }
    }
}

/// Dispatches events until one of the exit conditions holds. Reading is done by hand (prepare,
/// poll with a timeout, read) so that `exit_after` is honoured even when no frame callback comes.
fn event_loop(
    conn: &Connection,
    queue: &mut EventQueue<State>,
    state: &mut State,
) -> anyhow::Result<Exit> {
    let deadline = state.opts.exit_after.map(|d| state.started + d);
    loop {
        queue
            .dispatch_pending(state)
            .context("error dispatching Wayland events")?;
        if let Some(err) = state.failure.take() {
            return Err(err);
        }
        if let Some(exit) = state.exit {
            return Ok(exit);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Exit::Deadline);
        }
        conn.flush()
            .context("error flushing the Wayland connection")?;
        let Some(guard) = queue.prepare_read() else {
            // Events were queued meanwhile: dispatch them first.
            continue;
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if wait_readable(guard.connection_fd(), timeout)? {
            match guard.read() {
                Ok(_) => {}
                // Readable, but what arrived was not a whole message yet (a large one, such as
                // a keymap or a burst after a mode change): wait for the rest.
                Err(wayland_client::backend::WaylandError::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("error reading from the Wayland connection"),
            }
        }
        // A guard dropped without reading cancels the read.
    }
}

/// Waits until `fd` is readable or `timeout` passes; `true` when readable.
fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> anyhow::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let timespec = timeout.map(|t| Timespec {
        tv_sec: t.as_secs() as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err).context("error polling the Wayland connection"),
        }
    }
}

struct State {
    opts: Options,
    started: Instant,
    qh: QueueHandle<State>,
    shm: wl_shm::WlShm,
    wm_base: xdg_wm_base::XdgWmBase,
    surface: wl_surface::WlSurface,
    xdg_surface: xdg_surface::XdgSurface,
    toplevel: xdg_toplevel::XdgToplevel,
    relative_manager: Option<zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1>,
    buffers: BufferSet,
    painter: Option<Painter>,

    /// Size from the last `xdg_toplevel.configure` (0 = our choice), applied on `xdg_surface.configure`.
    pending_size: (u32, u32),
    /// The size we draw at, once configured.
    size: Option<(u32, u32)>,
    /// Frames committed so far; the next frame drawn shows this number.
    frames: u64,
    /// A frame callback is outstanding: the next frame is drawn when it fires.
    frame_pending: bool,
    /// A frame is due but every buffer was busy: draw on the next release.
    waiting_for_buffer: bool,
    exit: Option<Exit>,
    /// An error from inside a dispatch handler, returned by the event loop.
    failure: Option<anyhow::Error>,

    seat: Option<wl_seat::WlSeat>,
    pointer: Option<wl_pointer::WlPointer>,
    relative_pointer: Option<zwp_relative_pointer_v1::ZwpRelativePointerV1>,
    keyboard: Option<wl_keyboard::WlKeyboard>,
    pointer_position: Option<(f64, f64)>,
    /// The pointer position the last committed frame was drawn with, `None` before the first
    /// frame of the current size (which is damaged whole).
    drawn_pointer: Option<Option<(f64, f64)>>,
    scroll: Scroll,
    xkb_context: xkb::Context,
    xkb_state: Option<xkb::State>,
}

impl State {
    fn new(globals: &GlobalList, qh: &QueueHandle<State>, opts: Options) -> anyhow::Result<Self> {
        let compositor: wl_compositor::WlCompositor = globals
            .bind(qh, 1..=6, ())
            .context("the compositor offers no wl_compositor")?;
        let shm: wl_shm::WlShm = globals
            .bind(qh, 1..=1, ())
            .context("the compositor offers no wl_shm")?;
        let wm_base: xdg_wm_base::XdgWmBase = globals
            .bind(qh, 1..=5, ())
            .context("the compositor offers no xdg_wm_base")?;
        let seat: Option<wl_seat::WlSeat> = globals.bind(qh, 1..=SEAT_VERSION, ()).ok();
        if let Some(seat) = &seat {
            tablet::bind(globals, qh, seat);
        }
        let relative_manager = globals.bind(qh, 1..=1, ()).ok();

        let surface = compositor.create_surface(qh, ());
        let xdg_surface = wm_base.get_xdg_surface(&surface, qh, ());
        let toplevel = xdg_surface.get_toplevel(qh, ());
        toplevel.set_title("punktfunk test pattern".into());
        toplevel.set_app_id("punktfunk-testpattern".into());

        Ok(Self {
            opts,
            started: Instant::now(),
            qh: qh.clone(),
            shm,
            wm_base,
            surface,
            xdg_surface,
            toplevel,
            relative_manager,
            buffers: BufferSet::default(),
            painter: None,
            pending_size: (0, 0),
            size: None,
            frames: 0,
            frame_pending: false,
            waiting_for_buffer: false,
            exit: None,
            failure: None,
            seat,
            pointer: None,
            relative_pointer: None,
            keyboard: None,
            pointer_position: None,
            drawn_pointer: None,
            scroll: Scroll::default(),
            xkb_context: xkb::Context::new(xkb::CONTEXT_NO_FLAGS),
            xkb_state: None,
        })
    }

    /// The size to draw at for a configured `width` x `height` (0 = our choice).
    fn choose_size(&self, (width, height): (u32, u32)) -> (u32, u32) {
        let fallback_w = self
            .opts
            .width_hint
            .filter(|&w| w > 0)
            .unwrap_or(FALLBACK_SIZE.0);
        let fallback_h = self
            .opts
            .height_hint
            .filter(|&h| h > 0)
            .unwrap_or(FALLBACK_SIZE.1);
        (
            if width == 0 { fallback_w } else { width },
            if height == 0 { fallback_h } else { height },
        )
    }

    /// Draws the next frame into a free buffer and commits it with a new frame callback.
    fn draw_frame(&mut self) -> anyhow::Result<()> {
        let Some((width, height)) = self.size else {
            return Ok(());
        };
        if self.exit.is_some() {
            return Ok(());
        }
        if self.opts.max_frames.is_some_and(|max| self.frames >= max) {
            self.exit = Some(Exit::MaxFrames);
            return Ok(());
        }
        let painter = match &mut self.painter {
            Some(p) if (p.width(), p.height()) == (width, height) => p,
            slot => {
                self.drawn_pointer = None;
                slot.insert(Painter::new(width, height).with_noise(self.opts.noise))
            }
        };
        let Some(buffer) = self.buffers.acquire(&self.shm, width, height, &self.qh)? else {
            self.waiting_for_buffer = true;
            return Ok(());
        };
        self.waiting_for_buffer = false;
        let stride = buffer.stride;
        painter.draw(self.frames, self.pointer_position, buffer.pixels(), stride);
        buffer.busy = true;

        self.surface.attach(Some(&buffer.wl_buffer), 0, 0);
        // Only what changed since the last frame is damaged, as a well-behaved app does; the
        // first frame of a size is damaged whole.
        let changed = match self.drawn_pointer {
            Some(before) => painter.changes(before, self.pointer_position),
            None => vec![Region::whole(width, height)],
        };
        for r in changed {
            let (x, y, w, h) = (r.x as i32, r.y as i32, r.width as i32, r.height as i32);
            if self.surface.version() >= 4 {
                self.surface.damage_buffer(x, y, w, h);
            } else {
                self.surface.damage(x, y, w, h);
            }
        }
        self.drawn_pointer = Some(self.pointer_position);
        // One callback chain drives the loop: a frame drawn early (for a resize) rides on the
        // callback already outstanding instead of starting a second chain.
        if !self.frame_pending {
            self.surface.frame(&self.qh, ());
            self.frame_pending = true;
        }
        self.surface.commit();
        if self.frames == 0 {
            emit(events::ready(width, height));
        }
        if self.opts.frame_events {
            emit(events::frame(self.frames));
        }
        self.frames += 1;
        if self.opts.max_frames.is_some_and(|max| self.frames >= max) {
            self.exit = Some(Exit::MaxFrames);
        }
        Ok(())
    }

    /// Draws, and on failure stops the loop with the error kept for the caller.
    fn draw_or_stop(&mut self) {
        if let Err(err) = self.draw_frame() {
            // Dispatch handlers cannot return errors: keep it for the event loop to return.
            self.failure.get_or_insert(err);
        }
    }

    fn update_seat(&mut self, capabilities: wl_seat::Capability) {
        let Some(seat) = self.seat.clone() else {
            return;
        };
        let qh = self.qh.clone();
        if capabilities.contains(wl_seat::Capability::Pointer) {
            if self.pointer.is_none() {
                let pointer = seat.get_pointer(&qh, ());
                self.relative_pointer = self
                    .relative_manager
                    .as_ref()
                    .map(|m| m.get_relative_pointer(&pointer, &qh, ()));
                self.pointer = Some(pointer);
            }
        } else if let Some(pointer) = self.pointer.take() {
            if let Some(relative) = self.relative_pointer.take() {
                relative.destroy();
            }
            if pointer.version() >= 3 {
                pointer.release();
            }
        }
        if capabilities.contains(wl_seat::Capability::Keyboard) {
            if self.keyboard.is_none() {
                self.keyboard = Some(seat.get_keyboard(&qh, ()));
            }
        } else if let Some(keyboard) = self.keyboard.take() {
            if keyboard.version() >= 3 {
                keyboard.release();
            }
            self.xkb_state = None;
        }
    }
}

/// Scroll events gathered until `wl_pointer.frame`, so `axis` and `axis_value120` print as one
/// line.
#[derive(Debug, Default)]
struct Scroll {
    source: Option<&'static str>,
    axes: [AxisFrame; 2],
}

#[derive(Debug, Default, Clone, Copy)]
struct AxisFrame {
    value: Option<f64>,
    value120: Option<i32>,
    stop: bool,
}

const AXIS_NAMES: [&str; 2] = ["vertical", "horizontal"];

fn axis_slot(axis: WEnum<wl_pointer::Axis>) -> Option<usize> {
    match axis {
        WEnum::Value(wl_pointer::Axis::VerticalScroll) => Some(0),
        WEnum::Value(wl_pointer::Axis::HorizontalScroll) => Some(1),
        _ => None,
    }
}

impl Scroll {
    fn flush(&mut self) {
        for (slot, name) in AXIS_NAMES.iter().enumerate() {
            let frame = self.axes[slot];
            if frame.value.is_some() || frame.value120.is_some() {
                emit(events::axis(
                    name,
                    frame.value.unwrap_or(0.0),
                    frame.value120,
                    self.source,
                ));
            }
            if frame.stop {
                emit(events::axis_stop(name));
            }
        }
        *self = Scroll::default();
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // Globals that come and go later (outputs, a second seat) do not matter to the pattern.
    }
}

delegate_noop!(State: wl_compositor::WlCompositor);
delegate_noop!(State: ignore wl_shm::WlShm);
delegate_noop!(State: wl_shm_pool::WlShmPool);
delegate_noop!(State: ignore wl_surface::WlSurface);
delegate_noop!(State: zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1);

impl Dispatch<wl_buffer::WlBuffer, BufferId> for State {
    fn event(
        state: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        id: &BufferId,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.buffers.release(*id);
            if state.waiting_for_buffer {
                state.draw_or_stop();
            }
        }
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for State {
    fn event(
        state: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frame_pending = false;
            state.draw_or_stop();
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for State {
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

impl Dispatch<xdg_surface::XdgSurface, ()> for State {
    fn event(
        state: &mut Self,
        xdg_surface: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let xdg_surface::Event::Configure { serial } = event else {
            return;
        };
        xdg_surface.ack_configure(serial);
        let size = state.choose_size(state.pending_size);
        emit(events::configure(size.0, size.1));
        let resized = state.size != Some(size);
        state.size = Some(size);
        if resized {
            // The first frame, or a new size: draw now so the commit that follows the ack
            // carries a buffer of the configured size. Later frames follow the frame callbacks.
            state.draw_or_stop();
        } else {
            // Same size (a state change only): commit so the ack takes effect.
            state.surface.commit();
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for State {
    fn event(
        state: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure { width, height, .. } => {
                state.pending_size = (width.max(0) as u32, height.max(0) as u32);
            }
            xdg_toplevel::Event::Close => state.exit = Some(Exit::Closed),
            _ => {}
        }
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for State {
    fn event(
        state: &mut Self,
        _: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        {
            state.update_seat(caps);
        }
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for State {
    fn event(
        state: &mut Self,
        pointer: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wl_pointer::Event;
        match event {
            Event::Enter {
                surface_x,
                surface_y,
                ..
            } => {
                state.pointer_position = Some((surface_x, surface_y));
                emit(events::pointer_enter(surface_x, surface_y));
            }
            // The marker stays at the last position, as documented.
            Event::Leave { .. } => emit(events::pointer_leave()),
            Event::Motion {
                surface_x,
                surface_y,
                ..
            } => {
                state.pointer_position = Some((surface_x, surface_y));
                emit(events::pointer_motion(surface_x, surface_y));
            }
            Event::Button {
                button,
                state: button_state,
                ..
            } => {
                let name = match button_state {
                    WEnum::Value(wl_pointer::ButtonState::Pressed) => "pressed",
                    WEnum::Value(wl_pointer::ButtonState::Released) => "released",
                    _ => "unknown",
                };
                emit(events::button(button, name));
            }
            Event::Axis { axis, value, .. } => {
                if let Some(slot) = axis_slot(axis) {
                    state.scroll.axes[slot].value =
                        Some(state.scroll.axes[slot].value.unwrap_or(0.0) + value);
                }
                // Before v5 there is no frame event to wait for.
                if pointer.version() < 5 {
                    state.scroll.flush();
                }
            }
            Event::AxisValue120 { axis, value120 } => {
                if let Some(slot) = axis_slot(axis) {
                    state.scroll.axes[slot].value120 =
                        Some(state.scroll.axes[slot].value120.unwrap_or(0) + value120);
                }
            }
            Event::AxisSource { axis_source } => {
                state.scroll.source = match axis_source {
                    WEnum::Value(wl_pointer::AxisSource::Wheel) => Some("wheel"),
                    WEnum::Value(wl_pointer::AxisSource::Finger) => Some("finger"),
                    WEnum::Value(wl_pointer::AxisSource::Continuous) => Some("continuous"),
                    WEnum::Value(wl_pointer::AxisSource::WheelTilt) => Some("wheel_tilt"),
                    _ => None,
                };
            }
            Event::AxisStop { axis, .. } => {
                if let Some(slot) = axis_slot(axis) {
                    state.scroll.axes[slot].stop = true;
                }
            }
            Event::Frame => state.scroll.flush(),
            _ => {}
        }
    }
}

impl Dispatch<zwp_relative_pointer_v1::ZwpRelativePointerV1, ()> for State {
    fn event(
        _: &mut Self,
        _: &zwp_relative_pointer_v1::ZwpRelativePointerV1,
        event: zwp_relative_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_relative_pointer_v1::Event::RelativeMotion {
            dx,
            dy,
            dx_unaccel,
            dy_unaccel,
            ..
        } = event
        {
            emit(events::relative_motion(dx, dy, dx_unaccel, dy_unaccel));
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for State {
    fn event(
        state: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wl_keyboard::Event;
        match event {
            Event::Keymap { format, fd, size } => {
                state.xkb_state = None;
                if format != WEnum::Value(wl_keyboard::KeymapFormat::XkbV1) {
                    eprintln!("testpattern: keymap format {format:?} is not XKB v1; keysyms will be empty");
                    return;
                }
                // SAFETY: the fd is the compositor's keymap of `size` bytes, mapped privately and
                // read-only as the protocol asks; the mapping lives only inside the call.
                let keymap = unsafe {
                    xkb::Keymap::new_from_fd(
                        &state.xkb_context,
                        fd,
                        size as usize,
                        xkb::KEYMAP_FORMAT_TEXT_V1,
                        xkb::KEYMAP_COMPILE_NO_FLAGS,
                    )
                };
                match keymap {
                    Ok(Some(keymap)) => state.xkb_state = Some(xkb::State::new(&keymap)),
                    Ok(None) => eprintln!("testpattern: the compositor's keymap does not compile"),
                    Err(err) => eprintln!("testpattern: error mapping the keymap: {err}"),
                }
            }
            Event::Enter { .. } => emit(events::keyboard_enter()),
            Event::Leave { .. } => emit(events::keyboard_leave()),
            Event::Key {
                key,
                state: key_state,
                ..
            } => {
                let name = match key_state {
                    WEnum::Value(wl_keyboard::KeyState::Pressed) => "pressed",
                    WEnum::Value(wl_keyboard::KeyState::Released) => "released",
                    WEnum::Value(wl_keyboard::KeyState::Repeated) => "repeated",
                    _ => "unknown",
                };
                let (keysym, utf8) = describe_key(state.xkb_state.as_ref(), key);
                emit(events::key(key, &keysym, &utf8, name));
            }
            Event::Modifiers {
                mods_depressed,
                mods_latched,
                mods_locked,
                group,
                ..
            } => {
                if let Some(xkb_state) = &mut state.xkb_state {
                    xkb_state.update_mask(mods_depressed, mods_latched, mods_locked, 0, 0, group);
                }
                emit(events::modifiers(
                    mods_depressed,
                    mods_latched,
                    mods_locked,
                    group,
                ));
            }
            _ => {}
        }
    }
}

/// The keysym name and text of evdev key `key` under the current keymap and modifiers; empty
/// strings without a keymap.
fn describe_key(xkb_state: Option<&xkb::State>, key: u32) -> (String, String) {
    let Some(xkb_state) = xkb_state else {
        return (String::new(), String::new());
    };
    // XKB keycodes are evdev codes plus 8.
    let code = xkb::Keycode::new(key + 8);
    (
        xkb::keysym_get_name(xkb_state.key_get_one_sym(code)),
        xkb_state.key_get_utf8(code),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: u32 = 30;
    const KEY_ENTER: u32 = 28;
    const KEY_LEFTSHIFT: u32 = 42;

    fn us_keymap() -> Option<xkb::State> {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_names(&context, "evdev", "pc105", "us", "", None, 0);
        if keymap.is_none() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no XKB data (apt-get install xkb-data)"
            );
        }
        keymap.map(|k| xkb::State::new(&k))
    }

    #[test]
    fn keys_resolve_through_the_keymap_and_modifiers() {
        let Some(mut state) = us_keymap() else { return };
        assert_eq!(describe_key(Some(&state), KEY_A), ("a".into(), "a".into()));
        assert_eq!(
            describe_key(Some(&state), KEY_ENTER),
            ("Return".into(), "\r".into())
        );
        // Shift held, as a compositor reports it through wl_keyboard.modifiers.
        state.update_key(
            xkb::Keycode::new(KEY_LEFTSHIFT + 8),
            xkb::KeyDirection::Down,
        );
        let depressed = state.serialize_mods(xkb::STATE_MODS_DEPRESSED);
        let mut reported = us_keymap().unwrap();
        reported.update_mask(depressed, 0, 0, 0, 0, 0);
        assert_eq!(
            describe_key(Some(&reported), KEY_A),
            ("A".into(), "A".into())
        );
    }

    #[test]
    fn keys_without_a_keymap_have_empty_names() {
        assert_eq!(describe_key(None, KEY_A), (String::new(), String::new()));
    }
}
