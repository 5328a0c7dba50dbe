//! Pure mapping from Moonlight gamepad packets to evdev events and device descriptions.
//!
//! Nothing here touches a device: the functions take the previous and the new state and return
//! the events a real pad of the chosen [`Layout`] would report, so they can be tested anywhere.
//! Ranges follow the Linux drivers that games and SDL are tuned for: `xpad` for the Xbox 360 pad
//! (sticks −32768..32767 with Y pointing down, triggers 0..255, d-pad as a hat) and
//! `hid-playstation` for DualSense and DualShock 4 (sticks and triggers 0..255 with 128 in the
//! middle, a separate touchpad device and a separate motion-sensor device).

/// `EV_SYN`.
pub const EV_SYN: u16 = 0x00;
/// `EV_KEY`.
pub const EV_KEY: u16 = 0x01;
/// `EV_ABS`.
pub const EV_ABS: u16 = 0x03;
/// `EV_FF`.
pub const EV_FF: u16 = 0x15;
/// `SYN_REPORT`.
pub const SYN_REPORT: u16 = 0;

/// Absolute axis codes.
#[allow(missing_docs)]
pub mod abs {
    pub const X: u16 = 0x00;
    pub const Y: u16 = 0x01;
    pub const Z: u16 = 0x02;
    pub const RX: u16 = 0x03;
    pub const RY: u16 = 0x04;
    pub const RZ: u16 = 0x05;
    pub const HAT0X: u16 = 0x10;
    pub const HAT0Y: u16 = 0x11;
    pub const MT_SLOT: u16 = 0x2f;
    pub const MT_POSITION_X: u16 = 0x35;
    pub const MT_POSITION_Y: u16 = 0x36;
    pub const MT_TRACKING_ID: u16 = 0x39;
}

/// Key and button codes.
#[allow(missing_docs)]
pub mod btn {
    pub const LEFT: u16 = 0x110;
    pub const SOUTH: u16 = 0x130;
    pub const EAST: u16 = 0x131;
    pub const NORTH: u16 = 0x133;
    pub const WEST: u16 = 0x134;
    pub const TL: u16 = 0x136;
    pub const TR: u16 = 0x137;
    pub const TL2: u16 = 0x138;
    pub const TR2: u16 = 0x139;
    pub const SELECT: u16 = 0x13a;
    pub const START: u16 = 0x13b;
    pub const MODE: u16 = 0x13c;
    pub const THUMBL: u16 = 0x13d;
    pub const THUMBR: u16 = 0x13e;
    pub const TOOL_FINGER: u16 = 0x145;
    pub const TOUCH: u16 = 0x14a;
    pub const TOOL_DOUBLETAP: u16 = 0x14d;
    pub const TRIGGER_HAPPY5: u16 = 0x2c4;
    pub const TRIGGER_HAPPY6: u16 = 0x2c5;
    pub const TRIGGER_HAPPY7: u16 = 0x2c6;
    pub const TRIGGER_HAPPY8: u16 = 0x2c7;
    /// `KEY_RECORD`: the share button of newer Xbox pads (as `xpad` reports it).
    pub const RECORD: u16 = 167;
}

/// `INPUT_PROP_POINTER`.
pub const INPUT_PROP_POINTER: u16 = 0x00;
/// `INPUT_PROP_BUTTONPAD`.
pub const INPUT_PROP_BUTTONPAD: u16 = 0x02;
/// `INPUT_PROP_ACCELEROMETER`.
pub const INPUT_PROP_ACCELEROMETER: u16 = 0x06;

/// Moonlight button bits (`buttonFlags | buttonFlags2 << 16`).
#[allow(missing_docs)]
pub mod bits {
    pub const DPAD_UP: u32 = 0x0001;
    pub const DPAD_DOWN: u32 = 0x0002;
    pub const DPAD_LEFT: u32 = 0x0004;
    pub const DPAD_RIGHT: u32 = 0x0008;
    pub const START: u32 = 0x0010;
    pub const BACK: u32 = 0x0020;
    pub const LS_CLK: u32 = 0x0040;
    pub const RS_CLK: u32 = 0x0080;
    pub const LB: u32 = 0x0100;
    pub const RB: u32 = 0x0200;
    pub const HOME: u32 = 0x0400;
    pub const A: u32 = 0x1000;
    pub const B: u32 = 0x2000;
    pub const X: u32 = 0x4000;
    pub const Y: u32 = 0x8000;
    pub const PADDLE1: u32 = 0x01_0000;
    pub const PADDLE2: u32 = 0x02_0000;
    pub const PADDLE3: u32 = 0x04_0000;
    pub const PADDLE4: u32 = 0x08_0000;
    pub const TOUCHPAD: u32 = 0x10_0000;
    pub const MISC: u32 = 0x20_0000;
}

