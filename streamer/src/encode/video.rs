//! H.264 (libx264), HEVC (libx265) and AV1 (libaom), through FFmpeg's libavcodec wrappers.
//!
//! Settings are chosen for a game stream: one frame in gives one access unit out (no lookahead,
//! no B-frames, sliced threads instead of frame threads), an infinite GOP with IDRs only when the
//! client asks, a VBV of about 1.5 frames so the rate stays close to what the client asked for,
//! SPS/PPS repeated in front of every IDR in Annex B form, and a VUI that tells the decoder which
//! matrix and range [`convert_bgra`](super::convert_bgra) used.

use std::sync::Once;

use anyhow::{bail, ensure, Context as _, Result};
use ffmpeg::codec::{self, threading};
use ffmpeg::util::color;
use ffmpeg::{encoder, format, frame, picture, Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use tracing::{debug, trace};

use super::color::{Colorspace, Nv12Frame};
use super::nal;

/// VBV buffer, in frames' worth of bits. One frame keeps every frame inside its share of the
/// link; a little more lets an IDR be sharper while still draining within two frame times.
const VBV_FRAMES: f64 = 1.5;

/// How much x264 trades quality for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum X264Preset {
    /// The fastest preset; what a CPU-encoded stream should normally use.
    #[default]
    Ultrafast,
    /// About 1.5x the cost of ultrafast for noticeably better quality at the same bitrate.
    Superfast,
    /// Only for small resolutions on fast machines.
    Veryfast,
}

impl X264Preset {
    fn name(self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
        }
    }
}

/// The video codec of a stream, as the client chose it in ANNOUNCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// H.264 High, 8-bit 4:2:0, with libx264.
    #[default]
    H264,
    /// HEVC Main, 8-bit 4:2:0, with libx265.
    Hevc,
    /// AV1 Main, 8-bit 4:2:0, with libaom in its real-time mode.
    Av1,
}

impl Codec {
    /// The libavcodec encoder used for this codec.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
            // libaom's real-time mode gives one packet per frame right away; SVT-AV1 (as
            // packaged with FFmpeg 5.1) holds frames back even in its low-delay mode.
            Codec::Av1 => "libaom-av1",
        }
    }

    /// Whether FFmpeg on this machine can encode it.
    pub fn is_available(self) -> bool {
        init_ffmpeg();
        encoder::find_by_name(self.encoder_name()).is_some()
    }
}

/// What [`VideoEncoder::new`] builds. `session` fills it from the client's ANNOUNCE.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderOptions {
    /// The codec.
    pub codec: Codec,
    /// Picture width; even.
    pub width: u32,
    /// Picture height; even.
    pub height: u32,
    /// Frame rate the client asked for; sets the time base and the per-frame bit budget.
    pub fps: u32,
    /// Target (and peak) bitrate.
    pub bitrate_kbps: u32,
    /// Matrix and range of the NV12 frames; written into the VUI.
    pub colorspace: Colorspace,
    /// Slices per frame (`x-nv-video[0].videoEncoderSlicesPerFrame`); at least 1.
    pub slices: u32,
    /// Encoder threads; 0 means one per slice. x264's sliced threading runs exactly one slice
    /// per thread, so a value above `slices` raises the slice count to it. (Frame threads would
    /// add a frame of delay per thread, so they are never used.)
    pub threads: u32,
    /// Speed/quality trade-off.
    pub preset: X264Preset,
}

