//! BGRA -> 10-bit Y'CbCr (P010, or planar 4:4:4) for clients that ask for a 10-bit stream.
//!
//! Moonlight asks for HEVC Main10 or AV1 Main 10-bit when its user turns HDR on. The compositor
//! renders 8-bit SDR, so the stream stays SDR (BT.601/709 as the client chose, no PQ, and the
//! host never announces HDR mode), as Sunshine streams an SDR desktop to such a client; what the
//! client gets is the picture converted with two more bits per sample, so that the matrix's
//! rounding adds no steps to gradients. Each 8-bit R'G'B' value maps to the nearest 10-bit code
//! of the formula, not to the 8-bit code shifted left.
//!
//! P010 is NV12 with 16-bit little-endian samples holding the value in their top ten bits; it is
//! what NVENC and VAAPI take, and the CPU encoders get it split into planar 10-bit 4:2:0 like
//! NV12 is split for them. No SIMD crate converts 8-bit BGRA to P010, so the kernel is ours:
//! fixed-point, two rows at a time, the bands split over rayon's pool like the 8-bit path.
//!
//! A client that also asks for 4:4:4 gets planar 4:4:4 with the same 16-bit samples
//! ([`Yuv444P10Frame`], FFmpeg's `yuv444p16le`, as NVENC takes it); each pixel keeps its own Cb
//! and Cr, computed as for a block of four equal pixels.

use std::ops::Range;

use anyhow::{ensure, Result};
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use super::color::{
    allocate, picture_basics, planes_mut, BandSource, Colorspace, RowBands, Source,
};

/// A reusable P010 picture: a Y plane and an interleaved CbCr plane at half resolution, 16 bits
/// per sample with the 10-bit value in the high bits.
///
/// Like [`super::Nv12Frame`], an FFmpeg frame underneath that the encoder takes by reference.
pub struct P010Frame {
    frame: frame::Video,
}

impl P010Frame {
    /// Allocates a picture; width and height must be even and non-zero.
    pub fn new(width: u32, height: u32) -> Result<P010Frame> {
        ensure!(
            width > 0 && height > 0 && width & 1 == 0 && height & 1 == 0,
            "P010 needs an even, non-zero size, got {width}x{height}"
        );
        Ok(P010Frame {
            frame: allocate(Pixel::P010LE, 2, width, height)?,
        })
    }

    /// The 10-bit value of luma sample (`x`, `y`).
    pub fn luma(&self, x: u32, y: u32) -> u16 {
        sample10(&self.frame, 0, x as usize, y as usize)
    }

    /// The 10-bit (Cb, Cr) of the 2x2 block holding pixel (`x`, `y`).
    pub fn chroma(&self, x: u32, y: u32) -> (u16, u16) {
        let (col, row) = (x as usize / 2 * 2, y as usize / 2);
        let at = |col| sample10(&self.frame, 1, col, row);
        (at(col), at(col + 1))
    }

    /// Both planes as 16-bit samples, writable, with their strides in samples.
    fn planes_mut(&mut self) -> Result<[(&mut [u16], usize); 2]> {
        let height = self.frame.height() as usize;
        planes_mut(&mut self.frame, [height, height / 2])
    }
}

/// The 10-bit value of sample `col` of row `row` of `plane` (16-bit samples, value in the high
/// bits).
fn sample10(frame: &frame::Video, plane: usize, col: usize, row: usize) -> u16 {
    samples(frame.data(plane))[row * frame.stride(plane) / 2 + col] >> 6
}

picture_basics!(P010Frame);

/// A reusable planar 10-bit 4:4:4 picture: Y, Cb and Cr at full resolution, 16 bits per sample
/// with the value in the high bits (`yuv444p16le`).
pub struct Yuv444P10Frame {
    frame: frame::Video,
}

impl Yuv444P10Frame {
    /// Allocates a picture; width and height must be non-zero.
    pub fn new(width: u32, height: u32) -> Result<Yuv444P10Frame> {
        ensure!(
            width > 0 && height > 0,
            "a picture needs a non-zero size, got {width}x{height}"
        );
        Ok(Yuv444P10Frame {
            frame: allocate(Pixel::YUV444P16LE, 3, width, height)?,
        })
    }

    /// The 10-bit (Y, Cb, Cr) of pixel (`x`, `y`).
    pub fn pixel(&self, x: u32, y: u32) -> (u16, u16, u16) {
        let at = |plane| sample10(&self.frame, plane, x as usize, y as usize);
        (at(0), at(1), at(2))
    }

