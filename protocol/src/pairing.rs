//! PIN pairing (§3 of `docs/protocol/gamestream-session-setup.md`) and the host identity it
//! proves.
//!
//! [`HostIdentity`] is the host's RSA-2048 key and self-signed certificate: it is both the HTTPS
//! server certificate and the pairing identity (the client pins the certificate it receives as
//! `plaincert`). [`PairingSession`] is the host side of the five-stage exchange for one client,
//! kept by the server glue per `uniqueid`:
//!
//! 1. `phrase=getservercert` ([`PairRequest::GetServerCert`]) creates the session with
//!    [`PairingSession::new`]; the HTTP request stays parked until the user enters the PIN on the
//!    host, then [`PairingSession::handle_pin`] produces the reply (`plaincert`).
//! 2. `clientchallenge` → [`PairingSession::client_challenge`] (`challengeresponse`).
//! 3. `serverchallengeresp` → [`PairingSession::server_challenge_response`] (`pairingsecret`).
//! 4. `clientpairingsecret` → [`PairingSession::client_pairing_secret`]: a
//!    [`PairingOutcome`] saying whether the client certificate is now paired.
//! 5. `phrase=pairchallenge` over HTTPS: answered with `paired=1` without a session.
//!
//! Hashes are SHA-256, the cipher is AES-128-ECB without padding, and signatures are RSA
//! PKCS#1 v1.5 with SHA-256. The random server secret and challenge are passed in by the caller.
//! Every error maps to the `status_code` and `status_message` Sunshine sends; after any error the
//! session is finished (Sunshine deletes it) and the glue should drop it.

use std::fmt;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sha::sha256;
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use crate::nvhttp::{self, hex_encode_upper, Query};

/// Length of the pairing salt in bytes (32 hex characters).
pub const SALT_LEN: usize = 16;
/// Length of the pairing hashes (SHA-256).
pub const HASH_LEN: usize = 32;
/// Length of the server and client secrets and challenges.
pub const SECRET_LEN: usize = 16;
/// The host certificate's common name.
pub const HOST_COMMON_NAME: &str = "punktfunk";
/// How long the host certificate is valid: 20 years of 365 days, in seconds.
pub const CERT_VALIDITY_SECS: i64 = 20 * 365 * 24 * 60 * 60;

/// Errors from creating or loading a [`HostIdentity`].
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// OpenSSL failed (bad PEM, key generation, signing).
    #[error("openssl: {0}")]
    OpenSsl(#[from] ErrorStack),
    /// The private key does not belong to the certificate.
    #[error("key does not match certificate")]
    KeyMismatch,
}

/// The host's RSA-2048 key and self-signed X.509 v3 certificate.
#[derive(Clone)]
pub struct HostIdentity {
    cert: X509,
    key: PKey<Private>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl fmt::Debug for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIdentity")
            .field("subject", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

impl HostIdentity {
    /// Generates a new identity: an RSA-2048 key (OpenSSL's RNG), and a self-signed v3
    /// certificate with `CN=punktfunk` as subject and issuer, a random positive 159-bit serial,
    /// validity from `not_before_unix` (seconds since the epoch, passed in by the caller) for 20
    /// years, signed with SHA-256. No extensions, as Sunshine's `gen_creds`.
    pub fn generate(not_before_unix: i64) -> Result<HostIdentity, IdentityError> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;

        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", HOST_COMMON_NAME)?;
        let name = name.build();

        let mut serial = BigNum::new()?;
        serial.rand(159, MsbOption::MAYBE_ZERO, false)?;
        if serial.num_bits() == 0 {
            serial = BigNum::from_u32(1)?;
        }
        let serial = Asn1Integer::from_bn(&serial)?;

        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        let not_before = Asn1Time::from_unix(not_before_unix as _)?;
        let not_after =
            Asn1Time::from_unix(not_before_unix.saturating_add(CERT_VALIDITY_SECS) as _)?;
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.set_pubkey(&key)?;
        b.sign(&key, MessageDigest::sha256())?;
        Self::from_parts(b.build(), key)
    }

    /// Loads an identity from a PEM certificate and a PEM private key (PKCS#8 or PKCS#1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<HostIdentity, IdentityError> {
        let cert = X509::from_pem(cert_pem)?;
        let key = PKey::private_key_from_pem(key_pem)?;
        Self::from_parts(cert, key)
    }

