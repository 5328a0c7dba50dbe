//! punktfunk/1, the native protocol, on the host: one QUIC port (base + 30) with the host's own
//! certificate, ALPN `pkf1`.
//!
//! Every client presents a certificate of its own. One that is not paired gets nothing but the
//! pairing exchange ([`protocol::native::pairing`]): the host arms a PIN
//! ([`Native::arm_pairing`], `punktfunk pair --native`), the user types it on the client, and
//! one attempt uses it up whatever its outcome. A paired client lists the apps or streams: its
//! `Hello` starts (or resumes) its session at the client's mode, `Welcome` hands over the
//! data-plane key inside the TLS-protected connection, and after `Start` the session's
//! [`NativeStream`] sends to the client's data port. The control stream then carries mode
//! changes, keyframe requests, loss reports, clock probes and the close; input arrives as QUIC
//! datagrams and goes into the session's seat.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use protocol::native::control::{
    AppEntry, AudioFormat, BitrateReason, Chroma, CloseCode, Codec, Codecs, Colour, ControlError,
    HostCaps, Message, MessageDecoder, Welcome,
};
use protocol::native::pairing::{fingerprint, Fingerprint, HostPairing};
use rand::RngCore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use streamer::native::{NativeConfig, NativeStream, Notice};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::host::Host;
use crate::prep::ClientVars;

/// How long an armed PIN waits for its one attempt.
pub const PIN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// How long a client may take between connecting and its first message, and between
/// `Welcome` and `Start`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest mode a client may ask for.
const MAX_SIDE: u32 = 7680;

/// The fastest synthetic stream a client may ask for, in kbit/s.
const MAX_SYNTHETIC_KBPS: u32 = 4_000_000;

/// Why a mode is refused.
const UNSUPPORTED_MODE: &str = "unsupported mode: width and height even, 2 to 7680, 1 to 1000 Hz";

/// The output mode a client's mode asks for, where the encoders take it: both sides even
/// (4:2:0 pictures), 2 to [`MAX_SIDE`], 1 to 1000 Hz.
fn output_mode(m: &protocol::native::control::Mode) -> Option<compositor::Mode> {
    let side = |v: u16| (2..=MAX_SIDE).contains(&u32::from(v)) && v & 1 == 0;
    let refresh = (1000..=1_000_000).contains(&m.refresh_mhz);
    (side(m.width) && side(m.height) && refresh).then(|| compositor::Mode {
        width: u32::from(m.width),
        height: u32::from(m.height),
        refresh_mhz: m.refresh_mhz,
    })
}

/// A PIN waiting for its one pairing attempt.
struct ArmedPin {
    pin: String,
    until: Instant,
}

/// punktfunk/1 on the host.
pub struct Native {
    host: Arc<Host>,
    fingerprint: Fingerprint,
    armed: Mutex<Option<ArmedPin>>,
}

impl Native {
    /// punktfunk/1 for `host`, no PIN armed.
    pub fn new(host: Arc<Host>) -> anyhow::Result<Arc<Self>> {
        let der = CertificateDer::from_pem_slice(host.identity.cert_pem())
            .context("the host certificate is not PEM")?;
        Ok(Arc::new(Self {
            fingerprint: fingerprint(&der),
            host,
            armed: Mutex::new(None),
        }))
    }

    /// The host certificate's SHA-256 in hex, as a client pins it.
    pub fn fingerprint_hex(&self) -> String {
        protocol::native::pairing::fingerprint_hex(&self.fingerprint)
    }

    /// Arms a new six-digit PIN for one pairing attempt within [`PIN_LIFETIME`], replacing an
    /// armed one; returns it.
    pub fn arm_pairing(&self) -> String {
        let pin = format!("{:06}", rand::rngs::OsRng.next_u32() % 1_000_000);
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(ArmedPin {
            pin: pin.clone(),
            until: Instant::now() + PIN_LIFETIME,
        });
        info!("a punktfunk/1 pairing PIN is armed for one attempt");
        pin
    }

    /// Takes the armed PIN, if one is armed and fresh: each PIN serves one attempt.
    fn take_pin(&self) -> Option<String> {
        let armed = self
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        (Instant::now() < armed.until).then_some(armed.pin)
    }
}

