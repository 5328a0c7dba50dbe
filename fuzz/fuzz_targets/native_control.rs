//! punktfunk/1 control stream: bytes as QUIC hands them over, cut at any points, into framed
//! messages. Every message that decodes encodes to a frame that decodes to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::native::control::{Message, MessageDecoder};
use punktfunk_fuzz::Choices;

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let mut decoder = if c.bool() {
        MessageDecoder::new()
    } else {
        MessageDecoder::with_max_len(c.u16() as usize)
    };
    while !c.is_empty() {
        let chunk = c.short_bytes();
        decoder.handle_bytes(chunk);
        loop {
            let before = decoder.buffered();
            match decoder.poll_message() {
                Ok(Some(message)) => round_trip(&message),
                Ok(None) => break,
                // A body that does not decode is consumed and the stream goes on; a bad length
                // consumes nothing and ends the stream: every later poll says so.
                Err(e) if decoder.buffered() == before => {
                    assert_eq!(decoder.poll_message(), Err(e));
                    return;
                }
                Err(_) => {}
            }
        }
    }
});

fn round_trip(message: &Message) {
    let mut out = Vec::new();
    message.encode(&mut out).expect("a decoded message encodes");
    let mut again = MessageDecoder::new();
    again.handle_bytes(&out);
    assert_eq!(again.poll_message(), Ok(Some(message.clone())));
    assert_eq!(again.poll_message(), Ok(None));
}
