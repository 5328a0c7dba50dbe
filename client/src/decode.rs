//! Decoding on its own thread with FFmpeg's software decoders, and the `--output` files.
//!
//! Decoded pictures are brought to 8-bit I420 by hand for the formats software decoders give
//! (4:2:0, 4:2:2 and 4:4:4 planar, NV12, 10-bit 4:2:0, grey): `--output x.y4m` writes every
//! frame of the **first** resolution (a Y4M stream cannot change size; frames after a mode
//! change are counted but not written), `--output x.png` the last frame as RGB.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use ffmpeg::codec::{self, threading};
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use protocol::native::control::{Codec, Colour, Mode};
use tokio::sync::mpsc::UnboundedSender;

use crate::clock::monotonic_ns;
use crate::data::{Notice, VideoFrame};

/// What `--output` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Y4m(PathBuf),
    Png(PathBuf),
}

impl Output {
    /// By the file's extension.
    pub(crate) fn from_path(path: &Path) -> anyhow::Result<Output> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "y4m" => Ok(Output::Y4m(path.to_owned())),
            Some(e) if e == "png" => Ok(Output::Png(path.to_owned())),
            _ => bail!("--output must end in .y4m or .png: {}", path.display()),
        }
    }
}

/// What the decode thread counted.
#[derive(Debug, Default)]
pub(crate) struct DecodeStats {
    pub(crate) frames_decoded: u64,
    pub(crate) errors: u64,
    /// Distinct sizes, `WxH`, in order of appearance.
    pub(crate) resolutions: Vec<String>,
    /// (client monotonic ns at decode, pts) per decoded frame.
    pub(crate) decoded: Vec<(u64, u64)>,
    /// Why writing the output failed, if it did.
    pub(crate) output_error: Option<String>,
}

/// The running decode thread; it ends when the frame sender is dropped.
pub(crate) struct Decoder {
    thread: JoinHandle<anyhow::Result<DecodeStats>>,
}

impl Decoder {
    /// Opens a decoder for `codec` (an error here is the caller's to report) and starts the
    /// thread.
    pub(crate) fn spawn(
        codec: Codec,
        mode: Mode,
        colour: Colour,
        output: Option<Output>,
        notices: UnboundedSender<Notice>,
    ) -> anyhow::Result<(Decoder, mpsc::Sender<VideoFrame>)> {
        let decoder = open(codec)?;
        let (tx, rx) = mpsc::channel::<VideoFrame>();
        let thread = std::thread::Builder::new()
            .name("pf-decode".into())
            .spawn(move || {
                let mut state = State {
                    decoder,
                    sink: output.map(|o| Sink::new(o, mode, colour)),
                    notices,
                    stats: DecodeStats::default(),
                    frame: ffmpeg::frame::Video::empty(),
                };
                for f in rx {
                    state.handle_frame(&f);
                }
                state.finish()
            })
            .context("cannot start the decode thread")?;
        Ok((Decoder { thread }, tx))
    }

    /// Waits for the thread (after the sender was dropped).
    pub(crate) fn join(self) -> anyhow::Result<DecodeStats> {
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => bail!("the decode thread panicked"),
        }
    }
}

fn open(codec: Codec) -> anyhow::Result<ffmpeg::decoder::Video> {
    ffmpeg::init().context("cannot initialise FFmpeg")?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    // Software decoders only; for AV1, dav1d before libavcodec's own (which needs hardware).
    let candidates: &[&str] = match codec {
        Codec::H264 => &["h264"],
        Codec::Hevc => &["hevc"],
        Codec::Av1 => &["libdav1d", "libaom-av1", "av1"],
    };
    let found = candidates
        .iter()
        .find_map(|n| ffmpeg::decoder::find_by_name(n))
        .with_context(|| format!("FFmpeg has no software decoder for {codec:?}"))?;
    let mut ctx = codec::Context::new_with_codec(found);
    ctx.set_flags(codec::Flags::LOW_DELAY);
    // Slice threads add no delay; frame threads would hold frames back.
    ctx.set_threading(threading::Config::kind(threading::Type::Slice));
    ctx.decoder()
        .video()
        .with_context(|| format!("cannot open the {codec:?} decoder"))
}

struct State {
    decoder: ffmpeg::decoder::Video,
    sink: Option<Sink>,
    notices: UnboundedSender<Notice>,
    stats: DecodeStats,
    frame: ffmpeg::frame::Video,
}

impl State {
    fn handle_frame(&mut self, f: &VideoFrame) {
        let mut packet = ffmpeg::Packet::copy(&f.data);
        packet.set_pts(Some(f.pts_ns as i64));
        if self.decoder.send_packet(&packet).is_err() {
            // Damaged or missing references after a loss; the next keyframe heals it.
            self.stats.errors += 1;
        }
        self.receive();
    }

