//! The picture itself: drawing a frame and reading the counter back.
//!
//! Everything here is pure: no Wayland, no clock. The layout is the contract in
//! `docs/testpattern.md`; the constants below are its numbers.

/// Bytes per pixel of XRGB8888 / BGRA8888.
pub const BYTES_PER_PIXEL: usize = 4;
/// Side of one counter cell, in pixels.
pub const CELL: u32 = 16;
/// Number of counter cells (bits of the frame counter drawn).
pub const COUNTER_BITS: u32 = 32;
/// Height of the counter row, in pixels.
pub const COUNTER_HEIGHT: u32 = CELL;
/// Width of the white block in the motion band, in pixels.
pub const MOTION_BLOCK_WIDTH: u32 = 64;
/// How far the motion block moves per frame, in pixels.
pub const MOTION_STEP: u32 = 8;
/// Side of the pointer marker, in pixels (odd, so it has a centre pixel).
pub const MARKER_SIZE: u32 = 9;

/// The eight colour bars, left to right, as `0x00RRGGBB`.
pub const BARS: [u32; 8] = [
    0xFFFFFF, // white
    0xFFFF00, // yellow
    0x00FFFF, // cyan
    0x00FF00, // green
    0xFF00FF, // magenta
    0xFF0000, // red
    0x0000FF, // blue
    0x000000, // black
];
/// Bit set in the counter row.
pub const WHITE: u32 = 0xFFFFFF;
/// Bit clear in the counter row, and the rest of that row past the last cell.
pub const BLACK: u32 = 0x000000;
/// Background of the motion band.
pub const MOTION_BACKGROUND: u32 = 0x202020;
/// The pointer marker.
pub const MARKER: u32 = 0xFF0000;

/// First row of the motion band for a surface `height` rows tall (`H*3/4`).
pub fn motion_band_top(height: u32) -> u32 {
    // u64 so that huge heights cannot overflow; the result is <= height.
    (u64::from(height) * 3 / 4) as u32
}

/// Left edge of the motion block in frame `frame` on a surface `width` wide.
pub fn motion_block_x(frame: u64, width: u32) -> u32 {
    if width == 0 {
        return 0;
    }
    (frame.wrapping_mul(u64::from(MOTION_STEP)) % u64::from(width)) as u32
}

/// Index (0..8) of the colour bar that column `x` belongs to.
pub fn bar_index(x: u32, width: u32) -> usize {
    let bar_width = width / 8;
    if bar_width == 0 {
        // Narrower than eight pixels: no room for bars, everything is the last one.
        return 7;
    }
    ((x / bar_width) as usize).min(7)
}

/// Draws frame `frame` into `out` (XRGB8888, little-endian: bytes B, G, R, X per pixel; X is
/// written as 0xFF so the buffer also reads as opaque ARGB/BGRA).
///
/// `stride` is the distance between rows in bytes and must be at least `width * 4`;
/// `out` must hold `height` rows (the last one may end right after its `width * 4` bytes).
/// `pointer` is the surface-local pointer position; a marker is drawn centred on it, clipped to
/// the surface.
///
/// # Panics
///
/// If `stride` or `out` are too small for `width` x `height`.
pub fn draw(
    frame: u64,
    width: u32,
    height: u32,
    pointer: Option<(f64, f64)>,
    out: &mut [u8],
    stride: usize,
) {
    Painter::new(width, height).draw(frame, pointer, out, stride);
}

/// Reads the frame counter back from a picture drawn by [`draw`], possibly after lossy coding.
///
/// `pixels` is BGRA8888 or XRGB8888 (little-endian byte order B, G, R, X), `stride` bytes per
/// row. Each of the 32 cells is read at its centre: the mean of the 2x2 pixels around
/// `(16*i + 8, 8)`, with brightness `(R+G+B)/3`; at least 160 is a 1, at most 96 a 0.
///
/// Returns `None` when the picture is smaller than the counter row (512x16), the buffer is too
/// small for `width`, `height` and `stride`, or any cell is between 96 and 160 (so not a
/// counter, or too damaged to trust). The value is the counter modulo 2^32.
pub fn decode_counter(pixels: &[u8], width: u32, height: u32, stride: usize) -> Option<u64> {
    let row_bytes = width as usize * BYTES_PER_PIXEL;
    if width < CELL * COUNTER_BITS || height < COUNTER_HEIGHT || stride < row_bytes {
        return None;
    }
    // Rows 7 and 8 must be present; the sampled columns are all below 512.
    let needed = 8 * stride + (CELL * COUNTER_BITS) as usize * BYTES_PER_PIXEL;
    if pixels.len() < needed {
        return None;
    }
    let brightness = |x: usize, y: usize| -> u32 {
        let p = y * stride + x * BYTES_PER_PIXEL;
        (u32::from(pixels[p]) + u32::from(pixels[p + 1]) + u32::from(pixels[p + 2])) / 3
    };
    let centre = (CELL / 2) as usize;
    let mut value = 0u64;
    for bit in 0..COUNTER_BITS as usize {
        let cx = bit * CELL as usize + centre;
        let sum = brightness(cx - 1, centre - 1)
            + brightness(cx, centre - 1)
            + brightness(cx - 1, centre)
            + brightness(cx, centre);
        let mean = sum / 4;
        if mean >= 160 {
            value |= 1 << bit;
        } else if mean > 96 {
            return None;
        }
    }
    Some(value)
}

