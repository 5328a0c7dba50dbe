//! One stream: the threads that carry a compositor to one client.
//!
//! - the **video** thread waits for the client's first video ping, then runs the encode
//!   pipeline ([`crate::pipeline`]: the compositor's newest frame, converted and encoded) and
//!   sends each encoded frame as RTP datagrams with FEC in batches, a large frame paced over part
//!   of the frame interval ([`crate::send`]);
//! - the **audio** thread waits for the first audio ping, then records the session's sink
//!   ([`crate::audio::Capture`]) and sends one Opus packet per packet duration of sound, paced by
//!   the capture (or silence on a timer when the session has no sound server);
//! - the shared control thread hands this stream's packets to its [`ControlHandler`], which
//!   decrypts them, feeds input into the compositor (gamepads into virtual devices, whose rumble
//!   goes back to the client) and raises IDR requests, and hands the client's loss reports
//!   (FEC status, reference-frame invalidation, IDR requests) to the stream's
//!   [`LossController`], which the video thread asks before every frame for the FEC percentage
//!   and the encoder bitrate to use.
//!
//! The stream ends when the client disconnects or stops pinging; [`Stream::stop`] joins it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use compositor::CompositorHandle;
use protocol::control::{self, ControlMessage};
use protocol::rtsp::StreamParams;
use tracing::{debug, info, info_span, trace, warn};

use crate::control::{ControlHandler, ControlServer};
use crate::encode::{self, BitDepth, Chroma, Colorspace, EncoderOptions};
use crate::gamepad::{GamepadManager, GamepadOptions};
use crate::input::{self, InputMapper};
use crate::loss::{LossController, LossOptions};
use crate::media::{MediaSocket, Registration};
use crate::pipeline::{AudioSettings, VideoPipeline};
use crate::send::{OutgoingFrame, Pacing, SenderThread, VideoSender};

/// How long the client has to send its first ping on each media port.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets every stream of the host shares.
pub struct Media {
    /// Video port (base + 9).
    pub video: MediaSocket,
    /// Audio port (base + 11).
    pub audio: MediaSocket,
    /// Control port (base + 10).
    pub control: ControlServer,
}

impl Media {
    /// Binds the three ports on `ip`.
    pub fn bind(ip: IpAddr, video: u16, audio: u16, control: u16) -> anyhow::Result<Self> {
        Ok(Self {
            video: MediaSocket::bind(SocketAddr::new(ip, video), "video")?,
            audio: MediaSocket::bind(SocketAddr::new(ip, audio), "audio")?,
            control: ControlServer::bind(SocketAddr::new(ip, control))?,
        })
    }
}

/// What a stream needs from the launch and the RTSP handshake.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// `rikey`: AES-128 key of the control stream and of video/audio encryption.
    pub key: [u8; 16],
    /// `rikeyid`: seeds the audio IVs.
    pub key_id: u32,
    /// Identifies the client's pings.
    pub ping_payload: [u8; 16],
    /// Identifies the client's ENet connection.
    pub connect_data: u32,
    /// The client's address (legacy pings are matched by it).
    pub client_ip: IpAddr,
    /// What the client asked for in ANNOUNCE.
    pub params: StreamParams,
    /// FEC parity share in percent.
    pub fec_percent: u8,
    /// Which video encoder to prefer (NVENC, VAAPI, software) and the VAAPI device.
    pub encoder: encode::HardwareOptions,
    /// The session's sink monitor, recorded for the audio stream; `None` sends silence.
    pub audio: Option<crate::audio::AudioSource>,
    /// What the client's gamepads become.
    pub gamepads: GamepadOptions,
}

