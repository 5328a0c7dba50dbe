//! The management endpoint (HTTP + JSON on loopback, base port + 1) and the CLI commands that
//! use it.
//!
//! Every route needs `Authorization: Bearer <token>`, the token being the content of
//! `mgmt-token` in the data directory (created with mode 0600 on first start), so only users
//! who can read the data directory can drive the host. The routes are in [`crate::web::api`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use crate::state::{self, DataDirLock, State};
use crate::web::model::{Client, ErrorReply, PairRequest};
use crate::web::{self, api};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "mgmt-token";

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
pub async fn serve(listener: TcpListener, state: web::ApiState, token: String) {
    let token: Arc<str> = token.into();
    let app =
        api::router(state)
            .fallback(api::not_found)
            .layer(axum::middleware::from_fn_with_state(
                token,
                api::require_token,
            ));
    web::serve(listener, "management", None, app).await;
}

/// `punktfunk pair PIN`
pub fn cli_pair(
    pin: &str,
    address: Option<std::net::IpAddr>,
    data_dir: &Path,
    port_base: u16,
) -> anyhow::Result<()> {
    let body = serde_json::to_string(&PairRequest {
        pin: pin.into(),
        address: address.map(|a| a.to_string()),
    })?;
    let reply = request(data_dir, port_base, "POST", "/api/pair", Some(&body))
        .context("is `punktfunk serve` running with this --data-dir and --port-base?")?;
    let _: web::model::PairReply = decode(reply)?;
    println!("PIN delivered; finish pairing on the client.");
    Ok(())
}

/// `punktfunk pair --native`
pub fn cli_pair_native(data_dir: &Path, port_base: u16) -> anyhow::Result<()> {
    let reply = request(data_dir, port_base, "POST", "/api/native/pair", None)
        .context("is `punktfunk serve` running with this --data-dir and --port-base?")?;
    let armed: web::model::NativePin = decode(reply)?;
    println!("{}", armed.pin);
    eprintln!(
        "Type this PIN on the punktfunk/1 client within {} minutes (punktfunk-client pair HOST --pin {}); it serves one attempt.",
        armed.expires_s / 60,
        armed.pin
    );
    Ok(())
}

/// `punktfunk clients`
pub fn cli_clients(data_dir: &Path, port_base: u16) -> anyhow::Result<()> {
    let clients: Vec<Client> = match request(data_dir, port_base, "GET", "/api/clients", None) {
        Ok(reply) => decode(reply)?,
        // No host running: read the state file directly.
        Err(_) => State::load(data_dir)?
            .map(|s| s.clients.iter().map(Client::from).collect())
            .unwrap_or_default(),
    };
    if clients.is_empty() {
        println!("no paired clients");
    }
    for c in clients {
        println!("{}\t{}\t{}", c.id, c.name, c.uniqueid);
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
        Ok(reply) => {
            let _: web::model::UnpairReply = decode(reply)?;
        }
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

/// A reply's body as `T` when the host said 200, else its error as the error.
fn decode<T: DeserializeOwned>((status, body): (u16, Vec<u8>)) -> anyhow::Result<T> {
    if status == 200 {
        return serde_json::from_slice(&body)
            .context("malformed reply from the management endpoint");
    }
    match serde_json::from_slice::<ErrorReply>(&body) {
        Ok(e) => bail!("{}", e.error),
        Err(_) => bail!("the host refused the request (HTTP {status})"),
    }
}

fn request(
    data_dir: &Path,
    port_base: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, Vec<u8>)> {
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
    let head_end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed reply from the management endpoint")?;
    let status: u16 = std::str::from_utf8(&reply[..head_end])
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .context("malformed reply from the management endpoint")?;
    Ok((status, reply[head_end + 4..].to_vec()))
}
