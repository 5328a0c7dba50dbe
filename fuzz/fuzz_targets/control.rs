//! The GameStream control stream: encrypted envelopes as they arrive on the ENet channel, the
//! messages inside them, and the input packets those carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::control::{self, ControlMessage, Origin};
use protocol::input::InputPacket;
use punktfunk_fuzz::Choices;

const KEY: [u8; 16] = *b"fuzzing-ctrl-key";

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    match c.u8() % 3 {
        // A datagram off the wire.
        0 => {
            let _ = control::decrypt_client_message(&KEY, c.rest());
        }
        // A message after decryption: type and payload.
        1 => {
            let ty = c.u16();
            let payload = c.rest();
            let _ = ControlMessage::parse(ty, payload);
            let _ = InputPacket::parse(payload);
        }
        // Sealing then opening gives back the message.
        _ => {
            let seq = c.u32();
            let ty = c.u16();
            let payload = c.rest();
            if let Ok(packet) = control::encrypt_envelope(&KEY, Origin::Client, seq, ty, payload) {
                let env = control::decrypt_envelope(&KEY, Origin::Client, &packet)
                    .expect("a sealed envelope opens");
                assert_eq!(
                    (env.seq, env.ty, env.payload.as_slice()),
                    (seq, ty, payload)
                );
                assert!(control::decrypt_envelope(&KEY, Origin::Host, &packet).is_err());
            }
        }
    }
});
