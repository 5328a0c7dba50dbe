//! Input injection: the [`InputEvent`] enum and how each event reaches the seat.

use std::collections::HashMap;

use smithay::backend::input::{Axis, AxisSource, ButtonState, KeyState};
use smithay::input::keyboard::{FilterResult, Keycode};
use smithay::input::pointer::{AxisFrame, ButtonEvent, MotionEvent, RelativeMotionEvent};
use smithay::input::touch::{DownEvent, MotionEvent as TouchMotionEvent, UpEvent};
use smithay::input::Seat;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::DisplayHandle;
use smithay::utils::{Logical, Point, SERIAL_COUNTER};
use smithay::wayland::compositor::RegionAttributes;
use smithay::wayland::pointer_constraints::{
    with_pointer_constraint, PointerConstraint, PointerConstraintsState,
};
use smithay::wayland::relative_pointer::RelativePointerManagerState;
use tracing::{debug, trace};

use crate::cursor::CursorState;
use crate::scaling::View;
use crate::state::{State, Under};
use crate::tablet::TabletState;

/// Seat state beyond Smithay's seat: pointer protocols, touch points and the cursor.
pub(crate) struct InputState {
    _relative_pointer: RelativePointerManagerState,
    _pointer_constraints: PointerConstraintsState,
    /// The touch points that are down, by id, with their last position and the coordinates
    /// of the window they went down on.
    touch_points: HashMap<u32, (Point<f64, Logical>, View)>,
    /// The coordinates of the window the pointer is over, or, while a button is held, of the
    /// one it was pressed on (see [`crate::scaling::Placement::input`]).
    pointer_input: View,
    pub(crate) cursor: CursorState,
    /// The pen tablet and its tools.
    pub(crate) tablet: TabletState,
}

impl InputState {
    pub(crate) fn new(dh: &DisplayHandle, seat: &Seat<State>) -> Self {
        Self {
            _relative_pointer: RelativePointerManagerState::new::<State>(dh),
            _pointer_constraints: PointerConstraintsState::new::<State>(dh),
            touch_points: HashMap::new(),
            pointer_input: View::default(),
            cursor: CursorState::default(),
            tablet: TabletState::new(dh, seat),
        }
    }
}

/// An active pointer constraint on the surface under the pointer.
enum Constraint {
    Locked,
    /// Confined to the surface, inside the region if there is one.
    Confined(Under, Option<RegionAttributes>),
}

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
    /// A tablet tool came into proximity of the tablet at a position in output pixel
    /// coordinates. It enters the surface under it; another tool in proximity leaves first.
    TabletProximityIn {
        /// The tool.
        tool: TabletTool,
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
    },
    /// A tablet tool left proximity; a tip that is still down is lifted first.
    TabletProximityOut {
        /// The tool.
        tool: TabletTool,
    },
    /// A tablet tool moved to a position in output pixel coordinates, with the axes that
    /// changed. A tool not in proximity comes into proximity. The tool follows the surface
    /// under it, leaving one surface and entering the next like the pointer.
    TabletMotion {
        /// The tool.
        tool: TabletTool,
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
        /// Pressure, distance, tilt and rotation, where they changed.
        axes: TabletAxes,
    },
    /// The tip of a tool in proximity touched the tablet or left it.
    ///
    /// A client without tablet support sees the tip as a touch point while it is down.
    TabletTip {
        /// The tool.
        tool: TabletTool,
        /// Touching or lifted.
        down: bool,
    },
    /// A button on a tool in proximity changed state. `button` is an evdev code (`BTN_STYLUS`
    /// = 0x14b, `BTN_STYLUS2` = 0x14c, `BTN_STYLUS3` = 0x149).
    TabletButton {
        /// The tool.
        tool: TabletTool,
        /// evdev button code.
        button: u32,
        /// Pressed or released.
        pressed: bool,
    },
}

/// A tool of the virtual pen tablet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TabletTool {
    /// The pen's tip.
    Pen,
    /// The pen's eraser end, or an eraser.
    Eraser,
}

