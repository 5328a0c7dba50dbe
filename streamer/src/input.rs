//! Moonlight input packets to compositor input events.
//!
//! - **Keys** arrive as Windows virtual-key codes in US positions and become evdev codes. The
//!   client's modifier byte is trusted over lost key events: a key-down whose Shift, Ctrl or Alt
//!   bit is set while no such key is held gets a synthetic press of the left modifier before it
//!   and a release after it (Meta is never synthesized). Repeated presses and releases of keys
//!   that are not down are filtered.
//! - **Text** (one code point per packet) becomes [`InputEvent::Text`]; the compositor types it
//!   through its keymap.
//! - **Mouse**: absolute positions are scaled from the client's reference size to the output;
//!   buttons become evdev `BTN_*` codes; scroll stays in 120-per-notch units.
//! - **Touch** contacts come in normalised 0..1 video coordinates and go out in output pixels;
//!   a **pen** is delivered as one more touch point (tip down, move, tip up) until the
//!   compositor has a tablet protocol.
//! - Gamepad packets are not for the seat: [`is_gamepad_packet`] tells the caller to hand them
//!   to [`crate::gamepad::GamepadManager`].
//!
//! Anything unknown, out of range or NaN is dropped with a debug line. The mapper remembers what
//! is held so that a stream that ends leaves no key, button or touch stuck.

use std::collections::BTreeSet;

use compositor::{CompositorHandle, InputEvent};
use protocol::input::{self, InputPacket};
use tracing::{debug, trace};

/// evdev `KEY_LEFTSHIFT`.
const KEY_LEFTSHIFT: u32 = 42;
/// evdev `KEY_RIGHTSHIFT`.
const KEY_RIGHTSHIFT: u32 = 54;
/// evdev `KEY_LEFTCTRL`.
const KEY_LEFTCTRL: u32 = 29;
/// evdev `KEY_RIGHTCTRL`.
const KEY_RIGHTCTRL: u32 = 97;
/// evdev `KEY_LEFTALT`.
const KEY_LEFTALT: u32 = 56;
/// evdev `KEY_RIGHTALT`.
const KEY_RIGHTALT: u32 = 100;
/// evdev `KEY_LEFTMETA`.
const KEY_LEFTMETA: u32 = 125;
/// evdev `KEY_RIGHTMETA`.
const KEY_RIGHTMETA: u32 = 126;

/// The modifiers that are repaired from the client's modifier byte: (bit, left key, right key).
const SYNTHESIZED_MODIFIERS: [(u8, u32, u32); 3] = [
    (input::MODIFIER_SHIFT, KEY_LEFTSHIFT, KEY_RIGHTSHIFT),
    (input::MODIFIER_CTRL, KEY_LEFTCTRL, KEY_RIGHTCTRL),
    (input::MODIFIER_ALT, KEY_LEFTALT, KEY_RIGHTALT),
];

/// Touch point id the pen uses; client contact ids are small counters in practice.
pub const PEN_TOUCH_ID: u32 = 0xFFFF_FF00;

/// `LI_TOUCH_EVENT_*` values shared by touch and pen packets.
mod touch_event {
    pub(super) const HOVER: u8 = 0x00;
    pub(super) const DOWN: u8 = 0x01;
    pub(super) const UP: u8 = 0x02;
    pub(super) const MOVE: u8 = 0x03;
    pub(super) const CANCEL: u8 = 0x04;
    pub(super) const BUTTON_ONLY: u8 = 0x05;
    pub(super) const HOVER_LEAVE: u8 = 0x06;
    pub(super) const CANCEL_ALL: u8 = 0x07;
}

/// Whether a packet belongs to the gamepads rather than the seat.
pub fn is_gamepad_packet(packet: &InputPacket) -> bool {
    matches!(
        packet,
        InputPacket::MultiController(_)
            | InputPacket::EnableHaptics
            | InputPacket::ControllerArrival { .. }
            | InputPacket::ControllerTouch { .. }
            | InputPacket::ControllerMotion { .. }
            | InputPacket::ControllerBattery { .. }
    )
}

/// Turns input packets into compositor events for one output size.
#[derive(Debug)]
pub struct InputMapper {
    width: u32,
    height: u32,
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u32>,
    touches: BTreeSet<u32>,
}

