//! nvhttp query strings: what every HTTP and HTTPS request's parameters go through, and the
//! launch, resume and pairing requests built from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::nvhttp::{self, LaunchKind, LaunchRequest, Query};
use protocol::pairing::PairQuery;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = nvhttp::percent_decode(text);
    if let Ok(bytes) = nvhttp::hex_decode(text) {
        assert_eq!(nvhttp::hex_encode_lower(&bytes), text.to_ascii_lowercase());
    }
    let q = Query::parse(text);
    for kind in [LaunchKind::Launch, LaunchKind::Resume] {
        if let Err(e) = LaunchRequest::parse(&q, kind) {
            let _ = e.to_xml(kind);
        }
    }
    let _ = q.mode();
    let _ = q.rikey();
    let _ = q.rikeyid();
    let _ = q.uniqueid();
    if let Err(e) = PairQuery::parse(&q) {
        let _ = e.to_xml();
    }
});
