//! A punktfunk/1 stream: the data plane of one native session.
//!
//! - the **video** thread runs the encode pipeline ([`crate::pipeline`]) at the stream's mode,
//!   seals each encoded frame into one GF(2^16) FEC block of AES-GCM datagrams
//!   ([`protocol::native::send::FrameSealer`]) and hands them to the sender thread, which sends
//!   them in `sendmmsg` batches, a large frame paced ([`crate::send`]). A mode change
//!   ([`NativeStream::reconfigure`]) reopens the pipeline at the new mode, so the first frame of
//!   the new mode is a keyframe. With [`NativeConfig::synthetic_kbps`] the thread sends frames
//!   of filler at that rate instead of encoding, to measure the transport alone;
//! - the **audio** thread records the session's sink ([`crate::pipeline::run_audio`]) and seals
//!   one Opus packet per frame of the audio plane.
//!
//! The control connection (QUIC, in the session crate) feeds the stream: input events into the
//! compositor ([`NativeStream::input`]), keyframe requests, loss reports (which move the FEC
//! percentage) and bitrate changes. Datagrams go to one address, the client's data port; the
//! keys came to the client inside the TLS-protected control connection.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use compositor::{CompositorHandle, InputEvent as Seat};
use protocol::native::crypto::DataKey;
use protocol::native::fec::Protection;
use protocol::native::header::Plane;
use protocol::native::input::{Button, InputEvent, TouchPhase};
use protocol::native::send::{Datagrams, FrameInfo, FrameSealer};
use tracing::{debug, info, info_span, trace, warn};

use crate::encode::{EncoderOptions, HardwareOptions};
use crate::gamepad::{native_pad_state, FeedbackSink, GamepadManager, GamepadOptions};
use crate::loss::{LossController, LossOptions};
use crate::pipeline::{AudioSettings, VideoPipeline};
use crate::send::{OutgoingFrame, Pacing, SenderThread, VideoSender};
use crate::{monotonic_ns, EndReason, StreamHandle, StreamStats};

/// The largest frame of a synthetic stream: a high rate at a low refresh is cut to this.
const MAX_SYNTHETIC_FRAME: u64 = 32 << 20;

/// Socket buffer the data plane asks for: a keyframe at a high bitrate must not overflow it.
const SEND_BUFFER: usize = 16 << 20;

/// What a native stream needs from its handshake.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The data-plane key and salt (host to client).
    pub key: DataKey,
    /// Where the datagrams go: the client's address and data port.
    pub dest: SocketAddr,
    /// The encoder at the stream's first mode.
    pub encoder: EncoderOptions,
    /// Which video encoder to prefer.
    pub hardware: HardwareOptions,
    /// FEC recovery shards per 100 data shards at the start.
    pub fec_percent: u8,
    /// Largest shard payload (even).
    pub shard_payload: u16,
    /// The session's sink monitor; `None` sends silence.
    pub audio: Option<crate::audio::AudioSource>,
    /// The client's sound.
    pub audio_settings: AudioSettings,
    /// Nonzero: send frames of filler at this many kbit/s instead of encoding the compositor.
    pub synthetic_kbps: u32,
    /// What the client's gamepads become.
    pub gamepads: GamepadOptions,
}

/// A running punktfunk/1 stream. The session owns it as its [`StreamHandle`] (an
/// `Arc<NativeStream>`); the control connection keeps a clone to feed it.
pub struct NativeStream {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

type EndCallback = Box<dyn FnOnce(EndReason) + Send>;
/// What the stream tells the client through the control connection (its business, not the
/// data plane's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The loss control changed the encoder's bitrate (kbit/s).
    Bitrate(u32),
    /// A game plays rumble on the client's pad `pad`: the two motors, both 0 to stop.
    Rumble {
        /// The client's pad index.
        pad: u8,
        /// Low-frequency (strong) motor.
        low: u16,
        /// High-frequency (weak) motor.
        high: u16,
    },
}

type NoticeSink = Arc<Mutex<Option<Box<dyn Fn(Notice) + Send>>>>;

/// Passes `notice` to the sink the control connection set, if any.
fn tell(sink: &NoticeSink, notice: Notice) {
    if let Some(f) = &*sink.lock().unwrap_or_else(|e| e.into_inner()) {
        f(notice);
    }
}