    fn from_parts(cert: X509, key: PKey<Private>) -> Result<HostIdentity, IdentityError> {
        if !cert.public_key()?.public_eq(&key) {
            return Err(IdentityError::KeyMismatch);
        }
        let cert_pem = cert.to_pem()?;
        let key_pem = key.private_key_to_pem_pkcs8()?;
        Ok(HostIdentity {
            cert,
            key,
            cert_pem,
            key_pem,
        })
    }

    /// The certificate as PEM text (what `plaincert` carries, hex-encoded).
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The private key as PKCS#8 PEM text.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }

    /// The certificate in DER form.
    pub fn cert_der(&self) -> Vec<u8> {
        // A certificate that was parsed or built always re-encodes.
        self.cert.to_der().unwrap_or_default()
    }

    /// The certificate's raw `signatureValue` (256 bytes for RSA-2048): the "certificate
    /// signature" used in the pairing hashes (§3.1).
    pub fn signature(&self) -> &[u8] {
        self.cert.signature().as_slice()
    }

    /// The parsed certificate (for the TLS server).
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// The private key (for the TLS server).
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// Signs `data` with RSA PKCS#1 v1.5 / SHA-256.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let mut s = Signer::new(MessageDigest::sha256(), &self.key)?;
        s.update(data)?;
        s.sign_to_vec()
    }
}

/// The pairing phases a request can belong to (names as in the `phrase`/argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPhase {
    /// Stage 1 (`phrase=getservercert`), completed by the PIN.
    GetServerCert,
    /// Stage 2 (`clientchallenge`).
    ClientChallenge,
    /// Stage 3 (`serverchallengeresp`).
    ServerChallengeResp,
    /// Stage 4 (`clientpairingsecret`).
    ClientPairingSecret,
}

impl PairPhase {
    /// The name Sunshine uses in its "Out of order call to ..." messages.
    pub fn name(self) -> &'static str {
        match self {
            PairPhase::GetServerCert => "getservercert",
            PairPhase::ClientChallenge => "clientchallenge",
            PairPhase::ServerChallengeResp => "serverchallengeresp",
            PairPhase::ClientPairingSecret => "clientpairingsecret",
        }
    }
}

