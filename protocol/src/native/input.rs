//! Input events, sent by the client as QUIC datagrams on the control connection.
//!
//! A datagram holds one or more events back to back:
//!
//! ```text
//! event = u8 kind ‖ u8 length ‖ body (length bytes, little-endian fields)
//! ```
//!
//! The length lets a decoder skip a kind it does not know and ignore fields appended to a body
//! in a later version. A body shorter than its kind needs, or with a value out of range, is
//! malformed: [`decode`] yields an error for that event and goes on with the next.
//!
//! | kind | event | body |
//! |-----:|-------|------|
//! | 1 | [`InputEvent::Key`] | `u16` evdev key code, `u8` 1 down / 0 up |
//! | 2 | [`InputEvent::Text`] | `u8` length, UTF-8 (at most [`MAX_TEXT_LEN`] bytes) |
//! | 3 | [`InputEvent::PointerAbs`] | `f32` x, `f32` y in the stream mode's pixels |
//! | 4 | [`InputEvent::PointerRel`] | `f32` dx, `f32` dy in pixels |
//! | 5 | [`InputEvent::Button`] | `u8` [`Button`], `u8` 1 down / 0 up |
//! | 6 | [`InputEvent::Scroll`] | `i16` dx, `i16` dy in 1/120 notches |
//! | 7 | [`InputEvent::Touch`] | `u32` id, `u8` [`TouchPhase`], `f32` x, `f32` y |
//! | 8 | [`InputEvent::Gamepad`] | `u8` index, `u32` buttons, `u8` ×2 triggers, `i16` ×4 sticks |
//!
//! Coordinates are finite `f32`s; NaN and infinities are malformed.

use thiserror::Error;

/// Longest text event in bytes.
pub const MAX_TEXT_LEN: usize = 240;

/// Errors of the input codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InputError {
    /// The datagram ends inside an event's kind and length, or inside the body the length
    /// announces. Nothing after it can be read.
    #[error("input datagram truncated")]
    Truncated,
    /// An event's body is shorter than its kind needs.
    #[error("input event {kind} too short: {len} bytes")]
    ShortBody {
        /// The event kind.
        kind: u8,
        /// Its body length.
        len: usize,
    },
    /// A field with a value out of range.
    #[error("invalid {field} in input event {kind}")]
    InvalidValue {
        /// The event kind.
        kind: u8,
        /// Which field.
        field: &'static str,
    },
    /// Text that is not UTF-8.
    #[error("input text is not utf-8")]
    Utf8,
    /// Text over [`MAX_TEXT_LEN`] bytes.
    #[error("input text of {0} bytes is too long")]
    TextTooLong(usize),
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    /// Left (wire value 1).
    Left,
    /// Middle (2).
    Middle,
    /// Right (3).
    Right,
    /// Side, "back" (4).
    Side,
    /// Extra, "forward" (5).
    Extra,
}

impl Button {
    fn wire(self) -> u8 {
        match self {
            Button::Left => 1,
            Button::Middle => 2,
            Button::Right => 3,
            Button::Side => 4,
            Button::Extra => 5,
        }
    }

    fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            1 => Button::Left,
            2 => Button::Middle,
            3 => Button::Right,
            4 => Button::Side,
            5 => Button::Extra,
            _ => return None,
        })
    }
}

/// The phase of a touch contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchPhase {
    /// The contact begins (wire value 0).
    Down,
    /// The contact moves (1).
    Move,
    /// The contact ends (2).
    Up,
    /// The contact is cancelled; undo what it did if possible (3).
    Cancel,
}

impl TouchPhase {
    fn wire(self) -> u8 {
        match self {
            TouchPhase::Down => 0,
            TouchPhase::Move => 1,
            TouchPhase::Up => 2,
            TouchPhase::Cancel => 3,
        }
    }

    fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            0 => TouchPhase::Down,
            1 => TouchPhase::Move,
            2 => TouchPhase::Up,
            3 => TouchPhase::Cancel,
            _ => return None,
        })
    }
}