/// Where the gamepad manager's feedback goes: rumble to the client as a [`Notice`], the rest
/// (GameStream's LED and trigger messages) nowhere.
fn rumble_sink(notices: NoticeSink) -> FeedbackSink {
    Arc::new(move |message| match rumble_notice(&message) {
        Some(notice) => tell(&notices, notice),
        None => trace!(?message, "feedback punktfunk/1 does not carry"),
    })
}

/// The notice for a rumble the gamepad manager reports (GameStream's message, addressed to the
/// client's pad); `None` for other feedback, which punktfunk/1 does not carry.
fn rumble_notice(message: &protocol::control::HostMessage) -> Option<Notice> {
    match *message {
        protocol::control::HostMessage::Rumble {
            controller,
            low_freq,
            high_freq,
        } => Some(Notice::Rumble {
            pad: u8::try_from(controller).ok()?,
            low: low_freq,
            high: high_freq,
        }),
        _ => None,
    }
}

struct Shared {
    config: NativeConfig,
    compositor: Arc<CompositorHandle>,
    stop: AtomicBool,
    keyframe: AtomicBool,
    /// The mode the video thread should stream, and a counter of changes.
    mode: Mutex<(u32, u32, u32)>,
    mode_changes: AtomicU32,
    fec_percent: AtomicU8,
    /// The loss rate the recovery shards of each frame are sized for (parts per million).
    loss_ppm: AtomicU32,
    /// What the client's loss reports make of the FEC percentage and the bitrate (the same
    /// control as GameStream's).
    loss: Mutex<LossController>,
    /// Tells the client of bitrate changes and rumble (the control connection's business).
    notices: NoticeSink,
    bitrate_kbps: AtomicU32,
    bitrate_changes: AtomicU32,
    on_end: Mutex<Option<EndCallback>>,
    /// Tells the client that its session ended (the control connection's business).
    farewell: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    video_encoder: Mutex<Option<&'static str>>,
    frames_sent: AtomicU64,
    video_bytes_sent: AtomicU64,
    packets_sent: AtomicU64,
    send_failures: Arc<AtomicU64>,
    host_latency_us: AtomicU64,
    /// The client's gamepads as virtual devices, created at a pad's first state.
    gamepads: Mutex<GamepadManager>,
    /// `CLOCK_MONOTONIC` at `epoch`, to put frames' render times on the clock the client
    /// synchronises with.
    epoch: Instant,
    epoch_ns: u64,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn end(&self, reason: EndReason) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(f) = self.on_end.lock().unwrap_or_else(|e| e.into_inner()).take() {
            f(reason);
        }
    }

    fn loss(&self) -> std::sync::MutexGuard<'_, LossController> {
        self.loss.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies what the loss control decided: the FEC percentage and the loss rate recovery is
    /// sized for at once, the bitrate at the next frame.
    fn follow_loss_control(&self) {
        let (adjustment, loss_ppm) = {
            let mut loss = self.loss();
            (loss.poll(Instant::now()), loss.loss_ppm())
        };
        self.loss_ppm.store(loss_ppm, Ordering::Relaxed);
        let Some(a) = adjustment else {
            return;
        };
        self.fec_percent.store(a.fec_percent, Ordering::Relaxed);
        if a.bitrate_changed() {
            self.bitrate_kbps.store(a.bitrate_kbps, Ordering::Relaxed);
            self.bitrate_changes.fetch_add(1, Ordering::SeqCst);
            tell(&self.notices, Notice::Bitrate(a.bitrate_kbps));
        }
        a.log(a.bitrate_kbps);
    }

    fn ns_of(&self, t: Instant) -> u64 {
        self.epoch_ns + t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

impl NativeStream {
    /// Starts the stream's threads, sending from a socket of its own. `on_end` runs once if
    /// the stream ends by itself (not after [`StreamHandle::stop`]).
    pub fn start(
        config: NativeConfig,
        compositor: Arc<CompositorHandle>,
        on_end: impl FnOnce(EndReason) + Send + 'static,
    ) -> anyhow::Result<Arc<Self>> {
        let bind: SocketAddr = match config.dest {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind).context("cannot open the data-plane socket")?;
        let sock = socket2::SockRef::from(&socket);
        if let Err(e) = sock.set_send_buffer_size(SEND_BUFFER) {
            debug!(%e, "cannot raise the data-plane send buffer");
        }
        let o = &config.encoder;
        info!(
            dest = %config.dest,
            width = o.width,
            height = o.height,
            fps = o.fps,
            bitrate_kbps = o.bitrate_kbps,
            fec_percent = config.fec_percent,
            synthetic_kbps = config.synthetic_kbps,
            "native stream starting"
        );
        let notices: NoticeSink = Arc::default();
        let shared = Arc::new(Shared {
            mode: Mutex::new((o.width, o.height, o.fps)),
            mode_changes: AtomicU32::new(0),
            fec_percent: AtomicU8::new(config.fec_percent),
            loss_ppm: AtomicU32::new(0),
            loss: Mutex::new(LossController::new(LossOptions::new(
                config.fec_percent,
                o.bitrate_kbps,
            ))),
            notices: notices.clone(),
            bitrate_kbps: AtomicU32::new(o.bitrate_kbps),
            bitrate_changes: AtomicU32::new(0),
            compositor,
            stop: AtomicBool::new(false),
            keyframe: AtomicBool::new(true),
            on_end: Mutex::new(Some(Box::new(on_end))),
            farewell: Mutex::new(None),
            video_encoder: Mutex::new(None),
            frames_sent: AtomicU64::new(0),
            video_bytes_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            send_failures: Arc::default(),
            host_latency_us: AtomicU64::new(0),
            gamepads: Mutex::new(GamepadManager::with_uinput(
                config.gamepads,
                rumble_sink(notices.clone()),
            )),
            epoch: Instant::now(),
            epoch_ns: monotonic_ns(),
            config,
        });
        let socket = Arc::new(socket);
        let mut threads = Vec::new();
        {
            let (shared, socket) = (shared.clone(), socket.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("native-video".into())
                    .spawn(move || video_thread(&shared, &socket))
                    .context("cannot start the video thread")?,
            );
        }
        if shared.config.synthetic_kbps == 0 {
            let (shared, socket) = (shared.clone(), socket.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("native-audio".into())
                    .spawn(move || audio_thread(&shared, &socket))
                    .context("cannot start the audio thread")?,
            );
        }
        Ok(Arc::new(Self {
            shared,
            threads: Mutex::new(threads),
        }))
    }

    /// Runs `f` when the host ends the session (its app exited, the user stopped it), so that
    /// the control connection can tell the client why.
    pub fn on_session_end(&self, f: impl FnOnce() + Send + 'static) {
        *self
            .shared
            .farewell
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// Stops the threads and waits for them; later calls do nothing.
    pub fn halt(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared
            .on_end
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // The client's pads leave with its stream.
        self.shared
            .gamepads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        if threads.is_empty() {
            return;
        }
        for t in threads {
            let _ = t.join();
        }
        info!(
            frames_sent = self.shared.frames_sent.load(Ordering::Relaxed),
            datagrams_sent = self.shared.packets_sent.load(Ordering::Relaxed),
            send_failures = self.send_failures(),
            "native stream stopped"
        );
    }

    /// The next frame is a keyframe.
    pub fn request_keyframe(&self) {
        self.shared.keyframe.store(true, Ordering::SeqCst);
    }

    /// Streams at `width`x`height`@`fps` from the next frame on (a keyframe); the caller has
    /// set the compositor's output to that mode.
    pub fn reconfigure(&self, width: u32, height: u32, fps: u32) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = (width, height, fps);
        self.shared.mode_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The client's loss over its last report interval: the loss control raises FEC and cuts
    /// the bitrate as for GameStream, and steps back once the loss is over.
    pub fn report_loss(&self, loss_ppm: u32, frames_lost: u32) {
        self.shared
            .loss()
            .handle_loss_report(Instant::now(), loss_ppm, frames_lost);
    }

    /// Runs `f` with what the client should be told: every bitrate change of the loss control
    /// and every rumble a game plays on one of the client's pads.
    pub fn on_notice(&self, f: impl Fn(Notice) + Send + 'static) {
        *self
            .shared
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// Asks the encoder for a new bitrate, which the loss control then takes as the rate to
    /// return to after loss.
    pub fn set_bitrate(&self, kbps: u32) {
        let kbps = kbps.clamp(500, 2_000_000);
        *self.shared.loss() =
            LossController::new(LossOptions::new(self.shared.config.fec_percent, kbps));
        self.shared
            .fec_percent
            .store(self.shared.config.fec_percent, Ordering::Relaxed);
        self.shared.loss_ppm.store(0, Ordering::Relaxed);
        self.shared.bitrate_kbps.store(kbps, Ordering::Relaxed);
        self.shared.bitrate_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The bitrate the stream sends at now.
    pub fn bitrate_kbps(&self) -> u32 {
        self.shared.bitrate_kbps.load(Ordering::Relaxed)
    }

    /// Datagrams the kernel refused since the start (the host's own drops).
    pub fn send_failures(&self) -> u64 {
        self.shared.send_failures.load(Ordering::Relaxed)
    }

    /// Delivers one input event of the client into the session's seat; nothing once the
    /// stream has stopped (another stream took the session over).
    pub fn input(&self, event: &InputEvent) {
        if self.shared.stopped() {
            return;
        }
        let c = &self.shared.compositor;
        match *event {
            InputEvent::Key { code, down } => c.send_input(Seat::Key {
                code: u32::from(code),
                pressed: down,
            }),
            InputEvent::Text(ref text) => c.send_input(Seat::Text { text: text.clone() }),
            InputEvent::PointerAbs { x, y } => c.send_input(Seat::PointerMotionAbsolute {
                x: f64::from(x),
                y: f64::from(y),
            }),
            InputEvent::PointerRel { dx, dy } => c.send_input(Seat::PointerMotionRelative {
                dx: f64::from(dx),
                dy: f64::from(dy),
            }),
            InputEvent::Button { button, down } => c.send_input(Seat::PointerButton {
                button: match button {
                    Button::Left => 0x110,
                    Button::Right => 0x111,
                    Button::Middle => 0x112,
                    Button::Side => 0x113,
                    Button::Extra => 0x114,
                },
                pressed: down,
            }),
            InputEvent::Scroll { dx, dy } => {
                if dy != 0 {
                    c.send_input(Seat::PointerAxis {
                        horizontal: false,
                        value120: i32::from(dy),
                    });
                }
                if dx != 0 {
                    c.send_input(Seat::PointerAxis {
                        horizontal: true,
                        value120: i32::from(dx),
                    });
                }
            }
            InputEvent::Touch { id, phase, x, y } => c.send_input(match phase {
                TouchPhase::Down => Seat::TouchDown {
                    id,
                    x: f64::from(x),
                    y: f64::from(y),
                },
                TouchPhase::Move => Seat::TouchMotion {
                    id,
                    x: f64::from(x),
                    y: f64::from(y),
                },
                TouchPhase::Up => Seat::TouchUp { id },
                TouchPhase::Cancel => Seat::TouchCancel,
            }),
            InputEvent::Gamepad(ref pad) => self
                .shared
                .gamepads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handle(&native_pad_state(pad)),
        }
    }
}

impl StreamHandle for Arc<NativeStream> {
    fn stats(&self) -> StreamStats {
        let s = &self.shared;
        let o = &s.config.encoder;
        StreamStats {
            fec_percent: s.fec_percent.load(Ordering::Relaxed),
            video_bitrate_kbps: s.bitrate_kbps.load(Ordering::Relaxed),
            video_codec: match o.codec {
                crate::encode::Codec::H264 => "h264",
                crate::encode::Codec::Hevc => "hevc",
                crate::encode::Codec::Av1 => "av1",
            },
            chroma_444: o.chroma == crate::encode::Chroma::Yuv444,
            bit_depth: o.depth.bits(),
            video_encoder: *s.video_encoder.lock().unwrap_or_else(|e| e.into_inner()),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            video_bytes_sent: s.video_bytes_sent.load(Ordering::Relaxed),
            packets_sent: s.packets_sent.load(Ordering::Relaxed),
            packets_lost: 0,
            host_latency_us: s.host_latency_us.load(Ordering::Relaxed),
        }
    }

    fn end_session(&self) {
        let farewell = self
            .shared
            .farewell
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(f) = farewell {
            f();
        }
    }

    fn stop(self: Box<Self>) {
        self.halt();
    }
}

fn video_thread(shared: &Shared, socket: &UdpSocket) {
    let _span = info_span!("native-video").entered();
    let sent = std::thread::scope(|scope| {
        let mut sender = SenderThread::<Datagrams>::spawn_counting(
            scope,
            socket,
            VideoSender::new(),
            shared.send_failures.clone(),
        )
        .context("cannot start the video sender thread")?;
        let result = if shared.config.synthetic_kbps > 0 {
            run_synthetic(shared, &mut sender)
        } else {
            run_video(shared, &mut sender)
        };
        let finished = sender.finish();
        result.and(finished)
    });
    if let Err(e) = sent {
        warn!(err = %format!("{e:#}"), "the native video stream failed");
        shared.end(EndReason::EncoderFailed(format!("{e:#}")));
    }
}

/// Seals `frame` and hands it to the sender; counts it.
fn send_frame(
    shared: &Shared,
    sender: &mut SenderThread<'_, Datagrams>,
    sealer: &mut FrameSealer,
    frame: &[u8],
    (index, rendered_at, keyframe, encode): (u32, Instant, bool, Duration),
    pacing: Pacing,
) -> anyhow::Result<()> {
    let mut datagrams = sender.buffer();
    let fec = Protection {
        percent: shared.fec_percent.load(Ordering::Relaxed),
        loss_ppm: shared.loss_ppm.load(Ordering::Relaxed),
    };
    sealer.seal_frame(
        frame,
        FrameInfo::new(index, shared.ns_of(rendered_at), keyframe)
            .encoded_in(u32::try_from(encode.as_micros()).unwrap_or(u32::MAX)),
        fec,
        &mut datagrams,
    )?;
    let count = datagrams.len() as u64;
    shared.loss().handle_sent(Instant::now(), datagrams.len());
    let spread = pacing.duration(datagrams.len(), datagrams.datagram_len());
    let leaves = sender.starts_at(Instant::now()) + spread;
    shared.host_latency_us.store(
        leaves.saturating_duration_since(rendered_at).as_micros() as u64,
        Ordering::Relaxed,
    );
    shared.frames_sent.fetch_add(1, Ordering::Relaxed);
    shared
        .video_bytes_sent
        .fetch_add(frame.len() as u64, Ordering::Relaxed);
    shared.packets_sent.fetch_add(count, Ordering::Relaxed);
    sender.send(OutgoingFrame {
        dest: shared.config.dest,
        datagrams,
        pacing,
    })
}

fn pacing(shared: &Shared, bitrate_kbps: u32, fps: u32) -> Pacing {
    let fec = u64::from(shared.fec_percent.load(Ordering::Relaxed));
    Pacing {
        bitrate_bps: u64::from(bitrate_kbps) * 1000 * (100 + fec) / 100,
        frame_interval: Duration::from_secs_f64(1.0 / f64::from(fps.max(1))),
    }
}

fn run_video(shared: &Shared, sender: &mut SenderThread<'_, Datagrams>) -> anyhow::Result<()> {
    let config = &shared.config;
    let mut sealer = FrameSealer::new(&config.key, Plane::Video, config.shard_payload)?;
    sealer.warm_up(256 * 1024, config.fec_percent)?;
    let mut index = 0u32;
    let mut pipeline: Option<VideoPipeline> = None;
    while !shared.stopped() {
        let changes = shared.mode_changes.load(Ordering::SeqCst);
        let (width, height, fps) = *shared.mode.lock().unwrap_or_else(|e| e.into_inner());
        let mut options = config.encoder.clone();
        (options.width, options.height, options.fps) = (width, height, fps);
        options.bitrate_kbps = shared.bitrate_kbps.load(Ordering::Relaxed);
        let pipeline = match &mut pipeline {
            Some(p) => {
                p.reopen(options, &config.hardware)?;
                p
            }
            None => pipeline.insert(VideoPipeline::open(
                &shared.compositor,
                options,
                &config.hardware,
            )?),
        };
        shared.keyframe.store(true, Ordering::SeqCst);
        info!(
            width,
            height,
            fps,
            encoder = pipeline.encoder().encoder_name(),
            "video at this mode"
        );
        let mut bitrate_changes = shared.bitrate_changes.load(Ordering::SeqCst);
        while !shared.stopped() && shared.mode_changes.load(Ordering::SeqCst) == changes {
            shared.follow_loss_control();
            let now_changes = shared.bitrate_changes.load(Ordering::SeqCst);
            if now_changes != bitrate_changes {
                bitrate_changes = now_changes;
                let kbps = shared.bitrate_kbps.load(Ordering::Relaxed);
                if !pipeline.set_bitrate(kbps) {
                    shared
                        .bitrate_kbps
                        .store(pipeline.encoder().bitrate_kbps(), Ordering::Relaxed);
                }
            }
            let Some(rendered_at) = pipeline.next_picture(&shared.keyframe, || true) else {
                continue;
            };
            let keyframe = shared.keyframe.swap(false, Ordering::SeqCst);
            let encode_started = Instant::now();
            let Some(encoded) = pipeline.encode(keyframe)? else {
                continue;
            };
            // The client is told the encoder's share of the frame's way (at least 1 µs, as 0
            // means "not said").
            let encode = encode_started.elapsed().max(Duration::from_micros(1));
            *shared
                .video_encoder
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(pipeline.encoder().encoder_name());
            let pacing = pacing(shared, pipeline.encoder().bitrate_kbps(), fps);
            let result = send_frame(
                shared,
                sender,
                &mut sealer,
                &encoded.data,
                (index, rendered_at, encoded.is_idr, encode),
                pacing,
            );
            pipeline.recycle(encoded);
            result?;
            index = index.wrapping_add(1);
        }
    }
    Ok(())
}

/// Frames of filler at the configured rate, one per frame interval, for transport tests.
fn run_synthetic(shared: &Shared, sender: &mut SenderThread<'_, Datagrams>) -> anyhow::Result<()> {
    let config = &shared.config;
    let fps = config.encoder.fps.max(1);
    let kbps = config.synthetic_kbps;
    let frame_len =
        (u64::from(kbps) * 1000 / 8 / u64::from(fps)).clamp(1, MAX_SYNTHETIC_FRAME) as usize;
    let mut frame: Vec<u8> = (0..frame_len).map(|i| (i * 31 + 7) as u8).collect();
    let mut sealer = FrameSealer::new(&config.key, Plane::Video, config.shard_payload)?;
    sealer.warm_up(frame_len, config.fec_percent)?;
    *shared
        .video_encoder
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some("synthetic");
    shared.bitrate_kbps.store(kbps, Ordering::Relaxed);
    info!(kbps, fps, frame_bytes = frame_len, "synthetic stream");
    let interval = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut next = Instant::now();
    let mut index = 0u32;
    while !shared.stopped() {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        // Each frame differs: its index in its first bytes.
        frame[..4.min(frame_len)].copy_from_slice(&index.to_le_bytes()[..4.min(frame_len)]);
        let pacing = pacing(shared, kbps, fps);
        send_frame(
            shared,
            sender,
            &mut sealer,
            &frame,
            (index, Instant::now(), index == 0, Duration::ZERO),
            pacing,
        )?;
        index = index.wrapping_add(1);
    }
    Ok(())
}

fn audio_thread(shared: &Shared, socket: &UdpSocket) {
    let _span = info_span!("native-audio").entered();
    let result = (|| {
        let mut sealer = FrameSealer::new(&shared.config.key, Plane::Audio, 1400)?;
        let mut out = Datagrams::new();
        let mut index = 0u32;
        crate::pipeline::run_audio(
            shared.config.audio.as_ref(),
            shared.config.audio_settings,
            || shared.stopped(),
            |opus| {
                sealer.seal_frame(
                    opus,
                    FrameInfo::new(index, monotonic_ns(), false),
                    0,
                    &mut out,
                )?;
                index = index.wrapping_add(1);
                for d in out.iter() {
                    if socket.send_to(d, shared.config.dest).is_err() {
                        shared.send_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            },
        )
    })();
    if let Err(e) = result {
        warn!(err = %format!("{e:#}"), "native audio stopped");
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::HostMessage;

    use super::*;

    #[test]
    fn rumble_a_game_plays_becomes_a_notice_for_the_clients_pad() {
        let notices: NoticeSink = Arc::default();
        let sink = rumble_sink(notices.clone());
        let got = Arc::new(Mutex::new(Vec::new()));
        {
            let got = got.clone();
            *notices.lock().unwrap() = Some(Box::new(move |n| got.lock().unwrap().push(n)));
        }
        sink(HostMessage::Rumble {
            controller: 2,
            low_freq: 0xC000,
            high_freq: 0x4000,
        });
        sink(HostMessage::Rumble {
            controller: 2,
            low_freq: 0,
            high_freq: 0,
        });
        // A controller number no pad index can name, and feedback punktfunk/1 does not carry.
        sink(HostMessage::Rumble {
            controller: 300,
            low_freq: 1,
            high_freq: 1,
        });
        sink(HostMessage::Termination { code: 0 });
        assert_eq!(
            *got.lock().unwrap(),
            [
                Notice::Rumble {
                    pad: 2,
                    low: 0xC000,
                    high: 0x4000
                },
                Notice::Rumble {
                    pad: 2,
                    low: 0,
                    high: 0
                },
            ]
        );
    }
}
