//! The management endpoint (HTTP + JSON on loopback, base port + 1) and the CLI commands that
//! use it.
//!
//! Every route needs `Authorization: Bearer <token>`, the token being the content of
//! `mgmt-token` in the data directory (created with mode 0600 on first start), so only users
//! who can read the data directory can drive the host.
//!
//! Routes:
//! - `POST /api/pair` `{"pin":"1234"}`: hand the PIN to the pending pairing (404 when none).
//! - `GET /api/clients`: the paired clients.
//! - `DELETE /api/clients/<id>`: unpair one.
//! - `PATCH /api/clients/<id>` `{"name":"Living room"}`: rename one.
//! - `GET /api/status`: host name, ports, running sessions, the video encoder per codec.
//! - `GET /api/sessions`: the running sessions.
//! - `DELETE /api/sessions/<id>`: end one.
//! - `POST /api/sessions/<id>/launch` `{"app":"Name"}`: put another app on top of the base app
//!   in a running session, without touching its stream.
//! - `GET /api/openapi.yaml`: the OpenAPI document of these routes (`docs/management-api.yaml`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::host::Host;
use crate::http::{self, Response};
use crate::state::{self, DataDirLock, State};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "mgmt-token";

/// The OpenAPI document of the management API, served at `GET /api/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../docs/management-api.yaml");

/// Reads the management token, creating it when missing.
pub fn ensure_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    state::write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

/// Serves the management API on `listener` until the host stops.
pub async fn serve(listener: TcpListener, host: Arc<Host>, token: String) {
    let token = Arc::new(token);
    http::accept_loop(listener, "management", |mut stream, peer| {
        let host = host.clone();
        let token = token.clone();
        async move {
            let resp = match http::read_request(&mut stream).await {
                Ok(req) => match authorize(&req, &token) {
                    Ok(()) => route(&host, &req).await,
                    Err(denied) => {
                        info!(%peer, path = %req.path, "management request without a valid token");
                        denied
                    }
                },
                Err(e) => {
                    debug!(%peer, %e, "bad management request");
                    match e.response() {
                        Some(r) => r,
                        None => return,
                    }
                }
            };
            let _ = http::write_response(&mut stream, &resp).await;
        }
    })
    .await;
}

/// Checks the bearer token before any route is looked at, so that every path, known or not,
/// answers 401 to a request without the right token.
fn authorize(req: &http::Request, token: &str) -> Result<(), Response> {
    let given = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    // Compare in constant time: the lengths are public (the token's is fixed), the bytes not.
    if !token.is_empty()
        && given.len() == token.len()
        && openssl::memcmp::eq(given.as_bytes(), token.as_bytes())
    {
        Ok(())
    } else {
        Err(Response::json(
            401,
            &json!({"error": "missing or wrong token"}),
        ))
    }
}

