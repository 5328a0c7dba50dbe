//! BGRA -> NV12 (or planar YUV 4:4:4) colour conversion on the CPU.
//!
//! The compositor's pixman renderer hands out XRGB8888 (little endian: bytes B, G, R, X); x264
//! wants NV12, or planar 4:4:4 when the client asked for full-resolution chroma ([`Picture`]).
//! The conversion runs on the `yuv` crate's SIMD kernels, straight into the planes of the FFmpeg
//! frame that the encoder later reads, so the per-frame path neither allocates nor copies. A
//! small range of rows is converted on the calling thread; a larger one is cut into bands that
//! the calling thread converts with rayon's threads joining in while they are free
//! ([`RowBands`], `bands.rs`).

use std::marker::PhantomData;
use std::ops::Range;

use anyhow::{bail, ensure, Context as _, Result};
use compositor::{YuvConversion, YuvLayout, YuvPicture};
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;
use yuv::{
    BufferStoreMut, YuvBiPlanarImageMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use super::bands;
use super::tenbit::{convert_444_10, convert_p010, P010Frame, Yuv444P10Frame};

/// The Y'CbCr flavour of a stream: matrix and quantisation range.
///
/// Moonlight picks it in the RTSP ANNOUNCE as `x-nv-video[0].encoderCscMode = (colorSpace << 1)
/// | colorRange`, with colorSpace 0 = Rec. 601, 1 = Rec. 709, 2 = Rec. 2020 and colorRange 0 =
/// limited, 1 = full. Its default, 0, is Rec. 601 limited. Rec. 2020 only goes with HDR, which
/// this 8-bit path does not produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colorspace {
    /// BT.601 (SMPTE 170M) matrix, Y in 16..=235, chroma in 16..=240.
    #[default]
    Rec601Limited,
    /// BT.601 matrix, all codes 0..=255 (JPEG style).
    Rec601Full,
    /// BT.709 matrix, limited range.
    Rec709Limited,
    /// BT.709 matrix, full range.
    Rec709Full,
}

impl Colorspace {
    /// Every variant, for tests and benches.
    pub const ALL: [Colorspace; 4] = [
        Colorspace::Rec601Limited,
        Colorspace::Rec601Full,
        Colorspace::Rec709Limited,
        Colorspace::Rec709Full,
    ];

    /// Maps the ANNOUNCE's `encoderCscMode`. `None` for modes this path cannot produce (Rec.
    /// 2020, unknown values); the caller decides whether to fall back or refuse the stream.
    pub fn from_csc_mode(mode: u32) -> Option<Colorspace> {
        match mode {
            0 => Some(Colorspace::Rec601Limited),
            1 => Some(Colorspace::Rec601Full),
            2 => Some(Colorspace::Rec709Limited),
            3 => Some(Colorspace::Rec709Full),
            _ => None,
        }
    }

    /// The inverse of [`Colorspace::from_csc_mode`].
    pub fn csc_mode(self) -> u32 {
        match self {
            Colorspace::Rec601Limited => 0,
            Colorspace::Rec601Full => 1,
            Colorspace::Rec709Limited => 2,
            Colorspace::Rec709Full => 3,
        }
    }

    /// Whether samples use the full 0..=255 range.
    pub fn is_full_range(self) -> bool {
        matches!(self, Colorspace::Rec601Full | Colorspace::Rec709Full)
    }

    /// Whether the matrix is BT.709 (else BT.601).
    pub fn is_bt709(self) -> bool {
        matches!(self, Colorspace::Rec709Limited | Colorspace::Rec709Full)
    }

    /// Luma weights (Kr, Kb) of the matrix.
    pub fn kr_kb(self) -> (f32, f32) {
        if self.is_bt709() {
            (0.2126, 0.0722)
        } else {
            (0.299, 0.114)
        }
    }

    pub(crate) fn yuv_range(self) -> YuvRange {
        if self.is_full_range() {
            YuvRange::Full
        } else {
            YuvRange::Limited
        }
    }

    /// The GPU conversion (see [`compositor::GpuFrame::to_yuv`]) into `layout` with this
    /// matrix and range.
    pub fn yuv_conversion(self, layout: YuvLayout) -> YuvConversion {
        let (kr, kb) = self.kr_kb();
        YuvConversion {
            layout,
            kr,
            kb,
            full_range: self.is_full_range(),
        }
    }

    pub(crate) fn yuv_matrix(self) -> YuvStandardMatrix {
        if self.is_bt709() {
            YuvStandardMatrix::Bt709
        } else {
            YuvStandardMatrix::Bt601
        }
    }
}