/// What a running stream sends with at the moment; the loss control changes the FEC percentage
/// and the bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// FEC percentage of the frames being sent.
    pub fec_percent: u8,
    /// Target bitrate of the video encoder.
    pub video_bitrate_kbps: u32,
    /// The codec the client chose: `h264`, `hevc` or `av1`.
    pub video_codec: &'static str,
    /// Whether the pictures are 4:4:4 (else 4:2:0), as the client asked.
    pub chroma_444: bool,
    /// Bits per sample of the pictures: 8, or 10 where the client asked for it.
    pub bit_depth: u32,
    /// The libavcodec encoder that runs the stream (`libx264`, `h264_nvenc`, ...); `None` until
    /// the client's first video ping opened it.
    pub video_encoder: Option<&'static str>,
    /// Video frames sent since the stream started.
    pub frames_sent: u64,
    /// Bytes of encoded video sent since the stream started (before FEC and headers).
    pub video_bytes_sent: u64,
    /// Video datagrams (data and parity) sent since the stream started.
    pub packets_sent: u64,
    /// Video datagrams the client reported missing since the stream started.
    pub packets_lost: u64,
    /// The host latency of the newest frame sent, render to last datagram, in microseconds.
    pub host_latency_us: u64,
}

/// Why a stream ended by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The client disconnected its control stream or stopped answering.
    ClientGone,
    /// No ping arrived on a media port in time.
    NoPing(&'static str),
    /// The video path failed: the encoder, or the thread that sends its frames.
    EncoderFailed(String),
}

/// A running stream.
pub struct Stream {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    control: ControlServer,
}

/// Runs once when a stream ends by itself.
type EndCallback = Box<dyn FnOnce(EndReason) + Send>;

struct Shared {
    config: StreamConfig,
    stop: AtomicBool,
    idr: AtomicBool,
    control_seq: AtomicU32,
    control_connected: AtomicBool,
    on_end: Mutex<Option<EndCallback>>,
    compositor: Arc<CompositorHandle>,
    input: Mutex<InputMapper>,
    gamepads: Mutex<GamepadManager>,
    /// What the client's loss reports make of the FEC percentage and the bitrate.
    loss: Mutex<LossController>,
    /// The settings in use, for [`Stream::stats`].
    fec_percent: AtomicU8,
    video_bitrate_kbps: AtomicU32,
    video_encoder: Mutex<Option<&'static str>>,
    frames_sent: AtomicU64,
    video_bytes_sent: AtomicU64,
    host_latency_us: AtomicU64,
}

impl Shared {
    fn end(&self, reason: EndReason) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(f) = self.on_end.lock().unwrap_or_else(|e| e.into_inner()).take() {
            f(reason);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Stream {
    /// Starts the stream's threads. `on_end` runs once if the stream ends by itself (not after
    /// [`Stream::stop`]).
    pub fn start(
        media: &Media,
        config: StreamConfig,
        compositor: Arc<CompositorHandle>,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let p = &config.params;
        info!(
            width = p.width,
            height = p.height,
            fps = p.fps,
            bitrate_kbps = p.max_bitrate_kbps,
            packet_size = p.packet_size,
            encryption = p.encryption_enabled,
            fec_percent = config.fec_percent,
            min_fec_packets = p.min_fec_packets,
            fec_status = p.fec_status(),
            "stream starting"
        );
        let video_reg = media.video.register(config.ping_payload, config.client_ip);
        let audio_reg = media.audio.register(config.ping_payload, config.client_ip);
        let control = media.control.clone();
        let mapper = InputMapper::new(p.width, p.height);
        let bitrate = video_bitrate_kbps(&config);
        let loss = LossController::new(LossOptions::new(config.fec_percent, bitrate));
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            input: Mutex::new(mapper),
            gamepads: Mutex::new(GamepadManager::with_uinput(
                config.gamepads,
                feedback_sink(weak.clone(), control),
            )),
            fec_percent: AtomicU8::new(config.fec_percent),
            video_bitrate_kbps: AtomicU32::new(bitrate),
            video_encoder: Mutex::new(None),
            frames_sent: AtomicU64::new(0),
            video_bytes_sent: AtomicU64::new(0),
            host_latency_us: AtomicU64::new(0),
            loss: Mutex::new(loss),
            config,
            stop: AtomicBool::new(false),
            idr: AtomicBool::new(true),
            control_seq: AtomicU32::new(0),
            control_connected: AtomicBool::new(false),
            on_end: Mutex::new(Some(Box::new(on_end))),
            compositor,
        });
        media.control.register(
            shared.config.connect_data,
            Arc::new(Control(shared.clone())),
        );
        let mut threads = Vec::new();
        {
            let shared = shared.clone();
            let socket = media.video.socket().clone();
            threads.push(
                std::thread::Builder::new()
                    .name("video".into())
                    .spawn(move || video_thread(&shared, &socket, video_reg))
                    .context("cannot start the video thread")?,
            );
        }
        {
            let shared = shared.clone();
            let socket = media.audio.socket().clone();
            threads.push(
                std::thread::Builder::new()
                    .name("audio".into())
                    .spawn(move || audio_thread(&shared, &socket, audio_reg))
                    .context("cannot start the audio thread")?,
            );
        }
        Ok(Self {
            shared,
            threads,
            control: media.control.clone(),
        })
    }

