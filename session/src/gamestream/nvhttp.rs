//! The nvhttp servers: plain HTTP (serverinfo, pairing stages 1-4, unpair) and HTTPS with
//! client certificates (everything else).
//!
//! The TLS layer asks every client for a certificate and accepts any, so that an unknown one
//! gets a GameStream `401` inside the XML instead of a broken handshake (that is how clients
//! learn they must pair). Authorisation compares the whole peer certificate with the paired
//! ones. Errors are always HTTP 200 with the GameStream status in the XML, as clients expect.

use std::net::SocketAddr;
use std::sync::Arc;

use openssl::ssl::SslAcceptor;
use protocol::nvhttp::{self as xml, LaunchKind, LaunchRequest, Query};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::{pairing, GameStream, PendingLaunch};
use crate::host::Host;
use crate::http::{self, Response};
use crate::prep::ClientVars;
use crate::state::PairedClient;

/// Who is asking, as far as the transport tells.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// Our address the request arrived on.
    pub local: SocketAddr,
    /// The client certificate (DER), over HTTPS.
    pub cert: Option<Vec<u8>>,
}

impl Peer {
    fn is_https(&self) -> bool {
        self.cert.is_some()
    }
}

/// Serves plain HTTP. First probes the video encoders in the background, so that the first
/// `/serverinfo` does not wait for NVENC to open.
pub async fn serve_http(listener: TcpListener, gs: Arc<GameStream>) {
    let hw = crate::config::hardware(&gs.host.config().video);
    std::thread::spawn(move || extra_codecs(&hw));
    http::accept_loop(listener, "http", |stream, remote| {
        let gs = gs.clone();
        async move {
            let local = stream.local_addr().unwrap_or(remote);
            let mut stream = stream;
            handle_connection(
                &mut stream,
                Peer {
                    remote,
                    local,
                    cert: None,
                },
                &gs,
            )
            .await;
        }
    })
    .await;
}

/// Serves HTTPS.
pub async fn serve_https(listener: TcpListener, tls: Arc<SslAcceptor>, gs: Arc<GameStream>) {
    http::accept_loop(listener, "https", |stream, remote| {
        let gs = gs.clone();
        let tls = tls.clone();
        async move {
            let local = stream.local_addr().unwrap_or(remote);
            let Some(mut stream) = http::tls_accept(&tls, stream, remote).await else {
                return;
            };
            // No certificate is the same as an unknown one: the request gets a 401 in XML.
            let cert = stream
                .ssl()
                .peer_certificate()
                .and_then(|c| c.to_der().ok())
                .unwrap_or_default();
            handle_connection(
                &mut stream,
                Peer {
                    remote,
                    local,
                    cert: Some(cert),
                },
                &gs,
            )
            .await;
        }
    })
    .await;
}

async fn handle_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: Peer,
    gs: &Arc<GameStream>,
) {
    let resp = match http::read_request(stream).await {
        Ok(req) => {
            debug!(remote = %peer.remote, https = peer.is_https(), path = %req.path, "nvhttp request");
            route(gs, &peer, &req).await
        }
        Err(e) => {
            warn!(remote = %peer.remote, %e, "malformed HTTP request");
            match e.response() {
                Some(r) => r,
                None => return,
            }
        }
    };
    if let Err(e) = http::write_response(stream, &resp).await {
        debug!(remote = %peer.remote, %e, "cannot send the reply");
    }
}

