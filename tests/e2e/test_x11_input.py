"""End-to-end input into an X11 client: what a stock Moonlight client sends arrives in `xev`,
running under the compositor's Xwayland, as the right keysyms, modifier state, pointer pixels,
buttons and scroll buttons.

xev is a catalog app; the host appends its output to the app log. The kiosk window manager
makes its window fill the output at the origin, so window coordinates are output pixels.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

import moonlight
import scenario
from conftest import start_paired_host
from uskeys import MODIFIER_NAMES, PRINTABLE, keysym_name, type_us

pytestmark = [pytest.mark.host, pytest.mark.slow]

XEV_CONFIG = ('[[apps]]\nname = "xev"\n'
              'cmd = ["stdbuf", "-oL", "xev", "-name", "punktfunk-xev"]\n')
ODD_MODE = (1366, 768, 60)
# xev's inner window (INNER_WINDOW_X/Y/WIDTH/HEIGHT plus its border); pointer targets stay
# clear of it so that the events are reported on the main window.
INNER_WINDOW = (10, 10, 64, 64)

# X11 core modifier state bits
SHIFT_MASK, CONTROL_MASK, MOD1_MASK = 0x1, 0x4, 0x8


@dataclass
class XEvent:
    kind: str  # "KeyPress", "ButtonPress", "MotionNotify", ...
    text: str  # the whole block xev printed

    def field(self, pattern: str) -> re.Match | None:
        return re.search(pattern, self.text)

    @property
    def window(self) -> str | None:
        m = self.field(r"window (0x[0-9a-f]+)")
        return m.group(1) if m else None

    @property
    def state(self) -> int:
        m = self.field(r"state (0x[0-9a-f]+)")
        return int(m.group(1), 16) if m else 0

    @property
    def keysym(self) -> tuple[int, str] | None:
        m = self.field(r"\(keysym (0x[0-9a-f]+), (\S+?)\)")
        return (int(m.group(1), 16), m.group(2)) if m else None

    @property
    def lookup(self) -> str | None:
        """What XLookupString made of a key press, as xev prints it (the bytes in hex)."""
        m = self.field(r"XLookupString gives \d+ bytes: ?(\(([0-9a-f ]*)\))?")
        if not m:
            return None
        return (m.group(2) or "").strip()

    @property
    def position(self) -> tuple[int, int] | None:
        m = self.field(r"\((-?\d+),(-?\d+)\), root:")
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def root_position(self) -> tuple[int, int] | None:
        m = self.field(r"root:\((-?\d+),(-?\d+)\)")
        return (int(m.group(1)), int(m.group(2))) if m else None

    @property
    def button(self) -> int | None:
        m = self.field(r"button (\d+),")
        return int(m.group(1)) if m else None


def parse_xev(text: str) -> list[XEvent]:
    """xev prints one event per block of lines, each opening with "<Kind> event, serial"."""
    events = []
    for block in re.split(r"\n\s*\n", text):
        m = re.search(r"^(\w+) event, serial", block.strip())
        if m:
            events.append(XEvent(m.group(1), block))
    return events


def complete(ev: XEvent) -> bool:
    """Whether xev has printed the last line of `ev`."""
    if ev.kind in ("KeyPress", "KeyRelease"):
        return "XFilterEvent returns" in ev.text
    if ev.kind in ("ButtonPress", "ButtonRelease", "MotionNotify"):
        return "same_screen" in ev.text
    return ev.text.endswith("\n")


class Xev(scenario.AppOutput):
    """xev's output in the app log, from a mark on; `wait` hands its predicate the events."""

    app = "xev"

    def events(self, kind: str | None = None) -> list[XEvent]:
        evs = parse_xev(self.text())
        # xev writes an event line by line: the last one may not be complete yet.
        if evs and not complete(evs[-1]):
            evs.pop()
        return [e for e in evs if kind is None or e.kind == kind]

    def parsed(self) -> list[XEvent]:
        return self.events()

    def key_presses(self, evs: list[XEvent] | None = None) -> list[XEvent]:
        """KeyPress events of keys other than modifiers."""
        evs = self.events() if evs is None else evs
        return [e for e in evs if e.kind == "KeyPress" and e.keysym
                and not e.keysym[1].startswith(MODIFIER_NAMES)]


# --------------------------------------------------------------------- fixtures ----
def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install x11-utils xwayland coreutils)"
        print(f"\n[e2e] SKIP: {why}")
        pytest.skip(why)


@pytest.fixture
def xev_host(host_factory, data_dir, port_base, tmp_path):
    need("xev", "Xwayland", "stdbuf")
    return start_paired_host(host_factory, data_dir, port_base, tmp_path, XEV_CONFIG)