/// The QUIC endpoint on `addr` (dual-stack where `addr` is `::`), with the host's certificate.
pub fn endpoint(host: &Host, addr: SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    let cert = CertificateDer::from_pem_slice(host.identity.cert_pem())
        .context("the host certificate is not PEM")?;
    let key = PrivateKeyDer::from_pem_slice(host.identity.key_pem())
        .context("the host key is not PEM")?;
    let server = punktfunk_quic::host_config(cert, key)?;
    let socket = streamer::net::bind_udp(addr)?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    Ok(endpoint)
}

/// Connections that may be in their handshake (before their first message is answered) at
/// once; more are refused until one finishes.
const MAX_HANDSHAKES: usize = 64;

/// Serves punktfunk/1 on `endpoint` until the host stops.
pub async fn serve(endpoint: quinn::Endpoint, native: Arc<Native>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            warn!(remote = %incoming.remote_address(), "too many punktfunk/1 handshakes at once; connection refused");
            incoming.refuse();
            continue;
        };
        let native = native.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            if let Err(e) = connection(native, incoming, permit).await {
                info!(%remote, err = %format!("{e:#}"), "punktfunk/1 connection ended");
            }
        });
    }
}

/// The control stream of one connection.
struct Control {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: MessageDecoder,
}

impl Control {
    async fn send(&mut self, msg: &Message) -> anyhow::Result<()> {
        let mut out = Vec::new();
        msg.encode(&mut out)?;
        self.send.write_all(&out).await?;
        Ok(())
    }

    /// The next message the host knows; unknown ones are skipped, malformed ones logged and
    /// skipped. `None` when the client closed its side.
    async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        let mut buf = [0u8; 4096];
        loop {
            loop {
                match self.decoder.poll_message() {
                    Ok(None) => break,
                    Ok(Some(Message::Unknown { kind })) => {
                        debug!(kind, "unknown control message skipped")
                    }
                    Ok(Some(m)) => return Ok(Some(m)),
                    // A length that breaks the framing ends the stream.
                    Err(e @ (ControlError::Empty | ControlError::TooLong { .. })) => {
                        bail!("control stream broken: {e}")
                    }
                    Err(e) => warn!(%e, "malformed control message dropped"),
                }
            }
            match self.recv.read(&mut buf).await? {
                Some(n) => {
                    if streamer::corpus::enabled() {
                        // The native_control target's form: selector 1, then chunks of at most
                        // 255 bytes, each after its length.
                        let mut seed = vec![1];
                        for chunk in buf[..n].chunks(255) {
                            seed.push(chunk.len() as u8);
                            seed.extend_from_slice(chunk);
                        }
                        streamer::corpus::record("native_control", &[&seed]);
                    }
                    self.decoder.handle_bytes(&buf[..n])
                }
                None => return Ok(None),
            }
        }
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self
            .send(&Message::Close {
                code,
                reason: reason.into(),
            })
            .await;
        let _ = self.send.finish();
    }
}

async fn connection(
    native: Arc<Native>,
    incoming: quinn::Incoming,
    handshake: tokio::sync::OwnedSemaphorePermit,
) -> anyhow::Result<()> {
    let conn = incoming.await.context("handshake failed")?;
    let remote = conn.remote_address();
    let der = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(|c| c.to_vec()))
        .context("the client presented no certificate")?;
    let (send, recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
        .await
        .context("no control stream")??;
    let mut control = Control {
        send,
        recv,
        decoder: MessageDecoder::new(),
    };
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, control.next())
        .await
        .context("no first message")??
        .context("the client closed before its first message")?;
    drop(handshake);
    let paired = native.host.paired_client(&der);
    let result = answer(native, &conn, &mut control, &der, first, paired, remote).await;
    // Whatever the answer, let it reach the client before the connection goes: the client
    // closes once it has read it.
    let _ = control.send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    result
}

