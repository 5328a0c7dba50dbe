//! The pointer cursor, drawn into each frame on the CPU after compositing.
//!
//! The cursor is blended into the frame's copy of the output, never into the render target, so
//! the damage tracker's picture of the output stays cursor-free; a frame's damage grows by the
//! cursor's old and new rectangles whenever the cursor moved or changed.

use smithay::backend::renderer::utils::with_renderer_surface_state;
use smithay::input::pointer::{CursorIcon, CursorImageStatus, CursorImageSurfaceData};
use smithay::reexports::wayland_server::protocol::wl_shm;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::Resource;
use smithay::utils::{Logical, Point};
use smithay::wayland::compositor::with_states;
use smithay::wayland::shm::with_buffer_contents;
use tracing::trace;

use crate::Rect;

/// The cursor image and where it goes on the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sprite {
    /// Top-left corner in output pixels (may be negative).
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) width: i32,
    pub(crate) height: i32,
    /// Premultiplied `0xAARRGGBB`, row-major.
    pub(crate) pixels: Vec<u32>,
}

/// Cursor state of the seat.
#[derive(Debug)]
pub(crate) struct CursorState {
    pub(crate) status: CursorImageStatus,
    /// [`crate::CompositorOptions::show_cursor`].
    pub(crate) show: bool,
    /// Whether the pointer ever moved; before that no cursor is drawn.
    pub(crate) moved: bool,
    /// What the last published frame has drawn in it.
    pub(crate) drawn: Option<Sprite>,
}

impl Default for CursorState {
    fn default() -> Self {
        Self {
            status: CursorImageStatus::default_named(),
            show: true,
            moved: false,
            drawn: None,
        }
    }
}

/// A cursor drawn by the compositor: rows of `#` outline (black), `.` fill (white) and space
/// (transparent; short rows are padded with it), and the hotspot that goes at the pointer.
struct Shape {
    rows: &'static [&'static str],
    hotspot: (i32, i32),
    /// Draw the rows as columns (the vertical variant of a horizontal shape).
    transposed: bool,
}

/// The default arrow, 12 x 17.
const ARROW: Shape = Shape {
    rows: &[
        "#",
        "##",
        "#.#",
        "#..#",
        "#...#",
        "#....#",
        "#.....#",
        "#......#",
        "#.......#",
        "#........#",
        "#.........#",
        "#......#####",
        "#...#..#",
        "#..# #..#",
        "#.#  #..#",
        "##    #..#",
        "       ##",
    ],
    hotspot: (0, 0),
    transposed: false,
};

/// Text: an I-beam centred on the pointer.
const TEXT: Shape = Shape {
    rows: &[
        "### ###", "#..#..#", " ##.##", "  #.#", "  #.#", "  #.#", "  #.#", "  #.#", "  #.#",
        "  #.#", "  #.#", "  #.#", "  #.#", " ##.##", "#..#..#", "### ###",
    ],
    hotspot: (3, 8),
    transposed: false,
};

/// Crosshair and cell selection.
const CROSSHAIR: Shape = Shape {
    rows: &[
        "    #.#",
        "    #.#",
        "    #.#",
        "    #.#",
        "#####.#####",
        "...........",
        "#####.#####",
        "    #.#",
        "    #.#",
        "    #.#",
        "    #.#",
    ],
    hotspot: (5, 5),
    transposed: false,
};

/// A pointing hand for links and buttons; the fingertip is the hotspot.
const HAND: Shape = Shape {
    rows: &[
        "    ##",
        "   #..#",
        "   #..#",
        "   #..#",
        "   #..###",
        "   #..#..##",
        "## #..#..#.#",
        "#..#.......#",
        "#..#.......#",
        " #.........#",
        "  #........#",
        "  #.......#",
        "   #......#",
        "   #.....#",
        "    #####",
    ],
    hotspot: (4, 0),
    transposed: false,
};

/// Busy: an hourglass.
const WAIT: Shape = Shape {
    rows: &[
        "###########",
        "#.........#",
        " #.......#",
        "  #.....#",
        "   #...#",
        "    #.#",
        "     #",
        "    #.#",
        "   #...#",
        "  #.....#",
        " #.......#",
        "#.........#",
        "###########",
    ],
    hotspot: (5, 6),
    transposed: false,
};

/// Moving and grabbing: arrows in four directions.
const MOVE: Shape = Shape {
    rows: &[
        "       #",
        "      #.#",
        "     #...#",
        "    ###.###",
        "   #  #.#  #",
        "  ##  #.#  ##",
        " #.####.####.#",
        "#.............#",
        " #.####.####.#",
        "  ##  #.#  ##",
        "   #  #.#  #",
        "    ###.###",
        "     #...#",
        "      #.#",
        "       #",
    ],
    hotspot: (7, 7),
    transposed: false,
};

