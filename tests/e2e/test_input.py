"""End-to-end input: what a stock Moonlight client sends arrives in a Wayland client as the
right keysyms, text, pointer positions and touch points.

The app is `wev`, which prints every Wayland event it gets; its output lands in the app log.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager

import pytest

import moonlight
import scenario
from conftest import start_paired_host
from uskeys import MODIFIER_NAMES, PRINTABLE, keysym_name, type_us

pytestmark = [pytest.mark.host, pytest.mark.slow]

WEV_CONFIG = '[[apps]]\nname = "wev"\ncmd = ["stdbuf", "-oL", "wev"]\n'
ODD_MODE = (1366, 768, 60)

# ------------------------------------------------------------------ touch binding ----
TOUCH_CDEF = """
int LiSendTouchEvent(uint8_t eventType, uint32_t pointerId, float x, float y,
                     float pressureOrDistance, float contactAreaMajor, float contactAreaMinor,
                     uint16_t rotation);
uint32_t LiGetHostFeatureFlags(void);
"""
LI_TOUCH_EVENT_DOWN, LI_TOUCH_EVENT_UP, LI_TOUCH_EVENT_MOVE = 0x01, 0x02, 0x03
LI_ROT_UNKNOWN = 0xFFFF
LI_FF_PEN_TOUCH_EVENTS = 0x01


def touch_lib():
    """The client library with the touch entry points."""
    return scenario.client_library(TOUCH_CDEF)


# ------------------------------------------------------------------- wev output ----
class Wev(scenario.AppOutput):
    """wev's output in the app log, from a mark on."""

    app = "wev"

    def pressed_keys(self, text: str | None = None) -> list[tuple[str, str]]:
        """(keysym name, utf8) of every key press, in order."""
        out = []
        pressed = None
        for line in (self.text() if text is None else text).splitlines():
            if "] key:" in line:
                pressed = "state: 1" in line
            elif "sym:" in line and pressed is not None:
                m = re.search(r"sym: (\S+)\s+\(\d+\), utf8: '(.*)'", line)
                if m and pressed:
                    out.append((m.group(1), m.group(2)))
                pressed = None
        return out

    def modifier_masks(self) -> list[int]:
        return [int(m, 16) for m in re.findall(r"depressed: ([0-9A-Fa-f]{8})", self.text())]