async fn route(gs: &Arc<GameStream>, peer: &Peer, req: &http::Request) -> Response {
    let host = &gs.host;
    if req.method != "GET" {
        return Response::xml(xml::error_xml(405, "Only GET is supported"));
    }
    streamer::corpus::record("nvhttp_query", &[req.query.as_bytes()]);
    if req.path == "/pair" {
        streamer::corpus::record("pairing", &[req.query.as_bytes()]);
    }
    let query = Query::parse(&req.query);
    // Over HTTPS everything but the pairing challenge needs a paired certificate.
    let paired = peer.cert.as_deref().and_then(|der| host.paired_client(der));
    if peer.is_https() && paired.is_none() && req.path != "/pair" {
        info!(remote = %peer.remote, path = %req.path, "HTTPS request with an unpaired certificate");
        return Response::xml(xml::unauthorized_xml(&req.path));
    }
    let client = paired.as_ref().map(|c| c.id.clone());
    match (peer.is_https(), req.path.as_str()) {
        (_, "/serverinfo") => Response::xml(serverinfo(host, peer, client.as_deref()).to_xml()),
        (_, "/pair") => Response::xml(pairing::handle(gs, peer, &query).await),
        (false, "/unpair") => {
            // Clients send this after a failed pairing. A pairing still waiting for its PIN
            // stays: it is a newer request of the same client than the one that failed.
            if let Ok(uid) = query.uniqueid() {
                let key = pairing::pairing_key(uid, peer.remote.ip());
                let mut pairings = gs.lock_pairings();
                if pairings.get(&key).is_some_and(|p| p.pin_tx.is_none()) {
                    pairings.remove(&key);
                }
            }
            Response::xml(xml::XmlReply::ok().to_xml())
        }
        (true, "/applist") => {
            // Clients offer their 10-bit formats only for apps marked HDR-capable (Moonlight
            // for Android, for one); every app here streams 10-bit when the host can.
            let ten_bit = codec_mode_support(host) & TEN_BIT_MODES != 0;
            let apps: Vec<xml::AppEntry> = host
                .apps()
                .iter()
                .map(|a| xml::AppEntry {
                    id: a.id,
                    title: a.name.clone(),
                    hdr_supported: ten_bit,
                })
                .collect();
            Response::xml(xml::applist_xml(&apps))
        }
        (true, "/appasset") => app_asset(host, &query),
        (true, "/launch" | "/resume") => {
            let kind = if req.path == "/launch" {
                LaunchKind::Launch
            } else {
                LaunchKind::Resume
            };
            let Some(client) = paired.clone() else {
                return Response::xml(xml::unauthorized_xml(&req.path));
            };
            let (gs, peer) = (gs.clone(), peer.clone());
            // Starting a compositor and an app blocks for a moment.
            tokio::task::spawn_blocking(move || launch(&gs, &peer, &client, &query, kind))
                .await
                .unwrap_or_else(|e| Response::xml(xml::launch_error_xml(kind, 500, &e.to_string())))
        }
        (true, "/cancel") => {
            // Only the asking client's session ends; other clients keep streaming.
            if let Some(id) = client.as_deref().and_then(|c| host.session_of(c)) {
                let h = host.clone();
                let _ = tokio::task::spawn_blocking(move || h.stop_session(id, true)).await;
            }
            Response::xml(xml::cancel_xml())
        }
        _ => Response::xml(xml::error_xml(404, "Not found")),
    }
}

/// The app's box art: its configured image, else punktfunk's.
fn app_asset(host: &Host, query: &Query) -> Response {
    let id: Option<i32> = query.get("appid").and_then(|v| v.parse().ok());
    Response::bytes("image/png", host.box_art(id))
}

/// `client` is the paired client asking over HTTPS; `currentgame` is that client's own app.
fn serverinfo(host: &Host, peer: &Peer, client: Option<&str>) -> xml::ServerInfo {
    let mut info = xml::ServerInfo::new(
        host.config().host.name.clone(),
        host.state_snapshot().uniqueid,
    );
    info.https_port = host.ports.https;
    info.external_port = host.ports.http;
    info.local_ip = xml::local_ip_for(peer.local.ip());
    info.codec_mode_support = codec_mode_support(host);
    // Moonlight turns HEVC off entirely when this is 0.
    info.max_luma_pixels_hevc = if info.codec_mode_support & xml::SCM_HEVC != 0 {
        xml::MAX_LUMA_PIXELS_HEVC
    } else {
        0
    };
    info.paired = peer.is_https() && client.is_some();
    info.current_game = host.current_game(client);
    info
}

/// The 10-bit modes: HEVC Main10 and RExt 4:4:4 10-bit, AV1 Main and High 4:4:4 10-bit.
const TEN_BIT_MODES: u32 =
    xml::SCM_HEVC_MAIN10 | xml::SCM_HEVC_REXT10_444 | xml::SCM_AV1_MAIN10 | xml::SCM_AV1_HIGH10_444;