/// Width, height, the FFmpeg frame (for the encoder) and `Debug` of a picture type that wraps a
/// `frame: frame::Video`.
macro_rules! picture_basics {
    ($picture:ident) => {
        impl $picture {
            /// Picture width in pixels.
            pub fn width(&self) -> u32 {
                self.frame.width()
            }

            /// Picture height in pixels.
            pub fn height(&self) -> u32 {
                self.frame.height()
            }

            pub(crate) fn as_frame(&self) -> &frame::Video {
                &self.frame
            }

            pub(crate) fn as_frame_mut(&mut self) -> &mut frame::Video {
                &mut self.frame
            }
        }

        impl std::fmt::Debug for $picture {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($picture))
                    .field("width", &self.width())
                    .field("height", &self.height())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(super) use picture_basics;

/// A reusable NV12 picture: full-resolution Y plane, then one interleaved Cb/Cr plane at half
/// resolution in both directions.
///
/// It is an FFmpeg frame underneath, so the encoder can take it by reference; allocate one (or a
/// few) per stream and convert into it every frame.
pub struct Nv12Frame {
    frame: frame::Video,
}

impl Nv12Frame {
    /// Allocates a picture. Width and height must be even and non-zero (4:2:0 has no half chroma
    /// samples).
    pub fn new(width: u32, height: u32) -> Result<Nv12Frame> {
        ensure!(
            width > 0 && height > 0 && width & 1 == 0 && height & 1 == 0,
            "NV12 needs an even, non-zero size, got {width}x{height}"
        );
        Ok(Nv12Frame {
            frame: allocate(Pixel::NV12, 2, width, height)?,
        })
    }

    /// The Y plane (`stride * height` bytes) and its stride in bytes.
    pub fn y_plane(&self) -> (&[u8], usize) {
        (self.frame.data(0), self.frame.stride(0))
    }

    /// The interleaved CbCr plane (`stride * height / 2` bytes) and its stride in bytes.
    pub fn uv_plane(&self) -> (&[u8], usize) {
        (self.frame.data(1), self.frame.stride(1))
    }

    /// Both planes, writable, with their strides: `(y, y_stride, uv, uv_stride)`.
    pub fn planes_mut(&mut self) -> Result<(&mut [u8], usize, &mut [u8], usize)> {
        let height = self.frame.height() as usize;
        let [(y, y_stride), (uv, uv_stride)] = planes_mut(&mut self.frame, [height, height / 2])?;
        Ok((y, y_stride, uv, uv_stride))
    }
}

/// A sample type of a picture's planes: every bit pattern is a value.
pub(super) trait Sample: Copy {}
impl Sample for u8 {}
impl Sample for u16 {}

/// The first `N` planes of `frame`, made writable, as slices of samples `T`, each with its
/// stride in samples; plane `i` has `rows[i]` rows.
pub(super) fn planes_mut<T: Sample, const N: usize>(
    frame: &mut frame::Video,
    rows: [usize; N],
) -> Result<[(&mut [T], usize); N]> {
    make_writable(frame)?;
    let size = size_of::<T>();
    let strides: [usize; N] = std::array::from_fn(|i| frame.stride(i));
    // SAFETY: the planes are disjoint allocations (or disjoint parts of one buffer) of
    // `stride * rows` bytes, as FFmpeg allocated them for the frame's format, so the slices
    // never overlap; FFmpeg aligns planes for SIMD and a format's strides are whole samples
    // (both checked); any bit pattern is a `T`; every slice borrows `frame` mutably.
    unsafe {
        let f = &*frame.as_ptr();
        for (i, stride) in strides.iter().enumerate() {
            ensure!(
                (f.data[i] as usize | stride).is_multiple_of(size),
                "plane {i} is not aligned to its {size}-byte samples"
            );
        }
        Ok(std::array::from_fn(|i| {
            let len = strides[i] / size * rows[i];
            (
                std::slice::from_raw_parts_mut(f.data[i].cast::<T>(), len),
                strides[i] / size,
            )
        }))
    }
}

/// An FFmpeg frame of `format` with `planes` planes, checked to be allocated.
pub(super) fn allocate(
    format: Pixel,
    planes: usize,
    width: u32,
    height: u32,
) -> Result<frame::Video> {
    ensure!(
        width <= 16384 && height <= 16384,
        "frame size {width}x{height} is too large"
    );
    let frame = frame::Video::new(format, width, height);
    // `frame::Video::new` ignores av_frame_get_buffer's result; a null plane means it failed.
    // SAFETY: reading plane pointers of a frame we own.
    let allocated = unsafe { (0..planes).all(|i| !(*frame.as_ptr()).data[i].is_null()) };
    if !allocated {
        bail!("allocating a {width}x{height} {format:?} frame failed");
    }
    Ok(frame)
}

/// Makes sure no one else (an encoder still holding a reference) reads the frame's buffers while
/// we write them. A no-op in the normal flow, where the encoder let go after each frame.
fn make_writable(frame: &mut frame::Video) -> Result<()> {
    // SAFETY: the frame is valid and owned by the caller.
    let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if ret < 0 {
        bail!(
            "making the frame writable failed: {}",
            ffmpeg::Error::from(ret)
        );
    }
    Ok(())
}

/// How the chroma of a stream's pictures is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Chroma {
    /// 4:2:0: one Cb and one Cr sample per 2x2 pixels (NV12); what every client decodes.
    #[default]
    Yuv420,
    /// 4:4:4: Cb and Cr for every pixel (planar), for clients that ask for it
    /// (`x-ss-video[0].chromaSamplingType=1`): sharp coloured text and thin lines.
    Yuv444,
}

/// How many bits each sample of a stream's pictures has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BitDepth {
    /// 8 bits: what every client decodes.
    #[default]
    Eight,
    /// 10 bits (HEVC Main10 or RExt 4:4:4 10, AV1 Main or High 10-bit), for clients that ask for it
    /// (`x-nv-video[0].dynamicRangeMode=1`, Moonlight's HDR option). The picture stays SDR with
    /// finer steps (`tenbit.rs`).
    Ten,
}