/// `LI_CTYPE_PS`.
pub const CONTROLLER_TYPE_PLAYSTATION: u8 = 0x02;

/// Standard gravity, for accelerometer values in m/s².
const STANDARD_GRAVITY: f32 = 9.806_65;
/// `hid-playstation`: accelerometer units per g.
const ACCEL_RES_PER_G: i32 = 8192;
/// `hid-playstation`: gyroscope units per degree per second.
const GYRO_RES_PER_DEG_S: i32 = 1024;
/// `hid-playstation`: gyroscope range, ±2048 °/s.
const GYRO_RANGE: i32 = 2048 * GYRO_RES_PER_DEG_S;
/// Accelerometer range, ±4 g.
const ACCEL_RANGE: i32 = 4 * ACCEL_RES_PER_G;

/// One evdev event: `type`, `code`, `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvdevEvent {
    /// `EV_*`.
    pub kind: u16,
    /// Key, axis or sync code.
    pub code: u16,
    /// Value.
    pub value: i32,
}

impl EvdevEvent {
    /// A key or button event.
    pub fn key(code: u16, pressed: bool) -> Self {
        Self {
            kind: EV_KEY,
            code,
            value: i32::from(pressed),
        }
    }
    /// An absolute axis event.
    pub fn abs(code: u16, value: i32) -> Self {
        Self {
            kind: EV_ABS,
            code,
            value,
        }
    }
    /// `SYN_REPORT`.
    pub fn syn() -> Self {
        Self {
            kind: EV_SYN,
            code: SYN_REPORT,
            value: 0,
        }
    }
}

/// Which real pad the virtual one imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Microsoft Xbox 360 pad (`xpad`).
    #[default]
    Xbox360,
    /// Sony DualSense (`hid-playstation`).
    DualSense,
    /// Sony DualShock 4 (`hid-playstation`).
    DualShock4,
}

impl Layout {
    /// The layout for a client's controller type; PlayStation pads become `playstation`.
    pub fn for_controller_type(controller_type: u8, playstation: Layout) -> Layout {
        if controller_type == CONTROLLER_TYPE_PLAYSTATION {
            playstation
        } else {
            Layout::Xbox360
        }
    }

    /// Whether the pad has a touchpad and motion sensors.
    pub fn is_playstation(self) -> bool {
        matches!(self, Layout::DualSense | Layout::DualShock4)
    }

    /// Touchpad size in device units.
    fn touchpad_size(self) -> (i32, i32) {
        match self {
            Layout::DualShock4 => (1920, 942),
            _ => (1920, 1080),
        }
    }
}

/// Which of a pad's devices an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Buttons, sticks, triggers, rumble.
    Main,
    /// The PlayStation touchpad.
    Touchpad,
    /// The PlayStation accelerometer and gyroscope.
    Motion,
}

/// An absolute axis of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsAxis {
    /// `ABS_*`.
    pub code: u16,
    /// Minimum.
    pub min: i32,
    /// Maximum.
    pub max: i32,
    /// Noise filter.
    pub fuzz: i32,
    /// Dead zone.
    pub flat: i32,
    /// Units per mm (touch), per g (accel) or per °/s (gyro).
    pub resolution: i32,
}

impl AbsAxis {
    fn new(code: u16, min: i32, max: i32) -> Self {
        Self {
            code,
            min,
            max,
            fuzz: 0,
            flat: 0,
            resolution: 0,
        }
    }
}

/// Everything needed to create one virtual input device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Which part of the pad this is.
    pub role: Role,
    /// Device name, as the real driver names it.
    pub name: String,
    /// USB vendor id.
    pub vendor: u16,
    /// USB product id.
    pub product: u16,
    /// Version (bcdDevice).
    pub version: u16,
    /// Keys and buttons.
    pub keys: Vec<u16>,
    /// Absolute axes.
    pub axes: Vec<AbsAxis>,
    /// `INPUT_PROP_*`.
    pub props: Vec<u16>,
    /// Whether games may play `FF_RUMBLE` effects on it.
    pub rumble: bool,
}

