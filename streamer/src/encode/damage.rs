//! Converting only what changed on screen.
//!
//! A stream converts every frame into the same [`Picture`], which the encoder copies from. Each
//! compositor frame says which regions changed since the frame before it, so when the picture
//! holds that frame, only the rows those regions cover need converting again: a terminal's
//! blinking cursor or a game's small animated menu costs a few rows instead of the whole
//! picture, whose read of the app's pixels is most of the CPU pipeline's cost besides the
//! encoder (`docs/benchmarks.md`, section 1). Whole rows are converted, so a client that
//! damages less than it changed is still shown whole across the width.

use std::ops::Range;

use anyhow::{bail, Result};
use compositor::{ConvertError, Frame, FrameData, GpuFrame, Rect, YuvPicture};
use tracing::{info, warn};

use super::color::{convert_frame_rows, Colorspace, Picture};

/// A stream's picture and the compositor frame it holds.
#[derive(Debug)]
pub struct StreamPicture {
    picture: Picture,
    /// The sequence number of the frame the picture holds, if it holds a whole one.
    holds: Option<u64>,
    /// How GPU frames are converted.
    gpu: OnGpu,
    /// Whether the log has said that frames are converted on the GPU.
    announced: bool,
}

/// Whether the stream's GPU frames are converted on the GPU (and, for [`VideoPipeline`]'s
/// encoders that take them there, handed over on the GPU).
///
/// [`VideoPipeline`]: crate::pipeline::VideoPipeline
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnGpu {
    /// Not tried yet.
    Untried,
    /// Yes: the last conversion worked.
    Working,
    /// The last conversions, this many in a row, failed; those frames were converted on the
    /// CPU.
    Failing(u32),
    /// No: [`GPU_FAILURES`] conversions in a row failed, or the GPU route was turned off; the
    /// frames are read back and converted on the CPU.
    Off,
}

/// After this many failed conversions on the GPU in a row, a stream stops trying.
const GPU_FAILURES: u32 = 3;

/// A GPU frame whose changed rows make more spans than this is converted whole: each span of
/// each plane is a read of its own.
const GPU_SPANS: usize = 8;

impl OnGpu {
    /// The state after a conversion on the GPU that worked (`true`) or failed.
    pub(crate) fn after(self, worked: bool) -> OnGpu {
        match (self, worked) {
            (OnGpu::Off, _) => OnGpu::Off,
            (_, true) => OnGpu::Working,
            (OnGpu::Failing(n), false) if n + 1 >= GPU_FAILURES => OnGpu::Off,
            (OnGpu::Failing(n), false) => OnGpu::Failing(n + 1),
            (_, false) => OnGpu::Failing(1),
        }
    }
}

impl StreamPicture {
    /// `picture`, holding no frame yet.
    pub fn new(picture: Picture) -> StreamPicture {
        StreamPicture {
            picture,
            holds: None,
            gpu: OnGpu::Untried,
            announced: false,
        }
    }

    /// The picture, for the encoder.
    pub fn picture(&self) -> &Picture {
        &self.picture
    }

    /// The picture, to write outside [`StreamPicture::convert`]: it holds no frame afterwards.
    pub fn picture_mut(&mut self) -> &mut Picture {
        self.holds = None;
        &mut self.picture
    }

    /// Whether frames on the GPU are converted there (the default) or read back and converted
    /// on the CPU.
    pub fn set_gpu_conversion(&mut self, on: bool) {
        self.gpu = if on { OnGpu::Untried } else { OnGpu::Off };
    }

    /// Whether the GPU route is in use: the last conversion it tried worked. (A frame that
    /// changed nothing, or one in CPU memory, does not try it.)
    pub fn converted_on_gpu(&self) -> bool {
        self.gpu == OnGpu::Working
    }

    /// Whether the picture holds a whole frame (that can be sent again).
    pub fn holds_frame(&self) -> bool {
        self.holds.is_some()
    }

    /// Fills the picture from `yuv`, the whole of frame `seq` converted on the GPU (one that an
    /// encoder taking frames there could not take): the picture holds that frame afterwards.
    pub fn fill_from_yuv(&mut self, yuv: &YuvPicture, seq: u64) -> Result<()> {
        self.holds = None;
        self.picture.copy_from_yuv(yuv)?;
        self.holds = Some(seq);
        Ok(())
    }

    /// Forgets the frame the picture holds: the next frame is converted whole.
    pub fn invalidate(&mut self) {
        self.holds = None;
    }

