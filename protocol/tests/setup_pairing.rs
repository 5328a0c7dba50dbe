//! Pairing end to end: a Moonlight-style client (written here, following
//! moonlight-qt's `NvPairingManager::pair`) against the host's `PairingSession`, through the
//! real query strings and XML replies. Plus a recorded exchange replayed byte for byte.
//!
//! Regenerate the vectors with
//! `PUNKTFUNK_REGEN_VECTORS=1 cargo test -p protocol --test setup_pairing -- --ignored`.

use std::path::PathBuf;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sha::sha256;
use openssl::sign::{Signer, Verifier};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use protocol::nvhttp::{hex_decode, hex_encode_lower, Query};
use protocol::pairing::{
    aes_ecb, derive_key, HostIdentity, PairPhase, PairQuery, PairRequest, PairingError,
    PairingOutcome, PairingSession, PairingState, RejectReason,
};

const NOT_BEFORE: i64 = 1_700_000_000;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/setup/pairing")
}

/// The client identity as moonlight-qt creates it: RSA-2048, v3, serial 0,
/// `CN=NVIDIA GameStream Client`, 20 years, SHA-256.
struct Client {
    key: PKey<Private>,
    cert: X509,
    cert_pem: Vec<u8>,
}

impl Client {
    fn generate() -> Client {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "NVIDIA GameStream Client")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(0).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_not_before(&Asn1Time::from_unix(NOT_BEFORE).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(NOT_BEFORE + 20 * 365 * 86400).unwrap())
            .unwrap();
        b.set_pubkey(&key).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let cert_pem = cert.to_pem().unwrap();
        Client {
            key,
            cert,
            cert_pem,
        }
    }

    fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Client {
        let cert = X509::from_pem(cert_pem).unwrap();
        Client {
            key: PKey::private_key_from_pem(key_pem).unwrap(),
            cert_pem: cert.to_pem().unwrap(),
            cert,
        }
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        s.update(data).unwrap();
        s.sign_to_vec().unwrap()
    }
}

/// The random values of one exchange.
#[derive(Clone)]
struct Randomness {
    salt: [u8; 16],
    client_challenge: [u8; 16],
    server_secret: [u8; 16],
    server_challenge: [u8; 16],
    client_secret: [u8; 16],
}

fn fixed_randomness() -> Randomness {
    let r = |seed: u8| std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
    Randomness {
        salt: r(1),
        client_challenge: r(2),
        server_secret: r(3),
        server_challenge: r(4),
        client_secret: r(5),
    }
}

/// Extracts `<name>value</name>` (or empty for `<name/>`) and the root status_code.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    if let Some(i) = xml.find(&open) {
        let rest = &xml[i + open.len()..];
        let end = rest.find(&format!("</{name}>"))?;
        return Some(rest[..end].to_owned());
    }
    xml.contains(&format!("<{name}/>")).then(String::new)
}

fn status_code(xml: &str) -> i32 {
    let i = xml.find("status_code=\"").unwrap() + 13;
    xml[i..i + xml[i..].find('"').unwrap()].parse().unwrap()
}

/// Everything that crossed the wire in one exchange.
#[derive(Default, Debug)]
struct Transcript {
    plaincert: Vec<u8>,
    clientchallenge: Vec<u8>,
    challengeresponse: Vec<u8>,
    serverchallengeresp: Vec<u8>,
    pairingsecret: Vec<u8>,
    clientpairingsecret: Vec<u8>,
    stage4_xml: String,
    outcome: Option<PairingOutcome>,
}

#[derive(Debug, PartialEq, Eq)]
enum ClientVerdict {
    Paired,
    IncorrectPin,
    Mitm,
}

