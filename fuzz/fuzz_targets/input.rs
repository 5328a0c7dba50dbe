//! GameStream input packets (keyboard, mouse, scroll, touch, pen, gamepad state, controller
//! arrival, motion and battery), the payload of control message 0x0206.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::input::{self, InputPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(InputPacket::KeyDown { vk, .. } | InputPacket::KeyUp { vk, .. }) =
        InputPacket::parse(data)
    {
        let _ = input::vk_to_evdev(vk);
    }
});