    /// Tells the client the stream ends (`code` is a termination code such as
    /// [`protocol::control::TERMINATION_GRACEFUL`]) and disconnects it.
    pub fn terminate(&self, code: u32) {
        let cd = self.shared.config.connect_data;
        if let Some(msg) = self
            .shared
            .encrypt(&control::HostMessage::Termination { code })
        {
            self.control.send(cd, msg);
        }
        self.control.disconnect(cd, true);
    }

    /// The codec, encoder, FEC percentage and video bitrate the stream sends with now.
    pub fn stats(&self) -> StreamStats {
        let p = &self.shared.config.params;
        let (packets_sent, packets_lost) = self.shared.loss().packet_totals();
        StreamStats {
            fec_percent: self.shared.fec_percent.load(Ordering::Relaxed),
            video_bitrate_kbps: self.shared.video_bitrate_kbps.load(Ordering::Relaxed),
            video_codec: match p.bitstream_format {
                protocol::rtsp::BitstreamFormat::H264 => "h264",
                protocol::rtsp::BitstreamFormat::Hevc => "hevc",
                protocol::rtsp::BitstreamFormat::Av1 => "av1",
            },
            chroma_444: p.chroma_444,
            bit_depth: video_depth(p).bits(),
            video_encoder: *self
                .shared
                .video_encoder
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            frames_sent: self.shared.frames_sent.load(Ordering::Relaxed),
            video_bytes_sent: self.shared.video_bytes_sent.load(Ordering::Relaxed),
            packets_sent,
            packets_lost,
            host_latency_us: self.shared.host_latency_us.load(Ordering::Relaxed),
        }
    }

    /// Stops the threads and waits for them.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared
            .on_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.control.unregister(self.shared.config.connect_data);
        self.shared
            .input
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release_all(&self.shared.compositor);
        self.shared
            .gamepads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        info!("stream stopped");
    }
}

impl crate::StreamHandle for Stream {
    fn stats(&self) -> StreamStats {
        Stream::stats(self)
    }

    fn end_session(&self) {
        self.terminate(control::TERMINATION_GRACEFUL);
    }

    fn stop(self: Box<Self>) {
        Stream::stop(*self);
    }
}

/// The encoder bitrate the client's settings give, before any loss control.
fn video_bitrate_kbps(config: &StreamConfig) -> u32 {
    config
        .params
        .encoder_bitrate_kbps(u32::from(config.fec_percent))
        .max(500)
}

impl Shared {
    fn loss(&self) -> std::sync::MutexGuard<'_, LossController> {
        self.loss.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encrypt(&self, msg: &control::HostMessage) -> Option<Vec<u8>> {
        let seq = self.control_seq.fetch_add(1, Ordering::SeqCst);
        msg.encrypt(&self.config.key, seq)
            .map_err(|e| warn!(%e, "cannot seal a control message"))
            .ok()
    }
}

/// Seals gamepad feedback (rumble) for the client and sends it on the control stream.
fn feedback_sink(shared: Weak<Shared>, control: ControlServer) -> crate::gamepad::FeedbackSink {
    Arc::new(move |msg: control::HostMessage| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopped() || !shared.control_connected.load(Ordering::SeqCst) {
            return;
        }
        if let Some(sealed) = shared.encrypt(&msg) {
            control.send(shared.config.connect_data, sealed);
        }
    })
}

