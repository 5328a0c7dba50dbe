//! The video encode pipeline every protocol drives: the compositor's newest frame, converted into
//! the stream's picture (only the rows that changed), encoded.
//!
//! A protocol's video thread runs the pipeline in two steps per frame, so that it can leave a
//! frame unencoded while nobody receives it:
//!
//! 1. [`VideoPipeline::next_picture`] waits up to one frame interval for a new frame and converts
//!    it. When nothing changed on screen it offers the last picture again now and then (and at
//!    once when a keyframe is due), so that a client sees a live stream;
//! 2. [`VideoPipeline::encode`] encodes that picture, a keyframe where asked.
//!
//! What happens to the encoded frame (GameStream's RTP packets with FEC, punktfunk/1's sealed
//! shards) is the protocol's business; it hands the frame's buffer back with
//! [`VideoPipeline::recycle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use compositor::{CompositorHandle, FrameReceiver};
use tracing::{trace, warn};

use crate::encode::{
    Colorspace, EncodedFrame, EncoderOptions, HardwareOptions, Picture, StreamPicture, VideoEncoder,
};

/// How long an unchanged screen goes without a frame before the last picture is sent again.
const REPEAT_INTERVAL: Duration = Duration::from_millis(500);

/// The compositor's frames on their way to encoded video at one mode.
pub struct VideoPipeline {
    frames: FrameReceiver,
    encoder: VideoEncoder,
    picture: StreamPicture,
    colorspace: Colorspace,
    frame_interval: Duration,
    last_sent: Instant,
}

impl VideoPipeline {
    /// Opens the encoder `options` describe (a GPU one where `hw` allows and one works) and a
    /// picture of its size, and starts taking the compositor's frames.
    pub fn open(
        compositor: &Arc<CompositorHandle>,
        options: EncoderOptions,
        hw: &HardwareOptions,
    ) -> anyhow::Result<Self> {
        let colorspace = options.colorspace;
        let frame_interval = Duration::from_secs_f64(1.0 / f64::from(options.fps.max(1)));
        let encoder = VideoEncoder::open(options, hw).context("error creating the encoder")?;
        let o = encoder.options();
        let picture = StreamPicture::new(Picture::new(o.chroma, o.depth, o.width, o.height)?);
        Ok(Self {
            frames: compositor.frames(),
            encoder,
            picture,
            colorspace,
            frame_interval,
            last_sent: Instant::now(),
        })
    }

    /// The encoder, for its name, bitrate and options.
    pub fn encoder(&self) -> &VideoEncoder {
        &self.encoder
    }

    /// Asks the encoder for a new bitrate; `false` where it cannot change it while streaming.
    pub fn set_bitrate(&mut self, kbps: u32) -> bool {
        self.encoder.set_bitrate(kbps)
    }

    /// One frame interval at the stream's rate.
    pub fn frame_interval(&self) -> Duration {
        self.frame_interval
    }

    /// Waits up to one frame interval for the compositor's next frame and converts it into the
    /// picture; returns when it was rendered. Returns `None` when there is nothing to encode
    /// now: no new frame (and no repeat due), a frame of another mode, or `receiving()` says
    /// nobody would get the frame. Where `keyframe_due` is set, the frame is converted whole, so
    /// that nothing an app left out of its damage lingers past the keyframe, and an unchanged
    /// screen is offered again at once.
    pub fn next_picture(
        &mut self,
        keyframe_due: &AtomicBool,
        receiving: impl Fn() -> bool,
    ) -> Option<Instant> {
        let (width, height) = {
            let o = self.encoder.options();
            (o.width, o.height)
        };
        match self.frames.recv_timeout(self.frame_interval) {
            Some(frame) => {
                if frame.width != width || frame.height != height {
                    trace!(
                        w = frame.width,
                        h = frame.height,
                        "frame of another mode; skipped"
                    );
                    self.picture.invalidate();
                    return None;
                }
                if !receiving() {
                    return None;
                }
                if keyframe_due.load(Ordering::Relaxed) {
                    self.picture.invalidate();
                }
                // Converting is the last use of the frame: dropping it right after hands a
                // client's buffer back to the client before the encode starts.
                match self.picture.convert(&frame, self.colorspace) {
                    Ok(rows) => trace!(seq = frame.seq, rows, "frame converted"),
                    Err(err) => {
                        warn!(err = %format!("{err:#}"), "frame skipped");
                        return None;
                    }
                }
                Some(frame.rendered_at)
            }
            None => {
                let due = keyframe_due.load(Ordering::Relaxed)
                    || self.last_sent.elapsed() > REPEAT_INTERVAL;
                (self.picture.holds_frame() && due).then(Instant::now)
            }
        }
    }

    /// Encodes the picture [`VideoPipeline::next_picture`] prepared, as a keyframe where
    /// `keyframe` is set. `None` where the encoder holds the frame back.
    pub fn encode(&mut self, keyframe: bool) -> anyhow::Result<Option<EncodedFrame>> {
        let encoded = self
            .encoder
            .encode_picture(self.picture.picture(), keyframe)?;
        if encoded.is_some() {
            self.last_sent = Instant::now();
        }
        Ok(encoded)
    }

    /// Hands an encoded frame's buffer back for the next frame.
    pub fn recycle(&mut self, frame: EncodedFrame) {
        self.encoder.recycle(frame);
    }
}
