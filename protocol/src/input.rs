//! Input packets carried in control messages of type 0x0206, and the VK to evdev key table.
//!
//! Every packet starts with `BE32 size` (bytes after this field) and `LE32 magic` (the packet
//! type). The fields that follow mix byte orders the way the original protocol does: mouse
//! coordinates, deltas and scroll amounts are big-endian, key codes, gamepad fields and all
//! extension packets (magic `0x55xxxxxx`) little-endian, floats little-endian IEEE 754.
//!
//! [`InputPacket::parse`] checks that `size` matches the buffer exactly and that the packet has
//! the fixed length of its type, and returns a typed [`InputPacket`]; anything else is an
//! [`InputError`]. Values are passed on as sent (floats may be out of range or NaN; clamp or drop
//! them where they are applied), except where the wire encoding itself is undone: key codes are
//! masked to their VK byte and the absolute-mouse reference size gets back the 1 the client
//! subtracted.
//!
//! [`vk_to_evdev`] maps the Windows virtual-key codes clients send (US-layout positions) to Linux
//! evdev key codes; [`MouseButton::evdev_code`] does the same for mouse buttons.

use thiserror::Error;

/// Magic of a key-down packet.
pub const MAGIC_KEY_DOWN: u32 = 0x0000_0003;
/// Magic of a key-up packet.
pub const MAGIC_KEY_UP: u32 = 0x0000_0004;
/// Magic of an absolute mouse position.
pub const MAGIC_MOUSE_MOVE_ABS: u32 = 0x0000_0005;
/// Magic of a relative mouse move.
pub const MAGIC_MOUSE_MOVE_REL: u32 = 0x0000_0007;
/// Magic of a mouse button press.
pub const MAGIC_MOUSE_BUTTON_DOWN: u32 = 0x0000_0008;
/// Magic of a mouse button release.
pub const MAGIC_MOUSE_BUTTON_UP: u32 = 0x0000_0009;
/// Magic of a vertical scroll.
pub const MAGIC_SCROLL: u32 = 0x0000_000A;
/// Magic of a multi-controller state.
pub const MAGIC_MULTI_CONTROLLER: u32 = 0x0000_000C;
/// Magic of enable-haptics.
pub const MAGIC_HAPTICS: u32 = 0x0000_000D;
/// Magic of UTF-8 text.
pub const MAGIC_UTF8: u32 = 0x0000_0017;
/// Magic of a horizontal scroll.
pub const MAGIC_HSCROLL: u32 = 0x5500_0001;
/// Magic of a touch event.
pub const MAGIC_TOUCH: u32 = 0x5500_0002;
/// Magic of a pen event.
pub const MAGIC_PEN: u32 = 0x5500_0003;
/// Magic of a controller arrival.
pub const MAGIC_CONTROLLER_ARRIVAL: u32 = 0x5500_0004;
/// Magic of a controller touchpad event.
pub const MAGIC_CONTROLLER_TOUCH: u32 = 0x5500_0005;
/// Magic of a controller motion report.
pub const MAGIC_CONTROLLER_MOTION: u32 = 0x5500_0006;
/// Magic of a controller battery report.
pub const MAGIC_CONTROLLER_BATTERY: u32 = 0x5500_0007;

/// Most UTF-8 bytes one text packet may carry.
pub const MAX_UTF8_LEN: usize = 32;

/// Modifier bit: Shift.
pub const MODIFIER_SHIFT: u8 = 0x01;
/// Modifier bit: Ctrl.
pub const MODIFIER_CTRL: u8 = 0x02;
/// Modifier bit: Alt.
pub const MODIFIER_ALT: u8 = 0x04;
/// Modifier bit: Meta (Windows key).
pub const MODIFIER_META: u8 = 0x08;
/// Key flag: the VK is layout-specific rather than a US-layout position.
pub const KEY_FLAG_NON_NORMALIZED: u8 = 0x01;