impl BitDepth {
    /// 8 or 10.
    pub fn bits(self) -> u32 {
        match self {
            BitDepth::Eight => 8,
            BitDepth::Ten => 10,
        }
    }
}

/// A reusable planar YUV 4:4:4 picture: Y, Cb and Cr planes, all at full resolution.
///
/// Like [`Nv12Frame`], an FFmpeg frame underneath that the encoder takes by reference.
pub struct Yuv444Frame {
    frame: frame::Video,
}

impl Yuv444Frame {
    /// Allocates a picture; width and height must be non-zero.
    pub fn new(width: u32, height: u32) -> Result<Yuv444Frame> {
        ensure!(
            width > 0 && height > 0,
            "a picture needs a non-zero size, got {width}x{height}"
        );
        Ok(Yuv444Frame {
            frame: allocate(Pixel::YUV444P, 3, width, height)?,
        })
    }

    /// Plane `i` (0 = Y, 1 = Cb, 2 = Cr; `stride * height` bytes) and its stride in bytes.
    ///
    /// # Panics
    ///
    /// If `i` is not 0, 1 or 2.
    pub fn plane(&self, i: usize) -> (&[u8], usize) {
        assert!(i < 3, "a 4:4:4 picture has three planes, not plane {i}");
        (self.frame.data(i), self.frame.stride(i))
    }

    /// The three planes, writable, with their strides.
    pub fn planes_mut(&mut self) -> Result<[(&mut [u8], usize); 3]> {
        let height = self.frame.height() as usize;
        planes_mut(&mut self.frame, [height; 3])
    }
}

picture_basics!(Yuv444Frame);

/// A stream's reusable picture in the chroma format and bit depth its client asked for.
#[derive(Debug)]
pub enum Picture {
    /// 8-bit 4:2:0.
    Nv12(Nv12Frame),
    /// 8-bit 4:4:4.
    Yuv444(Yuv444Frame),
    /// 10-bit 4:2:0.
    P010(P010Frame),
    /// 10-bit 4:4:4.
    Yuv444P10(Yuv444P10Frame),
}

impl Picture {
    /// Allocates a `width` x `height` picture sampled as `chroma` with `depth` bits per sample.
    pub fn new(chroma: Chroma, depth: BitDepth, width: u32, height: u32) -> Result<Picture> {
        Ok(match (chroma, depth) {
            (Chroma::Yuv420, BitDepth::Eight) => Picture::Nv12(Nv12Frame::new(width, height)?),
            (Chroma::Yuv444, BitDepth::Eight) => Picture::Yuv444(Yuv444Frame::new(width, height)?),
            (Chroma::Yuv420, BitDepth::Ten) => Picture::P010(P010Frame::new(width, height)?),
            (Chroma::Yuv444, BitDepth::Ten) => {
                Picture::Yuv444P10(Yuv444P10Frame::new(width, height)?)
            }
        })
    }

    /// How its chroma is sampled.
    pub fn chroma(&self) -> Chroma {
        match self {
            Picture::Nv12(_) | Picture::P010(_) => Chroma::Yuv420,
            Picture::Yuv444(_) | Picture::Yuv444P10(_) => Chroma::Yuv444,
        }
    }