    fn planes_mut(&mut self) -> Result<[(&mut [u16], usize); 3]> {
        let height = self.frame.height() as usize;
        planes_mut(&mut self.frame, [height; 3])
    }
}

picture_basics!(Yuv444P10Frame);

/// Converts a BGRA/BGRX picture (`stride` bytes per row) of the same size as `dst` into `dst`.
/// Chroma is the average of each 2x2 block. Errors if `bgra` is shorter than `stride * height`.
pub fn convert_bgra_p010(
    bgra: &[u8],
    stride: usize,
    colorspace: Colorspace,
    dst: &mut P010Frame,
) -> Result<()> {
    let rows = 0..dst.height() as usize;
    convert_p010(&|band| band(bgra), stride, colorspace, dst, rows)
}

/// [`convert_bgra_p010`] into a planar 10-bit 4:4:4 picture: every pixel keeps its own Cb and Cr.
pub fn convert_bgra_444_10(
    bgra: &[u8],
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Yuv444P10Frame,
) -> Result<()> {
    let rows = 0..dst.height() as usize;
    convert_444_10(&|band| band(bgra), stride, colorspace, dst, rows)
}

/// Fractional bits of the fixed-point coefficients.
const FRACTION: u32 = 16;

/// The conversion of one colourspace from 8-bit R'G'B' to 10-bit Y'CbCr, in fixed point: luma
/// from one pixel, chroma from the sum of a 2x2 block's four pixels.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    /// Weights of R, G, B for Y, scaled by the luma range over 255.
    y: [i32; 3],
    /// Weights of the block's R, G, B sums for Cb and Cr (a quarter of the per-pixel weights
    /// is folded into the final shift).
    cb: [i32; 3],
    cr: [i32; 3],
    /// The black level plus half a code, in fixed point.
    y_offset: i32,
    /// The chroma midpoint plus half a code, in the fixed point of the block sums.
    c_offset: i32,
}

impl Coefficients {
    fn new(colorspace: Colorspace) -> Coefficients {
        let (kr, kb) = colorspace.kr_kb();
        let (kr, kb) = (f64::from(kr), f64::from(kb));
        let kg = 1.0 - kr - kb;
        // Rec. ITU-T H.273: limited range is 64 + 876 Y' and 512 + 896 Pb; full range is
        // 1023 Y' and 512 + 1023 Pb.
        let (y_range, c_range, black) = if colorspace.is_full_range() {
            (1023.0, 1023.0, 0)
        } else {
            (876.0, 896.0, 64)
        };
        let fixed = |v: f64| (v * f64::from(1u32 << FRACTION)).round() as i32;
        let (ys, cs) = (y_range / 255.0, c_range / 255.0);
        let (cb_div, cr_div) = (2.0 * (1.0 - kb), 2.0 * (1.0 - kr));
        Coefficients {
            y: [fixed(kr * ys), fixed(kg * ys), fixed(kb * ys)],
            cb: [
                fixed(-kr / cb_div * cs),
                fixed(-kg / cb_div * cs),
                fixed(0.5 * cs),
            ],
            cr: [
                fixed(0.5 * cs),
                fixed(-kg / cr_div * cs),
                fixed(-kb / cr_div * cs),
            ],
            y_offset: (black << FRACTION) + (1 << (FRACTION - 1)),
            c_offset: (512 << (FRACTION + 2)) + (1 << (FRACTION + 1)),
        }
    }

    #[inline(always)]
    fn luma(&self, r: i32, g: i32, b: i32) -> u16 {
        let v = (self.y[0] * r + self.y[1] * g + self.y[2] * b + self.y_offset) >> FRACTION;
        (v.clamp(0, 1023) as u16) << 6
    }

    /// (Cb, Cr) from the sums of a block's four R, G and B values.
    #[inline(always)]
    fn chroma(&self, r: i32, g: i32, b: i32) -> (u16, u16) {
        let shift = FRACTION + 2;
        let cb = (self.cb[0] * r + self.cb[1] * g + self.cb[2] * b + self.c_offset) >> shift;
        let cr = (self.cr[0] * r + self.cr[1] * g + self.cr[2] * b + self.c_offset) >> shift;
        (
            (cb.clamp(0, 1023) as u16) << 6,
            (cr.clamp(0, 1023) as u16) << 6,
        )
    }
}

