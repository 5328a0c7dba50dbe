//! The shared UDP sockets for video and audio, and how pings find their stream.
//!
//! Every stream of the host sends video from the one video port and audio from the one audio
//! port. A client tells the host where to send by pinging those ports from its receive sockets:
//! a 20-byte ping starts with the 16-byte payload the host handed out in RTSP SETUP, a legacy
//! ping is the 4 bytes `PING` and is matched by the client's address. Once a stream got a ping
//! with its payload, legacy pings no longer move it: another program at the client's address
//! (or behind the same NAT) cannot take the stream over. Each socket has one receive thread that
//! routes pings to the registered stream; anything else is dropped with a log line.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tracing::{debug, trace, warn};

/// Where a stream's pings go: the latest address they came from.
#[derive(Debug, Default)]
pub struct PingTarget {
    addr: Mutex<Option<SocketAddr>>,
    cond: std::sync::Condvar,
    /// A ping with the stream's payload arrived: legacy pings are ignored from then on.
    payload_seen: std::sync::atomic::AtomicBool,
}

impl PingTarget {
    /// Waits up to `timeout` for the first ping and returns its source address.
    pub fn wait(&self, timeout: Duration) -> Option<SocketAddr> {
        let guard = self.addr.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |a| a.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// The current destination, if a ping has arrived.
    pub fn current(&self) -> Option<SocketAddr> {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, addr: SocketAddr) {
        let mut guard = self.addr.lock().unwrap_or_else(|e| e.into_inner());
        if *guard != Some(addr) {
            debug!(%addr, "stream destination");
            *guard = Some(addr);
            self.cond.notify_all();
        }
    }
}

#[derive(Default)]
struct Routes {
    by_payload: HashMap<[u8; 16], Arc<PingTarget>>,
    by_ip: HashMap<IpAddr, Arc<PingTarget>>,
}

/// One UDP port shared by all streams of one kind (video or audio).
pub struct MediaSocket {
    socket: Arc<UdpSocket>,
    routes: Arc<Mutex<Routes>>,
    kind: &'static str,
}

impl MediaSocket {
    /// Binds `addr` and starts the receive thread.
    pub fn bind(addr: SocketAddr, kind: &'static str) -> anyhow::Result<Self> {
        let socket = crate::net::bind_udp(addr)
            .with_context(|| format!("cannot bind the {kind} port {addr}"))?;
        let socket = Arc::new(socket);
        let routes = Arc::new(Mutex::new(Routes::default()));
        {
            let socket = socket.clone();
            let routes = routes.clone();
            std::thread::Builder::new()
                .name(format!("{kind}-ping"))
                .spawn(move || receive_loop(&socket, &routes, kind))
                .context("cannot start the ping thread")?;
        }
        Ok(Self {
            socket,
            routes,
            kind,
        })
    }

    /// The socket to send this kind of media from.
    pub fn socket(&self) -> &Arc<UdpSocket> {
        &self.socket
    }

    /// Registers a stream: pings carrying `payload`, or legacy pings from `client_ip`, set its
    /// destination. Dropping the returned guard unregisters it.
    pub fn register(&self, payload: [u8; 16], client_ip: IpAddr) -> Registration {
        let target = Arc::new(PingTarget::default());
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.by_payload.insert(payload, target.clone());
        routes.by_ip.insert(client_ip, target.clone());
        debug!(kind = self.kind, %client_ip, "stream registered");
        Registration {
            routes: self.routes.clone(),
            payload,
            client_ip,
            target,
        }
    }
}

/// A stream's registration on a [`MediaSocket`].
pub struct Registration {
    routes: Arc<Mutex<Routes>>,
    payload: [u8; 16],
    client_ip: IpAddr,
    target: Arc<PingTarget>,
}

impl Registration {
    /// Where this stream's media goes.
    pub fn target(&self) -> &Arc<PingTarget> {
        &self.target
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes
            .by_payload
            .get(&self.payload)
            .is_some_and(|t| Arc::ptr_eq(t, &self.target))
        {
            routes.by_payload.remove(&self.payload);
        }
        if routes
            .by_ip
            .get(&self.client_ip)
            .is_some_and(|t| Arc::ptr_eq(t, &self.target))
        {
            routes.by_ip.remove(&self.client_ip);
        }
    }
}

fn receive_loop(socket: &UdpSocket, routes: &Mutex<Routes>, kind: &'static str) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                // ICMP port-unreachable from a client that went away shows up here on Linux.
                if e.kind() != std::io::ErrorKind::ConnectionRefused {
                    warn!(?e, kind, "receive error on the media socket");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        };
        let datagram = &buf[..n];
        let routes = routes.lock().unwrap_or_else(|e| e.into_inner());
        let target = if n >= 20 {
            let mut payload = [0u8; 16];
            payload.copy_from_slice(&datagram[..16]);
            let target = routes.by_payload.get(&payload);
            if let Some(t) = target {
                t.payload_seen
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            target
        } else if datagram == b"PING" {
            routes
                .by_ip
                .get(&from.ip())
                .filter(|t| !t.payload_seen.load(std::sync::atomic::Ordering::Relaxed))
        } else {
            None
        };
        match target {
            Some(t) => {
                trace!(kind, %from, "ping");
                t.set(from);
            }
            None => {
                debug!(kind, %from, len = n, "dropped a datagram that is no ping of a known stream")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_route_by_payload_and_legacy_by_ip() {
        let media = MediaSocket::bind("127.0.0.1:0".parse().unwrap(), "video").unwrap();
        let port = media.socket().local_addr().unwrap();
        let reg = media.register(*b"0123456789ABCDEF", "127.0.0.1".parse().unwrap());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Garbage first: ignored.
        client.send_to(b"hello", port).unwrap();
        client.send_to(b"XXXXXXXXXXXXXXXX\0\0\0\x01", port).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(reg.target().current(), None);
        client.send_to(b"0123456789ABCDEF\0\0\0\x01", port).unwrap();
        assert_eq!(
            reg.target().wait(Duration::from_secs(2)),
            Some(client.local_addr().unwrap())
        );

        // A legacy ping from the same address does not take over a stream that pings with its
        // payload.
        let legacy = UdpSocket::bind("127.0.0.1:0").unwrap();
        legacy.send_to(b"PING", port).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(reg.target().current(), Some(client.local_addr().unwrap()));
        // The client's new address (a NAT rebinding) does.
        let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
        moved.send_to(b"0123456789ABCDEF\0\0\0\x02", port).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(reg.target().current(), Some(moved.local_addr().unwrap()));
        drop(reg);
        assert!(media.routes.lock().unwrap().by_payload.is_empty());

        // A client that only sends legacy pings is found by its address.
        let reg = media.register(*b"FEDCBA9876543210", "127.0.0.2".parse().unwrap());
        let old = UdpSocket::bind("127.0.0.2:0").unwrap();
        old.send_to(b"PING", port).unwrap();
        assert_eq!(
            reg.target().wait(Duration::from_secs(2)),
            Some(old.local_addr().unwrap())
        );
    }
}