impl InputMapper {
    /// A mapper for an output of `width` x `height`.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            keys: BTreeSet::new(),
            buttons: BTreeSet::new(),
            touches: BTreeSet::new(),
        }
    }

    /// Decodes one input packet and delivers what it means to the seat.
    pub fn handle(&mut self, packet: &[u8], sink: &CompositorHandle) {
        match InputPacket::parse(packet) {
            Ok(p) => self.deliver(&p, sink),
            Err(e) => debug!(%e, len = packet.len(), "dropped an input packet"),
        }
    }

    /// Delivers one parsed packet to the seat.
    pub fn deliver(&mut self, packet: &InputPacket, sink: &CompositorHandle) {
        for ev in self.map(packet) {
            trace!(?ev, "input");
            sink.send_input(ev);
        }
    }

    /// The events one packet stands for (pure; also updates what is held).
    pub fn map(&mut self, packet: &InputPacket) -> Vec<InputEvent> {
        match *packet {
            InputPacket::KeyDown { vk, modifiers, .. } => self.map_key(vk, true, modifiers),
            InputPacket::KeyUp { vk, modifiers, .. } => self.map_key(vk, false, modifiers),
            InputPacket::Utf8Text(ref text) => {
                if text.is_empty() {
                    return vec![];
                }
                vec![InputEvent::Text { text: text.clone() }]
            }
            InputPacket::MouseMoveRel { dx, dy } => {
                vec![InputEvent::PointerMotionRelative {
                    dx: f64::from(dx),
                    dy: f64::from(dy),
                }]
            }
            InputPacket::MouseMoveAbs {
                x,
                y,
                ref_width,
                ref_height,
            } => {
                if ref_width == 0 || ref_height == 0 {
                    debug!(
                        ref_width,
                        ref_height, "absolute move with an empty reference area"
                    );
                    return vec![];
                }
                // Positions run over 0..ref; a client whose reference area is the stream's
                // size gets its pixel back exactly.
                let (rw, rh) = (f64::from(ref_width), f64::from(ref_height));
                // Multiply first: x * W / W is exactly x, x / W * W need not be.
                let x = f64::from(x).clamp(0.0, rw - 1.0) * f64::from(self.width) / rw;
                let y = f64::from(y).clamp(0.0, rh - 1.0) * f64::from(self.height) / rh;
                vec![InputEvent::PointerMotionAbsolute { x, y }]
            }
            InputPacket::MouseButton { button, pressed } => {
                let code = u32::from(button.evdev_code());
                let changed = if pressed {
                    self.buttons.insert(code)
                } else {
                    self.buttons.remove(&code)
                };
                if !changed {
                    return vec![];
                }
                vec![InputEvent::PointerButton {
                    button: code,
                    pressed,
                }]
            }
            InputPacket::ScrollVertical { amount } => {
                vec![InputEvent::PointerAxis {
                    horizontal: false,
                    value120: i32::from(amount),
                }]
            }
            InputPacket::ScrollHorizontal { amount } => {
                vec![InputEvent::PointerAxis {
                    horizontal: true,
                    value120: i32::from(amount),
                }]
            }
            InputPacket::Touch {
                event_type,
                pointer_id,
                x,
                y,
                ..
            } => self.map_touch(event_type, pointer_id, x, y),
            InputPacket::Pen {
                event_type, x, y, ..
            } => match event_type {
                touch_event::DOWN | touch_event::MOVE | touch_event::UP => {
                    self.map_touch(event_type, PEN_TOUCH_ID, x, y)
                }
                touch_event::CANCEL | touch_event::CANCEL_ALL => {
                    self.map_touch(event_type, PEN_TOUCH_ID, 0.0, 0.0)
                }
                // Hover, buttons-only and hover-leave have no touch equivalent.
                other => {
                    trace!(event_type = other, "pen event without a touch equivalent");
                    vec![]
                }
            },
            ref other => {
                trace!(?other, "not an input for the seat");
                vec![]
            }
        }
    }

    /// Releases every held key, button and touch point.
    pub fn release_all(&mut self, sink: &CompositorHandle) {
        for ev in self.release_events() {
            sink.send_input(ev);
        }
    }

    /// The events that release everything held (and forget it).
    pub fn release_events(&mut self) -> Vec<InputEvent> {
        let mut out = Vec::new();
        for code in std::mem::take(&mut self.keys) {
            out.push(InputEvent::Key {
                code,
                pressed: false,
            });
        }
        for button in std::mem::take(&mut self.buttons) {
            out.push(InputEvent::PointerButton {
                button,
                pressed: false,
            });
        }
        if !std::mem::take(&mut self.touches).is_empty() {
            out.push(InputEvent::TouchCancel);
        }
        out
    }

    fn map_key(&mut self, vk: u8, pressed: bool, modifiers: u8) -> Vec<InputEvent> {
        let Some(code) = input::vk_to_evdev(vk) else {
            debug!(vk, "unknown virtual-key code");
            return vec![];
        };
        let code = u32::from(code);
        let changed = if pressed {
            self.keys.insert(code)
        } else {
            self.keys.remove(&code)
        };
        if !changed {
            // A repeat press or a release of a key never pressed: the compositor would see a
            // stuck or phantom key otherwise.
            trace!(vk, pressed, "duplicate key event");
            return vec![];
        }
        let key = InputEvent::Key { code, pressed };
        if !pressed || is_modifier(code) {
            return vec![key];
        }
        // The client says a modifier is down that the host never saw pressed (its press got
        // lost, or it was held when the client window got focus): wrap this key in it.
        let missing: Vec<u32> = SYNTHESIZED_MODIFIERS
            .iter()
            .filter(|(bit, left, right)| {
                modifiers & bit != 0 && !self.keys.contains(left) && !self.keys.contains(right)
            })
            .map(|&(_, left, _)| left)
            .collect();
        let mut out = Vec::with_capacity(1 + 2 * missing.len());
        out.extend(missing.iter().map(|&code| InputEvent::Key {
            code,
            pressed: true,
        }));
        out.push(key);
        out.extend(missing.iter().rev().map(|&code| InputEvent::Key {
            code,
            pressed: false,
        }));
        out
    }

    fn map_touch(&mut self, event_type: u8, id: u32, x: f32, y: f32) -> Vec<InputEvent> {
        let position = || {
            if x.is_nan() || y.is_nan() {
                debug!(id, "touch position is NaN");
                return None;
            }
            Some(self.to_output(f64::from(x.clamp(0.0, 1.0)), f64::from(y.clamp(0.0, 1.0))))
        };
        match event_type {
            touch_event::DOWN => {
                let Some((x, y)) = position() else {
                    return vec![];
                };
                if self.touches.contains(&id) {
                    // A second down for a contact already down: the client lost an up. Treat
                    // it as a move so the compositor never sees the id twice.
                    return vec![InputEvent::TouchMotion { id, x, y }];
                }
                self.touches.insert(id);
                vec![InputEvent::TouchDown { id, x, y }]
            }
            touch_event::MOVE => {
                if !self.touches.contains(&id) {
                    trace!(id, "move of a contact that is not down");
                    return vec![];
                }
                let Some((x, y)) = position() else {
                    return vec![];
                };
                vec![InputEvent::TouchMotion { id, x, y }]
            }
            touch_event::UP => {
                if !self.touches.remove(&id) {
                    debug!(id, "up of a contact that is not down");
                    return vec![];
                }
                vec![InputEvent::TouchUp { id }]
            }
            // Wayland can only cancel the whole touch sequence, so cancelling one contact
            // cancels them all: safer than turning it into an up, which clients act on.
            touch_event::CANCEL => {
                if !self.touches.contains(&id) {
                    return vec![];
                }
                self.touches.clear();
                vec![InputEvent::TouchCancel]
            }
            touch_event::CANCEL_ALL => {
                if std::mem::take(&mut self.touches).is_empty() {
                    return vec![];
                }
                vec![InputEvent::TouchCancel]
            }
            touch_event::HOVER | touch_event::HOVER_LEAVE | touch_event::BUTTON_ONLY => vec![],
            other => {
                debug!(event_type = other, "unknown touch event type");
                vec![]
            }
        }
    }

    /// Output pixels for a position given as fractions of the output.
    fn to_output(&self, fx: f64, fy: f64) -> (f64, f64) {
        (fx * f64::from(self.width), fy * f64::from(self.height))
    }
}