@contextmanager
def open_xev(host, client, w: int, h: int, fps: int):
    """Streams xev at WxH@fps once its window is focused and fills the output; yields
    (session, xev) and stops the stream on the way out."""
    session = scenario.start_session(client, "xev", w, h, fps)
    try:
        xev = Xev(host.app_log("xev"), session.stream)
        # Mapped, focused by the window manager, and configured to the output size.
        xev.wait(lambda evs: any(e.kind == "FocusIn" for e in evs), "xev's focus", timeout=20)
        xev.wait(lambda evs: any(e.kind == "ConfigureNotify"
                                 and f"width {w}, height {h}" in e.text for e in evs),
                 f"xev's window configured to {w}x{h}")
        time.sleep(0.3)
        yield session, xev
    finally:
        session.stream.stop()


def main_window(xev: Xev) -> str:
    """The id of xev's top-level window (the one the window manager configured)."""
    for e in xev.events("ConfigureNotify"):
        if e.window:
            return e.window
    raise AssertionError(f"no ConfigureNotify from xev:\n{xev.text()[-4000:]}")


# ------------------------------------------------------------------------ tests ----
def test_every_printable_ascii_character(xev_host):
    host, client = xev_host
    with open_xev(host, client, 1280, 720, 60) as (session, xev):
        xev.mark()
        for ch in PRINTABLE:
            type_us(session.stream, ch)
        got = xev.wait(lambda evs: (lambda k: k if len(k) >= len(PRINTABLE) else None)(
            xev.key_presses(evs)), f"{len(PRINTABLE)} key presses")
        wrong = []
        for ch, ev in zip(PRINTABLE, got):
            want_state = SHIFT_MASK if ch != ch.lower() or ch in '~!@#$%^&*()_+{}|:"<>?' else 0
            # Latin-1 keysyms are the character's code point.
            if (ev.keysym != (ord(ch), keysym_name(ch)) or ev.lookup != f"{ord(ch):02x}"
                    or ev.state & (SHIFT_MASK | CONTROL_MASK | MOD1_MASK) != want_state):
                wrong.append(f"{ch!r}: keysym {ev.keysym}, XLookupString {ev.lookup!r}, "
                             f"state {ev.state:#x} (want {ord(ch):#x} {keysym_name(ch)}, "
                             f"state {want_state:#x})")
        assert not wrong and len(got) == len(PRINTABLE), "\n".join(wrong)


def test_shift_ctrl_and_alt_combinations(xev_host):
    host, client = xev_host
    with open_xev(host, client, 1280, 720, 60) as (session, xev):
        s = session.stream
        shift, ctrl, alt = moonlight.MODIFIER_SHIFT, moonlight.MODIFIER_CTRL, moonlight.MODIFIER_ALT

        def combo(modifier_vks: list[int], mods: int, vk: int) -> XEvent:
            xev.mark()
            for m in modifier_vks:
                s.send_key(m, moonlight.KEY_ACTION_DOWN, mods)
                time.sleep(0.01)
            s.tap_key(vk, mods)
            for m in reversed(modifier_vks):
                s.send_key(m, moonlight.KEY_ACTION_UP, 0)
                time.sleep(0.01)
            return xev.wait(lambda evs: xev.key_presses(evs), f"key {vk:#x} with {mods:#x}")[0]

        # Ctrl+C with real Ctrl presses: keysym c, Control held, XLookupString gives ETX.
        ev = combo([moonlight.VK_LCONTROL], ctrl, 0x43)
        assert ev.keysym == (0x63, "c") and ev.state & CONTROL_MASK, ev.text
        assert ev.lookup == "03", f"Ctrl+C looked up as {ev.lookup!r}"
        # Alt+F: Mod1 held.
        ev = combo([moonlight.VK_LMENU], alt, 0x46)
        assert ev.keysym == (0x66, "f") and ev.state & MOD1_MASK, ev.text
        assert not ev.state & CONTROL_MASK, ev.text
        # Ctrl+Shift+A: upper-case keysym with both modifiers.
        ev = combo([moonlight.VK_LCONTROL, moonlight.VK_LSHIFT], ctrl | shift, 0x41)
        assert ev.keysym == (0x41, "A"), ev.text
        assert ev.state & (SHIFT_MASK | CONTROL_MASK) == SHIFT_MASK | CONTROL_MASK, ev.text
        # Ctrl+Alt+T whose modifier presses were lost: the host holds both around the key and
        # lets them go again, so a plain key after it has no modifiers.
        xev.mark()
        s.tap_key(0x54, ctrl | alt)
        time.sleep(0.05)
        s.tap_key(0x55, 0)
        got = xev.wait(lambda evs: (lambda k: k if len(k) >= 2 else None)(
            xev.key_presses(evs)), "Ctrl+Alt+T, then U")
        t, u = got[0], got[1]
        assert t.keysym == (0x74, "t"), t.text
        assert t.state & (CONTROL_MASK | MOD1_MASK) == CONTROL_MASK | MOD1_MASK, t.text
        assert u.keysym == (0x75, "u"), u.text
        assert u.state & (SHIFT_MASK | CONTROL_MASK | MOD1_MASK) == 0, \
            f"a synthetic modifier stayed down: {u.text}"
        # Shift bit on a key without a Shift press before it: upper case.
        xev.mark()
        s.tap_key(0x51, shift)
        ev = xev.wait(lambda evs: xev.key_presses(evs), "Shift+Q")[0]
        assert ev.keysym == (0x51, "Q") and ev.state & SHIFT_MASK, ev.text