/// Answers a connection's first message.
async fn answer(
    native: Arc<Native>,
    conn: &quinn::Connection,
    control: &mut Control,
    der: &[u8],
    first: Message,
    paired: Option<crate::state::PairedClient>,
    remote: SocketAddr,
) -> anyhow::Result<()> {
    match (first, paired) {
        (Message::PairRequest { name, spake_a }, _) => {
            pair(&native, control, der, &name, &spake_a, remote).await
        }
        (_, None) => {
            info!(%remote, "punktfunk/1 request from an unpaired certificate refused");
            control
                .close(CloseCode::NotPaired, "this client is not paired")
                .await;
            Ok(())
        }
        (Message::ListApps, Some(_)) => {
            let entries = native
                .host
                .apps()
                .iter()
                .map(|a| AppEntry {
                    id: a.id as u32,
                    name: a.name.clone(),
                })
                .collect();
            control.send(&Message::Apps { entries }).await?;
            Ok(())
        }
        (Message::Hello(hello), Some(client)) => {
            stream(&native, conn.clone(), control, client, hello).await
        }
        (other, Some(_)) => {
            control
                .close(CloseCode::Error, "unexpected first message")
                .await;
            bail!("unexpected first message {other:?}")
        }
    }
}

async fn pair(
    native: &Native,
    control: &mut Control,
    der: &[u8],
    name: &str,
    spake_a: &[u8],
    remote: SocketAddr,
) -> anyhow::Result<()> {
    let Some(pin) = native.take_pin() else {
        info!(%remote, "punktfunk/1 pairing attempt without an armed PIN");
        control
            .close(
                CloseCode::NotPaired,
                "no PIN is armed on the host: run `punktfunk pair --native` there",
            )
            .await;
        return Ok(());
    };
    let (pairing, spake_b, confirm) = match HostPairing::respond(
        &pin,
        fingerprint(der),
        native.fingerprint,
        spake_a,
        rand::rngs::OsRng,
    ) {
        Ok(r) => r,
        Err(e) => {
            control.close(CloseCode::Error, &e.to_string()).await;
            bail!("pairing: {e}");
        }
    };
    control
        .send(&Message::PairChallenge { spake_b, confirm })
        .await?;
    let proof = tokio::time::timeout(Duration::from_secs(60), control.next())
        .await
        .context("no pairing proof")??;
    let Some(Message::PairProof { confirm }) = proof else {
        warn!(%remote, "punktfunk/1 pairing failed: the client did not prove the PIN; nothing stored");
        return Ok(());
    };
    if !pairing.verify(&confirm) {
        warn!(%remote, "punktfunk/1 pairing failed: wrong PIN or certificates; nothing stored");
        control.send(&Message::PairResult { ok: false }).await?;
        let _ = control.send.finish();
        return Ok(());
    }
    let pem = openssl::x509::X509::from_der(der)?.to_pem()?;
    let host = native.host.clone();
    let name = if name.trim().is_empty() {
        "punktfunk/1 client".to_string()
    } else {
        name.chars().filter(|c| !c.is_control()).take(64).collect()
    };
    let id = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let id = host.add_paired_client(String::from_utf8(pem)?, "punktfunk/1")?;
        host.rename_client(&id, &name)?;
        Ok(id)
    })
    .await??;
    info!(%remote, client = %id, "punktfunk/1 client paired");
    control.send(&Message::PairResult { ok: true }).await?;
    Ok(())
}

/// Why a native stream's control loop ended.
enum Ending {
    /// The stream failed on its own (its encoder); the session keeps running.
    StreamFailed,
    /// A newer connection of the same client attached its stream to the session.
    Replaced,
    /// The client said `Close`: `QuitStopApp` ends the session too.
    Client(CloseCode),
    /// The host ended the session (its app exited, the user stopped it).
    SessionEnded,
    /// The connection went.
    Lost,
}

