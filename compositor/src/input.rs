//! Input injection: the [`InputEvent`] enum and how each event reaches the seat.

use smithay::backend::input::{Axis, AxisSource, ButtonState, KeyState};
use smithay::input::keyboard::{FilterResult, Keycode};
use smithay::input::pointer::{AxisFrame, ButtonEvent, MotionEvent};
use smithay::utils::{Logical, Point, SERIAL_COUNTER};

use crate::state::State;

/// An input event for the compositor's seat.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A key changed state. `code` is a Linux evdev key code (`KEY_A` = 30).
    Key {
        /// evdev key code.
        code: u32,
        /// Pressed or released.
        pressed: bool,
    },
    /// The pointer moved to an absolute position in output pixel coordinates; positions outside
    /// the output are clamped to it.
    PointerMotionAbsolute {
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
    },
    /// The pointer moved by a delta in output pixels; the cursor moves too and stays inside the
    /// output.
    PointerMotionRelative {
        /// Horizontal delta, positive to the right.
        dx: f64,
        /// Vertical delta, positive downwards.
        dy: f64,
    },
    /// A button changed state. `button` is an evdev code (`BTN_LEFT` = 0x110, `BTN_RIGHT` =
    /// 0x111, `BTN_MIDDLE` = 0x112, ...).
    PointerButton {
        /// evdev button code.
        button: u32,
        /// Pressed or released.
        pressed: bool,
    },
    /// A scroll wheel moved, in Windows convention: 120 per detent, positive means the wheel
    /// turned away from the user (scroll up) or, for `horizontal`, tilted to the right.
    ///
    /// Wayland's vertical axis points down, so vertical values are negated on the way out;
    /// horizontal values keep their sign. Clients get `axis_value120` with that value and a
    /// continuous `axis` of 15 units per detent, like libinput reports a wheel.
    PointerAxis {
        /// Horizontal (tilt) wheel instead of the vertical one.
        horizontal: bool,
        /// Distance in 1/120 detents, Windows sign convention.
        value120: i32,
    },
    /// A finger touched the screen at a position in output pixel coordinates. The touch goes to
    /// the surface under it, in that surface's local coordinates, until [`InputEvent::TouchUp`].
    TouchDown {
        /// Touch point id, unique among the points currently down.
        id: u32,
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
    },
    /// A touch point that is down moved to a position in output pixel coordinates.
    TouchMotion {
        /// Touch point id from its [`InputEvent::TouchDown`].
        id: u32,
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
    },
    /// A touch point left the screen.
    TouchUp {
        /// Touch point id from its [`InputEvent::TouchDown`].
        id: u32,
    },
    /// Cancels every active touch point; clients undo whatever the touches started.
    TouchCancel,
    /// Types a string: each character is delivered as the keysym that produces it, pressing
    /// Shift or AltGr where the keymap needs them, and adding characters the keymap lacks to a
    /// temporary keymap for the duration of the string.
    Text {
        /// The text to type, any Unicode.
        text: String,
    },
}

/// Scroll distance of one wheel detent in Wayland `axis` units.
const AXIS_UNITS_PER_DETENT: f64 = 15.0;

/// evdev codes are offset by 8 in XKB keycodes.
const EVDEV_TO_XKB_OFFSET: u32 = 8;

/// Maps a Windows-convention wheel value to the Wayland axis and its signed v120 value.
pub(crate) fn wayland_axis(horizontal: bool, value120: i32) -> (Axis, i32) {
    if horizontal {
        (Axis::Horizontal, value120)
    } else {
        (Axis::Vertical, value120.saturating_neg())
    }
}

