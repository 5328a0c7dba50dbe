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
//! [`run_audio`] does the same for sound: the session's sink recorded and encoded, one Opus
//! packet per packet duration.
//!
//! What happens to the encoded frame (GameStream's RTP packets with FEC, punktfunk/1's sealed
//! shards) is the protocol's business; it hands the frame's buffer back with
//! [`VideoPipeline::recycle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use compositor::{CompositorHandle, Frame, FrameData, FrameReceiver, YuvImage};
use tracing::{debug, info, trace, warn};

use crate::audio::{AudioSource, Capture};
use crate::encode::{
    AudioEncoder, AudioOptions, BitDepth, ChannelLayout, Colorspace, EncodedFrame, EncoderOptions,
    HardwareOptions, OnGpu, Picture, StreamPicture, VideoEncoder,
};

/// How long the audio capture may deliver nothing before silence fills in. Longer than a sound
/// server's slowest regular delivery (PipeWire hands over up to a 2048-sample quantum, 43 ms),
/// with room for a loaded machine.
const CAPTURE_STALL: Duration = Duration::from_millis(200);

/// A fresh recording may take this long to start delivering without it being worth a warning: an
/// idle null sink in PulseAudio wakes up only at the end of its current (up to 2 s) block.
const CAPTURE_START_GRACE: Duration = Duration::from_secs(3);

/// How long an unchanged screen goes without a frame before the last picture is sent again.
const REPEAT_INTERVAL: Duration = Duration::from_millis(500);

/// The compositor's frames on their way to encoded video at one mode.
pub struct VideoPipeline {
    /// The compositor, told the bit depth frames are wanted in (not kept alive by the stream).
    compositor: Weak<CompositorHandle>,
    frames: FrameReceiver,
    /// The newest frame of another mode: after a mode change the compositor may render the
    /// new mode once and then nothing while the screen stands still, so
    /// [`VideoPipeline::reopen`] starts from it.
    other_mode: Option<Frame>,
    encoder: VideoEncoder,
    picture: StreamPicture,
    /// The newest frame converted on the GPU and left there, for an encoder that takes it
    /// there (NVENC through CUDA, VAAPI); while set, [`VideoPipeline::encode`] sends it rather than
    /// `picture`, which then holds no frame.
    image: Option<(Arc<YuvImage>, u64)>,
    /// Whether frames reach the encoder that way.
    images: OnGpu,
    /// The render node the compositor renders on, for the encoders of this pipeline.
    frames_on: Option<std::path::PathBuf>,
    /// A keyframe was asked for and not sent (the frame was lost): the next frame is one.
    keyframe_owed: bool,
    colorspace: Colorspace,
    frame_interval: Duration,
    last_sent: Instant,
}

impl VideoPipeline {
    /// Opens the encoder `options` describe (a GPU one where `hw` allows and one works) and a
    /// picture of its size, and starts taking the compositor's frames.
    pub fn open(
        compositor: &Arc<CompositorHandle>,
        mut options: EncoderOptions,
        hw: &HardwareOptions,
    ) -> anyhow::Result<Self> {
        // Where the compositor renders on a GPU, NVENC and VAAPI take its frames there.
        let frames_on = compositor.renderer().render_node.clone();
        options.frames_on = frames_on.clone();
        let colorspace = options.colorspace;
        let frame_interval = Duration::from_secs_f64(1.0 / f64::from(options.fps.max(1)));
        let encoder = VideoEncoder::open(options, hw).context("error creating the encoder")?;
        let o = encoder.options();
        let picture = StreamPicture::new(Picture::new(o.chroma, o.depth, o.width, o.height)?);
        compositor.set_ten_bit_frames(o.depth == BitDepth::Ten);
        Ok(Self {
            compositor: Arc::downgrade(compositor),
            frames: compositor.frames(),
            other_mode: None,
            encoder,
            picture,
            image: None,
            images: OnGpu::Untried,
            frames_on,
            keyframe_owed: false,
            colorspace,
            frame_interval,
            last_sent: Instant::now(),
        })
    }