async fn route(host: &Arc<Host>, req: &http::Request) -> Response {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "pair"]) => {
            let pin = serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v.get("pin").and_then(|p| p.as_str()).map(str::to_owned));
            let Some(pin) = pin else {
                return Response::json(400, &json!({"error": "body must be {\"pin\": \"NNNN\"}"}));
            };
            if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Response::json(400, &json!({"error": "a PIN is exactly four digits"}));
            }
            match host.submit_pin(&pin) {
                Some(client) => Response::json(200, &json!({"delivered": true, "client": client})),
                None => Response::json(404, &json!({"error": "no pairing is pending"})),
            }
        }
        ("GET", ["api", "clients"]) => Response::json(200, &clients_json(&host.state_snapshot())),
        ("PATCH", ["api", "clients", id]) => {
            let name = serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v.get("name").and_then(|p| p.as_str()).map(str::to_owned));
            let Some(name) = name else {
                return Response::json(400, &json!({"error": "body must be {\"name\": \"NAME\"}"}));
            };
            let name = name.as_str();
            // As the OpenAPI document says: 1 to 64 characters, none of them a control character.
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                return Response::json(
                    400,
                    &json!({"error": "a name is 1 to 64 characters without control characters"}),
                );
            }
            match host.rename_client(id, name) {
                Ok(true) => Response::json(200, &json!({"id": id, "name": name})),
                Ok(false) => {
                    Response::json(404, &json!({"error": format!("no client with id {id}")}))
                }
                Err(e) => Response::json(500, &json!({"error": format!("{e:#}")})),
            }
        }
        ("DELETE", ["api", "clients", id]) => match host.unpair(id) {
            Ok(true) => Response::json(200, &json!({"removed": id})),
            Ok(false) => Response::json(404, &json!({"error": format!("no client with id {id}")})),
            Err(e) => Response::json(500, &json!({"error": format!("{e:#}")})),
        },
        ("GET", ["api", "status"]) => {
            let mut status = host.status_json();
            // The encoder probes are cached after the first run, which can take a second.
            let hw = host.config.video.hardware();
            if let Ok(encoders) =
                tokio::task::spawn_blocking(move || video_encoders_json(&hw)).await
            {
                status["video_encoders"] = encoders;
            }
            Response::json(200, &status)
        }
        ("GET", ["api", "sessions"]) => Response::json(200, &host.sessions_json()),
        ("POST", ["api", "sessions", id, "launch"]) => {
            let name = serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v.get("app").and_then(|p| p.as_str()).map(str::to_owned));
            let Some(name) = name else {
                return Response::json(400, &json!({"error": "body must be {\"app\": \"NAME\"}"}));
            };
            let known = id.parse::<u64>().ok().filter(|n| host.has_session(*n));
            let Some(n) = known else {
                return Response::json(404, &json!({"error": format!("no session with id {id}")}));
            };
            let Some(app) = host.apps.iter().find(|a| a.name == name).cloned() else {
                return Response::json(404, &json!({"error": format!("no app named {name:?}")}));
            };
            if !host.has_base_app() {
                return Response::json(
                    409,
                    &json!({"error": "apps are launched into a session only on a host with a base app"}),
                );
            }
            let h = host.clone();
            match tokio::task::spawn_blocking(move || h.launch_in_session(n, &app)).await {
                Ok(Ok(())) => Response::json(200, &json!({"launched": name, "session": n})),
                Ok(Err(e)) => Response::json(500, &json!({"error": format!("{e:#}")})),
                Err(e) => Response::json(500, &json!({"error": e.to_string()})),
            }
        }
        ("DELETE", ["api", "sessions", id]) => {
            let known = id.parse::<u64>().ok().filter(|n| host.has_session(*n));
            let Some(n) = known else {
                return Response::json(404, &json!({"error": format!("no session with id {id}")}));
            };
            let h = host.clone();
            let _ = tokio::task::spawn_blocking(move || h.stop_session(n, true)).await;
            Response::json(200, &json!({"stopped": n}))
        }
        ("GET", ["api", "openapi.yaml"]) => {
            Response::bytes("application/yaml", OPENAPI.as_bytes().to_vec())
        }
        (
            _,
            ["api", "pair" | "clients" | "status" | "sessions" | "openapi.yaml"]
            | ["api", "clients" | "sessions", _]
            | ["api", "sessions", _, "launch"],
        ) => Response::json(
            405,
            &json!({"error": format!("{} is not allowed here", req.method)}),
        ),
        (_, ["api", ..]) => Response::json(404, &json!({"error": "no such route"})),
        _ => Response::json(404, &json!({"error": "no such route"})),
    }
}

/// `video_encoders` of `GET /api/status`: the configured choice and, per codec, the encoder
/// family a new stream would run on (`null`: the codec cannot be encoded here).
fn video_encoders_json(hw: &streamer::encode::HardwareOptions) -> serde_json::Value {
    use streamer::encode::backend::backend_for;
    use streamer::encode::Codec;
    let name = |c| backend_for(c, hw).map(|b| b.name());
    json!({
        "setting": hw.preference.name(),
        "h264": name(Codec::H264),
        "hevc": name(Codec::Hevc),
        "av1": name(Codec::Av1),
    })
}

fn clients_json(state: &State) -> serde_json::Value {
    json!(state
        .clients
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "uniqueid": c.uniqueid, "paired_at": c.paired_at}))
        .collect::<Vec<_>>())
}

/// `punktfunk pair PIN`
pub fn cli_pair(pin: &str, data_dir: &Path, port_base: u16) -> anyhow::Result<()> {
    let body = json!({ "pin": pin }).to_string();
    let (status, reply) = request(data_dir, port_base, "POST", "/api/pair", Some(&body))
        .context("is `punktfunk serve` running with this --data-dir and --port-base?")?;
    match status {
        200 => {
            println!("PIN delivered; finish pairing on the client.");
            Ok(())
        }
        _ => bail!("{}", error_text(&reply)),
    }
}

