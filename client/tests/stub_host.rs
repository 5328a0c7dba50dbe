//! The client binary against a stub host on loopback.
//!
//! The stub is a test fixture, not a host: it speaks the server half of pairing, the app list
//! and `Hello → Welcome → Start`, answers clock probes and mode changes, records what the client
//! sent, and sends a synthetic frame stream (with one frame FEC must repair and one it cannot)
//! plus audio packets to the client's data port.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ffmpeg_next as ffmpeg;
use protocol::native::control::{
    AppEntry, AudioFormat, Chroma, CloseCode, Codec, Colour, HostCaps, Message, MessageDecoder,
    Welcome,
};
use protocol::native::header::Plane;
use protocol::native::input::{self, InputEvent};
use protocol::native::pairing::{fingerprint, fingerprint_hex, Fingerprint, HostPairing};
use protocol::native::{DataKey, Datagrams, FrameInfo, FrameSealer};
use protocol::pairing::HostIdentity;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const PIN: &str = "4711";
/// The stub's frame of video that loses one data shard (FEC repairs it), and the one that loses
/// every datagram (reported lost).
const REPAIRED_FRAME: u32 = 10;
const LOST_FRAME: u32 = 20;

/// What the stub saw.
#[derive(Debug, Default)]
struct Log {
    paired: Vec<Fingerprint>,
    pair_names: Vec<String>,
    client_closes: Vec<(CloseCode, String)>,
    hellos: Vec<protocol::native::control::Hello>,
    starts: u32,
    probes: u32,
    loss_reports: u32,
    keyframe_requests: u32,
    reconfigures: Vec<(u16, u16)>,
    input: Vec<InputEvent>,
}

struct Stub {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    log: Arc<Mutex<Log>>,
    endpoint: quinn::Endpoint,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A stub host with the host's own QUIC set-up.
fn start_stub() -> Stub {
    let identity = HostIdentity::generate(0).unwrap();
    let key = identity.key().private_key_to_pkcs8().unwrap();
    let config = punktfunk_quic::host_config(
        CertificateDer::from(identity.cert_der()),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    )
    .unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let stub = Stub {
        addr: endpoint.local_addr().unwrap(),
        fingerprint: fingerprint(&identity.cert_der()),
        log: Arc::default(),
        endpoint: endpoint.clone(),
    };
    let log = stub.log.clone();
    let host_fp = stub.fingerprint;
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    serve(conn, host_fp, log).await;
                }
            });
        }
    });
    stub
}

async fn send(s: &mut quinn::SendStream, m: &Message) {
    let mut buf = Vec::new();
    m.encode(&mut buf).unwrap();
    let _ = s.write_all(&buf).await;
}

async fn recv(r: &mut quinn::RecvStream, d: &mut MessageDecoder) -> Option<Message> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = d.poll_message().unwrap() {
            return Some(m);
        }
        match r.read(&mut buf).await {
            Ok(Some(n)) => d.handle_bytes(&buf[..n]),
            _ => return None,
        }
    }
}

