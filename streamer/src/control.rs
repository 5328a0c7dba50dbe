//! The control port: one ENet host shared by every stream.
//!
//! A client connects with the `X-SS-Connect-Data` value from RTSP SETUP in the ENet CONNECT
//! `data` field; that number picks its stream. Peers that match no stream are disconnected at
//! once. Received packets go to the stream's [`ControlHandler`] as raw bytes (decrypting them
//! is the stream's business, it holds the key); the stream sends by handing this server
//! already-encrypted bytes. Malformed datagrams never reach us: ENet drops them.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusty_enet as enet;
use tracing::{debug, info, warn};

/// How long a peer may stay silent before its stream is ended (the client pings every 100 ms).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a stream does with its control connection.
pub trait ControlHandler: Send + Sync {
    /// The client connected.
    fn on_connect(&self, from: SocketAddr);
    /// A packet arrived on `channel`.
    fn on_packet(&self, channel: u8, data: &[u8]);
    /// The client disconnected or timed out.
    fn on_disconnect(&self);
}

enum Command {
    Register(u32, Arc<dyn ControlHandler>),
    Unregister(u32),
    Send {
        connect_data: u32,
        data: Vec<u8>,
    },
    Disconnect {
        connect_data: u32,
        flush_first: bool,
    },
}

/// Handle to the control thread.
#[derive(Clone)]
pub struct ControlServer {
    tx: Sender<Command>,
    waker: Arc<UdpSocket>,
    addr: SocketAddr,
}

impl ControlServer {
    /// Binds the control port and starts its thread.
    pub fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let socket = crate::net::bind_udp(addr)
            .with_context(|| format!("cannot bind the control port {addr}"))?;
        let local = socket.local_addr()?;
        let fd = socket.as_raw_fd();
        let host = enet::Host::new(
            socket,
            enet::HostSettings {
                peer_limit: 64,
                channel_limit: 0x30,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot create the ENet host: {e:?}"))?;
        let (tx, rx) = mpsc::channel();
        // A datagram to ourselves wakes the thread from poll() when a command is queued.
        let waker = crate::net::bind_udp(SocketAddr::new(local.ip(), 0))
            .or_else(|_| UdpSocket::bind("127.0.0.1:0"))?;
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || run(host, fd, rx))
            .context("cannot start the control thread")?;
        Ok(Self {
            tx,
            waker: Arc::new(waker),
            addr: local,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Expects a client that connects with `connect_data`.
    pub fn register(&self, connect_data: u32, handler: Arc<dyn ControlHandler>) {
        self.command(Command::Register(connect_data, handler));
    }

    /// Forgets the stream; its peer, if any, is disconnected.
    pub fn unregister(&self, connect_data: u32) {
        self.command(Command::Unregister(connect_data));
    }

    /// Sends a reliable packet on channel 0 to the stream's peer.
    pub fn send(&self, connect_data: u32, data: Vec<u8>) {
        self.command(Command::Send { connect_data, data });
    }

    /// Disconnects the stream's peer, after delivering what was queued when `flush_first`.
    pub fn disconnect(&self, connect_data: u32, flush_first: bool) {
        self.command(Command::Disconnect {
            connect_data,
            flush_first,
        });
    }

    fn command(&self, c: Command) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.send_to(&[], self.wake_addr());
        }
    }

    fn wake_addr(&self) -> SocketAddr {
        match self.addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), self.addr.port())
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), self.addr.port())
            }
            _ => self.addr,
        }
    }
}

struct Stream {
    handler: Arc<dyn ControlHandler>,
    peer: Option<enet::PeerID>,
    last_seen: Instant,
}

