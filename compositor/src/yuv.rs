//! Y'CbCr pictures made from a GPU frame on the GPU ([`crate::GpuFrame::to_yuv`]).
//!
//! Encoders take Y'CbCr, not the RGB the compositor renders. For a frame that stays on the GPU
//! the conversion runs there too (a shader pass of the GLES renderer), so what crosses into CPU
//! memory for a software encoder is the encoder's own picture: 1.5 bytes a pixel for 4:2:0
//! instead of 4, with no conversion left for the CPU. The shader writes each plane's bytes as
//! they lie in memory (four 8-bit samples, or two 16-bit ones, to an RGBA texel), so one read of
//! the packed texture gives the planes back to back, and the layouts are the ones FFmpeg's
//! encoders take.
//!
//! The matrix and range are the client's; the formula is Rec. ITU-T H.273's, quantised to the
//! nearest code: Y' = Kr R' + (1 - Kr - Kb) G' + Kb B', Cb = (B' - Y') / (2 (1 - Kb)),
//! Cr = (R' - Y') / (2 (1 - Kr)); 4:2:0 chroma is that of the mean of each 2x2 block.

use std::ops::Range;

/// How the samples of a [`YuvPicture`] lie in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum YuvLayout {
    /// 8-bit 4:2:0: a Y plane, then one plane of interleaved Cb, Cr at half resolution
    /// (FFmpeg's `nv12`).
    Nv12,
    /// 8-bit 4:4:4: planes Y, Cb, Cr (FFmpeg's `yuv444p`).
    Yuv444,
    /// 10-bit 4:2:0 laid out like [`YuvLayout::Nv12`], each sample 16 bits little endian with
    /// the value in its top ten bits (FFmpeg's `p010le`).
    P010,
    /// 10-bit 4:4:4: three planes of such 16-bit samples (FFmpeg's `yuv444p16le`, as NVENC
    /// takes it).
    Yuv444P16,
}

impl YuvLayout {
    /// Every layout, for tests and benches.
    pub const ALL: [YuvLayout; 4] = [
        YuvLayout::Nv12,
        YuvLayout::Yuv444,
        YuvLayout::P010,
        YuvLayout::Yuv444P16,
    ];

    /// Whether chroma has full resolution.
    pub fn is_444(self) -> bool {
        matches!(self, YuvLayout::Yuv444 | YuvLayout::Yuv444P16)
    }

    /// Bytes a sample takes: 1, or 2 for the 10-bit layouts.
    pub fn bytes_per_sample(self) -> u32 {
        match self {
            YuvLayout::Nv12 | YuvLayout::Yuv444 => 1,
            YuvLayout::P010 | YuvLayout::Yuv444P16 => 2,
        }
    }

    /// Bits of each sample's value: 8 or 10.
    pub fn depth(self) -> u32 {
        8 + 2 * (self.bytes_per_sample() - 1)
    }

    /// How many planes the picture has: 2 for 4:2:0, 3 for 4:4:4.
    pub fn planes(self) -> usize {
        if self.is_444() {
            3
        } else {
            2
        }
    }

    /// Rows of plane `plane` in a picture `height` rows high.
    pub fn plane_rows(self, plane: usize, height: u32) -> u32 {
        if plane > 0 && !self.is_444() {
            height / 2
        } else {
            height
        }
    }

    /// Rows of all planes together.
    pub fn total_rows(self, height: u32) -> u32 {
        (0..self.planes()).map(|p| self.plane_rows(p, height)).sum()
    }

    /// The size of the RGBA8 (ABGR8888) buffer a `width` x `height` picture is converted into
    /// on the GPU, in texels: each holds four bytes of a plane's row (rows padded to whole
    /// texels), and the planes' rows lie one after another.
    pub fn packed_size(self, width: u32, height: u32) -> (u32, u32) {
        (
            (width * self.bytes_per_sample()).div_ceil(4),
            self.total_rows(height),
        )
    }