/// Converts two BGRA rows of `y_top.len()` pixels (even) into two luma rows and one interleaved
/// CbCr row: with AVX2 where the CPU has it, the rest (and every pixel elsewhere) in plain code.
/// Both give the same codes.
fn convert_row_pair(
    k: &Coefficients,
    top: &[u8],
    bottom: &[u8],
    y_top: &mut [u16],
    y_bottom: &mut [u16],
    uv: &mut [u16],
) {
    let width = y_top.len();
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        unsafe { avx2::row_pair(k, top, bottom, y_top, y_bottom, uv) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    luma_row(k, &top[done * 4..], &mut y_top[done..]);
    luma_row(k, &bottom[done * 4..], &mut y_bottom[done..]);
    chroma_row(
        k,
        &top[done * 4..],
        &bottom[done * 4..],
        &mut uv[done..width],
    );
}

/// Converts one BGRA row of `y.len()` pixels into a row of each 4:4:4 plane, with AVX2 where the
/// CPU has it like [`convert_row_pair`].
fn convert_row_444(k: &Coefficients, bgra: &[u8], y: &mut [u16], cb: &mut [u16], cr: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        unsafe { avx2::row_444(k, bgra, y, cb, cr) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    row_444_plain(
        k,
        &bgra[done * 4..],
        &mut y[done..],
        &mut cb[done..],
        &mut cr[done..],
    );
}

/// [`convert_row_444`] in plain code.
fn row_444_plain(k: &Coefficients, bgra: &[u8], y: &mut [u16], cb: &mut [u16], cr: &mut [u16]) {
    let planes = y.iter_mut().zip(cb).zip(cr);
    for (((y, cb), cr), p) in planes.zip(bgra.chunks_exact(4)) {
        let (r, g, b) = (i32::from(p[2]), i32::from(p[1]), i32::from(p[0]));
        *y = k.luma(r, g, b);
        // One pixel's chroma is that of a block of four such pixels.
        (*cb, *cr) = k.chroma(4 * r, 4 * g, 4 * b);
    }
}

/// Converts one BGRA row into a luma row (as many pixels as `y` is long).
fn luma_row(k: &Coefficients, bgra: &[u8], y: &mut [u16]) {
    for (out, p) in y.iter_mut().zip(bgra.chunks_exact(4)) {
        *out = k.luma(i32::from(p[2]), i32::from(p[1]), i32::from(p[0]));
    }
}

/// Converts the 2x2 blocks of two BGRA rows into one interleaved CbCr row.
fn chroma_row(k: &Coefficients, top: &[u8], bottom: &[u8], uv: &mut [u16]) {
    for ((c, t), b) in uv
        .chunks_exact_mut(2)
        .zip(top.chunks_exact(8))
        .zip(bottom.chunks_exact(8))
    {
        let sum = |i: usize| {
            i32::from(t[i]) + i32::from(t[i + 4]) + i32::from(b[i]) + i32::from(b[i + 4])
        };
        let (cb, cr) = k.chroma(sum(2), sum(1), sum(0));
        c[0] = cb;
        c[1] = cr;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The row-pair conversion, 16 pixels of each row per step, in 32-bit lanes.

    use std::arch::x86_64::*;

    use super::{Coefficients, FRACTION};

    /// R, G and B of eight BGRX pixels, each in a 32-bit lane.
    #[target_feature(enable = "avx2")]
    unsafe fn channels(px: __m256i) -> [__m256i; 3] {
        let byte = _mm256_set1_epi32(0xff);
        [
            _mm256_and_si256(_mm256_srli_epi32::<16>(px), byte),
            _mm256_and_si256(_mm256_srli_epi32::<8>(px), byte),
            _mm256_and_si256(px, byte),
        ]
    }

    /// `w . c + offset`, in lanes.
    #[target_feature(enable = "avx2")]
    unsafe fn weigh(c: &[__m256i; 3], w: &[__m256i; 3], offset: __m256i) -> __m256i {
        let r = _mm256_mullo_epi32(c[0], w[0]);
        let g = _mm256_mullo_epi32(c[1], w[1]);
        let b = _mm256_mullo_epi32(c[2], w[2]);
        _mm256_add_epi32(_mm256_add_epi32(r, g), _mm256_add_epi32(b, offset))
    }

    /// Clamps lanes to 0..=1023 and moves them to the top ten bits of 16.
    #[target_feature(enable = "avx2")]
    unsafe fn to_p010(v: __m256i) -> __m256i {
        let v = _mm256_min_epi32(
            _mm256_max_epi32(v, _mm256_setzero_si256()),
            _mm256_set1_epi32(1023),
        );
        _mm256_slli_epi32::<6>(v)
    }

    /// Packs two vectors of eight 32-bit values (each below 2^16) into sixteen 16-bit values, in
    /// order.
    #[target_feature(enable = "avx2")]
    unsafe fn pack(a: __m256i, b: __m256i) -> __m256i {
        // packus works per 128-bit half: a0..3 b0..3 | a4..7 b4..7; the permute restores order.
        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(a, b))
    }

    /// R, G and B of the eight pixels of `row` from pixel `x` on, as [`channels`].
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and `row` holds at least `4 * (x + 8)` bytes.
    #[target_feature(enable = "avx2")]
    unsafe fn load(row: &[u8], x: usize) -> [__m256i; 3] {
        channels(_mm256_loadu_si256(row.as_ptr().add(x * 4).cast()))
    }

    /// Per channel, the sums of the eight 2x2 blocks of sixteen pixels of two rows: top plus
    /// bottom, then adjacent pairs (hadd leaves them as blocks 0 1 4 5 | 2 3 6 7).
    #[target_feature(enable = "avx2")]
    unsafe fn block_sums(t: &[[__m256i; 3]; 2], b: &[[__m256i; 3]; 2]) -> [__m256i; 3] {
        let mut sums = [_mm256_setzero_si256(); 3];
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum = _mm256_hadd_epi32(
                _mm256_add_epi32(t[0][i], b[0][i]),
                _mm256_add_epi32(t[1][i], b[1][i]),
            );
        }
        sums
    }

    /// Eight chroma samples (of one kind, by `w`), in 32-bit lanes, of eight 2x2 blocks whose
    /// channel sums are `sums` (a single pixel's channels times four count as such a block).
    #[target_feature(enable = "avx2")]
    unsafe fn chroma8(sums: &[__m256i; 3], w: &[__m256i; 3], offset: __m256i) -> __m256i {
        const SHIFT: i32 = FRACTION as i32 + 2;
        to_p010(_mm256_srai_epi32::<SHIFT>(weigh(sums, w, offset)))
    }

    /// Sixteen chroma samples (of one kind, by `w`) of sixteen pixels whose channels, `quad`,
    /// are block sums or single channels times four.
    #[target_feature(enable = "avx2")]
    unsafe fn chroma16(quad: &[[__m256i; 3]; 2], w: &[__m256i; 3], offset: __m256i) -> __m256i {
        pack(chroma8(&quad[0], w, offset), chroma8(&quad[1], w, offset))
    }

    /// Each channel times four.
    #[target_feature(enable = "avx2")]
    unsafe fn times4(c: &[__m256i; 3]) -> [__m256i; 3] {
        [
            _mm256_slli_epi32::<2>(c[0]),
            _mm256_slli_epi32::<2>(c[1]),
            _mm256_slli_epi32::<2>(c[2]),
        ]
    }

    /// Sixteen luma samples of the pixels in `px` (two vectors of eight).
    #[target_feature(enable = "avx2")]
    unsafe fn luma16(c: &[[__m256i; 3]; 2], w: &[__m256i; 3], offset: __m256i) -> __m256i {
        let y0 = to_p010(_mm256_srai_epi32::<{ FRACTION as i32 }>(weigh(
            &c[0], w, offset,
        )));
        let y1 = to_p010(_mm256_srai_epi32::<{ FRACTION as i32 }>(weigh(
            &c[1], w, offset,
        )));
        pack(y0, y1)
    }

    /// Converts the first `16 * n` pixels of two rows (the most that fit `y_top.len()`);
    /// returns how many pixels that was.
    ///
    /// Panics unless `top` and `bottom` hold at least `4 * y_top.len()` bytes, `y_bottom` at
    /// least `y_top.len()` samples and `uv` at least `y_top.len()`.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_pair(
        k: &Coefficients,
        top: &[u8],
        bottom: &[u8],
        y_top: &mut [u16],
        y_bottom: &mut [u16],
        uv: &mut [u16],
    ) -> usize {
        let width = y_top.len();
        assert!(top.len() >= width * 4 && bottom.len() >= width * 4);
        assert!(y_bottom.len() >= width && uv.len() >= width);
        let lanes = |c: [i32; 3]| c.map(|v| _mm256_set1_epi32(v));
        let (wy, wcb, wcr) = (lanes(k.y), lanes(k.cb), lanes(k.cr));
        let (y_offset, c_offset) = (_mm256_set1_epi32(k.y_offset), _mm256_set1_epi32(k.c_offset));
        // Every helper is a function of its own with AVX2 enabled, not a closure or a generic,
        // so that the compiler inlines all of them into this loop: a helper it did not inline
        // would pass every vector through memory (10x slower for 4:4:4).
        let mut x = 0;
        while x + 16 <= width {
            // SAFETY: x + 16 <= width pixels lie inside both rows (asserted above).
            let t = [load(top, x), load(top, x + 8)];
            let b = [load(bottom, x), load(bottom, x + 8)];
            _mm256_storeu_si256(y_top.as_mut_ptr().add(x).cast(), luma16(&t, &wy, y_offset));
            _mm256_storeu_si256(
                y_bottom.as_mut_ptr().add(x).cast(),
                luma16(&b, &wy, y_offset),
            );
            let sums = block_sums(&t, &b);
            let cb = chroma8(&sums, &wcb, c_offset);
            let cr = chroma8(&sums, &wcr, c_offset);
            // Interleaved: unpack gives Cb Cr pairs of blocks 0 1 | 2 3 and 4 5 | 6 7, and
            // pack's reorder then puts all eight in order.
            let uv16 = pack(_mm256_unpacklo_epi32(cb, cr), _mm256_unpackhi_epi32(cb, cr));
            _mm256_storeu_si256(uv.as_mut_ptr().add(x).cast(), uv16);
            x += 16;
        }
        x
    }

    /// [`row_pair`] for one row of 4:4:4: converts the first `16 * n` pixels (the most that fit
    /// `y.len()`) and returns how many that was.
    ///
    /// Panics unless `bgra` holds at least `4 * y.len()` bytes and `cb` and `cr` at least
    /// `y.len()` samples.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_444(
        k: &Coefficients,
        bgra: &[u8],
        y: &mut [u16],
        cb: &mut [u16],
        cr: &mut [u16],
    ) -> usize {
        let width = y.len();
        assert!(bgra.len() >= width * 4 && cb.len() >= width && cr.len() >= width);
        let lanes = |c: [i32; 3]| c.map(|v| _mm256_set1_epi32(v));
        let (wy, wcb, wcr) = (lanes(k.y), lanes(k.cb), lanes(k.cr));
        let (y_offset, c_offset) = (_mm256_set1_epi32(k.y_offset), _mm256_set1_epi32(k.c_offset));
        // Helpers as functions, not closures: see `row_pair`.
        let mut x = 0;
        while x + 16 <= width {
            // SAFETY: x + 16 <= width pixels lie inside the row (asserted above).
            let c = [load(bgra, x), load(bgra, x + 8)];
            _mm256_storeu_si256(y.as_mut_ptr().add(x).cast(), luma16(&c, &wy, y_offset));
            // A pixel's chroma is that of a block of four such pixels: its channels times four.
            let quad = [times4(&c[0]), times4(&c[1])];
            _mm256_storeu_si256(
                cb.as_mut_ptr().add(x).cast(),
                chroma16(&quad, &wcb, c_offset),
            );
            _mm256_storeu_si256(
                cr.as_mut_ptr().add(x).cast(),
                chroma16(&quad, &wcr, c_offset),
            );
            x += 16;
        }
        x
    }
}