/// Draws frames of one size quickly: the rows that do not change between frames are built once,
/// and every frame is filled with row copies.
#[derive(Debug, Clone)]
pub struct Painter {
    width: u32,
    height: u32,
    /// One row of the colour bars, `width * 4` bytes.
    bars: Vec<u8>,
    /// Scratch row for the counter and motion rows, `width * 4` bytes.
    scratch: Vec<u8>,
    /// Draw noise in the motion band instead of the block ([`Painter::with_noise`]).
    noise: bool,
}

impl Painter {
    /// A painter for `width` x `height` pictures.
    pub fn new(width: u32, height: u32) -> Self {
        let row_bytes = width as usize * BYTES_PER_PIXEL;
        let mut bars = vec![0; row_bytes];
        for (x, px) in bars.chunks_exact_mut(BYTES_PER_PIXEL).enumerate() {
            px.copy_from_slice(&pixel(BARS[bar_index(x as u32, width)]));
        }
        Self {
            width,
            height,
            bars,
            scratch: vec![0; row_bytes],
            noise: false,
        }
    }

    /// With `noise`, the motion band is grey noise, different in every frame (a function of the
    /// frame number only), instead of the moving block: a picture that costs the encoder about
    /// as many bits per frame as a game does, where the plain pattern costs almost none.
    pub fn with_noise(mut self, noise: bool) -> Self {
        self.noise = noise;
        self
    }

    /// The width this painter draws.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The height this painter draws.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Draws frame `frame`; the same contract as [`draw`].
    ///
    /// # Panics
    ///
    /// If `stride` or `out` are too small for this painter's size.
    pub fn draw(&mut self, frame: u64, pointer: Option<(f64, f64)>, out: &mut [u8], stride: usize) {
        let (width, height) = (self.width as usize, self.height as usize);
        let row_bytes = width * BYTES_PER_PIXEL;
        if width == 0 || height == 0 {
            return;
        }
        assert!(
            stride >= row_bytes,
            "stride {stride} is less than width {width} * 4"
        );
        assert!(
            out.len() >= (height - 1) * stride + row_bytes,
            "buffer of {} bytes cannot hold {width}x{height} at stride {stride}",
            out.len()
        );

        let counter_rows = height.min(COUNTER_HEIGHT as usize);
        let motion_top = (motion_band_top(self.height) as usize).max(counter_rows);

        // Counter row: one template row per frame, copied 16 times.
        self.fill_counter_row(frame);
        for y in 0..counter_rows {
            out[y * stride..y * stride + row_bytes].copy_from_slice(&self.scratch);
        }
        for y in counter_rows..motion_top {
            out[y * stride..y * stride + row_bytes].copy_from_slice(&self.bars);
        }
        if self.noise {
            fill_noise(frame, &mut out[motion_top * stride..], stride, row_bytes);
        } else {
            self.fill_motion_row(frame);
            for y in motion_top..height {
                out[y * stride..y * stride + row_bytes].copy_from_slice(&self.scratch);
            }
        }
        if let Some(position) = pointer {
            self.draw_marker(position, out, stride);
        }
    }

    fn fill_counter_row(&mut self, frame: u64) {
        let cell_bytes = CELL as usize * BYTES_PER_PIXEL;
        fill(&mut self.scratch, BLACK);
        for (bit, cell) in self
            .scratch
            .chunks_mut(cell_bytes)
            .take(COUNTER_BITS as usize)
            .enumerate()
        {
            if frame >> bit & 1 == 1 {
                fill(cell, WHITE);
            }
        }
    }

