//! punktfunk/1 pairing, host side: any SPAKE2 message and any client proof.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::native::pairing::{fingerprint, HostPairing};
use punktfunk_fuzz::Choices;

struct Counter(u64);

impl rand_core::RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for Counter {}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let spake_a = c.short_bytes();
    let proof = c.rest();
    let client = fingerprint(b"client certificate");
    let host = fingerprint(b"host certificate");
    if let Ok((pairing, spake_b, confirm)) =
        HostPairing::respond("1234", client, host, spake_a, Counter(1))
    {
        assert!(!spake_b.is_empty() && !confirm.is_empty());
        assert!(!pairing.verify(proof) || proof.len() == confirm.len());
    }
});