/// Errors from parsing an input packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// Shorter than the 8-byte header.
    #[error("input packet too short: {0} bytes")]
    TooShort(usize),
    /// The `size` field disagrees with the buffer.
    #[error("input size field {declared} does not match {actual} bytes after it")]
    SizeMismatch {
        /// The `size` field.
        declared: usize,
        /// Bytes after the field.
        actual: usize,
    },
    /// The packet is not the fixed length of its type.
    #[error("input packet {magic:#010x} is {got} bytes, expected {expected}")]
    BadLength {
        /// The packet type.
        magic: u32,
        /// Fixed total length of that type.
        expected: usize,
        /// Total length received.
        got: usize,
    },
    /// A type this host does not know.
    #[error("unknown input packet {0:#010x}")]
    UnknownMagic(u32),
    /// A mouse button number outside 1..=5.
    #[error("invalid mouse button {0}")]
    InvalidButton(u8),
    /// An absolute move with a zero or negative reference size.
    #[error("invalid absolute mouse reference size")]
    InvalidReferenceSize,
    /// Text that is empty, too long or not UTF-8.
    #[error("invalid utf-8 text")]
    InvalidText,
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseButton {
    /// Button 1.
    Left,
    /// Button 2.
    Middle,
    /// Button 3.
    Right,
    /// Button 4 (back).
    X1,
    /// Button 5 (forward).
    X2,
}

impl MouseButton {
    /// The button for its wire number 1..=5.
    pub fn from_wire(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Left,
            2 => Self::Middle,
            3 => Self::Right,
            4 => Self::X1,
            5 => Self::X2,
            _ => return None,
        })
    }

    /// Linux evdev code (`BTN_LEFT`, `BTN_MIDDLE`, `BTN_RIGHT`, `BTN_SIDE`, `BTN_EXTRA`).
    pub fn evdev_code(self) -> u16 {
        match self {
            Self::Left => 0x110,
            Self::Right => 0x111,
            Self::Middle => 0x112,
            Self::X1 => 0x113,
            Self::X2 => 0x114,
        }
    }
}

