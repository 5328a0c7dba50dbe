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
//! - **Touch** contacts come in normalised 0..1 video coordinates and go out in output pixels.
//! - A **pen** becomes a tablet tool (pen or eraser) of the compositor's virtual tablet:
//!   proximity, motion, tip and barrel buttons, with pressure and hover distance scaled to
//!   0..65535 and the client's polar tilt (angle from the normal, direction) turned into x and
//!   y tilt. Clients without tablet support get the pen as a touch point from the compositor.
//! - Gamepad packets are not for the seat: [`is_gamepad_packet`] tells the caller to hand them
//!   to [`crate::gamepad::GamepadManager`].
//!
//! Anything unknown, out of range or NaN is dropped with a debug line. The mapper remembers what
//! is held so that a stream that ends leaves no key, button or touch stuck.

use std::collections::BTreeSet;

use compositor::{CompositorHandle, InputEvent, TabletAxes, TabletTool};
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

/// evdev `BTN_STYLUS`: the pen's first barrel button.
const BTN_STYLUS: u32 = 0x14b;
/// evdev `BTN_STYLUS2`.
const BTN_STYLUS2: u32 = 0x14c;
/// evdev `BTN_STYLUS3`.
const BTN_STYLUS3: u32 = 0x149;

/// `LI_PEN_BUTTON_*` bits and the evdev buttons they become.
const PEN_BUTTONS: [(u8, u32); 3] = [(0x01, BTN_STYLUS), (0x02, BTN_STYLUS2), (0x04, BTN_STYLUS3)];

/// `LI_TOOL_TYPE_*`.
mod tool_type {
    pub(super) const UNKNOWN: u8 = 0x00;
    pub(super) const PEN: u8 = 0x01;
    pub(super) const ERASER: u8 = 0x02;
}

/// `LI_ROT_UNKNOWN`.
const ROTATION_UNKNOWN: u16 = 0xFFFF;
/// `LI_TILT_UNKNOWN`.
const TILT_UNKNOWN: u8 = 0xFF;

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
    pen: PenState,
}

