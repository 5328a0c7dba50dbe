"""Building blocks of the end-to-end scenarios: launch and stream, check the video, check input."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cffi

import moonlight
import pattern
from gamestream import GameStreamClient, Launch
import hostctl
from hostctl import AppLog, Host

TEST_PATTERN = "Test Pattern"
TESTPATTERN_NEEDLE = "testpattern"  # in the command line of the test pattern's process
KEYBOARD_ENTER_TIMEOUT = 10.0


_bound: dict[str, object] = {}


def client_library(cdef: str):
    """The client library again, with the entry points that `cdef` declares and moonlight.py
    does not bind (same loaded library, same state)."""
    lib = _bound.get(cdef)
    if lib is None:
        moonlight.load()
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        lib = _bound[cdef] = ffi.dlopen(moonlight.library_path())
    return lib


class AppOutput(AppLog):
    """What an app printed to its app log, from the start or a mark on, read while `stream`
    plays: waiting drains the video so that the stream never backs up behind the test."""

    app = "the app"

    def __init__(self, path: Path, stream: moonlight.Stream):
        super().__init__(path)
        self.offset = 0
        self.stream = stream

    def parsed(self):
        """What `wait` hands its predicate: the text since the mark (subclasses parse it)."""
        return self.text()

    def wait(self, predicate, what: str, timeout: float = 8.0):
        """Wait until predicate(self.parsed()) is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate(self.parsed())
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} in {self.app}'s output:\n"
                                     f"{self.text()[-4000:]}")
            self.stream.drain()
            time.sleep(0.05)


def bitrate_for(w: int, h: int) -> int:
    """10 Mbps at 720p, scaled with the pixel count (never below 10 Mbps)."""
    return max(10000, int(10000 * w * h / (1280 * 720)))


@dataclass
class Session:
    client: GameStreamClient
    launch: Launch
    stream: moonlight.Stream
    app_id: int
    serverinfo: object


def start_session(client: GameStreamClient, app_title: str, w: int, h: int, fps: int,
                  encryption: int = moonlight.ENCFLG_ALL, rikeyid: int | None = None,
                  bitrate_kbps: int | None = None,
                  video_formats: int = moonlight.VIDEO_FORMAT_H264,
                  audio_configuration: int = moonlight.AUDIO_CONFIGURATION_STEREO,
                  audio_capabilities: int = 0, before_connect=None,
                  verb: str = "/launch") -> Session:
    """Launch `app_title` at WxH@fps and connect moonlight-common-c to it; the launch and
    the stream ask for `audio_configuration` (stereo, 5.1 or 7.1) as a client would, with an
    audio renderer of `audio_capabilities`. `before_connect(launch)` runs between the two."""
    info = client.serverinfo(https=True).ok()
    assert info.text("PairStatus") == "1", f"not paired: {info.body[:500]!r}"
    app_id = client.app_id(app_title)
    launch = client.launch(app_id, w, h, fps, rikeyid=rikeyid, verb=verb,
                           surround_audio_info=moonlight.surround_audio_info(audio_configuration))
    assert launch.session_url.startswith(("rtsp://", "rtspenc://")), launch.session_url
    if before_connect is not None:
        before_connect(launch)
    params = moonlight.StreamParams(
        rtsp_session_url=launch.session_url,
        app_version=info.text("appversion") or "",
        gfe_version=info.text("GfeVersion") or "",
        server_codec_mode_support=int(info.text("ServerCodecModeSupport") or "1"),
        rikey=launch.rikey, rikeyid=launch.rikeyid, width=w, height=h, fps=fps,
        bitrate_kbps=bitrate_kbps or bitrate_for(w, h), encryption_flags=encryption,
        supported_video_formats=video_formats, address=client.host)
    params.audio_configuration = audio_configuration
    params.audio_capabilities = audio_capabilities
    stream = moonlight.Stream()
    try:
        stream.start(params, timeout=40)
    except Exception:
        stream.stop()
        raise
    return Session(client, launch, stream, app_id, info)