async fn stream(
    native: &Native,
    conn: quinn::Connection,
    control: &mut Control,
    client: crate::state::PairedClient,
    hello: protocol::native::control::Hello,
) -> anyhow::Result<()> {
    let host = native.host.clone();
    let remote = conn.remote_address();
    let m = hello.mode;
    let Some(mode) = output_mode(&m) else {
        control.close(CloseCode::Error, UNSUPPORTED_MODE).await;
        bail!("unsupported mode {m:?}");
    };
    let codec = if hello.codecs.contains(Codecs::H264) || hello.codecs == Codecs::default() {
        Codec::H264
    } else if hello.codecs.contains(Codecs::HEVC) {
        Codec::Hevc
    } else if hello.codecs.contains(Codecs::AV1) {
        Codec::Av1
    } else {
        control
            .close(
                CloseCode::Error,
                "no video codec in common (h264, hevc, av1)",
            )
            .await;
        bail!("no codec in common: {:?}", hello.codecs);
    };
    let channels = hello.audio_channels.clamp(2, 8);
    // The session: the client's running one, or a new one with the app it asked for.
    let (id, app_name) = {
        let host = host.clone();
        let hello = hello.clone();
        let client = client.clone();
        let result =
            tokio::task::spawn_blocking(move || session_for(&host, &client, &hello, mode)).await?;
        match result {
            Ok(r) => r,
            Err(e) => {
                control.close(CloseCode::Error, &format!("{e:#}")).await;
                return Err(e);
            }
        }
    };
    let mut key = [0u8; 16];
    let mut salt = [0u8; 4];
    openssl::rand::rand_bytes(&mut key)?;
    openssl::rand::rand_bytes(&mut salt)?;
    let config = host.config();
    let fec_percent = config.video.fec_percent.max(10);
    let shard_payload = hello.max_shard_payload.clamp(256, 1408) & !1;
    control
        .send(&Message::Welcome(Welcome {
            mode: m,
            codec,
            bit_depth: 8,
            chroma: Chroma::Yuv420,
            colour: Colour::BT709,
            fec_percent,
            shard_payload,
            audio: AudioFormat {
                sample_rate: 48_000,
                channels,
                frame_us: 5_000,
            },
            data_key: key,
            data_salt: salt,
            udp_port: 0,
            host_caps: HostCaps(
                HostCaps::RECONFIGURE.0
                    | HostCaps::CLOCK_SYNC.0
                    | HostCaps::SET_BITRATE.0
                    | HostCaps::SYNTHETIC.0,
            ),
        }))
        .await?;
    let port = match tokio::time::timeout(HANDSHAKE_TIMEOUT, control.next()).await {
        Ok(Ok(Some(Message::Start { client_udp_port }))) if client_udp_port != 0 => client_udp_port,
        _ => {
            control.close(CloseCode::Error, "expected Start").await;
            bail!("no Start after Welcome");
        }
    };
    // An IPv4 client of the dual-stack port as IPv4: the data socket then need not be.
    let dest = SocketAddr::new(remote.ip().to_canonical(), port);
    let mut encoder = streamer::encode::EncoderOptions::new(
        mode.width,
        mode.height,
        mode.refresh_mhz / 1000,
        hello.bitrate_kbps.clamp(500, 2_000_000),
    );
    encoder.codec = match codec {
        Codec::H264 => streamer::encode::Codec::H264,
        Codec::Hevc => streamer::encode::Codec::Hevc,
        _ => streamer::encode::Codec::Av1,
    };
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<Ending>();
    let failed_tx = ended_tx.clone();
    let mut handle: Option<Arc<NativeStream>> = None;
    let serial = {
        let host = host.clone();
        let hw = crate::config::hardware(&config.video);
        let gamepads = crate::config::gamepads(&config.input);
        let synthetic_kbps = hello.synthetic_kbps.min(MAX_SYNTHETIC_KBPS);
        let channels = u32::from(channels);
        let slot = &mut handle;
        let result = tokio::task::block_in_place(|| {
            host.attach_stream(id, mode, |seat| {
                let stream = NativeStream::start(
                    NativeConfig {
                        key: protocol::native::crypto::DataKey::new(key, salt)?,
                        dest,
                        encoder,
                        hardware: hw,
                        fec_percent,
                        shard_payload,
                        audio: seat.audio,
                        audio_settings: streamer::pipeline::AudioSettings {
                            channels,
                            high_quality: false,
                            packet_duration_ms: 5,
                        },
                        synthetic_kbps,
                        gamepads,
                    },
                    seat.compositor,
                    move |reason| {
                        (seat.on_end)(reason);
                        let _ = failed_tx.send(Ending::StreamFailed);
                    },
                )?;
                *slot = Some(stream.clone());
                Ok(Box::new(stream))
            })
        });
        match result {
            Ok(s) => s,
            Err(e) => {
                control.close(CloseCode::Error, &format!("{e:#}")).await;
                return Err(e);
            }
        }
    };
    let stream = handle.context("the stream did not start")?;
    stream.on_session_end(move || {
        let _ = ended_tx.send(Ending::SessionEnded);
    });
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel::<Notice>();
    stream.on_notice(move |notice| {
        let _ = notice_tx.send(notice);
    });
    info!(%remote, session = id, client = %client.id, app = %app_name, width = mode.width, height = mode.height, "punktfunk/1 stream started");
    let input = tokio::spawn(deliver_input(conn.clone(), stream.clone()));
    let ending = loop {
        tokio::select! {
            msg = control.next() => match msg {
                Ok(Some(msg)) => {
                    // A newer connection of the client took the session over: this one is done.
                    if !host.stream_is(id, serial) {
                        break Ending::Replaced;
                    }
                    match handle_message(&host, id, &stream, control, msg).await {
                        Ok(Some(code)) => break Ending::Client(code),
                        Ok(None) => {}
                        Err(e) => {
                            debug!(err = %format!("{e:#}"), "punktfunk/1 control stream failed");
                            break Ending::Lost;
                        }
                    }
                }
                Ok(None) | Err(_) => break Ending::Lost,
            },
            ended = ended_rx.recv() => break ended.unwrap_or(Ending::Lost),
            Some(notice) = notice_rx.recv() => {
                let message = match notice {
                    Notice::Bitrate(kbps) => Message::BitrateChanged {
                        kbps,
                        reason: BitrateReason::Congestion,
                    },
                    Notice::Rumble { pad, low, high } => Message::Rumble { pad, low, high },
                };
                if control.send(&message).await.is_err() {
                    break Ending::Lost;
                }
            }
        }
    };
    input.abort();
    match ending {
        Ending::SessionEnded => {
            control
                .close(CloseCode::AppExited, "the session ended")
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        }
        Ending::StreamFailed => {
            control
                .close(CloseCode::Error, "the stream failed; the app keeps running")
                .await;
        }
        Ending::Replaced => {
            control
                .close(
                    CloseCode::Normal,
                    "another connection took the session over",
                )
                .await;
        }
        Ending::Client(CloseCode::QuitStopApp) if host.stream_is(id, serial) => {
            info!(session = id, "the client quit: the app stops");
            let h = host.clone();
            tokio::task::spawn_blocking(move || h.stop_session(id, false)).await?;
        }
        Ending::Client(_) | Ending::Lost => {
            let h = host.clone();
            tokio::task::spawn_blocking(move || h.detach_stream(id, serial)).await?;
        }
    }
    // The stream may hold the session's last reference to its compositor, whose drop joins
    // the compositor thread: not on an async thread.
    tokio::task::spawn_blocking(move || drop(stream)).await?;
    Ok(())
}

