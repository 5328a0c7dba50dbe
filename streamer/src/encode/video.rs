//! H.264, HEVC and AV1 through FFmpeg's libavcodec: libx264, libx265 and libaom on the CPU,
//! `*_nvenc` and `*_vaapi` on a GPU ([`Backend`]).
//!
//! Settings are chosen for a game stream: one frame in gives one access unit out (no lookahead,
//! no B-frames, sliced threads instead of frame threads), an infinite GOP with IDRs only when the
//! client asks, a VBV of about one frame (1.5 on the CPU) so the rate stays close to what the
//! client asked for, SPS/PPS repeated in front of every IDR in Annex B form, and a VUI that tells
//! the decoder which matrix and range [`convert_bgra`](super::convert_bgra) used.
//!
//! [`VideoEncoder::new`] opens exactly the backend in [`EncoderOptions::backend`];
//! [`VideoEncoder::open`] runs the runtime choice of [`super::backend`] and falls back to the CPU.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Once};

use anyhow::{bail, ensure, Context as _, Result};
use compositor::{YuvImage, YuvLayout, YuvStorage};
use ffmpeg::codec::{self, threading};
use ffmpeg::util::color;
use ffmpeg::{encoder, format, frame, picture, Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use tracing::{debug, info, trace, warn};

use super::backend::{self, Backend, HardwareOptions, Skipped};
use super::color::{BitDepth, Chroma, Colorspace, Nv12Frame, Picture};
use super::cuda::{cuda_input, CudaCopier};
use super::nal;
use super::vaapi::{self, VaapiImporter};

/// VBV buffer, in frames' worth of bits. One frame keeps every frame inside its share of the
/// link; a little more lets an IDR be sharper while still draining within two frame times.
const VBV_FRAMES: f64 = 1.5;

/// VBV of the hardware encoders, in frames: one, as Sunshine runs NVENC. Their rate control
/// holds it without the quality loss x264 shows at one frame with several slices.
const HW_VBV_FRAMES: f64 = 1.0;

/// GOP length for VAAPI, which some drivers reject as "infinite"; at 60 fps this is an IDR every
/// nine minutes, on top of the ones the client asks for.
const VAAPI_GOP: u32 = i16::MAX as u32;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// H.264 High (or High 4:4:4 Predictive), 8-bit, with libx264.
    #[default]
    H264,
    /// HEVC Main, Main10 or RExt 4:4:4, with libx265.
    Hevc,
    /// AV1 Main (8 or 10-bit 4:2:0) or High (4:4:4), with libaom in its real-time mode.
    Av1,
}

impl Codec {
    /// The libavcodec encoder used for this codec on the CPU.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
            // libaom's real-time mode gives one packet per frame right away; SVT-AV1 (as
            // packaged with FFmpeg 5.1) holds frames back even in its low-delay mode.
            Codec::Av1 => "libaom-av1",
        }
    }

    /// Whether FFmpeg on this machine can encode it on the CPU.
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
    /// Matrix and range of the pictures; written into the VUI.
    pub colorspace: Colorspace,
    /// Chroma sampling of the pictures: 4:2:0 ([`Nv12Frame`]) or 4:4:4 (the High 4:4:4
    /// Predictive profile of H.264, HEVC RExt, AV1 High). VAAPI has no 4:4:4 here.
    pub chroma: Chroma,
    /// Bits per sample: 8, or 10 ([`super::P010Frame`] or [`super::Yuv444P10Frame`] pictures;
    /// HEVC Main10 / RExt, AV1 Main / High; not H.264).
    pub depth: BitDepth,
    /// Slices per frame (`x-nv-video[0].videoEncoderSlicesPerFrame`); at least 1.
    pub slices: u32,
    /// Encoder threads; 0 means one per slice. x264's sliced threading runs exactly one slice
    /// per thread, so a value above `slices` raises the slice count to it. (Frame threads would
    /// add a frame of delay per thread, so they are never used.)
    pub threads: u32,
    /// Speed/quality trade-off of the CPU encoders.
    pub preset: X264Preset,
    /// Which encoder family [`VideoEncoder::new`] opens.
    pub backend: Backend,
    /// The render node for [`Backend::Vaapi`]; `None` means the first one in `/dev/dri`.
    pub vaapi_device: Option<PathBuf>,
    /// The render node the compositor renders on, where it gives its frames as dmabufs:
    /// [`Backend::Nvenc`] then takes frames converted on the GPU through CUDA
    /// ([`VideoEncoder::encode_image`]), from the GPU at this node.
    pub frames_on: Option<PathBuf>,
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
            chroma: Chroma::Yuv420,
            depth: BitDepth::Eight,
            slices: 1,
            threads: 0,
            preset: X264Preset::default(),
            backend: Backend::Software,
            vaapi_device: None,
            frames_on: None,
        }
    }

    fn thread_count(&self) -> u32 {
        self.threads.max(self.slices).max(1)
    }

    /// The private options of the codec's libavcodec wrapper.
    pub(super) fn dictionary(&self) -> Dictionary<'static> {
        match self.backend {
            Backend::Nvenc => return self.nvenc_dictionary(),
            Backend::Vaapi => return self.vaapi_dictionary(true),
            Backend::Software => {}
        }
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

    /// NVENC for the lowest latency, as Sunshine runs it: the fastest preset tuned for ultra
    /// low latency, no reordering delay, no lookahead, no B-frames (also set on the context),
    /// no scene-cut I frames, CBR, and a frame with `pict_type` I becomes an IDR.
    fn nvenc_dictionary(&self) -> Dictionary<'static> {
        let mut opts = Dictionary::new();
        opts.set("preset", "p1");
        opts.set("tune", "ull");
        opts.set("zerolatency", "1");
        opts.set("delay", "0");
        opts.set("rc", "cbr");
        opts.set("rc-lookahead", "0");
        opts.set("no-scenecut", "1");
        opts.set("forced-idr", "1");
        opts.set("b_ref_mode", "disabled");
        match (self.codec, self.chroma) {
            (Codec::H264, Chroma::Yuv420) => opts.set("profile", "high"),
            (Codec::H264, Chroma::Yuv444) => opts.set("profile", "high444p"),
            (Codec::Hevc, Chroma::Yuv420) if self.depth == BitDepth::Ten => {
                opts.set("profile", "main10")
            }
            (Codec::Hevc, Chroma::Yuv420) => opts.set("profile", "main"),
            (Codec::Hevc, Chroma::Yuv444) => opts.set("profile", "rext"),
            (Codec::Av1, _) => {}
        }
        opts
    }

    /// VAAPI: the low-power (fixed-function) entry point where the driver has one, one frame
    /// in flight so each frame comes out before the next goes in, CBR, no SEI, no AUD. A frame
    /// with `pict_type` I becomes an IDR.
    fn vaapi_dictionary(&self, low_power: bool) -> Dictionary<'static> {
        let mut opts = Dictionary::new();
        opts.set("low_power", if low_power { "1" } else { "0" });
        opts.set("async_depth", "1");
        opts.set("rc_mode", "CBR");
        if self.codec != Codec::Av1 {
            opts.set("sei", "0");
            opts.set("aud", "0");
        }
        opts
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