def mgmt_get(host: Host, path: str):
    """GET `path` on the host's management endpoint with its token; the JSON body of a 200."""
    import requests

    token = (host.data_dir / "mgmt-token").read_text().strip()
    r = requests.get(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}{path}",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def streaming_session(host: Host, timeout: float = 10.0) -> dict:
    """The one streaming session `GET /api/sessions` lists, once its video encoder has opened
    (at the client's first video packet request)."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = mgmt_get(host, "/api/sessions")
        streaming = [s for s in sessions if s["streaming"]]
        assert len(streaming) == 1, f"expected one streaming session: {sessions}"
        if streaming[0]["video_encoder"] is not None or time.monotonic() > deadline:
            return streaming[0]
        time.sleep(0.1)


@dataclass
class VideoReport:
    frames: int = 0
    span_s: float = 0.0
    counters: list = field(default_factory=list)
    unit_numbers: list = field(default_factory=list)
    repeats: int = 0  # frames that showed the same app frame as the one before

    @property
    def rate(self) -> float:
        return (self.frames - 1) / self.span_s if self.span_s > 0 else 0.0


# How long an app may take to draw its first frame after the stream starts.
APP_START_TIMEOUT = 8.0
# How many times a stream's first picture may come before the app's next frame (see
# check_video).
FIRST_PICTURE_REPEATS = 4


def check_video(stream: moonlight.Stream, w: int, h: int, fps: int, seconds: float = 4.0,
                bars_every: int = 10) -> VideoReport:
    """Decode at least `seconds` of video (by receive time) and check every frame: size, the
    counter increasing by exactly 1 per decoded frame, and (every `bars_every`th frame) the
    colour bars and the position of the moving block."""
    rep = VideoReport()
    first_us = None
    prev = None
    started = time.monotonic()
    i = -1
    for fr in stream.frames(timeout=10):
        assert (fr.width, fr.height) == (w, h), \
            f"frame {fr.number}: decoded {fr.width}x{fr.height}, requested {w}x{h}"
        if prev is None:
            # The output is black until the app has drawn its first frame; the pattern must
            # show within a few seconds of the stream starting.
            try:
                pattern.check_bars(fr.rgb)
            except pattern.PatternError:
                assert time.monotonic() - started < APP_START_TIMEOUT, \
                    f"no test pattern on screen {APP_START_TIMEOUT} s after the stream started"
                continue
        i += 1
        n = pattern.decode_counter(fr.rgb)
        if prev is not None:
            # A frame may repeat the app's picture when something else on the output changed
            # (the cursor appearing as the pointer enters); it may never skip one of the app's
            # frames, and repeats stay rare. The stream's first picture may come a few times
            # more: it is the app's newest frame (on a resume, the one it drew before the
            # stream began), sent again for each keyframe the client asks for at the start
            # until the app draws its next one.
            leading = len(rep.counters) < FIRST_PICTURE_REPEATS and set(rep.counters) == {n}
            repeat = n == prev and (len(rep.counters) < 2 or rep.counters[-2] != prev or leading)
            assert n == prev + 1 or repeat, (
                f"test-pattern counter went {prev} -> {n} between consecutive decoded frames "
                f"(decode units {rep.unit_numbers[-1]} -> {fr.number}); counters so far: "
                f"{rep.counters[-10:]}")
            rep.repeats += int(repeat and not leading)
        prev = n
        rep.counters.append(n)
        rep.unit_numbers.append(fr.number)
        if i % bars_every == 0:
            pattern.check_bars(fr.rgb)
            bx = pattern.block_x(fr.rgb)
            want = pattern.expected_block_x(n, w)
            if bx is not None:
                d = min(abs(bx - want), w - abs(bx - want))
                assert d <= 4, f"moving block at x={bx}, expected {want} for frame {n}"
        if first_us is None:
            first_us = fr.receive_time_us
        rep.frames += 1
        rep.span_s = (fr.receive_time_us - first_us) / 1e6
        if rep.span_s >= seconds:
            break
    assert rep.span_s >= seconds, f"video ended after {rep.span_s:.1f} s ({rep.frames} frames)"
    assert rep.repeats <= max(2, rep.frames // 20), \
        f"{rep.repeats} of {rep.frames} frames repeated the previous picture"
    print(f"[e2e] {w}x{h}@{fps}: {rep.frames} frames in {rep.span_s:.2f} s "
          f"({rep.rate:.1f} fps), counters {rep.counters[0]}..{rep.counters[-1]}, "
          f"codec 0x{stream.negotiated_video_format:04x}, audio packets "
          f"{stream.stats.audio_packets}")
    assert stream.stats.size_mismatches == 0, "decode units whose buffers != fullLength"
    assert rep.rate >= 0.5 * fps, f"only {rep.rate:.1f} fps for a {fps} fps stream"
    assert rep.rate <= 1.15 * fps, f"{rep.rate:.1f} fps is more than the requested {fps}"
    return rep


# (VK, modifiers-with-shift?, expected keysym) typed one after the other
KEY_SEQUENCE = [(0x41, False, "a"), (0x5A, True, "Z"), (0x31, False, "1"),
                (moonlight.VK_SPACE, False, "space"), (moonlight.VK_RETURN, False, "Return")]


def wait_keyboard_focus(log: AppLog) -> None:
    log.wait_for(lambda evs: any(e.get("event") == "keyboard_enter" for e in evs),
                 timeout=KEYBOARD_ENTER_TIMEOUT, what="keyboard_enter")


def check_keys(stream: moonlight.Stream, log: AppLog) -> None:
    log.mark()
    for vk, shift, _ in KEY_SEQUENCE:
        if shift:
            stream.send_key(moonlight.VK_LSHIFT, moonlight.KEY_ACTION_DOWN, moonlight.MODIFIER_SHIFT)
            time.sleep(0.03)
            stream.tap_key(vk, moonlight.MODIFIER_SHIFT)
            time.sleep(0.03)
            stream.send_key(moonlight.VK_LSHIFT, moonlight.KEY_ACTION_UP, 0)
        else:
            stream.tap_key(vk)
        time.sleep(0.05)
    want = [k for _, _, k in KEY_SEQUENCE]

    def pressed(evs):
        return [e.get("keysym") for e in evs if e.get("event") == "key"
                and e.get("state") == "pressed" and not str(e.get("keysym", "")).startswith("Shift")]

    evs = log.wait_for(lambda evs: len(pressed(evs)) >= len(want), timeout=5,
                       what=f"key presses {want}")
    assert pressed(evs) == want, f"keysyms pressed: {pressed(evs)}, sent {want}"
    shift_presses = [e for e in evs if e.get("event") == "key" and e.get("state") == "pressed"
                     and str(e.get("keysym", "")).startswith("Shift")]
    assert shift_presses, "the shift key press never arrived"
    log.wait_for(lambda evs: len([e for e in evs if e.get("event") == "key"
                                  and e.get("state") == "released"]) >= len(want) + 1,
                 timeout=3, what="key releases")


def mouse_targets(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """(x, y, refW, refH) positions that land outside the red bar and the counter row."""
    targets = [(w // 8, h - 40, w, h),  # motion band, left
               (w * 3 // 16, h // 2, w, h)]  # centre of the yellow bar
    # a reference plane of another size: the host must scale x*W/refW, y*H/refH
    targets.append((1920 * 3 // 10, 1080 * 8 // 10, 1920, 1080))
    targets.append((500, 950, 1000, 1000))
    return targets


def expected_position(x, y, rw, rh, w, h) -> tuple[float, float]:
    return x * w / rw, y * h / rh


def check_mouse(stream: moonlight.Stream, log: AppLog, w: int, h: int) -> None:
    # where the marker is before the first move, if the pointer is over the app already
    stream.drain()
    shown = pattern.find_marker(next(stream.frames(timeout=5)).rgb)
    previous = (shown.x, shown.y) if shown is not None else None
    for x, y, rw, rh in mouse_targets(w, h):
        ex, ey = expected_position(x, y, rw, rh, w, h)
        assert not pattern.in_red_bar(ex, ey, w, h) and ey > 30, (ex, ey)
        log.mark()
        stream.send_mouse_position(x, y, rw, rh)

        def at_target(evs):
            return [e for e in evs if e.get("event") in ("pointer_motion", "pointer_enter")
                    and abs(float(e["x"]) - ex) <= 1.0 and abs(float(e["y"]) - ey) <= 1.0]

        log.wait_for(at_target, timeout=5,
                     what=f"pointer at ({ex:.1f}, {ey:.1f}) for ({x}, {y}) on {rw}x{rh}")
        # the marker must show up in the video at that spot
        stream.drain()
        deadline = time.monotonic() + 5
        last = None
        stale = False
        for fr in stream.frames(timeout=5):
            rgb = fr.rgb
            if previous is not None:
                # The marker must also be gone from where it was: the app damages only the
                # marker's old and new squares, so the host must convert those rows again.
                # The old spot is masked before the search so that a marker left there cannot
                # hide the new one.
                px, py = int(previous[0]), int(previous[1])
                around = (slice(max(py - 6, 0), py + 7), slice(max(px - 6, 0), px + 7))
                stale = bool(pattern.red_mask(rgb)[around].any())
                rgb = rgb.copy()
                rgb[around] = 0
            m = pattern.find_marker(rgb)
            last = m
            if m is not None and abs(m.x - ex) <= 2.0 and abs(m.y - ey) <= 2.0:
                assert not stale, f"the marker still shows at its old spot {previous}"
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"red pointer marker not at ({ex:.0f}, {ey:.0f}) in the "
                                     f"video; last seen: {last}; still at its old spot "
                                     f"{previous}: {stale}")
        previous = (ex, ey)


def click(stream: moonlight.Stream, button: int, hold: float = 0.03) -> None:
    """Press a mouse button, hold it `hold` seconds and release it."""
    stream.send_mouse_button(moonlight.BUTTON_ACTION_PRESS, button)
    time.sleep(hold)
    stream.send_mouse_button(moonlight.BUTTON_ACTION_RELEASE, button)


def check_buttons_and_scroll(stream: moonlight.Stream, log: AppLog) -> None:
    log.mark()
    click(stream, moonlight.BUTTON_LEFT, hold=0.05)
    stream.send_scroll(1)  # one notch up (WHEEL_DELTA 120 away from the user)
    BTN_LEFT = 272

    def done(evs):
        b = [(e.get("button"), e.get("state")) for e in evs if e.get("event") == "button"]
        a = [e for e in evs if e.get("event") == "axis" and e.get("axis") == "vertical"]
        return (BTN_LEFT, "pressed") in b and (BTN_LEFT, "released") in b and a

    evs = log.wait_for(done, timeout=5, what="left click and a vertical scroll")
    axis = [e for e in evs if e.get("event") == "axis" and e.get("axis") == "vertical"]
    total = sum(float(e.get("value120", 0)) for e in axis)
    assert total == -120, f"scroll up by one notch gave value120 sum {total}: {axis}"


def cancel_and_check_gone(session: Session, host: Host, needle: str = TESTPATTERN_NEEDLE) -> None:
    before = host.processes(needle)
    assert before, f"no child of the host has {needle!r} in its command line while streaming"
    session.client.cancel().ok()
    deadline = time.monotonic() + 10
    while host.processes(needle):
        if time.monotonic() > deadline:
            raise AssertionError(f"app still running 10 s after /cancel: {host.processes(needle)}")
        time.sleep(0.1)
    info = session.client.serverinfo(https=True).ok()
    assert info.text("currentgame") in ("0", None), info.body[:500]


def type_command_and_wait_for(session: "Session", host: Host, target, what: str) -> None:
    """Let a terminal app come up (3 s of video), type `touch <target>` + Enter through the
    client, and wait up to 10 s for the file: what a user typing into a shell would see."""
    frames = 0
    for _ in session.stream.frames(duration=3.0, rgb=False):
        frames += 1
    assert frames > 0, f"no video from {what}"
    session.stream.type_text(f"touch {target}\n")
    deadline = time.monotonic() + 10
    while not target.exists():
        session.stream.drain()
        if time.monotonic() > deadline:
            raise AssertionError(f"{target} did not appear after typing into {what}; app log:\n"
                                 f"{host.app_logs_text()}\nhost log:\n{host.log_text(20000)}")
        time.sleep(0.1)