/// The session a `Hello` streams: the client's running session (with the app it names started
/// on top where the host has a base app), or a new one.
fn session_for(
    host: &Arc<Host>,
    client: &crate::state::PairedClient,
    hello: &protocol::native::control::Hello,
    mode: compositor::Mode,
) -> anyhow::Result<(u64, String)> {
    // Two Hellos at once would both find no session and both start one.
    let Some(_launching) = host.begin_launch(&client.id) else {
        bail!("a launch for this client is already under way; try again in a few seconds");
    };
    let apps = host.apps();
    let wanted = match hello.app.as_str() {
        "" => None,
        name => Some(
            apps.iter()
                .find(|a| a.name == name || a.id.to_string() == name)
                .with_context(|| format!("no app {name:?} in the catalog"))?,
        ),
    };
    if let Some(running) = host.session_of(&client.id) {
        let current = host.current_game(Some(&client.id));
        match wanted {
            None => return Ok((running, String::new())),
            Some(app) if app.id == current => return Ok((running, app.name.clone())),
            Some(app) if host.has_base_app() => {
                host.launch_in_session(running, app)?;
                return Ok((running, app.name.clone()));
            }
            Some(_) if current != 0 => bail!("another app is already running for this client"),
            Some(_) => host.stop_session(running, false),
        }
    }
    let app = wanted
        .or_else(|| apps.first())
        .context("the app catalog is empty")?;
    let vars = ClientVars {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        uniqueid: client.uniqueid.clone(),
        width: mode.width,
        height: mode.height,
        fps: mode.refresh_mhz / 1000,
        hdr: false,
        audio_channels: u16::from(hello.audio_channels.clamp(2, 8)),
        gamepad_mask: 0,
        host_audio: false,
        sops: false,
        extra: Default::default(),
    };
    let id = host.start_session(
        &client.id,
        app,
        mode,
        vars,
        u32::from(hello.audio_channels.clamp(2, 8)),
    )?;
    if !host.has_session(id) {
        bail!("the app exited right after it started; its log is in the host's data directory");
    }
    Ok((id, app.name.clone()))
}

