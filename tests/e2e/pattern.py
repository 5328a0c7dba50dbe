"""Reading the test pattern (docs/testpattern.md) back out of decoded video frames.

All functions take an RGB frame as a numpy array of shape (H, W, 3), dtype uint8. Tolerances
are chosen for H.264 4:2:0 at about 720p / 10 Mbps: sample the centres of regions, never the
edges, where chroma subsampling and ringing blur the colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELL = 16
COUNTER_BITS = 32
BAR_COLOURS = [
    ("white", (255, 255, 255)),
    ("yellow", (255, 255, 0)),
    ("cyan", (0, 255, 255)),
    ("green", (0, 255, 0)),
    ("magenta", (255, 0, 255)),
    ("red", (255, 0, 0)),
    ("blue", (0, 0, 255)),
    ("black", (0, 0, 0)),
]
RED_BAR = 5
BAND_GREY = (0x20, 0x20, 0x20)
MARKER_SIZE = 9
BLOCK_WIDTH = 64
# Largest per-channel error accepted for a bar centre (limited-range YUV round trip, 4:2:0,
# and quantisation at 10 Mbps stay well below this; a wrong colour is off by >= 255).
BAR_TOLERANCE = 48


class PatternError(AssertionError):
    pass


def bars_bottom(h: int) -> int:
    return h * 3 // 4


def bar_ranges(w: int) -> list[tuple[int, int]]:
    """[x0, x1) of each of the eight bars: width W/8, the last takes the remainder."""
    bw = w // 8
    return [(i * bw, (i + 1) * bw if i < 7 else w) for i in range(8)]


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def counter_cells(rgb: np.ndarray) -> np.ndarray:
    """Mean luma of the 4x4 centre of each of the 32 counter cells."""
    if rgb.shape[1] < CELL * COUNTER_BITS or rgb.shape[0] < CELL:
        raise PatternError(f"frame {rgb.shape[1]}x{rgb.shape[0]} too small for the counter row")
    row = rgb[6:10, : CELL * COUNTER_BITS].astype(np.float32)
    y = 0.299 * row[..., 0] + 0.587 * row[..., 1] + 0.114 * row[..., 2]
    cells = y.reshape(4, COUNTER_BITS, CELL)[:, :, 6:10]
    return cells.mean(axis=(0, 2))


def decode_counter(rgb: np.ndarray, threshold: float = 128.0, margin: float = 48.0) -> int:
    """The frame counter n (bit i = cell i, LSB first). Raises PatternError when a cell is
    neither clearly white nor clearly black (e.g. a frame that is not the test pattern)."""
    lum = counter_cells(rgb)
    unclear = np.nonzero(np.abs(lum - threshold) < margin)[0]
    if unclear.size:
        raise PatternError(f"counter cells {unclear.tolist()} unreadable: luma "
                           f"{[round(float(lum[i])) for i in unclear]}")
    bits = lum > threshold
    return int(sum(1 << i for i in range(COUNTER_BITS) if bits[i]))


def bar_samples(rgb: np.ndarray) -> list[tuple[int, int, int]]:
    """Median colour of the central patch of each bar."""
    h, w = rgb.shape[:2]
    y0, y1 = 16, bars_bottom(h)
    ym = (y0 + y1) // 2
    dy = max(2, min(24, (y1 - y0) // 4))
    out = []
    for x0, x1 in bar_ranges(w):
        xm = (x0 + x1) // 2
        dx = max(2, min(24, (x1 - x0) // 4))
        patch = rgb[ym - dy: ym + dy, xm - dx: xm + dx].reshape(-1, 3)
        out.append(tuple(int(v) for v in np.median(patch, axis=0)))
    return out


def check_bars(rgb: np.ndarray, tolerance: int = BAR_TOLERANCE) -> None:
    """Raise PatternError unless all eight bars have their colour within `tolerance`."""
    bad = []
    for (name, want), got in zip(BAR_COLOURS, bar_samples(rgb)):
        if max(abs(a - b) for a, b in zip(want, got)) > tolerance:
            bad.append(f"{name}: got {got}, want {want}")
    if bad:
        raise PatternError("colour bars wrong: " + "; ".join(bad))


def block_x(rgb: np.ndarray) -> int | None:
    """Left edge x0 of the white block in the motion band (None if not found)."""
    h, w = rgb.shape[:2]
    y0 = bars_bottom(h)
    ym = (y0 + h) // 2
    rows = _luma(rgb[ym - 2: ym + 2])
    white = rows.mean(axis=0) > 128
    if not white.any() or white.all():
        return None
    # x0: a white column whose left neighbour (cyclically) is not white
    starts = [x for x in range(w) if white[x] and not white[x - 1]]
    if len(starts) != 1:
        return None
    return starts[0]


def expected_block_x(n: int, w: int) -> int:
    return (8 * n) % w


def red_mask(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (r > 170) & (g < 90) & (b < 90)


@dataclass
class Marker:
    x: float
    y: float
    pixels: int


def find_marker(rgb: np.ndarray) -> Marker | None:
    """Centre of the red 9x9 pointer marker, or None. The red bar itself is masked out, so a
    marker that lies entirely inside the red bar cannot be found."""
    h, w = rgb.shape[:2]
    mask = red_mask(rgb)
    x0, x1 = bar_ranges(w)[RED_BAR]
    mask[16: bars_bottom(h), x0:x1] = False
    ys, xs = np.nonzero(mask)
    if xs.size < 20:
        return None
    # keep the densest cluster: pixels within 8 px of the median
    mx, my = np.median(xs), np.median(ys)
    near = (np.abs(xs - mx) <= 8) & (np.abs(ys - my) <= 8)
    if near.sum() < 20:
        return None
    return Marker(float(xs[near].mean()), float(ys[near].mean()), int(near.sum()))


def in_red_bar(x: float, y: float, w: int, h: int, pad: int = 6) -> bool:
    x0, x1 = bar_ranges(w)[RED_BAR]
    return x0 - pad <= x < x1 + pad and 16 - pad <= y < bars_bottom(h) + pad


def draw(n: int, w: int, h: int, pointer: tuple[int, int] | None = None) -> np.ndarray:
    """Render frame n of the test pattern exactly as docs/testpattern.md describes."""
    img = np.zeros((h, w, 3), np.uint8)
    for i in range(COUNTER_BITS):
        if (n >> i) & 1:
            img[0:CELL, CELL * i: CELL * i + CELL] = 255
    yb = bars_bottom(h)
    for (x0, x1), (_, colour) in zip(bar_ranges(w), BAR_COLOURS):
        img[16:yb, x0:x1] = colour
    img[yb:h] = BAND_GREY
    bx = expected_block_x(n, w)
    cols = [(bx + k) % w for k in range(BLOCK_WIDTH)]
    img[yb:h, cols] = 255
    if pointer is not None:
        px, py = pointer
        half = MARKER_SIZE // 2
        img[max(0, py - half): max(0, py + half + 1), max(0, px - half): max(0, px + half + 1)] = \
            (255, 0, 0)
    return img
