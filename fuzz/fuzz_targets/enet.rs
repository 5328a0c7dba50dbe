//! The GameStream control port's ENet layer, with the host's settings (64 peers, 0x30
//! channels): a real ENet client connects and sends packets while its datagrams are cut and
//! changed on the way, and datagrams of any shape arrive from a second address.
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use punktfunk_fuzz::Choices;
use rusty_enet::{Event, Host, HostSettings, Packet, ReadWrite};

type Socket = ReadWrite<SocketAddr, Infallible>;

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let host_addr: SocketAddr = "127.0.0.1:47999".parse().expect("address");
    let client_addr: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let other_addr: SocketAddr = "127.0.0.2:40001".parse().expect("address");
    let mut host = Host::new(
        Socket::new(),
        HostSettings {
            peer_limit: 64,
            channel_limit: 0x30,
            ..HostSettings::default()
        },
    )
    .expect("host");
    let mut client = Host::new(Socket::new(), HostSettings::default()).expect("client");
    let Ok(peer) = client.connect(host_addr, 0x30, c.u32()) else {
        return;
    };
    let peer = peer.id();

    for _ in 0..48 {
        if c.is_empty() {
            break;
        }
        match c.u8() % 4 {
            // The client's datagrams to the host, some of them changed or cut.
            0 => {
                while let Ok(Some(_)) = client.service() {}
                while let Some((_, mut datagram)) = client.socket_mut().read() {
                    if c.bool() && !datagram.is_empty() {
                        let at = c.u16() as usize % datagram.len();
                        datagram[at] ^= c.u8();
                        if c.bool() {
                            datagram.truncate(at + 1);
                        }
                    }
                    host.socket_mut().write(client_addr, datagram);
                }
            }
            // The host's answers back to the client.
            1 => {
                while let Some((to, datagram)) = host.socket_mut().read() {
                    if to == client_addr {
                        client.socket_mut().write(host_addr, datagram);
                    }
                }
            }
            // Anything at all from elsewhere.
            2 => {
                let datagram = c.short_bytes().to_vec();
                host.socket_mut().write(other_addr, datagram);
            }
            // The client sends on some channel.
            _ => {
                let channel = c.u8() % 0x30;
                let payload = c.short_bytes();
                let packet = if c.bool() {
                    Packet::reliable(payload)
                } else {
                    Packet::unreliable(payload)
                };
                let _ = client.peer_mut(peer).send(channel, &packet);
            }
        }
        // The host as the control thread runs it: events until none is left.
        for _ in 0..256 {
            match host.service() {
                Ok(Some(Event::Receive { channel_id, .. })) => assert!(channel_id < 0x30),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert!(host.connected_peers().count() <= 64);
    }
});
