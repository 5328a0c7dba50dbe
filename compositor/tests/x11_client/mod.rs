//! punktfunk's own X11 test client for Steam's window contract: maps windows filled with a
//! solid colour and carrying Steam's properties (`STEAM_GAME`, `STEAM_OVERLAY`,
//! `STEAM_INPUT_FOCUS`), reads and writes the root window's gamescope properties and reports the
//! input its windows get. It runs in the test process over its own X connection.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::properties::WmSizeHints;
use x11rb::protocol::xproto::{
    AtomEnum, ColormapAlloc, ConnectionExt as _, CreateWindowAux, EventMask, MapState, PropMode,
    VisualClass, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::COPY_DEPTH_FROM_PARENT;

/// A colour as the frame stores it: (B, G, R).
pub type Bgr = (u8, u8, u8);

/// What a window says about itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Props {
    /// `STEAM_GAME`, when set.
    pub app_id: Option<u32>,
    /// `STEAM_OVERLAY`, when set.
    pub overlay: Option<u32>,
    /// `STEAM_INPUT_FOCUS`, when set.
    pub input_focus: Option<u32>,
    /// A 32-bit ARGB window (opaque background), as Steam's overlay is, instead of the root's
    /// 24-bit visual.
    pub argb: bool,
    /// A window that cannot be resized: created at this size, with `WM_NORMAL_HINTS` minimum
    /// and maximum sizes equal to it (as SDL sets them for a window that is not resizable).
    pub fixed_size: Option<(u16, u16)>,
}

impl Props {
    pub fn app(app_id: u32) -> Self {
        Self {
            app_id: Some(app_id),
            ..Self::default()
        }
    }
}

pub struct X11Client {
    pub conn: RustConnection,
    pub root: Window,
}

impl X11Client {
    /// Connects to `display` (":N").
    pub fn connect(display: &str) -> Self {
        let (conn, screen) = RustConnection::connect(Some(display))
            .unwrap_or_else(|err| panic!("cannot connect to {display}: {err}"));
        let root = conn.setup().roots[screen].root;
        Self { conn, root }
    }

    pub fn atom(&self, name: &str) -> u32 {
        self.conn
            .intern_atom(false, name.as_bytes())
            .unwrap()
            .reply()
            .unwrap()
            .atom
    }

    /// Creates and maps a window with `props`, its background `colour`, that reports keys,
    /// buttons, motion and focus changes.
    pub fn map_window(&self, props: Props, colour: Bgr) -> Window {
        let window = self.conn.generate_id().unwrap();
        let (b, g, r) = colour;
        let (depth, visual, aux) = if props.argb {
            let (depth, visual) = self.argb_visual();
            let colormap = self.conn.generate_id().unwrap();
            self.conn
                .create_colormap(ColormapAlloc::NONE, colormap, self.root, visual)
                .unwrap();
            let aux = CreateWindowAux::new()
                .colormap(colormap)
                .border_pixel(0)
                .background_pixel(0xff00_0000);
            (depth, visual, aux)
        } else {
            (COPY_DEPTH_FROM_PARENT, 0, CreateWindowAux::new())
        };
        let pixel = aux.background_pixel.unwrap_or(0)
            | u32::from(r) << 16
            | u32::from(g) << 8
            | u32::from(b);
        let aux = aux.background_pixel(pixel).event_mask(
            EventMask::KEY_PRESS
                | EventMask::KEY_RELEASE
                | EventMask::BUTTON_PRESS
                | EventMask::POINTER_MOTION
                | EventMask::FOCUS_CHANGE
                | EventMask::STRUCTURE_NOTIFY,
        );
        let (width, height) = props.fixed_size.unwrap_or((200, 150));
        self.conn
            .create_window(
                depth,
                window,
                self.root,
                0,
                0,
                width,
                height,
                0,
                WindowClass::INPUT_OUTPUT,
                visual,
                &aux,
            )
            .unwrap();
        let steam = [
            ("STEAM_GAME", props.app_id),
            ("STEAM_OVERLAY", props.overlay),
            ("STEAM_INPUT_FOCUS", props.input_focus),
        ];
        for (name, value) in steam {
            if let Some(value) = value {
                self.set_cardinals(window, name, &[value]);
            }
        }
        if let Some((w, h)) = props.fixed_size {
            let size = (i32::from(w), i32::from(h));
            let hints = WmSizeHints {
                min_size: Some(size),
                max_size: Some(size),
                ..WmSizeHints::default()
            };
            hints.set_normal_hints(&self.conn, window).unwrap();
        }
        self.conn.map_window(window).unwrap();
        self.conn.flush().unwrap();
        window
    }