    /// The rows of plane `plane` that luma rows `rows` make, counted from the first row of the
    /// first plane (the planes lie one after another, each `height` or `height / 2` rows).
    pub fn plane_span(self, plane: usize, height: u32, rows: &Range<u32>) -> Range<u32> {
        let first: u32 = (0..plane).map(|p| self.plane_rows(p, height)).sum();
        if plane > 0 && !self.is_444() {
            first + rows.start / 2..first + rows.end.div_ceil(2)
        } else {
            first + rows.start..first + rows.end
        }
    }

    /// Whether luma rows `rows` can be converted on their own: inside the picture, not empty,
    /// and for 4:2:0 on whole chroma rows (an even start, and an even end or the last row).
    pub fn can_span(self, height: u32, rows: &Range<u32>) -> bool {
        rows.start < rows.end
            && rows.end <= height
            && (self.is_444()
                || (rows.start.is_multiple_of(2)
                    && (rows.end.is_multiple_of(2) || rows.end == height)))
    }

    /// Why luma rows `rows` of a `width` x `height` frame cannot be converted into this
    /// layout ([`YuvLayout::fits`], [`YuvLayout::can_span`], at least one span), if they
    /// cannot.
    pub(crate) fn check(self, width: u32, height: u32, rows: &[Range<u32>]) -> Result<(), String> {
        if !self.fits(width, height) {
            return Err(format!("a {width}x{height} frame cannot be {self:?}"));
        }
        if rows.is_empty() {
            return Err("no rows to convert".into());
        }
        match rows.iter().find(|r| !self.can_span(height, r)) {
            Some(bad) => Err(format!("rows {bad:?} of a {width}x{height} {self:?} frame")),
            None => Ok(()),
        }
    }

    /// Whether a picture of this size can be made: not empty, and even for 4:2:0.
    pub fn fits(self, width: u32, height: u32) -> bool {
        width > 0
            && height > 0
            && (self.is_444() || (width.is_multiple_of(2) && height.is_multiple_of(2)))
    }
}

/// What to convert a frame into: the layout, and the client's matrix and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvConversion {
    /// How the samples lie in memory.
    pub layout: YuvLayout,
    /// The matrix's red weight Kr: 0.299 for Rec. 601, 0.2126 for Rec. 709.
    pub kr: f32,
    /// The matrix's blue weight Kb: 0.114 for Rec. 601, 0.0722 for Rec. 709.
    pub kb: f32,
    /// Full range (every code) rather than limited (Y in 16..=235 and chroma in 16..=240 at 8
    /// bits, four times that at 10).
    pub full_range: bool,
}

impl YuvConversion {
    /// The coefficients of the conversion from R', G', B' codes (0..=255) to sample codes: rows
    /// for Y', Cb and Cr, and the offsets added to them (before rounding), with the largest
    /// code. The shader and the CPU reference both use these.
    pub(crate) fn coefficients(&self) -> Coefficients {
        let (kr, kb) = (f64::from(self.kr), f64::from(self.kb));
        let kg = 1.0 - kr - kb;
        let depth = self.layout.depth();
        let scale = f64::from(1u32 << (depth - 8));
        let max = f64::from((1u32 << depth) - 1);
        let (y_range, c_range, black) = if self.full_range {
            (max, max, 0.0)
        } else {
            (219.0 * scale, 224.0 * scale, 16.0 * scale)
        };
        let (ys, cs) = (y_range / 255.0, c_range / 255.0);
        let (cb_div, cr_div) = (2.0 * (1.0 - kb), 2.0 * (1.0 - kr));
        let row = |r: f64, g: f64, b: f64| [r as f32, g as f32, b as f32];
        Coefficients {
            y: row(kr * ys, kg * ys, kb * ys),
            cb: row(-kr / cb_div * cs, -kg / cb_div * cs, 0.5 * cs),
            cr: row(0.5 * cs, -kg / cr_div * cs, -kb / cr_div * cs),
            y_offset: black as f32,
            c_offset: (128.0 * scale) as f32,
            max: max as f32,
        }
    }
}