/// The full state of one gamepad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GamepadState {
    /// Which gamepad (0 for the first).
    pub index: u8,
    /// Pressed buttons, a set of the `gamepad::*` bits.
    pub buttons: u32,
    /// Left trigger, 0 released to 255 fully pressed.
    pub left_trigger: u8,
    /// Right trigger.
    pub right_trigger: u8,
    /// Left stick x, negative left.
    pub left_x: i16,
    /// Left stick y, negative down.
    pub left_y: i16,
    /// Right stick x.
    pub right_x: i16,
    /// Right stick y.
    pub right_y: i16,
}

/// The bits of [`GamepadState::buttons`] (an Xbox-style layout).
pub mod gamepad {
    /// D-pad up.
    pub const DPAD_UP: u32 = 1 << 0;
    /// D-pad down.
    pub const DPAD_DOWN: u32 = 1 << 1;
    /// D-pad left.
    pub const DPAD_LEFT: u32 = 1 << 2;
    /// D-pad right.
    pub const DPAD_RIGHT: u32 = 1 << 3;
    /// Start / menu.
    pub const START: u32 = 1 << 4;
    /// Back / view.
    pub const BACK: u32 = 1 << 5;
    /// Left stick click.
    pub const LEFT_STICK: u32 = 1 << 6;
    /// Right stick click.
    pub const RIGHT_STICK: u32 = 1 << 7;
    /// Left shoulder.
    pub const LEFT_SHOULDER: u32 = 1 << 8;
    /// Right shoulder.
    pub const RIGHT_SHOULDER: u32 = 1 << 9;
    /// Guide / home.
    pub const GUIDE: u32 = 1 << 10;
    /// A (south).
    pub const A: u32 = 1 << 12;
    /// B (east).
    pub const B: u32 = 1 << 13;
    /// X (west).
    pub const X: u32 = 1 << 14;
    /// Y (north).
    pub const Y: u32 = 1 << 15;
    /// Back paddle 1.
    pub const PADDLE1: u32 = 1 << 16;
    /// Back paddle 2.
    pub const PADDLE2: u32 = 1 << 17;
    /// Back paddle 3.
    pub const PADDLE3: u32 = 1 << 18;
    /// Back paddle 4.
    pub const PADDLE4: u32 = 1 << 19;
    /// Touchpad click.
    pub const TOUCHPAD: u32 = 1 << 20;
    /// Share / capture / misc.
    pub const MISC: u32 = 1 << 21;
}

/// One input event.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A key went down or up.
    Key {
        /// Linux evdev key code (`KEY_A` = 30).
        code: u16,
        /// Pressed, or released.
        down: bool,
    },
    /// Text typed through an input method, to be entered as it is.
    Text(String),
    /// The pointer moved to a position in the stream mode's pixels.
    PointerAbs {
        /// From the left edge.
        x: f32,
        /// From the top edge.
        y: f32,
    },
    /// The pointer moved by a distance in pixels (for captured pointers).
    PointerRel {
        /// Rightwards.
        dx: f32,
        /// Downwards.
        dy: f32,
    },
    /// A mouse button went down or up.
    Button {
        /// Which.
        button: Button,
        /// Pressed, or released.
        down: bool,
    },
    /// A scroll, in 1/120 of a wheel notch (evdev's high-resolution wheel units).
    Scroll {
        /// Rightwards.
        dx: i16,
        /// Away from the user ("up"), as evdev's wheel axis counts.
        dy: i16,
    },
    /// A touch contact.
    Touch {
        /// Contact id, stable from `Down` to `Up` or `Cancel`.
        id: u32,
        /// What happened.
        phase: TouchPhase,
        /// Position in the stream mode's pixels, from the left.
        x: f32,
        /// From the top.
        y: f32,
    },
    /// The full state of a gamepad.
    Gamepad(GamepadState),
}

mod kind {
    pub(super) const KEY: u8 = 1;
    pub(super) const TEXT: u8 = 2;
    pub(super) const POINTER_ABS: u8 = 3;
    pub(super) const POINTER_REL: u8 = 4;
    pub(super) const BUTTON: u8 = 5;
    pub(super) const SCROLL: u8 = 6;
    pub(super) const TOUCH: u8 = 7;
    pub(super) const GAMEPAD: u8 = 8;
}

