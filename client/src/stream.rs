//! `stream`: the handshake, the control loop while the data plane runs, and the report.
//!
//! The control loop runs on the async runtime and owns the sending half of the control stream;
//! a task reads the host's messages. The data plane ([`crate::data`]) and the decoder
//! ([`crate::decode`]) run on their own threads and tell the loop about the first frame and
//! about losses through a channel.
//!
//! Times given on the command line (`--seconds`, `--reconfigure …@T`) count from the first video
//! frame, so that an app's start-up does not eat into them; `--type` waits 1 s after the first
//! decoded frame.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use protocol::native::control::{
    BitrateReason, CloseCode, Hello, Message, MessageDecoder, Mode, VideoCaps,
};
use protocol::native::input::{InputEvent, MAX_TEXT_LEN};
use protocol::native::{DataKey, DEFAULT_SHARD_PAYLOAD};
use protocol::pairing::HostIdentity;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::args::{mode_string, split_enter, StreamArgs};
use crate::audio::AudioDecoder;
use crate::clock::{best_offset, monotonic_ns, ClockSample};
use crate::data::{self, LiveCounters, Notice, Receiver};
use crate::decode::{Decoder, Output};
use crate::quic::{self, HostTrust};
use crate::report::{FrameTime, Report};

/// Clock probes sent after `Start`, and the time between them.
const CLOCK_PROBES: u32 = 8;
const PROBE_SPACING: Duration = Duration::from_millis(25);
/// Rumble messages the report keeps (the last ones).
const MAX_RUMBLE_KEPT: usize = 1000;
const LOSS_REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// How long the first video frame may take (an app's start included).
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Keyframe requests closer together than this are one request.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(100);
/// How long after the first decoded frame `--type` types.
const TYPE_DELAY: Duration = Duration::from_secs(1);

/// How a stream ended.
#[derive(Debug)]
enum End {
    TimeUp,
    Interrupted,
    AppExited(String),
    HostClosed(CloseCode, String),
    Failed(anyhow::Error),
}