/// One host-side `/pair` round: parse the query as the glue would, dispatch to the session.
fn host_round(
    host: &HostIdentity,
    session: &mut Option<PairingSession>,
    query: &str,
    rnd: &Randomness,
) -> String {
    let q = Query::parse(query);
    let pq = match PairQuery::parse(&q) {
        Ok(pq) => pq,
        Err(e) => return e.to_xml(),
    };
    let Some(sess) = session.as_mut() else {
        return PairingError::UnknownUniqueId.to_xml();
    };
    let r = match &pq.request {
        PairRequest::ClientChallenge(c) => sess
            .client_challenge(host, c, rnd.server_secret, rnd.server_challenge)
            .map(|r| r.to_xml()),
        PairRequest::ServerChallengeResp(c) => {
            sess.server_challenge_response(host, c).map(|r| r.to_xml())
        }
        PairRequest::ClientPairingSecret(c) => sess.client_pairing_secret(c).map(|o| o.to_xml()),
        other => panic!("unexpected {other:?}"),
    };
    r.unwrap_or_else(|e| {
        *session = None;
        e.to_xml()
    })
}

/// Runs the whole exchange: client (PIN `client_pin`) against host (PIN `host_pin`). The
/// client follows moonlight-qt, except that with `keep_going` it continues to stage 4 after
/// detecting a wrong PIN (to check the host refuses).
fn run_pairing(
    host: &HostIdentity,
    client: &Client,
    client_pin: &str,
    host_pin: &str,
    rnd: &Randomness,
    keep_going: bool,
) -> (ClientVerdict, Transcript) {
    let mut t = Transcript::default();
    let uid = "uniqueid=0123456789abcdef&uuid=11111111111111111111111111111111&devicename=roth&updateState=1";

    // Stage 1.
    let q1 = format!(
        "{uid}&phrase=getservercert&salt={}&clientcert={}",
        hex_encode_lower(&rnd.salt),
        hex_encode_lower(&client.cert_pem)
    );
    let pq = PairQuery::parse(&Query::parse(&q1)).unwrap();
    assert_eq!(pq.unique_id, "0123456789abcdef");
    let mut session = Some(PairingSession::from_request(&pq.request).unwrap());
    assert_eq!(session.as_ref().unwrap().state(), PairingState::AwaitingPin);
    let xml1 = session
        .as_mut()
        .unwrap()
        .handle_pin(host_pin, host)
        .unwrap()
        .to_xml();
    assert_eq!(status_code(&xml1), 200);
    assert_eq!(xml_field(&xml1, "paired").as_deref(), Some("1"));
    t.plaincert = hex_decode(&xml_field(&xml1, "plaincert").unwrap()).unwrap();
    let server_cert = X509::from_pem(&t.plaincert).unwrap();
    let server_sig = server_cert.signature().as_slice().to_vec();

    let key = derive_key(&rnd.salt, client_pin);

    // Stage 2.
    t.clientchallenge = aes_ecb(&key, &rnd.client_challenge, true).unwrap();
    let xml2 = host_round(
        host,
        &mut session,
        &format!(
            "{uid}&clientchallenge={}",
            hex_encode_lower(&t.clientchallenge)
        ),
        rnd,
    );
    assert_eq!(status_code(&xml2), 200);
    assert_eq!(xml_field(&xml2, "paired").as_deref(), Some("1"));
    t.challengeresponse = hex_decode(&xml_field(&xml2, "challengeresponse").unwrap()).unwrap();
    let dec = aes_ecb(&key, &t.challengeresponse, false).unwrap();
    assert!(dec.len() >= 48);
    let server_response = dec[..32].to_vec();
    let server_challenge: [u8; 16] = dec[32..48].try_into().unwrap();

    // Stage 3.
    let mut h = server_challenge.to_vec();
    h.extend_from_slice(client.cert.signature().as_slice());
    h.extend_from_slice(&rnd.client_secret);
    let hash = sha256(&h);
    t.serverchallengeresp = aes_ecb(&key, &hash, true).unwrap();
    let xml3 = host_round(
        host,
        &mut session,
        &format!(
            "{uid}&serverchallengeresp={}",
            hex_encode_lower(&t.serverchallengeresp)
        ),
        rnd,
    );
    assert_eq!(status_code(&xml3), 200);
    t.pairingsecret = hex_decode(&xml_field(&xml3, "pairingsecret").unwrap()).unwrap();
    assert!(t.pairingsecret.len() > 16);
    let (server_secret, server_signature) = t.pairingsecret.split_at(16);

    // The client's checks: signature first ("MITM"), then the hash ("Incorrect PIN").
    let mut verdict = ClientVerdict::Paired;
    let server_key = server_cert.public_key().unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &server_key).unwrap();
    v.update(server_secret).unwrap();
    if !v.verify(server_signature).unwrap_or(false) {
        verdict = ClientVerdict::Mitm;
    } else {
        let mut e = rnd.client_challenge.to_vec();
        e.extend_from_slice(&server_sig);
        e.extend_from_slice(server_secret);
        if sha256(&e).as_slice() != server_response.as_slice() {
            verdict = ClientVerdict::IncorrectPin;
        }
    }
    if verdict != ClientVerdict::Paired && !keep_going {
        return (verdict, t);
    }

    // Stage 4.
    t.clientpairingsecret = rnd.client_secret.to_vec();
    t.clientpairingsecret
        .extend_from_slice(&client.sign(&rnd.client_secret));
    let mut sess_copy = session.clone();
    t.stage4_xml = host_round(
        host,
        &mut session,
        &format!(
            "{uid}&clientpairingsecret={}",
            hex_encode_lower(&t.clientpairingsecret)
        ),
        rnd,
    );
    t.outcome = Some(
        sess_copy
            .as_mut()
            .unwrap()
            .client_pairing_secret(&t.clientpairingsecret)
            .unwrap(),
    );
    assert_eq!(session.as_ref().unwrap().state(), PairingState::Finished);
    if xml_field(&t.stage4_xml, "paired").as_deref() != Some("1")
        && verdict == ClientVerdict::Paired
    {
        panic!("host refused a correct pairing: {}", t.stage4_xml);
    }
    (verdict, t)
}