/// A video encoder for one stream. Not `Sync`; lives on the session's encoder thread.
pub struct VideoEncoder {
    /// The codec context; `None` once [`VideoEncoder::close`] let it go.
    encoder: Option<encoder::Video>,
    options: EncoderOptions,
    /// How the caller's picture reaches the encoder.
    input: Input,
    packet: Packet,
    next_pts: i64,
    /// Output buffers handed back through [`VideoEncoder::recycle`].
    spare: Vec<Vec<u8>>,
    /// The hardware backends tried and not used on the way to this one ([`VideoEncoder::open`]).
    skipped: Vec<Skipped>,
    /// Whether a failing hardware encoder gives way to its [`replacements`]: only when opened by
    /// [`VideoEncoder::open`] (a probe, or an explicit [`VideoEncoder::new`], must see the error),
    /// and until none of them opens.
    falls_back: bool,
}

/// How a picture gets into an encoder: from CPU memory, or (for [`VideoEncoder::encode_image`])
/// from the compositor's buffers on the GPU.
enum Input {
    /// The encoder reads the caller's picture itself (libx264 and NVENC with NV12, every CPU
    /// and NVENC encoder with 4:4:4). `frame` becomes a second reference to the caller's
    /// picture, carrying our pts and picture type so the caller can keep `&Picture`; it is
    /// re-pointed every frame and no pixels are copied.
    Reference(frame::Video),
    /// libx265 and libaom take only planar 4:2:0: the chroma planes are split out of NV12 (or
    /// P010, whose samples also move to the low bits); 10-bit 4:4:4 only with the values in the
    /// low bits.
    Planar(frame::Video),
    /// VAAPI, and NVENC with CUDA frames: the picture is uploaded into a surface from the
    /// encoder's pool.
    Upload {
        /// The pool (`AVHWFramesContext`); the codec context holds its own reference.
        frames: HwBuffer,
        /// The surface being filled: a new one from the pool every frame, or the surface of a
        /// GPU frame's buffer ([`GpuInput::Vaapi`]).
        surface: frame::Video,
        /// How frames converted on the GPU reach the pool ([`VideoEncoder::encode_image`]),
        /// where they do.
        gpu: Option<GpuInput>,
    },
}

/// How an encoder takes the frames the compositor converted on the GPU.
enum GpuInput {
    /// NVENC: copied on the GPU into a CUDA frame of the pool.
    Cuda(CudaCopier),
    /// VAAPI: the compositor's buffer is the surface, imported once.
    Vaapi(VaapiImporter),
}

impl VideoEncoder {
    /// Opens the encoder the host's settings `hw` pick for `options.codec` (see
    /// [`super::backend::select`]): every hardware backend skipped is logged with its reason, and
    /// a hardware encoder that probed fine but does not open for this stream's mode falls back
    /// to the CPU with a warning. Without a configured VAAPI device, VAAPI runs on the render
    /// node the compositor renders on where it encodes there ([`backend::for_frames_on`]).
    /// Fails only when the software encoder fails.
    pub fn open(mut options: EncoderOptions, hw: &HardwareOptions) -> Result<VideoEncoder> {
        let (selection, chosen) =
            backend::select_for_stream(options.codec, hw, options.frames_on.as_deref());
        selection.log();
        let (backend, mut skipped) = (selection.backend, selection.skipped);
        if backend != Backend::Software {
            options.backend = backend;
            // VAAPI on the compositor's render node that does not open at this mode goes on
            // the device it would have run on otherwise.
            let mut devices = vec![chosen.vaapi_device];
            if backend == Backend::Vaapi && devices[0] != hw.vaapi_device {
                devices.push(hw.vaapi_device.clone());
            }
            for device in devices {
                options.vaapi_device = match backend {
                    Backend::Vaapi => backend::vaapi_device_path(device.as_deref()).ok(),
                    _ => None,
                };
                match VideoEncoder::new(options.clone()) {
                    Ok(mut enc) => {
                        enc.skipped = skipped;
                        enc.falls_back = true;
                        enc.log_chosen();
                        return Ok(enc);
                    }
                    Err(e) => {
                        let reason = format!("{e:#}");
                        warn!(
                            "{} opened in the probe but not for {}x{}@{}: {reason}",
                            backend.encoder_name(options.codec),
                            options.width,
                            options.height,
                            options.fps
                        );
                        skipped.push(Skipped {
                            backend,
                            reason,
                            next: Backend::Software,
                        });
                    }
                }
            }
            warn!("using the software encoder");
        }
        options.backend = Backend::Software;
        options.vaapi_device = None;
        let mut enc = VideoEncoder::new(options)?;
        enc.skipped = skipped;
        enc.log_chosen();
        Ok(enc)
    }