impl EncoderOptions {
    /// Options for a `width`x`height`@`fps` stream at `bitrate_kbps`, with Moonlight's default
    /// colourspace, one slice and the ultrafast preset.
    pub fn new(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> EncoderOptions {
        EncoderOptions {
            codec: Codec::H264,
            width,
            height,
            fps,
            bitrate_kbps,
            colorspace: Colorspace::default(),
            slices: 1,
            threads: 0,
            preset: X264Preset::default(),
        }
    }

    fn thread_count(&self) -> u32 {
        self.threads.max(self.slices).max(1)
    }

    /// The private options of the codec's libavcodec wrapper.
    fn dictionary(&self) -> Dictionary<'static> {
        match self.codec {
            Codec::H264 => self.x264_dictionary(),
            Codec::Hevc => {
                let mut opts = Dictionary::new();
                opts.set("preset", self.preset.name());
                opts.set("tune", "zerolatency");
                opts.set("forced-idr", "1");
                // No GOP, no scene cuts, no B-frames, headers in front of every IDR, no version
                // SEI (the client wants VPS/SPS/PPS first in an IDR access unit).
                let params = format!(
                    "keyint=-1:min-keyint=1:scenecut=0:bframes=0:repeat-headers=1:info=0:\
                     aud=0:hrd=0:frame-threads=1:pools={}:slices={}",
                    self.thread_count(),
                    self.slices.max(1)
                );
                opts.set("x265-params", &params);
                opts
            }
            Codec::Av1 => {
                let mut opts = Dictionary::new();
                opts.set("usage", "realtime");
                opts.set("cpu-used", "8");
                opts.set("lag-in-frames", "0");
                opts.set("row-mt", "1");
                opts.set("error-resilience", "default");
                opts
            }
        }
    }

    /// The options handed to libavcodec's libx264 wrapper. `x264-params` is applied after the
    /// generic `AVCodecContext` fields, so what is set there wins.
    fn x264_dictionary(&self) -> Dictionary<'static> {
        let mut opts = Dictionary::new();
        opts.set("preset", self.preset.name());
        // zerolatency: no lookahead, no B-frames, sliced threads, no frame-thread delay.
        opts.set("tune", "zerolatency");
        // A forced I frame becomes an IDR, not just a recovery point.
        opts.set("forced-idr", "1");
        let params = format!(
            "keyint=infinite:scenecut=0:bframes=0:repeat-headers=1:aud=0:slices={}:nal-hrd=none",
            self.thread_count()
        );
        opts.set("x264-params", &params);
        opts
    }
}

/// One encoded access unit: Annex B, with start codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The access unit. An IDR starts with SPS, PPS, then the IDR slice(s).
    pub data: Vec<u8>,
    /// Whether this is an IDR (a client can start decoding here).
    pub is_idr: bool,
    /// Presentation timestamp in frames since the encoder started (time base 1/fps).
    pub pts: i64,
}

/// A libx264 encoder for one stream. Not `Sync`; lives on the session's encoder thread.
pub struct VideoEncoder {
    encoder: encoder::Video,
    options: EncoderOptions,
    /// A second reference to the caller's picture, carrying our pts and picture type so the
    /// caller can keep `&Nv12Frame`. Re-pointed every frame; no pixels are copied.
    input: frame::Video,
    /// For encoders that take only planar 4:2:0 (libx265, SVT-AV1): the picture with the
    /// chroma planes split out of NV12.
    planar: Option<frame::Video>,
    packet: Packet,
    next_pts: i64,
    /// Output buffers handed back through [`VideoEncoder::recycle`].
    spare: Vec<Vec<u8>>,
}