fn fresh_host() -> HostIdentity {
    HostIdentity::generate(NOT_BEFORE).unwrap()
}

#[test]
fn host_identity_properties() {
    let host = fresh_host();
    let cert = X509::from_pem(host.cert_pem()).unwrap();
    assert_eq!(cert.version(), 2);
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(cn, "punktfunk");
    assert_eq!(
        cert.issuer_name().to_der().unwrap(),
        cert.subject_name().to_der().unwrap()
    );
    assert_eq!(
        cert.signature_algorithm().object().nid(),
        openssl::nid::Nid::SHA256WITHRSAENCRYPTION
    );
    assert_eq!(cert.public_key().unwrap().bits(), 2048);
    let serial = cert.serial_number().to_bn().unwrap();
    assert!(!serial.is_negative() && serial.num_bits() > 0 && serial.num_bits() <= 159);
    assert!(cert.not_before() == Asn1Time::from_unix(NOT_BEFORE).unwrap());
    let diff = cert.not_before().diff(cert.not_after()).unwrap();
    assert_eq!(diff.days, 20 * 365);
    assert_eq!(host.signature().len(), 256);
    assert_eq!(host.signature(), cert.signature().as_slice());
    assert_eq!(host.cert_der(), cert.to_der().unwrap());
    assert!(cert.verify(&cert.public_key().unwrap()).unwrap());

    // Round trip through PEM.
    let again = HostIdentity::from_pem(host.cert_pem(), host.key_pem()).unwrap();
    assert_eq!(again.cert_pem(), host.cert_pem());
    assert_eq!(again.signature(), host.signature());
    // A key that is not the cert's is refused.
    let other = fresh_host();
    assert!(HostIdentity::from_pem(host.cert_pem(), other.key_pem()).is_err());
}

#[test]
fn right_pin_pairs() {
    let host = fresh_host();
    let client = Client::generate();
    let (verdict, t) = run_pairing(&host, &client, "4711", "4711", &fixed_randomness(), false);
    assert_eq!(verdict, ClientVerdict::Paired);
    assert_eq!(t.plaincert, host.cert_pem());
    assert_eq!(xml_field(&t.stage4_xml, "paired").as_deref(), Some("1"));
    assert_eq!(
        t.outcome,
        Some(PairingOutcome::Paired {
            client_cert_pem: client.cert_pem.clone()
        })
    );
}

