//! punktfunk/1 pairing, host side: any SPAKE2 message and any client proof.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::native::pairing::{fingerprint, HostPairing};
use punktfunk_fuzz::Choices;
use rand::rngs::StdRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let spake_a = c.short_bytes();
    let proof = c.rest();
    let client = fingerprint(b"client certificate");
    let host = fingerprint(b"host certificate");
    if let Ok((pairing, spake_b, confirm)) =
        HostPairing::respond("1234", client, host, spake_a, StdRng::seed_from_u64(1))
    {
        assert!(!spake_b.is_empty() && !confirm.is_empty());
        assert!(!pairing.verify(proof) || proof.len() == confirm.len());
    }
});