    fn receive(&mut self) {
        while self.decoder.receive_frame(&mut self.frame).is_ok() {
            let now = monotonic_ns();
            if let Some(pts) = self.frame.pts() {
                self.stats.decoded.push((now, pts as u64));
            }
            self.stats.frames_decoded += 1;
            if self.stats.frames_decoded == 1 {
                let _ = self.notices.send(Notice::FirstDecoded);
            }
            let size = format!("{}x{}", self.frame.width(), self.frame.height());
            if !self.stats.resolutions.contains(&size) {
                self.stats.resolutions.push(size);
            }
            if let Some(sink) = &mut self.sink {
                if let Err(e) = sink.handle_picture(&self.frame) {
                    self.stats.output_error = Some(format!("{e:#}"));
                    self.sink = None;
                }
            }
        }
    }

    fn finish(mut self) -> anyhow::Result<DecodeStats> {
        let _ = self.decoder.send_eof();
        self.receive();
        if let Some(sink) = self.sink.take() {
            if let Err(e) = sink.finish() {
                self.stats.output_error = Some(format!("{e:#}"));
            }
        }
        Ok(self.stats)
    }
}

/// An 8-bit I420 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct I420 {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) y: Vec<u8>,
    pub(crate) u: Vec<u8>,
    pub(crate) v: Vec<u8>,
}

impl I420 {
    fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// From a decoded frame, for the formats software decoders give.
    fn from_frame(f: &ffmpeg::frame::Video) -> anyhow::Result<I420> {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |i: usize, pw: usize, ph: usize, bpp: usize| -> Vec<u8> {
            let (data, stride) = (f.data(i), f.stride(i));
            let mut out = Vec::with_capacity(pw * ph);
            for row in 0..ph {
                let line = &data[row * stride..row * stride + pw * bpp];
                if bpp == 1 {
                    out.extend_from_slice(line);
                } else {
                    // 10 bits in 16, little-endian: keep the top 8.
                    out.extend(
                        line.chunks_exact(2)
                            .map(|p| (u16::from_le_bytes([p[0], p[1]]) >> 2).min(255) as u8),
                    );
                }
            }
            out
        };
        let (y, u, v) = match f.format() {
            Pixel::YUV420P | Pixel::YUVJ420P => {
                (plane(0, w, h, 1), plane(1, cw, ch, 1), plane(2, cw, ch, 1))
            }
            Pixel::YUV420P10LE => (plane(0, w, h, 2), plane(1, cw, ch, 2), plane(2, cw, ch, 2)),
            Pixel::YUV422P | Pixel::YUVJ422P => (
                plane(0, w, h, 1),
                halve_rows(&plane(1, cw, h, 1), cw),
                halve_rows(&plane(2, cw, h, 1), cw),
            ),
            Pixel::YUV444P | Pixel::YUVJ444P => (
                plane(0, w, h, 1),
                halve_both(&plane(1, w, h, 1), w, h),
                halve_both(&plane(2, w, h, 1), w, h),
            ),
            Pixel::NV12 => {
                let uv = plane(1, cw * 2, ch, 1);
                (
                    plane(0, w, h, 1),
                    uv.iter().step_by(2).copied().collect(),
                    uv.iter().skip(1).step_by(2).copied().collect(),
                )
            }
            Pixel::GRAY8 => (plane(0, w, h, 1), vec![128; cw * ch], vec![128; cw * ch]),
            other => bail!("cannot convert decoded pictures of format {other:?}"),
        };
        Ok(I420 {
            width: w,
            height: h,
            y,
            u,
            v,
        })
    }

    /// RGB (3 bytes a pixel) with the colour's matrix (BT.709, else BT.601) and range.
    pub(crate) fn to_rgb(&self, colour: &Colour) -> Vec<u8> {
        // Coefficients of R = Y + cr_r V, G = Y + cb_g U + cr_g V, B = Y + cb_b U.
        let (kr, kb) = if colour.matrix == 1 {
            (0.2126, 0.0722)
        } else {
            (0.299, 0.114)
        };
        let kg = 1.0 - kr - kb;
        let (cr_r, cb_b) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
        let (cb_g, cr_g) = (-cb_b * kb / kg, -cr_r * kr / kg);
        let (y_off, y_scale, c_scale) = if colour.full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        let (cw, _) = self.chroma_size();
        let mut rgb = Vec::with_capacity(self.width * self.height * 3);
        for row in 0..self.height {
            for col in 0..self.width {
                let y = (f64::from(self.y[row * self.width + col]) - y_off) * y_scale;
                let c = (row / 2) * cw + col / 2;
                let u = (f64::from(self.u[c]) - 128.0) * c_scale;
                let v = (f64::from(self.v[c]) - 128.0) * c_scale;
                let px = [y + cr_r * v, y + cb_g * u + cr_g * v, y + cb_b * u];
                rgb.extend(px.map(|x| x.round().clamp(0.0, 255.0) as u8));
            }
        }
        rgb
    }
}