/// See [`YuvConversion::coefficients`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Coefficients {
    pub(crate) y: [f32; 3],
    pub(crate) cb: [f32; 3],
    pub(crate) cr: [f32; 3],
    pub(crate) y_offset: f32,
    pub(crate) c_offset: f32,
    pub(crate) max: f32,
}

/// A frame converted to Y'CbCr: the planes of [`YuvPicture::layout`] back to back, each row
/// [`YuvPicture::stride`] bytes from the next. Only [`YuvPicture::rows`] hold the frame (the
/// rest is zero) when only some rows were asked for.
#[derive(Clone, PartialEq, Eq)]
pub struct YuvPicture {
    layout: YuvLayout,
    width: u32,
    height: u32,
    stride: usize,
    bytes: Vec<u8>,
    rows: Vec<Range<u32>>,
}

impl YuvPicture {
    /// Takes packed planes: `bytes` holds every plane's rows, `stride` bytes apart (a stride
    /// holds a row of samples), and luma rows `rows` (with their chroma rows) hold the frame.
    pub(crate) fn new(
        layout: YuvLayout,
        width: u32,
        height: u32,
        stride: usize,
        bytes: Vec<u8>,
        rows: Vec<Range<u32>>,
    ) -> Result<Self, String> {
        let total = layout.total_rows(height);
        let row = width as usize * layout.bytes_per_sample() as usize;
        if stride < row || bytes.len() < total as usize * stride {
            return Err(format!(
                "{} bytes with a stride of {stride} do not hold a {width}x{height} {layout:?} picture",
                bytes.len()
            ));
        }
        layout.check(width, height, &rows)?;
        Ok(Self {
            layout,
            width,
            height,
            stride,
            bytes,
            rows,
        })
    }

    /// The luma rows that hold the frame (their chroma rows too), in the order asked for.
    pub fn rows(&self) -> &[Range<u32>] {
        &self.rows
    }

    /// The layout of the samples.
    pub fn layout(&self) -> YuvLayout {
        self.layout
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes from the start of one row to the start of the next, in every plane.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Bytes of samples in a row of any plane (the rest of a stride is padding): `width`
    /// samples, as 4:2:0 chroma rows interleave `width / 2` pairs.
    pub fn row_bytes(&self) -> usize {
        self.width as usize * self.layout.bytes_per_sample() as usize
    }

    /// The rows of plane `plane` (0 is Y), [`YuvPicture::stride`] bytes apart; `None` past the
    /// last plane.
    pub fn plane(&self, plane: usize) -> Option<&[u8]> {
        if plane >= self.layout.planes() {
            return None;
        }
        let start: u32 = (0..plane)
            .map(|p| self.layout.plane_rows(p, self.height))
            .sum();
        let rows = self.layout.plane_rows(plane, self.height) as usize;
        let start = start as usize * self.stride;
        self.bytes.get(start..start + rows * self.stride)
    }

    /// Sample `index` of row `row` of plane `plane` (for 4:2:0 chroma, `2 * i` is the Cb and
    /// `2 * i + 1` the Cr of pair `i`), as its value: 0..=255, or 0..=1023 at 10 bits.
    pub fn sample(&self, plane: usize, row: u32, index: u32) -> Option<u16> {
        let bytes = self.plane(plane)?;
        let bps = self.layout.bytes_per_sample() as usize;
        if index as usize * bps >= self.row_bytes() {
            return None;
        }
        let at = row as usize * self.stride + index as usize * bps;
        match bps {
            1 => bytes.get(at).map(|&v| u16::from(v)),
            _ => bytes
                .get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) >> 6),
        }
    }
}

impl std::fmt::Debug for YuvPicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YuvPicture")
            .field("layout", &self.layout)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .finish_non_exhaustive()
    }
}

