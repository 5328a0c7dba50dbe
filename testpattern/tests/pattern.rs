//! The picture matches `docs/testpattern.md`, and the counter reads back, also after damage.

use testpattern::{
    decode_counter, draw, motion_band_top, motion_block_x, pixel, Painter, Region, BARS, MARKER,
    MOTION_BACKGROUND, WHITE,
};

/// A drawn frame with a padded stride, so stride handling is exercised everywhere.
struct Frame {
    width: u32,
    height: u32,
    stride: usize,
    bytes: Vec<u8>,
}

const PADDING_BYTE: u8 = 0xA5;

impl Frame {
    fn draw(frame: u64, width: u32, height: u32, pointer: Option<(f64, f64)>) -> Self {
        let stride = width as usize * 4 + 12;
        let mut bytes = vec![PADDING_BYTE; stride * height as usize];
        draw(frame, width, height, pointer, &mut bytes, stride);
        Self {
            width,
            height,
            stride,
            bytes,
        }
    }

    fn at(&self, x: u32, y: u32) -> [u8; 4] {
        assert!(x < self.width && y < self.height);
        let p = y as usize * self.stride + x as usize * 4;
        self.bytes[p..p + 4].try_into().unwrap()
    }

    fn decode(&self) -> Option<u64> {
        decode_counter(&self.bytes, self.width, self.height, self.stride)
    }
}

/// A small deterministic generator, so failures replay.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 11
}

#[test]
fn counter_round_trips() {
    let mut values = vec![
        0,
        1,
        2,
        3,
        255,
        256,
        1 << 31,
        u32::MAX as u64 - 1,
        u32::MAX as u64,
    ];
    let mut seed = 7;
    values.extend((0..500).map(|_| lcg(&mut seed) & 0xFFFF_FFFF));
    values.extend(1000..1200);
    for n in values {
        let frame = Frame::draw(n, 640, 64, None);
        assert_eq!(frame.decode(), Some(n), "frame {n}");
    }
}

#[test]
fn counter_is_drawn_modulo_2_pow_32() {
    let n = (5u64 << 32) | 1234;
    assert_eq!(Frame::draw(n, 512, 16, None).decode(), Some(1234));
}

#[test]
fn counter_cells_are_where_the_doc_says() {
    let n = 0b1010_0110u64;
    let frame = Frame::draw(n, 1280, 720, None);
    for bit in 0..32u32 {
        let expected = if n >> bit & 1 == 1 {
            pixel(0xFFFFFF)
        } else {
            pixel(0x000000)
        };
        for (dx, dy) in [(0, 0), (15, 0), (0, 15), (15, 15), (8, 8)] {
            assert_eq!(
                frame.at(16 * bit + dx, dy),
                expected,
                "bit {bit} at +({dx},{dy})"
            );
        }
    }
    // Past the 32 cells the counter row is black.
    assert_eq!(frame.at(512, 0), pixel(0x000000));
    assert_eq!(frame.at(1279, 15), pixel(0x000000));
}

#[test]
fn counter_survives_lossy_damage() {
    let mut seed = 99;
    for _ in 0..100 {
        let n = lcg(&mut seed) & 0xFFFF_FFFF;
        let mut frame = Frame::draw(n, 800, 600, None);
        // Noise of up to +-60 per channel, as a rough stand-in for coding artefacts, and a
        // limited-range squeeze (16..235) as from a decoder that does not expand the range.
        for y in 0..16 {
            for x in 0..800 {
                let p = y * frame.stride + x * 4;
                for c in 0..3 {
                    let v = frame.bytes[p + c] as i32;
                    let squeezed = 16 + v * 219 / 255;
                    let noise = (lcg(&mut seed) % 121) as i32 - 60;
                    frame.bytes[p + c] = (squeezed + noise).clamp(0, 255) as u8;
                }
            }
        }
        assert_eq!(frame.decode(), Some(n));
    }
}

#[test]
fn decode_rejects_what_is_not_a_counter() {
    let frame = Frame::draw(42, 640, 480, None);
    // Too narrow or too short for 32 cells.
    assert_eq!(decode_counter(&frame.bytes, 511, 480, frame.stride), None);
    assert_eq!(decode_counter(&frame.bytes, 640, 15, frame.stride), None);
    // A buffer too short for the claimed size.
    assert_eq!(
        decode_counter(&frame.bytes[..frame.stride * 4], 640, 480, frame.stride),
        None
    );
    // Mid grey everywhere is neither 0 nor 1.
    let grey = vec![128u8; 640 * 4 * 16];
    assert_eq!(decode_counter(&grey, 640, 16, 640 * 4), None);
    // The colour bars are not a counter either (yellow and cyan read as bright, but the
    // decoder must at least not panic on them).
    let bars_only = &frame.bytes[frame.stride * 16..];
    let _ = decode_counter(bars_only, 640, 400, frame.stride);
}

