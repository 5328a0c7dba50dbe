"""End-to-end pen: what a stock Moonlight client sends with `LiSendPenEvent` reaches a Wayland
client at the right place.

The test pattern binds the compositor's tablet seat and prints every tablet tool event: it sees
the pen (and the eraser) as tablet tools with pressure, hover distance and tilt. `wev` has no
tablet support: the host shows it the pen as a touch point while the tip is down, and hovering
is no touch at all.
"""

from __future__ import annotations

import json
import math
import re
import time

import pytest

import hostctl
import scenario
from conftest import start_paired_host
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
LI_TOOL_TYPE_PEN, LI_TOOL_TYPE_ERASER = 0x01, 0x02
LI_PEN_BUTTON_PRIMARY = 0x01
BTN_STYLUS = 0x14B
LI_ROT_UNKNOWN = 0xFFFF
LI_TILT_UNKNOWN = 0xFF


def pen_lib():
    """The client library with the pen entry point."""
    return scenario.client_library(PEN_CDEF)


@pytest.fixture
def wev_host(host_factory, data_dir, port_base, tmp_path):
    return start_wev_host(host_factory, data_dir, port_base, tmp_path)


@pytest.mark.parametrize("mode", [(1920, 1080, 60), ODD_MODE], ids=["1920x1080", "odd"])
def test_pen_hovers_then_draws_as_a_touch_point(wev_host, mode):
    host, client = wev_host
    w, h, fps = mode
    with open_wev(host, client, w, h, fps) as (session, wev):
        lib = pen_lib()
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


# ------------------------------------------------------------ a tablet client ----
def tablet_lines(path) -> list[dict]:
    """The test pattern's tablet event lines so far."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith('{"event":"tablet_'):
            out.append(json.loads(line))
    return out


def test_pen_and_eraser_reach_a_tablet_client(host_factory, data_dir, port_base, tmp_path):
    w, h = 1280, 720
    host, client = start_paired_host(host_factory, data_dir, port_base, tmp_path,
                                     f'[[apps]]\nname = "pattern"\n'
                                     f'cmd = ["{hostctl.binary_path()}", "testpattern"]\n')
    session = scenario.start_session(client, "pattern", w, h, 60)
    log = host.app_log("pattern")
    lib = pen_lib()

    def wait_for(pred, what: str, timeout: float = 8.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            lines = tablet_lines(log)
            if pred(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; tablet lines: {lines}")
            session.stream.drain()
            time.sleep(0.05)

    def send(ev, tool, buttons, x, y, pressure_or_distance, rotation, tilt):
        rc = lib.LiSendPenEvent(ev, tool, buttons, x, y, pressure_or_distance, 0.0, 0.0,
                                rotation, tilt)
        assert rc == 0, f"LiSendPenEvent returned {rc}"
        time.sleep(0.05)

    try:
        deadline = time.monotonic() + 15
        while '"event":"ready"' not in (log.read_text(errors="replace") if log.exists() else ""):
            assert time.monotonic() < deadline, "the test pattern never drew"
            session.stream.drain()
            time.sleep(0.05)

        pen = LI_TOOL_TYPE_PEN
        send(LI_TOUCH_EVENT_HOVER, pen, 0, 0.25, 0.5, 0.5, LI_ROT_UNKNOWN, LI_TILT_UNKNOWN)
        send(LI_TOUCH_EVENT_DOWN, pen, 0, 0.25, 0.5, 0.25, 90, 30)
        send(LI_TOUCH_EVENT_MOVE, pen, LI_PEN_BUTTON_PRIMARY, 0.75, 0.25, 1.0, 90, 30)
        send(LI_TOUCH_EVENT_UP, pen, 0, 0.75, 0.25, 0.0, 90, 30)
        send(LI_TOUCH_EVENT_HOVER_LEAVE, pen, 0, 0.0, 0.0, 0.0, LI_ROT_UNKNOWN, LI_TILT_UNKNOWN)
        lines = wait_for(lambda ls: any(l["event"] == "tablet_proximity_out" for l in ls),
                         "the pen to leave")
        events = [l["event"] for l in lines]
        assert all(l["tool"] == "pen" for l in lines), lines
        assert events[0] == "tablet_proximity_in", events
        for e in ("tablet_down", "tablet_up", "tablet_button"):
            assert e in events, f"no {e}: {events}"
        assert events.index("tablet_down") < events.index("tablet_up"), events
        motions = [(l["x"], l["y"]) for l in lines if l["event"] == "tablet_motion"]
        # The test pattern fills the output: surface coordinates are output pixels.
        assert (0.25 * w, 0.5 * h) in motions, motions
        assert (0.75 * w, 0.25 * h) in motions, motions
        pressures = [l["value"] for l in lines if l["event"] == "tablet_pressure"]
        assert 16384 in pressures and 65535 in pressures, pressures
        distances = [l["value"] for l in lines if l["event"] == "tablet_distance"]
        assert 32768 in distances, distances
        # Leaning 30 degrees towards rotation 90 (Sunshine's convention: x negative); tilt
        # travels as wl_fixed, in 1/256 steps.
        tilts = [(l["x"], l["y"]) for l in lines if l["event"] == "tablet_tilt"]
        assert tilts and all(math.isclose(x, -30.0, abs_tol=1 / 256) and abs(y) <= 1 / 256
                             for x, y in tilts), tilts
        buttons = [(l["button"], l["state"]) for l in lines if l["event"] == "tablet_button"]
        assert buttons[0] == (BTN_STYLUS, "pressed"), buttons
        rotations = [l["value"] for l in lines if l["event"] == "tablet_rotation"]
        assert rotations and set(rotations) == {90.0}, rotations

        # The eraser end is a tool of its own.
        seen = len(lines)
        send(LI_TOUCH_EVENT_HOVER, LI_TOOL_TYPE_ERASER, 0, 0.5, 0.5, 0.5, LI_ROT_UNKNOWN,
             LI_TILT_UNKNOWN)
        lines = wait_for(lambda ls: any(l["event"] == "tablet_motion" for l in ls[seen:]),
                         "the eraser")
        assert lines[seen]["event"] == "tablet_proximity_in", lines[seen:]
        assert {l["tool"] for l in lines[seen:]} == {"eraser"}, lines[seen:]
    finally:
        session.stream.stop()
