//! Sockets that take IPv4 and IPv6 clients alike.
//!
//! A socket bound to the IPv6 wildcard (`::`) is made dual-stack explicitly (`IPV6_V6ONLY`
//! off, whatever `net.ipv6.bindv6only` says): IPv4 clients then arrive as IPv4-mapped IPv6
//! addresses (`::ffff:192.0.2.1`), the same on every such socket, so that a client's address
//! from its HTTPS request matches the one its datagrams come from. Any other address is bound
//! as it is.

use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Whether `addr` is the IPv6 wildcard, which is bound dual-stack.
pub fn is_dual_stack(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unspecified())
}

/// A socket of `kind` for `addr`, dual-stack on the IPv6 wildcard.
pub fn socket(addr: &SocketAddr, kind: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(*addr), kind, Some(protocol))?;
    if is_dual_stack(addr) {
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

/// A UDP socket bound to `addr`, dual-stack on the IPv6 wildcard.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket(&addr, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_ipv6_wildcard_takes_ipv4_and_ipv6_datagrams() {
        let server = bind_udp(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)).unwrap();
        let port = server.local_addr().unwrap().port();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        for (client, from) in [
            (Ipv4Addr::LOCALHOST.into(), "::ffff:127.0.0.1"),
            (Ipv6Addr::LOCALHOST.into(), "::1"),
        ] {
            let c = bind_udp(SocketAddr::new(client, 0)).unwrap();
            c.send_to(b"hi", SocketAddr::new(client, port)).unwrap();
            let (n, src) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
            assert_eq!(src.ip().to_string(), from);
            // And the answer finds its way back to the address as it came.
            server.send_to(b"ok", src).unwrap();
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"ok");
        }
    }
}
