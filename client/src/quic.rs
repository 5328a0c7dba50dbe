//! The control connection: QUIC with TLS 1.3 (rustls on *ring*), ALPN `pkf1`, the client's
//! certificate presented, the host's certificate checked against its pin, and one bidirectional
//! stream of length-prefixed control messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use protocol::native::control::{Message, MessageDecoder};
use protocol::native::pairing::{fingerprint, fingerprint_hex, Fingerprint};
use protocol::pairing::HostIdentity;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::args::HostArg;

/// The server name the client sends; the host ignores it.
const SERVER_NAME: &str = "punktfunk";
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the host's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostTrust {
    /// Its SHA-256 must be this pin.
    Pinned(Fingerprint),
    /// Any certificate (pairing, where the PIN exchange binds the fingerprint).
    Learn,
}

/// An open control connection.
pub(crate) struct Control {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) connection: quinn::Connection,
    pub(crate) send: quinn::SendStream,
    pub(crate) recv: quinn::RecvStream,
    decoder: MessageDecoder,
    /// The fingerprint of the certificate the host presented.
    pub(crate) host_fingerprint: Fingerprint,
}

/// Connects to `host` with `identity` as the client certificate and opens the control stream.
pub(crate) async fn connect(
    host: &HostArg,
    identity: &HostIdentity,
    trust: HostTrust,
) -> anyhow::Result<Control> {
    let addr = resolve(host).await?;
    let seen = Arc::new(Mutex::new(None));
    let config = client_config(identity, trust, seen.clone())?;
    let bind: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let endpoint = quinn::Endpoint::client(bind).context("cannot open a UDP socket")?;
    let connecting = endpoint
        .connect_with(config, addr, SERVER_NAME)
        .with_context(|| format!("cannot connect to {host}"))?;
    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let presented = *seen.lock().unwrap_or_else(|e| e.into_inner());
            if let (HostTrust::Pinned(pin), Some(fp)) = (trust, presented) {
                if pin != fp {
                    bail!(
                        "host certificate changed: {host} presented {} but is pinned to {}; \
                         if the host was reinstalled, pair again",
                        fingerprint_hex(&fp),
                        fingerprint_hex(&pin)
                    );
                }
            }
            return Err(anyhow!(e).context(format!("cannot connect to {host} ({addr})")));
        }
        Err(_) => bail!("cannot connect to {host} ({addr}): no answer in {CONNECT_TIMEOUT:?}"),
    };
    let host_fingerprint = connection
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(|c| fingerprint(c)))
        .context("the host presented no certificate")?;
    let (send, recv) = connection
        .open_bi()
        .await
        .context("cannot open the control stream")?;
    Ok(Control {
        endpoint,
        connection,
        send,
        recv,
        decoder: MessageDecoder::new(),
        host_fingerprint,
    })
}

impl Control {
    /// Sends one message on the control stream.
    pub(crate) async fn send(&mut self, message: &Message) -> anyhow::Result<()> {
        send_message(&mut self.send, message).await
    }

    /// The next message from the host; an error when the stream or connection ends first.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Message> {
        recv_message(&mut self.recv, &mut self.decoder)
            .await?
            .context("the host closed the control stream")
    }

    /// Takes the decoder with whatever it buffered, for a reader task.
    pub(crate) fn take_decoder(&mut self) -> MessageDecoder {
        std::mem::take(&mut self.decoder)
    }

    /// Finishes the control stream, waits a little for the host to take it, then closes the
    /// connection.
    pub(crate) async fn finish(mut self) {
        close(&mut self.send, &self.connection, &self.endpoint).await;
    }
}

/// Finishes `send`, gives the host up to a second to acknowledge, closes the connection and
/// lets the endpoint send the close.
pub(crate) async fn close(
    send: &mut quinn::SendStream,
    connection: &quinn::Connection,
    endpoint: &quinn::Endpoint,
) {
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
    connection.close(0u32.into(), b"");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// Writes one framed message.
pub(crate) async fn send_message(
    send: &mut quinn::SendStream,
    message: &Message,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    message
        .encode(&mut buf)
        .context("cannot encode a control message")?;
    send.write_all(&buf)
        .await
        .context("cannot send on the control stream")
}

/// Reads until `decoder` has a whole message; `None` when the stream ended cleanly.
pub(crate) async fn recv_message(
    recv: &mut quinn::RecvStream,
    decoder: &mut MessageDecoder,
) -> anyhow::Result<Option<Message>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = decoder
            .poll_message()
            .context("the host sent a malformed control message")?
        {
            return Ok(Some(m));
        }
        match recv.read(&mut buf).await {
            Ok(Some(n)) => decoder.handle_bytes(&buf[..n]),
            Ok(None) => return Ok(None),
            Err(e) => return Err(anyhow!(e).context("the control stream failed")),
        }
    }
}

/// The host's first address.
async fn resolve(host: &HostArg) -> anyhow::Result<SocketAddr> {
    if let Ok(ip) = host.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, host.port));
    }
    tokio::net::lookup_host((host.host.as_str(), host.port))
        .await
        .with_context(|| format!("cannot resolve {}", host.host))?
        .next()
        .with_context(|| format!("{} has no address", host.host))
}

fn client_config(
    identity: &HostIdentity,
    trust: HostTrust,
    seen: Arc<Mutex<Option<Fingerprint>>>,
) -> anyhow::Result<quinn::ClientConfig> {
    let provider = punktfunk_quic::provider();
    let verifier = PinVerifier {
        trust,
        seen,
        algorithms: provider.signature_verification_algorithms,
    };
    let key = identity
        .key()
        .private_key_to_pkcs8()
        .context("cannot encode the client key")?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 is not available")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(
            vec![CertificateDer::from(identity.cert_der())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .context("the client certificate is not usable")?;
    tls.alpn_protocols = vec![protocol::native::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).context("cannot set up QUIC's TLS")?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Checks the host's certificate against its pin (or learns it), and the handshake's
/// signatures with the provider's algorithms. The host's certificate is self-signed and named
/// for nobody: the pin, not a chain or a name, is what identifies it.
#[derive(Debug)]
struct PinVerifier {
    trust: HostTrust,
    /// The fingerprint presented, for the error message of a changed certificate.
    seen: Arc<Mutex<Option<Fingerprint>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp);
        match self.trust {
            HostTrust::Learn => Ok(ServerCertVerified::assertion()),
            HostTrust::Pinned(pin) if pin == fp => Ok(ServerCertVerified::assertion()),
            HostTrust::Pinned(_) => Err(rustls::Error::General(
                "host certificate changed: it does not match the pinned fingerprint".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The config allows TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_holds_to_the_pin() {
        let id = HostIdentity::generate(0).unwrap();
        let der = CertificateDer::from(id.cert_der());
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let verifier = |trust| PinVerifier {
            trust,
            seen: Arc::default(),
            algorithms: punktfunk_quic::provider().signature_verification_algorithms,
        };
        let check = |v: &PinVerifier| v.verify_server_cert(&der, &[], &name, &[], UnixTime::now());
        assert!(check(&verifier(HostTrust::Learn)).is_ok());
        assert!(check(&verifier(HostTrust::Pinned(fingerprint(&der)))).is_ok());
        let other = verifier(HostTrust::Pinned([7; 32]));
        let err = check(&other).unwrap_err();
        assert!(
            err.to_string().contains("host certificate changed"),
            "{err}"
        );
        assert_eq!(*other.seen.lock().unwrap(), Some(fingerprint(&der)));
    }
}