#[test]
fn bars_are_where_the_doc_says() {
    for (width, height) in [(1920, 1080), (1280, 720), (643, 481), (64, 40)] {
        let frame = Frame::draw(3, width, height, None);
        let bar_width = width / 8;
        let bars_end = height * 3 / 4;
        for (i, &colour) in BARS.iter().enumerate() {
            let left = bar_width * i as u32;
            let right = if i == 7 {
                width - 1
            } else {
                left + bar_width - 1
            };
            for (x, y) in [
                (left, 16),
                (right, 16),
                (left, bars_end - 1),
                ((left + right) / 2, height / 2),
            ] {
                assert_eq!(
                    frame.at(x, y),
                    pixel(colour),
                    "{width}x{height} bar {i} at ({x},{y})"
                );
            }
        }
        // The bars stop where the motion band starts.
        assert_eq!(motion_band_top(height), bars_end);
        if width >= 100 {
            // Frame 3's block is at x = 24, so the band's first column is grey.
            assert_eq!(frame.at(0, bars_end), pixel(MOTION_BACKGROUND));
        }
    }
}

#[test]
fn motion_band_is_grey_with_a_white_block() {
    let (width, height) = (1280, 720);
    let frame = Frame::draw(10, width, height, None);
    let top = height * 3 / 4;
    let x0 = 80; // 8 * 10
    for y in [top, height - 1] {
        assert_eq!(frame.at(x0 - 1, y), pixel(MOTION_BACKGROUND));
        assert_eq!(frame.at(x0, y), pixel(WHITE));
        assert_eq!(frame.at(x0 + 63, y), pixel(WHITE));
        assert_eq!(frame.at(x0 + 64, y), pixel(MOTION_BACKGROUND));
    }
}

#[test]
fn motion_block_moves_8_px_per_frame_and_wraps() {
    let (width, height) = (400, 100);
    let top = height * 3 / 4;
    let left_edge = |frame: &Frame| -> Vec<u32> {
        // Columns where the block starts: white with grey (or the wrap) to the left.
        (0..width)
            .filter(|&x| {
                let left = if x == 0 { width - 1 } else { x - 1 };
                frame.at(x, top) == pixel(WHITE) && frame.at(left, top) == pixel(MOTION_BACKGROUND)
            })
            .collect()
    };
    for n in 0..200u64 {
        let frame = Frame::draw(n, width, height, None);
        let expected = (8 * n % width as u64) as u32;
        assert_eq!(motion_block_x(n, width), expected);
        assert_eq!(left_edge(&frame), vec![expected], "frame {n}");
        let white = (0..width)
            .filter(|&x| frame.at(x, height - 1) == pixel(WHITE))
            .count();
        assert_eq!(
            white, 64,
            "frame {n}: the block keeps its width when it wraps"
        );
    }
    // Frame 49: x0 = 392, so 8 columns at the right edge and 56 at the left.
    let frame = Frame::draw(49, width, height, None);
    assert_eq!(frame.at(399, top), pixel(WHITE));
    assert_eq!(frame.at(55, top), pixel(WHITE));
    assert_eq!(frame.at(56, top), pixel(MOTION_BACKGROUND));
}

#[test]
fn pointer_marker_is_drawn_last_and_clipped() {
    let frame = Frame::draw(u32::MAX as u64, 640, 480, Some((100.5, 8.2)));
    // 9x9 centred on pixel (100, 8), over the counter row.
    for (x, y) in [(96, 4), (104, 12), (100, 8)] {
        assert_eq!(frame.at(x, y), pixel(MARKER));
    }
    assert_eq!(frame.at(95, 8), pixel(WHITE));
    assert_eq!(frame.at(105, 8), pixel(WHITE));
    assert_eq!(frame.at(100, 13), pixel(WHITE));

    // Near a corner only the part inside the surface is drawn, and nothing outside is touched.
    let frame = Frame::draw(0, 640, 480, Some((639.0, 479.0)));
    assert_eq!(frame.at(639, 479), pixel(MARKER));
    assert_eq!(frame.at(635, 475), pixel(MARKER));
    assert_eq!(frame.at(634, 479), pixel(MOTION_BACKGROUND));
    let frame = Frame::draw(0, 640, 480, Some((-100.0, 5000.0)));
    assert_eq!(frame, Frame::draw(0, 640, 480, None));
}

#[test]
fn stride_padding_is_left_alone() {
    let frame = Frame::draw(77, 333, 77, Some((332.0, 40.0)));
    for y in 0..77 {
        let row_end = y * frame.stride + 333 * 4;
        assert!(
            frame.bytes[row_end..row_end + 12]
                .iter()
                .all(|&b| b == PADDING_BYTE),
            "row {y}"
        );
    }
}