    /// Bits per sample.
    pub fn depth(&self) -> BitDepth {
        match self {
            Picture::Nv12(_) | Picture::Yuv444(_) => BitDepth::Eight,
            Picture::P010(_) | Picture::Yuv444P10(_) => BitDepth::Ten,
        }
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u32 {
        self.as_frame().width()
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u32 {
        self.as_frame().height()
    }

    pub(crate) fn as_frame(&self) -> &frame::Video {
        match self {
            Picture::Nv12(p) => p.as_frame(),
            Picture::Yuv444(p) => p.as_frame(),
            Picture::P010(p) => p.as_frame(),
            Picture::Yuv444P10(p) => p.as_frame(),
        }
    }

    /// Plane `index` (0 is Y) and its stride in bytes; empty past the last plane.
    pub fn plane(&self, index: usize) -> (&[u8], usize) {
        let frame = self.as_frame();
        if index >= frame.planes() {
            return (&[], 0);
        }
        (frame.data(index), frame.stride(index))
    }

    /// The layout in which a GPU conversion gives this picture's planes as they are.
    pub fn yuv_layout(&self) -> YuvLayout {
        Picture::layout_of(self.chroma(), self.depth())
    }

    /// The layout in which a GPU conversion gives the planes of a picture of `chroma` and
    /// `depth` as they are.
    pub fn layout_of(chroma: Chroma, depth: BitDepth) -> YuvLayout {
        match (chroma, depth) {
            (Chroma::Yuv420, BitDepth::Eight) => YuvLayout::Nv12,
            (Chroma::Yuv444, BitDepth::Eight) => YuvLayout::Yuv444,
            (Chroma::Yuv420, BitDepth::Ten) => YuvLayout::P010,
            (Chroma::Yuv444, BitDepth::Ten) => YuvLayout::Yuv444P16,
        }
    }

    /// Copies the rows a picture converted on the GPU holds ([`YuvPicture::rows`]), of this
    /// size and [`Picture::yuv_layout`], into this one, plane by plane.
    pub fn copy_from_yuv(&mut self, yuv: &YuvPicture) -> Result<()> {
        let layout = self.yuv_layout();
        let (width, height) = (self.width(), self.height());
        ensure!(
            yuv.layout() == layout && (yuv.width(), yuv.height()) == (width, height),
            "a {}x{} {:?} picture cannot be copied into a {width}x{height} {layout:?} one",
            yuv.width(),
            yuv.height(),
            yuv.layout()
        );
        let h = height as usize;
        let copy = |plane: usize, (dst, stride): (&mut [u8], usize)| -> Result<()> {
            let src = yuv
                .plane(plane)
                .context("a plane of the converted picture")?;
            let (row, src_stride) = (yuv.row_bytes(), yuv.stride());
            let first = layout.plane_span(plane, height, &(0..0)).start as usize;
            for span in yuv.rows() {
                for r in layout.plane_span(plane, height, span) {
                    let r = r as usize - first;
                    let (d, s) = (&mut dst[r * stride..], &src[r * src_stride..]);
                    d[..row].copy_from_slice(&s[..row]);
                }
            }
            Ok(())
        };
        let frame = match self {
            Picture::Nv12(p) => p.as_frame_mut(),
            Picture::Yuv444(p) => p.as_frame_mut(),
            Picture::P010(p) => p.as_frame_mut(),
            Picture::Yuv444P10(p) => p.as_frame_mut(),
        };
        if layout.is_444() {
            let planes = planes_mut::<u8, 3>(frame, [h, h, h])?;
            planes
                .into_iter()
                .enumerate()
                .try_for_each(|(i, p)| copy(i, p))
        } else {
            let planes = planes_mut::<u8, 2>(frame, [h, h / 2])?;
            planes
                .into_iter()
                .enumerate()
                .try_for_each(|(i, p)| copy(i, p))
        }
    }
}

picture_basics!(Nv12Frame);

/// Converts a BGRA/BGRX picture (bytes B, G, R, X per pixel, `stride` bytes per row) of the same
/// size as `dst` into `dst`. The fourth byte is ignored.
///
/// Chroma is the average of each 2x2 block. Errors if `bgra` is shorter than `stride * height`.
/// A large picture is split into bands of rows that rayon's threads help convert.
pub fn convert_bgra(
    bgra: &[u8],
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Nv12Frame,
) -> Result<()> {
    let rows = 0..dst.height() as usize;
    convert(&|band| band(bgra), stride, colorspace, dst, rows)
}

/// [`convert_bgra`] for a compositor frame, which may be a client's shared-memory buffer read in
/// place.
///
/// Each band of rows opens the frame's pixels on the thread that converts it: a client that
/// truncates its pool makes reads fault, and the compositor turns that fault into an error only
/// on the thread that opened the buffer.
pub fn convert_frame(
    frame: &compositor::Frame,
    colorspace: Colorspace,
    dst: &mut Nv12Frame,
) -> Result<()> {
    check_frame(frame, dst.width(), dst.height())?;
    let rows = 0..dst.height() as usize;
    convert(
        &frame_source(frame),
        frame.stride() as usize,
        colorspace,
        dst,
        rows,
    )
}

/// [`convert_frame`] into a picture of any chroma format and depth.
pub fn convert_frame_to(
    frame: &compositor::Frame,
    colorspace: Colorspace,
    dst: &mut Picture,
) -> Result<()> {
    let rows = 0..dst.height();
    convert_frame_rows(frame, colorspace, dst, rows)
}

/// [`convert_frame_to`] for picture rows `rows` only; the other rows of `dst` keep what they
/// held. For 4:2:0 pictures both ends must be even (whole chroma rows).
pub fn convert_frame_rows(
    frame: &compositor::Frame,
    colorspace: Colorspace,
    dst: &mut Picture,
    rows: Range<u32>,
) -> Result<()> {
    check_frame(frame, dst.width(), dst.height())?;
    let (source, stride) = (&frame_source(frame), frame.stride() as usize);
    let rows = rows.start as usize..rows.end as usize;
    match dst {
        Picture::Nv12(nv12) => convert(source, stride, colorspace, nv12, rows),
        Picture::Yuv444(yuv) => convert_444(source, stride, colorspace, yuv, rows),
        Picture::P010(p010) => convert_p010(source, stride, colorspace, p010, rows),
        Picture::Yuv444P10(yuv) => convert_444_10(source, stride, colorspace, yuv, rows),
    }
}

/// [`convert_bgra`] into a planar 4:4:4 picture: every pixel keeps its own Cb and Cr.
pub fn convert_bgra_444(
    bgra: &[u8],
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Yuv444Frame,
) -> Result<()> {
    let rows = 0..dst.height() as usize;
    convert_444(&|band| band(bgra), stride, colorspace, dst, rows)
}

/// Gives a band's converter the whole source picture, on the converter's own thread.
pub(super) type Source<'a> = dyn Fn(&mut Band<'_>) -> Result<()> + Sync + 'a;

/// Converts one band of rows, given the whole source picture.
type Band<'a> = dyn FnMut(&[u8]) -> Result<()> + 'a;

/// A compositor frame as a [`Source`]: each band opens the pixels on its own thread.
fn frame_source(frame: &compositor::Frame) -> impl Fn(&mut Band<'_>) -> Result<()> + Sync + '_ {
    |band: &mut Band<'_>| {
        frame
            .with_pixels(|bgra| band(bgra))
            .context("reading the frame's pixels")?
    }
}

/// Whether `frame` is XRGB8888 of the picture's size.
fn check_frame(frame: &compositor::Frame, width: u32, height: u32) -> Result<()> {
    ensure!(
        frame.format == compositor::FrameFormat::Xrgb8888,
        "frame format {:?} is not XRGB8888",
        frame.format
    );
    ensure!(
        (frame.width, frame.height) == (width, height),
        "frame is {}x{}, the picture {width}x{height}",
        frame.width,
        frame.height,
    );
    Ok(())
}

/// The source rows one band converts, as the caller's kernel gets them.
pub(super) struct BandSource<'s, 'a> {
    source: &'s Source<'a>,
    stride: usize,
    width: u32,
    height: u32,
}

impl<'s, 'a> BandSource<'s, 'a> {
    /// Checks the BGRA stride against the width.
    pub(super) fn new(
        source: &'s Source<'a>,
        stride: usize,
        width: u32,
        height: u32,
    ) -> Result<Self> {
        ensure!(
            stride >= width as usize * 4,
            "BGRA stride {stride} is less than 4 x width {width}"
        );
        Ok(Self {
            source,
            stride,
            width,
            height,
        })
    }