/// One parsed input packet.
#[derive(Debug, Clone, PartialEq)]
pub enum InputPacket {
    /// A key went down.
    KeyDown {
        /// Windows virtual-key code (US-layout position unless flagged otherwise).
        vk: u8,
        /// `MODIFIER_*` bits held at the time.
        modifiers: u8,
        /// `KEY_FLAG_*` bits.
        flags: u8,
    },
    /// A key went up.
    KeyUp {
        /// Windows virtual-key code.
        vk: u8,
        /// `MODIFIER_*` bits held at the time.
        modifiers: u8,
        /// `KEY_FLAG_*` bits.
        flags: u8,
    },
    /// Relative pointer motion (positive y is down).
    MouseMoveRel {
        /// Horizontal delta.
        dx: i16,
        /// Vertical delta.
        dy: i16,
    },
    /// Absolute pointer position within a reference area: the host position is
    /// `x / (ref_width - 1) * output_width`, clamped.
    MouseMoveAbs {
        /// Horizontal position, 0..ref_width - 1.
        x: i16,
        /// Vertical position, 0..ref_height - 1.
        y: i16,
        /// Width of the client's reference area (the wire value + 1).
        ref_width: u16,
        /// Height of the client's reference area (the wire value + 1).
        ref_height: u16,
    },
    /// A mouse button changed.
    MouseButton {
        /// Which button.
        button: MouseButton,
        /// Whether it is now pressed.
        pressed: bool,
    },
    /// Vertical wheel, 120 per notch, positive away from the user (up).
    ScrollVertical {
        /// Amount in 1/120 notches.
        amount: i16,
    },
    /// Horizontal wheel, 120 per notch, positive right.
    ScrollHorizontal {
        /// Amount in 1/120 notches.
        amount: i16,
    },
    /// One code point of text.
    Utf8Text(String),
    /// Complete state of one gamepad.
    MultiController(ControllerState),
    /// The client is ready for rumble.
    EnableHaptics,
    /// A gamepad was connected, with its type and capabilities.
    ControllerArrival {
        /// Controller number 0..15.
        controller: u8,
        /// `LI_CTYPE_*`: 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo, 4 Steam.
        controller_type: u8,
        /// `LI_CCAP_*` bits.
        capabilities: u16,
        /// Button bits the pad has (layout of [`ControllerState::buttons`]).
        supported_buttons: u32,
    },
    /// A touch-screen contact.
    Touch {
        /// `LI_TOUCH_EVENT_*`: 0 hover, 1 down, 2 up, 3 move, 4 cancel, 6 hover leave, 7 cancel all.
        event_type: u8,
        /// Degrees from vertical, 0xFFFF unknown.
        rotation: u16,
        /// Contact identifier, constant from down to up.
        pointer_id: u32,
        /// 0..1 from the left of the video area.
        x: f32,
        /// 0..1 from the top.
        y: f32,
        /// Pressure (down/move) or distance (hover), 0..1.
        pressure_or_distance: f32,
        /// Contact ellipse major axis, normalized; 0 unknown.
        contact_area_major: f32,
        /// Contact ellipse minor axis, normalized.
        contact_area_minor: f32,
    },
    /// A pen event.
    Pen {
        /// Same table as touch, plus 5 = buttons only.
        event_type: u8,
        /// 0 unknown, 1 pen, 2 eraser.
        tool_type: u8,
        /// 0x01 primary, 0x02 secondary, 0x04 tertiary.
        pen_buttons: u8,
        /// 0..1 from the left.
        x: f32,
        /// 0..1 from the top.
        y: f32,
        /// Pressure or distance, 0..1.
        pressure_or_distance: f32,
        /// Degrees, 0xFFFF unknown.
        rotation: u16,
        /// Degrees from perpendicular, 0xFF unknown.
        tilt: u8,
        /// Contact ellipse major axis.
        contact_area_major: f32,
        /// Contact ellipse minor axis.
        contact_area_minor: f32,
    },
    /// A touch on a gamepad's touchpad.
    ControllerTouch {
        /// Controller number.
        controller: u8,
        /// Touch event type.
        event_type: u8,
        /// 0 or 1 (second pad of dual-touchpad controllers).
        touchpad: u8,
        /// Contact identifier.
        pointer_id: u32,
        /// 0..1.
        x: f32,
        /// 0..1.
        y: f32,
        /// 0..1.
        pressure: f32,
    },
    /// A motion sensor report.
    ControllerMotion {
        /// Controller number.
        controller: u8,
        /// 1 accelerometer (m/s²), 2 gyroscope (deg/s).
        motion_type: u8,
        /// X axis.
        x: f32,
        /// Y axis.
        y: f32,
        /// Z axis.
        z: f32,
    },
    /// A gamepad's battery state.
    ControllerBattery {
        /// Controller number.
        controller: u8,
        /// 0 unknown, 1 not present, 2 discharging, 3 charging, 4 not charging, 5 full.
        state: u8,
        /// 0..100, 0xFF unknown.
        percentage: u8,
    },
}

/// A full gamepad snapshot (multi-controller packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerState {
    /// Controller number 0..15.
    pub controller: u16,
    /// Bit n set: controller n is present. A cleared own bit means this pad was removed.
    pub active_mask: u16,
    /// 32 button bits: low 16 from the classic field, high 16 from the extension field.
    pub buttons: u32,
    /// Left trigger 0..255.
    pub left_trigger: u8,
    /// Right trigger 0..255.
    pub right_trigger: u8,
    /// Left stick X, positive right.
    pub left_stick_x: i16,
    /// Left stick Y, positive **up**.
    pub left_stick_y: i16,
    /// Right stick X.
    pub right_stick_x: i16,
    /// Right stick Y, positive up.
    pub right_stick_y: i16,
}

