//! Pairing: a PIN-authenticated key exchange (SPAKE2 over Ed25519) bound to both certificates.
//!
//! The host shows a PIN; the user types it on the client. Both run SPAKE2 with the PIN as the
//! password and the SHA-256 fingerprints of the two TLS certificates of their connection as the
//! identities (client = A, host = B). A man in the middle terminates TLS with certificates of
//! his own, so the two ends compute different keys and the confirmations fail; a wrong PIN
//! fails the same way. Each run tests one PIN guess only: the exchange leaks nothing that lets
//! a guesser test other PINs offline.
//!
//! ```text
//! client                                   host
//! PairRequest { name, spake_a }   ->
//!                                 <-   PairChallenge { spake_b, confirm = C(key, "host") }
//! PairProof { confirm = C(key, "client") } ->
//!                                 <-   PairResult { ok }
//! ```
//!
//! `C(key, label)` is HMAC-SHA256 over the label and both fingerprints. On success the host
//! stores the client's certificate and the client pins the host's fingerprint. Randomness comes
//! from the caller.

use openssl::hash::MessageDigest;
use openssl::memcmp;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use rand_core::{CryptoRng, RngCore};
use spake2::{Ed25519Group, Identity, Password, Spake2};

/// SHA-256 of a certificate (DER): what pairing binds and what a client pins.
pub type Fingerprint = [u8; 32];

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    openssl::sha::sha256(der)
}

/// Lower-case hex of a fingerprint, as mDNS and the client's files write it.
pub fn fingerprint_hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a pairing failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    /// The peer's SPAKE2 message is malformed.
    #[error("malformed key-exchange message")]
    Malformed,
    /// The confirmation does not match: a wrong PIN, or certificates that are not the ones of
    /// this connection.
    #[error("the PIN or the certificates do not match")]
    Mismatch,
    /// HMAC could not be computed.
    #[error("cannot compute the confirmation: {0}")]
    Crypto(String),
}

fn confirmation(
    key: &[u8],
    label: &[u8],
    client: &Fingerprint,
    host: &Fingerprint,
) -> Result<Vec<u8>, PairingError> {
    let run = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let pkey = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
        signer.update(b"punktfunk/1 pairing ")?;
        signer.update(label)?;
        signer.update(client)?;
        signer.update(host)?;
        signer.sign_to_vec()
    };
    run().map_err(|e| PairingError::Crypto(e.to_string()))
}

fn spake(pin: &str, client: &Fingerprint, host: &Fingerprint) -> (Password, Identity, Identity) {
    (
        Password::new(pin.as_bytes()),
        Identity::new(client),
        Identity::new(host),
    )
}

/// The client's side of a pairing, between its request and the host's challenge.
pub struct ClientPairing {
    state: Spake2<Ed25519Group>,
    client: Fingerprint,
    host: Fingerprint,
}

impl ClientPairing {
    /// Starts a pairing with `pin` on a connection whose certificates have these fingerprints;
    /// returns the state and `spake_a` for `PairRequest`.
    pub fn start(
        pin: &str,
        client: Fingerprint,
        host: Fingerprint,
        rng: impl CryptoRng + RngCore,
    ) -> (Self, Vec<u8>) {
        let (password, a, b) = spake(pin, &client, &host);
        let (state, msg) = Spake2::<Ed25519Group>::start_a_with_rng(&password, &a, &b, rng);
        (
            Self {
                state,
                client,
                host,
            },
            msg,
        )
    }

    /// Checks the host's `PairChallenge`; returns the confirmation for `PairProof`.
    pub fn finish(self, spake_b: &[u8], host_confirm: &[u8]) -> Result<Vec<u8>, PairingError> {
        let key = self
            .state
            .finish(spake_b)
            .map_err(|_| PairingError::Malformed)?;
        let expected = confirmation(&key, b"host", &self.client, &self.host)?;
        if expected.len() != host_confirm.len() || !memcmp::eq(&expected, host_confirm) {
            return Err(PairingError::Mismatch);
        }
        confirmation(&key, b"client", &self.client, &self.host)
    }
}