async fn serve(conn: quinn::Connection, host_fp: Fingerprint, log: Arc<Mutex<Log>>) {
    let client_fp = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|c| fingerprint(&c[0]))
        .unwrap();
    {
        let conn = conn.clone();
        let log = log.clone();
        tokio::spawn(async move {
            while let Ok(d) = conn.read_datagram().await {
                let mut log = log.lock().unwrap();
                log.input.extend(input::decode(&d).map(|e| e.unwrap()));
            }
        });
    }
    let Ok((mut tx, mut rx)) = conn.accept_bi().await else {
        return;
    };
    let mut dec = MessageDecoder::new();
    let paired = || log.lock().unwrap().paired.contains(&client_fp);
    let mut stream: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> = None;
    let mut pairing = None;
    let mut welcome = None;
    let mode = Arc::new(Mutex::new((0u32, 0u32)));
    while let Some(m) = recv(&mut rx, &mut dec).await {
        match m {
            Message::PairRequest { name, spake_a } => {
                log.lock().unwrap().pair_names.push(name);
                let (state, spake_b, confirm) =
                    HostPairing::respond(PIN, client_fp, host_fp, &spake_a, rand::rngs::OsRng)
                        .unwrap();
                pairing = Some(state);
                send(&mut tx, &Message::PairChallenge { spake_b, confirm }).await;
            }
            Message::PairProof { confirm } => {
                let ok = pairing.take().is_some_and(|p| p.verify(&confirm));
                if ok {
                    log.lock().unwrap().paired.push(client_fp);
                }
                send(&mut tx, &Message::PairResult { ok }).await;
            }
            Message::ListApps if paired() => {
                let entries = vec![
                    AppEntry {
                        id: 1,
                        name: "Desktop".into(),
                    },
                    AppEntry {
                        id: 2,
                        name: "Steam".into(),
                    },
                ];
                send(&mut tx, &Message::Apps { entries }).await;
            }
            Message::Hello(h) if paired() => {
                let w = Welcome {
                    mode: h.mode,
                    codec: Codec::H264,
                    bit_depth: 8,
                    chroma: Chroma::Yuv420,
                    colour: Colour::BT709,
                    fec_percent: 20,
                    shard_payload: h.max_shard_payload,
                    audio: AudioFormat {
                        sample_rate: 48_000,
                        channels: 2,
                        frame_us: 5_000,
                    },
                    data_key: rand::random(),
                    data_salt: rand::random(),
                    udp_port: 0,
                    host_caps: HostCaps::RECONFIGURE | HostCaps::CLOCK_SYNC | HostCaps::SYNTHETIC,
                };
                log.lock().unwrap().hellos.push(h);
                welcome = Some(w.clone());
                send(&mut tx, &Message::Welcome(w)).await;
            }
            Message::Start { client_udp_port } => {
                let Some(w) = &welcome else { return };
                log.lock().unwrap().starts += 1;
                let dest = SocketAddr::new(conn.remote_address().ip(), client_udp_port);
                let stop = Arc::new(AtomicBool::new(false));
                let key = DataKey::new(w.data_key, w.data_salt).unwrap();
                let app = log.lock().unwrap().hellos.last().unwrap().app.clone();
                let frames = if app == "exits" { Some(30) } else { None };
                let flag = stop.clone();
                let h = log.lock().unwrap().hellos.last().unwrap().clone();
                let video = (h.synthetic_kbps == 0).then(|| {
                    let size = (u32::from(h.mode.width), u32::from(h.mode.height));
                    *mode.lock().unwrap() = size;
                    mode.clone()
                });
                let thread =
                    std::thread::spawn(move || send_frames(key, dest, &flag, frames, video));
                stream = Some((stop, thread));
                if frames.is_none() {
                    // A game's rumble on the client's second pad, and its end.
                    for (low, high) in [(0xC000, 0x4000), (0, 0)] {
                        send(&mut tx, &Message::Rumble { pad: 1, low, high }).await;
                    }
                }
                if let Some(n) = frames {
                    // Wait for the frames to leave, then say the app exited.
                    tokio::time::sleep(Duration::from_millis(n * 1000 / 60 + 200)).await;
                    let reason = "the app exited".into();
                    send(
                        &mut tx,
                        &Message::Close {
                            code: CloseCode::AppExited,
                            reason,
                        },
                    )
                    .await;
                    break;
                }
            }
            Message::ClockProbe { t1 } => {
                let t2 = monotonic_ns();
                log.lock().unwrap().probes += 1;
                let t3 = monotonic_ns();
                send(&mut tx, &Message::ClockEcho { t1, t2, t3 }).await;
            }
            Message::Reconfigure { mode: m } => {
                log.lock().unwrap().reconfigures.push((m.width, m.height));
                *mode.lock().unwrap() = (u32::from(m.width), u32::from(m.height));
                let accepted = Message::Reconfigured {
                    accepted: true,
                    mode: m,
                };
                send(&mut tx, &accepted).await;
            }
            Message::LossReport { .. } => log.lock().unwrap().loss_reports += 1,
            Message::RequestKeyframe => log.lock().unwrap().keyframe_requests += 1,
            Message::Close { code, reason } => {
                log.lock().unwrap().client_closes.push((code, reason));
                break;
            }
            Message::ListApps | Message::Hello(_) => {
                let reason = "pair first".into();
                send(
                    &mut tx,
                    &Message::Close {
                        code: CloseCode::NotPaired,
                        reason,
                    },
                )
                .await;
                break;
            }
            _ => {}
        }
    }
    if let Some((stop, thread)) = stream {
        stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
    }
    let _ = tx.finish();
    // Let the client read what was sent before the connection goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// 60 frames a second (and an audio packet each) until `stop`, or `limit` frames: H.264 of the
