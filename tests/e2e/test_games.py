"""Real games from Debian's archive, streamed to the Moonlight client library at 1280x720 and at
an odd mode, 1366x768.

Chromium B.S.U. (SDL2, OpenGL on llvmpipe) opens a window of 800x600 that cannot be resized: on
X11 it says so in WM_NORMAL_HINTS, on Wayland it draws at 800x600 whatever size it is offered.
It keeps its size and is scaled to fit the stream (960x720 in the middle at 1280x720), black
bars left and right, its picture reaching every edge of that rectangle. Its menu follows the
keyboard: the highlight bar moves down with the Down key. In play it locks the pointer, and
Moonlight's relative mouse packets reach it.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import moonlight
import scenario
from conftest import need, start_paired_host

pytestmark = pytest.mark.host

W, H = 1280, 720
VK_DOWN, VK_ESCAPE = 0x28, 0x1B


class Fit:
    """Where the game's 800x600 picture is in a `w` x `h` stream: fitted to the height (both
    modes tested are wider than 4:3), centred."""

    def __init__(self, w: int, h: int) -> None:
        self.scale = h / 600
        self.left = (w - round(800 * self.scale)) // 2
        self.right = self.left + round(800 * self.scale)

    def menu_row(self, item: int) -> int:
        """The stream row through the middle of menu item `item` (0 = "new game"): the items
        are 30 pixels apart from y = 270 in the game's window."""
        return round((270 + 30 * item) * self.scale)

    def highlighted(self, rgb: np.ndarray, item: int) -> bool:
        """Whether the blue highlight bar is on menu item `item`: left of the item names, the
        bar is clearly blue (about RGB 66, 69, 163); elsewhere the menu is dark."""
        y = self.menu_row(item)
        x0, x1 = self.left + round(140 * self.scale), self.left + round(170 * self.scale)
        patch = rgb[y - 3:y + 4, x0:x1].astype(np.float32)
        r, g, b = patch[..., 0].mean(), patch[..., 1].mean(), patch[..., 2].mean()
        return b > 110 and b > r + 50 and b > g + 50

    def menu_on(self, item: int):
        """A frame predicate: the highlight is on `item` and not on the next."""
        return lambda rgb: self.highlighted(rgb, item) and not self.highlighted(rgb, item + 1)


def start(host_factory, data_dir, port_base, tmp_path, video_driver: str, watch: bool = False,
          fullscreen: bool = False):
    """A host whose one app is the game, windowed at its default size (800x600), without audio,
    on SDL's `video_driver`, and a client paired with it. With `watch`, what the game receives
    is logged: its Wayland protocol traffic, or on X11 the XI2 raw events (`xinput`). With
    `fullscreen`, the game asks for fullscreen at 640x480 itself (its `-f -v 1`)."""
    game = need("chromium-bsu")
    home = tmp_path / "home"
    home.mkdir()
    cmd = [game, "-na", "-f", "-v", "1"] if fullscreen else [game, "-na", "-w", "-v", "2"]
    env = {"HOME": str(home), "SDL_VIDEODRIVER": video_driver}
    if watch and video_driver == "wayland":
        env["WAYLAND_DEBUG"] = "client"
    elif watch:
        xinput = need("xinput")
        cmd = ["sh", "-c", f'"{xinput}" test-xi2 --root & exec "$0" "$@"', *cmd]
    # TOML's basic strings read JSON's.
    env_table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    return start_paired_host(host_factory, data_dir, port_base, tmp_path,
                             '[[apps]]\nname = "Chromium BSU"\n'
                             f'cmd = [{", ".join(json.dumps(c) for c in cmd)}]\n'
                             f'env = {{ {env_table} }}\n')


def save(frame, name: str) -> None:
    """With $PUNKTFUNK_E2E_DUMP set to a directory, saves a decoded frame there (docs/games.md
    shows such frames)."""
    dump = os.environ.get("PUNKTFUNK_E2E_DUMP")
    if dump and frame is not None:
        from PIL import Image
        Image.fromarray(frame).save(f"{dump}/chromium-bsu-{name}.png")


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32).mean(axis=2)


