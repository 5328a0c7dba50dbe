//! `punktfunk run`: one command in a fresh headless compositor, and what it renders on disk.
//!
//! This is how a person sees what an app draws inside punktfunk without a client, and what the
//! benchmarks drive. The output format follows the file name: `.y4m` (every frame, 4:2:0, for
//! any video tool), `.h264` (every frame through the streamer's encoder, Annex B) or `.png`
//! (the last frame).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use compositor::{Compositor, CompositorOptions, Frame, Mode};
use streamer::encode::{
    BitDepth, Chroma, Colorspace, EncoderOptions, Picture, StreamPicture, VideoEncoder,
};
use tracing::info;

/// What `punktfunk run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The output mode.
    pub mode: Mode,
    /// Stop after this many frames.
    pub frames: u64,
    /// Where to write what was rendered; nothing is written without it.
    pub output: Option<PathBuf>,
    /// What renders the output.
    pub renderer: compositor::RendererChoice,
    /// Ask for frames as dmabufs (rendered into GBM buffers on a GPU), read back for the file.
    pub gpu_frames: bool,
    /// The program and its arguments.
    pub cmd: Vec<String>,
}

/// Parses `WxH@R` (R may be fractional, e.g. `800x600@59.94`).
pub fn parse_mode(s: &str) -> anyhow::Result<Mode> {
    let bad = || anyhow::anyhow!("mode {s:?} is not WIDTHxHEIGHT@REFRESH, e.g. 1280x720@60");
    let (size, refresh) = s.split_once('@').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let width: u32 = w.parse().map_err(|_| bad())?;
    let height: u32 = h.parse().map_err(|_| bad())?;
    let hz: f64 = refresh.parse().map_err(|_| bad())?;
    if width == 0 || height == 0 || !(1.0..=1000.0).contains(&hz) {
        return Err(bad());
    }
    Ok(Mode {
        width,
        height,
        refresh_mhz: (hz * 1000.0).round() as u32,
    })
}

enum Sink {
    None,
    /// Frames go into the picture as a stream's do: converted on the GPU when they are
    /// dmabufs, else only the rows that changed.
    Y4m(BufWriter<File>, StreamPicture),
    H264(BufWriter<File>, StreamPicture, Box<VideoEncoder>),
    Png(PathBuf, Option<Frame>),
}

/// Runs the command and records until it has rendered `frames` frames or exits.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let Mode {
        width,
        height,
        refresh_mhz,
    } = opts.mode;
    if width % 2 != 0 || height % 2 != 0 {
        bail!("the mode must have an even width and height for 4:2:0 output");
    }
    let comp = Compositor::spawn(CompositorOptions {
        client_buffer_frames: true,
        renderer: opts.renderer,
        gpu_frames: opts.gpu_frames,
        ..CompositorOptions::new(opts.mode)
    })
    .context("cannot start the compositor")?;
    let (program, args) = opts.cmd.split_first().context("no command given")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("WAYLAND_DISPLAY", comp.socket_name())
        .env("XDG_RUNTIME_DIR", comp.runtime_dir())
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(d) = comp.x11_display() {
        cmd.env("DISPLAY", d);
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let fps = (refresh_mhz / 1000).max(1);
    let mut sink = match &opts.output {
        None => Sink::None,
        Some(p) => open_sink(p, width, height, fps, refresh_mhz)?,
    };
    let frames = comp.frames();
    let started = Instant::now();
    let mut written = 0u64;
    let mut dmabufs = 0u64;
    let mut cpu = CpuClock::new();
    while written < opts.frames {
        if let Some(status) = child.try_wait()? {
            info!(%status, "the command exited");
            break;
        }
        let Some(frame) = frames.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        // The first frame is the empty output; what the app draws starts after it.
        if frame.seq == 0 {
            continue;
        }
        if matches!(frame.data, compositor::FrameData::Dmabuf(_)) {
            dmabufs += 1;
        }
        write_frame(&mut sink, frame)?;
        written += 1;
    }
    finish(sink)?;
    // SAFETY: kill(2) on the process group we created; no memory involved.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGTERM) };
    let _ = child.wait();
    let elapsed = started.elapsed();
    let cpu = cpu.elapsed();
    eprintln!(
        "recorded {written} frames at {width}x{height}@{:.2} in {:.2} s; host CPU {:.2} ms per frame",
        f64::from(refresh_mhz) / 1000.0,
        elapsed.as_secs_f64(),
        if written > 0 { cpu.as_secs_f64() * 1000.0 / written as f64 } else { 0.0 }
    );
    if opts.gpu_frames {
        eprintln!("{dmabufs} of the {written} frames were dmabufs");
    }
    Ok(())
}