impl InputPacket {
    /// Parses one input packet (the whole payload of a 0x0206 control message).
    pub fn parse(buf: &[u8]) -> Result<Self, InputError> {
        if buf.len() < 8 {
            return Err(InputError::TooShort(buf.len()));
        }
        let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if declared != buf.len() - 4 {
            return Err(InputError::SizeMismatch {
                declared,
                actual: buf.len() - 4,
            });
        }
        let magic = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let r = Reader(buf);
        let fixed = |expected: usize| {
            if buf.len() == expected {
                Ok(())
            } else {
                Err(InputError::BadLength {
                    magic,
                    expected,
                    got: buf.len(),
                })
            }
        };
        Ok(match magic {
            MAGIC_KEY_DOWN | MAGIC_KEY_UP => {
                fixed(14)?;
                let (flags, vk, modifiers) = (r.u8(8), (r.le16(9) & 0xFF) as u8, r.u8(11));
                if magic == MAGIC_KEY_DOWN {
                    Self::KeyDown {
                        vk,
                        modifiers,
                        flags,
                    }
                } else {
                    Self::KeyUp {
                        vk,
                        modifiers,
                        flags,
                    }
                }
            }
            MAGIC_MOUSE_MOVE_REL => {
                fixed(12)?;
                Self::MouseMoveRel {
                    dx: r.be16(8) as i16,
                    dy: r.be16(10) as i16,
                }
            }
            MAGIC_MOUSE_MOVE_ABS => {
                fixed(18)?;
                let (w, h) = (r.be16(14) as i16, r.be16(16) as i16);
                if w <= 0 || h <= 0 {
                    return Err(InputError::InvalidReferenceSize);
                }
                Self::MouseMoveAbs {
                    x: r.be16(8) as i16,
                    y: r.be16(10) as i16,
                    ref_width: w as u16 + 1,
                    ref_height: h as u16 + 1,
                }
            }
            MAGIC_MOUSE_BUTTON_DOWN | MAGIC_MOUSE_BUTTON_UP => {
                fixed(9)?;
                let button =
                    MouseButton::from_wire(r.u8(8)).ok_or(InputError::InvalidButton(r.u8(8)))?;
                Self::MouseButton {
                    button,
                    pressed: magic == MAGIC_MOUSE_BUTTON_DOWN,
                }
            }
            MAGIC_SCROLL => {
                fixed(14)?;
                Self::ScrollVertical {
                    amount: r.be16(8) as i16,
                }
            }
            MAGIC_HSCROLL => {
                fixed(10)?;
                Self::ScrollHorizontal {
                    amount: r.be16(8) as i16,
                }
            }
            MAGIC_UTF8 => {
                let text = &buf[8..];
                if text.is_empty() || text.len() > MAX_UTF8_LEN {
                    return Err(InputError::InvalidText);
                }
                let s = std::str::from_utf8(text).map_err(|_| InputError::InvalidText)?;
                Self::Utf8Text(s.to_owned())
            }
            MAGIC_MULTI_CONTROLLER => {
                fixed(34)?;
                Self::MultiController(ControllerState {
                    controller: r.le16(10),
                    active_mask: r.le16(12),
                    buttons: r.le16(16) as u32 | (r.le16(30) as u32) << 16,
                    left_trigger: r.u8(18),
                    right_trigger: r.u8(19),
                    left_stick_x: r.le16(20) as i16,
                    left_stick_y: r.le16(22) as i16,
                    right_stick_x: r.le16(24) as i16,
                    right_stick_y: r.le16(26) as i16,
                })
            }
            MAGIC_HAPTICS => {
                fixed(10)?;
                Self::EnableHaptics
            }
            MAGIC_CONTROLLER_ARRIVAL => {
                fixed(16)?;
                Self::ControllerArrival {
                    controller: r.u8(8),
                    controller_type: r.u8(9),
                    capabilities: r.le16(10),
                    supported_buttons: r.le32(12),
                }
            }
            MAGIC_TOUCH => {
                fixed(36)?;
                Self::Touch {
                    event_type: r.u8(8),
                    rotation: r.le16(10),
                    pointer_id: r.le32(12),
                    x: r.f32(16),
                    y: r.f32(20),
                    pressure_or_distance: r.f32(24),
                    contact_area_major: r.f32(28),
                    contact_area_minor: r.f32(32),
                }
            }
            MAGIC_PEN => {
                fixed(36)?;
                Self::Pen {
                    event_type: r.u8(8),
                    tool_type: r.u8(9),
                    pen_buttons: r.u8(10),
                    x: r.f32(12),
                    y: r.f32(16),
                    pressure_or_distance: r.f32(20),
                    rotation: r.le16(24),
                    tilt: r.u8(26),
                    contact_area_major: r.f32(28),
                    contact_area_minor: r.f32(32),
                }
            }
            MAGIC_CONTROLLER_TOUCH => {
                fixed(28)?;
                Self::ControllerTouch {
                    controller: r.u8(8),
                    event_type: r.u8(9),
                    touchpad: r.u8(11),
                    pointer_id: r.le32(12),
                    x: r.f32(16),
                    y: r.f32(20),
                    pressure: r.f32(24),
                }
            }
            MAGIC_CONTROLLER_MOTION => {
                fixed(24)?;
                Self::ControllerMotion {
                    controller: r.u8(8),
                    motion_type: r.u8(9),
                    x: r.f32(12),
                    y: r.f32(16),
                    z: r.f32(20),
                }
            }
            MAGIC_CONTROLLER_BATTERY => {
                fixed(12)?;
                Self::ControllerBattery {
                    controller: r.u8(8),
                    state: r.u8(9),
                    percentage: r.u8(10),
                }
            }
            other => return Err(InputError::UnknownMagic(other)),
        })
    }
}