#[test]
fn wrong_pin_detected_by_client_and_not_paired_by_host() {
    let host = fresh_host();
    let client = Client::generate();
    let (verdict, _) = run_pairing(&host, &client, "1234", "1243", &fixed_randomness(), false);
    assert_eq!(verdict, ClientVerdict::IncorrectPin);

    // A client that ignores the mismatch and sends stage 4 anyway is not paired.
    let (verdict, t) = run_pairing(&host, &client, "1234", "1243", &fixed_randomness(), true);
    assert_eq!(verdict, ClientVerdict::IncorrectPin);
    assert_eq!(status_code(&t.stage4_xml), 200);
    assert_eq!(xml_field(&t.stage4_xml, "paired").as_deref(), Some("0"));
    assert_eq!(
        t.outcome,
        Some(PairingOutcome::Rejected(RejectReason::HashMismatch))
    );
}

#[test]
fn bad_client_signature_is_rejected() {
    let host = fresh_host();
    let client = Client::generate();
    let rnd = fixed_randomness();
    let mut sess = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    sess.handle_pin("0000", &host).unwrap();
    let key = derive_key(&rnd.salt, "0000");
    let c = aes_ecb(&key, &rnd.client_challenge, true).unwrap();
    let r = sess
        .client_challenge(&host, &c, rnd.server_secret, rnd.server_challenge)
        .unwrap();
    let dec = aes_ecb(&key, &hex_decode(&r.value).unwrap(), false).unwrap();
    let mut h = dec[32..48].to_vec();
    h.extend_from_slice(client.cert.signature().as_slice());
    h.extend_from_slice(&rnd.client_secret);
    let enc = aes_ecb(&key, &sha256(&h), true).unwrap();
    sess.server_challenge_response(&host, &enc).unwrap();
    let mut secret = rnd.client_secret.to_vec();
    let mut sig = client.sign(&rnd.client_secret);
    sig[10] ^= 1;
    secret.extend_from_slice(&sig);
    assert_eq!(
        sess.client_pairing_secret(&secret).unwrap(),
        PairingOutcome::Rejected(RejectReason::BadSignature)
    );
}