const HORIZONTAL_ARROWS: &[&str] = &[
    "   #         #",
    "  ##         ##",
    " #.###########.#",
    "#...............#",
    " #.###########.#",
    "  ##         ##",
    "   #         #",
];

/// Resizing left or right.
const RESIZE_HORIZONTAL: Shape = Shape {
    rows: HORIZONTAL_ARROWS,
    hotspot: (8, 3),
    transposed: false,
};

/// Resizing up or down.
const RESIZE_VERTICAL: Shape = Shape {
    rows: HORIZONTAL_ARROWS,
    hotspot: (3, 8),
    transposed: true,
};

/// Not allowed: a cross.
const NOT_ALLOWED: Shape = Shape {
    rows: &[
        "##     ##",
        "#.#   #.#",
        " #.# #.#",
        "  #.#.#",
        "   #.#",
        "  #.#.#",
        " #.# #.#",
        "#.#   #.#",
        "##     ##",
    ],
    hotspot: (4, 4),
    transposed: false,
};

/// The compositor's drawing for a named cursor (`wp_cursor_shape_v1` or the default).
fn named_shape(icon: CursorIcon) -> &'static Shape {
    match icon {
        CursorIcon::Text | CursorIcon::VerticalText => &TEXT,
        CursorIcon::Crosshair | CursorIcon::Cell => &CROSSHAIR,
        CursorIcon::Pointer => &HAND,
        CursorIcon::Wait | CursorIcon::Progress => &WAIT,
        CursorIcon::Move
        | CursorIcon::AllScroll
        | CursorIcon::Grab
        | CursorIcon::Grabbing
        | CursorIcon::NeResize
        | CursorIcon::NwResize
        | CursorIcon::SeResize
        | CursorIcon::SwResize
        | CursorIcon::NeswResize
        | CursorIcon::NwseResize => &MOVE,
        CursorIcon::EResize
        | CursorIcon::WResize
        | CursorIcon::EwResize
        | CursorIcon::ColResize => &RESIZE_HORIZONTAL,
        CursorIcon::NResize
        | CursorIcon::SResize
        | CursorIcon::NsResize
        | CursorIcon::RowResize => &RESIZE_VERTICAL,
        CursorIcon::NotAllowed | CursorIcon::NoDrop => &NOT_ALLOWED,
        _ => &ARROW,
    }
}

fn shape_sprite(shape: &Shape, at: Point<f64, Logical>) -> Sprite {
    let long = shape.rows.iter().map(|r| r.len()).max().unwrap_or(0) as i32;
    let short = shape.rows.len() as i32;
    let (width, height) = if shape.transposed {
        (short, long)
    } else {
        (long, short)
    };
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let (row, col) = if shape.transposed { (x, y) } else { (y, x) };
            let byte = shape.rows[row as usize].as_bytes().get(col as usize);
            pixels.push(match byte {
                Some(b'#') => 0xff00_0000,
                Some(b'.') => 0xffff_ffff,
                _ => 0,
            });
        }
    }
    Sprite {
        x: at.x.floor() as i32 - shape.hotspot.0,
        y: at.y.floor() as i32 - shape.hotspot.1,
        width,
        height,
        pixels,
    }
}

fn arrow(at: Point<f64, Logical>) -> Sprite {
    shape_sprite(&ARROW, at)
}

/// The pixels of a cursor surface's current shm buffer, placed with its hotspot at `at`.
fn surface_sprite(surface: &WlSurface, at: Point<f64, Logical>) -> Option<Sprite> {
    let hotspot = with_states(surface, |states| {
        states
            .data_map
            .get::<CursorImageSurfaceData>()
            .map(|data| data.lock().unwrap().hotspot)
            .unwrap_or_default()
    });
    let buffer = with_renderer_surface_state(surface, |state| state.buffer().cloned()).flatten()?;
    let sprite = with_buffer_contents(&buffer, |ptr, len, data| {
        let (w, h, stride, offset) = (data.width, data.height, data.stride, data.offset);
        let opaque = match data.format {
            wl_shm::Format::Argb8888 => false,
            wl_shm::Format::Xrgb8888 => true,
            other => {
                trace!(?other, "cursor buffer format not drawn");
                return None;
            }
        };
        if w <= 0 || h <= 0 || w > 512 || h > 512 || stride < w * 4 || offset < 0 {
            return None;
        }
        let needed = offset as usize + stride as usize * (h as usize - 1) + w as usize * 4;
        if needed > len {
            return None;
        }
        // SAFETY: `with_buffer_contents` hands us the client's mapped pool of `len` bytes,
        // valid for this closure; `needed <= len` keeps every read inside it.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        let mut pixels = Vec::with_capacity((w * h) as usize);
        for row in 0..h as usize {
            let start = offset as usize + row * stride as usize;
            for px in bytes[start..start + w as usize * 4].chunks_exact(4) {
                let v = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                pixels.push(if opaque { v | 0xff00_0000 } else { v });
            }
        }
        Some(Sprite {
            x: (at.x - f64::from(hotspot.x)).floor() as i32,
            y: (at.y - f64::from(hotspot.y)).floor() as i32,
            width: w,
            height: h,
            pixels,
        })
    })
    .ok()
    .flatten();
    sprite
}