/// Handles one control message of a running stream; `Some(code)` when the client closed.
async fn handle_message(
    host: &Arc<Host>,
    id: u64,
    stream: &Arc<NativeStream>,
    control: &mut Control,
    msg: Message,
) -> anyhow::Result<Option<CloseCode>> {
    match msg {
        Message::Reconfigure { mode: m } => {
            let mode = output_mode(&m);
            let accepted = mode.is_some_and(|mode| host.set_session_mode(id, mode));
            if let Some(mode) = mode.filter(|_| accepted) {
                stream.reconfigure(mode.width, mode.height, m.refresh_mhz / 1000);
                info!(
                    session = id,
                    width = m.width,
                    height = m.height,
                    "punktfunk/1 mode change"
                );
            }
            control
                .send(&Message::Reconfigured { accepted, mode: m })
                .await?;
        }
        Message::RequestKeyframe => stream.request_keyframe(),
        Message::LossReport {
            loss_ppm,
            frames_lost,
            ..
        } => stream.report_loss(loss_ppm, frames_lost),
        Message::SetBitrate { kbps } => {
            stream.set_bitrate(kbps);
            control
                .send(&Message::BitrateChanged {
                    kbps: stream.bitrate_kbps(),
                    reason: BitrateReason::Requested,
                })
                .await?;
        }
        Message::ClockProbe { t1 } => {
            let t2 = streamer::monotonic_ns();
            control
                .send(&Message::ClockEcho {
                    t1,
                    t2,
                    t3: streamer::monotonic_ns(),
                })
                .await?;
        }
        Message::Close { code, .. } => return Ok(Some(code)),
        other => debug!(?other, "control message ignored during a stream"),
    }
    Ok(None)
}

/// Input datagrams of the connection into the session's seat.
async fn deliver_input(conn: quinn::Connection, stream: Arc<NativeStream>) {
    while let Ok(datagram) = conn.read_datagram().await {
        streamer::corpus::record("native_input", &[&datagram]);
        for event in protocol::native::input::decode(&datagram) {
            match event {
                Ok(ev) => stream.input(&ev),
                Err(e) => debug!(%e, "malformed input event dropped"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::native::control::Mode;

    fn mode(width: u16, height: u16, refresh_mhz: u32) -> Mode {
        Mode {
            width,
            height,
            refresh_mhz,
        }
    }

    #[test]
    fn modes_the_encoders_cannot_take_are_refused() {
        assert_eq!(
            output_mode(&mode(1366, 768, 60_000)),
            Some(compositor::Mode {
                width: 1366,
                height: 768,
                refresh_mhz: 60_000
            })
        );
        assert!(output_mode(&mode(7680, 4320, 120_000)).is_some());
        for refused in [
            mode(1365, 768, 60_000),
            mode(1366, 767, 60_000),
            mode(0, 768, 60_000),
            mode(7682, 768, 60_000),
            mode(1366, 768, 999),
            mode(1366, 768, 1_000_001),
        ] {
            assert_eq!(output_mode(&refused), None, "{refused:?}");
        }
    }
}