/// Reads fields at offsets the caller has length-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&self, o: usize) -> u8 {
        self.0[o]
    }
    fn le16(&self, o: usize) -> u16 {
        u16::from_le_bytes([self.0[o], self.0[o + 1]])
    }
    fn be16(&self, o: usize) -> u16 {
        u16::from_be_bytes([self.0[o], self.0[o + 1]])
    }
    fn le32(&self, o: usize) -> u32 {
        u32::from_le_bytes([self.0[o], self.0[o + 1], self.0[o + 2], self.0[o + 3]])
    }
    fn f32(&self, o: usize) -> f32 {
        f32::from_bits(self.le32(o))
    }
}

/// Linux evdev key code for a Windows virtual-key code, `None` for keys without one.
///
/// Covers the union of the reference hosts' tables, plus choices of this host for keys they leave
/// out: VK_CONVERT → KEY_HENKAN, VK_NONCONVERT → KEY_MUHENKAN, VK_APPS → KEY_COMPOSE and the
/// browser keys 0xA6..=0xAC. Generic modifiers (0x10..=0x12) map to the left-hand keys.
pub fn vk_to_evdev(vk: u8) -> Option<u16> {
    // evdev codes of 'A'..='Z' (QWERTY positions, not alphabetical).
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    // KEY_KP0..KEY_KP9.
    const NUMPAD: [u16; 10] = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73];
    // KEY_F1..KEY_F12.
    const F1_F12: [u16; 12] = [59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 87, 88];
    Some(match vk {
        0x08 => 14,  // KEY_BACKSPACE
        0x09 => 15,  // KEY_TAB
        0x0C => 355, // KEY_CLEAR
        0x0D => 28,  // KEY_ENTER
        0x10 => 42,  // KEY_LEFTSHIFT
        0x11 => 29,  // KEY_LEFTCTRL
        0x12 => 56,  // KEY_LEFTALT
        0x13 => 119, // KEY_PAUSE
        0x14 => 58,  // KEY_CAPSLOCK
        0x15 => 93,  // KEY_KATAKANAHIRAGANA
        0x16 => 122, // KEY_HANGEUL
        0x17 => 123, // KEY_HANJA
        0x19 => 90,  // KEY_KATAKANA
        0x1B => 1,   // KEY_ESC
        0x1C => 92,  // KEY_HENKAN
        0x1D => 94,  // KEY_MUHENKAN
        0x20 => 57,  // KEY_SPACE
        0x21 => 104, // KEY_PAGEUP
        0x22 => 109, // KEY_PAGEDOWN
        0x23 => 107, // KEY_END
        0x24 => 102, // KEY_HOME
        0x25 => 105, // KEY_LEFT
        0x26 => 103, // KEY_UP
        0x27 => 106, // KEY_RIGHT
        0x28 => 108, // KEY_DOWN
        0x29 => 353, // KEY_SELECT
        0x2A => 210, // KEY_PRINT
        0x2C => 99,  // KEY_SYSRQ
        0x2D => 110, // KEY_INSERT
        0x2E => 111, // KEY_DELETE
        0x2F => 138, // KEY_HELP
        0x30 => 11,  // KEY_0
        0x31..=0x39 => (vk - 0x31) as u16 + 2,
        0x41..=0x5A => LETTERS[(vk - 0x41) as usize],
        0x5B => 125, // KEY_LEFTMETA
        0x5C => 126, // KEY_RIGHTMETA
        0x5D => 127, // KEY_COMPOSE
        0x5F => 142, // KEY_SLEEP
        0x60..=0x69 => NUMPAD[(vk - 0x60) as usize],
        0x6A => 55,  // KEY_KPASTERISK
        0x6B => 78,  // KEY_KPPLUS
        0x6C => 121, // KEY_KPCOMMA
        0x6D => 74,  // KEY_KPMINUS
        0x6E => 83,  // KEY_KPDOT
        0x6F => 98,  // KEY_KPSLASH
        0x70..=0x7B => F1_F12[(vk - 0x70) as usize],
        0x7C..=0x87 => (vk - 0x7C) as u16 + 183, // KEY_F13..KEY_F24
        0x90 => 69,                              // KEY_NUMLOCK
        0x91 => 70,                              // KEY_SCROLLLOCK
        0xA0 => 42,                              // KEY_LEFTSHIFT
        0xA1 => 54,                              // KEY_RIGHTSHIFT
        0xA2 => 29,                              // KEY_LEFTCTRL
        0xA3 => 97,                              // KEY_RIGHTCTRL
        0xA4 => 56,                              // KEY_LEFTALT
        0xA5 => 100,                             // KEY_RIGHTALT
        0xA6 => 158,                             // KEY_BACK
        0xA7 => 159,                             // KEY_FORWARD
        0xA8 => 173,                             // KEY_REFRESH
        0xA9 => 128,                             // KEY_STOP
        0xAA => 217,                             // KEY_SEARCH
        0xAB => 156,                             // KEY_BOOKMARKS
        0xAC => 172,                             // KEY_HOMEPAGE
        0xBA => 39,                              // KEY_SEMICOLON
        0xBB => 13,                              // KEY_EQUAL
        0xBC => 51,                              // KEY_COMMA
        0xBD => 12,                              // KEY_MINUS
        0xBE => 52,                              // KEY_DOT
        0xBF => 53,                              // KEY_SLASH
        0xC0 => 41,                              // KEY_GRAVE
        0xDB => 26,                              // KEY_LEFTBRACE
        0xDC => 43,                              // KEY_BACKSLASH
        0xDD => 27,                              // KEY_RIGHTBRACE
        0xDE => 40,                              // KEY_APOSTROPHE
        0xE2 => 86,                              // KEY_102ND
        _ => return None,
    })
}