/// size in `video` (libx264, reopened when the size changes), else filler that loses a shard of
/// one frame and all of another.
fn send_frames(
    key: DataKey,
    dest: SocketAddr,
    stop: &AtomicBool,
    limit: Option<u64>,
    video_mode: Option<Arc<Mutex<(u32, u32)>>>,
) {
    let mut h264: Option<((u32, u32), ffmpeg::encoder::Video)> = None;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut video = FrameSealer::new(&key, Plane::Video, 1408).unwrap();
    let mut audio = FrameSealer::new(&key, Plane::Audio, 1400).unwrap();
    let mut out = Datagrams::new();
    let frame: Vec<u8> = (0..6000u32).map(|i| (i * 7) as u8).collect();
    let mut index = 0u32;
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|n| u64::from(index) < n) {
        let (data, keyframe) = match &video_mode {
            Some(m) => {
                let size = *m.lock().unwrap();
                if h264.as_ref().is_none_or(|(s, _)| *s != size) {
                    h264 = Some((size, open_h264(size)));
                }
                let (_, enc) = h264.as_mut().unwrap();
                encode_h264(enc, size, index)
            }
            None => (frame.clone(), index == 0),
        };
        video
            .seal_frame(
                &data,
                FrameInfo::new(index, monotonic_ns(), keyframe),
                20,
                &mut out,
            )
            .unwrap();
        for (i, d) in out.iter().enumerate() {
            let filler = video_mode.is_none();
            let drop = filler && ((index == REPAIRED_FRAME && i == 0) || index == LOST_FRAME);
            if !drop {
                socket.send_to(d, dest).unwrap();
            }
        }
        audio
            .seal_frame(
                &[0xfc; 120],
                FrameInfo::new(index, monotonic_ns(), false),
                0,
                &mut out,
            )
            .unwrap();
        for d in out.iter() {
            socket.send_to(d, dest).unwrap();
        }
        index += 1;
        std::thread::sleep(Duration::from_millis(16));
    }
}

fn open_h264((w, h): (u32, u32)) -> ffmpeg::encoder::Video {
    ffmpeg::init().unwrap();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let codec = ffmpeg::encoder::find_by_name("libx264").expect("FFmpeg without libx264");
    let mut ctx = ffmpeg::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(ffmpeg::format::Pixel::YUV420P);
    ctx.set_time_base((1, 60));
    ctx.set_gop(600);
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("preset", "ultrafast");
    opts.set("tune", "zerolatency");
    ctx.open_with(opts).unwrap()
}

/// One frame (a moving gradient) through the encoder; its bytes and whether it is a keyframe.
fn encode_h264(enc: &mut ffmpeg::encoder::Video, (w, h): (u32, u32), i: u32) -> (Vec<u8>, bool) {
    let mut pic = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
    for plane in 0..3 {
        let stride = pic.stride(plane);
        let data = pic.data_mut(plane);
        for (n, b) in data.iter_mut().enumerate() {
            *b = if plane == 0 {
                ((n % stride) as u32 + i) as u8
            } else {
                128
            };
        }
    }
    pic.set_pts(Some(i64::from(i)));
    enc.send_frame(&pic).unwrap();
    let mut packet = ffmpeg::Packet::empty();
    enc.receive_packet(&mut packet)
        .expect("libx264 with zerolatency gives one packet per frame");
    (packet.data().unwrap().to_vec(), packet.is_key())
}