/// `ServerCodecModeSupport`: every codec and profile this host streams.
///
/// 4:4:4 and 10-bit, also together (which Moonlight asks for only when its user turns on
/// "YUV 4:4:4" or HDR) run on the CPU encoders and, where the GPU has them, NVENC and VAAPI
/// (10-bit 4:2:0 only); a stream whose hardware encoder cannot do them falls back to the CPU,
/// so each is offered where the CPU encoder of its codec exists.
fn codec_mode_support(host: &Host) -> u32 {
    use streamer::encode::Codec;
    let (hevc, av1) = extra_codecs(&crate::config::hardware(&host.config().video));
    let cpu = |codec: Codec| codec.is_available();
    let mut modes = xml::SCM_H264;
    if cpu(Codec::H264) {
        modes |= xml::SCM_H264_HIGH8_444;
    }
    if hevc {
        modes |= xml::SCM_HEVC;
        if cpu(Codec::Hevc) {
            modes |= xml::SCM_HEVC_REXT8_444 | xml::SCM_HEVC_MAIN10 | xml::SCM_HEVC_REXT10_444;
        }
    }
    if av1 {
        modes |= xml::SCM_AV1_MAIN8;
        if cpu(Codec::Av1) {
            modes |= xml::SCM_AV1_HIGH8_444 | xml::SCM_AV1_MAIN10 | xml::SCM_AV1_HIGH10_444;
        }
    }
    modes
}

/// Which codecs besides H.264 this machine can encode with the configured encoder or, failing
/// that, on the CPU: (HEVC, AV1). Probed once (the hardware probes are cached by the streamer).
fn extra_codecs(hw: &streamer::encode::HardwareOptions) -> (bool, bool) {
    static CODECS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    *CODECS.get_or_init(|| {
        use streamer::encode::backend::backend_for;
        use streamer::encode::Codec;
        // The reasons for skipped hardware, once at start (each stream logs its own again).
        streamer::encode::backend::select_for(Codec::H264, hw).log();
        let name = |b: Option<streamer::encode::Backend>| b.map_or("none", |b| b.name());
        let (h264, hevc, av1) = (
            backend_for(Codec::H264, hw),
            backend_for(Codec::Hevc, hw),
            backend_for(Codec::Av1, hw),
        );
        info!(
            preference = hw.preference.name(),
            h264 = name(h264),
            hevc = name(hevc),
            av1 = name(av1),
            "video encoders per codec"
        );
        (hevc.is_some(), av1.is_some())
    })
}