    /// Converts `frame` into the picture: only the rows its damage covers when the picture
    /// holds the frame just before it, else (or when the damage covers most of the picture)
    /// every row. A frame on the GPU is converted there, and only those rows of the picture are
    /// read back; a frame the GPU fails to convert is read back and converted on the CPU, and
    /// after [`GPU_FAILURES`] such frames in a row, every later one. Returns how many rows it
    /// converted. After an error the picture holds no frame.
    pub fn convert(&mut self, frame: &Frame, colorspace: Colorspace) -> Result<u32> {
        let height = self.picture.height();
        let all = 0..height;
        let follows = self
            .holds
            .is_some_and(|seq| frame.seq == seq.wrapping_add(1));
        let mut rows = if follows {
            damaged_rows(&frame.damage, height)
        } else {
            vec![all.clone()]
        };
        let mut count: u32 = rows.iter().map(|r| r.end - r.start).sum();
        // One pass over the whole picture beats several over most of it; on the GPU, one read
        // beats many.
        let on_gpu = matches!(frame.data, FrameData::Dmabuf(_)) && self.gpu != OnGpu::Off;
        if count > height / 4 * 3 || (on_gpu && rows.len() > GPU_SPANS) {
            (rows, count) = (vec![all], height);
        }
        self.holds = None;
        let converted = match &frame.data {
            FrameData::Dmabuf(gpu) if on_gpu && !rows.is_empty() => {
                self.convert_on_gpu(gpu, colorspace, &rows)?
            }
            _ => false,
        };
        if !converted {
            for r in rows {
                convert_frame_rows(frame, colorspace, &mut self.picture, r)?;
            }
        }
        self.holds = Some(frame.seq);
        Ok(count)
    }

    /// Converts `rows` of a GPU frame on the GPU into the picture; false when the GPU failed
    /// to (logged), for the caller to convert them on the CPU.
    fn convert_on_gpu(
        &mut self,
        gpu: &GpuFrame,
        colorspace: Colorspace,
        rows: &[Range<u32>],
    ) -> Result<bool> {
        let conversion = colorspace.yuv_conversion(self.picture.yuv_layout());
        match gpu.to_yuv_rows(&conversion, rows) {
            Ok(yuv) => {
                self.picture.copy_from_yuv(&yuv)?;
                if !self.announced {
                    info!(layout = ?conversion.layout, "frames are converted to Y'CbCr on the GPU");
                    self.announced = true;
                }
                self.gpu = self.gpu.after(true);
                Ok(true)
            }
            Err(ConvertError::CompositorGone) => bail!(ConvertError::CompositorGone),
            Err(err) => {
                self.gpu = self.gpu.after(false);
                if self.gpu == OnGpu::Off {
                    warn!(%err, "converting frames on the GPU failed {GPU_FAILURES} times in a row; converting them on the CPU from now on");
                } else {
                    warn!(%err, "converting a frame on the GPU failed; converting it on the CPU");
                }
                Ok(false)
            }
        }
    }
}

/// Spans of damaged rows at most this far apart are converted as one: a few rows more beat
/// another pass (and another dispatch to the thread pool).
const MERGE_GAP: u32 = 16;

