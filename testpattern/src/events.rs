//! The JSON lines printed on stdout, one per event.
//!
//! Lines are written field by field, `"event"` first and the other fields in the documented
//! order, so they read like the examples in `docs/testpattern.md`. Values go through
//! `serde_json`, which escapes strings and writes floats with a decimal point (`10.0`).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// One event line under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event(String);

impl Event {
    fn new(name: &str) -> Self {
        Self(String::from("{\"event\":")).field_value(name)
    }

    fn field_value(mut self, value: impl Serialize) -> Self {
        // Serialising a number, a bool or a string cannot fail.
        self.0
            .push_str(&serde_json::to_string(&value).unwrap_or_else(|_| "null".into()));
        self
    }

    fn field(mut self, key: &str, value: impl Serialize) -> Self {
        self.0.push(',');
        self = self.field_value(key);
        self.0.push(':');
        self.field_value(value)
    }

    /// The finished line, without the newline.
    pub(crate) fn line(&self) -> String {
        format!("{}}}", self.0)
    }
}

/// Whether event lines carry `t_ns` ([`crate::Options::timestamps`]).
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);

/// Turns the `t_ns` field on or off for every line printed from now on.
pub(crate) fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock other processes on the machine can compare with.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Prints one event as a JSON line and flushes at once, so a reader sees it while the pattern is
/// still running. A closed stdout is ignored: the pattern keeps drawing.
pub(crate) fn emit(mut event: Event) {
    if TIMESTAMPS.load(Ordering::Relaxed) {
        event = event.field("t_ns", monotonic_ns());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", event.line());
    let _ = out.flush();
}

/// The events; field names are the contract in `docs/testpattern.md`.
pub(crate) fn configure(width: u32, height: u32) -> Event {
    Event::new("configure")
        .field("width", width)
        .field("height", height)
}

pub(crate) fn ready(width: u32, height: u32) -> Event {
    Event::new("ready")
        .field("width", width)
        .field("height", height)
}

pub(crate) fn frame(n: u64) -> Event {
    Event::new("frame").field("n", n)
}

pub(crate) fn exit(frames: u64, reason: &str) -> Event {
    Event::new("exit")
        .field("frames", frames)
        .field("reason", reason)
}

pub(crate) fn keyboard_enter() -> Event {
    Event::new("keyboard_enter")
}

pub(crate) fn keyboard_leave() -> Event {
    Event::new("keyboard_leave")
}

pub(crate) fn key(key: u32, keysym: &str, utf8: &str, state: &str) -> Event {
    Event::new("key")
        .field("key", key)
        .field("keysym", keysym)
        .field("utf8", utf8)
        .field("state", state)
}

pub(crate) fn modifiers(depressed: u32, latched: u32, locked: u32, group: u32) -> Event {
    Event::new("modifiers")
        .field("depressed", depressed)
        .field("latched", latched)
        .field("locked", locked)
        .field("group", group)
}

pub(crate) fn pointer_enter(x: f64, y: f64) -> Event {
    Event::new("pointer_enter").field("x", x).field("y", y)
}

pub(crate) fn pointer_leave() -> Event {
    Event::new("pointer_leave")
}

pub(crate) fn pointer_motion(x: f64, y: f64) -> Event {
    Event::new("pointer_motion").field("x", x).field("y", y)
}

pub(crate) fn button(button: u32, state: &str) -> Event {
    Event::new("button")
        .field("button", button)
        .field("state", state)
}

/// A scroll on one axis, gathered over one `wl_pointer.frame`. `value120` only when the seat sent
/// `axis_value120` (wl_seat v8+), `source` only when it sent `axis_source`.
pub(crate) fn axis(axis: &str, value: f64, value120: Option<i32>, source: Option<&str>) -> Event {
    let mut event = Event::new("axis").field("axis", axis).field("value", value);
    if let Some(v) = value120 {
        event = event.field("value120", v);
    }
    if let Some(s) = source {
        event = event.field("source", s);
    }
    event
}

pub(crate) fn axis_stop(axis: &str) -> Event {
    Event::new("axis_stop").field("axis", axis)
}

pub(crate) fn relative_motion(dx: f64, dy: f64, dx_unaccel: f64, dy_unaccel: f64) -> Event {
    Event::new("relative_motion")
        .field("dx", dx)
        .field("dy", dy)
        .field("dx_unaccel", dx_unaccel)
        .field("dy_unaccel", dy_unaccel)
}

/// A tablet tool event without values (`tablet_proximity_in`, `tablet_down`, ...).
pub(crate) fn tablet(name: &str, tool: &str) -> Event {
    Event::new(name).field("tool", tool)
}

/// A tablet tool event with an x and a y (`tablet_motion`, `tablet_tilt`).
pub(crate) fn tablet_xy(name: &str, tool: &str, x: f64, y: f64) -> Event {
    Event::new(name)
        .field("tool", tool)
        .field("x", x)
        .field("y", y)
}

/// A tablet tool axis with one value (`tablet_pressure`, `tablet_distance`, `tablet_rotation`).
pub(crate) fn tablet_value(name: &str, tool: &str, value: impl Serialize) -> Event {
    Event::new(name).field("tool", tool).field("value", value)
}

pub(crate) fn tablet_button(tool: &str, button: u32, state: &str) -> Event {
    Event::new("tablet_button")
        .field("tool", tool)
        .field("button", button)
        .field("state", state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_the_documented_format() {
        assert_eq!(
            key(30, "a", "a", "pressed").line(),
            r#"{"event":"key","key":30,"keysym":"a","utf8":"a","state":"pressed"}"#
        );
        assert_eq!(
            pointer_enter(10.0, 20.0).line(),
            r#"{"event":"pointer_enter","x":10.0,"y":20.0}"#
        );
        assert_eq!(
            axis("vertical", 15.0, Some(120), None).line(),
            r#"{"event":"axis","axis":"vertical","value":15.0,"value120":120}"#
        );
        assert_eq!(keyboard_enter().line(), r#"{"event":"keyboard_enter"}"#);
        assert_eq!(frame(41).line(), r#"{"event":"frame","n":41}"#);
        assert_eq!(
            tablet_xy("tablet_motion", "pen", 10.5, 20.0).line(),
            r#"{"event":"tablet_motion","tool":"pen","x":10.5,"y":20.0}"#
        );
        assert_eq!(
            tablet_value("tablet_pressure", "eraser", 40000u32).line(),
            r#"{"event":"tablet_pressure","tool":"eraser","value":40000}"#
        );
    }

    #[test]
    fn strings_are_escaped_and_lines_parse() {
        let line = key(28, "Return", "\r", "pressed").line();
        assert_eq!(
            line,
            r#"{"event":"key","key":28,"keysym":"Return","utf8":"\r","state":"pressed"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["utf8"], "\r");
        let odd = key(1, "quote\"", "\u{1}", "released").line();
        let parsed: serde_json::Value = serde_json::from_str(&odd).unwrap();
        assert_eq!(parsed["keysym"], "quote\"");
        assert_eq!(parsed["utf8"], "\u{1}");
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let line = pointer_motion(f64::NAN, 1.0).line();
        assert_eq!(line, r#"{"event":"pointer_motion","x":null,"y":1.0}"#);
    }
}
