//! Recording a sink's monitor, one packet of PCM at a time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use libpulse_binding::channelmap::Map;
use libpulse_binding::context;
use libpulse_binding::def::BufferAttr;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::{self, PeekResult, Stream};
use libpulse_binding::time::MicroSeconds;
use tracing::debug;

use super::sink::{step, Connection};
use super::{channel_map, AudioSource};
use crate::encode::{ChannelLayout, AUDIO_SAMPLE_RATE as SAMPLE_RATE};

/// More audio than this waiting to be read (the reader fell behind: a stall, an overloaded
/// machine) is dropped, oldest first, so that what the client hears stays close to what plays.
const MAX_BACKLOG: Duration = Duration::from_millis(60);

/// How long opening the recording may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A recording stream on a source, delivering 48 kHz signed 16-bit PCM in GameStream's channel
/// order. It runs its own libpulse main loop in the caller's thread: [`Capture::read`] waits
/// for a whole packet, but never longer than it is told, so a sound server that stops
/// delivering (a suspended or unlinked PipeWire node, a hung server) cannot hang the reader.
pub struct Capture {
    // Drops before the connection whose context it belongs to.
    stream: Stream,
    conn: Connection,
    pending: VecDeque<u8>,
    channels: usize,
    max_backlog: usize,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens a recording of `source` in `layout`, asking the server for fragments of
    /// `frame_samples` samples per channel (one packet). If the source has another layout, the
    /// server remixes by speaker position.
    pub fn open(
        source: &AudioSource,
        layout: ChannelLayout,
        frame_samples: usize,
    ) -> Result<Capture> {
        let channels = layout.channels();
        let spec = Spec {
            format: Format::S16le,
            rate: SAMPLE_RATE,
            channels: channels as u8,
        };
        ensure!(spec.is_valid(), "invalid sample spec {spec:?}");
        let map = Map::new_from_string(channel_map(layout))
            .map_err(|()| anyhow::anyhow!("invalid channel map {}", channel_map(layout)))?;
        let frame_bytes = frame_samples * channels * 2;
        let mut conn = Connection::open(&source.server)?;
        let mut stream = Stream::new(&mut conn.context, "stream capture", &spec, Some(&map))
            .context("cannot create a libpulse record stream")?;
        // Fragments of one packet: the server hands over audio as soon as a packet is complete.
        let attr = BufferAttr {
            maxlength: u32::MAX,
            tlength: u32::MAX,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: frame_bytes as u32,
        };
        stream
            .connect_record(
                Some(&source.source),
                Some(&attr),
                stream::FlagSet::ADJUST_LATENCY,
            )
            .with_context(|| format!("cannot record {} on {}", source.source, source.server))?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            match stream.get_state() {
                stream::State::Ready => break,
                stream::State::Failed | stream::State::Terminated => bail!(
                    "cannot record {} on {}: {}",
                    source.source,
                    source.server,
                    conn.context.errno()
                ),
                _ => {}
            }
            step(&mut conn.mainloop, deadline, "opening the recording")?;
        }
        let max_backlog =
            (MAX_BACKLOG.as_micros() as usize * SAMPLE_RATE as usize / 1_000_000) * channels * 2;
        Ok(Capture {
            stream,
            conn,
            pending: VecDeque::new(),
            channels,
            max_backlog,
        })
    }

    /// Interleaved channels per sample frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Waits up to `timeout` until `pcm.len()` samples (a multiple of the channel count) have
    /// been recorded and writes them to `pcm`. `Ok(false)`: nothing complete arrived in time.
    pub fn read(&mut self, pcm: &mut [i16], timeout: Duration) -> Result<bool> {
        let frames = pcm.len() / self.channels;
        ensure!(
            frames * self.channels == pcm.len(),
            "{} samples is not whole frames",
            pcm.len()
        );
        let need = pcm.len() * 2;
        let deadline = Instant::now() + timeout;
        loop {
            self.take_available()?;
            if self.pending.len() >= need {
                let mut bytes = self.pending.drain(..need);
                for s in pcm.iter_mut() {
                    // `need` is exactly two bytes per sample.
                    let (lo, hi) = (bytes.next().unwrap_or(0), bytes.next().unwrap_or(0));
                    *s = i16::from_le_bytes([lo, hi]);
                }
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.wait(deadline - now)?;
        }
    }

    /// Moves what the server has delivered into `pending`, dropping the oldest whole frames
    /// beyond the backlog limit.
    fn take_available(&mut self) -> Result<()> {
        loop {
            match self.stream.peek().context("audio capture failed")? {
                PeekResult::Empty => break,
                PeekResult::Hole(_) => {}
                PeekResult::Data(data) => self.pending.extend(data),
            }
            self.stream.discard().context("audio capture failed")?;
        }
        if self.pending.len() > self.max_backlog {
            let frame = self.channels * 2;
            let excess = (self.pending.len() - self.max_backlog).div_ceil(frame) * frame;
            debug!(
                dropped_bytes = excess,
                "audio capture fell behind; dropping the backlog"
            );
            self.pending.drain(..excess.min(self.pending.len()));
        }
        Ok(())
    }

    /// Runs the main loop until something happens or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<()> {
        match self.stream.get_state() {
            stream::State::Failed | stream::State::Terminated => {
                bail!("audio capture ended: {}", self.conn.context.errno())
            }
            _ => {}
        }
        if matches!(
            self.conn.context.get_state(),
            context::State::Failed | context::State::Terminated
        ) {
            bail!("lost the sound server: {}", self.conn.context.errno());
        }
        let ml = &mut self.conn.mainloop;
        ml.prepare(Some(MicroSeconds(
            timeout.as_micros().min(u128::from(u64::MAX)) as u64,
        )))
        .map_err(|e| anyhow::anyhow!("libpulse main loop: {e}"))?;
        ml.poll()
            .map_err(|e| anyhow::anyhow!("libpulse main loop: {e}"))?;
        ml.dispatch()
            .map_err(|e| anyhow::anyhow!("libpulse main loop: {e}"))?;
        Ok(())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.stream.disconnect();
    }
}