/// Why a frame could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A GPU frame outlived its compositor, which converts GPU frames.
    #[error("the compositor that rendered the GPU frame is gone")]
    CompositorGone,
    /// The GPU could not convert the frame, or the conversion asked for does not fit it.
    #[error("{0}")]
    Failed(String),
}

/// The CPU's conversion of XRGB8888 pixels (rows `stride` bytes apart), by the same formula as
/// the shader: the reference the tests hold the GPU's pictures to.
#[doc(hidden)]
pub fn convert_on_cpu(
    pixels: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    conversion: &YuvConversion,
) -> Result<YuvPicture, String> {
    let layout = conversion.layout;
    if !layout.fits(width, height) {
        return Err(format!("{layout:?} cannot be {width}x{height}"));
    }
    if pixels.len() < stride * height as usize {
        return Err("the pixels are shorter than stride x height".into());
    }
    let k = conversion.coefficients();
    let rgb = |x: u32, y: u32| {
        let at = y as usize * stride + x as usize * 4;
        [pixels[at + 2], pixels[at + 1], pixels[at]].map(f32::from)
    };
    let code = |row: [f32; 3], offset: f32, c: [f32; 3]| {
        let v = row[0] * c[0] + row[1] * c[1] + row[2] * c[2] + offset;
        (v + 0.5).floor().clamp(0.0, k.max) as u16
    };
    let row_bytes = width as usize * layout.bytes_per_sample() as usize;
    let mut bytes = Vec::new();
    let mut put = |v: u16| match layout.bytes_per_sample() {
        1 => bytes.push(v as u8),
        _ => bytes.extend_from_slice(&(v << 6).to_le_bytes()),
    };
    for y in 0..height {
        for x in 0..width {
            put(code(k.y, k.y_offset, rgb(x, y)));
        }
    }
    if layout.is_444() {
        for (row, offset) in [(k.cb, k.c_offset), (k.cr, k.c_offset)] {
            for y in 0..height {
                for x in 0..width {
                    put(code(row, offset, rgb(x, y)));
                }
            }
        }
    } else {
        for y in (0..height).step_by(2) {
            for x in (0..width).step_by(2) {
                let block = [rgb(x, y), rgb(x + 1, y), rgb(x, y + 1), rgb(x + 1, y + 1)];
                let mean: [f32; 3] =
                    std::array::from_fn(|i| block.iter().map(|p| p[i]).sum::<f32>() / 4.0);
                put(code(k.cb, k.c_offset, mean));
                put(code(k.cr, k.c_offset, mean));
            }
        }
    }
    let whole = 0..height;
    YuvPicture::new(layout, width, height, row_bytes, bytes, Vec::from([whole]))
}