/// The devices a pad of `layout` consists of. `supported_buttons` (from the arrival packet; 0 when
/// unknown) adds the extra buttons of an Xbox pad that has them (paddles, share).
pub fn device_specs(layout: Layout, supported_buttons: u32) -> Vec<DeviceSpec> {
    let stick = |code| AbsAxis {
        code,
        min: -32768,
        max: 32767,
        fuzz: 16,
        flat: 128,
        resolution: 0,
    };
    let byte_axis = |code| AbsAxis::new(code, 0, 255);
    let hat = |code| AbsAxis::new(code, -1, 1);
    match layout {
        Layout::Xbox360 => {
            let mut keys: Vec<u16> = button_map(layout).iter().map(|&(_, code)| code).collect();
            keys.retain(|&c| {
                let bit = button_map(layout)
                    .iter()
                    .find(|&&(_, k)| k == c)
                    .map_or(0, |&(b, _)| b);
                bit & XBOX_EXTRA_BUTTONS == 0 || supported_buttons & bit != 0
            });
            vec![DeviceSpec {
                role: Role::Main,
                name: "Microsoft X-Box 360 pad".into(),
                vendor: 0x045e,
                product: 0x028e,
                version: 0x0114,
                keys,
                axes: vec![
                    stick(abs::X),
                    stick(abs::Y),
                    byte_axis(abs::Z),
                    stick(abs::RX),
                    stick(abs::RY),
                    byte_axis(abs::RZ),
                    hat(abs::HAT0X),
                    hat(abs::HAT0Y),
                ],
                props: vec![],
                rumble: true,
            }]
        }
        Layout::DualSense | Layout::DualShock4 => {
            let (name, product) = if layout == Layout::DualSense {
                (
                    "Sony Interactive Entertainment DualSense Wireless Controller",
                    0x0ce6,
                )
            } else {
                ("Sony Interactive Entertainment Wireless Controller", 0x09cc)
            };
            let mut keys: Vec<u16> = button_map(layout).iter().map(|&(_, code)| code).collect();
            keys.extend([btn::TL2, btn::TR2]);
            let (tw, th) = layout.touchpad_size();
            let gyro = |code| AbsAxis {
                code,
                min: -GYRO_RANGE,
                max: GYRO_RANGE,
                fuzz: 16,
                flat: 0,
                resolution: GYRO_RES_PER_DEG_S,
            };
            let accel = |code| AbsAxis {
                code,
                min: -ACCEL_RANGE,
                max: ACCEL_RANGE,
                fuzz: 4,
                flat: 0,
                resolution: ACCEL_RES_PER_G,
            };
            vec![
                DeviceSpec {
                    role: Role::Main,
                    name: name.into(),
                    vendor: 0x054c,
                    product,
                    version: 0x8111,
                    keys,
                    axes: [abs::X, abs::Y, abs::Z, abs::RX, abs::RY, abs::RZ]
                        .into_iter()
                        .map(byte_axis)
                        .chain([hat(abs::HAT0X), hat(abs::HAT0Y)])
                        .collect(),
                    props: vec![],
                    rumble: true,
                },
                DeviceSpec {
                    role: Role::Touchpad,
                    name: format!("{name} Touchpad"),
                    vendor: 0x054c,
                    product,
                    version: 0x8111,
                    keys: vec![btn::LEFT, btn::TOUCH, btn::TOOL_FINGER, btn::TOOL_DOUBLETAP],
                    axes: vec![
                        AbsAxis::new(abs::MT_SLOT, 0, TOUCHPAD_SLOTS as i32 - 1),
                        AbsAxis::new(abs::MT_TRACKING_ID, 0, 65535),
                        AbsAxis::new(abs::MT_POSITION_X, 0, tw - 1),
                        AbsAxis::new(abs::MT_POSITION_Y, 0, th - 1),
                    ],
                    props: vec![INPUT_PROP_POINTER, INPUT_PROP_BUTTONPAD],
                    rumble: false,
                },
                DeviceSpec {
                    role: Role::Motion,
                    name: format!("{name} Motion Sensors"),
                    vendor: 0x054c,
                    product,
                    version: 0x8111,
                    keys: vec![],
                    axes: vec![
                        accel(abs::X),
                        accel(abs::Y),
                        accel(abs::Z),
                        gyro(abs::RX),
                        gyro(abs::RY),
                        gyro(abs::RZ),
                    ],
                    props: vec![INPUT_PROP_ACCELEROMETER],
                    rumble: false,
                },
            ]
        }
    }
}