/// Pairing failures. Each maps to Sunshine's reply via [`PairingError::status_code`] and
/// [`PairingError::status_message`]; [`PairingError::to_xml`] builds the whole reply.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// `/pair` without `uniqueid`.
    #[error("missing uniqueid")]
    MissingUniqueId,
    /// `/pair` with none of the known phrases or arguments.
    #[error("invalid pairing request")]
    InvalidRequest,
    /// Stages 2-4 for a `uniqueid` with no pending session (raised by the glue).
    #[error("unknown uniqueid")]
    UnknownUniqueId,
    /// A stage arrived before the previous one finished.
    #[error("out of order call to {}", .0.name())]
    OutOfOrder(PairPhase),
    /// Stage 1 salt shorter than 32 hex characters.
    #[error("salt too short")]
    SaltTooShort,
    /// A parameter is missing.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// A parameter is not valid hex.
    #[error("invalid hex in {0}")]
    InvalidHex(&'static str),
    /// A decoded parameter has an impossible length (not a nonzero multiple of 16 bytes).
    #[error("invalid length of {0}")]
    InvalidLength(&'static str),
    /// The client certificate cannot be parsed.
    #[error("invalid client certificate")]
    InvalidClientCert,
    /// Stage 4 data of 16 bytes or less.
    #[error("client pairing secret too short")]
    ClientSecretTooShort,
    /// The PIN entered on the host is not 4 characters (the count is given).
    #[error("pin must be 4 digits, {0} provided")]
    PinLength(usize),
    /// The PIN entered on the host has a non-digit.
    #[error("pin must be numeric")]
    PinNotNumeric,
    /// OpenSSL failed.
    #[error("crypto failure: {0}")]
    Crypto(#[from] ErrorStack),
}

impl PairingError {
    /// The nvhttp `status_code` (Sunshine's).
    pub fn status_code(&self) -> i32 {
        match self {
            PairingError::InvalidRequest => 404,
            PairingError::Crypto(_) => 500,
            _ => 400,
        }
    }

    /// The nvhttp `status_message` (Sunshine's text where Sunshine has one).
    pub fn status_message(&self) -> String {
        match self {
            PairingError::MissingUniqueId => "Missing uniqueid parameter".into(),
            PairingError::InvalidRequest => "Invalid pairing request".into(),
            PairingError::UnknownUniqueId => "Invalid uniqueid".into(),
            PairingError::OutOfOrder(p) => format!("Out of order call to {}", p.name()),
            PairingError::SaltTooShort => "Salt too short".into(),
            PairingError::MissingParameter(p) => format!("Missing {p} parameter"),
            PairingError::InvalidHex(p) => format!("Invalid hex in {p}"),
            PairingError::InvalidLength(p) => format!("Invalid length of {p}"),
            PairingError::InvalidClientCert => "Invalid client certificate".into(),
            PairingError::ClientSecretTooShort => "Client pairing secret too short".into(),
            PairingError::PinLength(n) => format!("Pin must be 4 digits, {n} provided"),
            PairingError::PinNotNumeric => "Pin must be numeric".into(),
            PairingError::Crypto(_) => "Internal pairing error".into(),
        }
    }

    /// The failure reply: `<root status_code=".." status_message=".."><paired>0</paired></root>`
    /// (Sunshine's `fail_pair`).
    pub fn to_xml(&self) -> String {
        nvhttp::pair_error_xml(self.status_code(), &self.status_message())
    }
}

/// A decoded `/pair` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairRequest {
    /// Stage 1: `phrase=getservercert&salt=..&clientcert=..`.
    GetServerCert {
        /// The first 16 bytes of `salt`.
        salt: [u8; SALT_LEN],
        /// The client certificate as PEM text (hex-decoded `clientcert`).
        client_cert_pem: Vec<u8>,
    },
    /// Stage 2: the encrypted client challenge.
    ClientChallenge(Vec<u8>),
    /// Stage 3: the encrypted hash of the server challenge.
    ServerChallengeResp(Vec<u8>),
    /// Stage 4: client secret followed by its signature.
    ClientPairingSecret(Vec<u8>),
    /// Stage 5 (HTTPS): `phrase=pairchallenge`; answer [`pair_challenge_xml`].
    PairChallenge,
}

/// A `/pair` query: who asked, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairQuery {
    /// The client's `uniqueid` (the key for its [`PairingSession`]).
    pub unique_id: String,
    /// The decoded request.
    pub request: PairRequest,
}

fn hex_param(q: &Query, name: &'static str) -> Result<Vec<u8>, PairingError> {
    let v = q.get(name).ok_or(PairingError::MissingParameter(name))?;
    nvhttp::hex_decode(v.trim()).map_err(|_| PairingError::InvalidHex(name))
}

impl PairQuery {
    /// Decodes a `/pair` query the way Sunshine dispatches it: `uniqueid` first, then `phrase`
    /// (`getservercert`, `pairchallenge`), then the `clientchallenge`, `serverchallengeresp` and
    /// `clientpairingsecret` arguments, in that order.
    pub fn parse(q: &Query) -> Result<PairQuery, PairingError> {
        let unique_id = q.get("uniqueid").ok_or(PairingError::MissingUniqueId)?;
        let request = match q.get("phrase") {
            Some("getservercert") => {
                let salt_hex = q.get("salt").unwrap_or("").trim();
                if salt_hex.len() < 2 * SALT_LEN {
                    return Err(PairingError::SaltTooShort);
                }
                // The first 32 characters; a multi-byte character across the cut is no hex.
                let salt = salt_hex
                    .get(..2 * SALT_LEN)
                    .and_then(|h| nvhttp::hex_decode(h).ok())
                    .and_then(|b| <[u8; SALT_LEN]>::try_from(b).ok())
                    .ok_or(PairingError::InvalidHex("salt"))?;
                PairRequest::GetServerCert {
                    salt,
                    client_cert_pem: hex_param(q, "clientcert")?,
                }
            }
            Some("pairchallenge") => PairRequest::PairChallenge,
            _ => {
                if q.contains("clientchallenge") {
                    PairRequest::ClientChallenge(hex_param(q, "clientchallenge")?)
                } else if q.contains("serverchallengeresp") {
                    PairRequest::ServerChallengeResp(hex_param(q, "serverchallengeresp")?)
                } else if q.contains("clientpairingsecret") {
                    PairRequest::ClientPairingSecret(hex_param(q, "clientpairingsecret")?)
                } else {
                    return Err(PairingError::InvalidRequest);
                }
            }
        };
        Ok(PairQuery {
            unique_id: unique_id.to_owned(),
            request,
        })
    }
}

