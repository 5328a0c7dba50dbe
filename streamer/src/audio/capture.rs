//! Recording a sink's monitor, one packet of PCM at a time.

use anyhow::{ensure, Context as _, Result};
use libpulse_binding::channelmap::Map;
use libpulse_binding::def::BufferAttr;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::Direction;
use libpulse_simple_binding::Simple;
use tracing::debug;

use super::{channel_map, AudioSource};
use crate::encode::{ChannelLayout, AUDIO_SAMPLE_RATE as SAMPLE_RATE};

/// More audio than this waiting in the server's buffer (the reader fell behind: a stall, an
/// overloaded machine) is dropped, so that what the client hears stays close to what plays.
const MAX_BACKLOG_US: u64 = 60_000;

/// How often (in reads) the backlog is checked.
const BACKLOG_CHECK_EVERY: u32 = 100;

/// A recording stream on a source, delivering 48 kHz signed 16-bit PCM in GameStream's channel
/// order. Reads block until a whole packet has been recorded, so the reader runs on the sound
/// server's clock.
pub struct Capture {
    simple: Simple,
    bytes: Vec<u8>,
    channels: usize,
    reads: u32,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens a recording of `source` in `layout`, handing out `frame_samples` samples per
    /// channel per read. If the source has another layout, the server remixes by speaker
    /// position.
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
        let fragment = (frame_samples * channels * 2) as u32;
        // Fragments of one packet: the server hands over audio as soon as a packet is complete.
        let attr = BufferAttr {
            maxlength: u32::MAX,
            tlength: u32::MAX,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: fragment,
        };
        let simple = Simple::new(
            Some(source.server.address()),
            "punktfunk",
            Direction::Record,
            Some(&source.source),
            "stream capture",
            &spec,
            Some(&map),
            Some(&attr),
        )
        .with_context(|| format!("cannot record {} on {}", source.source, source.server))?;
        Ok(Capture {
            simple,
            bytes: vec![0; fragment as usize],
            channels,
            reads: 0,
        })
    }

    /// Interleaved channels per sample frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Blocks until `pcm.len()` samples (a multiple of the channel count) have been recorded
    /// and writes them to `pcm`.
    pub fn read(&mut self, pcm: &mut [i16]) -> Result<()> {
        let frames = pcm.len() / self.channels;
        ensure!(
            frames * self.channels == pcm.len(),
            "{} samples is not whole frames",
            pcm.len()
        );
        self.bytes.resize(pcm.len() * 2, 0);
        self.simple
            .read(&mut self.bytes)
            .context("audio capture failed")?;
        for (s, b) in pcm.iter_mut().zip(self.bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        self.reads += 1;
        if self.reads == BACKLOG_CHECK_EVERY {
            self.reads = 0;
            self.limit_backlog();
        }
        Ok(())
    }

    /// Drops what waits beyond [`MAX_BACKLOG_US`].
    fn limit_backlog(&mut self) {
        let Ok(latency) = self.simple.get_latency() else {
            return;
        };
        if latency.0 > MAX_BACKLOG_US {
            debug!(
                latency_us = latency.0,
                "audio capture fell behind; dropping the backlog"
            );
            let _ = self.simple.flush();
        }
    }
}