async fn client(state: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_punktfunk-client"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_list_and_stream_against_a_stub_host() {
    let stub = start_stub();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let host = stub.addr.to_string();

    // Nothing works before pairing.
    let out = client(&state, &["list", &host]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not paired with"),
        "{}",
        text(&out.stderr)
    );

    // A wrong PIN: the client says so, tells the host, and pins nothing.
    let out = client(&state, &["pair", &host, "--pin", "0000", "--name", "t"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the PIN did not match"),
        "{}",
        text(&out.stderr)
    );
    assert!(!state.join("hosts.json").exists());
    assert!(stub.log.lock().unwrap().paired.is_empty());
    assert_eq!(
        stub.log.lock().unwrap().client_closes.first().map(|c| c.0),
        Some(CloseCode::Error)
    );

    // The right PIN pins the host's certificate.
    let out = client(&state, &["pair", &host, "--pin", PIN, "--name", "tester"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pins: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("hosts.json")).unwrap()).unwrap();
    assert_eq!(pins[&host], fingerprint_hex(&stub.fingerprint));
    assert_eq!(
        stub.log.lock().unwrap().pair_names.last().unwrap(),
        "tester"
    );
    assert_eq!(stub.log.lock().unwrap().paired.len(), 1);

    let out = client(&state, &["list", &host]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\tDesktop\n2\tSteam\n");

    // A stream: a mode change, typed text, a frame FEC repairs and one it cannot.
    let report = dir.path().join("report.json");
    let out = client(
        &state,
        &[
            "stream",
            &host,
            "--mode",
            "640x360@60",
            "--synthetic-kbps",
            "3000",
            "--seconds",
            "2",
            "--reconfigure",
            "800x600@60@0.5",
            "--type",
            "hi\n",
            "--json",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["close"], "time_up", "{r}");
    assert!(r["frames_received"].as_u64().unwrap() > 60, "{r}");
    assert_eq!(
        r["frames_decoded"], 0,
        "synthetic frames are not decoded: {r}"
    );
    assert_eq!(r["frames_lost"], 1, "{r}");
    assert_eq!(r["frame_number_gaps"], 1, "{r}");
    assert!(r["fec_recovered"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["audio_frames"].as_u64().unwrap() > 60, "{r}");
    assert_eq!(r["reconfigured"], serde_json::json!(["800x600@60"]), "{r}");
    assert_eq!(
        r["rumble"],
        serde_json::json!([
            {"pad": 1, "low": 0xC000, "high": 0x4000},
            {"pad": 1, "low": 0, "high": 0},
        ]),
        "{r}"
    );
    assert_eq!(r["datagrams_dropped"]["total"], 0, "{r}");
    assert_eq!(r["clock"]["synced"], true, "{r}");
    // One machine, one clock: the offset is below the round trip.
    let (offset, rtt) = (
        r["clock"]["offset_ns"].as_i64().unwrap(),
        r["clock"]["rtt_ns"].as_i64().unwrap(),
    );
    assert!(offset.abs() <= rtt.max(1_000_000), "{r}");
    let p50 = r["latency_us"]["render_to_reassembled"]["p50"]
        .as_i64()
        .unwrap();
    assert!((0..100_000).contains(&p50), "{r}");
    assert!(r["bitrate_kbps"].as_f64().unwrap() > 1000.0, "{r}");

    let log = stub.log.lock().unwrap();
    let hello = log.hellos.last().unwrap();
    assert_eq!(
        (hello.mode.width, hello.mode.height, hello.mode.refresh_mhz),
        (640, 360, 60_000)
    );
    assert_eq!(
        (
            hello.bitrate_kbps,
            hello.synthetic_kbps,
            hello.max_shard_payload
        ),
        (10_000, 3000, 1408)
    );
    assert_eq!(hello.audio_channels, 2);
    assert_eq!(log.starts, 1);
    assert!(log.probes >= 4, "{log:?}");
    assert!(log.loss_reports >= 1, "{log:?}");
    assert!(log.keyframe_requests >= 1, "{log:?}");
    assert_eq!(log.reconfigures, [(800, 600)]);
    assert_eq!(
        log.input,
        [
            InputEvent::Text("hi".into()),
            InputEvent::Key {
                code: 28,
                down: true
            },
            InputEvent::Key {
                code: 28,
                down: false
            },
        ]
    );
    assert_eq!(
        log.client_closes.last().map(|c| c.0),
        Some(CloseCode::Normal)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_exits_ends_the_stream_and_quit_is_sent() {
    let stub = start_stub();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let host = stub.addr.to_string();
    let out = client(&state, &["pair", &host, "--pin", PIN]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The host ends it: exit 0 after frames, and the report says why.
    let report = dir.path().join("r.json");
    let args = [
        "stream",
        &host,
        "--app",
        "exits",
        "--mode",
        "320x240@60",
        "--synthetic-kbps",
        "1000",
        "--json",
        report.to_str().unwrap(),
    ];
    let out = client(&state, &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["close"], "app_exited", "{r}");
    assert!(r["frames_received"].as_u64().unwrap() > 0, "{r}");

    // --quit ends with QuitStopApp.
    let args = [
        "stream",
        &host,
        "--mode",
        "320x240@60",
        "--synthetic-kbps",
        "1000",
        "--seconds",
        "0.3",
        "--quit",
    ];
    let out = client(&state, &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = stub.log.lock().unwrap();
    assert_eq!(
        log.client_closes.last().map(|c| c.0),
        Some(CloseCode::QuitStopApp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_certificate_is_refused() {
    let stub = start_stub();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let host = stub.addr.to_string();
    std::fs::create_dir_all(&state).unwrap();
    let pins = serde_json::json!({ host.clone(): fingerprint_hex(&[0x11; 32]) });
    std::fs::write(state.join("hosts.json"), pins.to_string()).unwrap();
    let out = client(&state, &["list", &host]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("host certificate changed"), "{err}");
    assert!(err.contains(&fingerprint_hex(&stub.fingerprint)), "{err}");
    assert!(stub.log.lock().unwrap().paired.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_decodes_through_a_mode_change_into_png_and_y4m() {
    let stub = start_stub();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let host = stub.addr.to_string();
    let out = client(&state, &["pair", &host, "--pin", PIN]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let report = dir.path().join("r.json");
    let (png, y4m) = (dir.path().join("last.png"), dir.path().join("all.y4m"));
    for output in [&png, &y4m] {
        let args = [
            "stream",
            &host,
            "--mode",
            "320x240@60",
            "--seconds",
            "1.2",
            "--reconfigure",
            "400x300@60@0.5",
            "--output",
            output.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ];
        let out = client(&state, &args).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(
            r["resolutions"],
            serde_json::json!(["320x240", "400x300"]),
            "{r}"
        );
        assert!(r["frames_decoded"].as_u64().unwrap() > 30, "{r}");
        assert_eq!(r["frames_decoded"], r["frames_received"], "{r}");
        assert_eq!(r["decode_errors"], 0, "{r}");
        assert!(
            r["latency_us"]["render_to_decoded"]["p50"]
                .as_i64()
                .unwrap()
                > 0,
            "{r}"
        );
    }

    // The last frame, after the mode change, as RGB.
    let mut reader = png::Decoder::new(std::fs::File::open(&png).unwrap())
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (400, 300));
    assert_eq!(info.color_type, png::ColorType::Rgb);

    // Frames of the first size only: a header, then FRAME and 320x240 I420 each.
    let bytes = std::fs::read(&y4m).unwrap();
    let header = b"YUV4MPEG2 W320 H240 F60000:1000 Ip A1:1 C420jpeg\n";
    assert!(bytes.starts_with(header));
    let frame_len = 6 + 320 * 240 * 3 / 2;
    let body = bytes.len() - header.len();
    assert_eq!(body % frame_len, 0);
    // About 30 at 60 fps before the change at 0.5 s; a busy machine streams fewer.
    assert!(body / frame_len >= 5, "{} frames", body / frame_len);
}