def pointer_targets(w: int, h: int) -> list[tuple[int, int, int, int, float, float]]:
    """(x, y, refW, refH, expected x, expected y) on a WxH output."""
    return [(0, 0, w, h, 0, 0), (w - 1, h - 1, w, h, w - 1, h - 1),
            (w // 3, h // 5, w, h, w // 3, h // 5), (123, 457, w, h, 123, 457),
            # a reference area of another size is scaled
            (960, 540, 1920, 1080, w / 2, h / 2), (250, 750, 1000, 1000, w / 4, h * 3 / 4),
            (1, 1, 3, 3, w / 3, h / 3)]


def outside_inner_window(x: float, y: float) -> bool:
    ix, iy, iw, ih = INNER_WINDOW
    return not (ix <= x < ix + iw and iy <= y < iy + ih)


@pytest.mark.parametrize("mode", [(1280, 720, 60), (1920, 1080, 60), ODD_MODE],
                         ids=["1280x720", "1920x1080", "odd"])
def test_absolute_pointer_lands_on_the_pixel(xev_host, mode):
    host, client = xev_host
    w, h, fps = mode
    with open_xev(host, client, w, h, fps) as (session, xev):
        top = main_window(xev)
        for x, y, rw, rh, ex, ey in pointer_targets(w, h):
            assert outside_inner_window(ex, ey), (ex, ey)
            # the pixel that holds the exact position
            px, py = int(ex), int(ey)
            xev.mark()
            session.stream.send_mouse_position(x, y, rw, rh)
            ev = xev.wait(lambda evs: next((e for e in reversed(evs)
                                            if e.kind == "MotionNotify"), None),
                          f"motion to ({ex}, {ey}) for ({x}, {y}) on {rw}x{rh}")
            # Xwayland may split a jump into several events; the last one is where it ended.
            time.sleep(0.1)
            ev = [e for e in xev.events("MotionNotify")][-1]
            assert ev.window == top, f"motion on another window: {ev.text}"
            assert ev.position == (px, py) and ev.root_position == (px, py), \
                f"({x}, {y}) on {rw}x{rh} should land on pixel ({px}, {py}) of {w}x{h}: " \
                f"{ev.text}"


def test_buttons_and_scroll(xev_host):
    host, client = xev_host
    with open_xev(host, client, 1280, 720, 60) as (session, xev):
        s = session.stream
        s.send_mouse_position(400, 300, 1280, 720)
        xev.wait(lambda evs: any(e.kind == "MotionNotify" and e.position == (400, 300)
                                 for e in evs), "the pointer at (400, 300)")
        # Moonlight button -> X button: left 1, middle 2, right 3, back 8, forward 9.
        for mb, xb in [(moonlight.BUTTON_LEFT, 1), (moonlight.BUTTON_MIDDLE, 2),
                       (moonlight.BUTTON_RIGHT, 3), (moonlight.BUTTON_X1, 8),
                       (moonlight.BUTTON_X2, 9)]:
            xev.mark()
            scenario.click(s, mb)
            evs = xev.wait(lambda evs: evs if any(e.kind == "ButtonRelease" for e in evs)
                           else None, f"button {mb} press and release")
            presses = [e for e in evs if e.kind == "ButtonPress"]
            releases = [e for e in evs if e.kind == "ButtonRelease"]
            assert [e.button for e in presses] == [xb], \
                f"Moonlight button {mb} pressed X buttons {[e.button for e in presses]}"
            assert [e.button for e in releases] == [xb], [e.text for e in releases]
            assert presses[0].position == (400, 300), presses[0].text
        # Wheel notches: X buttons 4 (up) and 5 (down), 6 (left) and 7 (right), one click each.
        hscroll = moonlight.load()[1].LiSendHScrollEvent
        for what, send, xb in [("up", lambda: s.send_scroll(1), 4),
                               ("down", lambda: s.send_scroll(-1), 5),
                               ("two notches down", lambda: s.send_scroll(-2), 5),
                               ("left", lambda: hscroll(-1), 6),
                               ("right", lambda: hscroll(1), 7)]:
            want = 2 if what.startswith("two") else 1
            xev.mark()
            send()
            evs = xev.wait(lambda evs: evs if len([e for e in evs if e.kind == "ButtonRelease"])
                           >= want else None, f"scroll {what}")
            time.sleep(0.2)
            evs = xev.events()
            presses = [e.button for e in evs if e.kind == "ButtonPress"]
            assert presses == [xb] * want, f"scroll {what} pressed X buttons {presses}"