/// Runs a stream; writes the report (`--json`) however it ends.
pub(crate) async fn run(
    args: StreamArgs,
    identity: &HostIdentity,
    trust: HostTrust,
    client_name: String,
) -> anyhow::Result<()> {
    let output = args.output.as_deref().map(Output::from_path).transpose()?;
    let mut report = Report {
        synthetic: args.synthetic_kbps > 0,
        ..Report::default()
    };
    let result = stream(&args, identity, trust, client_name, output, &mut report).await;
    if let Err(e) = &result {
        if report.close.is_empty() {
            report.close = "error".into();
            report.close_reason = format!("{e:#}");
        }
    }
    if let Some(path) = &args.json {
        let mut text = serde_json::to_string_pretty(&report.to_json())?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.frame_times {
        std::fs::write(path, report.frame_times_csv())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "{} frames received, {} decoded, {} lost, {} recovered by FEC, {:.0} kbit/s; {}",
        report.frames_received,
        report.frames_decoded,
        report.frames_lost,
        report.fec_recovered,
        report.bitrate_kbps(),
        report.close
    );
    result
}

async fn stream(
    args: &StreamArgs,
    identity: &HostIdentity,
    trust: HostTrust,
    client_name: String,
    output: Option<Output>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut control = quic::connect(&args.host, identity, trust).await?;
    let hello = Hello {
        mode: args.mode.0,
        bitrate_kbps: args.bitrate,
        client_name,
        app: args.app.clone(),
        codecs: args.codec.codecs(),
        video_caps: VideoCaps(0),
        audio_channels: 2,
        max_shard_payload: DEFAULT_SHARD_PAYLOAD,
        synthetic_kbps: args.synthetic_kbps,
    };
    control.send(&Message::Hello(hello)).await?;
    let welcome = match control.recv().await {
        Ok(Message::Welcome(w)) => w,
        Ok(Message::Close { code, reason }) => {
            report.close = close_name(code).into();
            report.close_reason = reason.clone();
            control.finish().await;
            return Err(crate::closed_by_host(&args.host, code, &reason));
        }
        Ok(other) => {
            control.finish().await;
            bail!("the host answered Hello with {other:?}");
        }
        Err(e) => {
            control.finish().await;
            return Err(e);
        }
    };
    report.mode = mode_string(&welcome.mode);
    report.codec = format!("{:?}", welcome.codec).to_ascii_lowercase();
    if !report.synthetic && welcome.codec != args.codec.codec() {
        eprintln!(
            "the host chose {:?} instead of {:?}",
            welcome.codec,
            args.codec.codec()
        );
    }
    let key = DataKey::new(welcome.data_key, welcome.data_salt)
        .context("the host sent an unusable data key")?;

    let socket = data::bind_socket(control.connection.remote_address().ip())?;
    let port = socket.local_addr()?.port();
    let (notice_tx, mut notices) = mpsc::unbounded_channel();
    let (decoder, frames) = if report.synthetic {
        (None, None)
    } else {
        let (d, tx) = Decoder::spawn(
            welcome.codec,
            welcome.mode,
            welcome.colour,
            output,
            notice_tx.clone(),
        )?;
        (Some(d), Some(tx))
    };
    let live = Arc::new(LiveCounters::default());
    let audio = AudioDecoder::new(&welcome.audio, args.audio_output.is_some())?;
    let receiver = Receiver::spawn(socket, &key, frames, Some(audio), notice_tx, live.clone())?;

    let decoder_state = control.take_decoder();
    let quic::Control {
        endpoint,
        connection,
        mut send,
        recv,
        ..
    } = control;
    let (msg_tx, mut messages) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_messages(recv, decoder_state, msg_tx));

    let mut run = Loop {
        args,
        connection: &connection,
        live,
        started: Instant::now(),
        first_frame: None,
        end_at: None,
        type_at: None,
        reconfigure_at: Vec::new(),
        probes_sent: 0,
        pending_probes: Vec::new(),
        samples: Vec::new(),
        next_loss_report: None,
        last_counts: (0, 0, 0, 0),
        last_keyframe_request: None,
        report,
    };
    let end = match quic::send_message(
        &mut send,
        &Message::Start {
            client_udp_port: port,
        },
    )
    .await
    {
        Ok(()) => {
            run.started = Instant::now();
            run.next_loss_report = Some(run.started + LOSS_REPORT_INTERVAL);
            run.drive(&mut send, &mut messages, &mut notices).await
        }
        Err(e) => End::Failed(e),
    };
    let report = run.report;
    let samples = run.samples;

    // Tell the host, unless it ended the stream.
    let close = match &end {
        End::TimeUp | End::Interrupted if args.quit => Some((CloseCode::QuitStopApp, "")),
        End::TimeUp | End::Interrupted => Some((CloseCode::Normal, "")),
        End::Failed(_) => Some((CloseCode::Error, "client error")),
        End::AppExited(_) | End::HostClosed(..) => None,
    };
    if let Some((code, reason)) = close {
        let _ = quic::send_message(
            &mut send,
            &Message::Close {
                code,
                reason: reason.into(),
            },
        )
        .await;
    }
    quic::close(&mut send, &connection, &endpoint).await;
    reader.abort();

    let received = receiver.stop();
    let decoded = match decoder {
        Some(d) => Some(d.join()?),
        None => None,
    };

    // The report.
    let offset = best_offset(&samples);
    report.clock_offset_ns = offset.map(|o| o.0);
    report.clock_rtt_ns = offset.map(|o| o.1);
    let skew = offset.map_or(0, |o| o.0);
    let latency = |(client_ns, pts): (u64, u64)| (client_ns as i64 + skew - pts as i64) / 1000;
    report.frames_received = received.frames_received;
    report.frames_lost = received.frames_lost;
    report.fec_recovered = received.fec_recovered;
    report.keyframes = received.keyframes;
    report.frame_number_gaps = received.frame_number_gaps;
    report.video_bytes = received.video_bytes;
    report.video_seconds = match (received.first_frame, received.last_frame) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    report.audio_frames = received.audio_frames;
    report.audio_lost = received.audio_lost;
    if let Some(a) = &received.audio {
        report.audio_decoded = a.decoded;
        report.audio_concealed = a.concealed;
        report.audio_decode_errors = a.errors;
        if let Some(path) = &args.audio_output {
            a.write_wav(path)?;
        }
    }
    report.datagrams = received.datagrams;
    report.datagrams_dropped = received.dropped;
    report.render_to_reassembled_us = received.reassembled.iter().copied().map(latency).collect();
    let mut output_error = None;
    let mut decoded_at: HashMap<u64, u64> = HashMap::new();
    if let Some(d) = decoded {
        report.frames_decoded = d.frames_decoded;
        report.decode_errors = d.errors;
        report.resolutions = d.resolutions;
        report.render_to_decoded_us = d.decoded.iter().copied().map(latency).collect();
        output_error = d.output_error;
        decoded_at = d.decoded.iter().map(|&(at, pts)| (pts, at)).collect();
    }
    let on_host = |client_ns: u64| client_ns as i64 + skew;
    report.frame_times = received
        .reassembled
        .iter()
        .zip(&received.encode_us)
        .map(|(&(at, pts), &encode_us)| FrameTime {
            pts_ns: pts,
            reassembled_ns: on_host(at),
            decoded_ns: decoded_at.get(&pts).map(|&d| on_host(d)),
            encode_us,
        })
        .collect();
    let (name, reason) = match &end {
        End::TimeUp => ("time_up", String::new()),
        End::Interrupted => ("interrupted", String::new()),
        End::AppExited(r) => ("app_exited", r.clone()),
        End::HostClosed(code, r) => (close_name(*code), r.clone()),
        End::Failed(e) => ("error", format!("{e:#}")),
    };
    report.close = name.into();
    report.close_reason = reason;

    match end {
        End::TimeUp | End::Interrupted => {}
        End::AppExited(_) if report.frames_received > 0 => {}
        End::AppExited(r) => bail!("the app exited before the first frame: {r}"),
        End::HostClosed(code, r) => return Err(crate::closed_by_host(&args.host, code, &r)),
        End::Failed(e) => return Err(e),
    }
    if let Some(e) = output_error {
        bail!("{e}");
    }
    Ok(())
}