def non_modifier(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [k for k in keys if not k[0].startswith(MODIFIER_NAMES)]


# --------------------------------------------------------------------- fixtures ----
def start_wev_host(host_factory, data_dir, port_base, tmp_path, extra_config: str = ""):
    if shutil.which("wev") is None or shutil.which("stdbuf") is None:
        print("\n[e2e] SKIP: wev or stdbuf is not installed")
        pytest.skip("wev or stdbuf is not installed")
    return start_paired_host(host_factory, data_dir, port_base, tmp_path,
                             extra_config + WEV_CONFIG)


@contextmanager
def open_wev(host, client, w: int, h: int, fps: int):
    """Streams wev at WxH@fps once it has keyboard focus; yields (session, wev) and stops the
    stream on the way out."""
    session = scenario.start_session(client, "wev", w, h, fps)
    try:
        wev = Wev(host.app_log("wev"), session.stream)
        wev.wait(lambda t: "wl_keyboard] enter" in t, "wev's keyboard focus", timeout=15)
        # the pointer enters as soon as the window is mapped; let it settle
        time.sleep(0.3)
        yield session, wev
    finally:
        session.stream.stop()


@pytest.fixture
def wev_host(host_factory, data_dir, port_base, tmp_path):
    return start_wev_host(host_factory, data_dir, port_base, tmp_path)


# ------------------------------------------------------------------------ tests ----
def test_every_printable_ascii_character(wev_host):
    host, client = wev_host
    with open_wev(host, client, 1280, 720, 60) as (session, wev):
        wev.mark()
        for ch in PRINTABLE:
            type_us(session.stream, ch)
        want = [(keysym_name(ch), ch) for ch in PRINTABLE]
        got = wev.wait(lambda t: (lambda k: k if len(k) >= len(want) else None)(
            non_modifier(wev.pressed_keys(t))), f"{len(want)} key presses")
        assert got == want, "\n".join(f"{g} != {w}" for g, w in zip(got, want) if g != w)

        # A key-down that carries the Shift bit without a Shift press before it (the press was
        # lost): the host presses Shift around it.
        wev.mark()
        session.stream.tap_key(0x51, moonlight.MODIFIER_SHIFT)  # 'Q'
        session.stream.tap_key(0x31, moonlight.MODIFIER_SHIFT)  # '!'
        session.stream.tap_key(0x51, 0)  # and 'q' again without it
        got = wev.wait(lambda t: (lambda k: k if len(k) >= 3 else None)(
            non_modifier(wev.pressed_keys(t))), "three key presses")
        assert got == [("Q", "Q"), ("exclam", "!"), ("q", "q")], got


def test_ctrl_and_alt_combinations(wev_host):
    host, client = wev_host
    with open_wev(host, client, 1280, 720, 60) as (session, wev):
        s = session.stream
        ctrl, alt = moonlight.MODIFIER_CTRL, moonlight.MODIFIER_ALT
        # Ctrl+C with a real Ctrl press
        wev.mark()
        s.send_key(moonlight.VK_LCONTROL, moonlight.KEY_ACTION_DOWN, ctrl)
        s.tap_key(0x43, ctrl)
        s.send_key(moonlight.VK_LCONTROL, moonlight.KEY_ACTION_UP, 0)
        wev.wait(lambda t: [k for k in non_modifier(wev.pressed_keys(t))], "Ctrl+C")
        assert non_modifier(wev.pressed_keys())[0][0] == "c"
        assert any(m & 0x4 for m in wev.modifier_masks()), f"Control never held: {wev.text()}"
        # Alt+F with a real Alt press
        wev.mark()
        s.send_key(moonlight.VK_LMENU, moonlight.KEY_ACTION_DOWN, alt)
        s.tap_key(0x46, alt)
        s.send_key(moonlight.VK_LMENU, moonlight.KEY_ACTION_UP, 0)
        wev.wait(lambda t: non_modifier(wev.pressed_keys(t)), "Alt+F")
        assert non_modifier(wev.pressed_keys())[0][0] == "f"
        assert any(m & 0x8 for m in wev.modifier_masks()), f"Alt never held: {wev.text()}"
        # Ctrl+Alt+T whose modifier presses were lost: both are synthesized and released again
        wev.mark()
        s.tap_key(0x54, ctrl | alt)
        wev.wait(lambda t: non_modifier(wev.pressed_keys(t)), "Ctrl+Alt+T")
        wev.wait(lambda t: re.findall(r"depressed: 00000000", t), "modifiers released")
        masks = wev.modifier_masks()
        assert any(m & 0xC == 0xC for m in masks), f"Ctrl+Alt not held together: {masks}"
        assert masks[-1] == 0, f"a synthetic modifier stayed down: {masks}"
        assert non_modifier(wev.pressed_keys())[0][0] == "t"


def test_utf8_text(wev_host):
    """Needs the compositor's text support (a keysym per character, with a temporary keymap
    for characters the layout lacks)."""
    host, client = wev_host
    with open_wev(host, client, 1280, 720, 60) as (session, wev):
        text = "Grüße 日本"
        wev.mark()
        session.stream.send_text(text)

        def typed(t):
            s = "".join(u for _, u in non_modifier(wev.pressed_keys(t)))
            return s if len(s) >= len(text) else None

        got = wev.wait(typed, f"the text {text!r}", timeout=10)
        assert got == text, f"typed {got!r}, sent {text!r}"


def pointer_at(text: str) -> tuple[float, float] | None:
    hits = re.findall(r"x, y: (-?[\d.]+), (-?[\d.]+)", text)
    return (float(hits[-1][0]), float(hits[-1][1])) if hits else None


@pytest.mark.parametrize("mode", [(1280, 720, 60), (1920, 1080, 60), ODD_MODE],
                         ids=["1280x720", "1920x1080", "odd"])
def test_absolute_pointer_lands_on_the_pixel(wev_host, mode):
    host, client = wev_host
    w, h, fps = mode
    with open_wev(host, client, w, h, fps) as (session, wev):
        targets = [(0, 0, w, h, 0, 0), (w - 1, h - 1, w, h, w - 1, h - 1),
                   (w // 3, h // 5, w, h, w // 3, h // 5), (123, 457, w, h, 123, 457),
                   # a reference area of another size is scaled
                   (960, 540, 1920, 1080, w / 2, h / 2), (250, 750, 1000, 1000, w / 4, h * 3 / 4)]
        for x, y, rw, rh, ex, ey in targets:
            wev.mark()
            session.stream.send_mouse_position(x, y, rw, rh)
            got = wev.wait(lambda t: (lambda p: p if p and abs(p[0] - ex) < 0.5
                                      and abs(p[1] - ey) < 0.5 else None)(pointer_at(t)),
                           f"pointer at ({ex}, {ey}) for ({x}, {y}) on {rw}x{rh}")
            assert int(got[0]) == int(ex) and int(got[1]) == int(ey), (got, ex, ey)


def test_buttons_and_scroll(wev_host):
    host, client = wev_host
    with open_wev(host, client, 1280, 720, 60) as (session, wev):
        s = session.stream
        # Moonlight button -> evdev code: left, middle, right, side (back), extra (forward).
        for mb, code in [(moonlight.BUTTON_LEFT, 0x110), (moonlight.BUTTON_MIDDLE, 0x112),
                         (moonlight.BUTTON_RIGHT, 0x111), (moonlight.BUTTON_X1, 0x113),
                         (moonlight.BUTTON_X2, 0x114)]:
            wev.mark()
            scenario.click(s, mb)
            text = wev.wait(lambda t: t if re.search(r"button: \d+.*state: 0", t) else None,
                            f"button {mb} press and release")
            got = re.findall(r"button: (\d+)[^,]*, state: (\d)", text)
            assert got == [(str(code), "1"), (str(code), "0")], \
                f"Moonlight button {mb} gave {got}, want evdev {code:#x} pressed and released"
        # One wheel notch is 120 in value120 (or one discrete step); up is negative.
        hscroll = moonlight.load()[1].LiSendHScrollEvent
        for what, send, axis, sign in [("up", lambda: s.send_scroll(1), 0, -1),
                                       ("down", lambda: s.send_scroll(-1), 0, 1),
                                       ("left", lambda: hscroll(-1), 1, -1),
                                       ("right", lambda: hscroll(1), 1, 1)]:
            wev.mark()
            send()
            text = wev.wait(lambda t: t if re.search(r"wl_pointer\] frame", t) and
                            re.search(rf"axis: {axis}", t) else None, f"scroll {what}")
            # wev prints the discrete step on a line it labels axis_stop or axis_discrete
            steps = [int(v) for v in re.findall(
                rf"axis: {axis} \(\w+\), (?:discrete|value120): (-?\d+)", text)]
            values = [float(v) for v in re.findall(
                rf"axis: {axis} \(\w+\), value: (-?[\d.]+)", text)]
            assert values and all(v * sign > 0 for v in values), f"scroll {what}: {text}"
            assert steps and sum(steps) in (sign, 120 * sign), f"scroll {what}: {text}"


@pytest.mark.parametrize("mode", [(1920, 1080, 60), ODD_MODE], ids=["1920x1080", "odd"])
def test_touch_down_move_up(wev_host, mode):
    host, client = wev_host
    w, h, fps = mode
    with open_wev(host, client, w, h, fps) as (session, wev):
        lib = touch_lib()
        flags = lib.LiGetHostFeatureFlags()
        assert flags & LI_FF_PEN_TOUCH_EVENTS, f"host feature flags {flags:#x}: no touch"
        wev.mark()

        def send(ev, pid, x, y):
            rc = lib.LiSendTouchEvent(ev, pid, x, y, 1.0, 0.0, 0.0, LI_ROT_UNKNOWN)
            assert rc == 0, f"LiSendTouchEvent returned {rc}"
            time.sleep(0.05)

        send(LI_TOUCH_EVENT_DOWN, 5, 0.25, 0.5)
        send(LI_TOUCH_EVENT_MOVE, 5, 0.75, 0.25)
        send(LI_TOUCH_EVENT_UP, 5, 0.75, 0.25)
        text = wev.wait(lambda t: t if re.search(r"wl_touch\] up:", t) else None,
                        "touch down, motion and up")
        down = re.search(r"wl_touch\] down: .*?id: (\d+); x, y: ([\d.]+), ([\d.]+)", text)
        motion = re.search(r"wl_touch\] motion: .*?id: (\d+); x, y: ([\d.]+), ([\d.]+)", text)
        assert down and motion, text
        assert abs(float(down.group(2)) - 0.25 * w) <= 1 and abs(float(down.group(3)) - 0.5 * h) <= 1, \
            f"down at {down.group(2)}, {down.group(3)} on {w}x{h}"
        assert abs(float(motion.group(2)) - 0.75 * w) <= 1 and \
            abs(float(motion.group(3)) - 0.25 * h) <= 1, f"motion: {motion.group(0)}"
        assert down.group(1) == motion.group(1), "the contact changed its id"


def test_german_layout_from_config(host_factory, data_dir, port_base, tmp_path):
    host, client = start_wev_host(host_factory, data_dir, port_base, tmp_path,
                                  extra_config='[input]\nkeymap = "de"\n\n')
    with open_wev(host, client, 1280, 720, 60) as (session, wev):
        wev.mark()
        session.stream.tap_key(0x5A, 0)  # VK_Z: the key right of T on a US keyboard
        session.stream.tap_key(0x59, 0)  # VK_Y: bottom left, next to Shift
        got = wev.wait(lambda t: (lambda k: k if len(k) >= 2 else None)(
            non_modifier(wev.pressed_keys(t))), "two key presses")
        assert [k for k, _ in got] == ["y", "z"], f"a German layout typed {got}"