pub(super) fn convert_p010(
    source: &Source<'_>,
    stride: usize,
    colorspace: Colorspace,
    dst: &mut P010Frame,
    rows: Range<usize>,
) -> Result<()> {
    let (width, height) = (dst.width(), dst.height());
    let src = BandSource::new(source, stride, width, height)?;
    let k = Coefficients::new(colorspace);
    // Each band an even number of rows so it has whole chroma rows.
    let bands = RowBands::new(rows, width, height, 2)?;
    let [(y, y_stride), (uv, uv_stride)] = dst.planes_mut()?;
    let w = width as usize;
    bands.run2((y, y_stride), (uv, uv_stride), 2, |first, y, uv| {
        let band_height = y.len() / y_stride;
        src.rows_with(first, band_height, &mut |bgra: &[u8]| {
            let pairs = y
                .chunks_exact_mut(2 * y_stride)
                .zip(uv.chunks_exact_mut(uv_stride))
                .zip(bgra.chunks(2 * stride));
            for ((y_rows, uv_row), bgra_rows) in pairs {
                let (y_top, y_bottom) = y_rows.split_at_mut(y_stride);
                let (top, bottom) = (&bgra_rows[..w * 4], &bgra_rows[stride..stride + w * 4]);
                convert_row_pair(&k, top, bottom, &mut y_top[..w], &mut y_bottom[..w], uv_row);
            }
            Ok(())
        })
    })
}

