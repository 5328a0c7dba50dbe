//! GameStream, the protocol every Moonlight client speaks: its servers and what the host keeps
//! for it between requests.
//!
//! - [`nvhttp`]: the HTTP and HTTPS servers (server info, pairing, app list, launch);
//! - [`pairing`]: the five-stage PIN pairing of `/pair`, one per client address;
//! - [`rtsp`]: the RTSP handshake that follows a launch and starts the stream.
//!
//! [`GameStream`] holds the pairings in progress and the launches that wait for their RTSP
//! handshakes. A launch's session is the host's ([`Host::start_session`]); once ANNOUNCE
//! arrives, [`GameStream::start_stream`] attaches GameStream's stream to it
//! ([`Host::attach_stream`]). Sessions share the host's media ports; a stream's packets are
//! told apart by the keys, ping payload and connect data of its launch.

pub mod nvhttp;
pub mod pairing;
pub mod rtsp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::host::Host;
use pairing::PendingPairing;

/// How long a launch waits for its RTSP handshake.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A launch that waits for the client's RTSP handshake.
///
/// Several may wait at once, one per client. An RTSP request finds its launch by the key that
/// opens it (`rtspenc://`) or, in plaintext, by the client's address.
#[derive(Debug, Clone)]
pub struct PendingLaunch {
    /// The session this launch streams.
    pub session: u64,
    /// The paired client's id.
    pub client: String,
    /// The session key (`rikey`).
    pub key: [u8; 16],
    /// `rikeyid`.
    pub key_id: u32,
    /// The 16-character ping payload handed out in SETUP.
    pub ping_payload: [u8; 16],
    /// The ENet connect data handed out in SETUP.
    pub connect_data: u32,
    /// The client's address as seen on HTTPS.
    pub client_ip: IpAddr,
    /// When it was created.
    pub created: Instant,
    /// The RTSP exchange of this launch.
    pub rtsp: protocol::rtsp::RtspHandler,
    /// The `rtspenc://` cipher, when the client asked for encrypted RTSP.
    pub rtsp_cipher: Option<protocol::rtsp::RtspCipher>,
}

/// GameStream on the host: the servers share it.
pub struct GameStream {
    /// The host whose sessions GameStream streams.
    pub host: Arc<Host>,
    /// Pairings in progress, by [`pairing::pairing_key`] (uniqueid and address).
    pairings: Mutex<HashMap<String, PendingPairing>>,
    /// The launches waiting for RTSP, at most one per client.
    launches: Mutex<Vec<PendingLaunch>>,
}

impl GameStream {
    /// GameStream for `host`, with nothing pending.
    pub fn new(host: Arc<Host>) -> Arc<Self> {
        Arc::new(Self {
            host,
            pairings: Mutex::new(HashMap::new()),
            launches: Mutex::new(Vec::new()),
        })
    }

    /// The pairings in progress.
    fn lock_pairings(&self) -> MutexGuard<'_, HashMap<String, PendingPairing>> {
        self.pairings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The launches waiting for RTSP, with expired ones and those whose session ended dropped.
    pub fn lock_pending(&self) -> MutexGuard<'_, Vec<PendingLaunch>> {
        let mut pending = self.launches.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|l| {
            let fresh = l.created.elapsed() <= LAUNCH_TIMEOUT;
            if !fresh {
                warn!(session = l.session, client = %l.client, "a launch expired without its RTSP handshake");
            }
            fresh && self.host.has_session(l.session)
        });
        pending
    }

    /// Starts (or restarts) the stream of `launch`'s session with the parameters from
    /// ANNOUNCE.
    pub fn start_stream(
        &self,
        launch: &PendingLaunch,
        params: protocol::rtsp::StreamParams,
    ) -> anyhow::Result<()> {
        let host = &self.host;
        let mode = compositor::Mode {
            width: params.width,
            height: params.height,
            refresh_mhz: params.fps.saturating_mul(1000),
        };
        let config = host.config();
        host.attach_stream(launch.session, mode, |seat| {
            let cfg = streamer::StreamConfig {
                key: launch.key,
                key_id: launch.key_id,
                ping_payload: launch.ping_payload,
                connect_data: launch.connect_data,
                client_ip: launch.client_ip,
                params,
                fec_percent: config.video.fec_percent,
                encoder: crate::config::hardware(&config.video),
                audio: seat.audio,
                gamepads: crate::config::gamepads(&config.input),
            };
            let stream = streamer::Stream::start(&host.media, cfg, seat.compositor, seat.on_end)?;
            Ok(Box::new(stream))
        })?;
        Ok(())
    }

    /// The address for `sessionUrl0` when a request arrived on `local`.
    pub fn rtsp_url(&self, encrypted: bool, local: SocketAddr) -> String {
        protocol::nvhttp::session_url(encrypted, local.ip(), self.host.ports.rtsp)
    }
}