/// `punktfunk clients`
pub fn cli_clients(data_dir: &Path, port_base: u16) -> anyhow::Result<()> {
    let clients = match request(data_dir, port_base, "GET", "/api/clients", None) {
        Ok((200, reply)) => reply,
        Ok((_, reply)) => bail!("{}", error_text(&reply)),
        // No host running: read the state file directly.
        Err(_) => {
            clients_json(&State::load(data_dir)?.unwrap_or_else(|| State::new(String::new())))
        }
    };
    let list = clients.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no paired clients");
    }
    for c in list {
        println!(
            "{}\t{}\t{}",
            c["id"].as_str().unwrap_or(""),
            c["name"].as_str().unwrap_or(""),
            c["uniqueid"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `punktfunk unpair ID`
pub fn cli_unpair(id: &str, data_dir: &Path, port_base: u16) -> anyhow::Result<()> {
    match request(
        data_dir,
        port_base,
        "DELETE",
        &format!("/api/clients/{id}"),
        None,
    ) {
        Ok((200, _)) => {}
        Ok((_, reply)) => bail!("{}", error_text(&reply)),
        Err(err) => {
            // No host answered: edit the state file, but only if no host runs on this data
            // directory (one on another port base would write the client back at its next
            // save); the lock also keeps a host from starting while the file is written.
            if !data_dir.is_dir() {
                bail!("no host state in {}", data_dir.display());
            }
            let Some(_lock) = DataDirLock::try_acquire(data_dir)? else {
                return Err(err.context(format!(
                    "a host runs with the data directory {} but does not answer on port base {port_base}; \
                     pass its --port-base",
                    data_dir.display()
                )));
            };
            let mut state =
                State::load(data_dir)?.context("no host state in this data directory")?;
            let before = state.clients.len();
            state.clients.retain(|c| c.id != id);
            if state.clients.len() == before {
                bail!("no client with id {id}");
            }
            state.save(data_dir)?;
        }
    }
    println!("unpaired {id}");
    Ok(())
}

fn error_text(reply: &serde_json::Value) -> String {
    reply
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("the host refused the request")
        .to_string()
}

fn request(
    data_dir: &Path,
    port_base: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let token = std::fs::read_to_string(data_dir.join(TOKEN_FILE))
        .with_context(|| format!("cannot read the management token in {}", data_dir.display()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port_base + 1));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("cannot reach the host's management endpoint on {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    )?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let text = String::from_utf8_lossy(&reply);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed reply from the management endpoint")?;
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route as (method, path pattern); `{id}` stands for one path segment.
    const ROUTES: &[(&str, &str)] = &[
        ("POST", "/api/pair"),
        ("GET", "/api/clients"),
        ("DELETE", "/api/clients/{id}"),
        ("PATCH", "/api/clients/{id}"),
        ("GET", "/api/status"),
        ("GET", "/api/sessions"),
        ("DELETE", "/api/sessions/{id}"),
        ("POST", "/api/sessions/{id}/launch"),
        ("GET", "/api/openapi.yaml"),
    ];

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request(method: &str, pattern: &str, auth: Option<&str>) -> http::Request {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(a) = auth {
            headers.push(("authorization".to_string(), a.to_string()));
        }
        http::Request {
            method: method.to_string(),
            path: pattern.replace("{id}", "1"),
            query: String::new(),
            headers,
            body: br#"{"pin":"1234"}"#.to_vec(),
        }
    }

    fn status_of(method: &str, pattern: &str, auth: Option<&str>) -> u16 {
        match authorize(&request(method, pattern, auth), TOKEN) {
            Ok(()) => 200,
            Err(r) => r.status,
        }
    }

    #[test]
    fn every_route_rejects_a_missing_or_wrong_token() {
        let wrong = [
            None,
            Some(String::new()),
            Some("Bearer".to_string()),
            Some("Bearer ".to_string()),
            Some(format!("Basic {TOKEN}")),
            Some(format!("bearer{TOKEN}")),
            Some(format!("Bearer {}", &TOKEN[1..])),
            Some(format!("Bearer {TOKEN}0")),
            Some(format!("Bearer {}", TOKEN.to_uppercase())),
            Some(format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1])),
        ];
        for (method, pattern) in ROUTES
            .iter()
            .chain(&[("GET", "/api/nothing-here"), ("PUT", "/")])
        {
            for auth in &wrong {
                let status = status_of(method, pattern, auth.as_deref());
                assert_eq!(status, 401, "{method} {pattern} with {auth:?}");
            }
            let reply = authorize(&request(method, pattern, None), TOKEN).unwrap_err();
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["error"], "missing or wrong token");
            assert_eq!(reply.content_type, "application/json");
        }
    }

    #[test]
    fn the_right_token_passes_with_or_without_padding() {
        for (method, pattern) in ROUTES {
            assert_eq!(
                status_of(method, pattern, Some(&format!("Bearer {TOKEN}"))),
                200
            );
            assert_eq!(
                status_of(method, pattern, Some(&format!("Bearer  {TOKEN} "))),
                200
            );
        }
    }

    #[test]
    fn an_empty_token_file_never_authorizes() {
        let req = request("GET", "/api/status", Some("Bearer "));
        assert_eq!(authorize(&req, "").unwrap_err().status, 401);
    }

    #[test]
    fn the_openapi_document_lists_every_route_and_only_those() {
        let mut documented = Vec::new();
        let mut path = None;
        for line in OPENAPI.lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if !line.starts_with("  ") {
                path = None;
            } else if let (Some(p), Some(m)) = (
                &path,
                line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')),
            ) {
                if ["get", "post", "put", "delete", "patch"].contains(&m) {
                    documented.push((m.to_uppercase(), p.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        assert!(
            OPENAPI.contains("scheme: bearer"),
            "the document declares the bearer token"
        );
    }
}