impl VideoEncoder {
    /// Opens libx264 with `options`.
    pub fn new(options: EncoderOptions) -> Result<VideoEncoder> {
        ensure!(
            options.width > 0
                && options.height > 0
                && options.width & 1 == 0
                && options.height & 1 == 0,
            "H.264 4:2:0 needs an even, non-zero size, got {}x{}",
            options.width,
            options.height
        );
        ensure!(
            options.fps > 0 && options.fps <= 1000,
            "frame rate {} is out of range",
            options.fps
        );
        ensure!(options.bitrate_kbps > 0, "bitrate must not be zero");
        ensure!(
            options.slices > 0 && options.slices <= 64,
            "slice count {} is out of range",
            options.slices
        );
        init_ffmpeg();

        let name = options.codec.encoder_name();
        let codec = encoder::find_by_name(name).with_context(|| format!("FFmpeg was built without {name}"))?;
        let mut enc = codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .context("error creating the video encoder")?;
        enc.set_width(options.width);
        enc.set_height(options.height);
        let planar = options.codec != Codec::H264;
        enc.set_format(if planar { format::Pixel::YUV420P } else { format::Pixel::NV12 });
        enc.set_time_base((1, options.fps as i32));
        enc.set_frame_rate(Some((options.fps as i32, 1)));
        enc.set_max_b_frames(0);
        let bitrate = u64::from(options.bitrate_kbps) * 1000;
        enc.set_bit_rate(bitrate as usize);
        enc.set_max_bit_rate(bitrate as usize);
        // No scheduled key frames; the encoder-specific options say the same where they can.
        enc.set_gop(i32::MAX as u32);
        enc.set_threading(threading::Config {
            kind: threading::Type::Slice,
            count: options.thread_count() as usize,
            ..Default::default()
        });
        let (space, primaries, transfer) = if options.colorspace.is_bt709() {
            (
                color::Space::BT709,
                color::Primaries::BT709,
                color::TransferCharacteristic::BT709,
            )
        } else {
            (
                color::Space::SMPTE170M,
                color::Primaries::SMPTE170M,
                color::TransferCharacteristic::SMPTE170M,
            )
        };
        enc.set_colorspace(space);
        enc.set_color_range(if options.colorspace.is_full_range() {
            color::Range::JPEG
        } else {
            color::Range::MPEG
        });
        // SAFETY: plain field writes on a context that is allocated and not yet opened.
        unsafe {
            let ctx = &mut *enc.as_mut_ptr();
            ctx.color_primaries = primaries.into();
            ctx.color_trc = transfer.into();
            ctx.rc_buffer_size = (bitrate as f64 * VBV_FRAMES / f64::from(options.fps))
                .min(f64::from(i32::MAX)) as i32;
            ctx.slices = options.thread_count() as i32;
        }

        let encoder = enc
            .open_with(options.dictionary())
            .with_context(|| format!("error opening {name}"))?;
        debug!(?options, "{name} opened");

        let mut input = frame::Video::empty();
        input.set_format(format::Pixel::NV12);
        let planar = planar.then(|| frame::Video::new(format::Pixel::YUV420P, options.width, options.height));
        Ok(VideoEncoder {
            encoder,
            options,
            input,
            planar,
            packet: Packet::empty(),
            next_pts: 0,
            spare: Vec::new(),
        })
    }

    /// The options this encoder was opened with.
    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    /// Encodes one picture. With `force_idr` the result is an IDR carrying SPS and PPS; without
    /// it, x264 never inserts one on its own (infinite GOP, no scene cuts), except for the very
    /// first frame.
    ///
    /// Returns `None` only if the encoder held the frame back, which these settings never do.
    pub fn encode(&mut self, nv12: &Nv12Frame, force_idr: bool) -> Result<Option<EncodedFrame>> {
        ensure!(
            nv12.width() == self.options.width && nv12.height() == self.options.height,
            "frame is {}x{}, the encoder was opened for {}x{}",
            nv12.width(),
            nv12.height(),
            self.options.width,
            self.options.height
        );
        self.send(nv12, force_idr)?;
        let mut out = EncodedFrame {
            data: self.spare.pop().unwrap_or_default(),
            ..EncodedFrame::default()
        };
        if !self.receive_into(&mut out)? {
            self.spare.push(out.data);
            debug!(pts = self.next_pts - 1, "libx264 held a frame back");
            return Ok(None);
        }
        Ok(Some(out))
    }

    /// Hands a frame's buffer back so the next [`VideoEncoder::encode`] can reuse it instead of
    /// allocating.
    pub fn recycle(&mut self, frame: EncodedFrame) {
        if self.spare.len() < 4 {
            self.spare.push(frame.data);
        }
    }

