//! `state.json`: the paired clients and the host's identity id, as the host reads them at start.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use store::state::State;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = State::parse(data, Path::new("state.json")) {
        // What loads, saved again, loads the same.
        let bytes = serde_json::to_vec_pretty(&state).expect("serialises");
        assert_eq!(
            State::parse(&bytes, Path::new("state.json")).ok(),
            Some(state.clone())
        );
        for client in &state.clients {
            let _ = state.client_by_cert(client.cert_pem.as_bytes());
        }
    }
});