fn is_modifier(code: u32) -> bool {
    matches!(
        code,
        KEY_LEFTSHIFT
            | KEY_RIGHTSHIFT
            | KEY_LEFTCTRL
            | KEY_RIGHTCTRL
            | KEY_LEFTALT
            | KEY_RIGHTALT
            | KEY_LEFTMETA
            | KEY_RIGHTMETA
    )
}

#[cfg(test)]
mod tests {
    use protocol::input::{
        MouseButton, MODIFIER_ALT, MODIFIER_CTRL, MODIFIER_META, MODIFIER_SHIFT,
    };

    use super::*;

    fn key(code: u32, pressed: bool) -> InputEvent {
        InputEvent::Key { code, pressed }
    }
    fn down(vk: u8, modifiers: u8) -> InputPacket {
        InputPacket::KeyDown {
            vk,
            modifiers,
            flags: 0,
        }
    }
    fn up(vk: u8, modifiers: u8) -> InputPacket {
        InputPacket::KeyUp {
            vk,
            modifiers,
            flags: 0,
        }
    }
    fn touch(event_type: u8, pointer_id: u32, x: f32, y: f32) -> InputPacket {
        InputPacket::Touch {
            event_type,
            rotation: 0xFFFF,
            pointer_id,
            x,
            y,
            pressure_or_distance: 0.5,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        }
    }
    fn pen(event_type: u8, x: f32, y: f32) -> InputPacket {
        InputPacket::Pen {
            event_type,
            tool_type: 1,
            pen_buttons: 0,
            x,
            y,
            pressure_or_distance: 0.5,
            rotation: 0xFFFF,
            tilt: 0xFF,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        }
    }
    /// Wire bytes of a packet: BE32 size, LE32 magic, body.
    fn wire(magic: u32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&magic.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn plain_keys_map_to_evdev_and_duplicates_are_filtered() {
        let mut m = InputMapper::new(1280, 720);
        assert_eq!(m.map(&down(0x41, 0)), [key(30, true)]); // A
        assert_eq!(m.map(&down(0x41, 0)), []); // repeat press
        assert_eq!(m.map(&up(0x41, 0)), [key(30, false)]);
        assert_eq!(m.map(&up(0x41, 0)), []); // release of a key not down
        assert_eq!(m.map(&up(0x5A, 0)), []);
        assert_eq!(m.map(&down(0x30, 0)), [key(11, true)]); // KEY_0
        assert_eq!(m.map(&down(0x70, 0)), [key(59, true)]); // F1
    }

    #[test]
    fn unknown_virtual_keys_are_dropped() {
        let mut m = InputMapper::new(1280, 720);
        for vk in [0x00, 0x01, 0x3A, 0x40, 0xFF, 0xE0] {
            assert_eq!(m.map(&down(vk, 0)), [], "vk {vk:#x}");
            assert_eq!(m.map(&up(vk, 0)), [], "vk {vk:#x}");
        }
        assert!(m.keys.is_empty());
    }

    #[test]
    fn generic_modifiers_are_the_left_keys() {
        let mut m = InputMapper::new(1280, 720);
        assert_eq!(
            m.map(&down(0x10, MODIFIER_SHIFT)),
            [key(KEY_LEFTSHIFT, true)]
        );
        assert_eq!(m.map(&down(0x11, MODIFIER_CTRL)), [key(KEY_LEFTCTRL, true)]);
        assert_eq!(m.map(&down(0x12, MODIFIER_ALT)), [key(KEY_LEFTALT, true)]);
        // VK_LSHIFT is the same key as VK_SHIFT: a second press is a duplicate.
        assert_eq!(m.map(&down(0xA0, MODIFIER_SHIFT)), []);
        assert_eq!(m.map(&up(0xA0, 0)), [key(KEY_LEFTSHIFT, false)]);
    }

    #[test]
    fn a_held_modifier_is_not_synthesized_again() {
        let mut m = InputMapper::new(1280, 720);
        assert_eq!(
            m.map(&down(0xA1, MODIFIER_SHIFT)),
            [key(KEY_RIGHTSHIFT, true)]
        );
        assert_eq!(m.map(&down(0x5A, MODIFIER_SHIFT)), [key(44, true)]);
        assert_eq!(m.map(&up(0x5A, MODIFIER_SHIFT)), [key(44, false)]);
        assert_eq!(m.map(&down(0xA5, MODIFIER_ALT)), [key(KEY_RIGHTALT, true)]);
        assert_eq!(
            m.map(&down(0x51, MODIFIER_ALT | MODIFIER_SHIFT)),
            [key(16, true)]
        );
    }

    #[test]
    fn lost_modifiers_are_synthesized_around_a_key_down() {
        let mut m = InputMapper::new(1280, 720);
        assert_eq!(
            m.map(&down(0x41, MODIFIER_SHIFT)),
            [
                key(KEY_LEFTSHIFT, true),
                key(30, true),
                key(KEY_LEFTSHIFT, false)
            ]
        );
        // Key-ups never synthesize.
        assert_eq!(m.map(&up(0x41, MODIFIER_SHIFT)), [key(30, false)]);
        assert_eq!(
            m.map(&down(0x43, MODIFIER_CTRL | MODIFIER_ALT | MODIFIER_SHIFT)),
            [
                key(KEY_LEFTSHIFT, true),
                key(KEY_LEFTCTRL, true),
                key(KEY_LEFTALT, true),
                key(46, true),
                key(KEY_LEFTALT, false),
                key(KEY_LEFTCTRL, false),
                key(KEY_LEFTSHIFT, false),
            ]
        );
        assert_eq!(m.map(&up(0x43, 0)), [key(46, false)]);
        // Meta is never synthesized.
        assert_eq!(m.map(&down(0x44, MODIFIER_META)), [key(32, true)]);
        // Nothing synthetic stays held.
        assert_eq!(m.keys.iter().copied().collect::<Vec<_>>(), [32]);
    }

    #[test]
    fn modifier_keys_themselves_do_not_synthesize() {
        let mut m = InputMapper::new(1280, 720);
        // A Ctrl press that carries the Shift bit: Shift is not pressed for it.
        assert_eq!(
            m.map(&down(0xA2, MODIFIER_SHIFT | MODIFIER_CTRL)),
            [key(KEY_LEFTCTRL, true)]
        );
    }

    #[test]
    fn text_becomes_a_text_event() {
        let mut m = InputMapper::new(1280, 720);
        for s in ["G", "ü", "ß", "日", "😀"] {
            assert_eq!(
                m.map(&InputPacket::Utf8Text(s.into())),
                [InputEvent::Text { text: s.into() }]
            );
        }
        let p = InputPacket::parse(&wire(input::MAGIC_UTF8, "ü".as_bytes())).unwrap();
        assert_eq!(m.map(&p), [InputEvent::Text { text: "ü".into() }]);
    }

    #[test]
    fn absolute_mouse_scales_to_the_output() {
        let cases = [
            // (output, reference, position, expected)
            ((1920, 1080), (1920, 1080), (100, 200), (100.0, 200.0)),
            ((1920, 1080), (1920, 1080), (1919, 1079), (1919.0, 1079.0)),
            ((1280, 720), (1920, 1080), (960, 540), (640.0, 360.0)),
            ((1366, 768), (1366, 768), (683, 17), (683.0, 17.0)),
            ((1366, 768), (1000, 1000), (500, 950), (683.0, 729.6)),
            ((1920, 1080), (1920, 1080), (-5, 5000), (0.0, 1079.0)),
        ];
        for ((w, h), (rw, rh), (x, y), (ex, ey)) in cases {
            let mut m = InputMapper::new(w, h);
            let got = m.map(&InputPacket::MouseMoveAbs {
                x,
                y,
                ref_width: rw,
                ref_height: rh,
            });
            let [InputEvent::PointerMotionAbsolute { x: gx, y: gy }] = got[..] else {
                panic!("{got:?}");
            };
            assert!(
                (gx - ex).abs() < 1e-6 && (gy - ey).abs() < 1e-6,
                "{gx},{gy} != {ex},{ey}"
            );
        }
    }

    #[test]
    fn absolute_mouse_is_exact_when_the_reference_is_the_output() {
        for (w, h) in [(1920u16, 1080u16), (1366, 768), (853, 479)] {
            let mut m = InputMapper::new(u32::from(w), u32::from(h));
            for x in 0..w as i16 {
                let y = (x as u16 % h) as i16;
                let got = m.map(&InputPacket::MouseMoveAbs { x, y, ref_width: w, ref_height: h });
                assert_eq!(
                    got,
                    [InputEvent::PointerMotionAbsolute { x: f64::from(x), y: f64::from(y) }]
                );
            }
        }
    }

    #[test]
    fn buttons_are_deduplicated_and_released_at_the_end() {
        let mut m = InputMapper::new(1280, 720);
        let b = |pressed| InputPacket::MouseButton {
            button: MouseButton::Right,
            pressed,
        };
        assert_eq!(
            m.map(&b(true)),
            [InputEvent::PointerButton {
                button: 0x111,
                pressed: true
            }]
        );
        assert_eq!(m.map(&b(true)), []);
        m.map(&down(0x41, 0));
        m.map(&touch(1, 3, 0.5, 0.5));
        assert_eq!(
            m.release_events(),
            [
                key(30, false),
                InputEvent::PointerButton {
                    button: 0x111,
                    pressed: false
                },
                InputEvent::TouchCancel
            ]
        );
        assert_eq!(m.release_events(), []);
    }

    #[test]
    fn touch_scales_to_every_mode() {
        for (w, h) in [(1280, 720), (1920, 1080), (1366, 768), (853, 479)] {
            let mut m = InputMapper::new(w, h);
            let (fw, fh) = (f64::from(w), f64::from(h));
            assert_eq!(
                m.map(&touch(1, 7, 0.25, 0.75)),
                [InputEvent::TouchDown {
                    id: 7,
                    x: 0.25 * fw,
                    y: 0.75 * fh
                }]
            );
            assert_eq!(
                m.map(&touch(3, 7, 0.5, 0.5)),
                [InputEvent::TouchMotion {
                    id: 7,
                    x: 0.5 * fw,
                    y: 0.5 * fh
                }]
            );
            // Out of range is clamped to the edges.
            assert_eq!(
                m.map(&touch(3, 7, -0.5, 1.5)),
                [InputEvent::TouchMotion {
                    id: 7,
                    x: 0.0,
                    y: fh
                }]
            );
            assert_eq!(
                m.map(&touch(2, 7, 0.5, 0.5)),
                [InputEvent::TouchUp { id: 7 }]
            );
        }
    }

    #[test]
    fn touch_at_an_exact_pixel() {
        let mut m = InputMapper::new(1280, 720);
        let x = 321.0 / 1280.0;
        let y = 123.0 / 720.0;
        let got = m.map(&touch(1, 0, x, y));
        let [InputEvent::TouchDown { x: gx, y: gy, .. }] = got[..] else {
            panic!("{got:?}")
        };
        assert!(
            (gx - 321.0).abs() < 1e-3 && (gy - 123.0).abs() < 1e-3,
            "{gx} {gy}"
        );
    }

    #[test]
    fn bad_touches_are_dropped() {
        let mut m = InputMapper::new(1920, 1080);
        assert_eq!(m.map(&touch(1, 1, f32::NAN, 0.5)), []);
        assert_eq!(m.map(&touch(1, 1, 0.5, f32::NAN)), []);
        assert!(m.touches.is_empty());
        assert_eq!(
            m.map(&touch(3, 9, 0.5, 0.5)),
            [],
            "move of a contact never down"
        );
        assert_eq!(
            m.map(&touch(2, 9, 0.5, 0.5)),
            [],
            "up of a contact never down"
        );
        assert_eq!(m.map(&touch(0x42, 9, 0.5, 0.5)), [], "unknown event type");
        assert_eq!(m.map(&touch(0, 9, 0.5, 0.5)), [], "hover");
        assert_eq!(
            m.map(&touch(7, 0, 0.0, 0.0)),
            [],
            "cancel all with nothing down"
        );
        m.map(&touch(1, 1, 0.1, 0.1));
        assert_eq!(m.map(&touch(3, 1, f32::NAN, 0.1)), [], "NaN move");
        // a repeated down of the same contact moves it instead of doubling it
        assert_eq!(
            m.map(&touch(1, 1, 0.5, 0.5)),
            [InputEvent::TouchMotion {
                id: 1,
                x: 960.0,
                y: 540.0
            }]
        );
    }

    #[test]
    fn multi_touch_and_cancel() {
        let mut m = InputMapper::new(1920, 1080);
        m.map(&touch(1, 1, 0.1, 0.1));
        m.map(&touch(1, 2, 0.2, 0.2));
        assert_eq!(m.map(&touch(4, 1, 0.0, 0.0)), [InputEvent::TouchCancel]);
        assert_eq!(
            m.map(&touch(3, 2, 0.3, 0.3)),
            [],
            "cancelled contacts are gone"
        );
        m.map(&touch(1, 5, 0.1, 0.1));
        assert_eq!(m.map(&touch(7, 0, 0.0, 0.0)), [InputEvent::TouchCancel]);
    }

    #[test]
    fn pen_is_a_touch_point() {
        let mut m = InputMapper::new(1920, 1080);
        assert_eq!(m.map(&pen(0, 0.5, 0.5)), [], "hover");
        assert_eq!(m.map(&pen(3, 0.5, 0.5)), [], "move while the tip is up");
        assert_eq!(
            m.map(&pen(1, 0.5, 0.25)),
            [InputEvent::TouchDown {
                id: PEN_TOUCH_ID,
                x: 960.0,
                y: 270.0
            }]
        );
        assert_eq!(m.map(&pen(5, 0.9, 0.9)), [], "buttons only");
        assert_eq!(
            m.map(&pen(3, 1.0, 1.0)),
            [InputEvent::TouchMotion {
                id: PEN_TOUCH_ID,
                x: 1920.0,
                y: 1080.0
            }]
        );
        assert_eq!(
            m.map(&pen(2, 1.0, 1.0)),
            [InputEvent::TouchUp { id: PEN_TOUCH_ID }]
        );
        assert_eq!(m.map(&pen(1, f32::NAN, 0.1)), []);
        m.map(&pen(1, 0.1, 0.1));
        assert_eq!(m.map(&pen(7, 0.0, 0.0)), [InputEvent::TouchCancel]);
    }

    #[test]
    fn wire_packets_end_to_end_and_bad_ones_dropped() {
        let mut m = InputMapper::new(1280, 720);
        // key down 'A' with shift in the modifier byte, moonlight-qt's 0x8000 flag on the code
        let p = InputPacket::parse(&wire(3, &[0, 0x41, 0x80, MODIFIER_SHIFT, 0, 0])).unwrap();
        assert_eq!(
            m.map(&p),
            [
                key(KEY_LEFTSHIFT, true),
                key(30, true),
                key(KEY_LEFTSHIFT, false)
            ]
        );
        let mut body = vec![1, 0, 0xFF, 0xFF, 4, 0, 0, 0];
        for f in [0.5f32, 0.5, 1.0, 0.0, 0.0] {
            body.extend_from_slice(&f.to_le_bytes());
        }
        let p = InputPacket::parse(&wire(input::MAGIC_TOUCH, &body)).unwrap();
        assert_eq!(
            m.map(&p),
            [InputEvent::TouchDown {
                id: 4,
                x: 640.0,
                y: 360.0
            }]
        );
        // truncated, oversized, unknown: all errors, none panics
        assert!(InputPacket::parse(&wire(input::MAGIC_TOUCH, &body[..20])).is_err());
        assert!(InputPacket::parse(&wire(3, &[0, 0x41, 0x80, 0, 0])).is_err());
        assert!(InputPacket::parse(&wire(input::MAGIC_UTF8, &[0xC3])).is_err());
        assert!(InputPacket::parse(&wire(0x1234, &[])).is_err());
        assert!(InputPacket::parse(&[0, 0, 0]).is_err());
    }

    #[test]
    fn gamepad_packets_are_told_apart() {
        assert!(is_gamepad_packet(&InputPacket::EnableHaptics));
        assert!(is_gamepad_packet(&InputPacket::ControllerBattery {
            controller: 0,
            state: 2,
            percentage: 50
        }));
        assert!(!is_gamepad_packet(&down(0x41, 0)));
        assert!(!is_gamepad_packet(&touch(1, 0, 0.0, 0.0)));
        let mut m = InputMapper::new(1280, 720);
        assert_eq!(m.map(&InputPacket::EnableHaptics), []);
    }
}