/// Tracing target of the per-packet input timing lines, on at debug level
/// (`PUNKTFUNK_LOG=info,streamer::input_timing=debug`): `arrived_ns` when the control thread
/// handed the packet to the stream, `delivered_ns` once it was decrypted, parsed and queued to
/// the compositor. Both are `CLOCK_MONOTONIC` nanoseconds, comparable with other processes'
/// clocks (`bench/input_latency.py`).
pub const INPUT_TIMING: &str = "streamer::input_timing";

struct Control(Arc<Shared>);

impl ControlHandler for Control {
    fn on_connect(&self, from: SocketAddr) {
        debug!(%from, "control connected");
        self.0.control_connected.store(true, Ordering::SeqCst);
    }

    fn on_packet(&self, channel: u8, data: &[u8]) {
        let timed = tracing::enabled!(target: INPUT_TIMING, tracing::Level::DEBUG);
        let arrived_ns = timed.then(crate::monotonic_ns);
        if crate::corpus::enabled() {
            if let Ok(env) =
                control::decrypt_envelope(&self.0.config.key, control::Origin::Client, data)
            {
                // The control target's "message" form: selector 1, type, payload.
                crate::corpus::record("control", &[&[1], &env.ty.to_le_bytes(), &env.payload]);
                if let Ok(ControlMessage::Input(bytes)) =
                    ControlMessage::parse(env.ty, &env.payload)
                {
                    crate::corpus::record("input", &[&bytes]);
                }
            }
        }
        let msg = match control::decrypt_client_message(&self.0.config.key, data) {
            Ok(m) => m,
            Err(e) => {
                debug!(channel, %e, len = data.len(), "dropped a control packet");
                return;
            }
        };
        match msg {
            ControlMessage::RequestIdr | ControlMessage::InvalidateRefFrames { .. } => {
                debug!("IDR requested");
                self.0.loss().handle_frame_lost(Instant::now());
                self.0.idr.store(true, Ordering::SeqCst);
            }
            ControlMessage::FecStatus(status) => {
                trace!(?status, "FEC status");
                self.0.loss().handle_fec_status(Instant::now(), &status);
            }
            ControlMessage::Input(bytes) => match protocol::input::InputPacket::parse(&bytes) {
                Ok(p) if input::is_gamepad_packet(&p) => {
                    self.0
                        .gamepads
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .handle(&p);
                }
                Ok(p) => {
                    let mut mapper = self.0.input.lock().unwrap_or_else(|e| e.into_inner());
                    mapper.deliver(&p, &self.0.compositor);
                    if let Some(arrived_ns) = arrived_ns {
                        let delivered_ns = crate::monotonic_ns();
                        let packet = &p;
                        debug!(target: INPUT_TIMING, arrived_ns, delivered_ns, ?packet, "input");
                    }
                }
                Err(e) => debug!(%e, len = bytes.len(), "dropped an input packet"),
            },
            other => trace!(?other, "control message"),
        }
    }

    fn on_disconnect(&self) {
        if self.0.control_connected.swap(false, Ordering::SeqCst) {
            self.0.end(EndReason::ClientGone);
        }
    }
}

fn video_thread(shared: &Shared, socket: &UdpSocket, reg: Registration) {
    let _span = info_span!("video").entered();
    let Some(dest) = wait_ping(shared, &reg) else {
        if !shared.stopped() {
            warn!("no video ping from the client");
            shared.end(EndReason::NoPing("video"));
        }
        return;
    };
    info!(%dest, "video destination");
    // Pacing a large frame takes up to half an interval; the sender thread does it while this
    // one encodes the next frame.
    let sent = std::thread::scope(|scope| {
        let mut sender = SenderThread::spawn(scope, socket, VideoSender::new())
            .context("cannot start the video sender thread")?;
        let result = run_video(shared, &mut sender, &reg);
        let finished = sender.finish();
        result.and(finished)
    });
    if let Err(e) = sent {
        warn!(err = %format!("{e:#}"), "the video stream failed");
        shared.end(EndReason::EncoderFailed(format!("{e:#}")));
    }
}