impl InputEvent {
    /// Appends the event to `out` (several events may share a datagram).
    ///
    /// Fails, leaving `out` as it was, for text over [`MAX_TEXT_LEN`] bytes or a coordinate that
    /// is not finite.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), InputError> {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        let r = self.write_body(out);
        if let Err(e) = r {
            out.truncate(start);
            return Err(e);
        }
        let (k, len) = (self.kind(), out.len() - start - 2);
        // Bodies are at most 1 + MAX_TEXT_LEN bytes.
        out[start] = k;
        out[start + 1] = len as u8;
        Ok(())
    }

    fn kind(&self) -> u8 {
        match self {
            InputEvent::Key { .. } => kind::KEY,
            InputEvent::Text(_) => kind::TEXT,
            InputEvent::PointerAbs { .. } => kind::POINTER_ABS,
            InputEvent::PointerRel { .. } => kind::POINTER_REL,
            InputEvent::Button { .. } => kind::BUTTON,
            InputEvent::Scroll { .. } => kind::SCROLL,
            InputEvent::Touch { .. } => kind::TOUCH,
            InputEvent::Gamepad(_) => kind::GAMEPAD,
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), InputError> {
        let k = self.kind();
        let finite = |v: f32, field| {
            if v.is_finite() {
                Ok(v.to_le_bytes())
            } else {
                Err(InputError::InvalidValue { kind: k, field })
            }
        };
        match self {
            InputEvent::Key { code, down } => {
                out.extend_from_slice(&code.to_le_bytes());
                out.push((*down).into());
            }
            InputEvent::Text(s) => {
                if s.len() > MAX_TEXT_LEN {
                    return Err(InputError::TextTooLong(s.len()));
                }
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            InputEvent::PointerAbs { x, y } => {
                out.extend_from_slice(&finite(*x, "x")?);
                out.extend_from_slice(&finite(*y, "y")?);
            }
            InputEvent::PointerRel { dx, dy } => {
                out.extend_from_slice(&finite(*dx, "dx")?);
                out.extend_from_slice(&finite(*dy, "dy")?);
            }
            InputEvent::Button { button, down } => {
                out.push(button.wire());
                out.push((*down).into());
            }
            InputEvent::Scroll { dx, dy } => {
                out.extend_from_slice(&dx.to_le_bytes());
                out.extend_from_slice(&dy.to_le_bytes());
            }
            InputEvent::Touch { id, phase, x, y } => {
                out.extend_from_slice(&id.to_le_bytes());
                out.push(phase.wire());
                out.extend_from_slice(&finite(*x, "x")?);
                out.extend_from_slice(&finite(*y, "y")?);
            }
            InputEvent::Gamepad(g) => {
                out.push(g.index);
                out.extend_from_slice(&g.buttons.to_le_bytes());
                out.push(g.left_trigger);
                out.push(g.right_trigger);
                for v in [g.left_x, g.left_y, g.right_x, g.right_y] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        Ok(())
    }

    /// Decodes one event body of kind `k`; `None` for a kind this version does not know.
    fn decode_body(k: u8, body: &[u8]) -> Option<Result<Self, InputError>> {
        let mut r = Body { b: body, kind: k };
        let event = match k {
            kind::KEY => (|| {
                Ok(InputEvent::Key {
                    code: r.u16()?,
                    down: r.bool("down")?,
                })
            })(),
            kind::TEXT => (|| {
                let len = r.u8()? as usize;
                if len > MAX_TEXT_LEN {
                    return Err(InputError::TextTooLong(len));
                }
                let bytes = r.take(len)?;
                let s = std::str::from_utf8(bytes).map_err(|_| InputError::Utf8)?;
                Ok(InputEvent::Text(s.to_owned()))
            })(),
            kind::POINTER_ABS => (|| {
                Ok(InputEvent::PointerAbs {
                    x: r.f32("x")?,
                    y: r.f32("y")?,
                })
            })(),
            kind::POINTER_REL => (|| {
                Ok(InputEvent::PointerRel {
                    dx: r.f32("dx")?,
                    dy: r.f32("dy")?,
                })
            })(),
            kind::BUTTON => (|| {
                let b = r.u8()?;
                Ok(InputEvent::Button {
                    button: Button::from_wire(b).ok_or(r.invalid("button"))?,
                    down: r.bool("down")?,
                })
            })(),
            kind::SCROLL => (|| {
                Ok(InputEvent::Scroll {
                    dx: r.i16()?,
                    dy: r.i16()?,
                })
            })(),
            kind::TOUCH => (|| {
                let id = r.u32()?;
                let p = r.u8()?;
                Ok(InputEvent::Touch {
                    id,
                    phase: TouchPhase::from_wire(p).ok_or(r.invalid("phase"))?,
                    x: r.f32("x")?,
                    y: r.f32("y")?,
                })
            })(),
            kind::GAMEPAD => (|| {
                Ok(InputEvent::Gamepad(GamepadState {
                    index: r.u8()?,
                    buttons: r.u32()?,
                    left_trigger: r.u8()?,
                    right_trigger: r.u8()?,
                    left_x: r.i16()?,
                    left_y: r.i16()?,
                    right_x: r.i16()?,
                    right_y: r.i16()?,
                }))
            })(),
            _ => return None,
        };
        Some(event)
    }
}

/// Decodes the events of one datagram, in order.
///
/// Events of unknown kinds are skipped; a malformed event yields its error and decoding goes on
/// with the next one. A datagram cut inside an event's kind, length or body yields
/// [`InputError::Truncated`] and ends there.
pub fn decode(datagram: &[u8]) -> InputEvents<'_> {
    InputEvents { rest: datagram }
}

/// Iterator over the events of one datagram; see [`decode`].
#[derive(Debug, Clone)]
pub struct InputEvents<'a> {
    rest: &'a [u8],
}

impl Iterator for InputEvents<'_> {
    type Item = Result<InputEvent, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let [k, len, rest @ ..] = self.rest else {
                if self.rest.is_empty() {
                    return None;
                }
                self.rest = &[];
                return Some(Err(InputError::Truncated));
            };
            let len = *len as usize;
            let Some(body) = rest.get(..len) else {
                self.rest = &[];
                return Some(Err(InputError::Truncated));
            };
            self.rest = &rest[len..];
            if let Some(event) = InputEvent::decode_body(*k, body) {
                return Some(event);
            }
        }
    }
}

