//! `/pair`: drives [`protocol::pairing::PairingSession`] for each client.
//!
//! Stage 1 parks the client's request until someone hands the host the PIN the client shows
//! (`punktfunk pair PIN`, through the management endpoint); stages 2-4 continue the session
//! kept under the client's `uniqueid` and address ([`pairing_key`]); stage 5 arrives over HTTPS
//! with the certificate that stage 4 stored.
//!
//! A client that asks again while its first request still waits for the PIN (the user
//! cancelled on the TV and retried) replaces that request: the earlier one is answered with an
//! error, the new one waits for the PIN.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::nvhttp::{self as xml, Query};
use protocol::pairing::{PairQuery, PairRequest, PairingError, PairingOutcome, PairingSession};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::nvhttp::Peer;
use super::GameStream;

/// How long stage 1 waits for the PIN before giving up.
pub const PIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Under which key a client's pairing waits: its `uniqueid` and its address. Every Moonlight
/// client sends the same `uniqueid`, so two devices pairing at once are told apart by address.
pub fn pairing_key(uniqueid: &str, ip: IpAddr) -> String {
    format!("{uniqueid}@{ip}")
}

/// A pairing waiting for its PIN or for its next stage.
pub struct PendingPairing {
    /// The pairing state machine.
    pub machine: PairingSession,
    /// Where the PIN goes while stage 1 waits for it.
    pub pin_tx: Option<oneshot::Sender<String>>,
    /// When it started.
    pub started: Instant,
    /// Tells this request from a newer one of the same client that replaced it.
    pub serial: u64,
    /// The client's `uniqueid`.
    pub uniqueid: String,
}

/// The client address of a pairing's key ([`pairing_key`]), IPv4 clients of the dual-stack
/// ports (IPv4-mapped IPv6 addresses) as IPv4.
fn pairing_address(key: &str) -> Option<IpAddr> {
    let ip: IpAddr = key.rsplit('@').next()?.parse().ok()?;
    Some(ip.to_canonical())
}

impl GameStream {
    /// Hands `pin` to the oldest pairing that waits for one, from `from` when given (so that
    /// the PIN reaches the device that shows it, not an attempt another device abandoned);
    /// returns its client's uniqueid.
    pub fn submit_pin(&self, pin: &str, from: Option<IpAddr>) -> Option<String> {
        let mut pairings = self.lock_pairings();
        let p = pairings
            .iter_mut()
            .filter(|(key, p)| {
                p.pin_tx.is_some()
                    && from.is_none_or(|want| pairing_address(key) == Some(want.to_canonical()))
            })
            .map(|(_, p)| p)
            .min_by_key(|p| p.started)?;
        let tx = p.pin_tx.take()?;
        tx.send(pin.to_string()).ok()?;
        Some(p.uniqueid.clone())
    }

    /// The pairings that wait for a PIN, oldest first: the one [`GameStream::submit_pin`]
    /// serves.
    pub fn pending_pairings(&self) -> Vec<crate::web::model::PendingPairing> {
        let pairings = self.lock_pairings();
        let mut waiting: Vec<(&String, &PendingPairing)> = pairings
            .iter()
            .filter(|(_, p)| p.pin_tx.is_some())
            .collect();
        waiting.sort_by_key(|(_, p)| p.started);
        waiting
            .into_iter()
            .map(|(key, p)| crate::web::model::PendingPairing {
                uniqueid: p.uniqueid.clone(),
                address: pairing_address(key)
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
                waiting_s: p.started.elapsed().as_secs(),
            })
            .collect()
    }
}