def latest(session, seconds: float, pred=None):
    """The newest decoded frame after `seconds`, or the first that `pred` accepts."""
    last = None
    deadline = time.monotonic() + seconds
    for fr in session.stream.frames(duration=seconds + 10, timeout=10):
        last = fr.rgb
        if pred is not None and pred(last):
            return last
        if time.monotonic() > deadline:
            break
    return last


@pytest.mark.slow
@pytest.mark.parametrize("mode", [(W, H), (1366, 768)], ids=["1280x720", "1366x768"])
@pytest.mark.parametrize("path", ["wayland", "x11"])
def test_a_fixed_size_sdl2_game_is_fitted_and_its_menu_follows_the_keyboard(
        path, mode, host_factory, data_dir, port_base, tmp_path):
    w, h = mode
    fit = Fit(w, h)
    host, client = start(host_factory, data_dir, port_base, tmp_path, path)
    session = scenario.start_session(client, "Chromium BSU", w, h, 30)
    try:
        frame = latest(session, 20, fit.menu_on(0))
        if mode == (W, H):
            save(frame, f"menu-{path}")
        assert frame is not None and fit.menu_on(0)(frame), \
            f"the menu with 'new game' highlighted never showed;\n{host.app_logs_text()}"
        y = luma(frame)
        left, right = fit.left, fit.right
        # Black bars left and right of the game, nothing of it outside.
        assert y[:, :left - 4].max() < 40 and y[:, right + 4:].max() < 40, \
            (y[:, :left - 4].max(), y[:, right + 4:].max())
        # The game reaches every edge of its picture: its textured background, not a flat
        # band (an 800x600 picture drawn unscaled into a window resized to the output sits in
        # the bottom-left corner, a flat grey above and right of it).
        for name, band in [("top", y[:16, left + 8:right - 8]),
                           ("bottom", y[-16:, left + 8:right - 8]),
                           ("left", y[8:-8, left + 8:left + 20]),
                           ("right", y[8:-8, right - 20:right - 8])]:
            assert band.mean() > 5 and band.std() > 3, \
                f"the {name} edge of the game is flat: mean {band.mean():.1f}, std {band.std():.1f}"
        # The Down key moves the highlight to the next item, and again.
        for item in (1, 2):
            session.stream.send_key(VK_DOWN, moonlight.KEY_ACTION_DOWN)
            time.sleep(0.05)
            session.stream.send_key(VK_DOWN, moonlight.KEY_ACTION_UP)
            frame = latest(session, 10, lambda rgb, i=item: fit.highlighted(rgb, i)
                           and not fit.highlighted(rgb, i - 1))
            assert frame is not None and fit.highlighted(frame, item), \
                f"the highlight did not move to item {item}"
        session.client.cancel().ok()
    finally:
        session.stream.stop()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["wayland", "x11"])
