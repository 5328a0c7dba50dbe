//! punktfunk/1 input datagrams: every event that decodes encodes to bytes that decode to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::native::input;

fuzz_target!(|data: &[u8]| {
    for event in input::decode(data).take(64).flatten() {
        let mut out = Vec::new();
        event.encode(&mut out).expect("a decoded event encodes");
        let again: Vec<_> = input::decode(&out).collect();
        assert_eq!(again, vec![Ok(event)]);
    }
});