fn close_name(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "host_closed",
        CloseCode::QuitStopApp => "host_quit",
        CloseCode::AppExited => "app_exited",
        CloseCode::Error => "host_error",
        CloseCode::NotPaired => "not_paired",
        CloseCode::Other(_) => "host_closed",
    }
}

/// Forwards the host's messages; an error or the stream's end is the last item.
async fn read_messages(
    mut recv: quinn::RecvStream,
    mut decoder: MessageDecoder,
    tx: mpsc::UnboundedSender<anyhow::Result<Message>>,
) {
    loop {
        let item = match quic::recv_message(&mut recv, &mut decoder).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(anyhow!("the host closed the control stream")),
            Err(e) => Err(e),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

struct Loop<'a> {
    args: &'a StreamArgs,
    connection: &'a quinn::Connection,
    live: Arc<LiveCounters>,
    started: Instant,
    first_frame: Option<Instant>,
    end_at: Option<Instant>,
    type_at: Option<Instant>,
    /// Mode changes still to ask for, soonest last.
    reconfigure_at: Vec<(Instant, Mode)>,
    probes_sent: u32,
    pending_probes: Vec<u64>,
    samples: Vec<ClockSample>,
    next_loss_report: Option<Instant>,
    /// Live counters at the last loss report: received, expected, lost, recovered.
    last_counts: (u64, u64, u64, u64),
    last_keyframe_request: Option<Instant>,
    report: &'a mut Report,
}

impl Loop<'_> {
    async fn drive(
        &mut self,
        send: &mut quinn::SendStream,
        messages: &mut mpsc::UnboundedReceiver<anyhow::Result<Message>>,
        notices: &mut mpsc::UnboundedReceiver<Notice>,
    ) -> End {
        loop {
            let deadline = self.next_deadline();
            let sleep = tokio::time::sleep_until(deadline);
            let step = tokio::select! {
                m = messages.recv() => match m {
                    Some(Ok(m)) => self.handle_message(m),
                    Some(Err(e)) => Err(End::Failed(e)),
                    None => Err(End::Failed(anyhow!("the control stream ended"))),
                },
                Some(n) = notices.recv() => self.handle_notice(send, n).await,
                () = sleep => self.handle_timers(send).await,
                _ = tokio::signal::ctrl_c() => Err(End::Interrupted),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let probe = (self.probes_sent < CLOCK_PROBES)
            .then(|| self.started + PROBE_SPACING * self.probes_sent);
        let first_frame = self
            .first_frame
            .is_none()
            .then(|| self.started + FIRST_FRAME_TIMEOUT);
        [
            probe,
            first_frame,
            self.end_at,
            self.type_at,
            self.reconfigure_at.last().map(|r| r.0),
            self.next_loss_report,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn handle_message(&mut self, m: Message) -> Result<(), End> {
        match m {
            Message::Reconfigured { accepted, mode } => {
                if accepted {
                    self.report.reconfigured.push(mode_string(&mode));
                } else {
                    eprintln!("the host kept {}", mode_string(&mode));
                }
            }
            Message::ClockEcho { t1, t2, t3 } => {
                let t4 = monotonic_ns();
                if let Some(i) = self.pending_probes.iter().position(|&p| p == t1) {
                    self.pending_probes.swap_remove(i);
                    self.samples.push(ClockSample { t1, t2, t3, t4 });
                }
            }
            Message::Close { code, reason } => {
                return Err(match code {
                    CloseCode::AppExited => End::AppExited(reason),
                    code => End::HostClosed(code, reason),
                });
            }
            Message::BitrateChanged { kbps, reason } => {
                let reason = match reason {
                    BitrateReason::Requested => "requested".to_string(),
                    BitrateReason::Congestion => "congestion".to_string(),
                    BitrateReason::HostLimit => "host_limit".to_string(),
                    BitrateReason::Other(n) => format!("other ({n})"),
                };
                self.report.bitrate_changes.push((kbps, reason));
            }
            Message::Rumble { pad, low, high } => {
                // The last ones, should a game keep rumbling for hours.
                if self.report.rumble.len() >= MAX_RUMBLE_KEPT {
                    self.report.rumble.remove(0);
                }
                self.report.rumble.push((pad, low, high));
            }
            // Messages of later versions change nothing here.
            _ => {}
        }
        Ok(())
    }

    async fn handle_notice(&mut self, send: &mut quinn::SendStream, n: Notice) -> Result<(), End> {
        let now = Instant::now();
        match n {
            Notice::FirstFrame => {
                self.first_frame = Some(now);
                self.end_at = self
                    .args
                    .seconds
                    .map(|s| now + Duration::from_secs_f64(s.max(0.0)));
                let mut r: Vec<_> = self
                    .args
                    .reconfigure
                    .iter()
                    .map(|r| (now + r.after, r.mode))
                    .collect();
                r.sort_by_key(|x| std::cmp::Reverse(x.0));
                self.reconfigure_at = r;
            }
            Notice::FirstDecoded => {
                if self.args.type_text.is_some() {
                    self.type_at = Some(now + TYPE_DELAY);
                }
            }
            Notice::Lost => {
                if self
                    .last_keyframe_request
                    .is_none_or(|t| now.duration_since(t) >= KEYFRAME_REQUEST_GAP)
                {
                    self.last_keyframe_request = Some(now);
                    self.report.keyframe_requests += 1;
                    self.send(send, &Message::RequestKeyframe).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle_timers(&mut self, send: &mut quinn::SendStream) -> Result<(), End> {
        let now = Instant::now();
        if self.end_at.is_some_and(|t| t <= now) {
            return Err(End::TimeUp);
        }
        if self.first_frame.is_none() && now >= self.started + FIRST_FRAME_TIMEOUT {
            return Err(End::Failed(anyhow!(
                "no video frame arrived in {} s",
                FIRST_FRAME_TIMEOUT.as_secs()
            )));
        }
        while self.probes_sent < CLOCK_PROBES
            && self.started + PROBE_SPACING * self.probes_sent <= now
        {
            self.probes_sent += 1;
            let t1 = monotonic_ns();
            self.pending_probes.push(t1);
            self.send(send, &Message::ClockProbe { t1 }).await?;
        }
        while self.reconfigure_at.last().is_some_and(|r| r.0 <= now) {
            if let Some((_, mode)) = self.reconfigure_at.pop() {
                self.send(send, &Message::Reconfigure { mode }).await?;
            }
        }
        if self.type_at.is_some_and(|t| t <= now) {
            self.type_at = None;
            self.type_text().map_err(End::Failed)?;
        }
        if self.next_loss_report.is_some_and(|t| t <= now) {
            self.next_loss_report = Some(now + LOSS_REPORT_INTERVAL);
            let report = self.loss_report();
            self.send(send, &report).await?;
        }
        Ok(())
    }

    async fn send(&mut self, send: &mut quinn::SendStream, m: &Message) -> Result<(), End> {
        quic::send_message(send, m).await.map_err(End::Failed)
    }

    /// The loss since the last report.
    fn loss_report(&mut self) -> Message {
        let counts = self.live_counts();
        let (r0, e0, l0, f0) = self.last_counts;
        self.last_counts = counts;
        let (received, expected) = (counts.0 - r0, counts.1.saturating_sub(e0));
        let lost = expected.saturating_sub(received);
        let loss_ppm = (lost * 1_000_000)
            .checked_div(expected)
            .map_or(0, |ppm| ppm.min(1_000_000) as u32);
        Message::LossReport {
            loss_ppm,
            frames_lost: (counts.2 - l0) as u32,
            frames_recovered: (counts.3 - f0) as u32,
        }
    }

    fn live_counts(&self) -> (u64, u64, u64, u64) {
        let l = &self.live;
        (
            l.received.load(Ordering::Relaxed),
            l.expected.load(Ordering::Relaxed),
            l.frames_lost.load(Ordering::Relaxed),
            l.frames_recovered.load(Ordering::Relaxed),
        )
    }

    /// Sends `--type`'s text (and Enter) as input datagrams.
    fn type_text(&mut self) -> anyhow::Result<()> {
        let Some(text) = &self.args.type_text else {
            return Ok(());
        };
        let (text, enter) = split_enter(text);
        let max = self
            .connection
            .max_datagram_size()
            .context("the host takes no input datagrams")?;
        for d in input_datagrams(text, enter, max)? {
            self.connection
                .send_datagram(d.into())
                .context("cannot send input")?;
        }
        Ok(())
    }
}

/// The input datagrams that type `text` (and press Enter): text events of at most
/// [`MAX_TEXT_LEN`] bytes cut on character boundaries, packed into datagrams of at most `max`
/// bytes.
pub(crate) fn input_datagrams(text: &str, enter: bool, max: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut events = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_TEXT_LEN);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        events.push(InputEvent::Text(rest[..cut].to_owned()));
        rest = &rest[cut..];
    }
    if enter {
        const KEY_ENTER: u16 = 28;
        events.push(InputEvent::Key {
            code: KEY_ENTER,
            down: true,
        });
        events.push(InputEvent::Key {
            code: KEY_ENTER,
            down: false,
        });
    }
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    for e in events {
        let mut one = Vec::new();
        e.encode(&mut one).context("cannot encode input")?;
        if one.len() > max {
            bail!(
                "an input event of {} bytes does not fit a datagram of {max}",
                one.len()
            );
        }
        match datagrams.last_mut() {
            Some(d) if d.len() + one.len() <= max => d.extend_from_slice(&one),
            _ => datagrams.push(one),
        }
    }
    Ok(datagrams)
}

#[cfg(test)]
mod tests {
    use protocol::native::input;

    use super::*;

    fn events(datagrams: &[Vec<u8>]) -> Vec<InputEvent> {
        datagrams
            .iter()
            .flat_map(|d| input::decode(d).map(|e| e.unwrap()).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn text_then_enter_in_one_datagram() {
        let d = input_datagrams("hello", true, 1200).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            events(&d),
            [
                InputEvent::Text("hello".into()),
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
    }

    #[test]
    fn long_text_is_cut_on_character_boundaries() {
        let text = "ä".repeat(300);
        let d = input_datagrams(&text, false, 300).unwrap();
        assert!(d.len() >= 3 && d.iter().all(|d| d.len() <= 300));
        let typed: String = events(&d)
            .into_iter()
            .map(|e| match e {
                InputEvent::Text(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(typed, text);
    }
}