    /// Opens the source on this thread and hands `kernel` its rows `first_row` to
    /// `first_row + rows`. The source must hold whole rows, the last one included (the SIMD
    /// kernels walk it in chunks of `stride` bytes and skip a short last row).
    fn rows(
        &self,
        first_row: usize,
        rows: usize,
        what: &'static str,
        kernel: &mut dyn FnMut(&[u8]) -> std::result::Result<(), yuv::YuvError>,
    ) -> Result<()> {
        self.rows_with(first_row, rows, &mut |bgra| kernel(bgra).context(what))
    }

    /// [`BandSource::rows`] for a kernel of our own.
    pub(super) fn rows_with(
        &self,
        first_row: usize,
        rows: usize,
        kernel: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (stride, width, height) = (self.stride, self.width, self.height);
        let needed = stride * height as usize;
        (self.source)(&mut |bgra: &[u8]| {
            ensure!(
                bgra.len() >= needed,
                "BGRA buffer has {} bytes, a {width}x{height} picture with stride {stride} needs {needed}",
                bgra.len()
            );
            kernel(&bgra[first_row * stride..(first_row + rows) * stride])
        })
    }
}

/// Up to this many pixels are converted on the calling thread: handing a few rows to the pool's
/// threads (waking them, waiting for them) costs more than it saves.
const SERIAL_PIXELS: usize = 512 * 1024;

/// A conversion split over the threads has this many bands per thread, so that a thread that
/// joins late still finds some.
const BANDS_PER_THREAD: usize = 4;

/// The rows a conversion writes, `range`, in bands of `band` rows converted by the calling
/// thread with rayon's threads joining in ([`bands::run`]), or one band when it is small.
pub(super) struct RowBands {
    range: Range<usize>,
    band: usize,
    /// The pool threads that may join in.
    helpers: usize,
}

impl RowBands {
    /// Rows `range` of a picture of `width` x `height` whose chroma rows each cover `multiple`
    /// picture rows (2 for 4:2:0): both ends must be multiples of it, or the end the height.
    pub(super) fn new(
        range: Range<usize>,
        width: u32,
        height: u32,
        multiple: usize,
    ) -> Result<RowBands> {
        let height = height as usize;
        let whole = |row: usize| row.is_multiple_of(multiple) || row == height;
        ensure!(
            range.start <= range.end
                && range.end <= height
                && whole(range.start)
                && whole(range.end),
            "rows {range:?} are not whole chroma rows of a picture of {height} rows"
        );
        let threads = if range.len() * width as usize <= SERIAL_PIXELS {
            1
        } else {
            rayon::current_num_threads().max(1)
        };
        let bands = if threads > 1 {
            threads * BANDS_PER_THREAD
        } else {
            1
        };
        let band = range
            .len()
            .div_ceil(bands)
            .next_multiple_of(multiple)
            .max(multiple);
        Ok(RowBands {
            range,
            band,
            helpers: threads - 1,
        })
    }