/// Xbox buttons advertised only when the client's pad has them.
const XBOX_EXTRA_BUTTONS: u32 =
    bits::PADDLE1 | bits::PADDLE2 | bits::PADDLE3 | bits::PADDLE4 | bits::MISC;

/// Button bit to evdev code on the main device, per layout.
pub fn button_map(layout: Layout) -> &'static [(u32, u16)] {
    const XBOX: &[(u32, u16)] = &[
        (bits::A, btn::SOUTH),
        (bits::B, btn::EAST),
        (bits::X, btn::NORTH), // xpad: BTN_X, which is BTN_NORTH's value
        (bits::Y, btn::WEST),  // xpad: BTN_Y
        (bits::LB, btn::TL),
        (bits::RB, btn::TR),
        (bits::BACK, btn::SELECT),
        (bits::START, btn::START),
        (bits::HOME, btn::MODE),
        (bits::LS_CLK, btn::THUMBL),
        (bits::RS_CLK, btn::THUMBR),
        (bits::PADDLE1, btn::TRIGGER_HAPPY5),
        (bits::PADDLE2, btn::TRIGGER_HAPPY6),
        (bits::PADDLE3, btn::TRIGGER_HAPPY7),
        (bits::PADDLE4, btn::TRIGGER_HAPPY8),
        (bits::MISC, btn::RECORD),
    ];
    const PLAYSTATION: &[(u32, u16)] = &[
        (bits::A, btn::SOUTH), // cross
        (bits::B, btn::EAST),  // circle
        (bits::X, btn::WEST),  // square
        (bits::Y, btn::NORTH), // triangle
        (bits::LB, btn::TL),
        (bits::RB, btn::TR),
        (bits::BACK, btn::SELECT), // create / share
        (bits::START, btn::START), // options
        (bits::HOME, btn::MODE),   // PS
        (bits::LS_CLK, btn::THUMBL),
        (bits::RS_CLK, btn::THUMBR),
    ];
    match layout {
        Layout::Xbox360 => XBOX,
        Layout::DualSense | Layout::DualShock4 => PLAYSTATION,
    }
}

/// A gamepad's state as the main device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PadState {
    /// Moonlight button bits.
    pub buttons: u32,
    /// Left trigger 0..255.
    pub left_trigger: u8,
    /// Right trigger 0..255.
    pub right_trigger: u8,
    /// Left stick X, + right.
    pub left_x: i16,
    /// Left stick Y, + up (XInput convention).
    pub left_y: i16,
    /// Right stick X.
    pub right_x: i16,
    /// Right stick Y, + up.
    pub right_y: i16,
}

impl From<&protocol::input::ControllerState> for PadState {
    fn from(s: &protocol::input::ControllerState) -> Self {
        Self {
            buttons: s.buttons,
            left_trigger: s.left_trigger,
            right_trigger: s.right_trigger,
            left_x: s.left_stick_x,
            left_y: s.left_stick_y,
            right_x: s.right_stick_x,
            right_y: s.right_stick_y,
        }
    }
}