    /// Encodes at another mode (or with other settings) from the next frame on: a new encoder,
    /// whose first frame is a keyframe, and a new picture.
    pub fn reopen(
        &mut self,
        mut options: EncoderOptions,
        hw: &HardwareOptions,
    ) -> anyhow::Result<()> {
        options.frames_on = self.frames_on.clone();
        let colorspace = options.colorspace;
        let frame_interval = Duration::from_secs_f64(1.0 / f64::from(options.fps.max(1)));
        // The old encoder's session ends before the new one opens: a GPU may allow only so
        // many at once (NVENC on GeForce cards).
        self.encoder.close();
        self.image = None;
        let encoder = VideoEncoder::open(options, hw).context("error creating the encoder")?;
        let o = encoder.options();
        self.picture = StreamPicture::new(Picture::new(o.chroma, o.depth, o.width, o.height)?);
        if let Some(compositor) = self.compositor.upgrade() {
            compositor.set_ten_bit_frames(o.depth == BitDepth::Ten);
        }
        self.images = OnGpu::Untried;
        self.encoder = encoder;
        self.colorspace = colorspace;
        self.frame_interval = frame_interval;
        Ok(())
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
        let waiting = self
            .other_mode
            .take_if(|f| f.width == width && f.height == height);
        match waiting.or_else(|| self.frames.recv_timeout(self.frame_interval)) {
            Some(frame) => {
                if frame.width != width || frame.height != height {
                    trace!(
                        w = frame.width,
                        h = frame.height,
                        "frame of another mode; skipped"
                    );
                    self.picture.invalidate();
                    self.image = None;
                    self.other_mode = Some(frame);
                    return None;
                }
                if !receiving() {
                    return None;
                }
                if keyframe_due.load(Ordering::Relaxed) {
                    self.picture.invalidate();
                }
                // The image before goes back to the compositor's pool first.
                self.image = None;
                self.image = self
                    .gpu_image(&frame)
                    .map(|image| (Arc::new(image), frame.seq));
                if self.image.is_some() {
                    self.picture.invalidate();
                    return Some(frame.rendered_at);
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
                    || self.keyframe_owed
                    || self.last_sent.elapsed() > REPEAT_INTERVAL;
                let holds = self.picture.holds_frame() || self.image.is_some();
                (holds && due).then(Instant::now)
            }
        }
    }

    /// Encodes the picture [`VideoPipeline::next_picture`] prepared, as a keyframe where
    /// `keyframe` is set. `None` where the encoder holds the frame back.
    pub fn encode(&mut self, keyframe: bool) -> anyhow::Result<Option<EncodedFrame>> {
        let keyframe = keyframe || std::mem::take(&mut self.keyframe_owed);
        if let Some((image, seq)) = self.image.take() {
            if self.encoder.gpu_storage().is_some() {
                match self.encoder.encode_image(&image, keyframe) {
                    Ok(encoded) => {
                        // Kept, to be sent again while the screen stands still.
                        self.image = Some((image, seq));
                        self.images = self.images.after(true);
                        return Ok(self.sent(encoded));
                    }
                    Err(err) => {
                        warn!(
                            err = %format!("{err:#}"),
                            "the encoder did not take the frame on the GPU; it goes through CPU memory"
                        );
                        self.gpu_failed();
                    }
                }
            }
            // Into the picture, which every encoder takes from CPU memory.
            let filled = image
                .read()
                .map_err(anyhow::Error::from)
                .and_then(|yuv| self.picture.fill_from_yuv(&yuv, seq));
            if let Err(err) = filled {
                warn!(err = %format!("{err:#}"), "reading the frame back failed; frame skipped");
                // Kept, to be tried again as a repeat (at once where a keyframe is owed); the
                // picture holds no frame (it was invalidated when the image came).
                self.image = Some((image, seq));
                self.keyframe_owed |= keyframe;
                return Ok(None);
            }
        }
        let encoded = self
            .encoder
            .encode_picture(self.picture.picture(), keyframe)?;
        Ok(self.sent(encoded))
    }

    /// Notes when a frame went out.
    fn sent(&mut self, encoded: Option<EncodedFrame>) -> Option<EncodedFrame> {
        if encoded.is_some() {
            self.last_sent = Instant::now();
        }
        encoded
    }

    /// `frame` converted on the GPU for an encoder that takes it there, if the encoder does,
    /// the frame is on the GPU and that has not failed too often (then the frames are
    /// converted into the picture).
    fn gpu_image(&mut self, frame: &Frame) -> Option<YuvImage> {
        let FrameData::Dmabuf(gpu) = &frame.data else {
            return None;
        };
        let storage = self.encoder.gpu_storage()?;
        if self.images == OnGpu::Off {
            return None;
        }
        let layout = self.picture.picture().yuv_layout();
        // Waited for here: dropping the frame may hand a client's buffer back, which the
        // conversion must have read by then.
        let converted = gpu
            .to_yuv_image(&self.colorspace.yuv_conversion(layout), storage)
            .and_then(|image| image.wait_rendered().map(|()| image));
        match converted {
            Ok(image) => {
                if self.images == OnGpu::Untried {
                    info!("frames reach the encoder on the GPU, converted to Y'CbCr there");
                }
                Some(image)
            }
            Err(err) => {
                warn!(%err, "converting a frame for the encoder on the GPU failed; it goes through CPU memory");
                self.gpu_failed();
                None
            }
        }
    }

    /// One more failure of frames on the GPU in a row. After too many, frames go through CPU
    /// memory for the rest of this mode, and the encoder lets go of what it held for them.
    fn gpu_failed(&mut self) {
        self.images = self.images.after(false);
        if self.images == OnGpu::Off && self.encoder.gpu_storage().is_some() {
            info!("frames stop going to the encoder on the GPU after failing too often; they go through CPU memory");
            self.encoder.drop_gpu_input();
        }
    }

    /// Hands an encoded frame's buffer back for the next frame.
    pub fn recycle(&mut self, frame: EncodedFrame) {
        self.encoder.recycle(frame);
    }
}

/// What the client asked of its sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSettings {
    /// Channels: 2, 6 (5.1) or 8 (7.1).
    pub channels: u32,
    /// Opus at the higher bitrate.
    pub high_quality: bool,
    /// Duration of one packet: 5 or 10 ms.
    pub packet_duration_ms: u32,
}