    /// Runs `band(first_row, y, chroma)` over the bands of a picture with a luma plane and one
    /// chroma plane whose rows each cover `per` picture rows, each plane given with its stride
    /// in samples: on the calling thread when the rows are one band, else with rayon's threads
    /// joining in.
    pub(super) fn run2<T: Send>(
        &self,
        (y, ys): (&mut [T], usize),
        (c, cs): (&mut [T], usize),
        per: usize,
        band: impl Fn(usize, &mut [T], &mut [T]) -> Result<()> + Sync,
    ) -> Result<()> {
        let (y, c) = (self.of(y, ys, 1), self.of(c, cs, per));
        if self.serial() {
            return band(self.range.start, y, c);
        }
        let (y, c) = (
            Parts::new(y, self.chunk(ys, 1)),
            Parts::new(c, self.chunk(cs, per)),
        );
        debug_assert_eq!(y.count(), c.count(), "luma and chroma bands differ");
        bands::run(y.count(), self.helpers, &|i| {
            // SAFETY: `bands::run` hands out each index once.
            let (y, c) = unsafe { (y.part(i), c.part(i)) };
            band(self.first_row(i), y, c)
        })
    }

    /// [`RowBands::run2`] for three planes of full height (planar 4:4:4).
    pub(super) fn run3<T: Send>(
        &self,
        [(y, ys), (u, us), (v, vs)]: [(&mut [T], usize); 3],
        band: impl Fn(usize, &mut [T], &mut [T], &mut [T]) -> Result<()> + Sync,
    ) -> Result<()> {
        let (y, u, v) = (self.of(y, ys, 1), self.of(u, us, 1), self.of(v, vs, 1));
        if self.serial() {
            return band(self.range.start, y, u, v);
        }
        let y = Parts::new(y, self.chunk(ys, 1));
        let (u, v) = (
            Parts::new(u, self.chunk(us, 1)),
            Parts::new(v, self.chunk(vs, 1)),
        );
        debug_assert!(u.count() == y.count() && v.count() == y.count());
        bands::run(y.count(), self.helpers, &|i| {
            // SAFETY: `bands::run` hands out each index once.
            let (y, u, v) = unsafe { (y.part(i), u.part(i), v.part(i)) };
            band(self.first_row(i), y, u, v)
        })
    }

    /// Whether the rows are one band, to convert on the calling thread.
    fn serial(&self) -> bool {
        !self.range.is_empty() && self.band >= self.range.len()
    }

    /// The part of a plane (`stride` samples per row, each row covering `per` picture rows)
    /// that holds the rows.
    fn of<'p, T>(&self, plane: &'p mut [T], stride: usize, per: usize) -> &'p mut [T] {
        &mut plane[self.range.start / per * stride..self.range.end.div_ceil(per) * stride]
    }

    /// Samples per band of such a plane.
    fn chunk(&self, stride: usize, per: usize) -> usize {
        self.band / per * stride
    }

    /// The first picture row of band `i`.
    fn first_row(&self, i: usize) -> usize {
        self.range.start + i * self.band
    }
}

/// A plane cut into parts of `chunk` samples (the last one shorter), each of which one thread
/// may borrow mutably: [`Parts::part`].
struct Parts<'p, T> {
    ptr: *mut T,
    len: usize,
    chunk: usize,
    plane: PhantomData<&'p mut [T]>,
}

// SAFETY: the parts are disjoint and each is borrowed by one thread at a time (the contract of
// `part`), so sharing `Parts` only moves `&mut [T]` between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for Parts<'_, T> {}

impl<'p, T> Parts<'p, T> {
    fn new(plane: &'p mut [T], chunk: usize) -> Self {
        assert!(chunk > 0, "parts of no samples");
        Parts {
            ptr: plane.as_mut_ptr(),
            len: plane.len(),
            chunk,
            plane: PhantomData,
        }
    }

    /// How many parts there are.
    fn count(&self) -> usize {
        self.len.div_ceil(self.chunk)
    }

    /// Part `i`.
    ///
    /// # Safety
    ///
    /// No other borrow of part `i` may be alive: each part is taken at most once.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, i: usize) -> &'p mut [T] {
        let start = (i * self.chunk).min(self.len);
        let end = (start + self.chunk).min(self.len);
        // SAFETY: `start..end` lies inside the plane, which is borrowed mutably for `'p`, and
        // no other borrow of it is alive (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

fn convert_444(
    source: &Source<'_>,
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Yuv444Frame,
    rows: Range<usize>,
) -> Result<()> {
    let (width, height) = (dst.width(), dst.height());
    let src = BandSource::new(source, stride, width, height)?;
    let bands = RowBands::new(rows, width, height, 1)?;
    let planes = dst.planes_mut()?;
    let [y_stride, u_stride, v_stride] = planes.each_ref().map(|p| p.1);
    bands.run3(planes, |first, y, u, v| {
        let band_height = y.len() / y_stride;
        let mut image = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(y),
            y_stride: y_stride as u32,
            u_plane: BufferStoreMut::Borrowed(u),
            u_stride: u_stride as u32,
            v_plane: BufferStoreMut::Borrowed(v),
            v_stride: v_stride as u32,
            width,
            height: band_height as u32,
        };
        let what = "BGRA to YUV 4:4:4 conversion failed";
        src.rows(first, band_height, what, &mut |bgra| {
            let (range, matrix) = (colorspace.yuv_range(), colorspace.yuv_matrix());
            yuv::bgra_to_yuv444(
                &mut image,
                bgra,
                stride as u32,
                range,
                matrix,
                YuvConversionMode::Balanced,
            )
        })
    })
}