/// The rows of a picture of `height` rows that `damage` covers: each rectangle's rows widened
/// to even ones (whole 4:2:0 chroma rows), spans at most `MERGE_GAP` rows apart merged, in
/// order.
pub fn damaged_rows(damage: &[Rect], height: u32) -> Vec<Range<u32>> {
    let mut spans: Vec<Range<u32>> = damage
        .iter()
        .filter(|r| r.width > 0 && r.height > 0 && r.y < height)
        .map(|r| {
            let end = r.y.saturating_add(r.height).min(height);
            (r.y & !1)..end.saturating_add(end & 1).min(height)
        })
        .collect();
    spans.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<u32>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end + MERGE_GAP => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use compositor::{FrameData, FrameFormat};

    use super::*;
    use crate::encode::{BitDepth, Chroma};

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn three_failures_in_a_row_end_the_gpu_route_and_a_success_resets_the_count() {
        let failed = |state: OnGpu, n: u32| (0..n).fold(state, |s, _| s.after(false));
        assert_eq!(failed(OnGpu::Untried, 1), OnGpu::Failing(1));
        assert_eq!(failed(OnGpu::Working, 2), OnGpu::Failing(2));
        assert_eq!(failed(OnGpu::Untried, GPU_FAILURES), OnGpu::Off);
        assert_eq!(failed(OnGpu::Untried, 2).after(true), OnGpu::Working);
        assert_eq!(
            failed(failed(OnGpu::Working, 2).after(true), 2),
            OnGpu::Failing(2)
        );
        // Off stays off, whatever comes.
        assert_eq!(OnGpu::Off.after(true), OnGpu::Off);
    }

    #[test]
    fn damage_becomes_merged_even_row_spans() {
        assert_eq!(damaged_rows(&[], 720), Vec::<Range<u32>>::new());
        let widened = 2..8;
        assert_eq!(damaged_rows(&[rect(5, 3, 10, 4)], 720), [widened]);
        // Overlapping and nearby spans merge, out-of-order rectangles are sorted, empty and
        // off-picture ones are ignored, and spans stop at the picture's edge.
        let damage = [
            rect(0, 100, 50, 10),
            rect(0, 10, 5, 5),
            rect(60, 105, 5, 20),
            rect(0, 16, 1, 2),
            rect(0, 300, 0, 10),
            rect(0, 800, 10, 10),
            rect(0, 715, 10, 100),
        ];
        assert_eq!(damaged_rows(&damage, 720), [10..18, 100..126, 714..720]);
        // Spans 16 rows apart or less are one; 18 apart, two.
        let near = [rect(0, 0, 1, 2), rect(0, 18, 1, 2), rect(0, 40, 1, 2)];
        assert_eq!(damaged_rows(&near, 720), [0..20, 40..42]);
        // A picture of odd height (4:4:4) ends on its last row.
        let to_the_edge = 6..9;
        assert_eq!(damaged_rows(&[rect(0, 7, 2, 2)], 9), [to_the_edge]);
    }

    const W: u32 = 64;
    const H: u32 = 48;

    /// Every picture format.
    const FORMATS: [(Chroma, BitDepth); 4] = [
        (Chroma::Yuv420, BitDepth::Eight),
        (Chroma::Yuv444, BitDepth::Eight),
        (Chroma::Yuv420, BitDepth::Ten),
        (Chroma::Yuv444, BitDepth::Ten),
    ];

    /// A `width` x `height` frame of `bytes` (tight rows) with sequence number `seq`.
    fn frame_of(bytes: Vec<u8>, width: u32, height: u32, seq: u64, damage: Vec<Rect>) -> Frame {
        Frame {
            width,
            height,
            format: FrameFormat::Xrgb8888,
            data: FrameData::Cpu {
                bytes: Arc::from(bytes),
                stride: width * 4,
            },
            damage,
            seq,
            rendered_at: Instant::now(),
            render_time: Duration::ZERO,
        }
    }

    /// A frame of seq `seq` whose pixel row `y` is grey `shade(y)`, with `damage`.
    fn frame(seq: u64, shade: impl Fn(u32) -> u8, damage: Vec<Rect>) -> Frame {
        let mut bytes = vec![0u8; (W * H * 4) as usize];
        for (y, row) in bytes.chunks_exact_mut((W * 4) as usize).enumerate() {
            row.fill(shade(y as u32));
        }
        frame_of(bytes, W, H, seq, damage)
    }

    /// Asserts that two pictures hold the same samples.
    fn assert_same(a: &Picture, b: &Picture, what: &str) {
        let (a, b) = (a.as_frame(), b.as_frame());
        for plane in 0..a.planes() {
            assert!(
                a.data(plane) == b.data(plane),
                "{what}: plane {plane} differs"
            );
        }
    }

    /// The luma of each row of the picture (column 0), full range so grey `g` is luma `g`.
    fn lumas(p: &StreamPicture) -> Vec<u8> {
        let Picture::Nv12(nv12) = p.picture() else {
            panic!("not NV12")
        };
        let (y, stride) = nv12.y_plane();
        (0..H as usize).map(|row| y[row * stride]).collect()
    }

    #[test]
    fn a_following_frame_converts_only_its_damaged_rows() {
        let cs = Colorspace::Rec709Full;
        let picture = Picture::new(Chroma::Yuv420, BitDepth::Eight, W, H).unwrap();
        let mut p = StreamPicture::new(picture);
        assert!(!p.holds_frame());
        assert_eq!(p.convert(&frame(7, |_| 50, vec![]), cs).unwrap(), H);
        assert_eq!(lumas(&p), vec![50; H as usize]);

        // Frame 8 changes every row but says only rows 10..13 changed: those are converted
        // (widened to 10..14), the rest keep frame 7.
        let damage = vec![rect(3, 10, 4, 3)];
        assert_eq!(p.convert(&frame(8, |_| 200, damage), cs).unwrap(), 4);
        let want: Vec<u8> = (0..H)
            .map(|y| if (10..14).contains(&y) { 200 } else { 50 })
            .collect();
        assert_eq!(lumas(&p), want);
        assert!(p.holds_frame());

        // A frame after a gap (9 was never seen) is converted whole, whatever its damage.
        let ramp = |y: u32| (y * 5) as u8;
        assert_eq!(p.convert(&frame(10, ramp, vec![]), cs).unwrap(), H);
        let mut whole =
            StreamPicture::new(Picture::new(Chroma::Yuv420, BitDepth::Eight, W, H).unwrap());
        whole.convert(&frame(1, ramp, vec![]), cs).unwrap();
        assert_eq!(lumas(&p), lumas(&whole));
        assert!(lumas(&p).windows(2).all(|w| w[0] < w[1]), "{:?}", lumas(&p));

        // Damage over most of the picture converts it whole.
        let damage = vec![rect(0, 0, 1, 20), rect(0, 24, 1, 20)];
        assert_eq!(p.convert(&frame(11, |_| 99, damage), cs).unwrap(), H);
        assert_eq!(lumas(&p), vec![99; H as usize]);

        // After invalidate (a skipped frame), the next one is whole too.
        p.invalidate();
        assert_eq!(p.convert(&frame(12, |_| 120, vec![]), cs).unwrap(), H);
        assert_eq!(lumas(&p), vec![120; H as usize]);

        // A picture written from outside holds no frame either: the next one, though it
        // follows, is converted whole over what was written.
        let Picture::Nv12(nv12) = p.picture_mut() else {
            panic!("not NV12")
        };
        nv12.planes_mut().unwrap().0.fill(0);
        assert!(!p.holds_frame());
        assert_eq!(p.convert(&frame(13, |_| 140, vec![]), cs).unwrap(), H);
        assert_eq!(lumas(&p), vec![140; H as usize]);
    }

    #[test]
    fn every_picture_format_converts_just_the_rows() {
        let cs = Colorspace::Rec709Full;
        for (chroma, depth) in FORMATS {
            let picture = Picture::new(chroma, depth, W, H).unwrap();
            let mut p = StreamPicture::new(picture);
            p.convert(&frame(1, |_| 0, vec![]), cs).unwrap();
            p.convert(&frame(2, |_| 255, vec![rect(0, 20, W, 6)]), cs)
                .unwrap();
            let mut whole = Picture::new(chroma, depth, W, H).unwrap();
            let expected = frame(3, |y| if (20..26).contains(&y) { 255 } else { 0 }, vec![]);
            crate::encode::convert_frame_to(&expected, cs, &mut whole).unwrap();
            assert_same(p.picture(), &whole, &format!("{chroma:?} {depth:?}"));
        }
    }

    #[test]
    fn a_picture_converted_on_the_gpu_lands_in_the_planes_the_cpu_fills() {
        // The compositor's reference for its shader (same formula, same packing) copied into
        // each picture format: within one code of the CPU's own conversion, sample by sample,
        // so planes, chroma order and the 10-bit samples' bits all match what the encoders
        // take.
        let (w, h) = (66u32, 34u32);
        let bytes = crate::encode::color::tests::noise((w * h * 4) as usize, 0x2545_F491);
        let frame = frame_of(bytes.clone(), w, h, 1, vec![]);
        for cs in Colorspace::ALL {
            for (chroma, depth) in FORMATS {
                let mut cpu = Picture::new(chroma, depth, w, h).unwrap();
                crate::encode::convert_frame_to(&frame, cs, &mut cpu).unwrap();
                let mut copied = Picture::new(chroma, depth, w, h).unwrap();
                let conversion = cs.yuv_conversion(copied.yuv_layout());
                let yuv =
                    compositor::convert_on_cpu(&bytes, w, h, w as usize * 4, &conversion).unwrap();
                copied.copy_from_yuv(&yuv).unwrap();
                let (a, b) = (cpu.as_frame(), copied.as_frame());
                let wide = depth == BitDepth::Ten;
                for plane in 0..a.planes() {
                    let rows = conversion.layout.plane_rows(plane, h) as usize;
                    let row = yuv.row_bytes();
                    for r in 0..rows {
                        let at = |f: &ffmpeg_next::frame::Video| {
                            f.data(plane)[r * f.stride(plane)..][..row].to_vec()
                        };
                        let (x, y) = (at(a), at(b));
                        let samples = |v: &[u8]| -> Vec<i32> {
                            if wide {
                                v.chunks(2)
                                    .map(|s| i32::from(u16::from_le_bytes([s[0], s[1]])) >> 6)
                                    .collect()
                            } else {
                                v.iter().map(|&s| i32::from(s)).collect()
                            }
                        };
                        let worst = samples(&x)
                            .iter()
                            .zip(samples(&y))
                            .map(|(p, q)| (p - q).abs())
                            .max()
                            .unwrap();
                        assert!(
                            worst <= 1,
                            "{cs:?} {chroma:?} {depth:?}: plane {plane} row {r} is {worst} off"
                        );
                    }
                }
            }
        }
        // A picture of another size or layout is refused.
        let mut nv12 = Picture::new(Chroma::Yuv420, BitDepth::Eight, w, h).unwrap();
        let p010 = Colorspace::Rec601Limited.yuv_conversion(compositor::YuvLayout::P010);
        let yuv = compositor::convert_on_cpu(&bytes, w, h, w as usize * 4, &p010).unwrap();
        assert!(nv12.copy_from_yuv(&yuv).is_err());
    }

    #[test]
    fn a_picture_of_some_rows_from_the_gpu_changes_only_those_rows() {
        let cs = Colorspace::Rec709Full;
        let before = frame(1, |_| 30, vec![]);
        let bytes = crate::encode::color::tests::noise((W * H * 4) as usize, 0x1234_5678);
        let spans = [4..10, 20..22];
        for (chroma, depth) in FORMATS {
            let mut picture = Picture::new(chroma, depth, W, H).unwrap();
            crate::encode::convert_frame_to(&before, cs, &mut picture).unwrap();
            let mut old = Picture::new(chroma, depth, W, H).unwrap();
            crate::encode::convert_frame_to(&before, cs, &mut old).unwrap();
            let conversion = cs.yuv_conversion(picture.yuv_layout());
            let yuv =
                compositor::convert_on_cpu_rows(&bytes, W, H, W as usize * 4, &conversion, &spans)
                    .unwrap();
            picture.copy_from_yuv(&yuv).unwrap();
            let layout = conversion.layout;
            let row_bytes = yuv.row_bytes();
            for plane in 0..layout.planes() {
                let (got, stride) = picture.plane(plane);
                let (was, _) = old.plane(plane);
                for r in 0..layout.plane_rows(plane, H) as usize {
                    let luma_row = if plane > 0 && !layout.is_444() {
                        2 * r
                    } else {
                        r
                    } as u32;
                    let at = r * stride..r * stride + row_bytes;
                    let what = format!("{chroma:?} {depth:?} plane {plane} row {r}");
                    if spans.iter().any(|s| s.contains(&luma_row)) {
                        // Noise where grey was (its values against the streamer's own
                        // conversion: the test above).
                        assert_ne!(got[at.clone()], was[at.clone()], "{what} was not copied");
                    } else {
                        assert_eq!(got[at.clone()], was[at], "{what} changed");
                    }
                }
            }
        }
    }

    #[test]
    fn small_ranges_on_one_thread_match_the_parallel_whole() {
        // 1280x720 is converted whole in parallel bands; 144 rows at a time on this thread.
        let (w, h) = (1280u32, 720u32);
        let bytes = crate::encode::color::tests::noise((w * h * 4) as usize, 0x9E37_79B9);
        let frame = frame_of(bytes, w, h, 1, vec![]);
        let cs = Colorspace::Rec601Limited;
        for (chroma, depth) in FORMATS {
            let mut whole = Picture::new(chroma, depth, w, h).unwrap();
            crate::encode::convert_frame_to(&frame, cs, &mut whole).unwrap();
            let mut pieces = Picture::new(chroma, depth, w, h).unwrap();
            for start in (0..h).step_by(144) {
                convert_frame_rows(&frame, cs, &mut pieces, start..start + 144).unwrap();
            }
            assert_same(&whole, &pieces, &format!("{chroma:?} {depth:?}"));
        }
    }
}