def test_the_game_switching_itself_to_fullscreen_at_640x480_is_fitted(
        path, host_factory, data_dir, port_base, tmp_path):
    """Started with `-f -v 1`, the game asks for fullscreen at 640x480 on its own: on X11 SDL
    sets the mode through RandR (Xwayland emulates it) and asks for _NET_WM_STATE_FULLSCREEN;
    on Wayland it asks for xdg_toplevel fullscreen and draws at 640x480. Either way the stream
    shows its 4:3 picture fitted (960x720 in the middle), the menu where the windowed game has
    it, and the keyboard moves the highlight."""
    fit = Fit(W, H)
    # On Wayland the game's protocol traffic is logged, to see its request.
    host, client = start(host_factory, data_dir, port_base, tmp_path, path,
                         watch=path == "wayland", fullscreen=True)
    session = scenario.start_session(client, "Chromium BSU", W, H, 30)

    def bars(rgb) -> bool:
        y = luma(rgb)
        return y[:, :fit.left - 4].max() < 40 and y[:, fit.right + 4:].max() < 40

    try:
        frame = latest(session, 20, lambda rgb: fit.menu_on(0)(rgb) and bars(rgb))
        save(frame, f"fullscreen-{path}")
        assert frame is not None and fit.menu_on(0)(frame), \
            f"the menu with 'new game' highlighted never showed;\n{host.app_logs_text()}"
        if path == "wayland":
            wait_log(host, "the game never asked for fullscreen",
                     lambda t: "xdg_toplevel@" in t and ".set_fullscreen(" in t)
        y = luma(frame)
        assert bars(frame), (y[:, :fit.left - 4].max(), y[:, fit.right + 4:].max())
        for name, band in [("top", y[:16, fit.left + 8:fit.right - 8]),
                           ("bottom", y[-16:, fit.left + 8:fit.right - 8])]:
            assert band.mean() > 5 and band.std() > 3, f"the {name} edge of the game is flat"
        session.stream.send_key(VK_DOWN, moonlight.KEY_ACTION_DOWN)
        time.sleep(0.05)
        session.stream.send_key(VK_DOWN, moonlight.KEY_ACTION_UP)
        frame = latest(session, 10, fit.menu_on(1))
        assert frame is not None and fit.menu_on(1)(frame), "the highlight did not move"
        session.client.cancel().ok()
    finally:
        session.stream.stop()


def wait_log(host, what: str, pred, timeout: float = 15.0) -> str:
    """The game's log once `pred` holds for it."""
    path = host.app_log("Chromium BSU")
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if pred(text):
            return text
        assert time.monotonic() < deadline, f"{what}; the game's log ends:\n{text[-3000:]}"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["wayland", "x11"])
def test_the_game_locks_the_pointer_and_moonlight_relative_motion_reaches_it(
        path, host_factory, data_dir, port_base, tmp_path):
    """In play, Chromium B.S.U. hides the cursor and takes relative motion (SDL's relative mouse
    mode): on Wayland a locked pointer and zwp_relative_pointer_v1, on X11 XI2 raw motion through
    Xwayland. Moonlight's relative mouse packets (LiSendMouseMoveEvent) arrive as exactly that."""
    fit = Fit(W, H)
    host, client = start(host_factory, data_dir, port_base, tmp_path, path, watch=True)
    session = scenario.start_session(client, "Chromium BSU", W, H, 30)
    try:
        frame = latest(session, 20, fit.menu_on(0))
        assert frame is not None and fit.menu_on(0)(frame), "the menu never showed"
        # Escape starts a game from the first menu.
        session.stream.send_key(VK_ESCAPE, moonlight.KEY_ACTION_DOWN)
        time.sleep(0.05)
        session.stream.send_key(VK_ESCAPE, moonlight.KEY_ACTION_UP)
        if path == "wayland":
            wait_log(host, "the game never locked the pointer",
                     lambda t: "zwp_locked_pointer_v1" in t and ".locked()" in t)
        else:
            # The game grabs the pointer once it plays; give it a moment.
            latest(session, 1.5)
        moves = 30
        for _ in range(moves):
            session.stream.send_mouse_move(-10, -5)
            time.sleep(0.02)
        save(latest(session, 1.0), f"play-{path}")
        if path == "wayland":
            needle = "relative_motion("
            delta = "-10.00000000, -5.00000000, -10.00000000, -5.00000000"
            wait_log(host, f"{moves} relative motion events did not arrive",
                     lambda t: sum(delta in line for line in t.splitlines()
                                   if needle in line) >= moves)
        else:
            text = wait_log(host, f"{moves} XI2 raw motion events did not arrive",
                            lambda t: t.count("(RawMotion)") >= moves)
            assert "-10.00" in text and "-5.00" in text, text[-2000:]
        session.client.cancel().ok()
    finally:
        session.stream.stop()