    /// Opens `options.backend` for `options.codec`, and nothing else.
    pub fn new(mut options: EncoderOptions) -> Result<VideoEncoder> {
        ensure!(
            options.width > 0
                && options.height > 0
                && options.width & 1 == 0
                && options.height & 1 == 0,
            "4:2:0 needs an even, non-zero size, got {}x{}",
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
            !(options.backend == Backend::Vaapi && options.chroma == Chroma::Yuv444),
            "4:4:4 is not available with VAAPI"
        );
        ensure!(
            options.depth == BitDepth::Eight || options.codec != Codec::H264,
            "10-bit needs HEVC or AV1, not {:?}",
            options.codec
        );
        ensure!(
            options.slices > 0 && options.slices <= 64,
            "slice count {} is out of range",
            options.slices
        );
        init_ffmpeg();
        let name = options.backend.encoder_name(options.codec);
        let codec = encoder::find_by_name(name)
            .with_context(|| format!("FFmpeg was built without {name}"))?;
        let (encoder, input) = match options.backend {
            Backend::Nvenc if options.frames_on.is_some() => {
                let opened = cuda_input(&options).and_then(|(frames, copier)| {
                    let enc = configure(codec, &options, Some(&frames))
                        .map_err(|err| format!("{err:#}"))?;
                    let encoder = enc
                        .open_with(options.dictionary())
                        .map_err(|err| format!("{name} with CUDA frames: {err}"))?;
                    let input = Input::Upload {
                        frames,
                        surface: frame::Video::empty(),
                        gpu: Some(GpuInput::Cuda(copier)),
                    };
                    Ok((encoder, input))
                });
                match opened {
                    Ok(opened) => opened,
                    Err(reason) => {
                        warn!(%reason, "{name} takes its pictures from CPU memory, not from CUDA");
                        return VideoEncoder::new(EncoderOptions {
                            frames_on: None,
                            ..options
                        });
                    }
                }
            }
            Backend::Software | Backend::Nvenc => {
                let enc = configure(codec, &options, None)?;
                let encoder = enc
                    .open_with(options.dictionary())
                    .with_context(|| format!("error opening {name}"))?;
                let input = if let Some(format) = cpu_format(&options) {
                    Input::Planar(frame::Video::new(format, options.width, options.height))
                } else {
                    let mut f = frame::Video::empty();
                    f.set_format(pixel_format(&options));
                    Input::Reference(f)
                };
                (encoder, input)
            }
            Backend::Vaapi => {
                let device = match &options.vaapi_device {
                    Some(d) => d.clone(),
                    None => backend::vaapi_device_path(None).map_err(anyhow::Error::msg)?,
                };
                let frames = vaapi_frames(
                    &device,
                    pixel_format(&options),
                    options.width,
                    options.height,
                )?;
                let gpu = vaapi_input(&device, &options);
                if gpu.is_none() {
                    // Pictures come from CPU memory only: nothing to fall back from.
                    options.frames_on = None;
                }
                // Not every driver has the low-power entry point: try without it, as Sunshine
                // does.
                let mut opened = None;
                let mut first_err = None;
                for low_power in [true, false] {
                    let enc = configure(codec, &options, Some(&frames))?;
                    match enc.open_with(options.vaapi_dictionary(low_power)) {
                        Ok(e) => {
                            opened = Some(e);
                            break;
                        }
                        Err(e) => {
                            debug!(%e, low_power, "{name} did not open");
                            first_err.get_or_insert(e);
                        }
                    }
                }
                let encoder = match (opened, first_err) {
                    (Some(e), _) => e,
                    (None, Some(e)) => {
                        return Err(e).with_context(|| {
                            format!("error opening {name} on {}", device.display())
                        })
                    }
                    (None, None) => bail!("error opening {name}"),
                };
                let input = Input::Upload {
                    frames,
                    surface: frame::Video::empty(),
                    gpu,
                };
                (encoder, input)
            }
        };
        debug!(?options, "{name} opened");
        Ok(VideoEncoder {
            encoder: Some(encoder),
            options,
            input,
            packet: Packet::empty(),
            next_pts: 0,
            spare: Vec::new(),
            skipped: Vec::new(),
            falls_back: false,
        })
    }

    /// The options this encoder was opened with; `backend` says which encoder runs.
    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    /// The encoder family that runs this stream.
    pub fn backend(&self) -> Backend {
        self.options.backend
    }