#[test]
fn pixels_are_xrgb_little_endian_and_opaque() {
    assert_eq!(pixel(0xFF0000), [0x00, 0x00, 0xFF, 0xFF]); // B, G, R, X
    assert_eq!(pixel(0x00FF00), [0x00, 0xFF, 0x00, 0xFF]);
    assert_eq!(pixel(0x0000FF), [0xFF, 0x00, 0x00, 0xFF]);
}

#[test]
fn a_reused_painter_draws_what_draw_draws() {
    let mut painter = Painter::new(720, 480);
    for n in [0, 1, 2, 90, 91, 12345] {
        let mut bytes = vec![0; 720 * 4 * 480];
        painter.draw(n, Some((5.0, 5.0)), &mut bytes, 720 * 4);
        assert_eq!(bytes, Frame::draw_tight(n, 720, 480, Some((5.0, 5.0))));
    }
}

#[test]
fn noise_fills_only_the_motion_band_and_changes_every_frame() {
    let (w, h) = (640u32, 480u32);
    let stride = w as usize * 4 + 12;
    let noisy = |n: u64| {
        let mut bytes = vec![PADDING_BYTE; stride * h as usize];
        Painter::new(w, h)
            .with_noise(true)
            .draw(n, Some((300.0, 100.0)), &mut bytes, stride);
        bytes
    };
    let top = motion_band_top(h) as usize;
    let (a, b) = (noisy(7), noisy(8));
    // Above the band: the plain pattern, counter included; the padding stays untouched.
    let plain = Frame::draw(7, w, h, Some((300.0, 100.0)));
    assert_eq!(a[..top * stride], plain.bytes[..top * stride]);
    assert_eq!(decode_counter(&a, w, h, stride), Some(7));
    for y in 0..h as usize {
        assert!(a[y * stride + w as usize * 4..(y + 1) * stride]
            .iter()
            .all(|&p| p == PADDING_BYTE));
    }
    // The band: opaque grey of many levels, not the same two frames running.
    let band = |f: &[u8]| -> Vec<u8> {
        (top..h as usize)
            .flat_map(|y| f[y * stride..y * stride + w as usize * 4].to_vec())
            .collect()
    };
    let levels: std::collections::BTreeSet<u8> = band(&a).chunks_exact(4).map(|px| px[0]).collect();
    assert!(levels.len() > 200, "only {} grey levels", levels.len());
    assert!(band(&a)
        .chunks_exact(4)
        .all(|px| px[0] == px[1] && px[1] == px[2] && px[3] == 0xFF));
    assert_ne!(band(&a), band(&b));
    assert_eq!(a, noisy(7), "noise depends on the frame number only");
}

#[test]
fn the_reported_changes_cover_every_pixel_that_changed_and_spare_the_bars() {
    let (w, h) = (640u32, 480u32);
    let painter = Painter::new(w, h);
    let inside = |regions: &[Region], x: u32, y: u32| {
        regions
            .iter()
            .any(|r| (r.x..r.x + r.width).contains(&x) && (r.y..r.y + r.height).contains(&y))
    };
    let pointers = [
        None,
        Some((100.0, 200.0)),
        Some((400.5, 300.2)),
        Some((2.0, 470.0)),
        Some((639.9, 17.0)),
    ];
    for n in [0u64, 1, 79, 255] {
        for before in pointers {
            for now in pointers {
                let (a, b) = (Frame::draw(n, w, h, before), Frame::draw(n + 1, w, h, now));
                let changed = painter.changes(before, now);
                for y in 0..h {
                    for x in 0..w {
                        assert!(
                            a.at(x, y) == b.at(x, y) || inside(&changed, x, y),
                            "({x}, {y}) changed from frame {n} to the next ({before:?} -> \
                             {now:?}) outside {changed:?}"
                        );
                    }
                }
                // The bars away from the markers are not reported.
                assert!(!inside(&changed, 320, 250), "{changed:?}");
            }
        }
    }
    // With noise, everything is reported, as a game redraws everything.
    assert_eq!(
        painter.with_noise(true).changes(None, None),
        [Region::whole(w, h)]
    );
}

#[test]
fn tiny_surfaces_do_not_panic() {
    for (w, h) in [
        (0, 0),
        (1, 1),
        (7, 3),
        (8, 15),
        (16, 16),
        (63, 17),
        (1, 1000),
    ] {
        let _ = Frame::draw(123, w, h, Some((0.0, 0.0)));
    }
}

impl Frame {
    fn draw_tight(frame: u64, width: u32, height: u32, pointer: Option<(f64, f64)>) -> Vec<u8> {
        let mut bytes = vec![0; width as usize * 4 * height as usize];
        draw(
            frame,
            width,
            height,
            pointer,
            &mut bytes,
            width as usize * 4,
        );
        bytes
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        (self.width, self.height, self.stride) == (other.width, other.height, other.stride)
            && self.bytes == other.bytes
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame {}x{} stride {}",
            self.width, self.height, self.stride
        )
    }
}