/// Answers one `/pair` request.
pub async fn handle(gs: &Arc<GameStream>, peer: &Peer, query: &Query) -> String {
    let host = &gs.host;
    let pq = match PairQuery::parse(query) {
        Ok(pq) => pq,
        Err(e) => {
            warn!(remote = %peer.remote, %e, "bad pairing request");
            return e.to_xml();
        }
    };
    let uid = pq.unique_id.clone();
    let key = pairing_key(&uid, peer.remote.ip());
    match pq.request {
        PairRequest::PairChallenge => {
            let paired = peer
                .cert
                .as_deref()
                .is_some_and(|der| host.paired_client(der).is_some());
            if paired {
                protocol::pairing::pair_challenge_xml()
            } else {
                xml::unauthorized_xml("/pair")
            }
        }
        PairRequest::GetServerCert { .. } if peer.cert.is_some() => {
            PairingError::InvalidRequest.to_xml()
        }
        ref request @ PairRequest::GetServerCert { .. } => {
            let machine = match PairingSession::from_request(request) {
                Ok(m) => m,
                Err(e) => return e.to_xml(),
            };
            static SERIAL: AtomicU64 = AtomicU64::new(0);
            let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let replaced = gs.lock_pairings().insert(
                key.clone(),
                PendingPairing {
                    machine,
                    pin_tx: Some(tx),
                    started: Instant::now(),
                    serial,
                    uniqueid: uid.clone(),
                },
            );
            if let Some(earlier) = replaced {
                // Its PIN sender goes with it, which answers the earlier request.
                drop(earlier);
                info!(remote = %peer.remote, uniqueid = %uid, "the client asked to pair again; its earlier request is dropped");
            }
            info!(remote = %peer.remote, uniqueid = %uid, "pairing requested; waiting for the PIN (punktfunk pair PIN)");
            let pin = match tokio::time::timeout(PIN_TIMEOUT, rx).await {
                Ok(Ok(pin)) => pin,
                // The sender was dropped: a newer request of the same client took the place.
                Ok(Err(_)) => {
                    return xml::pair_error_xml(400, "A newer pairing request replaced this one")
                }
                Err(_) => {
                    let mut pairings = gs.lock_pairings();
                    if pairings.get(&key).is_some_and(|p| p.serial == serial) {
                        pairings.remove(&key);
                    }
                    warn!(uniqueid = %uid, "no PIN was entered; pairing abandoned");
                    return xml::pair_error_xml(400, "No PIN was entered on the host");
                }
            };
            // Only on this request's own session: a newer request may have replaced it since.
            with_session(gs, &key, Some(serial), |m| {
                m.handle_pin(&pin, &host.identity).map(|r| r.to_xml())
            })
        }
        PairRequest::ClientChallenge(data) => with_session(gs, &key, None, |m| {
            let mut secret = [0u8; 16];
            let mut challenge = [0u8; 16];
            openssl::rand::rand_bytes(&mut secret)?;
            openssl::rand::rand_bytes(&mut challenge)?;
            m.client_challenge(&host.identity, &data, secret, challenge)
                .map(|r| r.to_xml())
        }),
        PairRequest::ServerChallengeResp(data) => with_session(gs, &key, None, |m| {
            m.server_challenge_response(&host.identity, &data)
                .map(|r| r.to_xml())
        }),
        PairRequest::ClientPairingSecret(data) => {
            let outcome = with_session_outcome(gs, &key, None, |m| m.client_pairing_secret(&data));
            match outcome {
                Ok(PairingOutcome::Paired { client_cert_pem }) => {
                    let pem = String::from_utf8_lossy(&client_cert_pem).into_owned();
                    match host.add_paired_client(pem, &uid) {
                        Ok(_) => PairingOutcome::Paired {
                            client_cert_pem: Vec::new(),
                        }
                        .to_xml(),
                        Err(e) => {
                            warn!(uniqueid = %uid, err = %format!("{e:#}"), "cannot save a paired client; it is not paired");
                            // The client hears the cause, not the host's paths.
                            let cause = e.root_cause();
                            xml::pair_error_xml(500, &format!("Cannot save the pairing: {cause}"))
                        }
                    }
                }
                Ok(rejected) => {
                    warn!(uniqueid = %uid, ?rejected, "pairing rejected (wrong PIN?)");
                    rejected.to_xml()
                }
                Err(e) => e.to_xml(),
            }
        }
    }
}

fn with_session(
    gs: &GameStream,
    key: &str,
    serial: Option<u64>,
    f: impl FnOnce(&mut PairingSession) -> Result<String, PairingError>,
) -> String {
    match with_session_outcome(gs, key, serial, f) {
        Ok(xml) => xml,
        Err(e) => {
            warn!(pairing = %key, %e, "pairing step failed");
            e.to_xml()
        }
    }
}

/// Runs `f` on the pairing session under `key` ([`pairing_key`]), and with `serial` only if it
/// is that request's; the session is dropped when it is finished or failed.
fn with_session_outcome<T>(
    gs: &GameStream,
    key: &str,
    serial: Option<u64>,
    f: impl FnOnce(&mut PairingSession) -> Result<T, PairingError>,
) -> Result<T, PairingError> {
    let mut pairings = gs.lock_pairings();
    let Some(p) = pairings
        .get_mut(key)
        .filter(|p| serial.is_none_or(|s| s == p.serial))
    else {
        return Err(PairingError::UnknownUniqueId);
    };
    let result = f(&mut p.machine);
    if result.is_err() || p.machine.state() == protocol::pairing::PairingState::Finished {
        pairings.remove(key);
    }
    result
}