struct Body<'a> {
    b: &'a [u8],
    kind: u8,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InputError> {
        if self.b.len() < n {
            return Err(InputError::ShortBody {
                kind: self.kind,
                len: self.b.len(),
            });
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InputError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, InputError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, InputError> {
        self.array().map(u16::from_le_bytes)
    }

    fn i16(&mut self) -> Result<i16, InputError> {
        self.array().map(i16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, InputError> {
        self.array().map(u32::from_le_bytes)
    }

    fn f32(&mut self, field: &'static str) -> Result<f32, InputError> {
        let v = f32::from_le_bytes(self.array()?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.invalid(field))
        }
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, InputError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid(field)),
        }
    }

    fn invalid(&self, field: &'static str) -> InputError {
        InputError::InvalidValue {
            kind: self.kind,
            field,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn every_event() -> Vec<InputEvent> {
        vec![
            InputEvent::Key {
                code: 30,
                down: true,
            },
            InputEvent::Key {
                code: 0x2ff,
                down: false,
            },
            InputEvent::Text("grüße ✓".into()),
            InputEvent::Text(String::new()),
            InputEvent::Text("x".repeat(MAX_TEXT_LEN)),
            InputEvent::PointerAbs { x: 1919.5, y: 0.25 },
            InputEvent::PointerRel { dx: -3.0, dy: 1e-3 },
            InputEvent::Button {
                button: Button::Left,
                down: true,
            },
            InputEvent::Button {
                button: Button::Extra,
                down: false,
            },
            InputEvent::Scroll { dx: 0, dy: -120 },
            InputEvent::Scroll {
                dx: i16::MIN,
                dy: i16::MAX,
            },
            InputEvent::Touch {
                id: 7,
                phase: TouchPhase::Move,
                x: 100.0,
                y: 200.0,
            },
            InputEvent::Touch {
                id: u32::MAX,
                phase: TouchPhase::Cancel,
                x: 0.0,
                y: 0.0,
            },
            InputEvent::Gamepad(GamepadState {
                index: 1,
                buttons: gamepad::A | gamepad::DPAD_LEFT | gamepad::MISC,
                left_trigger: 255,
                right_trigger: 3,
                left_x: -32768,
                left_y: 32767,
                right_x: 5,
                right_y: -5,
            }),
        ]
    }

    fn encoded(e: &InputEvent) -> Vec<u8> {
        let mut out = Vec::new();
        e.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn every_event_round_trips_alone_and_together() {
        let mut all = Vec::new();
        for e in every_event() {
            let b = encoded(&e);
            assert_eq!(b[1] as usize + 2, b.len());
            assert_eq!(decode(&b).collect::<Vec<_>>(), vec![Ok(e.clone())]);
            all.extend_from_slice(&b);
        }
        let got: Vec<InputEvent> = decode(&all).map(Result::unwrap).collect();
        assert_eq!(got, every_event());
    }

    #[test]
    fn bytes_are_as_documented() {
        assert_eq!(
            encoded(&InputEvent::Key {
                code: 30,
                down: true
            }),
            [1, 3, 30, 0, 1]
        );
        assert_eq!(
            encoded(&InputEvent::Scroll { dx: -1, dy: 120 }),
            [6, 4, 0xff, 0xff, 120, 0]
        );
        assert_eq!(
            encoded(&InputEvent::PointerAbs { x: 1.0, y: -2.0 }),
            [3, 8, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]
        );
        assert_eq!(
            encoded(&InputEvent::Gamepad(GamepadState::default())).len(),
            2 + 15
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_and_appended_fields_ignored() {
        let mut d = vec![0x99, 3, 1, 2, 3];
        // A Button event with one field more than this version knows.
        d.extend_from_slice(&[5, 3, 3, 1, 0xee]);
        d.extend_from_slice(&[0x42, 0]);
        assert_eq!(
            decode(&d).collect::<Vec<_>>(),
            vec![Ok(InputEvent::Button {
                button: Button::Right,
                down: true
            })]
        );
    }

    #[test]
    fn malformed_events_are_reported_and_the_rest_still_decodes() {
        let key = encoded(&InputEvent::Key {
            code: 1,
            down: true,
        });
        let mut d = Vec::new();
        d.extend_from_slice(&[1, 2, 30, 0]); // Key without its state
        d.extend_from_slice(&[5, 2, 9, 1]); // button 9
        d.extend_from_slice(&[5, 2, 1, 2]); // down = 2
        d.extend_from_slice(&[7, 13, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]); // phase 4
        d.extend_from_slice(&[3, 8, 0, 0, 0xc0, 0x7f, 0, 0, 0, 0]); // NaN
        d.extend_from_slice(&[2, 3, 2, 0xc3, 0x28]); // invalid UTF-8
        d.extend_from_slice(&[2, 2, 5, b'a']); // text longer than its body
        d.extend_from_slice(&key);
        d.extend_from_slice(&[1, 9, 0]); // body past the end
        let got: Vec<_> = decode(&d).collect();
        assert_eq!(
            got,
            vec![
                Err(InputError::ShortBody { kind: 1, len: 0 }),
                Err(InputError::InvalidValue {
                    kind: 5,
                    field: "button"
                }),
                Err(InputError::InvalidValue {
                    kind: 5,
                    field: "down"
                }),
                Err(InputError::InvalidValue {
                    kind: 7,
                    field: "phase"
                }),
                Err(InputError::InvalidValue {
                    kind: 3,
                    field: "x"
                }),
                Err(InputError::Utf8),
                Err(InputError::ShortBody { kind: 2, len: 1 }),
                Ok(InputEvent::Key {
                    code: 1,
                    down: true
                }),
                Err(InputError::Truncated),
            ]
        );
        assert_eq!(
            decode(&[1]).collect::<Vec<_>>(),
            vec![Err(InputError::Truncated)]
        );
    }

    /// Found by the `native_input` fuzz target: the decoder took text of 241 to 254 bytes that
    /// the encoder (and the wire format) refuse.
    #[test]
    fn the_decoder_refuses_text_over_the_limit() {
        for len in [MAX_TEXT_LEN + 1, 250, 254] {
            let mut datagram = vec![kind::TEXT, (len + 1) as u8, len as u8];
            datagram.extend(std::iter::repeat_n(b'a', len));
            let events: Vec<_> = decode(&datagram).collect();
            assert_eq!(events, [Err(InputError::TextTooLong(len))], "{len} bytes");
        }
        let mut datagram = vec![kind::TEXT, (MAX_TEXT_LEN + 1) as u8, MAX_TEXT_LEN as u8];
        datagram.extend(std::iter::repeat_n(b'a', MAX_TEXT_LEN));
        assert_eq!(
            decode(&datagram).collect::<Vec<_>>(),
            [Ok(InputEvent::Text("a".repeat(MAX_TEXT_LEN)))]
        );
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut out = vec![7];
        assert_eq!(
            InputEvent::Text("y".repeat(MAX_TEXT_LEN + 1)).encode(&mut out),
            Err(InputError::TextTooLong(MAX_TEXT_LEN + 1))
        );
        assert_eq!(
            InputEvent::PointerRel {
                dx: f32::INFINITY,
                dy: 0.0
            }
            .encode(&mut out),
            Err(InputError::InvalidValue {
                kind: 4,
                field: "dx"
            })
        );
        assert_eq!(out, [7]);
    }

    fn finite() -> impl Strategy<Value = f32> {
        any::<f32>().prop_filter("finite", |v| v.is_finite())
    }

    fn any_event() -> impl Strategy<Value = InputEvent> {
        prop_oneof![
            (any::<u16>(), any::<bool>()).prop_map(|(code, down)| InputEvent::Key { code, down }),
            "\\PC{0,60}".prop_filter_map("fits", |s: String| (s.len() <= MAX_TEXT_LEN)
                .then_some(InputEvent::Text(s))),
            (finite(), finite()).prop_map(|(x, y)| InputEvent::PointerAbs { x, y }),
            (finite(), finite()).prop_map(|(dx, dy)| InputEvent::PointerRel { dx, dy }),
            (1u8..=5, any::<bool>()).prop_map(|(b, down)| InputEvent::Button {
                button: Button::from_wire(b).unwrap(),
                down
            }),
            any::<(i16, i16)>().prop_map(|(dx, dy)| InputEvent::Scroll { dx, dy }),
            (any::<u32>(), 0u8..4, finite(), finite()).prop_map(|(id, p, x, y)| {
                InputEvent::Touch {
                    id,
                    phase: TouchPhase::from_wire(p).unwrap(),
                    x,
                    y,
                }
            }),
            (any::<(u8, u32, u8, u8)>(), any::<(i16, i16, i16, i16)>()).prop_map(
                |((index, buttons, lt, rt), (lx, ly, rx, ry))| {
                    InputEvent::Gamepad(GamepadState {
                        index,
                        buttons,
                        left_trigger: lt,
                        right_trigger: rt,
                        left_x: lx,
                        left_y: ly,
                        right_x: rx,
                        right_y: ry,
                    })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn events_round_trip(events in proptest::collection::vec(any_event(), 1..6)) {
            let mut d = Vec::new();
            for e in &events {
                e.encode(&mut d).unwrap();
            }
            let got: Vec<InputEvent> = decode(&d).map(Result::unwrap).collect();
            prop_assert_eq!(got, events);
        }

        #[test]
        fn random_bytes_never_panic(d in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Every event consumes at least its two header bytes, so this ends.
            prop_assert!(decode(&d).count() <= d.len() / 2 + 1);
        }
    }
}
