//! Moonlight input packets to compositor input events.
//!
//! Keys arrive as Windows virtual-key codes in US positions and become evdev codes; absolute
//! mouse positions are scaled from the client's reference size to the output; buttons become
//! evdev `BTN_*` codes; scroll stays in 120-per-notch units. Anything unknown or out of range is
//! dropped with a debug line. The mapper remembers what is held so that a stream that ends
//! leaves no key or button stuck.

use std::collections::BTreeSet;

use compositor::{CompositorHandle, InputEvent};
use protocol::input::{self, InputPacket};
use tracing::{debug, trace};

/// Turns input packets into compositor events for one output size.
#[derive(Debug)]
pub struct InputMapper {
    width: u32,
    height: u32,
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u32>,
}

impl InputMapper {
    /// A mapper for an output of `width` x `height`.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, keys: BTreeSet::new(), buttons: BTreeSet::new() }
    }

    /// Decodes one input packet and delivers what it means.
    pub fn handle(&mut self, packet: &[u8], sink: &CompositorHandle) {
        match InputPacket::parse(packet) {
            Ok(p) => {
                for ev in self.map(&p) {
                    trace!(?ev, "input");
                    sink.send_input(ev);
                }
            }
            Err(e) => debug!(%e, len = packet.len(), "dropped an input packet"),
        }
    }

    /// The events one packet stands for (pure; also updates what is held).
    pub fn map(&mut self, packet: &InputPacket) -> Vec<InputEvent> {
        match *packet {
            InputPacket::KeyDown { vk, .. } | InputPacket::KeyUp { vk, .. } => {
                let pressed = matches!(packet, InputPacket::KeyDown { .. });
                let Some(code) = input::vk_to_evdev(vk) else {
                    debug!(vk, "unknown virtual-key code");
                    return vec![];
                };
                let code = u32::from(code);
                let changed = if pressed { self.keys.insert(code) } else { self.keys.remove(&code) };
                if !changed {
                    // A repeat press or a release of a key never pressed: the compositor
                    // would see a stuck or phantom key otherwise.
                    return vec![];
                }
                vec![InputEvent::Key { code, pressed }]
            }
            InputPacket::MouseMoveRel { dx, dy } => {
                vec![InputEvent::PointerMotionRelative { dx: f64::from(dx), dy: f64::from(dy) }]
            }
            InputPacket::MouseMoveAbs { x, y, ref_width, ref_height } => {
                if ref_width == 0 || ref_height == 0 {
                    return vec![];
                }
                let sx = f64::from(x.clamp(0, ref_width as i16 - 1)) * f64::from(self.width) / f64::from(ref_width);
                let sy = f64::from(y.clamp(0, ref_height as i16 - 1)) * f64::from(self.height) / f64::from(ref_height);
                vec![InputEvent::PointerMotionAbsolute { x: sx, y: sy }]
            }
            InputPacket::MouseButton { button, pressed } => {
                let code = u32::from(button.evdev_code());
                let changed = if pressed { self.buttons.insert(code) } else { self.buttons.remove(&code) };
                if !changed {
                    return vec![];
                }
                vec![InputEvent::PointerButton { button: code, pressed }]
            }
            InputPacket::ScrollVertical { amount } => {
                vec![InputEvent::PointerAxis { horizontal: false, value120: i32::from(amount) }]
            }
            InputPacket::ScrollHorizontal { amount } => {
                vec![InputEvent::PointerAxis { horizontal: true, value120: i32::from(amount) }]
            }
            ref other => {
                trace!(?other, "input not delivered yet");
                vec![]
            }
        }
    }

    /// Releases every held key and button.
    pub fn release_all(&mut self, sink: &CompositorHandle) {
        for code in std::mem::take(&mut self.keys) {
            sink.send_input(InputEvent::Key { code, pressed: false });
        }
        for button in std::mem::take(&mut self.buttons) {
            sink.send_input(InputEvent::PointerButton { button, pressed: false });
        }
    }
}