    /// Sets the mode of `width` x `height` on the first CRTC, as a game changes the resolution
    /// (the screen keeps its size; Xwayland emulates the mode for this client).
    pub fn set_mode(&self, width: u16, height: u16) {
        use x11rb::protocol::randr::ConnectionExt as _;
        self.conn
            .randr_query_version(1, 6)
            .unwrap()
            .reply()
            .unwrap();
        let res = self
            .conn
            .randr_get_screen_resources(self.root)
            .unwrap()
            .reply()
            .unwrap();
        let mode = res
            .modes
            .iter()
            .find(|m| (m.width, m.height) == (width, height))
            .unwrap_or_else(|| panic!("no {width}x{height} mode in {:?}", res.modes))
            .id;
        let crtc = res.crtcs[0];
        let info = self
            .conn
            .randr_get_crtc_info(crtc, res.config_timestamp)
            .unwrap()
            .reply()
            .unwrap();
        let reply = self
            .conn
            .randr_set_crtc_config(
                crtc,
                x11rb::CURRENT_TIME,
                res.config_timestamp,
                0,
                0,
                mode,
                info.rotation,
                &info.outputs,
            )
            .unwrap()
            .reply()
            .unwrap();
        assert_eq!(
            reply.status,
            x11rb::protocol::randr::SetConfig::SUCCESS,
            "setting {width}x{height}"
        );
    }

    /// Switches to the `width` x `height` mode line with XF86VidMode, as older games (and
    /// Wine's fallback) change the resolution.
    pub fn set_vidmode(&self, width: u16, height: u16) {
        use x11rb::protocol::xf86vidmode::ConnectionExt as _;
        self.conn
            .xf86vidmode_query_version()
            .unwrap()
            .reply()
            .unwrap();
        // Without it the server answers in the version 0 layout, which x11rb does not parse.
        self.conn
            .xf86vidmode_set_client_version(2, 2)
            .unwrap()
            .check()
            .unwrap();
        let lines = self
            .conn
            .xf86vidmode_get_all_mode_lines(0)
            .unwrap()
            .reply()
            .unwrap();
        let m = lines
            .modeinfo
            .iter()
            .find(|m| (m.hdisplay, m.vdisplay) == (width, height))
            .unwrap_or_else(|| panic!("no {width}x{height} mode line in {:?}", lines.modeinfo));
        self.conn
            .xf86vidmode_switch_to_mode(
                0,
                m.dotclock,
                m.hdisplay,
                m.hsyncstart,
                m.hsyncend,
                m.htotal,
                m.hskew as u16,
                m.vdisplay,
                m.vsyncstart,
                m.vsyncend,
                m.vtotal,
                m.flags,
                &[],
            )
            .unwrap()
            .check()
            .unwrap_or_else(|e| panic!("switching to {width}x{height}: {e:?}"));
    }

