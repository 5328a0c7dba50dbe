"""End-to-end pen: what a stock Moonlight client sends with `LiSendPenEvent` reaches a Wayland
client at the right place.

The app is `wev`, which has no tablet support: the host shows it the pen as a touch point while
the tip is down, and hovering is no touch at all. (How a client with a tablet seat sees the
pen, with pressure, tilt and the eraser, is checked in compositor/tests/input_tablet.rs; no
Debian client prints tablet events.)
"""

from __future__ import annotations

import re
import time

import cffi
import pytest

import moonlight
from test_input import LI_FF_PEN_TOUCH_EVENTS, ODD_MODE, open_wev, start_wev_host

pytestmark = [pytest.mark.host, pytest.mark.slow]

PEN_CDEF = """
int LiSendPenEvent(uint8_t eventType, uint8_t toolType, uint8_t penButtons, float x, float y,
                   float pressureOrDistance, float contactAreaMajor, float contactAreaMinor,
                   uint16_t rotation, uint8_t tilt);
uint32_t LiGetHostFeatureFlags(void);
"""
LI_TOUCH_EVENT_HOVER, LI_TOUCH_EVENT_DOWN, LI_TOUCH_EVENT_UP, LI_TOUCH_EVENT_MOVE = 0, 1, 2, 3
LI_TOUCH_EVENT_HOVER_LEAVE = 6
LI_TOOL_TYPE_PEN = 0x01
LI_ROT_UNKNOWN = 0xFFFF
LI_TILT_UNKNOWN = 0xFF
_pen_lib = None


def pen_lib():
    """The client library again, with the pen entry point (same loaded library, same state)."""
    global _pen_lib
    if _pen_lib is None:
        moonlight.load()
        ffi = cffi.FFI()
        ffi.cdef(PEN_CDEF)
        _pen_lib = ffi.dlopen(moonlight.library_path())
    return _pen_lib


@pytest.fixture
def wev_host(host_factory, data_dir, port_base, tmp_path):
    return start_wev_host(host_factory, data_dir, port_base, tmp_path)


@pytest.mark.parametrize("mode", [(1920, 1080, 60), ODD_MODE], ids=["1920x1080", "odd"])
def test_pen_hovers_then_draws_as_a_touch_point(wev_host, mode):
    host, client = wev_host
    w, h, fps = mode
    session, wev = open_wev(host, client, w, h, fps)
    lib = pen_lib()
    try:
        flags = lib.LiGetHostFeatureFlags()
        assert flags & LI_FF_PEN_TOUCH_EVENTS, f"host feature flags {flags:#x}: no pen"
        wev.mark()

        def send(ev, x, y, pressure_or_distance):
            rc = lib.LiSendPenEvent(ev, LI_TOOL_TYPE_PEN, 0, x, y, pressure_or_distance,
                                    0.0, 0.0, 30, 40)
            assert rc == 0, f"LiSendPenEvent returned {rc}"
            time.sleep(0.05)

        # Hovering over the window is not a touch.
        send(LI_TOUCH_EVENT_HOVER, 0.5, 0.5, 0.8)
        send(LI_TOUCH_EVENT_HOVER, 0.25, 0.5, 0.2)
        time.sleep(0.5)
        session.stream.drain()
        assert "wl_touch" not in wev.text(), f"hovering touched:\n{wev.text()[-2000:]}"

        send(LI_TOUCH_EVENT_DOWN, 0.25, 0.5, 0.6)
        send(LI_TOUCH_EVENT_MOVE, 0.75, 0.25, 0.9)
        send(LI_TOUCH_EVENT_UP, 0.75, 0.25, 0.0)
        send(LI_TOUCH_EVENT_HOVER_LEAVE, 0.0, 0.0, 0.0)
        text = wev.wait(lambda t: t if re.search(r"wl_touch\] up:", t) else None,
                        "pen down, motion and up as touch")
        down = re.search(r"wl_touch\] down: .*?id: (-?\d+); x, y: ([\d.]+), ([\d.]+)", text)
        motion = re.search(r"wl_touch\] motion: .*?id: (-?\d+); x, y: ([\d.]+), ([\d.]+)", text)
        assert down and motion, text
        assert abs(float(down.group(2)) - 0.25 * w) <= 1 and \
            abs(float(down.group(3)) - 0.5 * h) <= 1, \
            f"down at {down.group(2)}, {down.group(3)} on {w}x{h}"
        assert abs(float(motion.group(2)) - 0.75 * w) <= 1 and \
            abs(float(motion.group(3)) - 0.25 * h) <= 1, f"motion: {motion.group(0)}"
        assert down.group(1) == motion.group(1), "the pen's touch point changed its id"
        assert len(re.findall(r"wl_touch\] down:", text)) == 1, text
    finally:
        session.stream.stop()