/// [`convert_on_cpu`] keeping only luma rows `rows` (and their chroma rows): a picture as
/// [`crate::GpuFrame::to_yuv_rows`] gives it, the rest zero.
#[doc(hidden)]
pub fn convert_on_cpu_rows(
    pixels: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    conversion: &YuvConversion,
    rows: &[Range<u32>],
) -> Result<YuvPicture, String> {
    let layout = conversion.layout;
    layout.check(width, height, rows)?;
    let whole = convert_on_cpu(pixels, width, height, stride, conversion)?;
    let mut bytes = vec![0; whole.bytes.len()];
    for plane in 0..layout.planes() {
        for span in rows {
            let packed = layout.plane_span(plane, height, span);
            let range = packed.start as usize * whole.stride..packed.end as usize * whole.stride;
            bytes[range.clone()].copy_from_slice(&whole.bytes[range]);
        }
    }
    YuvPicture::new(layout, width, height, whole.stride, bytes, rows.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversion(layout: YuvLayout, full_range: bool) -> YuvConversion {
        YuvConversion {
            layout,
            kr: 0.2126,
            kb: 0.0722,
            full_range,
        }
    }

    /// XRGB8888 rows of `colours`, each pixel repeated `width / colours.len()` times.
    fn stripes(colours: &[[u8; 3]], width: u32, height: u32) -> Vec<u8> {
        let per = width as usize / colours.len();
        (0..height)
            .flat_map(|_| {
                (0..width as usize).flat_map(|x| {
                    let [r, g, b] = colours[x / per];
                    [b, g, r, 0]
                })
            })
            .collect()
    }

    #[test]
    fn black_white_and_grey_get_their_codes_in_every_layout() {
        let pixels = stripes(&[[0, 0, 0], [255, 255, 255], [128, 128, 128]], 6, 2);
        for layout in YuvLayout::ALL {
            let ten = layout.depth() == 10;
            for full in [false, true] {
                let picture = convert_on_cpu(&pixels, 6, 2, 24, &conversion(layout, full)).unwrap();
                let (black, white, grey, mid) = match (ten, full) {
                    (false, false) => (16, 235, 126, 128),
                    (false, true) => (0, 255, 128, 128),
                    (true, false) => (64, 940, 504, 512),
                    (true, true) => (0, 1023, 514, 512),
                };
                let luma: Vec<u16> = (0..6).map(|x| picture.sample(0, 1, x).unwrap()).collect();
                assert_eq!(
                    luma,
                    [black, black, white, white, grey, grey],
                    "{layout:?} full {full}"
                );
                // Greys have no colour.
                for i in 0..6 {
                    let plane = if layout.is_444() { 1 + i % 2 } else { 1 };
                    assert_eq!(picture.sample(plane as usize, 0, i as u32), Some(mid));
                }
            }
        }
    }

    #[test]
    fn spans_of_rows_map_to_the_rows_of_each_plane() {
        let nv12 = YuvLayout::Nv12;
        assert_eq!(nv12.total_rows(480), 720);
        assert_eq!(nv12.plane_span(0, 480, &(10..20)), 10..20);
        assert_eq!(nv12.plane_span(1, 480, &(10..20)), 485..490);
        assert_eq!(YuvLayout::Yuv444P16.plane_span(2, 480, &(10..20)), 970..980);
        assert!(nv12.can_span(480, &(10..20)));
        assert!(!nv12.can_span(480, &(11..20)) && !nv12.can_span(480, &(10..19)));
        assert!(!nv12.can_span(480, &(10..10)) && !nv12.can_span(480, &(470..482)));
        // 4:4:4 takes any rows, to the last of an odd height.
        assert!(YuvLayout::Yuv444.can_span(481, &(11..481)));
    }

    #[test]
    fn planes_and_samples_are_where_the_layout_puts_them() {
        let pixels = stripes(&[[255, 0, 0], [0, 0, 255]], 4, 2);
        let nv12 = convert_on_cpu(&pixels, 4, 2, 16, &conversion(YuvLayout::Nv12, true)).unwrap();
        assert_eq!(nv12.plane(0).unwrap().len(), 8);
        assert_eq!(nv12.plane(1).unwrap().len(), 4);
        assert!(nv12.plane(2).is_none());
        // Rec. 709 full range: red has Cr 255 (clamped from 255.5), blue Cb 255.
        assert_eq!(nv12.plane(1).unwrap(), [99, 255, 255, 116]);
        let p010 = convert_on_cpu(&pixels, 4, 2, 16, &conversion(YuvLayout::P010, true)).unwrap();
        assert_eq!(p010.row_bytes(), 8);
        assert_eq!(p010.sample(0, 0, 0), Some(217));
        assert_eq!(p010.plane(0).unwrap()[..2], (217u16 << 6).to_le_bytes());
        let yuv444 =
            convert_on_cpu(&pixels, 4, 2, 16, &conversion(YuvLayout::Yuv444P16, false)).unwrap();
        assert_eq!(yuv444.plane(2).unwrap().len(), 16);
        assert!(convert_on_cpu(&pixels, 3, 2, 16, &conversion(YuvLayout::Nv12, false)).is_err());
        assert!(convert_on_cpu(&pixels, 4, 2, 16, &conversion(YuvLayout::Yuv444, false)).is_ok());
    }
}
