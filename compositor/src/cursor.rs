//! The pointer cursor: render elements above every window, drawn by whichever renderer draws
//! the output.
//!
//! A client's cursor surface is drawn as a surface; a named cursor (`wp_cursor_shape_v1`, or
//! the default before a client set one) is one of the compositor's own images, kept in memory
//! buffers that each renderer imports once. The damage tracker sees the cursor like any other
//! element, so a moved or changed cursor damages its old and new places.

use std::collections::HashMap;

use smithay::backend::allocator::Fourcc;
use smithay::backend::renderer::element::memory::{
    MemoryRenderBuffer, MemoryRenderBufferRenderElement,
};
use smithay::backend::renderer::element::surface::render_elements_from_surface_tree;
use smithay::backend::renderer::element::Kind;
use smithay::backend::renderer::{ImportAll, ImportMem, Renderer, Texture};
use smithay::input::pointer::{CursorIcon, CursorImageStatus, CursorImageSurfaceData};
use smithay::reexports::wayland_server::Resource;
use smithay::utils::{Logical, Physical, Point, Scale, Transform};
use smithay::wayland::compositor::with_states;
use tracing::warn;

use crate::backend::OutputElement;

/// Cursor state of the seat.
#[derive(Debug)]
pub(crate) struct CursorState {
    pub(crate) status: CursorImageStatus,
    /// [`crate::CompositorOptions::show_cursor`].
    pub(crate) show: bool,
    /// Whether the pointer ever moved; before that no cursor is drawn.
    pub(crate) moved: bool,
    /// The images of the named cursors drawn so far, by the address of their (static) shape.
    shapes: HashMap<usize, MemoryRenderBuffer>,
}