/// The stage 5 reply (`phrase=pairchallenge` over HTTPS): always `paired=1`, because reaching it
/// already required a paired client certificate.
pub fn pair_challenge_xml() -> String {
    nvhttp::pair_xml(None)
}

/// A successful stage reply: `paired=1` plus one hex data element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairReply {
    /// The element name: `plaincert`, `challengeresponse` or `pairingsecret`.
    pub field: &'static str,
    /// Its value: uppercase hex.
    pub value: String,
}

impl PairReply {
    /// The XML reply.
    pub fn to_xml(&self) -> String {
        nvhttp::pair_xml(Some((self.field, &self.value)))
    }
}

/// Why stage 4 did not pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The client's stage-3 hash does not match (wrong PIN on one side, or a MITM).
    HashMismatch,
    /// The client secret's signature does not verify with the client certificate.
    BadSignature,
}

/// The result of stage 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingOutcome {
    /// Both checks passed: persist this client certificate (PEM) as paired.
    Paired {
        /// The client certificate from stage 1, as PEM text.
        client_cert_pem: Vec<u8>,
    },
    /// A check failed; Sunshine answers `status_code=200` with `paired=0`.
    Rejected(RejectReason),
}

impl PairingOutcome {
    /// The stage 4 reply: `paired=1`, or `paired=0` with status 200.
    pub fn to_xml(&self) -> String {
        match self {
            PairingOutcome::Paired { .. } => nvhttp::pair_xml(None),
            PairingOutcome::Rejected(_) => nvhttp::pair_rejected_xml(),
        }
    }
}

/// Where a [`PairingSession`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingState {
    /// Stage 1 arrived; its reply waits for the PIN.
    AwaitingPin,
    /// Stage 1 answered; waiting for `clientchallenge`.
    AwaitingClientChallenge,
    /// Stage 2 answered; waiting for `serverchallengeresp`.
    AwaitingServerChallengeResp,
    /// Stage 3 answered; waiting for `clientpairingsecret`.
    AwaitingClientPairingSecret,
    /// Stage 4 answered, or an error ended the session. Drop it.
    Finished,
}

#[derive(Clone)]
enum Phase {
    AwaitingPin,
    CertSent {
        key: [u8; 16],
    },
    ChallengeSent {
        key: [u8; 16],
        server_secret: [u8; SECRET_LEN],
        server_challenge: [u8; SECRET_LEN],
    },
    SecretSent {
        server_challenge: [u8; SECRET_LEN],
        client_hash: Vec<u8>,
    },
    Finished,
}

/// The host side of one client's pairing (stages 1-4). Store one per `uniqueid`; replace it
/// when a new `getservercert` arrives, drop it after an error or after stage 4.
#[derive(Clone)]
pub struct PairingSession {
    phase: Phase,
    salt: [u8; SALT_LEN],
    client_cert_pem: Vec<u8>,
    client_cert: X509,
}