    /// Creates and maps an override-redirect window (a menu, a tooltip) of `colour` at (`x`,
    /// `y`) of the X screen.
    pub fn map_menu(&self, x: i16, y: i16, width: u16, height: u16, colour: Bgr) -> Window {
        let window = self.conn.generate_id().unwrap();
        let (b, g, r) = colour;
        let aux = CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b));
        self.conn
            .create_window(
                COPY_DEPTH_FROM_PARENT,
                window,
                self.root,
                x,
                y,
                width,
                height,
                0,
                WindowClass::INPUT_OUTPUT,
                0,
                &aux,
            )
            .unwrap();
        self.conn.map_window(window).unwrap();
        self.conn.flush().unwrap();
        window
    }

    /// The window's size as the X server has it.
    pub fn size(&self, window: Window) -> (u16, u16) {
        let geometry = self.conn.get_geometry(window).unwrap().reply().unwrap();
        (geometry.width, geometry.height)
    }

    /// A 32-bit TrueColor visual: (depth, visual id).
    fn argb_visual(&self) -> (u8, u32) {
        let screen = self
            .conn
            .setup()
            .roots
            .iter()
            .find(|s| s.root == self.root)
            .unwrap();
        screen
            .allowed_depths
            .iter()
            .filter(|d| d.depth == 32)
            .flat_map(|d| d.visuals.iter().map(move |v| (d.depth, v)))
            .find(|(_, v)| v.class == VisualClass::TRUE_COLOR)
            .map(|(depth, v)| (depth, v.visual_id))
            .expect("a 32-bit visual")
    }

    /// Sets a `CARDINAL` list on `window`.
    pub fn set_cardinals(&self, window: Window, name: &str, values: &[u32]) {
        let atom = self.atom(name);
        self.conn
            .change_property32(PropMode::REPLACE, window, atom, AtomEnum::CARDINAL, values)
            .unwrap();
        self.conn.flush().unwrap();
    }

    /// Sets a property of another type and format (a malformed one, for Steam's atoms).
    pub fn set_raw(&self, window: Window, name: &str, type_: AtomEnum, format: u8, data: &[u8]) {
        let atom = self.atom(name);
        let len = data.len() as u32 / (u32::from(format) / 8);
        self.conn
            .change_property(PropMode::REPLACE, window, atom, type_, format, len, data)
            .unwrap();
        self.conn.flush().unwrap();
    }

    pub fn delete_property(&self, window: Window, name: &str) {
        let atom = self.atom(name);
        self.conn.delete_property(window, atom).unwrap();
        self.conn.flush().unwrap();
    }

    pub fn destroy(&self, window: Window) {
        self.conn.destroy_window(window).unwrap();
        self.conn.flush().unwrap();
    }

    /// A `CARDINAL` list of the root window; `None` when it is absent or of another type.
    pub fn root_cardinals(&self, name: &str) -> Option<Vec<u32>> {
        let atom = self.atom(name);
        let reply = self
            .conn
            .get_property(false, self.root, atom, AtomEnum::CARDINAL, 0, 1024)
            .unwrap()
            .reply()
            .unwrap();
        reply.value32().map(Iterator::collect)
    }

    /// Waits until the root property `name` is `expected`; panics with the last value if not.
    pub fn expect_root(&self, name: &str, expected: &[u32]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.root_cardinals(name);
            if value.as_deref() == Some(expected) {
                return;
            }
            if Instant::now() > deadline {
                panic!("root property {name} is {value:?}, not {expected:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The keysym of `keycode` at shift level 0.
    pub fn keysym(&self, keycode: u8) -> u32 {
        let reply = self
            .conn
            .get_keyboard_mapping(keycode, 1)
            .unwrap()
            .reply()
            .unwrap();
        reply.keysyms.first().copied().unwrap_or(0)
    }

    /// Waits up to ten seconds for an event `pred` accepts and returns it. Events before it
    /// are dropped; `forbidden` events among them fail the test.
    pub fn expect_event(
        &self,
        what: &str,
        pred: impl Fn(&Event) -> bool,
        forbidden: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            match self.conn.poll_for_event().unwrap() {
                Some(event) if pred(&event) => return event,
                Some(event) => {
                    assert!(
                        !forbidden(&event),
                        "while waiting for {what}: unexpected {event:?}"
                    );
                    seen.push(event);
                }
                None => {
                    if Instant::now() > deadline {
                        panic!("no {what}; got {seen:#?}");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// Drops the events received so far.
    pub fn drain(&self) {
        while let Ok(Some(_)) = self.conn.poll_for_event() {}
    }

    /// The child of the root window that is `window` or holds it.
    pub fn toplevel_of(&self, window: Window) -> Window {
        let mut window = window;
        loop {
            let tree = self.conn.query_tree(window).unwrap().reply().unwrap();
            if tree.parent == self.root || tree.parent == x11rb::NONE {
                return window;
            }
            window = tree.parent;
        }
    }

    /// The topmost viewable child of the root window at (`x`, `y`) in X's own stacking, the one
    /// whose subwindows get pointer events there.
    pub fn toplevel_at(&self, x: i16, y: i16) -> Option<Window> {
        let tree = self.conn.query_tree(self.root).unwrap().reply().unwrap();
        tree.children.into_iter().rev().find(|&child| {
            let viewable = self
                .conn
                .get_window_attributes(child)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE);
            let geometry = self
                .conn
                .get_geometry(child)
                .ok()
                .and_then(|c| c.reply().ok());
            viewable
                && geometry.is_some_and(|g| {
                    (g.x..g.x + g.width as i16).contains(&x)
                        && (g.y..g.y + g.height as i16).contains(&y)
                })
        })
    }

    /// Waits up to ten seconds until `window` is the one X sends pointer events at (`x`, `y`)
    /// to. The compositor restacks X windows on its window manager connection, so this can
    /// trail what it publishes through another connection.
    pub fn expect_on_top_at(&self, window: Window, x: i16, y: i16) {
        let toplevel = self.toplevel_of(window);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let top = self.toplevel_at(x, y);
            if top == Some(toplevel) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{window:#x} is not on top at ({x},{y}) in X: {top:?} is"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
