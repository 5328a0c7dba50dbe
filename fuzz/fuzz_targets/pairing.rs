//! GameStream pairing: `/pair` queries, one per line, driving one host-side pairing session
//! through its stages (certificate PEM, hex, AES-ECB blocks, signatures).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use protocol::nvhttp::Query;
use protocol::pairing::{HostIdentity, PairQuery, PairRequest, PairingSession};

fn host() -> &'static HostIdentity {
    static HOST: OnceLock<HostIdentity> = OnceLock::new();
    HOST.get_or_init(|| HostIdentity::generate(0).expect("a host identity"))
}

fuzz_target!(|data: &[u8]| {
    let mut session: Option<PairingSession> = None;
    for line in data.split(|&b| b == b'\n').take(8) {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        let query = match PairQuery::parse(&Query::parse(text)) {
            Ok(q) => q,
            Err(e) => {
                let _ = e.to_xml();
                continue;
            }
        };
        let reply = match (&mut session, &query.request) {
            (None, request) => match PairingSession::from_request(request) {
                Ok(mut s) => {
                    let r = s.handle_pin("1234", host()).map(|r| r.to_xml());
                    session = Some(s);
                    r
                }
                Err(e) => Err(e),
            },
            (Some(s), PairRequest::ClientChallenge(c)) => s
                .client_challenge(host(), c, [1; 16], [2; 16])
                .map(|r| r.to_xml()),
            (Some(s), PairRequest::ServerChallengeResp(c)) => {
                s.server_challenge_response(host(), c).map(|r| r.to_xml())
            }
            (Some(s), PairRequest::ClientPairingSecret(c)) => {
                s.client_pairing_secret(c).map(|o| o.to_xml())
            }
            (Some(_), _) => continue,
        };
        if let Err(e) = reply {
            let _ = (e.status_code(), e.status_message(), e.to_xml());
        }
    }
});