fn convert(
    source: &Source<'_>,
    stride: usize,
    colorspace: Colorspace,
    dst: &mut Nv12Frame,
    rows: Range<usize>,
) -> Result<()> {
    let (width, height) = (dst.width(), dst.height());
    let src = BandSource::new(source, stride, width, height)?;
    // Each band an even number of rows so it has whole chroma rows.
    let bands = RowBands::new(rows, width, height, 2)?;
    let (y, y_stride, uv, uv_stride) = dst.planes_mut()?;
    bands.run2((y, y_stride), (uv, uv_stride), 2, |first, y, uv| {
        let band_height = y.len() / y_stride;
        let mut image = YuvBiPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(y),
            y_stride: y_stride as u32,
            uv_plane: BufferStoreMut::Borrowed(uv),
            uv_stride: uv_stride as u32,
            width,
            height: band_height as u32,
        };
        let what = "BGRA to NV12 conversion failed";
        src.rows(first, band_height, what, &mut |bgra| {
            let (range, matrix) = (colorspace.yuv_range(), colorspace.yuv_matrix());
            yuv::bgra_to_yuv_nv12(
                &mut image,
                bgra,
                stride as u32,
                range,
                matrix,
                YuvConversionMode::Balanced,
            )
        })
    })
}

/// The textbook formula, per pixel, in floating point: `(Y, Cb, Cr)` for one R'G'B' triple.
/// Slow; for tests and for checking the SIMD path.
pub fn reference_ycbcr(r: u8, g: u8, b: u8, colorspace: Colorspace) -> (f32, f32, f32) {
    let (kr, kb) = colorspace.kr_kb();
    let kg = 1.0 - kr - kb;
    let (r, g, b) = (
        f32::from(r) / 255.0,
        f32::from(g) / 255.0,
        f32::from(b) / 255.0,
    );
    let y = kr * r + kg * g + kb * b;
    let cb = (b - y) / (2.0 * (1.0 - kb));
    let cr = (r - y) / (2.0 * (1.0 - kr));
    if colorspace.is_full_range() {
        (y * 255.0, 128.0 + cb * 255.0, 128.0 + cr * 255.0)
    } else {
        (16.0 + y * 219.0, 128.0 + cb * 224.0, 128.0 + cr * 224.0)
    }
}