#[test]
fn out_of_order_and_malformed() {
    let host = fresh_host();
    let client = Client::generate();
    let rnd = fixed_randomness();

    // Stage 2 before the PIN.
    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    let e = s
        .client_challenge(&host, &[0; 16], rnd.server_secret, rnd.server_challenge)
        .unwrap_err();
    assert!(matches!(
        e,
        PairingError::OutOfOrder(PairPhase::ClientChallenge)
    ));
    assert_eq!(e.status_code(), 400);
    assert_eq!(
        e.to_xml(),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"400\" status_message=\"Out of order call to clientchallenge\"><paired>0</paired></root>"
    );
    assert_eq!(s.state(), PairingState::Finished);
    // Once failed, everything is out of order.
    assert!(matches!(
        s.handle_pin("1234", &host),
        Err(PairingError::OutOfOrder(PairPhase::GetServerCert))
    ));

    // Stage 4 right after stage 2.
    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    // A malformed PIN does not end the session.
    assert!(matches!(
        s.handle_pin("12345", &host),
        Err(PairingError::PinLength(5))
    ));
    assert_eq!(s.state(), PairingState::AwaitingPin);
    s.handle_pin("1234", &host).unwrap();
    assert!(matches!(
        s.handle_pin("1234", &host),
        Err(PairingError::OutOfOrder(PairPhase::GetServerCert))
    ));

    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    s.handle_pin("1234", &host).unwrap();
    s.client_challenge(&host, &[0; 16], rnd.server_secret, rnd.server_challenge)
        .unwrap();
    assert!(matches!(
        s.client_pairing_secret(&[0; 300]),
        Err(PairingError::OutOfOrder(PairPhase::ClientPairingSecret))
    ));

    // Bad lengths.
    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    s.handle_pin("1234", &host).unwrap();
    let e = s
        .client_challenge(&host, &[0; 15], rnd.server_secret, rnd.server_challenge)
        .unwrap_err();
    assert_eq!(e.status_message(), "Invalid length of clientchallenge");

    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    s.handle_pin("1234", &host).unwrap();
    s.client_challenge(&host, &[0; 16], rnd.server_secret, rnd.server_challenge)
        .unwrap();
    s.server_challenge_response(&host, &[0; 32]).unwrap();
    let e = s.client_pairing_secret(&[0; 16]).unwrap_err();
    assert_eq!(e.status_message(), "Client pairing secret too short");

    // Stage 2 with no session at all.
    let e = PairingSession::from_request(&PairRequest::ClientChallenge(vec![0; 16])).unwrap_err();
    assert_eq!(e.status_message(), "Out of order call to clientchallenge");

    // Query-level failures.
    for (q, code, msg) in [
        (
            "phrase=getservercert&salt=00&clientcert=00",
            400,
            "Missing uniqueid parameter",
        ),
        (
            "uniqueid=x&phrase=getservercert&salt=0011&clientcert=00",
            400,
            "Salt too short",
        ),
        (
            "uniqueid=x&phrase=getservercert&clientcert=00",
            400,
            "Salt too short",
        ),
        (
            "uniqueid=x&phrase=getservercert&salt=zz112233445566778899aabbccddeeff&clientcert=00",
            400,
            "Invalid hex in salt",
        ),
        (
            "uniqueid=x&phrase=getservercert&salt=00112233445566778899aabbccddeeff",
            400,
            "Missing clientcert parameter",
        ),
        (
            "uniqueid=x&phrase=getservercert&salt=00112233445566778899aabbccddeeff&clientcert=0g",
            400,
            "Invalid hex in clientcert",
        ),
        (
            "uniqueid=x&serverchallengeresp=abc",
            400,
            "Invalid hex in serverchallengeresp",
        ),
        ("uniqueid=x&phrase=bogus", 404, "Invalid pairing request"),
    ] {
        let e = PairQuery::parse(&Query::parse(q)).unwrap_err();
        assert_eq!(
            (e.status_code(), e.status_message().as_str()),
            (code, msg),
            "{q}"
        );
    }

    // A client cert that does not parse.
    let q =
        "uniqueid=x&phrase=getservercert&salt=00112233445566778899aabbccddeeff&clientcert=414243";
    let pq = PairQuery::parse(&Query::parse(q)).unwrap();
    let e = PairingSession::from_request(&pq.request).unwrap_err();
    assert_eq!(e.status_message(), "Invalid client certificate");
}