/// The host's side of a pairing, between its challenge and the client's proof.
pub struct HostPairing {
    expected: Vec<u8>,
}

impl HostPairing {
    /// Answers a `PairRequest` with the armed `pin`; returns the state and the `spake_b` and
    /// `confirm` of `PairChallenge`.
    pub fn respond(
        pin: &str,
        client: Fingerprint,
        host: Fingerprint,
        spake_a: &[u8],
        rng: impl CryptoRng + RngCore,
    ) -> Result<(Self, Vec<u8>, Vec<u8>), PairingError> {
        let (password, a, b) = spake(pin, &client, &host);
        let (state, msg) = Spake2::<Ed25519Group>::start_b_with_rng(&password, &a, &b, rng);
        let key = state.finish(spake_a).map_err(|_| PairingError::Malformed)?;
        let confirm = confirmation(&key, b"host", &client, &host)?;
        let expected = confirmation(&key, b"client", &client, &host)?;
        Ok((Self { expected }, msg, confirm))
    }

    /// Whether the client's `PairProof` proves the same PIN and certificates.
    pub fn verify(&self, client_confirm: &[u8]) -> bool {
        self.expected.len() == client_confirm.len() && memcmp::eq(&self.expected, client_confirm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator, so that runs replay exactly.
    struct Counter(u64);

    impl RngCore for Counter {
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
                *b = (self.next_u64() >> 33) as u8;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for Counter {}

    fn run(
        client_pin: &str,
        host_pin: &str,
        client_sees: (Fingerprint, Fingerprint),
        host_sees: (Fingerprint, Fingerprint),
    ) -> Result<bool, PairingError> {
        let (c, a) = ClientPairing::start(client_pin, client_sees.0, client_sees.1, Counter(1));
        let (h, b, confirm) =
            HostPairing::respond(host_pin, host_sees.0, host_sees.1, &a, Counter(2))?;
        let proof = c.finish(&b, &confirm)?;
        Ok(h.verify(&proof))
    }

    const CLIENT: Fingerprint = [1; 32];
    const HOST: Fingerprint = [2; 32];

    #[test]
    fn the_same_pin_and_certificates_pair() {
        assert_eq!(
            run("4711", "4711", (CLIENT, HOST), (CLIENT, HOST)),
            Ok(true)
        );
    }

    #[test]
    fn a_wrong_pin_fails_at_the_client() {
        assert_eq!(
            run("4712", "4711", (CLIENT, HOST), (CLIENT, HOST)),
            Err(PairingError::Mismatch)
        );
    }

    #[test]
    fn a_man_in_the_middle_with_other_certificates_fails() {
        // The client talks to the attacker's certificate, the host sees the attacker's.
        let evil = [9; 32];
        assert_eq!(
            run("4711", "4711", (CLIENT, evil), (CLIENT, HOST)),
            Err(PairingError::Mismatch)
        );
        assert_eq!(
            run("4711", "4711", (CLIENT, HOST), (evil, HOST)),
            Err(PairingError::Mismatch)
        );
    }

    #[test]
    fn a_forged_proof_is_refused_and_garbage_is_malformed() {
        let (_, a) = ClientPairing::start("1234", CLIENT, HOST, Counter(3));
        let (h, _, _) = HostPairing::respond("1234", CLIENT, HOST, &a, Counter(4)).unwrap();
        assert!(!h.verify(&[0; 32]));
        assert!(!h.verify(b""));
        assert!(matches!(
            HostPairing::respond("1234", CLIENT, HOST, b"nonsense", Counter(5)),
            Err(PairingError::Malformed)
        ));
    }

    #[test]
    fn fingerprints_are_sha256_in_hex() {
        assert_eq!(
            fingerprint_hex(&fingerprint(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
