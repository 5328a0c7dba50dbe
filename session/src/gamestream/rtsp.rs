//! The RTSP port: one request per TCP connection, tied to a pending launch.
//!
//! Connections arrive only while a launch waits for its handshake; others are closed at once.
//! Several clients may be in their handshakes at once, all on this one port: a sealed
//! (`rtspenc://`) request belongs to the launch whose key opens it, a plaintext one to the
//! plaintext launch of the client's address (the host lets only one such launch per address
//! wait at a time). Each connection carries exactly one request and one reply, then the host
//! closes it, which is how clients know the reply is complete.

use std::net::IpAddr;
use std::sync::Arc;

use protocol::rtsp::{self, Request, Response, RtspEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::{GameStream, PendingLaunch};

/// Serves the RTSP port.
pub async fn serve(listener: TcpListener, gs: Arc<GameStream>) {
    crate::http::accept_loop(listener, "rtsp", |stream, remote| {
        let gs = gs.clone();
        async move {
            if let Err(e) = handle(stream, &gs).await {
                warn!(%remote, %e, "RTSP request dropped");
            }
        }
    })
    .await;
}

/// What went wrong with one RTSP connection.
#[derive(Debug, thiserror::Error)]
enum RtspConnError {
    #[error("no launch is pending")]
    NoLaunch,
    #[error("malformed request: {0}")]
    Malformed(#[from] rtsp::RtspError),
    #[error("connection closed before a whole request arrived")]
    Truncated,
    #[error("timed out waiting for the request")]
    Timeout,
    #[error("plaintext request, but every pending launch is encrypted")]
    NotEncrypted,
    #[error("sealed request that no pending launch's key opens")]
    NoKey,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

enum Incoming {
    Plain(Request),
    Sealed(Vec<u8>),
}

async fn handle(mut stream: TcpStream, gs: &Arc<GameStream>) -> Result<(), RtspConnError> {
    if gs.lock_pending().is_empty() {
        return Err(RtspConnError::NoLaunch);
    }
    let remote = stream.peer_addr()?.ip();
    let incoming =
        match tokio::time::timeout(crate::http::READ_TIMEOUT, read_message(&mut stream)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                // Tell a plaintext peer what was wrong before closing.
                let _ = stream.write_all(&Response::bad_request(0).to_bytes()).await;
                return Err(e);
            }
            Err(_) => return Err(RtspConnError::Timeout),
        };
    let Answer {
        mut reply,
        event,
        launch,
    } = match answer(gs, &incoming, remote) {
        Ok(r) => r,
        Err(e) => {
            if matches!(incoming, Incoming::Plain(_)) {
                let _ = stream.write_all(&Response::bad_request(0).to_bytes()).await;
            }
            return Err(e);
        }
    };
    match &event {
        Some(RtspEvent::Announced(params)) => {
            let h = gs.clone();
            let (l, params) = (launch.clone(), params.clone());
            let started = tokio::task::spawn_blocking(move || h.start_stream(&l, params))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
            if let Err(e) = started {
                warn!(session = launch.session, err = %format!("{e:#}"), "cannot start the stream");
                reply = Response::new(500, "Internal Server Error", reply_cseq(&reply));
            } else {
                info!(session = launch.session, "stream announced");
            }
        }
        Some(RtspEvent::Play) => {
            // The handshake is complete; this client may launch again.
            gs.lock_pending()
                .retain(|l| l.connect_data != launch.connect_data);
        }
        _ => {}
    }
    let bytes = match launch.rtsp_cipher {
        Some(mut cipher) => {
            let out = cipher.seal_response(&reply)?;
            // The cipher counts the replies it sealed; the launch keeps the count.
            if let Some(l) = gs
                .lock_pending()
                .iter_mut()
                .find(|l| l.connect_data == launch.connect_data)
            {
                l.rtsp_cipher = Some(cipher);
            }
            out
        }
        None => reply.to_bytes(),
    };
    stream.write_all(&bytes).await?;
    stream.shutdown().await?;
    Ok(())
}

/// A request answered by its launch's RTSP handler.
struct Answer {
    reply: Response,
    event: Option<RtspEvent>,
    /// The launch as it was after the request (its cipher ready to seal the reply).
    launch: PendingLaunch,
}

/// Finds the request's launch, opens the request and lets the launch's RTSP handler answer it.
fn answer(gs: &GameStream, incoming: &Incoming, remote: IpAddr) -> Result<Answer, RtspConnError> {
    let mut pending = gs.lock_pending();
    let (launch, request) = match incoming {
        Incoming::Sealed(frame) => pending
            .iter_mut()
            .find_map(|l| {
                let opened = l.rtsp_cipher.as_ref()?.open_request(frame).ok()?;
                Some((l, opened))
            })
            .ok_or(RtspConnError::NoKey)?,
        Incoming::Plain(r) => {
            let mut plain: Vec<&mut PendingLaunch> = pending
                .iter_mut()
                .filter(|l| l.rtsp_cipher.is_none())
                .collect();
            let i = match plain.len() {
                0 => return Err(RtspConnError::NotEncrypted),
                // A single plaintext launch takes the request wherever it comes from (a client
                // may reach RTSP through another of its addresses).
                1 => 0,
                _ => plain
                    .iter()
                    .position(|l| l.client_ip == remote)
                    .ok_or(RtspConnError::NoLaunch)?,
            };
            (plain.swap_remove(i), r.clone())
        }
    };
    debug!(session = launch.session, method = %request.method, target = %request.target, "RTSP request");
    if streamer::corpus::enabled() {
        streamer::corpus::record("rtsp", &[&request.to_bytes()]);
    }
    let (reply, event) = launch.rtsp.handle_request(&request);
    Ok(Answer {
        reply,
        event,
        launch: launch.clone(),
    })
}

fn reply_cseq(r: &Response) -> u32 {
    r.header("CSeq").and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn read_message(stream: &mut TcpStream) -> Result<Incoming, RtspConnError> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        if !buf.is_empty() {
            if rtsp::is_encrypted(&buf) {
                if let Some(len) = rtsp::encrypted_frame_len(&buf)? {
                    if buf.len() >= len {
                        buf.truncate(len);
                        return Ok(Incoming::Sealed(buf));
                    }
                }
            } else if let Some((req, _)) = rtsp::parse_request(&buf)? {
                return Ok(Incoming::Plain(req));
            }
        }
        if buf.len() > rtsp::MAX_MESSAGE_LEN + rtsp::ENCRYPTED_HEADER_LEN {
            return Err(rtsp::RtspError::TooLarge.into());
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(RtspConnError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
