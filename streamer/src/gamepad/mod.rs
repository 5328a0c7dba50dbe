//! Virtual gamepads for one stream.
//!
//! Moonlight sends each pad as a controller number 0..15 with full state snapshots
//! (`MultiController`), announces type and capabilities in an arrival packet, and (for
//! PlayStation pads) adds touchpad and motion packets. [`GamepadManager`] keeps one [`Pad`] per
//! controller number: it creates the pad's virtual devices on arrival (or on the first state
//! whose active mask has the pad's bit, for clients without arrival packets), diffs consecutive
//! states into evdev events ([`mapping`]) and destroys the devices when the mask drops the pad or
//! the stream ends. Rumble that a game plays on a device goes back to the client as
//! [`protocol::control::HostMessage::Rumble`] through the sink the stream provides.
//!
//! Devices come from a [`DeviceBackend`]: [`uinput::UinputBackend`] on a real host. Where
//! `/dev/uinput` cannot be opened, creation fails once with one warning and the stream goes on
//! without pads.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::control::HostMessage;
use protocol::input::InputPacket;
use tracing::{debug, info, trace, warn};

pub mod mapping;
pub mod uinput;

use mapping::{DeviceSpec, EvdevEvent, Layout, PadState, Role, Touchpad};

/// How many pads one stream may have (controller numbers 0..15).
pub const MAX_PADS: usize = 16;

/// Where rumble requests go: the stream seals them and sends them to the client.
pub type FeedbackSink = Arc<dyn Fn(HostMessage) + Send + Sync>;

/// Creates virtual input devices.
pub trait DeviceBackend: Send {
    /// Creates a device. `feedback` receives rumble played on it, already addressed to the
    /// client's controller number.
    fn create(
        &mut self,
        spec: &DeviceSpec,
        controller: u16,
        feedback: FeedbackSink,
    ) -> anyhow::Result<Box<dyn VirtualDevice>>;
}

/// A created virtual device; dropping it removes the device.
pub trait VirtualDevice: Send {
    /// Writes events (ending with `SYN_REPORT`) to the device.
    fn emit(&mut self, events: &[EvdevEvent]) -> std::io::Result<()>;
}

/// Options for a stream's pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GamepadOptions {
    /// What a PlayStation pad of the client becomes.
    pub playstation: Layout,
}

impl Default for GamepadOptions {
    fn default() -> Self {
        Self {
            playstation: Layout::DualSense,
        }
    }
}

/// One virtual pad.
pub struct Pad {
    layout: Layout,
    state: PadState,
    touchpad: Touchpad,
    devices: BTreeMap<Role, Box<dyn VirtualDevice>>,
}

impl std::fmt::Debug for Pad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pad")
            .field("layout", &self.layout)
            .field("state", &self.state)
            .field("devices", &self.devices.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Pad {
    fn emit(&mut self, role: Role, events: &[EvdevEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(dev) = self.devices.get_mut(&role) {
            if let Err(e) = dev.emit(events) {
                debug!(%e, ?role, "cannot write gamepad events");
            }
        }
    }

    fn emit_grouped(&mut self, events: Vec<(Role, EvdevEvent)>) {
        for role in [Role::Main, Role::Touchpad, Role::Motion] {
            let evs: Vec<EvdevEvent> = events
                .iter()
                .filter(|(r, _)| *r == role)
                .map(|&(_, e)| e)
                .collect();
            self.emit(role, &evs);
        }
    }

    /// Returns the pad to rest (nothing pressed, sticks centred) before it goes away.
    fn neutralize(&mut self) {
        let events = mapping::state_events(self.layout, Some(&self.state), &PadState::default());
        self.state = PadState::default();
        self.emit_grouped(events);
        let lift = self.touchpad.release_all();
        self.emit(Role::Touchpad, &lift);
    }
}

impl Drop for Pad {
    fn drop(&mut self) {
        self.neutralize();
    }
}

/// A punktfunk/1 gamepad state as the GameStream packet the gamepad manager takes: the button
/// bits and axes are laid out alike, and a pad that sends a state is present.
pub fn native_pad_state(pad: &protocol::native::input::GamepadState) -> InputPacket {
    InputPacket::MultiController(protocol::input::ControllerState {
        controller: u16::from(pad.index),
        active_mask: 1u16.checked_shl(u32::from(pad.index)).unwrap_or(0),
        buttons: pad.buttons,
        left_trigger: pad.left_trigger,
        right_trigger: pad.right_trigger,
        left_stick_x: pad.left_x,
        left_stick_y: pad.left_y,
        right_stick_x: pad.right_x,
        right_stick_y: pad.right_y,
    })
}

/// The pads of one stream, keyed by the client's controller number.
pub struct GamepadManager {
    options: GamepadOptions,
    backend: Box<dyn DeviceBackend>,
    feedback: FeedbackSink,
    pads: BTreeMap<u16, Pad>,
    /// Set after the backend failed once: no more attempts, no more warnings.
    backend_failed: bool,
}

impl std::fmt::Debug for GamepadManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GamepadManager")
            .field("pads", &self.pads)
            .finish_non_exhaustive()
    }
}