/// What the pen is doing, as far as the compositor has been told.
#[derive(Debug, Default)]
struct PenState {
    /// The tool in proximity.
    tool: Option<TabletTool>,
    /// The last tool the client named; a packet with an unknown tool type means this one.
    last_tool: Option<TabletTool>,
    tip_down: bool,
    /// `LI_PEN_BUTTON_*` bits held.
    buttons: u8,
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
            pen: PenState::default(),
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
                event_type,
                tool_type,
                pen_buttons,
                x,
                y,
                pressure_or_distance,
                rotation,
                tilt,
                ..
            } => self.map_pen(&PenSample {
                event_type,
                tool_type,
                buttons: pen_buttons,
                x,
                y,
                pressure_or_distance,
                rotation,
                tilt,
            }),
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
        self.pen_leave(&mut out);
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

    fn map_pen(&mut self, p: &PenSample) -> Vec<InputEvent> {
        let mut out = Vec::new();
        match p.event_type {
            touch_event::HOVER | touch_event::DOWN | touch_event::MOVE | touch_event::UP => {}
            touch_event::BUTTON_ONLY => {
                match self.pen.tool {
                    Some(tool) => self.pen_buttons(tool, p.buttons, &mut out),
                    None => trace!("pen buttons while no tool is in proximity"),
                }
                return out;
            }
            // Cancelling drops the stroke: the tool leaves without lifting its tip first, so
            // the compositor can tell an abandoned stroke from a finished one.
            touch_event::CANCEL | touch_event::CANCEL_ALL | touch_event::HOVER_LEAVE => {
                self.pen_leave(&mut out);
                return out;
            }
            other => {
                debug!(event_type = other, "unknown pen event type");
                return out;
            }
        }
        let tool = match p.tool_type {
            tool_type::UNKNOWN => self.pen.last_tool.unwrap_or(TabletTool::Pen),
            tool_type::PEN => TabletTool::Pen,
            tool_type::ERASER => TabletTool::Eraser,
            other => {
                debug!(tool_type = other, "unknown pen tool type, event dropped");
                return out;
            }
        };
        if p.x.is_nan() || p.y.is_nan() {
            debug!("pen position is NaN, event dropped");
            return out;
        }
        let (x, y) = self.to_output(
            f64::from(p.x.clamp(0.0, 1.0)),
            f64::from(p.y.clamp(0.0, 1.0)),
        );
        if self.pen.tool.is_some_and(|t| t != tool) {
            // The client turned the pen around: one tool leaves, the other comes in.
            self.pen_leave(&mut out);
        }
        self.pen.last_tool = Some(tool);

        let mut axes = TabletAxes {
            tilt: pen_tilt(p.tilt, p.rotation),
            rotation: pen_rotation(p.rotation),
            ..TabletAxes::default()
        };
        match p.event_type {
            touch_event::DOWN | touch_event::MOVE => {
                axes.pressure = contact_pressure(p.pressure_or_distance);
                axes.distance = Some(0);
            }
            touch_event::HOVER => {
                axes.pressure = Some(0);
                axes.distance = hover_distance(p.pressure_or_distance);
            }
            _ => {}
        }
        if p.event_type == touch_event::HOVER && self.pen.tip_down {
            // The up got lost: the pen hovers again.
            self.pen.tip_down = false;
            out.push(InputEvent::TabletTip { tool, down: false });
        }
        if self.pen.tool.is_none() {
            self.pen.tool = Some(tool);
            out.push(InputEvent::TabletProximityIn { tool, x, y });
        }
        out.push(InputEvent::TabletMotion { tool, x, y, axes });
        self.pen_buttons(tool, p.buttons, &mut out);
        let contact = matches!(p.event_type, touch_event::DOWN | touch_event::MOVE);
        if contact != self.pen.tip_down && p.event_type != touch_event::HOVER {
            // A move in contact after a lost down puts the tip down too.
            self.pen.tip_down = contact;
            out.push(InputEvent::TabletTip {
                tool,
                down: contact,
            });
        }
        out
    }

    /// Button events for the bits of `buttons` that differ from what is held.
    fn pen_buttons(&mut self, tool: TabletTool, buttons: u8, out: &mut Vec<InputEvent>) {
        for (bit, button) in PEN_BUTTONS {
            let pressed = buttons & bit != 0;
            if pressed != (self.pen.buttons & bit != 0) {
                self.pen.buttons ^= bit;
                out.push(InputEvent::TabletButton {
                    tool,
                    button,
                    pressed,
                });
            }
        }
    }

    /// Takes the tool in proximity out, releasing its buttons first.
    fn pen_leave(&mut self, out: &mut Vec<InputEvent>) {
        let Some(tool) = self.pen.tool.take() else {
            return;
        };
        self.pen_buttons(tool, 0, out);
        self.pen.tip_down = false;
        out.push(InputEvent::TabletProximityOut { tool });
    }

    /// Output pixels for a position given as fractions of the output.
    fn to_output(&self, fx: f64, fy: f64) -> (f64, f64) {
        (fx * f64::from(self.width), fy * f64::from(self.height))
    }
}

/// The fields of a pen packet the mapping uses.
#[derive(Debug, Clone, Copy)]
struct PenSample {
    event_type: u8,
    tool_type: u8,
    buttons: u8,
    x: f32,
    y: f32,
    pressure_or_distance: f32,
    rotation: u16,
    tilt: u8,
}

/// A 0..=1 value in the protocol's 0..=65535 units; `None` for NaN or out of range.
fn unit_to_u16(value: f32) -> Option<u16> {
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    Some((f64::from(value) * 65535.0).round() as u16)
}

/// Pressure of a pen in contact. The client sends 0 when the pen has no pressure sensor: such
/// a pen draws at full pressure, as a mouse click would.
fn contact_pressure(pressure: f32) -> Option<u16> {
    if pressure == 0.0 {
        return Some(u16::MAX);
    }
    let value = unit_to_u16(pressure);
    if value.is_none() {
        debug!(pressure, "pen pressure out of range, dropped");
    }
    value
}

/// Hover distance; the client sends 0 when it does not know it.
fn hover_distance(distance: f32) -> Option<u16> {
    if distance == 0.0 {
        return None;
    }
    let value = unit_to_u16(distance);
    if value.is_none() {
        debug!(distance, "pen distance out of range, dropped");
    }
    value
}

/// The pen's rotation in degrees, if the client knows it and it is in range.
fn pen_rotation(rotation: u16) -> Option<f64> {
    match rotation {
        ROTATION_UNKNOWN => None,
        0..360 => Some(f64::from(rotation)),
        _ => {
            debug!(rotation, "pen rotation out of range, dropped");
            None
        }
    }
}