impl Default for CursorState {
    fn default() -> Self {
        Self {
            status: CursorImageStatus::default_named(),
            show: true,
            moved: false,
            shapes: HashMap::new(),
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
static ARROW: Shape = Shape {
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
static TEXT: Shape = Shape {
    rows: &[
        "### ###", "#..#..#", " ##.##", "  #.#", "  #.#", "  #.#", "  #.#", "  #.#", "  #.#",
        "  #.#", "  #.#", "  #.#", "  #.#", " ##.##", "#..#..#", "### ###",
    ],
    hotspot: (3, 8),
    transposed: false,
};

/// Crosshair and cell selection.
static CROSSHAIR: Shape = Shape {
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
static HAND: Shape = Shape {
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
static WAIT: Shape = Shape {
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
static MOVE: Shape = Shape {
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
static RESIZE_HORIZONTAL: Shape = Shape {
    rows: HORIZONTAL_ARROWS,
    hotspot: (8, 3),
    transposed: false,
};

/// Resizing up or down.
static RESIZE_VERTICAL: Shape = Shape {
    rows: HORIZONTAL_ARROWS,
    hotspot: (3, 8),
    transposed: true,
};

/// Not allowed: a cross.
static NOT_ALLOWED: Shape = Shape {
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

/// A named cursor's image: premultiplied ARGB8888 pixels (bytes B, G, R, A) and its size.
fn shape_pixels(shape: &Shape) -> (Vec<u8>, i32, i32) {
    let long = shape.rows.iter().map(|r| r.len()).max().unwrap_or(0) as i32;
    let short = shape.rows.len() as i32;
    let (width, height) = if shape.transposed {
        (short, long)
    } else {
        (long, short)
    };
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let (row, col) = if shape.transposed { (x, y) } else { (y, x) };
            let byte = shape.rows[row as usize].as_bytes().get(col as usize);
            pixels.extend_from_slice(match byte {
                Some(b'#') => &[0, 0, 0, 0xff],
                Some(b'.') => &[0xff, 0xff, 0xff, 0xff],
                _ => &[0, 0, 0, 0],
            });
        }
    }
    (pixels, width, height)
}

impl CursorState {
    /// What to draw for a pointer at `at`: nothing while the cursor is off, hidden or the
    /// pointer never moved, else the cursor's elements with its hotspot at `at`. A client's
    /// cursor surface is drawn at `scale` (that of the window under the pointer); the
    /// compositor's own shapes always at their size.
    pub(crate) fn render_elements<R>(
        &mut self,
        renderer: &mut R,
        at: Point<f64, Logical>,
        scale: Scale<f64>,
    ) -> Vec<OutputElement<R>>
    where
        R: Renderer + ImportAll + ImportMem,
        R::TextureId: Texture + Clone + Send + 'static,
    {
        if !self.show || !self.moved {
            return Vec::new();
        }
        let icon = match &self.status {
            CursorImageStatus::Hidden => return Vec::new(),
            CursorImageStatus::Named(icon) => *icon,
            CursorImageStatus::Surface(surface) if surface.is_alive() => {
                let hotspot = with_states(surface, |states| {
                    states
                        .data_map
                        .get::<CursorImageSurfaceData>()
                        .map(|data| data.lock().unwrap().hotspot)
                        .unwrap_or_default()
                });
                let location = Point::<i32, Physical>::from((
                    (at.x - f64::from(hotspot.x) * scale.x).floor() as i32,
                    (at.y - f64::from(hotspot.y) * scale.y).floor() as i32,
                ));
                if scale == Scale::from(1.0) {
                    return render_elements_from_surface_tree(
                        renderer,
                        surface,
                        location,
                        1.0,
                        1.0,
                        Kind::Cursor,
                    );
                }
                let surfaces = render_elements_from_surface_tree(
                    renderer,
                    surface,
                    (0, 0),
                    1.0,
                    1.0,
                    Kind::Cursor,
                );
                return crate::backend::scaled(surfaces, location, scale).collect();
            }
            // A client's cursor surface that is gone: the default arrow.
            CursorImageStatus::Surface(_) => CursorIcon::Default,
        };
        let shape = named_shape(icon);
        let buffer = self
            .shapes
            .entry(shape as *const Shape as usize)
            .or_insert_with(|| {
                let (pixels, width, height) = shape_pixels(shape);
                MemoryRenderBuffer::from_slice(
                    &pixels,
                    Fourcc::Argb8888,
                    (width, height),
                    1,
                    Transform::Normal,
                    None,
                )
            });
        let location = Point::<f64, Physical>::from((
            at.x.floor() - f64::from(shape.hotspot.0),
            at.y.floor() - f64::from(shape.hotspot.1),
        ));
        match MemoryRenderBufferRenderElement::from_buffer(
            renderer,
            location,
            buffer,
            None,
            None,
            None,
            Kind::Cursor,
        ) {
            Ok(element) => vec![OutputElement::CursorShape(element)],
            Err(err) => {
                warn!(?err, "cannot draw the cursor");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixel at (x, y) of a shape, as B, G, R, A.
    fn at(shape: &Shape, x: i32, y: i32) -> [u8; 4] {
        let (pixels, width, _) = shape_pixels(shape);
        let i = ((y * width + x) * 4) as usize;
        pixels[i..i + 4].try_into().unwrap()
    }

    #[test]
    fn arrow_tip_is_its_hotspot() {
        assert_eq!(ARROW.hotspot, (0, 0));
        assert_eq!(at(&ARROW, 0, 0), [0, 0, 0, 0xff]);
        // The white fill starts just below the tip.
        assert_eq!(at(&ARROW, 1, 2), [0xff; 4]);
        let (pixels, width, height) = shape_pixels(&ARROW);
        assert_eq!((width, height), (12, 17));
        assert_eq!(pixels.len(), (width * height * 4) as usize);
    }

    #[test]
    fn named_shapes_are_drawn_at_their_hotspot() {
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
            let (_, width, height) = shape_pixels(shape);
            let (hx, hy) = shape.hotspot;
            assert!(hx < width && hy < height, "{icon:?}");
            assert_eq!(at(shape, hx, hy)[3], 0xff, "{icon:?} hotspot is blank");
        }
        let (_, vw, vh) = shape_pixels(&RESIZE_VERTICAL);
        let (_, hw, hh) = shape_pixels(&RESIZE_HORIZONTAL);
        assert_eq!((vw, vh), (hh, hw));
    }
}