impl GamepadManager {
    /// A manager creating devices through `backend`, sending rumble to `feedback`.
    pub fn new(
        options: GamepadOptions,
        backend: Box<dyn DeviceBackend>,
        feedback: FeedbackSink,
    ) -> Self {
        Self {
            options,
            backend,
            feedback,
            pads: BTreeMap::new(),
            backend_failed: false,
        }
    }

    /// A manager with uinput devices.
    pub fn with_uinput(options: GamepadOptions, feedback: FeedbackSink) -> Self {
        Self::new(options, Box::new(uinput::UinputBackend), feedback)
    }

    /// The controller numbers that have a pad, with its layout.
    pub fn pads(&self) -> Vec<(u16, Layout)> {
        self.pads.iter().map(|(&n, p)| (n, p.layout)).collect()
    }

    /// Handles one gamepad packet; anything else is ignored.
    pub fn handle(&mut self, packet: &InputPacket) {
        match *packet {
            InputPacket::ControllerArrival {
                controller,
                controller_type,
                capabilities,
                supported_buttons,
            } => {
                let n = u16::from(controller);
                if usize::from(n) >= MAX_PADS {
                    debug!(controller, "arrival of a controller number out of range");
                    return;
                }
                let layout = Layout::for_controller_type(controller_type, self.options.playstation);
                if self.pads.get(&n).is_some_and(|p| p.layout == layout) {
                    return;
                }
                debug!(
                    controller,
                    controller_type,
                    capabilities,
                    supported_buttons,
                    ?layout,
                    "controller arrived"
                );
                self.pads.remove(&n);
                self.create(n, layout, supported_buttons);
            }
            InputPacket::MultiController(ref s) => {
                let n = s.controller;
                if usize::from(n) >= MAX_PADS {
                    debug!(controller = n, "state of a controller number out of range");
                    return;
                }
                if s.active_mask & (1 << n) == 0 {
                    if self.pads.remove(&n).is_some() {
                        info!(controller = n, "gamepad removed");
                    }
                    return;
                }
                if !self.pads.contains_key(&n) {
                    // A client without arrival packets: the type is unknown.
                    self.create(n, Layout::Xbox360, 0);
                }
                let Some(pad) = self.pads.get_mut(&n) else {
                    return;
                };
                let next = PadState::from(s);
                let events = mapping::state_events(pad.layout, Some(&pad.state), &next);
                pad.state = next;
                pad.emit_grouped(events);
            }
            InputPacket::ControllerTouch {
                controller,
                event_type,
                touchpad,
                pointer_id,
                x,
                y,
                ..
            } => {
                let Some(pad) = self.pad(controller) else {
                    return;
                };
                if !pad.layout.is_playstation() || touchpad != 0 {
                    trace!(
                        controller,
                        touchpad,
                        "touch for a pad without that touchpad"
                    );
                    return;
                }
                let layout = pad.layout;
                let events = pad.touchpad.handle(layout, event_type, pointer_id, x, y);
                pad.emit(Role::Touchpad, &events);
            }
            InputPacket::ControllerMotion {
                controller,
                motion_type,
                x,
                y,
                z,
            } => {
                let Some(pad) = self.pad(controller) else {
                    return;
                };
                if !pad.layout.is_playstation() {
                    return;
                }
                match mapping::motion_events(motion_type, x, y, z) {
                    Some(events) => pad.emit(Role::Motion, &events),
                    None => debug!(controller, motion_type, "bad motion report"),
                }
            }
            // uinput cannot create a power supply; the state is only logged.
            InputPacket::ControllerBattery {
                controller,
                state,
                percentage,
            } if self.pad(controller).is_some() => {
                debug!(controller, state, percentage, "controller battery");
            }
            InputPacket::EnableHaptics => debug!("client accepts rumble"),
            _ => {}
        }
    }

    /// Removes every pad (their devices vanish).
    pub fn clear(&mut self) {
        self.pads.clear();
    }

    fn pad(&mut self, controller: u8) -> Option<&mut Pad> {
        let pad = self.pads.get_mut(&u16::from(controller));
        if pad.is_none() {
            debug!(controller, "packet for a controller without a pad");
        }
        pad
    }

    fn create(&mut self, n: u16, layout: Layout, supported_buttons: u32) {
        if self.backend_failed {
            trace!(controller = n, "no virtual gamepads on this host");
            return;
        }
        let mut devices = BTreeMap::new();
        for spec in mapping::device_specs(layout, supported_buttons) {
            match self.backend.create(&spec, n, self.feedback.clone()) {
                Ok(dev) => {
                    devices.insert(spec.role, dev);
                }
                Err(e) => {
                    warn!(
                        controller = n,
                        ?layout,
                        err = %format!("{e:#}"),
                        "cannot create virtual gamepads; gamepad input is ignored"
                    );
                    self.backend_failed = true;
                    return;
                }
            }
        }
        info!(controller = n, ?layout, "gamepad created");
        let mut pad = Pad {
            layout,
            state: PadState::default(),
            touchpad: Touchpad::default(),
            devices,
        };
        // A new device starts at rest; report the centre positions of the axes once.
        let events = mapping::state_events(layout, None, &PadState::default());
        pad.emit_grouped(events);
        self.pads.insert(n, pad);
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