fn run(mut host: enet::Host<UdpSocket>, fd: i32, rx: Receiver<Command>) {
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut peers: HashMap<enet::PeerID, u32> = HashMap::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok(cmd) => handle_command(&mut host, &mut streams, &mut peers, cmd),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        loop {
            let event = match host.service() {
                Ok(Some(e)) => e.no_ref(),
                Ok(None) => break,
                Err(e) => {
                    debug!(?e, "control socket error");
                    break;
                }
            };
            handle_event(&mut host, &mut streams, &mut peers, event);
        }
        let now = Instant::now();
        let stale: Vec<u32> = streams
            .iter()
            .filter(|(_, s)| s.peer.is_some() && now - s.last_seen > PEER_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            warn!(connect_data = k, "control peer timed out");
            if let Some(s) = streams.get_mut(&k) {
                if let Some(p) = s.peer.take() {
                    peers.remove(&p);
                    host.peer_mut(p).disconnect_now(0);
                }
                s.handler.on_disconnect();
            }
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, 5) };
    }
}

fn handle_command(
    host: &mut enet::Host<UdpSocket>,
    streams: &mut HashMap<u32, Stream>,
    peers: &mut HashMap<enet::PeerID, u32>,
    cmd: Command,
) {
    match cmd {
        Command::Register(k, handler) => {
            streams.insert(
                k,
                Stream {
                    handler,
                    peer: None,
                    last_seen: Instant::now(),
                },
            );
        }
        Command::Unregister(k) => {
            if let Some(s) = streams.remove(&k) {
                if let Some(p) = s.peer {
                    peers.remove(&p);
                    host.peer_mut(p).disconnect_later(0);
                }
            }
        }
        Command::Send { connect_data, data } => {
            if let Some(p) = streams.get(&connect_data).and_then(|s| s.peer) {
                if let Err(e) = host
                    .peer_mut(p)
                    .send(0, &enet::Packet::reliable(data.as_slice()))
                {
                    debug!(?e, "cannot queue a control packet");
                }
                host.flush();
            }
        }
        Command::Disconnect {
            connect_data,
            flush_first,
        } => {
            if let Some(p) = streams.get_mut(&connect_data).and_then(|s| s.peer.take()) {
                peers.remove(&p);
                if flush_first {
                    host.flush();
                    host.peer_mut(p).disconnect_later(0);
                } else {
                    host.peer_mut(p).disconnect_now(0);
                }
            }
        }
    }
}

fn handle_event(
    host: &mut enet::Host<UdpSocket>,
    streams: &mut HashMap<u32, Stream>,
    peers: &mut HashMap<enet::PeerID, u32>,
    event: enet::EventNoRef,
) {
    match event {
        enet::EventNoRef::Connect { peer, data } => {
            let addr = host.peer(peer).address();
            match streams.get_mut(&data) {
                Some(s) if s.peer.is_none() => {
                    info!(?addr, "control stream connected");
                    s.peer = Some(peer);
                    s.last_seen = Instant::now();
                    peers.insert(peer, data);
                    let p = host.peer_mut(peer);
                    p.set_timeout(
                        0,
                        PEER_TIMEOUT.as_millis() as u32,
                        PEER_TIMEOUT.as_millis() as u32,
                    );
                    if let Some(a) = addr {
                        s.handler.on_connect(a);
                    }
                }
                _ => {
                    warn!(
                        ?addr,
                        data, "control connection for no known stream; refused"
                    );
                    host.peer_mut(peer).disconnect_now(0);
                }
            }
        }
        enet::EventNoRef::Receive {
            peer,
            channel_id,
            packet,
        } => {
            if let Some(s) = peers.get(&peer).and_then(|k| streams.get_mut(k)) {
                s.last_seen = Instant::now();
                s.handler.on_packet(channel_id, packet.data());
            }
        }
        enet::EventNoRef::Disconnect { peer, .. } => {
            if let Some(k) = peers.remove(&peer) {
                if let Some(s) = streams.get_mut(&k) {
                    info!("control stream disconnected");
                    s.peer = None;
                    s.handler.on_disconnect();
                }
            }
        }
    }
}