    fn send(&mut self, nv12: &Nv12Frame, force_idr: bool) -> Result<()> {
        let kind = if force_idr { picture::Type::I } else { picture::Type::None };
        if let Some(planar) = self.planar.as_mut() {
            split_nv12(nv12, planar);
            planar.set_pts(Some(self.next_pts));
            planar.set_kind(kind);
            self.next_pts += 1;
            let name = self.options.codec.encoder_name();
            return self.encoder.send_frame(planar).with_context(|| format!("error sending a frame to {name}"));
        }
        // SAFETY: `input` is an empty frame of ours; av_frame_ref makes it a new reference to
        // the caller's (refcounted) buffers and copies the frame properties. It is unreferenced
        // again before this function returns, so the caller's frame is writable afterwards.
        let ret = unsafe {
            ffmpeg::ffi::av_frame_unref(self.input.as_mut_ptr());
            ffmpeg::ffi::av_frame_ref(self.input.as_mut_ptr(), nv12.as_frame().as_ptr())
        };
        if ret < 0 {
            bail!(
                "referencing the NV12 frame failed: {}",
                ffmpeg::Error::from(ret)
            );
        }
        self.input.set_pts(Some(self.next_pts));
        self.input.set_kind(if force_idr {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.next_pts += 1;
        let sent = self.encoder.send_frame(&self.input);
        // SAFETY: as above; drops our reference whether or not the send worked.
        unsafe { ffmpeg::ffi::av_frame_unref(self.input.as_mut_ptr()) };
        sent.context("error sending a frame to libx264")
    }

    fn receive_into(&mut self, out: &mut EncodedFrame) -> Result<bool> {
        match self.encoder.receive_packet(&mut self.packet) {
            Ok(()) => {}
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                return Ok(false)
            }
            Err(err) => return Err(err).context("error receiving a packet from libx264"),
        }
        let data = self.packet.data().unwrap_or_default();
        out.data.clear();
        out.data.extend_from_slice(data);
        // No scheduled key frames: every key frame the encoder marks is an IDR.
        out.is_idr = self.packet.is_key();
        out.pts = self.packet.pts().unwrap_or(self.next_pts - 1);
        if out.is_idr && self.options.codec == Codec::H264 {
            // x264 puts a free-text version SEI into its first IDR; nobody needs it.
            nal::strip_sei(&mut out.data);
        }
        trace!(
            pts = out.pts,
            len = out.data.len(),
            idr = out.is_idr,
            "encoded"
        );
        Ok(true)
    }
}

/// Copies an NV12 picture into a planar 4:2:0 one of the same size.
fn split_nv12(nv12: &Nv12Frame, out: &mut frame::Video) {
    let (w, h) = (nv12.width() as usize, nv12.height() as usize);
    let (y, ys) = nv12.y_plane();
    let (uv, uvs) = nv12.uv_plane();
    let (oys, ous, ovs) = (out.stride(0), out.stride(1), out.stride(2));
    {
        let dst = out.data_mut(0);
        for row in 0..h {
            dst[row * oys..row * oys + w].copy_from_slice(&y[row * ys..row * ys + w]);
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for row in 0..ch {
        let src = &uv[row * uvs..row * uvs + 2 * cw];
        {
            let u = &mut out.data_mut(1)[row * ous..row * ous + cw];
            for (d, pair) in u.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
        }
        let v = &mut out.data_mut(2)[row * ovs..row * ovs + cw];
        for (d, pair) in v.iter_mut().zip(src.chunks_exact(2)) {
            *d = pair[1];
        }
    }
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder")
            .field("options", &self.options)
            .field("next_pts", &self.next_pts)
            .finish_non_exhaustive()
    }
}

/// Initialises FFmpeg once per process and keeps its log to warnings and worse (libx264 prints
/// several info lines per encoder otherwise).
pub(crate) fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(err) = ffmpeg::init() {
            tracing::warn!(%err, "FFmpeg initialisation reported an error");
        }
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
    });
}