pub(super) fn convert_444_10(
    source: &Source<'_>,
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Yuv444P10Frame,
    rows: Range<usize>,
) -> Result<()> {
    let (width, height) = (dst.width(), dst.height());
    let src = BandSource::new(source, stride, width, height)?;
    let k = Coefficients::new(colorspace);
    let bands = RowBands::new(rows, width, height, 1)?;
    let planes = dst.planes_mut()?;
    let [ys, us, vs] = planes.each_ref().map(|p| p.1);
    let w = width as usize;
    bands.run3(planes, |first, y, u, v| {
        let band_height = y.len() / ys;
        src.rows_with(first, band_height, &mut |bgra: &[u8]| {
            let planes = y.chunks_exact_mut(ys).zip(u.chunks_exact_mut(us));
            for (((y, u), v), row) in planes.zip(v.chunks_exact_mut(vs)).zip(bgra.chunks(stride)) {
                convert_row_444(&k, &row[..w * 4], &mut y[..w], &mut u[..w], &mut v[..w]);
            }
            Ok(())
        })
    })
}

/// Copies a 16-bit planar picture (10-bit values in the high bits, `yuv444p16le`) into a planar
/// 10-bit one with the values in the low bits (`yuv444p10le`) of the same size, for the CPU
/// encoders.
pub(super) fn shift_444(high: &frame::Video, out: &mut frame::Video) {
    let (w, h) = (high.width() as usize, high.height() as usize);
    for plane in 0..3 {
        let (ss, ds) = (high.stride(plane) / 2, out.stride(plane) / 2);
        let src = samples(high.data(plane));
        let dst = samples_mut(out.data_mut(plane));
        for row in 0..h {
            let d = &mut dst[row * ds..row * ds + w];
            for (d, s) in d.iter_mut().zip(&src[row * ss..row * ss + w]) {
                *d = s >> 6;
            }
        }
    }
}