/// The inverse of [`reference_ycbcr`]: R'G'B' (0..=255, unclamped) from one Y'CbCr triple.
pub fn reference_rgb(y: f32, cb: f32, cr: f32, colorspace: Colorspace) -> (f32, f32, f32) {
    let (kr, kb) = colorspace.kr_kb();
    let kg = 1.0 - kr - kb;
    let (y, cb, cr) = if colorspace.is_full_range() {
        (y / 255.0, (cb - 128.0) / 255.0, (cr - 128.0) / 255.0)
    } else {
        (
            (y - 16.0) / 219.0,
            (cb - 128.0) / 224.0,
            (cr - 128.0) / 224.0,
        )
    };
    let r = y + 2.0 * (1.0 - kr) * cr;
    let b = y + 2.0 * (1.0 - kb) * cb;
    let g = (y - kr * r - kb * b) / kg;
    (r * 255.0, g * 255.0, b * 255.0)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Pseudo-random bytes: pixels that all differ.
    pub(in crate::encode) fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 23) as u8
            })
            .collect()
    }

    /// A picture made of 2x2 blocks of one colour each, so chroma subsampling loses nothing and
    /// every pixel can be checked against the formula.
    pub(in crate::encode) fn block_picture(width: u32, height: u32, stride: usize) -> Vec<u8> {
        let mut state = 0x1234_5678_u32;
        let mut next = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        };
        let mut px = vec![0u8; stride * height as usize];
        for by in 0..height / 2 {
            for bx in 0..width / 2 {
                let (b, g, r) = (next(), next(), next());
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let o = (by * 2 + dy) as usize * stride + (bx * 2 + dx) as usize * 4;
                    px[o..o + 4].copy_from_slice(&[b, g, r, 0xff]);
                }
            }
        }
        px
    }

    #[test]
    fn matches_the_reference_formula_for_every_colorspace() {
        let (w, h) = (64, 18);
        let stride = w as usize * 4 + 16; // padded rows must work too
        let px = block_picture(w, h, stride);
        let mut nv12 = Nv12Frame::new(w, h).unwrap();
        for cs in Colorspace::ALL {
            convert_bgra(&px, stride, cs, &mut nv12).unwrap();
            let (yp, ys) = nv12.y_plane();
            let (uvp, uvs) = nv12.uv_plane();
            let mut worst = 0.0f32;
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let o = y * stride + x * 4;
                    let (ry, rcb, rcr) = reference_ycbcr(px[o + 2], px[o + 1], px[o], cs);
                    let got_y = f32::from(yp[y * ys + x]);
                    let got_cb = f32::from(uvp[(y / 2) * uvs + (x / 2) * 2]);
                    let got_cr = f32::from(uvp[(y / 2) * uvs + (x / 2) * 2 + 1]);
                    for (got, want) in [(got_y, ry), (got_cb, rcb), (got_cr, rcr)] {
                        worst = worst.max((got - want.round().clamp(0.0, 255.0)).abs());
                    }
                }
            }
            assert!(
                worst <= 2.0,
                "{cs:?}: worst deviation {worst} from the formula"
            );
        }
    }

    #[test]
    fn yuv444_keeps_every_pixels_chroma() {
        let (w, h) = (33, 7); // odd sizes: 4:4:4 has no 2x2 blocks to fill
        let stride = w as usize * 4 + 12;
        // Every pixel its own colour: 4:2:0 would average neighbours, 4:4:4 must not.
        let mut state = 0x9e37_79b9_u32;
        let px: Vec<u8> = (0..stride * h as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        let mut yuv = Yuv444Frame::new(w, h).unwrap();
        for cs in Colorspace::ALL {
            convert_bgra_444(&px, stride, cs, &mut yuv).unwrap();
            let mut worst = 0.0f32;
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let o = y * stride + x * 4;
                    let want = reference_ycbcr(px[o + 2], px[o + 1], px[o], cs);
                    for (i, want) in [want.0, want.1, want.2].into_iter().enumerate() {
                        let (plane, ps) = yuv.plane(i);
                        let got = f32::from(plane[y * ps + x]);
                        worst = worst.max((got - want.round().clamp(0.0, 255.0)).abs());
                    }
                }
            }
            assert!(
                worst <= 2.0,
                "{cs:?}: worst deviation {worst} from the formula"
            );
        }
        assert!(
            convert_bgra_444(&px[..stride * 6], stride, Colorspace::Rec709Full, &mut yuv).is_err()
        );
        assert!(Yuv444Frame::new(0, 4).is_err());
        let picture = Picture::new(Chroma::Yuv444, BitDepth::Eight, 8, 6).unwrap();
        assert_eq!(
            (picture.chroma(), picture.width(), picture.height()),
            (Chroma::Yuv444, 8, 6)
        );
    }

    #[test]
    fn limited_and_full_range_extremes() {
        let (w, h) = (16, 2);
        let mut px = vec![0u8; w * h * 4];
        for (i, p) in px.chunks_exact_mut(4).enumerate() {
            let v = if i % w < w / 2 { 0 } else { 255 };
            p.copy_from_slice(&[v, v, v, 0]);
        }
        let mut nv12 = Nv12Frame::new(w as u32, h as u32).unwrap();
        convert_bgra(&px, w * 4, Colorspace::Rec709Limited, &mut nv12).unwrap();
        let (y, _) = nv12.y_plane();
        assert_eq!((y[0], y[w - 1]), (16, 235));
        assert!(nv12.uv_plane().0[..w].iter().all(|&c| c == 128));
        convert_bgra(&px, w * 4, Colorspace::Rec601Full, &mut nv12).unwrap();
        let (y, _) = nv12.y_plane();
        assert_eq!((y[0], y[w - 1]), (0, 255));
    }

    #[test]
    fn rejects_short_buffers_and_odd_sizes() {
        let mut nv12 = Nv12Frame::new(8, 8).unwrap();
        assert!(convert_bgra(
            &[0; 8 * 8 * 4 - 1],
            32,
            Colorspace::Rec709Limited,
            &mut nv12
        )
        .is_err());
        assert!(convert_bgra(&[0; 8 * 40 - 8], 40, Colorspace::Rec709Limited, &mut nv12).is_err());
        assert!(convert_bgra(&[0; 8 * 8 * 4], 16, Colorspace::Rec709Limited, &mut nv12).is_err());
        assert!(Nv12Frame::new(7, 8).is_err());
        assert!(Nv12Frame::new(0, 8).is_err());
    }

    #[test]
    fn csc_mode_round_trips() {
        for cs in Colorspace::ALL {
            assert_eq!(Colorspace::from_csc_mode(cs.csc_mode()), Some(cs));
        }
        assert_eq!(Colorspace::from_csc_mode(4), None);
    }

    #[test]
    fn reference_formulas_invert() {
        for cs in Colorspace::ALL {
            let (y, cb, cr) = reference_ycbcr(200, 30, 90, cs);
            let (r, g, b) = reference_rgb(y, cb, cr, cs);
            assert!((r - 200.0).abs() < 0.01 && (g - 30.0).abs() < 0.01 && (b - 90.0).abs() < 0.01);
        }
    }
}
