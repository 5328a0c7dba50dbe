//! The accept loop of every TCP port, and a small HTTP/1.1 reader for the GameStream nvhttp
//! endpoints (the management API and the console run on axum, [`crate::web`]).
//!
//! GameStream clients send one `GET` per connection and expect `Connection: close`. Requests are read with strict limits and a deadline;
//! anything malformed gets a plain `400` (or `413`/`431`) and the connection is closed, so one
//! bad client costs the host nothing but a log line.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode, SslVersion};
use protocol::pairing::HostIdentity;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// Largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one listening port serves at a time; more wait in the kernel's queue until one
/// ends (each is closed after [`READ_TIMEOUT`] at the latest when it sends nothing).
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections one address may have open on one port at a time; more from it are closed at
/// once, so that one address cannot fill a port for everyone else.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// The pause after a failed accept (out of file descriptors), instead of retrying at once.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A listening TCP socket on `addr`: dual-stack on the IPv6 wildcard (IPv4 clients arrive as
/// IPv4-mapped addresses, see `streamer::net`), with room for [`MAX_CONNECTIONS`] waiting.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = streamer::net::socket(&addr, socket2::Type::STREAM, socket2::Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(MAX_CONNECTIONS as i32)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections on `listener` for ever and runs `serve` on each, at most
/// [`MAX_CONNECTIONS`] at a time and [`MAX_CONNECTIONS_PER_ADDRESS`] from one address. A
/// failed accept is logged (`what` names the port) and retried after a pause, so running out of
/// file descriptors does not spin the thread.
pub async fn accept_loop<F, Fut>(listener: TcpListener, what: &'static str, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let mut failing = false;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, remote)) => {
                failing = false;
                let Some(slot) = AddressSlot::take(&per_address, remote.ip(), what) else {
                    drop(stream);
                    continue;
                };
                let served = serve(stream, remote);
                tokio::spawn(async move {
                    served.await;
                    drop(slot);
                    drop(permit);
                });
            }
            Err(err) => {
                if !failing {
                    warn!(port = what, %err, "cannot accept connections; retrying");
                }
                failing = true;
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// The TLS handshake of a connection, within [`READ_TIMEOUT`]; `None` (with a debug line)
/// when it fails or takes too long.
pub async fn tls_accept(
    tls: &SslAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_openssl::SslStream<TcpStream>> {
    let ssl = openssl::ssl::Ssl::new(tls.context()).ok()?;
    let mut stream = tokio_openssl::SslStream::new(ssl, stream).ok()?;
    match tokio::time::timeout(READ_TIMEOUT, std::pin::Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => Some(stream),
        Ok(Err(err)) => {
            debug!(%peer, %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// One of the connections an address may have open on one port; given back when dropped.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    /// A slot for `address`, or `None` (with a log line) when it has all of its connections.
    fn take(
        counts: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        address: IpAddr,
        what: &'static str,
    ) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(address).or_default();
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            debug!(port = what, %address, "too many connections from one address; closed");
            return None;
        }
        *count += 1;
        if *count == MAX_CONNECTIONS_PER_ADDRESS {
            warn!(port = what, %address, limit = MAX_CONNECTIONS_PER_ADDRESS, "an address has all the connections it may have; more from it are closed");
        }
        Some(Self {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string (without `?`), undecoded.
    pub query: String,
    /// Header names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (empty for GET).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection before sending anything.
    #[error("connection closed")]
    Closed,
    /// The request is not HTTP/1.x as we accept it.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The head exceeds [`MAX_HEAD`].
    #[error("request head too large")]
    HeadTooLarge,
    /// The body exceeds [`MAX_BODY`].
    #[error("request body too large")]
    BodyTooLarge,
    /// The client took longer than [`READ_TIMEOUT`].
    #[error("timed out reading the request")]
    Timeout,
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// The reply to send for this error, if any.
    pub fn response(&self) -> Option<Response> {
        let (status, text) = match self {
            ReadError::Malformed(why) => (400, *why),
            ReadError::HeadTooLarge => (431, "request head too large"),
            ReadError::BodyTooLarge => (413, "request body too large"),
            ReadError::Timeout => (408, "request timeout"),
            ReadError::Closed | ReadError::Io(_) => return None,
        };
        Some(Response::text(status, text))
    }
}

/// A reply.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An XML body with status 200 (GameStream reports errors inside the XML).
    pub fn xml(body: String) -> Self {
        Self {
            status: 200,
            content_type: "application/xml",
            body: body.into_bytes(),
        }
    }

    /// A plain-text reply.
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n").into_bytes(),
        }
    }

    /// A binary reply.
    pub fn bytes(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status: 200,
            content_type,
            body,
        }
    }
}

/// Reads one request from `stream`, within [`READ_TIMEOUT`].
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, ReadError> {
    match tokio::time::timeout(READ_TIMEOUT, read_request_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Timeout),
    }
}

async fn read_request_inner<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Malformed("truncated request")
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ReadError::Malformed("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(ReadError::Malformed("empty request"))?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(ReadError::Malformed("bad request line")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed("unsupported HTTP version"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Malformed("bad method"));
    }
    if !target.starts_with('/') {
        return Err(ReadError::Malformed("bad request target"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(ReadError::Malformed("bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    };
    let len: usize = match req.header("content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| ReadError::Malformed("bad content-length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(ReadError::BodyTooLarge);
    }
    let mut body = buf.split_off(head_end + 4);
    body.truncate(len);
    while body.len() < len {
        let mut chunk = vec![0u8; (len - body.len()).min(16 * 1024)];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ReadError::Malformed("truncated body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    req.body = body;
    Ok(req)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Writes `resp` with `Connection: close` and shuts the write side down.
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    resp: &Response,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&resp.body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Builds a TLS acceptor with the host identity: for the GameStream HTTPS port with
/// `client_certificates` (asked for, every one accepted: authorisation happens per request),
/// for the console without.
pub fn tls_acceptor(
    identity: &HostIdentity,
    client_certificates: bool,
) -> anyhow::Result<Arc<SslAcceptor>> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    let cert = openssl::x509::X509::from_pem(identity.cert_pem())?;
    let key = openssl::pkey::PKey::private_key_from_pem(identity.key_pem())?;
    b.set_certificate(&cert)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    if client_certificates {
        b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
    }
    Ok(Arc::new(b.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_so_many_connections_and_the_others_theirs() {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut held: Vec<AddressSlot> = (0..MAX_CONNECTIONS_PER_ADDRESS)
            .map(|_| AddressSlot::take(&counts, a, "test").expect("under the limit"))
            .collect();
        assert!(AddressSlot::take(&counts, a, "test").is_none());
        let other = AddressSlot::take(&counts, b, "test").expect("another address");
        held.pop();
        assert!(AddressSlot::take(&counts, a, "test").is_some());
        drop(held);
        drop(other);
        assert!(counts.lock().unwrap().is_empty(), "counts are given back");
    }

    async fn parse(bytes: &[u8]) -> Result<Request, ReadError> {
        let mut s = bytes;
        read_request(&mut s).await
    }

    #[tokio::test]
    async fn get_with_query() {
        let r = parse(b"GET /serverinfo?uniqueid=1&&uuid=2 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/serverinfo");
        assert_eq!(r.query, "uniqueid=1&&uuid=2");
        assert_eq!(r.header("host"), Some("x"));
    }

    #[tokio::test]
    async fn post_with_body() {
        let r = parse(b"POST /api/pair HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"pin\":\"12\"}")
            .await
            .unwrap();
        assert_eq!(r.body, b"{\"pin\":\"12\"}");
    }

    #[tokio::test]
    async fn malformed_inputs_are_errors() {
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"GET / SPDY/3\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET noslash HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            let err = parse(bad).await.unwrap_err();
            assert!(
                err.response().is_some_and(|r| r.status == 400),
                "{bad:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn limits() {
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 100_000));
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert!(matches!(parse(&long).await, Err(ReadError::HeadTooLarge)));
        let big = b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
        assert!(matches!(parse(big).await, Err(ReadError::BodyTooLarge)));
        assert!(matches!(parse(b"").await, Err(ReadError::Closed)));
    }
}
