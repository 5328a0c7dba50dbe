//! punktfunk/1's QUIC set-up: the host's, for `punktfunk serve` and for anything else that has to
//! stand where a host stands (the reference client's tests), and the provider both ends use.
//!
//! TLS 1.3 with *ring* (it builds with a C compiler alone; its provider lacks only post-quantum
//! key exchange), the host's own certificate, ALPN `pkf1`, and a client certificate required
//! from everyone but checked by no authority: whether a client is paired is decided after the
//! handshake, by comparing its certificate with the paired ones. The transport admits one control stream and
//! keeps every connection's buffers small.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// How long a connection may be silent before it counts as gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The host's keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// rustls on *ring*, the provider both ends of punktfunk/1 use. rustls 0.23.48 deprecated
/// *ring*'s provider for lacking post-quantum key exchange; the workspace builds rustls with
/// *ring* only, so it stays until the host and client move together.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The host's server configuration with its certificate and key.
pub fn host_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<quinn::ServerConfig> {
    let provider = provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClientCertificate(provider)))
        .with_single_cert(vec![cert], key)
        .context("the host certificate does not suit TLS 1.3")?;
    tls.alpn_protocols = vec![protocol::native::ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into()?));
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    // One control stream and nothing else; small windows, so that a connection (paired or not)
    // cannot make the host buffer more than a few hundred kilobytes.
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.stream_receive_window((64u32 * 1024).into());
    transport.receive_window((256u32 * 1024).into());
    transport.datagram_receive_buffer_size(Some(256 * 1024));
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// A client certificate verifier that takes any certificate whose handshake signature holds:
/// who may do what is decided per connection by comparing the whole certificate with the
/// paired ones.
#[derive(Debug)]
struct AnyClientCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