/// `/launch` and `/resume` of the paired `client`: each client has its own session, so one
/// client launching never touches another's.
fn launch(
    gs: &GameStream,
    peer: &Peer,
    paired: &PairedClient,
    query: &Query,
    kind: LaunchKind,
) -> Response {
    let host = &gs.host;
    let client = paired.id.as_str();
    let req = match LaunchRequest::parse(query, kind) {
        Ok(r) => r,
        Err(e) => {
            warn!(remote = %peer.remote, %e, "bad launch request");
            return Response::xml(e.to_xml(kind));
        }
    };
    let Some(_launching) = host.begin_launch(client) else {
        warn!(remote = %peer.remote, "a second launch while the first is under way");
        return Response::xml(xml::launch_error_xml(
            kind,
            503,
            "A launch for this client is already under way; try again in a few seconds",
        ));
    };
    let running = host.current_game(Some(client));
    match kind {
        // With a base app a launch puts another app on top of it in the running session.
        LaunchKind::Launch if running != 0 && !host.has_base_app() => {
            return Response::xml(xml::launch_error_xml(
                kind,
                400,
                "An app is already running for this client",
            ));
        }
        LaunchKind::Resume if running == 0 => {
            return Response::xml(xml::launch_error_xml(kind, 503, "No running app to resume"));
        }
        _ => {}
    }
    let encrypted = req.rtsp_encryption();
    // Plaintext RTSP requests are told apart only by their source address.
    if !encrypted
        && gs.lock_pending().iter().any(|l| {
            l.client != client && l.rtsp_cipher.is_none() && l.client_ip == peer.remote.ip()
        })
    {
        warn!(remote = %peer.remote, "another client at this address is still connecting in plaintext");
        return Response::xml(xml::launch_error_xml(
            kind,
            503,
            "Another client at this address is still connecting; try again in a few seconds",
        ));
    }
    let session = match kind {
        LaunchKind::Launch => {
            let apps = host.apps();
            let Some(app) = apps.iter().find(|a| a.id == req.app_id) else {
                return Response::xml(xml::launch_error_xml(
                    kind,
                    404,
                    "Failed to start the specified application",
                ));
            };
            let mode = compositor::Mode {
                width: if req.mode.width == 0 {
                    1280
                } else {
                    req.mode.width
                },
                height: if req.mode.height == 0 {
                    720
                } else {
                    req.mode.height
                },
                refresh_mhz: if req.mode.fps == 0 {
                    60_000
                } else {
                    req.mode.fps * 1000
                },
            };
            let vars = ClientVars {
                client_id: paired.id.clone(),
                client_name: paired.name.clone(),
                uniqueid: paired.uniqueid.clone(),
                width: mode.width,
                height: mode.height,
                fps: mode.refresh_mhz / 1000,
                hdr: req.hdr_mode,
                audio_channels: req.audio_channels(),
                gamepad_mask: req.gamepad_mask,
                host_audio: req.local_audio_play_mode.unwrap_or(false),
                sops: req.sops,
                extra: Default::default(),
            };
            match host.session_of(client) {
                Some(running) if host.has_base_app() => {
                    if let Err(e) = host.launch_in_session(running, app) {
                        warn!(app = %app.name, err = %format!("{e:#}"), "cannot start the app");
                        return Response::xml(xml::launch_error_xml(
                            kind,
                            503,
                            &format!("Failed to start the app: {e:#}"),
                        ));
                    }
                    running
                }
                stale => {
                    if let Some(stale) = stale {
                        // Its app has exited and the session is on its way out.
                        host.stop_session(stale, false);
                    }
                    match host.start_session(
                        client,
                        app,
                        mode,
                        vars,
                        u32::from(req.audio_channels()),
                    ) {
                        Ok(id) => id,
                        Err(e) => {
                            warn!(app = %app.name, err = %format!("{e:#}"), "cannot start the app");
                            return Response::xml(xml::launch_error_xml(
                                kind,
                                503,
                                &format!("Failed to start the app: {e:#}"),
                            ));
                        }
                    }
                }
            }
        }
        LaunchKind::Resume => match host.session_of(client) {
            Some(id) => id,
            None => {
                return Response::xml(xml::launch_error_xml(kind, 503, "No running app to resume"))
            }
        },
    };
    if !host.has_session(session) {
        return Response::xml(xml::launch_error_xml(
            kind,
            503,
            "The app exited right after it started; its log is in the host's data directory",
        ));
    }
    let mut ping = [0u8; 8];
    let mut cd = [0u8; 4];
    if openssl::rand::rand_bytes(&mut ping)
        .and_then(|_| openssl::rand::rand_bytes(&mut cd))
        .is_err()
    {
        return Response::xml(xml::launch_error_xml(kind, 503, "No randomness available"));
    }
    let hex = xml::hex_encode_upper(&ping);
    let mut ping_payload = [0u8; 16];
    ping_payload.copy_from_slice(hex.as_bytes());
    let connect_data = u32::from_be_bytes(cd);
    let rtsp_config = protocol::rtsp::RtspConfig {
        audio_port: host.ports.audio,
        video_port: host.ports.video,
        control_port: host.ports.control,
        ping_payload,
        connect_data,
        session_id: "DEADBEEFCAFE".into(),
        describe: protocol::rtsp::DescribeConfig {
            hevc: extra_codecs(&crate::config::hardware(&host.config().video)).0,
            av1: extra_codecs(&crate::config::hardware(&host.config().video)).1,
            surround_params: req.surround_params.clone(),
            feature_flags: protocol::rtsp::LI_FF_PEN_TOUCH_EVENTS
                | protocol::rtsp::LI_FF_CONTROLLER_TOUCH_EVENTS,
            ..protocol::rtsp::DescribeConfig::sunshine_defaults()
        },
    };
    let rtsp = match protocol::rtsp::RtspHandler::new(rtsp_config) {
        Ok(r) => r,
        Err(e) => return Response::xml(xml::launch_error_xml(kind, 500, &e.to_string())),
    };
    let pending = PendingLaunch {
        session,
        client: client.to_string(),
        rtsp,
        rtsp_cipher: encrypted.then(|| protocol::rtsp::RtspCipher::new(req.rikey)),
        key: req.rikey,
        key_id: req.rikeyid,
        ping_payload,
        connect_data,
        client_ip: peer.remote.ip(),
        created: std::time::Instant::now(),
    };
    {
        let mut launches = gs.lock_pending();
        // A client that launches again abandons its earlier handshake.
        launches.retain(|l| l.client != client);
        launches.push(pending);
    }
    let url = gs.rtsp_url(encrypted, peer.local);
    Response::xml(match kind {
        LaunchKind::Launch => xml::launch_xml(&url),
        LaunchKind::Resume => xml::resume_xml(&url),
    })
}