fn halve_rows(p: &[u8], w: usize) -> Vec<u8> {
    p.chunks(w)
        .step_by(2)
        .flat_map(|r| r.iter().copied())
        .collect()
}

fn halve_both(p: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(cw * ch);
    for r in 0..ch {
        for c in 0..cw {
            out.push(p[(2 * r) * w + 2 * c]);
        }
    }
    out
}

/// Where decoded pictures go.
struct Sink {
    output: Output,
    mode: Mode,
    colour: Colour,
    y4m: Option<(BufWriter<File>, usize, usize)>,
    last: Option<I420>,
}

impl Sink {
    fn new(output: Output, mode: Mode, colour: Colour) -> Sink {
        Sink {
            output,
            mode,
            colour,
            y4m: None,
            last: None,
        }
    }

    fn handle_picture(&mut self, f: &ffmpeg::frame::Video) -> anyhow::Result<()> {
        match &self.output {
            Output::Png(_) => {
                self.last = Some(I420::from_frame(f)?);
                Ok(())
            }
            Output::Y4m(path) => {
                let (w, h) = (f.width() as usize, f.height() as usize);
                if self.y4m.is_none() {
                    let file = File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut out = BufWriter::new(file);
                    out.write_all(y4m_header(w, h, self.mode.refresh_mhz).as_bytes())?;
                    self.y4m = Some((out, w, h));
                }
                let Some((out, fw, fh)) = &mut self.y4m else {
                    return Ok(());
                };
                if (w, h) != (*fw, *fh) {
                    return Ok(());
                }
                let p = I420::from_frame(f)?;
                out.write_all(b"FRAME\n")?;
                out.write_all(&p.y)?;
                out.write_all(&p.u)?;
                out.write_all(&p.v)?;
                Ok(())
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self.output {
            Output::Y4m(path) => {
                if let Some((mut out, ..)) = self.y4m {
                    out.flush()
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Ok(())
            }
            Output::Png(path) => {
                let Some(p) = self.last else {
                    bail!("no frame decoded: {} not written", path.display());
                };
                write_png(&path, &p, &self.colour)
            }
        }
    }
}

fn y4m_header(w: usize, h: usize, refresh_mhz: u32) -> String {
    format!("YUV4MPEG2 W{w} H{h} F{refresh_mhz}:1000 Ip A1:1 C420jpeg\n")
}

pub(crate) fn write_png(path: &Path, p: &I420, colour: &Colour) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), p.width as u32, p.height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&p.to_rgb(colour))?;
    w.finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_by_extension() {
        assert_eq!(
            Output::from_path(Path::new("a.Y4M")).unwrap(),
            Output::Y4m("a.Y4M".into())
        );
        assert_eq!(
            Output::from_path(Path::new("b.png")).unwrap(),
            Output::Png("b.png".into())
        );
        assert!(Output::from_path(Path::new("c.mp4")).is_err());
    }

    #[test]
    fn limited_range_bt709_to_rgb() {
        // White, black, and BT.709 red (Y 63, Cb 102, Cr 240).
        let p = I420 {
            width: 6,
            height: 2,
            y: [235, 235, 16, 16, 63, 63].repeat(2),
            u: vec![128, 128, 102],
            v: vec![128, 128, 240],
        };
        let rgb = p.to_rgb(&Colour::BT709);
        let px = |i: usize| [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]];
        assert_eq!(px(0), [255, 255, 255]);
        assert_eq!(px(2), [0, 0, 0]);
        let red = px(4);
        assert!(red[0] >= 250 && red[1] <= 5 && red[2] <= 5, "{red:?}");
    }

    #[test]
    fn subsampling_helpers() {
        assert_eq!(halve_rows(&[1, 2, 3, 4, 5, 6], 2), [1, 2, 5, 6]);
        assert_eq!(halve_both(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 3, 3), [1, 3, 7, 9]);
        assert_eq!(
            y4m_header(640, 360, 60_000),
            "YUV4MPEG2 W640 H360 F60000:1000 Ip A1:1 C420jpeg\n"
        );
    }

    #[test]
    fn a_png_of_a_picture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let p = I420 {
            width: 3,
            height: 3,
            y: vec![16; 9],
            u: vec![128; 4],
            v: vec![128; 4],
        };
        write_png(&path, &p, &Colour::BT709).unwrap();
        let dec = png::Decoder::new(File::open(&path).unwrap());
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 3));
        assert!(buf[..27].iter().all(|&b| b == 0));
    }
}