fn wait_ping(shared: &Shared, reg: &Registration) -> Option<SocketAddr> {
    let deadline = Instant::now() + PING_TIMEOUT;
    while !shared.stopped() && Instant::now() < deadline {
        if let Some(a) = reg.target().wait(Duration::from_millis(100)) {
            return Some(a);
        }
    }
    None
}

/// The bit depth of a stream's pictures: 10 where the client asked for it (`dynamicRangeMode`,
/// Moonlight's HDR option) and the codec has 10-bit profiles (HEVC, AV1); else 8. The picture
/// is SDR either way: the compositor renders 8-bit SDR.
fn video_depth(p: &StreamParams) -> BitDepth {
    let ten_bit_codec = matches!(
        p.bitstream_format,
        protocol::rtsp::BitstreamFormat::Hevc | protocol::rtsp::BitstreamFormat::Av1
    );
    if p.dynamic_range == protocol::rtsp::DynamicRange::Hdr && ten_bit_codec {
        BitDepth::Ten
    } else {
        BitDepth::Eight
    }
}

/// The encoder settings the client's ANNOUNCE asks for, at `bitrate_kbps`.
fn encoder_options(p: &StreamParams, bitrate_kbps: u32) -> EncoderOptions {
    let mut opts = EncoderOptions::new(p.width, p.height, p.fps.max(1), bitrate_kbps);
    opts.codec = match p.bitstream_format {
        protocol::rtsp::BitstreamFormat::H264 => encode::Codec::H264,
        protocol::rtsp::BitstreamFormat::Hevc => encode::Codec::Hevc,
        protocol::rtsp::BitstreamFormat::Av1 => encode::Codec::Av1,
    };
    opts.colorspace = Colorspace::from_csc_mode(p.csc_mode).unwrap_or_default();
    opts.slices = p.slices_per_frame.max(1);
    opts.chroma = if p.chroma_444 {
        Chroma::Yuv444
    } else {
        Chroma::Yuv420
    };
    opts.depth = video_depth(p);
    if p.dynamic_range == protocol::rtsp::DynamicRange::Hdr && opts.depth == BitDepth::Eight {
        warn!(codec = ?opts.codec, "the client asked for 10-bit, which this codec does not have here; sending 8-bit");
    }
    opts
}

