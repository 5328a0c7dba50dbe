//! Who may use the GameStream control port (ENet): only a client that connects with the
//! connect data of a stream the host expects, one client a stream. Another client's or a
//! made-up value, a second connection to a stream already taken, a stream that has ended and
//! datagrams of any shape are refused, and the stream's client is not disturbed.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusty_enet as enet;
use streamer::control::{ControlHandler, ControlServer};

#[derive(Default)]
struct Seen {
    connects: Vec<SocketAddr>,
    packets: Vec<(u8, Vec<u8>)>,
    disconnects: usize,
}

#[derive(Default)]
struct Recorder(Mutex<Seen>);

impl ControlHandler for Recorder {
    fn on_connect(&self, from: SocketAddr) {
        self.0.lock().unwrap().connects.push(from);
    }
    fn on_packet(&self, channel: u8, data: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .packets
            .push((channel, data.to_vec()));
    }
    fn on_disconnect(&self) {
        self.0.lock().unwrap().disconnects += 1;
    }
}

/// An ENet client on its own UDP socket.
struct Client {
    host: enet::Host<UdpSocket>,
    peer: enet::PeerID,
}

/// What happened to a connection attempt.
#[derive(Debug, PartialEq)]
enum Outcome {
    Connected,
    Refused,
}

impl Client {
    fn connect(server: SocketAddr, data: u32) -> (Client, Outcome) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut host = enet::Host::new(socket, enet::HostSettings::default()).unwrap();
        let peer = host.connect(server, 0x30, data).unwrap().id();
        let mut client = Client { host, peer };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut connected = false;
        while Instant::now() < deadline {
            match client.host.service() {
                Ok(Some(enet::Event::Connect { .. })) => connected = true,
                Ok(Some(enet::Event::Disconnect { .. })) => return (client, Outcome::Refused),
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => panic!("client socket: {e}"),
            }
            // A refused peer is dropped right after its connect completes: wait a little.
            if connected && deadline - Instant::now() < Duration::from_millis(4500) {
                return (client, Outcome::Connected);
            }
        }
        (
            client,
            if connected {
                Outcome::Connected
            } else {
                Outcome::Refused
            },
        )
    }

    fn send(&mut self, channel: u8, data: &[u8]) {
        self.host
            .peer_mut(self.peer)
            .send(channel, &enet::Packet::reliable(data))
            .unwrap();
        self.pump(Duration::from_millis(100));
    }

    /// Services the client for `d`; whether it is still connected.
    fn pump(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut alive = true;
        while Instant::now() < end {
            match self.host.service() {
                Ok(Some(enet::Event::Disconnect { .. })) => alive = false,
                Ok(Some(_)) => {}
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        alive
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the test found, row by row: the outcome of each kind of attempt on the control port.
#[derive(Default)]
struct Table(Vec<(&'static str, String)>);

impl Table {
    fn row(&mut self, attempt: &'static str, outcome: impl Into<String>) {
        self.0.push((attempt, outcome.into()));
    }

    fn markdown(&self) -> String {
        let mut s = String::from("| on the control port (ENet) | outcome |\n|---|---|\n");
        for (attempt, outcome) in &self.0 {
            s.push_str(&format!("| {attempt} | {outcome} |\n"));
        }
        s
    }
}

/// Fails when `docs/security.md`'s control-port table is not `text`;
/// `PUNKTFUNK_WRITE_DOCS=1` writes it there instead.
fn check_doc(text: &str) {
    const BEGIN: &str = "<!-- control-table begin -->";
    const END: &str = "<!-- control-table end -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = doc.split_once(BEGIN).expect("the table's begin marker");
    let (current, after) = rest.split_once(END).expect("the table's end marker");
    if current.trim_start_matches('\n') == text {
        return;
    }
    if std::env::var_os("PUNKTFUNK_WRITE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, format!("{before}{BEGIN}\n{text}{END}{after}")).unwrap();
        return;
    }
    panic!(
        "docs/security.md's control-port table differs from what the port does; run with \
         PUNKTFUNK_WRITE_DOCS=1 to update it. The port:\n{text}"
    );
}

fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Connected => "allowed",
        Outcome::Refused => "refused",
    }
}

#[test]
fn only_the_expected_client_gets_the_control_stream() {
    let mut table = Table::default();
    let server = ControlServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr();
    let owner = Arc::new(Recorder::default());
    let other = Arc::new(Recorder::default());
    server.register(0x1111_1111, owner.clone());
    server.register(0x2222_2222, other.clone());

    // A made-up connect data: no stream has it.
    let (_, outcome) = Client::connect(addr, 0xdead_beef);
    table.row("connect with made-up connect data", self::outcome(&outcome));
    assert_eq!(outcome, Outcome::Refused);

    // The owner's: connected, its packets reach its stream and no other.
    let (mut first, outcome) = Client::connect(addr, 0x1111_1111);
    table.row(
        "connect with a stream's connect data (from its RTSP SETUP), the stream's client",
        self::outcome(&outcome),
    );
    assert_eq!(outcome, Outcome::Connected);
    wait("the stream never heard of its client", || {
        owner.0.lock().unwrap().connects.len() == 1
    });
    first.send(0, b"hello");
    wait("the client's packet never arrived", || {
        owner.0.lock().unwrap().packets == [(0, b"hello".to_vec())]
    });

    // A second connection with the same connect data (someone who learnt it): refused, and the
    // first client keeps its stream.
    let (_, outcome) = Client::connect(addr, 0x1111_1111);
    table.row(
        "connect with a stream's connect data while its client holds it (another client)",
        format!("{}; the stream's client keeps it", self::outcome(&outcome)),
    );
    assert_eq!(outcome, Outcome::Refused);
    assert!(
        first.pump(Duration::from_millis(300)),
        "the owner was disconnected"
    );
    first.send(1, b"still here");
    wait("the owner's second packet never arrived", || {
        owner.0.lock().unwrap().packets.len() == 2
    });

    // Garbage of every length from another socket changes nothing.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for len in 0..1500 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        junk.send_to(&bytes, addr).unwrap();
    }
    assert!(
        first.pump(Duration::from_millis(300)),
        "garbage disconnected the owner"
    );
    first.send(0, b"after the junk");
    wait("the owner's packet after the junk never arrived", || {
        owner.0.lock().unwrap().packets.len() == 3
    });
    table.row(
        "1500 datagrams of 0 to 1499 bytes from another socket",
        "ignored; the stream's client keeps its connection",
    );

    // The stream ends (session ended, client unpaired): its peer is dropped and its connect
    // data no longer opens anything.
    server.unregister(0x1111_1111);
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.pump(Duration::from_millis(50)) {
        assert!(
            Instant::now() < deadline,
            "the ended stream's client stayed connected"
        );
    }
    table.row(
        "the stream ends (session over, client unpaired)",
        "its client is disconnected",
    );
    let (_, outcome) = Client::connect(addr, 0x1111_1111);
    table.row(
        "connect with an ended stream's connect data (unpaired a moment ago)",
        self::outcome(&outcome),
    );
    assert_eq!(outcome, Outcome::Refused);

    let seen = other.0.lock().unwrap();
    assert!(
        seen.connects.is_empty() && seen.packets.is_empty(),
        "another stream was touched"
    );
    assert_eq!(owner.0.lock().unwrap().connects.len(), 1);
    table.row("any of the above", "reaches no other stream");
    check_doc(&table.markdown());
}
