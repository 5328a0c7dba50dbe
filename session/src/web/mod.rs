//! One HTTP stack, axum on hyper, for the management API ([`api`]) and the web console.
//!
//! Connections come from the same accept loop as every other port of the host
//! ([`crate::http::accept_loop`]: connection limits, per-address limits, pauses when out of file
//! descriptors). TLS, where a port has it, is OpenSSL with the host's own certificate, as on
//! the GameStream HTTPS port.
//!
//! The GameStream nvhttp endpoints keep the small reader in [`crate::http`]: Moonlight sends one
//! `GET` per connection and some clients rely on `Connection: close` with a plain XML body, and
//! the tests pin those quirks byte for byte.

pub mod api;
pub mod console;
pub mod login;
pub mod logs;
pub mod model;

use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::debug;

use crate::gamestream::GameStream;
use crate::host::Host;
use crate::http;
use crate::native::Native;

/// What the API's handlers reach: the host, and the protocols for what only they know (the
/// pairings in progress). A handler takes the part it needs, `State<Arc<Host>>` or
/// `State<Arc<GameStream>>`.
#[derive(Clone)]
pub struct ApiState {
    /// The host: sessions, clients, apps, settings.
    pub host: Arc<Host>,
    /// GameStream: the pairings Moonlight clients wait in.
    pub gamestream: Arc<GameStream>,
    /// punktfunk/1: its pairing PIN.
    pub native: Arc<Native>,
}

impl axum::extract::FromRef<ApiState> for Arc<Native> {
    fn from_ref(state: &ApiState) -> Self {
        state.native.clone()
    }
}

impl axum::extract::FromRef<ApiState> for Arc<Host> {
    fn from_ref(state: &ApiState) -> Self {
        state.host.clone()
    }
}

impl axum::extract::FromRef<ApiState> for Arc<GameStream> {
    fn from_ref(state: &ApiState) -> Self {
        state.gamestream.clone()
    }
}

/// Serves `app` on `listener` until the host stops, over TLS when `tls` is given. `what` names
/// the port in log lines. Handlers can take `ConnectInfo<SocketAddr>` for the peer's address.
pub async fn serve(
    listener: TcpListener,
    what: &'static str,
    tls: Option<Arc<SslAcceptor>>,
    app: Router,
) {
    http::accept_loop(listener, what, move |stream, peer| {
        let app = app.clone();
        let tls = tls.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let app = app.map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let service = TowerToHyperService::new(app);
            let mut conn = hyper::server::conn::http1::Builder::new();
            conn.timer(TokioTimer::new())
                .header_read_timeout(http::READ_TIMEOUT)
                .max_buf_size(http::MAX_HEAD);
            let served = match tls {
                None => conn.serve_connection(TokioIo::new(stream), service).await,
                Some(tls) => {
                    let Some(stream) = http::tls_accept(&tls, stream, peer).await else {
                        return;
                    };
                    conn.serve_connection(TokioIo::new(stream), service).await
                }
            };
            if let Err(err) = served {
                debug!(port = what, %peer, %err, "connection ended with an error");
            }
        }
    })
    .await;
}

/// `router` with its request bodies limited to `max` bytes: a request whose `Content-Length`
/// says more gets 413 before any of its body is read (so the answer is not lost to the close
/// that follows), and one without a length is cut off at `max` while it is read.
pub fn with_body_limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    max: usize,
) -> Router<S> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(max))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                refuse_longer(max, req, next)
            },
        ))
}

async fn refuse_longer(
    max: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let length = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > max as u64) {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max} bytes\n"),
        )
            .into_response();
    }
    next.run(req).await
}