impl CursorState {
    /// What to draw for a pointer at `at`, or `None` for no cursor.
    pub(crate) fn sprite(&self, at: Point<f64, Logical>) -> Option<Sprite> {
        if !self.show || !self.moved {
            return None;
        }
        match &self.status {
            CursorImageStatus::Hidden => None,
            CursorImageStatus::Named(icon) => Some(shape_sprite(named_shape(*icon), at)),
            CursorImageStatus::Surface(surface) => {
                if surface.is_alive() {
                    surface_sprite(surface, at)
                } else {
                    Some(arrow(at))
                }
            }
        }
    }
}

impl Sprite {
    /// The part of the sprite inside a `width` x `height` output.
    pub(crate) fn rect(&self, width: u32, height: u32) -> Option<Rect> {
        let x0 = self.x.max(0);
        let y0 = self.y.max(0);
        let x1 = (self.x + self.width).min(width as i32);
        let y1 = (self.y + self.height).min(height as i32);
        (x1 > x0 && y1 > y0).then(|| Rect {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }

    /// Blends the sprite over an XRGB8888 image.
    pub(crate) fn draw(&self, dst: &mut [u8], stride: usize, width: u32, height: u32) {
        let Some(r) = self.rect(width, height) else {
            return;
        };
        for y in r.y..r.y + r.height {
            let sy = (y as i32 - self.y) as usize;
            for x in r.x..r.x + r.width {
                let sx = (x as i32 - self.x) as usize;
                let src = self.pixels[sy * self.width as usize + sx];
                let a = src >> 24;
                if a == 0 {
                    continue;
                }
                let i = y as usize * stride + x as usize * 4;
                let Some(px) = dst.get_mut(i..i + 4) else {
                    continue;
                };
                let inv = 255 - a;
                for (c, shift) in [(0usize, 0u32), (1, 8), (2, 16)] {
                    let s = (src >> shift) & 0xff;
                    let d = u32::from(px[c]);
                    px[c] = (s + (d * inv + 127) / 255).min(255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_tip_is_at_the_pointer() {
        let s = arrow((10.0, 20.0).into());
        assert_eq!((s.x, s.y), (10, 20));
        assert_eq!(s.pixels[0], 0xff00_0000);
        assert_eq!(s.pixels.len(), (s.width * s.height) as usize);
    }

    #[test]
    fn named_shapes_put_their_hotspot_at_the_pointer() {
        for icon in [
            CursorIcon::Text,
            CursorIcon::Crosshair,
            CursorIcon::Pointer,
            CursorIcon::Wait,
            CursorIcon::Move,
            CursorIcon::EwResize,
            CursorIcon::NsResize,
            CursorIcon::NotAllowed,
        ] {
            let shape = named_shape(icon);
            let s = shape_sprite(shape, (50.0, 60.0).into());
            assert_eq!(s.pixels.len(), (s.width * s.height) as usize);
            let (hx, hy) = (50 - s.x, 60 - s.y);
            assert!(
                hx >= 0 && hx < s.width && hy >= 0 && hy < s.height,
                "{icon:?}"
            );
            assert_ne!(
                s.pixels[(hy * s.width + hx) as usize],
                0,
                "{icon:?} hotspot is blank"
            );
        }
        let vertical = shape_sprite(&RESIZE_VERTICAL, (0.0, 0.0).into());
        let horizontal = shape_sprite(&RESIZE_HORIZONTAL, (0.0, 0.0).into());
        assert_eq!(
            (vertical.width, vertical.height),
            (horizontal.height, horizontal.width)
        );
    }

    #[test]
    fn draw_blends_and_clips() {
        let mut img = vec![0u8; 4 * 4 * 4];
        let s = Sprite {
            x: 3,
            y: -1,
            width: 2,
            height: 2,
            pixels: vec![0xffff_0000, 0xff00_ff00, 0x8000_0080, 0],
        };
        assert_eq!(
            s.rect(4, 4),
            Some(Rect {
                x: 3,
                y: 0,
                width: 1,
                height: 1
            })
        );
        s.draw(&mut img, 16, 4, 4);
        // Row 0 of the output is the sprite's row 1: half-transparent blue over black.
        assert_eq!(&img[12..15], &[0x80, 0, 0]);
        assert!(img[..12].iter().all(|&b| b == 0));
    }
}