    fn fill_motion_row(&mut self, frame: u64) {
        let width = self.width as usize;
        fill(&mut self.scratch, MOTION_BACKGROUND);
        let x0 = motion_block_x(frame, self.width) as usize;
        let block = (MOTION_BLOCK_WIDTH as usize).min(width);
        // The block runs from x0 to the right edge, and what is left wraps to the left edge.
        let first = block.min(width - x0);
        fill(
            &mut self.scratch[x0 * BYTES_PER_PIXEL..(x0 + first) * BYTES_PER_PIXEL],
            WHITE,
        );
        fill(
            &mut self.scratch[..(block - first) * BYTES_PER_PIXEL],
            WHITE,
        );
    }

    fn draw_marker(&self, position: (f64, f64), out: &mut [u8], stride: usize) {
        let Some(r) = self.marker_rect(position) else {
            return;
        };
        let (x_start, x_end) = (r.x as usize, (r.x + r.width) as usize);
        for y in r.y as usize..(r.y + r.height) as usize {
            let row = &mut out[y * stride..];
            fill(
                &mut row[x_start * BYTES_PER_PIXEL..x_end * BYTES_PER_PIXEL],
                MARKER,
            );
        }
    }

    /// The marker's square for a pointer at `(px, py)`, clipped to the surface; `None` when
    /// nothing of it is on the surface.
    fn marker_rect(&self, (px, py): (f64, f64)) -> Option<Region> {
        if !px.is_finite() || !py.is_finite() {
            return None;
        }
        let half = i64::from(MARKER_SIZE / 2);
        // The pixel that contains the pointer position is the marker's centre.
        let (cx, cy) = (px.floor() as i64, py.floor() as i64);
        let x_start = (cx - half).max(0);
        let x_end = (cx + half + 1).min(i64::from(self.width));
        let y_start = (cy - half).max(0);
        let y_end = (cy + half + 1).min(i64::from(self.height));
        (x_start < x_end && y_start < y_end).then(|| Region {
            x: x_start as u32,
            y: y_start as u32,
            width: (x_end - x_start) as u32,
            height: (y_end - y_start) as u32,
        })
    }

    /// What differs between a frame drawn with the pointer at `before` and the next one with
    /// it at `now`: the counter row, the motion band, and the marker's old and new squares.
    /// Everything else (the colour bars) is the same in every frame. With noise, the whole
    /// surface, as a game that redraws everything reports it.
    pub fn changes(&self, before: Option<(f64, f64)>, now: Option<(f64, f64)>) -> Vec<Region> {
        let (width, height) = (self.width, self.height);
        if self.noise {
            return vec![Region::whole(width, height)];
        }
        let counter = height.min(COUNTER_HEIGHT);
        let motion_top = motion_band_top(height).max(counter);
        let mut changed = vec![
            Region {
                x: 0,
                y: 0,
                width,
                height: counter,
            },
            Region {
                x: 0,
                y: motion_top,
                width,
                height: height - motion_top,
            },
        ];
        changed.extend(
            [before, now]
                .into_iter()
                .flatten()
                .filter_map(|p| self.marker_rect(p)),
        );
        changed.retain(|r| r.width > 0 && r.height > 0);
        changed
    }
}

/// A rectangle of the surface, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Region {
    /// All of a `width` x `height` surface.
    pub fn whole(width: u32, height: u32) -> Region {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// Fills the first `row_bytes` of every `stride` bytes of `rows` with grey pixels from a
/// xorshift generator seeded by `frame`.
fn fill_noise(frame: u64, rows: &mut [u8], stride: usize, row_bytes: usize) {
    let mut state = frame.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for row in rows.chunks_mut(stride) {
        let len = row_bytes.min(row.len());
        let row = &mut row[..len];
        for pixels in row.chunks_mut(8 * BYTES_PER_PIXEL) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for (px, grey) in pixels
                .chunks_exact_mut(BYTES_PER_PIXEL)
                .zip(state.to_le_bytes())
            {
                px.copy_from_slice(&[grey, grey, grey, 0xFF]);
            }
        }
    }
}

/// The bytes of one XRGB8888 pixel in memory (little-endian), with X set to 0xFF.
pub fn pixel(rgb: u32) -> [u8; 4] {
    (0xFF00_0000 | rgb).to_le_bytes()
}

/// Fills `row` (a whole number of pixels) with one colour.
fn fill(row: &mut [u8], rgb: u32) {
    let px = pixel(rgb);
    for chunk in row.chunks_exact_mut(BYTES_PER_PIXEL) {
        chunk.copy_from_slice(&px);
    }
}