/// GameStream's video sink: the pipeline's frames cut into RTP datagrams with FEC, paced out to
/// the client's address, with the loss control's FEC percentage and bitrate.
fn run_video(
    shared: &Shared,
    sender: &mut SenderThread<'_>,
    reg: &Registration,
) -> anyhow::Result<()> {
    let p = &shared.config.params;
    let options = encoder_options(p, video_bitrate_kbps(&shared.config));
    let mut pipeline = VideoPipeline::open(&shared.compositor, options, &shared.config.encoder)?;
    let note_encoder = |pipeline: &VideoPipeline| {
        *shared
            .video_encoder
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(pipeline.encoder().encoder_name());
    };
    note_encoder(&pipeline);
    let mut packetizer = protocol::video::VideoPacketizer::new(protocol::video::VideoConfig {
        packet_size: p.packet_size as usize,
        fec_percent: shared.config.fec_percent,
        min_required_fec_packets: p.min_fec_packets.min(255) as u8,
        encryption_key: p.video_encrypted().then_some(shared.config.key),
    })
    .context("bad video packetizer settings")?;
    let epoch = Instant::now();
    let frame_interval = pipeline.frame_interval();
    let mut told_fixed_rate = false;
    while !shared.stopped() {
        let adjustment = shared.loss().poll(Instant::now());
        if let Some(a) = adjustment {
            packetizer.set_fec_percent(a.fec_percent);
            shared.fec_percent.store(a.fec_percent, Ordering::Relaxed);
            if a.bitrate_changed() {
                if pipeline.set_bitrate(a.bitrate_kbps) {
                    shared
                        .video_bitrate_kbps
                        .store(a.bitrate_kbps, Ordering::Relaxed);
                } else if !told_fixed_rate {
                    info!(
                        encoder = pipeline.encoder().encoder_name(),
                        bitrate_kbps = pipeline.encoder().bitrate_kbps(),
                        "this encoder cannot change its bitrate while streaming; it keeps its rate"
                    );
                    told_fixed_rate = true;
                }
            }
            a.log(pipeline.encoder().bitrate_kbps());
        }
        let Some(rendered_at) =
            pipeline.next_picture(&shared.idr, || reg.target().current().is_some())
        else {
            continue;
        };
        let Some(dest) = reg.target().current() else {
            continue;
        };
        let force_idr = shared.idr.swap(false, Ordering::SeqCst);
        let Some(encoded) = pipeline.encode(force_idr)? else {
            continue;
        };
        // A GPU encoder that failed mid-stream has been replaced by the CPU one.
        note_encoder(&pipeline);
        let rtp_ts = (rendered_at.saturating_duration_since(epoch).as_micros() * 9 / 100) as u32;
        let fec = u64::from(packetizer.fec_percent());
        let pacing = Pacing {
            bitrate_bps: u64::from(pipeline.encoder().bitrate_kbps()) * 1000 * (100 + fec) / 100,
            frame_interval,
        };
        // The frame header's host latency runs from the render to the last datagram sent: the
        // time so far, any wait for the frame before it to leave, and when the pacing sends the
        // frame's last batch.
        let encoded_len = encoded.data.len();
        let count = packetizer.datagram_count(encoded_len)?;
        let spread = pacing.duration(count, packetizer.datagram_len());
        let leaves = sender.starts_at(Instant::now()) + spread;
        let latency_us = leaves
            .saturating_duration_since(rendered_at)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        let frame_type = if encoded.is_idr {
            protocol::video::FrameType::Idr
        } else {
            protocol::video::FrameType::P
        };
        let mut datagrams = sender.buffer();
        packetizer.packetize(
            &encoded.data,
            frame_type,
            latency_us,
            rtp_ts,
            &mut datagrams,
        )?;
        pipeline.recycle(encoded);
        trace!(
            datagrams = datagrams.len(),
            planned_us = spread.as_micros() as u64,
            "frame packetized"
        );
        shared.loss().handle_sent(Instant::now(), datagrams.len());
        shared.frames_sent.fetch_add(1, Ordering::Relaxed);
        shared
            .video_bytes_sent
            .fetch_add(encoded_len as u64, Ordering::Relaxed);
        shared.host_latency_us.store(latency_us, Ordering::Relaxed);
        sender.send(OutgoingFrame {
            dest,
            datagrams,
            pacing,
        })?;
    }
    Ok(())
}

fn audio_thread(shared: &Shared, socket: &UdpSocket, reg: Registration) {
    let _span = info_span!("audio").entered();
    let Some(dest) = wait_ping(shared, &reg) else {
        if !shared.stopped() {
            warn!("no audio ping from the client");
        }
        return;
    };
    info!(%dest, "audio destination");
    if let Err(e) = run_audio(shared, socket, &reg) {
        warn!(err = %format!("{e:#}"), "audio stopped");
    }
}

fn run_audio(shared: &Shared, socket: &UdpSocket, reg: &Registration) -> anyhow::Result<()> {
    let p = &shared.config.params;
    let settings = AudioSettings {
        channels: p.audio_channels,
        high_quality: p.audio_high_quality,
        packet_duration_ms: if p.audio_packet_duration_ms == 10 {
            10
        } else {
            5
        },
    };
    let encryption = p
        .audio_encrypted()
        .then_some(protocol::audio::AudioEncryption {
            key: shared.config.key,
            rikeyid: shared.config.key_id,
        });
    let mut packetizer = protocol::audio::AudioPacketizer::new(protocol::audio::AudioConfig {
        packet_duration_ms: settings.packet_duration_ms,
        encryption,
    })?;
    let mut out = protocol::audio::AudioDatagrams::new();
    crate::pipeline::run_audio(
        shared.config.audio.as_ref(),
        settings,
        || shared.stopped(),
        |opus| {
            packetizer.packetize(opus, &mut out)?;
            if let Some(dest) = reg.target().current() {
                for d in out.iter() {
                    let _ = socket.send_to(d, dest);
                }
            }
            Ok(())
        },
    )
}