/// The events that take a pad of `layout` from `prev` to `next`, by device. `prev` of `None`
/// reports every axis (a new device). Each device's events end with `SYN_REPORT`; a device
/// without changes gets none.
pub fn state_events(
    layout: Layout,
    prev: Option<&PadState>,
    next: &PadState,
) -> Vec<(Role, EvdevEvent)> {
    let mut main = Vec::new();
    let old_buttons = prev.map_or(0, |p| p.buttons);
    for &(bit, code) in button_map(layout) {
        if (old_buttons ^ next.buttons) & bit != 0 {
            main.push(EvdevEvent::key(code, next.buttons & bit != 0));
        }
    }
    let axes = |s: &PadState| -> Vec<(u16, i32)> {
        let mut v = match layout {
            Layout::Xbox360 => vec![
                (abs::X, i32::from(s.left_x)),
                (abs::Y, flip_y(s.left_y)),
                (abs::RX, i32::from(s.right_x)),
                (abs::RY, flip_y(s.right_y)),
            ],
            Layout::DualSense | Layout::DualShock4 => vec![
                (abs::X, stick_to_byte(i32::from(s.left_x))),
                (abs::Y, stick_to_byte(flip_y(s.left_y))),
                (abs::RX, stick_to_byte(i32::from(s.right_x))),
                (abs::RY, stick_to_byte(flip_y(s.right_y))),
            ],
        };
        v.push((abs::Z, i32::from(s.left_trigger)));
        v.push((abs::RZ, i32::from(s.right_trigger)));
        v.push((
            abs::HAT0X,
            hat(s.buttons, bits::DPAD_LEFT, bits::DPAD_RIGHT),
        ));
        v.push((abs::HAT0Y, hat(s.buttons, bits::DPAD_UP, bits::DPAD_DOWN)));
        v
    };
    let new_axes = axes(next);
    let old_axes = prev.map(axes);
    for (i, &(code, value)) in new_axes.iter().enumerate() {
        if old_axes.as_ref().is_none_or(|o| o[i].1 != value) {
            main.push(EvdevEvent::abs(code, value));
        }
    }
    if layout.is_playstation() {
        // hid-playstation reports L2/R2 as buttons too; the pad sets them on any travel.
        let old = prev.copied().unwrap_or_default();
        if (old.left_trigger > 0) != (next.left_trigger > 0) {
            main.push(EvdevEvent::key(btn::TL2, next.left_trigger > 0));
        }
        if (old.right_trigger > 0) != (next.right_trigger > 0) {
            main.push(EvdevEvent::key(btn::TR2, next.right_trigger > 0));
        }
    }
    let mut out: Vec<(Role, EvdevEvent)> = Vec::new();
    if !main.is_empty() {
        main.push(EvdevEvent::syn());
        out.extend(main.into_iter().map(|e| (Role::Main, e)));
    }
    if layout.is_playstation() && (old_buttons ^ next.buttons) & bits::TOUCHPAD != 0 {
        out.push((
            Role::Touchpad,
            EvdevEvent::key(btn::LEFT, next.buttons & bits::TOUCHPAD != 0),
        ));
        out.push((Role::Touchpad, EvdevEvent::syn()));
    }
    out
}

/// XInput Y (+ up) to evdev Y (+ down); −(−32768) does not fit and becomes 32767.
fn flip_y(y: i16) -> i32 {
    (-i32::from(y)).min(32767)
}

/// −32768..32767 to 0..255 with 0 at 128.
fn stick_to_byte(v: i32) -> i32 {
    (v + 32768) >> 8
}

fn hat(buttons: u32, negative: u32, positive: u32) -> i32 {
    i32::from(buttons & positive != 0) - i32::from(buttons & negative != 0)
}

/// How many fingers the PlayStation touchpad tracks.
pub const TOUCHPAD_SLOTS: usize = 2;

/// Multi-touch slot bookkeeping of a PlayStation touchpad.
#[derive(Debug, Clone, Default)]
pub struct Touchpad {
    slots: [Option<u32>; TOUCHPAD_SLOTS],
    next_tracking_id: i32,
}