/// Copies a P010 picture into a planar 10-bit 4:2:0 one (`yuv420p10le`, values in the low
/// bits) of the same size, for the CPU encoders.
pub(super) fn split_p010(p010: &frame::Video, out: &mut frame::Video) {
    let (w, h) = (p010.width() as usize, p010.height() as usize);
    let (ys, uvs) = (p010.stride(0) / 2, p010.stride(1) / 2);
    let (oys, ous, ovs) = (out.stride(0) / 2, out.stride(1) / 2, out.stride(2) / 2);
    let (y, uv) = (samples(p010.data(0)), samples(p010.data(1)));
    let dst = samples_mut(out.data_mut(0));
    for row in 0..h {
        let src = &y[row * ys..row * ys + w];
        for (d, s) in dst[row * oys..row * oys + w].iter_mut().zip(src) {
            *d = s >> 6;
        }
    }
    for row in 0..h / 2 {
        let src = &uv[row * uvs..row * uvs + w];
        for (plane, stride, offset) in [(1, ous, 0), (2, ovs, 1)] {
            let dst = &mut samples_mut(out.data_mut(plane))[row * stride..row * stride + w / 2];
            for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[offset] >> 6;
            }
        }
    }
}

/// A plane of 16-bit samples as such. FFmpeg aligns planes and strides for SIMD, so a 16-bit
/// format's plane always starts and ends on a sample.
fn samples(plane: &[u8]) -> &[u16] {
    // SAFETY: every bit pattern is a valid u16; align_to only yields aligned, in-bounds samples.
    let (head, samples, tail) = unsafe { plane.align_to::<u16>() };
    assert!(
        head.is_empty() && tail.is_empty(),
        "a 16-bit plane is not 16-bit aligned"
    );
    samples
}