/// Records the session's sink (`source`; `None` sends silence) and hands one Opus packet per
/// packet duration to `packet` until `stopped()`. While the capture delivers, its reads set the
/// pace (the sound server's clock); when it delivers nothing for a while (a suspended or
/// unlinked node, a hung server), silence fills in at the packet rate until it does again.
/// Without a capture, a timer sends silence.
pub fn run_audio(
    source: Option<&AudioSource>,
    settings: AudioSettings,
    stopped: impl Fn() -> bool,
    mut packet: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let duration_ms = settings.packet_duration_ms;
    let layout = crate::audio::layout_for_channels(settings.channels);
    let mut encoder = AudioEncoder::new(AudioOptions {
        layout,
        high_quality: settings.high_quality,
        packet_duration_ms: duration_ms,
    })?;
    let mut capture = open_capture(source, layout, encoder.frame_samples());
    let mut pcm = vec![0i16; encoder.frame_samples() * layout.channels()];
    let mut opus = vec![0u8; 1400];
    let interval = Duration::from_millis(u64::from(duration_ms));
    let mut next = Instant::now();
    let opened = Instant::now();
    let (mut delivered, mut stalled, mut warned) = (false, false, false);
    while !stopped() {
        let wait = if stalled { interval } else { CAPTURE_STALL };
        let n = match capture.as_mut().map(|c| c.read(&mut pcm, wait)) {
            Some(Ok(true)) => {
                if stalled {
                    debug!("audio capture delivers again");
                    stalled = false;
                }
                delivered = true;
                encoder.encode(&pcm, &mut opus)?
            }
            Some(Ok(false)) => {
                if !stalled {
                    debug!("audio capture delivers nothing; silence fills in");
                    stalled = true;
                }
                if !warned && (delivered || opened.elapsed() > CAPTURE_START_GRACE) {
                    warn!("audio capture delivers nothing; sending silence until it does");
                    warned = true;
                }
                encoder.encode_silence(&mut opus)?
            }
            Some(Err(e)) => {
                warn!(err = %format!("{e:#}"), "audio capture lost; the stream carries silence from now on");
                capture = None;
                next = Instant::now();
                continue;
            }
            None => {
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > Duration::from_millis(100) {
                    next = now; // fell far behind (suspend, overload): don't burst
                }
                encoder.encode_silence(&mut opus)?
            }
        };
        packet(&opus[..n])?;
    }
    Ok(())
}

/// Starts recording the session's sink, or says (once) why this stream carries silence.
fn open_capture(
    source: Option<&AudioSource>,
    layout: ChannelLayout,
    frame_samples: usize,
) -> Option<Capture> {
    let Some(source) = source else {
        info!("no sound server for this session; the stream carries silence");
        return None;
    };
    match Capture::open(source, layout, frame_samples) {
        Ok(c) => {
            info!(source = %source.source, channels = layout.channels(), "audio capture started");
            Some(c)
        }
        Err(e) => {
            warn!(err = %format!("{e:#}"), "no audio capture; the stream carries silence");
            None
        }
    }
}

#[cfg(test)]
#[path = "pipeline_gpu_tests.rs"]
mod gpu_tests;