impl fmt::Debug for PairingSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingSession")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// `K = SHA-256(salt ‖ PIN)[0..16]`, the pairing AES key.
pub fn derive_key(salt: &[u8; SALT_LEN], pin: &str) -> [u8; 16] {
    let mut data = Vec::with_capacity(SALT_LEN + pin.len());
    data.extend_from_slice(salt);
    data.extend_from_slice(pin.as_bytes());
    let h = sha256(&data);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

/// AES-128-ECB without padding; `data` must be a multiple of 16 bytes.
pub fn aes_ecb(key: &[u8; 16], data: &[u8], encrypt: bool) -> Result<Vec<u8>, ErrorStack> {
    let mode = if encrypt {
        Mode::Encrypt
    } else {
        Mode::Decrypt
    };
    let cipher = Cipher::aes_128_ecb();
    let mut c = Crypter::new(cipher, mode, key, None)?;
    c.pad(false);
    let mut out = vec![0u8; data.len() + cipher.block_size()];
    let mut n = c.update(data, &mut out)?;
    n += c.finalize(&mut out[n..])?;
    out.truncate(n);
    Ok(out)
}

/// Checks that a PIN is exactly 4 ASCII digits (Sunshine's rules and messages).
pub fn validate_pin(pin: &str) -> Result<(), PairingError> {
    if pin.len() != 4 {
        return Err(PairingError::PinLength(pin.len()));
    }
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PairingError::PinNotNumeric);
    }
    Ok(())
}

fn check_blocks(data: &[u8], name: &'static str) -> Result<(), PairingError> {
    if data.is_empty() || data.len() & 15 != 0 {
        return Err(PairingError::InvalidLength(name));
    }
    Ok(())
}

impl PairingSession {
    /// Stage 1: starts a session from the salt and the client's PEM certificate. Fails with
    /// [`PairingError::InvalidClientCert`] if the certificate does not parse. The reply waits
    /// for [`PairingSession::handle_pin`].
    pub fn new(salt: [u8; SALT_LEN], client_cert_pem: Vec<u8>) -> Result<Self, PairingError> {
        let client_cert =
            X509::from_pem(&client_cert_pem).map_err(|_| PairingError::InvalidClientCert)?;
        Ok(PairingSession {
            phase: Phase::AwaitingPin,
            salt,
            client_cert_pem,
            client_cert,
        })
    }

    /// Starts a session from a [`PairRequest::GetServerCert`]; any other request is
    /// [`PairingError::OutOfOrder`] (there is no session yet to continue).
    pub fn from_request(request: &PairRequest) -> Result<Self, PairingError> {
        match request {
            PairRequest::GetServerCert {
                salt,
                client_cert_pem,
            } => Self::new(*salt, client_cert_pem.clone()),
            PairRequest::ClientChallenge(_) => {
                Err(PairingError::OutOfOrder(PairPhase::ClientChallenge))
            }
            PairRequest::ServerChallengeResp(_) => {
                Err(PairingError::OutOfOrder(PairPhase::ServerChallengeResp))
            }
            PairRequest::ClientPairingSecret(_) => {
                Err(PairingError::OutOfOrder(PairPhase::ClientPairingSecret))
            }
            PairRequest::PairChallenge => Err(PairingError::InvalidRequest),
        }
    }

    /// Where the session stands.
    pub fn state(&self) -> PairingState {
        match self.phase {
            Phase::AwaitingPin => PairingState::AwaitingPin,
            Phase::CertSent { .. } => PairingState::AwaitingClientChallenge,
            Phase::ChallengeSent { .. } => PairingState::AwaitingServerChallengeResp,
            Phase::SecretSent { .. } => PairingState::AwaitingClientPairingSecret,
            Phase::Finished => PairingState::Finished,
        }
    }

    /// The client certificate from stage 1 (PEM text).
    pub fn client_cert_pem(&self) -> &[u8] {
        &self.client_cert_pem
    }

    fn fail(&mut self, e: PairingError) -> PairingError {
        self.phase = Phase::Finished;
        e
    }

    /// Completes stage 1 with the PIN the user typed on the host: derives the AES key and
    /// returns the `plaincert` reply. A malformed PIN ([`validate_pin`]) is reported without
    /// changing the session, so the user can retry.
    pub fn handle_pin(
        &mut self,
        pin: &str,
        host: &HostIdentity,
    ) -> Result<PairReply, PairingError> {
        validate_pin(pin)?;
        if !matches!(self.phase, Phase::AwaitingPin) {
            return Err(self.fail(PairingError::OutOfOrder(PairPhase::GetServerCert)));
        }
        self.phase = Phase::CertSent {
            key: derive_key(&self.salt, pin),
        };
        Ok(PairReply {
            field: "plaincert",
            value: hex_encode_upper(host.cert_pem()),
        })
    }