impl State {
    pub(crate) fn handle_input(&mut self, event: InputEvent) {
        let time = self.core.now_ms();
        match event {
            InputEvent::Key { code, pressed } => {
                let Some(keyboard) = self.core.seat.get_keyboard() else {
                    return;
                };
                let state = if pressed {
                    KeyState::Pressed
                } else {
                    KeyState::Released
                };
                let keycode = Keycode::new(code.saturating_add(EVDEV_TO_XKB_OFFSET));
                keyboard.input::<(), _>(
                    self,
                    keycode,
                    state,
                    SERIAL_COUNTER.next_serial(),
                    time,
                    |_, _, _| FilterResult::Forward,
                );
            }
            InputEvent::PointerMotionAbsolute { x, y } => {
                self.move_pointer_to((x, y).into(), time);
            }
            InputEvent::PointerMotionRelative { dx, dy } => {
                let target = self.core.pointer_location + Point::from((dx, dy));
                self.move_pointer_to(target, time);
            }
            InputEvent::PointerButton { button, pressed } => {
                let Some(pointer) = self.core.seat.get_pointer() else {
                    return;
                };
                let state = if pressed {
                    ButtonState::Pressed
                } else {
                    ButtonState::Released
                };
                let event = ButtonEvent {
                    serial: SERIAL_COUNTER.next_serial(),
                    time,
                    button,
                    state,
                };
                pointer.button(self, &event);
                pointer.frame(self);
            }
            InputEvent::PointerAxis {
                horizontal,
                value120,
            } => {
                let Some(pointer) = self.core.seat.get_pointer() else {
                    return;
                };
                let (axis, v120) = wayland_axis(horizontal, value120);
                let frame = AxisFrame::new(time)
                    .source(AxisSource::Wheel)
                    .v120(axis, v120)
                    .value(axis, f64::from(v120) * AXIS_UNITS_PER_DETENT / 120.0);
                pointer.axis(self, frame);
                pointer.frame(self);
            }
            InputEvent::TouchDown { .. }
            | InputEvent::TouchMotion { .. }
            | InputEvent::TouchUp { .. }
            | InputEvent::TouchCancel
            | InputEvent::Text { .. } => {
                tracing::debug!(?event, "input event not handled yet");
            }
        }
    }

    fn move_pointer_to(&mut self, location: Point<f64, Logical>, time: u32) {
        self.core.pointer_location = self.core.clamp_to_output(location);
        self.refresh_pointer_focus(time);
    }

    /// Re-sends the pointer position, so the pointer enters whatever surface is under it now.
    pub(crate) fn refresh_pointer_focus(&mut self, time: u32) {
        let Some(pointer) = self.core.seat.get_pointer() else {
            return;
        };
        let location = self.core.pointer_location;
        let focus = self.core.surface_under(location);
        let event = MotionEvent {
            location,
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        pointer.motion(self, focus, &event);
        pointer.frame(self);
    }
}

impl crate::state::Core {
    pub(crate) fn clamp_to_output(&self, p: Point<f64, Logical>) -> Point<f64, Logical> {
        let size = self.output_size();
        // Keep the cursor on a pixel: the right and bottom edges are exclusive.
        let max_x = (f64::from(size.w) - 1.0).max(0.0);
        let max_y = (f64::from(size.h) - 1.0).max(0.0);
        let x = if p.x.is_finite() {
            p.x.clamp(0.0, max_x)
        } else {
            0.0
        };
        let y = if p.y.is_finite() {
            p.y.clamp(0.0, max_y)
        } else {
            0.0
        };
        (x, y).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_up_is_negative_vertical_in_wayland() {
        assert_eq!(wayland_axis(false, 120), (Axis::Vertical, -120));
        assert_eq!(wayland_axis(false, -240), (Axis::Vertical, 240));
    }

    #[test]
    fn tilt_right_stays_positive_horizontal() {
        assert_eq!(wayland_axis(true, 120), (Axis::Horizontal, 120));
        assert_eq!(wayland_axis(true, -60), (Axis::Horizontal, -60));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert_eq!(wayland_axis(false, i32::MIN), (Axis::Vertical, i32::MAX));
    }
}
