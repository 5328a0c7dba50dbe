//! punktfunk/1 data-plane headers: whatever parses writes back the same 40 bytes, but for the
//! flag bits this version does not know, which are ignored on receipt and sent as zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::native::header::{Header, HEADER_LEN, KNOWN_FLAGS};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::parse(data) {
        let bytes = header.encode();
        assert_eq!(Header::parse(&bytes), Ok(header));
        let mut canonical = [0u8; HEADER_LEN];
        canonical.copy_from_slice(&data[..HEADER_LEN]);
        canonical[3] &= KNOWN_FLAGS;
        assert_eq!(bytes, canonical);
    }
});