    /// Stage 2: decrypts the client challenge `C1`, computes
    /// `E_K(H(C1 ‖ sig(hostcert) ‖ server_secret) ‖ server_challenge)` and returns it as
    /// `challengeresponse`. `server_secret` and `server_challenge` must be fresh random bytes.
    pub fn client_challenge(
        &mut self,
        host: &HostIdentity,
        encrypted_challenge: &[u8],
        server_secret: [u8; SECRET_LEN],
        server_challenge: [u8; SECRET_LEN],
    ) -> Result<PairReply, PairingError> {
        let Phase::CertSent { key } = self.phase else {
            return Err(self.fail(PairingError::OutOfOrder(PairPhase::ClientChallenge)));
        };
        let r = (|| {
            check_blocks(encrypted_challenge, "clientchallenge")?;
            let mut data = aes_ecb(&key, encrypted_challenge, false)?;
            data.extend_from_slice(host.signature());
            data.extend_from_slice(&server_secret);
            let mut plain = sha256(&data).to_vec();
            plain.extend_from_slice(&server_challenge);
            Ok(aes_ecb(&key, &plain, true)?)
        })();
        match r {
            Ok(enc) => {
                self.phase = Phase::ChallengeSent {
                    key,
                    server_secret,
                    server_challenge,
                };
                Ok(PairReply {
                    field: "challengeresponse",
                    value: hex_encode_upper(&enc),
                })
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Stage 3: decrypts and keeps the client's hash, and returns
    /// `server_secret ‖ Sign_host(server_secret)` as `pairingsecret`.
    pub fn server_challenge_response(
        &mut self,
        host: &HostIdentity,
        encrypted_response: &[u8],
    ) -> Result<PairReply, PairingError> {
        let Phase::ChallengeSent {
            key,
            server_secret,
            server_challenge,
        } = self.phase
        else {
            return Err(self.fail(PairingError::OutOfOrder(PairPhase::ServerChallengeResp)));
        };
        let r = (|| {
            check_blocks(encrypted_response, "serverchallengeresp")?;
            let client_hash = aes_ecb(&key, encrypted_response, false)?;
            let mut out = server_secret.to_vec();
            out.extend_from_slice(&host.sign(&server_secret)?);
            Ok::<_, PairingError>((client_hash, out))
        })();
        match r {
            Ok((client_hash, out)) => {
                self.phase = Phase::SecretSent {
                    server_challenge,
                    client_hash,
                };
                Ok(PairReply {
                    field: "pairingsecret",
                    value: hex_encode_upper(&out),
                })
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Stage 4: splits `C_secret ‖ signature`, checks
    /// `H(server_challenge ‖ sig(clientcert) ‖ C_secret)` against the stage-3 hash and the
    /// signature against the client certificate. The session is finished afterwards either way.
    pub fn client_pairing_secret(&mut self, data: &[u8]) -> Result<PairingOutcome, PairingError> {
        let Phase::SecretSent {
            server_challenge,
            ref client_hash,
        } = self.phase
        else {
            return Err(self.fail(PairingError::OutOfOrder(PairPhase::ClientPairingSecret)));
        };
        let client_hash = client_hash.clone();
        self.phase = Phase::Finished;
        if data.len() <= SECRET_LEN {
            return Err(PairingError::ClientSecretTooShort);
        }
        let (secret, signature) = data.split_at(SECRET_LEN);

        let mut hashed = server_challenge.to_vec();
        hashed.extend_from_slice(self.client_cert.signature().as_slice());
        hashed.extend_from_slice(secret);
        let hash_ok = sha256(&hashed).as_slice() == client_hash.as_slice();

        let pubkey = self
            .client_cert
            .public_key()
            .map_err(|_| PairingError::InvalidClientCert)?;
        let mut v = Verifier::new(MessageDigest::sha256(), &pubkey)?;
        v.update(secret)?;
        // A malformed signature is an OpenSSL error; treat it as "does not verify".
        let sig_ok = v.verify(signature).unwrap_or(false);

        Ok(match (hash_ok, sig_ok) {
            (true, true) => PairingOutcome::Paired {
                client_cert_pem: self.client_cert_pem.clone(),
            },
            (false, _) => PairingOutcome::Rejected(RejectReason::HashMismatch),
            (true, false) => PairingOutcome::Rejected(RejectReason::BadSignature),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `nvhttp_query` fuzz target: a salt whose 32nd byte falls inside a
    /// multi-byte character (`%C7%9B` after 31 hex digits) panicked in `copy_from_slice`.
    #[test]
    fn a_salt_cut_inside_a_character_is_refused() {
        let q = Query::parse(
            "uniqueid=0123456789ABCDEF&phrase=getservercert\
             &salt=69b758eea87b44a1b1316678f4702fe%C7%9B2d2d&clientcert=00",
        );
        assert!(matches!(
            PairQuery::parse(&q),
            Err(PairingError::InvalidHex("salt"))
        ));
        let fuzzed = b"uniqueid=c9cd2735b96dcb29aca35ce=1&phrase=getservercert\
            &salt=69b758eea87b44\0\0\0b1316678f4702=\xc7\x9b2d2d2d9053e0e&app0b4e4d64und2d2d2d2d0a";
        let q = Query::parse(std::str::from_utf8(fuzzed).unwrap());
        assert!(PairQuery::parse(&q).is_err());
    }

    #[test]
    fn pin_rules() {
        assert!(validate_pin("0123").is_ok());
        assert_eq!(
            validate_pin("123").unwrap_err().status_message(),
            "Pin must be 4 digits, 3 provided"
        );
        assert_eq!(
            validate_pin("12a4").unwrap_err().status_message(),
            "Pin must be numeric"
        );
    }

    #[test]
    fn ecb_round_trip() {
        let k = [7u8; 16];
        let d = [1u8; 48];
        let e = aes_ecb(&k, &d, true).unwrap();
        assert_eq!(e.len(), 48);
        assert_eq!(&e[..16], &e[16..32]);
        assert_eq!(aes_ecb(&k, &e, false).unwrap(), d);
        assert!(aes_ecb(&k, &d[..15], true).is_err());
    }

    #[test]
    fn parse_pair_queries() {
        let q = Query::parse(
            "uniqueid=abc&phrase=getservercert&salt=00112233445566778899aabbccddeeff&clientcert=41",
        );
        let p = PairQuery::parse(&q).unwrap();
        assert_eq!(p.unique_id, "abc");
        assert!(
            matches!(p.request, PairRequest::GetServerCert { ref client_cert_pem, .. } if client_cert_pem == b"A")
        );

        let e = PairQuery::parse(&Query::parse("phrase=getservercert")).unwrap_err();
        assert_eq!(
            (e.status_code(), e.status_message().as_str()),
            (400, "Missing uniqueid parameter")
        );
        let e = PairQuery::parse(&Query::parse(
            "uniqueid=a&phrase=getservercert&salt=0011&clientcert=41",
        ))
        .unwrap_err();
        assert_eq!(e.status_message(), "Salt too short");
        let e = PairQuery::parse(&Query::parse("uniqueid=a&devicename=roth")).unwrap_err();
        assert_eq!(
            (e.status_code(), e.status_message().as_str()),
            (404, "Invalid pairing request")
        );
        let e = PairQuery::parse(&Query::parse("uniqueid=a&clientchallenge=xyz")).unwrap_err();
        assert!(matches!(e, PairingError::InvalidHex("clientchallenge")));
        let p = PairQuery::parse(&Query::parse("uniqueid=a&phrase=pairchallenge")).unwrap();
        assert_eq!(p.request, PairRequest::PairChallenge);
        assert!(pair_challenge_xml().contains("<paired>1</paired>"));
    }

    #[test]
    fn bad_cert_is_rejected() {
        let e = PairingSession::new([0; 16], b"not a cert".to_vec()).unwrap_err();
        assert_eq!(e.status_message(), "Invalid client certificate");
        assert_eq!(
            e.to_xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"400\" status_message=\"Invalid client certificate\"><paired>0</paired></root>"
        );
    }
}
