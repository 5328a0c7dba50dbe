//! The RTSP port: one request per TCP connection, tied to the pending launch.
//!
//! Connections arrive only while a launch waits for its handshake; others are closed at once.
//! A launch that asked for `rtspenc://` accepts only framed, AES-GCM sealed requests. Each
//! connection carries exactly one request and one reply, then the host closes it, which is
//! how clients know the reply is complete.

use std::sync::Arc;

use protocol::rtsp::{self, Request, Response, RtspEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::host::{Host, PendingLaunch};

/// Serves the RTSP port.
pub async fn serve(listener: TcpListener, host: Arc<Host>) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else { continue };
        let host = host.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &host).await {
                warn!(%remote, %e, "RTSP request dropped");
            }
        });
    }
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
    #[error("plaintext request on an encrypted session")]
    NotEncrypted,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

enum Incoming {
    Plain(Request),
    Sealed(Vec<u8>),
}

async fn handle(mut stream: TcpStream, host: &Arc<Host>) -> Result<(), RtspConnError> {
    if host.pending_launch().is_none() {
        return Err(RtspConnError::NoLaunch);
    }
    let incoming = match tokio::time::timeout(crate::http::READ_TIMEOUT, read_message(&mut stream)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            // Tell a plaintext peer what was wrong before closing.
            let _ = stream.write_all(&Response::bad_request(0).to_bytes()).await;
            return Err(e);
        }
        Err(_) => return Err(RtspConnError::Timeout),
    };
    let (reply, event) = match answer(host, &incoming) {
        Ok(r) => r,
        Err(e) => {
            let _ = stream.write_all(&Response::bad_request(0).to_bytes()).await;
            return Err(e);
        }
    };
    let mut reply = reply;
    if let Some((RtspEvent::Announced(params), launch)) = &event {
        let h = host.clone();
        let (launch, params) = (launch.clone(), params.clone());
        let started = tokio::task::spawn_blocking(move || h.start_stream(&launch, params))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
        if let Err(e) = started {
            warn!(err = %format!("{e:#}"), "cannot start the stream");
            reply = Response::new(500, "Internal Server Error", reply_cseq(&reply));
        } else {
            info!("stream announced");
        }
    }
    if let Some((RtspEvent::Play, _)) = &event {
        // The handshake is complete; the next launch may come.
        host.pending_launch.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
    let bytes = {
        let mut pending = host.pending_launch.lock().unwrap_or_else(|e| e.into_inner());
        let sealed_cipher = match &event {
            Some((_, l)) if l.rtsp_cipher.is_some() => l.rtsp_cipher.clone(),
            _ => pending.as_ref().and_then(|l| l.rtsp_cipher.clone()),
        };
        match sealed_cipher {
            Some(mut cipher) => {
                let out = cipher.seal_response(&reply)?;
                if let Some(l) = pending.as_mut() {
                    l.rtsp_cipher = Some(cipher);
                }
                out
            }
            None => reply.to_bytes(),
        }
    };
    stream.write_all(&bytes).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Opens the request and lets the launch's RTSP handler answer it.
fn answer(
    host: &Host,
    incoming: &Incoming,
) -> Result<(Response, Option<(RtspEvent, PendingLaunch)>), RtspConnError> {
    let mut pending = host.pending_launch.lock().unwrap_or_else(|e| e.into_inner());
    let launch = pending.as_mut().ok_or(RtspConnError::NoLaunch)?;
    let request = match (incoming, &launch.rtsp_cipher) {
        (Incoming::Sealed(frame), Some(cipher)) => cipher.open_request(frame)?,
        (Incoming::Plain(r), None) => r.clone(),
        _ => return Err(RtspConnError::NotEncrypted),
    };
    debug!(method = %request.method, target = %request.target, "RTSP request");
    let (resp, event) = launch.rtsp.handle_request(&request);
    Ok((resp, event.map(|e| (e, launch.clone()))))
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