/// Tablet tool axes in `zwp_tablet_tool_v2` units; `None` leaves an axis as it was.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TabletAxes {
    /// Pressure of the tip, 0 (none) ..= 65535 (full).
    pub pressure: Option<u16>,
    /// Distance from the tablet, 0 (touching) ..= 65535 (farthest detectable).
    pub distance: Option<u16>,
    /// Tilt in degrees from the tablet's normal, (x, y), each -90..=90: positive when the top
    /// of the tool leans to the right (x) or towards the bottom of the output (y).
    pub tilt: Option<(f64, f64)>,
    /// Rotation about the tool's own axis in degrees, clockwise, 0..360.
    pub rotation: Option<f64>,
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
            InputEvent::PointerMotionAbsolute { x, y } => match self.active_constraint() {
                Some(Constraint::Locked) => trace!("pointer locked, absolute motion ignored"),
                Some(Constraint::Confined(under, region)) => {
                    let target = self.core.clamp_to_output((x, y).into());
                    if self.inside_confinement(&under.surface, region.as_ref(), target) {
                        self.move_pointer_to(target, time);
                    }
                }
                None => self.move_pointer_to((x, y).into(), time),
            },
            InputEvent::PointerMotionRelative { dx, dy } => {
                self.relative_motion(dx, dy, time);
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
                let grabbed = pointer.is_grabbed();
                pointer.button(self, &event);
                pointer.frame(self);
                if grabbed && !pointer.is_grabbed() {
                    // The grab of a held button ended over another window, perhaps scaled
                    // otherwise: give the pointer to what is under it, in its coordinates.
                    self.refresh_pointer_focus(time);
                }
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
            InputEvent::TouchDown { id, x, y } => self.touch_down(id, x, y, time),
            InputEvent::TouchMotion { id, x, y } => self.touch_motion(id, x, y, time),
            InputEvent::TouchUp { id } => self.touch_up(id, time),
            InputEvent::TouchCancel => self.touch_cancel(),
            InputEvent::Text { text } => self.type_text(&text),
            InputEvent::TabletProximityIn { tool, x, y } => {
                self.tablet_proximity_in(tool, x, y, time)
            }
            InputEvent::TabletProximityOut { tool } => self.tablet_proximity_out(tool, time),
            InputEvent::TabletMotion { tool, x, y, axes } => {
                self.tablet_motion(tool, x, y, axes, time)
            }
            InputEvent::TabletTip { tool, down } => self.tablet_tip(tool, down, time),
            InputEvent::TabletButton {
                tool,
                button,
                pressed,
            } => self.tablet_button(tool, button, pressed, time),
        }
    }

    fn move_pointer_to(&mut self, location: Point<f64, Logical>, time: u32) {
        self.core.pointer_location = self.core.clamp_to_output(location);
        self.core.input.cursor.moved = true;
        self.refresh_pointer_focus(time);
        self.activate_pointer_constraint();
        if self.core.input.cursor.show {
            self.queue_redraw();
        }
    }

    /// The active constraint of the surface under the pointer, if the pointer is inside its
    /// region.
    fn active_constraint(&self) -> Option<Constraint> {
        let pointer = self.core.seat.get_pointer()?;
        let location = self.core.pointer_location;
        let under = self.core.surface_under(location)?;
        with_pointer_constraint(&under.surface, &pointer, |constraint| {
            let constraint = constraint.filter(|c| c.is_active())?;
            let local = under.local(location).to_i32_round::<i32>();
            if !constraint.region().is_none_or(|r| r.contains(local)) {
                return None;
            }
            Some(match &*constraint {
                PointerConstraint::Locked(_) => Constraint::Locked,
                PointerConstraint::Confined(_) => {
                    Constraint::Confined(under.clone(), constraint.region().cloned())
                }
            })
        })
    }

    /// Activates the constraint of the surface under the pointer, if it has one and the
    /// pointer is inside its region. Smithay deactivates it when the surface loses focus.
    pub(crate) fn activate_pointer_constraint(&mut self) {
        let Some(pointer) = self.core.seat.get_pointer() else {
            return;
        };
        let location = self.core.pointer_location;
        let Some(under) = self.core.surface_under(location) else {
            return;
        };
        if pointer.current_focus().as_ref() != Some(&under.surface) {
            return;
        }
        with_pointer_constraint(&under.surface, &pointer, |constraint| {
            let Some(constraint) = constraint else {
                return;
            };
            if constraint.is_active() {
                return;
            }
            let local = under.local(location).to_i32_round::<i32>();
            if constraint.region().is_none_or(|r| r.contains(local)) {
                debug!("pointer constraint activated");
                constraint.activate();
            }
        });
    }

    fn inside_confinement(
        &self,
        surface: &WlSurface,
        region: Option<&RegionAttributes>,
        target: Point<f64, Logical>,
    ) -> bool {
        self.core.surface_under(target).is_some_and(|under| {
            &under.surface == surface
                && region.is_none_or(|r| r.contains(under.local(target).to_i32_round::<i32>()))
        })
    }

    /// Relative motion: relative-pointer events always; the cursor moves unless the pointer
    /// is locked, and stays inside the region of a confined pointer.
    fn relative_motion(&mut self, dx: f64, dy: f64, time: u32) {
        let Some(pointer) = self.core.seat.get_pointer() else {
            return;
        };
        if !dx.is_finite() || !dy.is_finite() {
            debug!(dx, dy, "relative motion with a non-finite delta dropped");
            return;
        }
        let location = self.core.pointer_location;
        let constraint = self.active_constraint();
        let focus = self.core.surface_under(location).map(|u| u.focus());
        let delta = Point::from((dx, dy));
        let event = RelativeMotionEvent {
            delta,
            delta_unaccel: delta,
            utime: self.core.start_time.elapsed().as_micros() as u64,
        };
        pointer.relative_motion(self, focus, &event);
        match constraint {
            Some(Constraint::Locked) => pointer.frame(self),
            Some(Constraint::Confined(under, region)) => {
                let target = self.core.clamp_to_output(location + delta);
                let candidates = [
                    target,
                    (target.x, location.y).into(),
                    (location.x, target.y).into(),
                ];
                let inside = candidates
                    .into_iter()
                    .find(|&p| self.inside_confinement(&under.surface, region.as_ref(), p));
                match inside {
                    Some(p) => self.move_pointer_to(p, time),
                    None => pointer.frame(self),
                }
            }
            None => self.move_pointer_to(location + delta, time),
        }
    }

    pub(crate) fn touch_down(&mut self, id: u32, x: f64, y: f64, time: u32) {
        let Some(touch) = self.core.seat.get_touch() else {
            return;
        };
        if self.core.input.touch_points.contains_key(&id) {
            debug!(id, "touch down for a point that is already down, dropped");
            return;
        }
        let location = self.core.clamp_to_output((x, y).into());
        let under = self.core.surface_under(location);
        // The point stays in the coordinates of the window it went down on.
        let input = under.as_ref().map(|u| u.input).unwrap_or_default();
        self.core.input.touch_points.insert(id, (location, input));
        let event = DownEvent {
            slot: Some(id).into(),
            location: input.to_window(location),
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        touch.down(self, under.map(|u| u.focus()), &event);
        touch.frame(self);
    }

    pub(crate) fn touch_motion(&mut self, id: u32, x: f64, y: f64, time: u32) {
        let Some(touch) = self.core.seat.get_touch() else {
            return;
        };
        let location = self.core.clamp_to_output((x, y).into());
        let Some(last) = self.core.input.touch_points.get_mut(&id) else {
            debug!(id, "touch motion for a point that is not down, dropped");
            return;
        };
        last.0 = location;
        let input = last.1;
        let focus = self.core.surface_under(location).map(|u| u.focus());
        let event = TouchMotionEvent {
            slot: Some(id).into(),
            location: input.to_window(location),
            time,
        };
        touch.motion(self, focus, &event);
        touch.frame(self);
    }

    pub(crate) fn touch_up(&mut self, id: u32, time: u32) {
        let Some(touch) = self.core.seat.get_touch() else {
            return;
        };
        if self.core.input.touch_points.remove(&id).is_none() {
            debug!(id, "touch up for a point that is not down, dropped");
            return;
        }
        let event = UpEvent {
            slot: Some(id).into(),
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        touch.up(self, &event);
        touch.frame(self);
    }

    pub(crate) fn touch_cancel(&mut self) {
        let Some(touch) = self.core.seat.get_touch() else {
            return;
        };
        let points: Vec<_> = self.core.input.touch_points.drain().collect();
        if points.is_empty() {
            return;
        }
        // Smithay only cancels points with events since their last frame, so every point gets
        // a motion to where it already is first; the cancel follows without a frame between.
        let time = self.core.now_ms();
        for (id, (location, input)) in points {
            let event = TouchMotionEvent {
                slot: Some(id).into(),
                location: input.to_window(location),
                time,
            };
            touch.motion(self, None, &event);
        }
        touch.cancel(self);
    }

    /// Re-sends the pointer position, so the pointer enters whatever surface is under it now.
    pub(crate) fn refresh_pointer_focus(&mut self, time: u32) {
        let Some(pointer) = self.core.seat.get_pointer() else {
            return;
        };
        let location = self.core.pointer_location;
        let under = self.core.surface_under(location);
        // While a button is held the window it was pressed on keeps the pointer (Smithay's
        // grab), and positions stay in that window's coordinates.
        if !pointer.is_grabbed() {
            self.core.input.pointer_input = under.as_ref().map(|u| u.input).unwrap_or_default();
        }
        let event = MotionEvent {
            location: self.core.input.pointer_input.to_window(location),
            serial: SERIAL_COUNTER.next_serial(),
            time,
        };
        pointer.motion(self, under.map(|u| u.focus()), &event);
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