/// x and y tilt in degrees from the client's polar tilt: `tilt` degrees away from the normal,
/// leaning in the direction `rotation` degrees from the vertical. Sunshine converts the same
/// way for its virtual pens, so tilt means the same on either host. Needs both values.
fn pen_tilt(tilt: u8, rotation: u16) -> Option<(f64, f64)> {
    if tilt == TILT_UNKNOWN {
        return None;
    }
    if tilt > 90 {
        debug!(tilt, "pen tilt out of range, dropped");
        return None;
    }
    let rotation = pen_rotation(rotation)?.to_radians();
    let tilt = f64::from(tilt).to_radians();
    let (r, z) = (tilt.sin(), tilt.cos());
    let x = (-rotation.sin() * r).atan2(z).to_degrees();
    let y = (rotation.cos() * r).atan2(z).to_degrees();
    Some((x, y))
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
                let got = m.map(&InputPacket::MouseMoveAbs {
                    x,
                    y,
                    ref_width: w,
                    ref_height: h,
                });
                assert_eq!(
                    got,
                    [InputEvent::PointerMotionAbsolute {
                        x: f64::from(x),
                        y: f64::from(y)
                    }]
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

    fn pen_with(
        event_type: u8,
        tool_type: u8,
        pen_buttons: u8,
        (x, y): (f32, f32),
        pressure_or_distance: f32,
        (rotation, tilt): (u16, u8),
    ) -> InputPacket {
        InputPacket::Pen {
            event_type,
            tool_type,
            pen_buttons,
            x,
            y,
            pressure_or_distance,
            rotation,
            tilt,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        }
    }
    fn motion(tool: TabletTool, x: f64, y: f64, axes: TabletAxes) -> InputEvent {
        InputEvent::TabletMotion { tool, x, y, axes }
    }
    fn tip(tool: TabletTool, down: bool) -> InputEvent {
        InputEvent::TabletTip { tool, down }
    }
    const PEN: TabletTool = TabletTool::Pen;
    const ERASER: TabletTool = TabletTool::Eraser;

    #[test]
    fn pen_hovers_draws_and_leaves_as_a_tablet_tool() {
        let mut m = InputMapper::new(1920, 1080);
        assert_eq!(
            m.map(&pen(0, 0.5, 0.25)),
            [
                InputEvent::TabletProximityIn {
                    tool: PEN,
                    x: 960.0,
                    y: 270.0
                },
                motion(
                    PEN,
                    960.0,
                    270.0,
                    TabletAxes {
                        pressure: Some(0),
                        distance: Some(32768), // 0.5 of 65535, rounded
                        ..TabletAxes::default()
                    }
                ),
            ],
            "hover"
        );
        let in_contact = |pressure| TabletAxes {
            pressure: Some(pressure),
            distance: Some(0),
            ..TabletAxes::default()
        };
        assert_eq!(
            m.map(&pen(1, 0.25, 0.5)),
            [motion(PEN, 480.0, 540.0, in_contact(32768)), tip(PEN, true)],
            "down"
        );
        assert_eq!(
            m.map(&pen_with(3, 1, 0, (1.0, 1.0), 1.0, (0xFFFF, 0xFF))),
            [motion(PEN, 1920.0, 1080.0, in_contact(65535))],
            "move"
        );
        assert_eq!(
            m.map(&pen(2, 1.0, 1.0)),
            [
                motion(PEN, 1920.0, 1080.0, TabletAxes::default()),
                tip(PEN, false)
            ],
            "up"
        );
        assert_eq!(
            m.map(&pen(6, 0.0, 0.0)),
            [InputEvent::TabletProximityOut { tool: PEN }],
            "hover leave"
        );
        assert_eq!(m.map(&pen(6, 0.0, 0.0)), [], "leave twice");
    }

    #[test]
    fn pen_pressure_and_distance_scale_to_protocol_units() {
        for (pressure, expected) in [
            (1.0, 65535),
            (0.25, 16384),
            (1.0 / 65535.0, 1),
            // a pen without a pressure sensor sends 0 and draws at full pressure
            (0.0, 65535),
        ] {
            let mut m = InputMapper::new(1280, 720);
            let got = m.map(&pen_with(1, 1, 0, (0.5, 0.5), pressure, (0xFFFF, 0xFF)));
            let Some(InputEvent::TabletMotion { axes, .. }) = got.get(1) else {
                panic!("{got:?}");
            };
            assert_eq!(axes.pressure, Some(expected), "pressure {pressure}");
        }
        let mut m = InputMapper::new(1280, 720);
        let got = m.map(&pen_with(0, 1, 0, (0.5, 0.5), 1.0, (0xFFFF, 0xFF)));
        assert_eq!(
            got[1],
            motion(
                PEN,
                640.0,
                360.0,
                TabletAxes {
                    pressure: Some(0),
                    distance: Some(65535),
                    ..TabletAxes::default()
                }
            )
        );
        // an unknown hover distance (0) leaves the distance as it was
        let got = m.map(&pen_with(0, 1, 0, (0.5, 0.5), 0.0, (0xFFFF, 0xFF)));
        assert_eq!(
            got,
            [motion(
                PEN,
                640.0,
                360.0,
                TabletAxes {
                    pressure: Some(0),
                    ..TabletAxes::default()
                }
            )]
        );
    }

    #[test]
    fn polar_tilt_becomes_x_and_y_tilt() {
        let tilt_of = |rotation, tilt| {
            let mut m = InputMapper::new(1280, 720);
            let got = m.map(&pen_with(0, 1, 0, (0.5, 0.5), 0.5, (rotation, tilt)));
            let Some(InputEvent::TabletMotion { axes, .. }) = got.get(1) else {
                panic!("{got:?}");
            };
            *axes
        };
        let close = |got: Option<(f64, f64)>, want: (f64, f64)| {
            let (x, y) = got.expect("a tilt");
            assert!(
                (x - want.0).abs() < 1e-9 && (y - want.1).abs() < 1e-9,
                "{got:?} != {want:?}"
            );
        };
        // Upright: no tilt, whatever the direction.
        close(tilt_of(123, 0).tilt, (0.0, 0.0));
        // Leaning 30 degrees in the four directions (Sunshine's convention).
        close(tilt_of(0, 30).tilt, (0.0, 30.0));
        close(tilt_of(90, 30).tilt, (-30.0, 0.0));
        close(tilt_of(180, 30).tilt, (0.0, -30.0));
        close(tilt_of(270, 30).tilt, (30.0, 0.0));
        // Diagonal: each axis sees atan(sin 45 * tan 60).
        let diagonal = (45f64.to_radians().sin() * 60f64.to_radians().tan())
            .atan()
            .to_degrees();
        close(tilt_of(45, 60).tilt, (-diagonal, diagonal));
        assert_eq!(tilt_of(45, 60).rotation, Some(45.0));

        // Unknown or out of range: no tilt, no rotation.
        assert_eq!(tilt_of(0xFFFF, 30).tilt, None);
        assert_eq!(tilt_of(90, 0xFF).tilt, None);
        assert_eq!(tilt_of(90, 0xFF).rotation, Some(90.0));
        assert_eq!(tilt_of(90, 91).tilt, None);
        assert_eq!(tilt_of(360, 30).tilt, None);
        assert_eq!(tilt_of(360, 30).rotation, None);
        assert_eq!(tilt_of(0xFFFF, 0xFF).rotation, None);
    }

    #[test]
    fn eraser_and_tool_switches() {
        let mut m = InputMapper::new(1000, 1000);
        let got = m.map(&pen_with(0, 2, 0, (0.125, 0.25), 0.0, (0xFFFF, 0xFF)));
        assert_eq!(
            got[0],
            InputEvent::TabletProximityIn {
                tool: ERASER,
                x: 125.0,
                y: 250.0
            }
        );
        // An unknown tool type is the tool named last.
        let got = m.map(&pen_with(1, 0, 0, (0.125, 0.25), 0.5, (0xFFFF, 0xFF)));
        assert_eq!(got.last(), Some(&tip(ERASER, true)));
        // Turned around while touching: the eraser leaves, the pen comes in.
        let got = m.map(&pen_with(3, 1, 0, (0.375, 0.375), 0.5, (0xFFFF, 0xFF)));
        assert_eq!(
            got[..2],
            [
                InputEvent::TabletProximityOut { tool: ERASER },
                InputEvent::TabletProximityIn {
                    tool: PEN,
                    x: 375.0,
                    y: 375.0
                }
            ]
        );
        assert_eq!(got.last(), Some(&tip(PEN, true)));
        assert_eq!(
            m.map(&pen_with(0, 7, 0, (0.3, 0.3), 0.5, (0xFFFF, 0xFF))),
            [],
            "unknown tool type"
        );
    }

    #[test]
    fn pen_buttons_are_stylus_buttons() {
        let mut m = InputMapper::new(1280, 720);
        let button = |button, pressed| InputEvent::TabletButton {
            tool: PEN,
            button,
            pressed,
        };
        assert_eq!(
            m.map(&pen_with(5, 1, 1, (0.5, 0.5), 0.0, (0, 0))),
            [],
            "no tool in proximity"
        );
        let got = m.map(&pen_with(0, 1, 0x01, (0.5, 0.5), 0.0, (0xFFFF, 0xFF)));
        assert_eq!(got.last(), Some(&button(BTN_STYLUS, true)));
        // buttons only: position and axes are ignored
        assert_eq!(
            m.map(&pen_with(5, 1, 0x02, (f32::NAN, 9.0), f32::NAN, (0, 0))),
            [button(BTN_STYLUS, false), button(BTN_STYLUS2, true)]
        );
        assert_eq!(
            m.map(&pen_with(5, 1, 0x06 | 0x80, (0.0, 0.0), 0.0, (0, 0))),
            [button(BTN_STYLUS3, true)]
        );
        // Leaving releases what is held.
        assert_eq!(
            m.release_events(),
            [
                button(BTN_STYLUS2, false),
                button(BTN_STYLUS3, false),
                InputEvent::TabletProximityOut { tool: PEN }
            ]
        );
    }

    #[test]
    fn pen_cancel_leaves_without_lifting_and_lost_events_are_repaired() {
        let mut m = InputMapper::new(1920, 1080);
        m.map(&pen(1, 0.5, 0.5));
        assert_eq!(
            m.map(&pen(4, 0.0, 0.0)),
            [InputEvent::TabletProximityOut { tool: PEN }]
        );
        assert_eq!(
            m.map(&pen(7, 0.0, 0.0)),
            [],
            "cancel all with nothing in range"
        );
        // A move in contact after a lost down puts the tip down.
        let got = m.map(&pen(3, 0.5, 0.5));
        assert_eq!(got.last(), Some(&tip(PEN, true)));
        // A hover after a lost up lifts it.
        let got = m.map(&pen(0, 0.5, 0.5));
        assert_eq!(got[0], tip(PEN, false));
        assert_eq!(
            m.map(&pen(2, 0.5, 0.5)).len(),
            1,
            "up while hovering: motion only"
        );
    }

    #[test]
    fn bad_pen_values_are_dropped() {
        let mut m = InputMapper::new(1920, 1080);
        assert_eq!(m.map(&pen(1, f32::NAN, 0.1)), []);
        assert_eq!(m.map(&pen(1, 0.1, f32::NAN)), []);
        assert_eq!(m.map(&pen(0x42, 0.1, 0.1)), [], "unknown event type");
        assert!(m.pen.tool.is_none());
        // Out-of-range positions are clamped to the output's edges.
        assert_eq!(
            m.map(&pen(0, -3.0, 7.0))[0],
            InputEvent::TabletProximityIn {
                tool: PEN,
                x: 0.0,
                y: 1080.0
            }
        );
        // Bad pressure or distance: that axis is left out, the motion still goes.
        for value in [f32::NAN, -0.5, 1.5, f32::INFINITY] {
            let got = m.map(&pen_with(3, 1, 0, (0.5, 0.5), value, (0xFFFF, 0xFF)));
            let Some(InputEvent::TabletMotion { axes, .. }) = got.first() else {
                panic!("{got:?}");
            };
            assert_eq!(axes.pressure, None, "pressure {value}");
            let got = m.map(&pen_with(0, 1, 0, (0.5, 0.5), value, (0xFFFF, 0xFF)));
            let Some(InputEvent::TabletMotion { axes, .. }) = got
                .iter()
                .find(|e| matches!(e, InputEvent::TabletMotion { .. }))
            else {
                panic!("{got:?}");
            };
            assert_eq!(axes.distance, None, "distance {value}");
        }
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