fn read_hex(name: &str) -> Vec<u8> {
    let s =
        std::fs::read_to_string(vectors_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    hex_decode(s.trim()).unwrap()
}

fn read_16(name: &str) -> [u8; 16] {
    read_hex(name).try_into().unwrap()
}

fn recorded() -> (HostIdentity, Client, Randomness, String) {
    let d = vectors_dir();
    let host = HostIdentity::from_pem(
        &std::fs::read(d.join("host_cert.pem")).unwrap(),
        &std::fs::read(d.join("host_key.pem")).unwrap(),
    )
    .unwrap();
    let client = Client::from_pem(
        &std::fs::read(d.join("client_cert.pem")).unwrap(),
        &std::fs::read(d.join("client_key.pem")).unwrap(),
    );
    let rnd = Randomness {
        salt: read_16("salt.hex"),
        client_challenge: read_16("client_challenge_plain.hex"),
        server_secret: read_16("server_secret.hex"),
        server_challenge: read_16("server_challenge.hex"),
        client_secret: read_16("client_secret.hex"),
    };
    let pin = std::fs::read_to_string(d.join("pin.txt"))
        .unwrap()
        .trim()
        .to_owned();
    (host, client, rnd, pin)
}

/// Replays the recorded exchange: the host, fed the recorded client messages and randomness,
/// must produce the recorded replies byte for byte (and so must the test client).
#[test]
fn recorded_exchange_replays() {
    let (host, client, rnd, pin) = recorded();

    // Host side alone, from the recorded client messages.
    let mut s = PairingSession::new(rnd.salt, client.cert_pem.clone()).unwrap();
    let r1 = s.handle_pin(&pin, &host).unwrap();
    assert_eq!(hex_decode(&r1.value).unwrap(), read_hex("plaincert.hex"));
    let r2 = s
        .client_challenge(
            &host,
            &read_hex("clientchallenge.hex"),
            rnd.server_secret,
            rnd.server_challenge,
        )
        .unwrap();
    assert_eq!(r2.field, "challengeresponse");
    assert_eq!(
        hex_decode(&r2.value).unwrap(),
        read_hex("challengeresponse.hex")
    );
    let r3 = s
        .server_challenge_response(&host, &read_hex("serverchallengeresp.hex"))
        .unwrap();
    assert_eq!(r3.field, "pairingsecret");
    assert_eq!(
        hex_decode(&r3.value).unwrap(),
        read_hex("pairingsecret.hex")
    );
    let out = s
        .client_pairing_secret(&read_hex("clientpairingsecret.hex"))
        .unwrap();
    assert_eq!(
        out,
        PairingOutcome::Paired {
            client_cert_pem: client.cert_pem.clone()
        }
    );

    // The whole exchange again, with the test client producing the client messages.
    let (verdict, t) = run_pairing(&host, &client, &pin, &pin, &rnd, false);
    assert_eq!(verdict, ClientVerdict::Paired);
    assert_eq!(t.clientchallenge, read_hex("clientchallenge.hex"));
    assert_eq!(t.serverchallengeresp, read_hex("serverchallengeresp.hex"));
    assert_eq!(t.clientpairingsecret, read_hex("clientpairingsecret.hex"));
    assert_eq!(t.challengeresponse, read_hex("challengeresponse.hex"));
    assert_eq!(t.pairingsecret, read_hex("pairingsecret.hex"));
}

#[test]
#[ignore = "writes tests/vectors/setup/pairing; run with PUNKTFUNK_REGEN_VECTORS=1"]
fn regenerate_pairing_vectors() {
    if std::env::var_os("PUNKTFUNK_REGEN_VECTORS").is_none() {
        return;
    }
    let d = vectors_dir();
    std::fs::create_dir_all(&d).unwrap();
    let host = fresh_host();
    let client = Client::generate();
    let rnd = fixed_randomness();
    let pin = "5309";
    let (verdict, t) = run_pairing(&host, &client, pin, pin, &rnd, false);
    assert_eq!(verdict, ClientVerdict::Paired);
    let w = |name: &str, data: &[u8]| std::fs::write(d.join(name), data).unwrap();
    let wh = |name: &str, data: &[u8]| w(name, format!("{}\n", hex_encode_lower(data)).as_bytes());
    w("host_cert.pem", host.cert_pem());
    w("host_key.pem", host.key_pem());
    w("client_cert.pem", &client.cert_pem);
    w(
        "client_key.pem",
        &client.key.private_key_to_pem_pkcs8().unwrap(),
    );
    w("pin.txt", format!("{pin}\n").as_bytes());
    wh("salt.hex", &rnd.salt);
    wh("client_challenge_plain.hex", &rnd.client_challenge);
    wh("server_secret.hex", &rnd.server_secret);
    wh("server_challenge.hex", &rnd.server_challenge);
    wh("client_secret.hex", &rnd.client_secret);
    wh("plaincert.hex", &t.plaincert);
    wh("clientchallenge.hex", &t.clientchallenge);
    wh("challengeresponse.hex", &t.challengeresponse);
    wh("serverchallengeresp.hex", &t.serverchallengeresp);
    wh("pairingsecret.hex", &t.pairingsecret);
    wh("clientpairingsecret.hex", &t.clientpairingsecret);
}