fn open_sink(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    refresh_mhz: u32,
) -> anyhow::Result<Sink> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let h264 = match ext.as_str() {
        "png" => return Ok(Sink::Png(path.to_path_buf(), None)),
        "y4m" => false,
        "h264" | "264" => true,
        _ => bail!(
            "unknown output type {:?}; use .y4m, .h264 or .png",
            path.display()
        ),
    };
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let nv12 = StreamPicture::new(Picture::new(
        Chroma::Yuv420,
        BitDepth::Eight,
        width,
        height,
    )?);
    if h264 {
        let mut o = EncoderOptions::new(width, height, fps, 20_000);
        o.colorspace = Colorspace::Rec709Limited;
        return Ok(Sink::H264(w, nv12, Box::new(VideoEncoder::new(o)?)));
    }
    writeln!(
        w,
        "YUV4MPEG2 W{width} H{height} F{refresh_mhz}:1000 Ip A1:1 C420jpeg XYSCSS=420JPEG"
    )?;
    Ok(Sink::Y4m(w, nv12))
}

fn write_frame(sink: &mut Sink, frame: Frame) -> anyhow::Result<()> {
    match sink {
        Sink::None => {}
        Sink::Png(_, last) => *last = Some(frame),
        Sink::Y4m(w, picture) => {
            picture.convert(&frame, Colorspace::Rec601Full)?;
            let Picture::Nv12(nv12) = picture.picture() else {
                bail!("the recording's picture is not NV12");
            };
            w.write_all(b"FRAME\n")?;
            let (y, ys) = nv12.y_plane();
            let (width, height) = (nv12.width() as usize, nv12.height() as usize);
            for row in 0..height {
                w.write_all(&y[row * ys..row * ys + width])?;
            }
            let (uv, uvs) = nv12.uv_plane();
            for plane in 0..2 {
                for row in 0..height / 2 {
                    let line: Vec<u8> = uv[row * uvs..row * uvs + width]
                        .iter()
                        .skip(plane)
                        .step_by(2)
                        .copied()
                        .collect();
                    w.write_all(&line)?;
                }
            }
        }
        Sink::H264(w, picture, enc) => {
            picture.convert(&frame, Colorspace::Rec709Limited)?;
            // The frame may be the app's own buffer: give it back before encoding.
            drop(frame);
            if let Some(au) = enc.encode_picture(picture.picture(), false)? {
                w.write_all(&au.data)?;
                enc.recycle(au);
            }
        }
    }
    Ok(())
}

fn finish(sink: Sink) -> anyhow::Result<()> {
    match sink {
        Sink::None => {}
        Sink::Y4m(mut w, _) | Sink::H264(mut w, _, _) => w.flush()?,
        Sink::Png(path, last) => {
            let frame = last.context("the command rendered no frame")?;
            let bgra = frame.to_vec()?;
            let mut rgb = Vec::with_capacity((frame.width * frame.height * 3) as usize);
            for row in 0..frame.height as usize {
                let line = &bgra[row * frame.stride() as usize..][..frame.width as usize * 4];
                for px in line.chunks_exact(4) {
                    rgb.extend_from_slice(&[px[2], px[1], px[0]]);
                }
            }
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut enc = png::Encoder::new(BufWriter::new(file), frame.width, frame.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&rgb)?;
        }
    }
    Ok(())
}

/// CPU time of this process (the compositor and the recorder, not the app).
struct CpuClock(Duration);

impl CpuClock {
    fn new() -> Self {
        Self(Self::now())
    }

    fn elapsed(&mut self) -> Duration {
        Self::now().saturating_sub(self.0)
    }

    fn now() -> Duration {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes one rusage struct into the buffer we own.
        let ru = unsafe {
            libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
            ru.assume_init()
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_fractional_refresh() {
        assert_eq!(
            parse_mode("800x600@59.94").unwrap(),
            Mode {
                width: 800,
                height: 600,
                refresh_mhz: 59_940
            }
        );
        assert_eq!(parse_mode("1920x1080@120").unwrap().refresh_mhz, 120_000);
        for bad in ["", "1280x720", "1280@60", "0x720@60", "1280x720@0", "axb@c"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