    /// The libavcodec encoder that runs this stream, e.g. `h264_nvenc` or `libx264`.
    pub fn encoder_name(&self) -> &'static str {
        self.options.backend.encoder_name(self.options.codec)
    }

    /// Whether [`VideoEncoder::set_bitrate`] works for this encoder: libx264 and NVENC pick up a
    /// changed rate on the next frame (NVENC where the GPU supports a dynamic bitrate change,
    /// with an IDR); VAAPI, libx265 and libaom keep the rate they were opened with.
    pub fn can_change_bitrate(&self) -> bool {
        matches!(
            (self.options.backend, self.options.codec),
            (Backend::Software, Codec::H264) | (Backend::Nvenc, _)
        )
    }

    /// The target bitrate the next frame is encoded with.
    pub fn bitrate_kbps(&self) -> u32 {
        self.options.bitrate_kbps
    }

    /// Changes the target (and peak) bitrate and the VBV from the next frame on, as if the
    /// encoder had been opened with `kbps`. Returns `false`, changing nothing, where the encoder
    /// cannot ([`VideoEncoder::can_change_bitrate`]).
    pub fn set_bitrate(&mut self, kbps: u32) -> bool {
        if !self.can_change_bitrate() {
            return false;
        }
        let kbps = kbps.max(1);
        let bitrate = u64::from(kbps) * 1000;
        let vbv_frames = match self.options.backend {
            Backend::Software => VBV_FRAMES,
            _ => HW_VBV_FRAMES,
        };
        // SAFETY: the context is open and only this thread uses it; libx264 and NVENC read
        // these fields again before each frame they are sent (FFmpeg's `reconfig_encoder`) and
        // reconfigure the running encoder when they differ from what it runs with.
        let Some(codec) = self.encoder.as_mut() else {
            return false;
        };
        unsafe {
            let ctx = &mut *codec.as_mut_ptr();
            ctx.bit_rate = bitrate.min(i64::MAX as u64) as i64;
            ctx.rc_max_rate = ctx.bit_rate;
            ctx.rc_buffer_size = (bitrate as f64 * vbv_frames / f64::from(self.options.fps))
                .min(f64::from(i32::MAX)) as i32;
            if self.options.backend != Backend::Software {
                ctx.rc_min_rate = ctx.bit_rate;
            }
        }
        self.options.bitrate_kbps = kbps;
        true
    }

    /// The hardware backends [`VideoEncoder::open`] tried and did not use, with the reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    fn log_chosen(&self) {
        info!(
            encoder = self.encoder_name(),
            backend = %self.options.backend,
            width = self.options.width,
            height = self.options.height,
            fps = self.options.fps,
            "video encoder"
        );
    }

    /// Encodes one picture. With `force_idr` the result is an IDR carrying SPS and PPS; without
    /// it, the encoder never inserts one on its own (infinite GOP, no scene cuts), except for the
    /// very first frame (and, with VAAPI, every `VAAPI_GOP` frames).
    ///
    /// Returns `None` only if the encoder held the frame back, which these settings never do.
    ///
    /// A hardware encoder chosen by [`VideoEncoder::open`] that fails mid-stream (a GPU reset,
    /// a lost device) is replaced, with a warning, by the first of its [`replacements`] that
    /// opens and encodes the picture: itself taking pictures from CPU memory where it took
    /// frames on the GPU, then the software encoder. The picture goes out as the new encoder's
    /// IDR.
    pub fn encode(&mut self, nv12: &Nv12Frame, force_idr: bool) -> Result<Option<EncodedFrame>> {
        self.encode_input(
            nv12.as_frame(),
            (Chroma::Yuv420, BitDepth::Eight),
            force_idr,
        )
    }

    /// [`VideoEncoder::encode`] for a picture of any chroma format and depth; they have to be
    /// the ones the encoder was opened with ([`EncoderOptions::chroma`], [`EncoderOptions::depth`]).
    pub fn encode_picture(
        &mut self,
        picture: &Picture,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>> {
        self.encode_input(
            picture.as_frame(),
            (picture.chroma(), picture.depth()),
            force_idr,
        )
    }

    /// Where [`VideoEncoder::encode_image`] takes its pictures, if it takes any: NVENC opened
    /// with CUDA frames from GL textures (CUDA's GL interop), VAAPI on the render node the
    /// compositor renders on from GBM buffers (imported as dmabufs).
    pub fn gpu_storage(&self) -> Option<YuvStorage> {
        match &self.input {
            Input::Upload { gpu: Some(gpu), .. } => Some(match gpu {
                GpuInput::Cuda(_) => YuvStorage::Texture,
                GpuInput::Vaapi(_) => YuvStorage::Buffer,
            }),
            _ => None,
        }
    }

    /// Lets go of what takes frames from the GPU (the CUDA copier, or the VA surfaces imported
    /// from the compositor's buffers), once the caller has given up on them: from then
    /// on the encoder takes its pictures from CPU memory only.
    pub fn drop_gpu_input(&mut self) {
        if let Input::Upload { gpu, .. } = &mut self.input {
            *gpu = None;
        }
    }

    /// Encodes a frame the compositor converted on the GPU, as [`VideoEncoder::encode`] does
    /// a picture. NVENC gets its planes copied into a CUDA frame on the GPU; VAAPI reads the
    /// compositor's buffer itself, and holds it (with a clone of `image`) until it has. It has to
    /// be in the chroma format, depth and size the encoder was opened with.
    ///
    /// A failed copy or import is an error for this frame only. An encoder that then fails is
    /// replaced as in [`VideoEncoder::encode`] (first by itself taking pictures from CPU memory),
    /// and this is an error too: the caller encodes the frame from CPU memory, the new encoder's
    /// IDR.
    pub fn encode_image(
        &mut self,
        image: &Arc<YuvImage>,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>> {
        let o = &self.options;
        let layout = Picture::layout_of(o.chroma, o.depth);
        ensure!(
            (image.width(), image.height(), image.layout()) == (o.width, o.height, layout),
            "the image is {}x{} {:?}, the encoder was opened for {}x{} {layout:?}",
            image.width(),
            image.height(),
            image.layout(),
            o.width,
            o.height
        );
        let name = self.encoder_name();
        let Input::Upload {
            frames,
            surface,
            gpu: Some(gpu),
        } = &mut self.input
        else {
            bail!("{name} takes no GPU frames");
        };
        match gpu {
            GpuInput::Cuda(copier) => frames
                .fill_cuda(copier, image, surface)
                .map_err(anyhow::Error::msg)
                .context("copying the frame into a CUDA frame")?,
            GpuInput::Vaapi(importer) => importer
                .fill(frames, image, surface)
                .map_err(anyhow::Error::msg)
                .context("handing the frame to VAAPI")?,
        }
        let (pts, kind) = stamp(&mut self.next_pts, force_idr);
        surface.set_pts(Some(pts));
        surface.set_kind(kind);
        let sent = self.encoder.as_mut().context(CLOSED).and_then(|codec| {
            codec
                .send_frame(surface)
                .with_context(|| format!("error sending a frame to {name}"))
        });
        // The encoder holds a reference of its own; ours would keep a VAAPI frame's buffer from
        // the compositor until the next frame.
        // SAFETY: `surface` is our frame.
        unsafe { ffmpeg::ffi::av_frame_unref(surface.as_mut_ptr()) };
        match sent.and_then(|()| self.receive()) {
            Err(err) if self.can_fall_back() => {
                self.replace_after(err)?;
                // The caller has the picture in CPU memory for the new encoder.
                bail!("{name} failed on a frame from the GPU")
            }
            result => result,
        }
    }

    fn encode_input(
        &mut self,
        picture: &frame::Video,
        (chroma, depth): (Chroma, BitDepth),
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>> {
        ensure!(
            picture.width() == self.options.width && picture.height() == self.options.height,
            "frame is {}x{}, the encoder was opened for {}x{}",
            picture.width(),
            picture.height(),
            self.options.width,
            self.options.height
        );
        ensure!(
            (chroma, depth) == (self.options.chroma, self.options.depth),
            "the picture is {chroma:?} {depth:?}, the encoder was opened for {:?} {:?}",
            self.options.chroma,
            self.options.depth
        );
        let mut result = self.encode_frame(picture, force_idr);
        // Each replacement is a step down a finite ladder (the software encoder ends it).
        while let Err(err) = result {
            if !self.can_fall_back() {
                return Err(err);
            }
            self.replace_after(err)?;
            result = self.encode_frame(picture, true);
        }
        result
    }

    /// Lets the codec context and its input (pools, GPU imports) go, ending a hardware encoder's
    /// session, before another encoder opens in its place. What is sent to it afterwards fails
    /// with an error.
    pub(crate) fn close(&mut self) {
        self.encoder = None;
        self.input = Input::Reference(frame::Video::empty());
    }

    /// Whether a failure of this encoder is answered by another encoder ([`replacements`]):
    /// a hardware encoder [`VideoEncoder::open`] chose.
    fn can_fall_back(&self) -> bool {
        self.falls_back && !replacements(&self.options).is_empty()
    }

    /// Replaces this encoder, which failed during the stream with `err` (a GPU reset, a lost
    /// device, a driver that imports a buffer but cannot encode from it), by the first of its
    /// [`replacements`] that opens, with a warning for each step. The new encoder's first frame
    /// is an IDR; it goes on with this one's timestamps. Fails only when the software encoder
    /// does not open either.
    fn replace_after(&mut self, err: anyhow::Error) -> Result<()> {
        let name = self.encoder_name();
        let failed = self.options.backend;
        let mut reason = format!("{err:#}");
        warn!("{name} failed during the stream: {reason}");
        // The failed session goes first: a GPU may allow only so many encoder sessions at
        // once (NVENC on GeForce cards), and its replacement must not be refused for it.
        self.close();
        let mut last_err = err;
        for options in replacements(&self.options) {
            let backend = options.backend;
            let next = backend.encoder_name(options.codec);
            match VideoEncoder::new(options) {
                Ok(mut enc) => {
                    if backend == failed {
                        warn!("{next} opened again; it takes its pictures from CPU memory");
                    } else {
                        warn!("going on with {next}");
                        self.skipped.push(Skipped {
                            backend: failed,
                            reason,
                            next: backend,
                        });
                    }
                    enc.next_pts = self.next_pts;
                    enc.spare = std::mem::take(&mut self.spare);
                    enc.skipped = std::mem::take(&mut self.skipped);
                    enc.falls_back = self.falls_back;
                    *self = enc;
                    self.log_chosen();
                    return Ok(());
                }
                Err(err) => {
                    warn!("{next} did not open in its place: {err:#}");
                    reason = format!("{reason}; then {next} did not open: {err:#}");
                    last_err = err;
                }
            }
        }
        // The stream ends here; nothing is tried again for another frame.
        self.falls_back = false;
        Err(last_err.context("no encoder opened in place of the one that failed"))
    }

    fn encode_frame(
        &mut self,
        picture: &frame::Video,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>> {
        self.send(picture, force_idr)?;
        self.receive()
    }

    /// The access unit of the frame just sent, or `None` if the encoder held it back.
    fn receive(&mut self) -> Result<Option<EncodedFrame>> {
        let mut out = EncodedFrame {
            data: self.spare.pop().unwrap_or_default(),
            ..EncodedFrame::default()
        };
        if !self.receive_into(&mut out)? {
            self.spare.push(out.data);
            debug!(
                pts = self.next_pts - 1,
                "{} held a frame back",
                self.encoder_name()
            );
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

    fn send(&mut self, picture: &frame::Video, force_idr: bool) -> Result<()> {
        let name = self.encoder_name();
        let codec = self.encoder.as_mut().context(CLOSED)?;
        let (pts, kind) = stamp(&mut self.next_pts, force_idr);
        match &mut self.input {
            Input::Planar(planar) => {
                match (self.options.chroma, self.options.depth) {
                    (Chroma::Yuv420, BitDepth::Eight) => split_nv12(picture, planar),
                    (Chroma::Yuv420, BitDepth::Ten) => super::tenbit::split_p010(picture, planar),
                    (Chroma::Yuv444, _) => super::tenbit::shift_444(picture, planar),
                }
                planar.set_pts(Some(pts));
                planar.set_kind(kind);
                codec
                    .send_frame(planar)
                    .with_context(|| format!("error sending a frame to {name}"))
            }
            Input::Reference(input) => {
                // SAFETY: `input` is an empty frame of ours; av_frame_ref makes it a new reference
                // to the caller's (refcounted) buffers and copies the frame properties. It is
                // unreferenced again before this function returns, so the caller's frame is
                // writable afterwards.
                let ret = unsafe {
                    ffmpeg::ffi::av_frame_unref(input.as_mut_ptr());
                    ffmpeg::ffi::av_frame_ref(input.as_mut_ptr(), picture.as_ptr())
                };
                if ret < 0 {
                    bail!(
                        "referencing the picture failed: {}",
                        ffmpeg::Error::from(ret)
                    );
                }
                input.set_pts(Some(pts));
                input.set_kind(kind);
                let sent = codec.send_frame(input);
                // SAFETY: as above; drops our reference whether or not the send worked.
                unsafe { ffmpeg::ffi::av_frame_unref(input.as_mut_ptr()) };
                sent.with_context(|| format!("error sending a frame to {name}"))
            }
            Input::Upload {
                frames, surface, ..
            } => {
                // SAFETY: `surface` is our frame; it is unreferenced, given a surface from the
                // pool `frames` (a valid, initialised AVHWFramesContext), then filled from the
                // caller's NV12 frame, which is only read.
                let ret = unsafe {
                    ffmpeg::ffi::av_frame_unref(surface.as_mut_ptr());
                    let ret = ffmpeg::ffi::av_hwframe_get_buffer(frames.0, surface.as_mut_ptr(), 0);
                    if ret < 0 {
                        ret
                    } else {
                        ffmpeg::ffi::av_hwframe_transfer_data(
                            surface.as_mut_ptr(),
                            picture.as_ptr(),
                            0,
                        )
                    }
                };
                if ret < 0 {
                    bail!(
                        "uploading a frame for {name} failed: {}",
                        ffmpeg::Error::from(ret)
                    );
                }
                surface.set_pts(Some(pts));
                surface.set_kind(kind);
                codec
                    .send_frame(surface)
                    .with_context(|| format!("error sending a frame to {name}"))
            }
        }
    }

    fn receive_into(&mut self, out: &mut EncodedFrame) -> Result<bool> {
        let codec = self.encoder.as_mut().context(CLOSED)?;
        match codec.receive_packet(&mut self.packet) {
            Ok(()) => {}
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                return Ok(false)
            }
            Err(err) => {
                let name = self.encoder_name();
                return Err(err).with_context(|| format!("error receiving a packet from {name}"));
            }
        }
        let data = self.packet.data().unwrap_or_default();
        out.data.clear();
        out.data.extend_from_slice(data);
        // No scheduled key frames: every key frame the encoder marks is an IDR.
        out.is_idr = self.packet.is_key();
        out.pts = self.packet.pts().unwrap_or(self.next_pts - 1);
        if out.is_idr && self.options.codec == Codec::H264 {
            // x264 puts a free-text version SEI into its first IDR; nobody needs it (and a
            // hardware encoder's SEI would only push the slice further from SPS and PPS).
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

#[cfg(test)]
impl VideoEncoder {
    /// Makes this encoder stand for one [`VideoEncoder::open`] chose on `backend`, taking
    /// frames on the GPU of `frames_on`: for the tests of what replaces a hardware encoder that
    /// fails, on machines without one.
    pub(super) fn standing_for(&mut self, backend: Backend, frames_on: Option<PathBuf>) {
        self.options.backend = backend;
        self.options.frames_on = frames_on;
        self.falls_back = true;
    }

    /// `*_vaapi` on the render node `node` the compositor renders on, as [`VideoEncoder::open`]
    /// chooses it there, taking the compositor's frames as VA surfaces of the node (imported for
    /// real), whose encoder session is gone (as after a GPU reset): every frame it gets fails
    /// in it. For the tests of a stream whose GPU encoder fails, on a node whose VAAPI driver
    /// imports surfaces but has no encoder (the virtual GPU).
    pub(crate) fn vaapi_session_lost(options: EncoderOptions, node: &Path) -> Result<Self> {
        init_ffmpeg();
        let options = EncoderOptions {
            backend: Backend::Vaapi,
            vaapi_device: Some(node.into()),
            frames_on: Some(node.into()),
            ..options
        };
        let frames = vaapi_frames(node, pixel_format(&options), options.width, options.height)?;
        let gpu = vaapi_input(node, &options).context("no VA surfaces of the node's buffers")?;
        Ok(VideoEncoder {
            encoder: None,
            options,
            input: Input::Upload {
                frames,
                surface: frame::Video::empty(),
                gpu: Some(gpu),
            },
            packet: Packet::empty(),
            next_pts: 0,
            spare: Vec::new(),
            skipped: Vec::new(),
            falls_back: true,
        })
    }
}

/// The error of an encoder that [`VideoEncoder::close`] closed.
pub(super) const CLOSED: &str = "the encoder was closed after it failed";

/// What replaces an encoder opened with `options` that fails during a stream, in the order
/// tried: a hardware encoder that took frames on the GPU (NVENC with CUDA frames, VAAPI on the
/// compositor's node) opens again to take its pictures from CPU memory, whether the failure
/// came with a frame from the GPU or from CPU memory; then the software encoder. Nothing
/// replaces the software encoder.
pub(super) fn replacements(options: &EncoderOptions) -> Vec<EncoderOptions> {
    if options.backend == Backend::Software {
        return Vec::new();
    }
    let mut ladder = Vec::with_capacity(2);
    if options.frames_on.is_some() {
        ladder.push(EncoderOptions {
            frames_on: None,
            ..options.clone()
        });
    }
    ladder.push(EncoderOptions {
        backend: Backend::Software,
        vaapi_device: None,
        frames_on: None,
        ..options.clone()
    });
    ladder
}

/// The next frame's timestamp, taken from `next_pts`, and its picture type: `I` where an IDR
/// is forced, else the encoder's choice.
fn stamp(next_pts: &mut i64, force_idr: bool) -> (i64, picture::Type) {
    let pts = *next_pts;
    *next_pts += 1;
    let kind = if force_idr {
        picture::Type::I
    } else {
        picture::Type::None
    };
    (pts, kind)
}

/// An encoder context for `options`, not yet opened: size, format, time base, rate control,
/// GOP and colour description. `frames` is the surface pool: VAAPI's, or NVENC's CUDA frames.
fn configure(
    codec: ffmpeg::Codec,
    options: &EncoderOptions,
    frames: Option<&HwBuffer>,
) -> Result<encoder::video::Video> {
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context("error creating the video encoder")?;
    enc.set_width(options.width);
    enc.set_height(options.height);
    enc.set_format(match (options.backend, frames) {
        (Backend::Vaapi, _) => format::Pixel::VAAPI,
        (Backend::Nvenc, Some(_)) => format::Pixel::CUDA,
        _ => cpu_format(options).unwrap_or_else(|| pixel_format(options)),
    });
    enc.set_time_base((1, options.fps as i32));
    enc.set_frame_rate(Some((options.fps as i32, 1)));
    enc.set_max_b_frames(0);
    let bitrate = u64::from(options.bitrate_kbps) * 1000;
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize);
    // No scheduled key frames; the encoder-specific options say the same where they can.
    enc.set_gop(match options.backend {
        Backend::Vaapi => VAAPI_GOP,
        _ => i32::MAX as u32,
    });
    if options.backend == Backend::Software {
        enc.set_threading(threading::Config {
            kind: threading::Type::Slice,
            count: options.thread_count() as usize,
            ..Default::default()
        });
    }
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
    let (vbv_frames, slices) = match options.backend {
        Backend::Software => (VBV_FRAMES, options.thread_count()),
        Backend::Nvenc => (HW_VBV_FRAMES, options.slices),
        // Several slices per frame trip up some VAAPI drivers; one slice always decodes.
        Backend::Vaapi => (HW_VBV_FRAMES, 1),
    };
    // SAFETY: plain field writes on a context that is allocated and not yet opened;
    // av_buffer_ref gives the context a reference of its own to the live surface pool, which
    // avcodec_free_context releases.
    unsafe {
        let ctx = &mut *enc.as_mut_ptr();
        ctx.color_primaries = primaries.into();
        ctx.color_trc = transfer.into();
        if options.chroma == Chroma::Yuv420 {
            // Every conversion (the CPU's, the compositor's shader) takes a 2x2 block's mean:
            // chroma sited at the block's centre, where decoders assume the left edge of it
            // unless told.
            ctx.chroma_sample_location = ffmpeg::ffi::AVChromaLocation::AVCHROMA_LOC_CENTER;
        }
        ctx.rc_buffer_size =
            (bitrate as f64 * vbv_frames / f64::from(options.fps)).min(f64::from(i32::MAX)) as i32;
        ctx.slices = slices as i32;
        if options.backend != Backend::Software {
            // CBR: never below the rate either.
            ctx.rc_min_rate = bitrate.min(i64::MAX as u64) as i64;
        }
        if let Some(frames) = frames {
            ctx.hw_frames_ctx = ffmpeg::ffi::av_buffer_ref(frames.0);
            ensure!(!ctx.hw_frames_ctx.is_null(), "out of memory");
        }
    }
    Ok(enc)
}

/// A reference to an FFmpeg hardware context (`AVBufferRef` of an `AVHWDeviceContext` or
/// `AVHWFramesContext`), released on drop.
pub(super) struct HwBuffer(pub(super) *mut ffmpeg::ffi::AVBufferRef);

// SAFETY: FFmpeg buffer references are atomically refcounted; the context behind one is only
// used by the encoder thread that owns the VideoEncoder.
unsafe impl Send for HwBuffer {}

impl Drop for HwBuffer {
    fn drop(&mut self) {
        // SAFETY: we own this reference; av_buffer_unref nulls the pointer.
        unsafe { ffmpeg::ffi::av_buffer_unref(&mut self.0) };
    }
}

/// Opens the VAAPI device `path` and a pool of `width` x `height` surfaces of `sw_format` (NV12
/// or P010: VAAPI streams are 4:2:0) on it. The pool keeps the device alive.
pub(super) fn vaapi_frames(
    path: &Path,
    sw_format: format::Pixel,
    width: u32,
    height: u32,
) -> Result<HwBuffer> {
    vaapi_device(path)?
        .frames(format::Pixel::VAAPI, sw_format, width, height)
        .with_context(|| {
            format!(
                "cannot create {width}x{height} {sw_format:?} surfaces on {}",
                path.display()
            )
        })
}

/// FFmpeg's VAAPI device on the render node `path`.
fn vaapi_device(path: &Path) -> Result<HwBuffer> {
    let node = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("bad device path {}", path.display()))?;
    let mut device = HwBuffer(ptr::null_mut());
    // SAFETY: av_hwdevice_ctx_create writes a new reference to `device.0` on success and leaves
    // it null otherwise; `node` outlives the call.
    let ret = unsafe {
        ffmpeg::ffi::av_hwdevice_ctx_create(
            &mut device.0,
            ffmpeg::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
            node.as_ptr(),
            ptr::null_mut(),
            0,
        )
    };
    if ret < 0 {
        bail!(
            "cannot open {} as a VAAPI device: {}",
            path.display(),
            ffmpeg::Error::from(ret)
        );
    }
    Ok(device)
}

/// VAAPI's side for frames converted on the GPU: where the compositor renders on the VAAPI
/// device `device`, its buffers are imported as surfaces. `None`, with a log line, where it
/// renders elsewhere.
fn vaapi_input(device: &Path, options: &EncoderOptions) -> Option<GpuInput> {
    let frames_on = options.frames_on.as_deref()?;
    match vaapi::same_device(frames_on, device) {
        Ok(()) => Some(GpuInput::Vaapi(VaapiImporter::new())),
        Err(reason) => {
            info!(%reason, "VAAPI takes its pictures from CPU memory");
            None
        }
    }
}

impl HwBuffer {
    /// A pool of `width` x `height` surfaces of `format` (`VAAPI`, `CUDA`) holding `sw_format`
    /// pictures on the device `self` (an `AVHWDeviceContext`), made as the encoder needs them.
    pub(super) fn frames(
        &self,
        format: format::Pixel,
        sw_format: format::Pixel,
        width: u32,
        height: u32,
    ) -> Result<HwBuffer, ffmpeg::Error> {
        // SAFETY: `self.0` is a valid device reference; the frames context it returns is set up
        // through its documented public fields before av_hwframe_ctx_init.
        unsafe {
            let frames = HwBuffer(ffmpeg::ffi::av_hwframe_ctx_alloc(self.0));
            if frames.0.is_null() {
                return Err(ffmpeg::Error::Other {
                    errno: libc::ENOMEM,
                });
            }
            let fc = &mut *((*frames.0).data as *mut ffmpeg::ffi::AVHWFramesContext);
            fc.format = format.into();
            fc.sw_format = sw_format.into();
            fc.width = width as i32;
            fc.height = height as i32;
            // 0: surfaces are allocated as the encoder needs them.
            fc.initial_pool_size = 0;
            let ret = ffmpeg::ffi::av_hwframe_ctx_init(frames.0);
            if ret < 0 {
                return Err(ffmpeg::Error::from(ret));
            }
            Ok(frames)
        }
    }
}

impl HwBuffer {
    /// Copies the frame `frame` of this pool (a hardware frame) into CPU memory, as FFmpeg lays
    /// out the pool's format (for checks).
    pub(super) fn download(&self, frame: &frame::Video) -> Result<frame::Video, String> {
        let mut out = frame::Video::empty();
        // SAFETY: `frame` holds a buffer of a hardware pool; FFmpeg allocates `out` in the
        // pool's software format and copies into it.
        let ret =
            unsafe { ffmpeg::ffi::av_hwframe_transfer_data(out.as_mut_ptr(), frame.as_ptr(), 0) };
        if ret < 0 {
            return Err(format!(
                "downloading a {:?} frame: {}",
                frame.format(),
                ffmpeg::Error::from(ret)
            ));
        }
        Ok(out)
    }
}

/// The planes of `picture` (of `layout`, `height` rows), each plane's rows one after another,
/// `row_bytes` each.
pub(super) fn frame_planes(
    picture: &frame::Video,
    layout: YuvLayout,
    height: u32,
    row_bytes: u32,
) -> Vec<Vec<u8>> {
    let row = row_bytes as usize;
    (0..layout.planes())
        .map(|p| {
            let data = picture.data(p);
            let stride = picture.stride(p);
            (0..layout.plane_rows(p, height) as usize)
                .flat_map(|r| data[r * stride..r * stride + row].to_vec())
                .collect()
        })
        .collect()
}

/// The pixel format of the caller's pictures: NV12, planar 4:4:4 or P010.
fn pixel_format(options: &EncoderOptions) -> format::Pixel {
    layout_format(Picture::layout_of(options.chroma, options.depth))
}

/// FFmpeg's name for the pictures of a layout the compositor converts into on the GPU, which
/// are the encoders' pictures in memory.
pub(super) fn layout_format(layout: YuvLayout) -> format::Pixel {
    match layout {
        YuvLayout::Nv12 => format::Pixel::NV12,
        YuvLayout::P010 => format::Pixel::P010LE,
        YuvLayout::Yuv444 => format::Pixel::YUV444P,
        YuvLayout::Yuv444P16 => format::Pixel::YUV444P16LE,
    }
}

/// The format a CPU encoder takes where it is not the caller's ([`pixel_format`]): libx265 and
/// libaom take 4:2:0 only as planar, and 10-bit 4:4:4 only with the values in the low bits.
/// `None` for the hardware encoders and where the caller's format goes in as it is.
fn cpu_format(options: &EncoderOptions) -> Option<format::Pixel> {
    if options.backend != Backend::Software {
        return None;
    }
    match (options.codec, options.chroma, options.depth) {
        (Codec::H264, _, _) | (_, Chroma::Yuv444, BitDepth::Eight) => None,
        (_, Chroma::Yuv420, BitDepth::Eight) => Some(format::Pixel::YUV420P),
        (_, Chroma::Yuv420, BitDepth::Ten) => Some(format::Pixel::YUV420P10LE),
        (_, Chroma::Yuv444, BitDepth::Ten) => Some(format::Pixel::YUV444P10LE),
    }
}

/// Copies an NV12 picture into a planar 4:2:0 one of the same size.
fn split_nv12(nv12: &frame::Video, out: &mut frame::Video) {
    let (w, h) = (nv12.width() as usize, nv12.height() as usize);
    let (y, ys) = (nv12.data(0), nv12.stride(0));
    let (uv, uvs) = (nv12.data(1), nv12.stride(1));
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