impl Touchpad {
    /// Events for one controller touch packet (`LI_TOUCH_EVENT_*`, normalised 0..1 position).
    /// Unknown contacts, NaN positions and a third finger are dropped.
    pub fn handle(
        &mut self,
        layout: Layout,
        event_type: u8,
        pointer_id: u32,
        x: f32,
        y: f32,
    ) -> Vec<EvdevEvent> {
        let before = self.count();
        let mut out = Vec::new();
        let (w, h) = layout.touchpad_size();
        let position = |x: f32, y: f32| -> Option<(i32, i32)> {
            if x.is_nan() || y.is_nan() {
                return None;
            }
            let px = (x.clamp(0.0, 1.0) * (w - 1) as f32).round() as i32;
            let py = (y.clamp(0.0, 1.0) * (h - 1) as f32).round() as i32;
            Some((px, py))
        };
        let slot_of =
            |slots: &[Option<u32>; TOUCHPAD_SLOTS], id| slots.iter().position(|s| *s == Some(id));
        match event_type {
            // down, or a move/hover of a finger already down
            0x00 | 0x01 | 0x03 => {
                let Some((px, py)) = position(x, y) else {
                    return vec![];
                };
                let slot = match slot_of(&self.slots, pointer_id) {
                    Some(s) => s,
                    None if event_type == 0x01 => {
                        let Some(s) = self.slots.iter().position(Option::is_none) else {
                            return vec![];
                        };
                        self.slots[s] = Some(pointer_id);
                        out.push(EvdevEvent::abs(abs::MT_SLOT, s as i32));
                        out.push(EvdevEvent::abs(abs::MT_TRACKING_ID, self.next_tracking_id));
                        self.next_tracking_id = (self.next_tracking_id + 1) & 0xFFFF;
                        out.push(EvdevEvent::abs(abs::MT_POSITION_X, px));
                        out.push(EvdevEvent::abs(abs::MT_POSITION_Y, py));
                        s
                    }
                    None => return vec![],
                };
                if out.is_empty() {
                    out.push(EvdevEvent::abs(abs::MT_SLOT, slot as i32));
                    out.push(EvdevEvent::abs(abs::MT_POSITION_X, px));
                    out.push(EvdevEvent::abs(abs::MT_POSITION_Y, py));
                }
            }
            // up, or cancel of one finger
            0x02 | 0x04 => {
                let Some(slot) = slot_of(&self.slots, pointer_id) else {
                    return vec![];
                };
                self.slots[slot] = None;
                out.push(EvdevEvent::abs(abs::MT_SLOT, slot as i32));
                out.push(EvdevEvent::abs(abs::MT_TRACKING_ID, -1));
            }
            // cancel all
            0x07 => out.extend(self.release_all_slots()),
            _ => return vec![],
        }
        out.extend(self.finger_keys(before));
        out.push(EvdevEvent::syn());
        out
    }

    /// Lifts every finger (for a pad that goes away).
    pub fn release_all(&mut self) -> Vec<EvdevEvent> {
        let before = self.count();
        let mut out = self.release_all_slots();
        if out.is_empty() {
            return out;
        }
        out.extend(self.finger_keys(before));
        out.push(EvdevEvent::syn());
        out
    }

    fn release_all_slots(&mut self) -> Vec<EvdevEvent> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.take().is_some() {
                out.push(EvdevEvent::abs(abs::MT_SLOT, i as i32));
                out.push(EvdevEvent::abs(abs::MT_TRACKING_ID, -1));
            }
        }
        out
    }

    fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn finger_keys(&self, before: usize) -> Vec<EvdevEvent> {
        let after = self.count();
        let mut out = Vec::new();
        if (before > 0) != (after > 0) {
            out.push(EvdevEvent::key(btn::TOUCH, after > 0));
        }
        if (before == 1) != (after == 1) {
            out.push(EvdevEvent::key(btn::TOOL_FINGER, after == 1));
        }
        if (before == 2) != (after == 2) {
            out.push(EvdevEvent::key(btn::TOOL_DOUBLETAP, after == 2));
        }
        out
    }
}

/// `LI_MOTION_TYPE_ACCEL`.
pub const MOTION_ACCEL: u8 = 0x01;
/// `LI_MOTION_TYPE_GYRO`.
pub const MOTION_GYRO: u8 = 0x02;

/// Events for a motion report on the motion-sensor device: acceleration in m/s² (gravity
/// included) to `ABS_X/Y/Z` in 1/8192 g, rotation in °/s to `ABS_RX/RY/RZ` in 1/1024 °/s. `None`
/// for an unknown sensor or a NaN value.
pub fn motion_events(motion_type: u8, x: f32, y: f32, z: f32) -> Option<Vec<EvdevEvent>> {
    if x.is_nan() || y.is_nan() || z.is_nan() {
        return None;
    }
    let (codes, scale, range) = match motion_type {
        MOTION_ACCEL => (
            [abs::X, abs::Y, abs::Z],
            ACCEL_RES_PER_G as f32 / STANDARD_GRAVITY,
            ACCEL_RANGE,
        ),
        MOTION_GYRO => (
            [abs::RX, abs::RY, abs::RZ],
            GYRO_RES_PER_DEG_S as f32,
            GYRO_RANGE,
        ),
        _ => return None,
    };
    let mut out: Vec<EvdevEvent> = codes
        .iter()
        .zip([x, y, z])
        .map(|(&code, v)| {
            let v = (v * scale).round().clamp(-range as f32, range as f32) as i32;
            EvdevEvent::abs(code, v)
        })
        .collect();
    out.push(EvdevEvent::syn());
    Some(out)
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