fn samples_mut(plane: &mut [u8]) -> &mut [u16] {
    // SAFETY: as in `samples`.
    let (head, samples, tail) = unsafe { plane.align_to_mut::<u16>() };
    assert!(
        head.is_empty() && tail.is_empty(),
        "a 16-bit plane is not 16-bit aligned"
    );
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::color::reference_ycbcr;
    use crate::encode::color::tests::{block_picture, noise};

    /// The formula's values in ten bits, unrounded: limited range is the 8-bit scale times
    /// four (H.273), full range 1023/255 of it around the chroma midpoint.
    fn reference10(r: u8, g: u8, b: u8, cs: Colorspace) -> [f32; 3] {
        let (y, cb, cr) = reference_ycbcr(r, g, b, cs);
        if cs.is_full_range() {
            let s = 1023.0 / 255.0;
            [y * s, 512.0 + (cb - 128.0) * s, 512.0 + (cr - 128.0) * s]
        } else {
            [y * 4.0, cb * 4.0, cr * 4.0]
        }
    }

    #[test]
    fn matches_the_formula_to_half_a_code() {
        let (w, h) = (70, 22);
        let stride = w as usize * 4 + 24;
        let px = block_picture(w, h, stride);
        let mut p010 = P010Frame::new(w, h).unwrap();
        for cs in Colorspace::ALL {
            convert_bgra_p010(&px, stride, cs, &mut p010).unwrap();
            let mut worst = 0.0f32;
            for y in 0..h {
                for x in 0..w {
                    let o = y as usize * stride + x as usize * 4;
                    let want = reference10(px[o + 2], px[o + 1], px[o], cs);
                    let (cb, cr) = p010.chroma(x, y);
                    let got = [p010.luma(x, y), cb, cr];
                    for (g, w) in got.iter().zip(want) {
                        worst = worst.max((f32::from(*g) - w.clamp(0.0, 1023.0)).abs());
                    }
                }
            }
            // Rounding to the nearest code: at most half a code off, plus the fixed point's
            // last bit.
            assert!(worst <= 0.51, "{cs:?}: worst deviation {worst} codes");
        }
    }

    #[test]
    fn vector_and_plain_code_give_the_same_codes() {
        // Every pixel its own colour, so each 2x2 block averages four different ones; 54 pixels
        // are three 16-pixel steps and a tail of six.
        let w = 54;
        let mut state = 0x1b87_3593_u32;
        let px: Vec<u8> = (0..w * 4 * 2)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 23) as u8
            })
            .collect();
        let (top, bottom) = px.split_at(w * 4);
        for cs in Colorspace::ALL {
            let k = Coefficients::new(cs);
            let (mut yt, mut yb, mut uv) = (vec![0u16; w], vec![0u16; w], vec![0u16; w]);
            convert_row_pair(&k, top, bottom, &mut yt, &mut yb, &mut uv);
            let (mut pt, mut pb, mut puv) = (vec![0u16; w], vec![0u16; w], vec![0u16; w]);
            luma_row(&k, top, &mut pt);
            luma_row(&k, bottom, &mut pb);
            chroma_row(&k, top, bottom, &mut puv);
            assert_eq!((yt, yb, uv), (pt, pb, puv), "{cs:?}");
        }
    }

    #[test]
    fn yuv444_matches_the_formula_at_every_pixel() {
        let (w, h) = (37, 5); // odd: 4:4:4 has no blocks
        let stride = w as usize * 4 + 12;
        let px = noise(stride * h as usize, 0x5bd1_e995);
        let mut yuv = Yuv444P10Frame::new(w, h).unwrap();
        for cs in Colorspace::ALL {
            convert_bgra_444_10(&px, stride, cs, &mut yuv).unwrap();
            let mut worst = 0.0f32;
            for y in 0..h {
                for x in 0..w {
                    let o = y as usize * stride + x as usize * 4;
                    let want = reference10(px[o + 2], px[o + 1], px[o], cs);
                    let got = yuv.pixel(x, y);
                    for (g, w) in [got.0, got.1, got.2].iter().zip(want) {
                        worst = worst.max((f32::from(*g) - w.clamp(0.0, 1023.0)).abs());
                    }
                }
            }
            assert!(worst <= 0.51, "{cs:?}: worst deviation {worst} codes");
            // The vector code and the plain code agree on a row of 3 steps and a tail.
            let k = Coefficients::new(cs);
            let row = &px[..w as usize * 4];
            let mut vector = [
                vec![0u16; w as usize],
                vec![0; w as usize],
                vec![0; w as usize],
            ];
            let mut plain = vector.clone();
            let [y, cb, cr] = &mut vector;
            convert_row_444(&k, row, y, cb, cr);
            let [y, cb, cr] = &mut plain;
            row_444_plain(&k, row, y, cb, cr);
            assert_eq!(vector, plain, "{cs:?}");
        }
        assert!(Yuv444P10Frame::new(0, 4).is_err());
        let short = &px[..stride * 4];
        assert!(convert_bgra_444_10(short, stride, Colorspace::Rec709Full, &mut yuv).is_err());
    }

    #[test]
    fn shift_moves_444_values_to_the_low_bits() {
        let (w, h) = (5, 3);
        let px = noise(w as usize * 4 * h as usize, 7);
        let mut yuv = Yuv444P10Frame::new(w, h).unwrap();
        convert_bgra_444_10(&px, w as usize * 4, Colorspace::Rec601Limited, &mut yuv).unwrap();
        let mut low = frame::Video::new(Pixel::YUV444P10LE, w, h);
        shift_444(yuv.as_frame(), &mut low);
        for y in 0..h {
            for x in 0..w {
                let at = |plane: usize| {
                    let o = y as usize * low.stride(plane) + 2 * x as usize;
                    u16::from_le_bytes([low.data(plane)[o], low.data(plane)[o + 1]])
                };
                assert_eq!((at(0), at(1), at(2)), yuv.pixel(x, y));
            }
        }
    }

    #[test]
    fn ten_bits_are_finer_than_eight_shifted() {
        // Grey 32: 64 + 876 * 32 / 255 = 173.9 in ten bits; 8-bit 43 (43.5 rounded) times four
        // would be 172.
        let px = [32u8, 32, 32, 0].repeat(4);
        let mut p010 = P010Frame::new(2, 2).unwrap();
        convert_bgra_p010(&px, 8, Colorspace::Rec709Limited, &mut p010).unwrap();
        assert_eq!(p010.luma(0, 0), 174);
        assert_eq!(p010.chroma(0, 0), (512, 512));
        // The extremes: limited range 64..940, full range 0..1023.
        for (v, cs, want) in [
            (0u8, Colorspace::Rec601Limited, 64),
            (255, Colorspace::Rec601Limited, 940),
            (0, Colorspace::Rec709Full, 0),
            (255, Colorspace::Rec709Full, 1023),
        ] {
            convert_bgra_p010(&[v, v, v, 0].repeat(4), 8, cs, &mut p010).unwrap();
            assert_eq!(p010.luma(1, 1), want, "{v} in {cs:?}");
        }
        // Saturated blue in full range: Cb = 512 + 1023 / 2 clamps to 1023.
        convert_bgra_p010(
            &[255, 0, 0, 0].repeat(4),
            8,
            Colorspace::Rec709Full,
            &mut p010,
        )
        .unwrap();
        assert_eq!(p010.chroma(0, 0).0, 1023);
    }

    #[test]
    fn split_keeps_the_values_in_the_low_bits() {
        let (w, h) = (6, 4);
        let px = block_picture(w, h, w as usize * 4);
        let mut p010 = P010Frame::new(w, h).unwrap();
        convert_bgra_p010(&px, w as usize * 4, Colorspace::Rec709Limited, &mut p010).unwrap();
        let mut planar = frame::Video::new(Pixel::YUV420P10LE, w, h);
        split_p010(p010.as_frame(), &mut planar);
        let at = |plane: usize, x: usize, y: usize| {
            let o = y * planar.stride(plane) + 2 * x;
            u16::from_le_bytes([planar.data(plane)[o], planar.data(plane)[o + 1]])
        };
        for y in 0..h {
            for x in 0..w {
                assert_eq!(at(0, x as usize, y as usize), p010.luma(x, y));
                let (cb, cr) = p010.chroma(x, y);
                assert_eq!(at(1, x as usize / 2, y as usize / 2), cb);
                assert_eq!(at(2, x as usize / 2, y as usize / 2), cr);
            }
        }
    }

    #[test]
    fn rejects_odd_sizes_and_short_buffers() {
        assert!(P010Frame::new(5, 4).is_err());
        assert!(P010Frame::new(4, 0).is_err());
        let mut p010 = P010Frame::new(8, 8).unwrap();
        let cs = Colorspace::Rec709Limited;
        assert!(convert_bgra_p010(&[0; 8 * 8 * 4 - 1], 32, cs, &mut p010).is_err());
        assert!(convert_bgra_p010(&[0; 8 * 8 * 4], 16, cs, &mut p010).is_err());
    }
}
