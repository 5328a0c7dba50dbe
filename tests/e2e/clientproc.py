"""A Moonlight client in a process of its own, for tests with several clients at once.

moonlight-common-c keeps its connection in globals, so one process holds one connection. Each
`ClientProcess` is a child process (multiprocessing, "spawn") with one paired client identity
and at most one stream; the test sends it named steps over a pipe and gets back the result, or
the child's traceback as an AssertionError.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from pathlib import Path

STEP_TIMEOUT = 90.0


class ClientProcess:
    def __init__(self, name: str, identity_dir: Path, http_port: int, https_port: int,
                 server_cert_pem: bytes | None):
        self.name = name
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, name=f"client-{name}", daemon=True,
                                args=(child, str(identity_dir), http_port, https_port,
                                      server_cert_pem))
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, step: str, *args, timeout: float = STEP_TIMEOUT):
        """Run `step` in the child; returns its result or raises its failure."""
        self._conn.send((step, args))
        if not self._conn.poll(timeout):
            raise AssertionError(f"client {self.name}: step {step} took longer than {timeout:.0f} s")
        ok, value = self._conn.recv()
        if not ok:
            raise AssertionError(f"client {self.name}: step {step} failed in the client "
                                 f"process:\n{value}")
        return value

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.call("stop", timeout=30)
                self._conn.send(("exit", ()))
            except (AssertionError, OSError, EOFError):
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def _serve(conn, identity_dir: str, http_port: int, https_port: int, server_cert_pem) -> None:
    from gamestream import ClientIdentity, GameStreamClient

    client = GameStreamClient(ClientIdentity.load(identity_dir), "127.0.0.1", http_port,
                              https_port, server_cert_pem=server_cert_pem)
    steps = _Steps(client)
    while True:
        try:
            step, args = conn.recv()
        except EOFError:
            break
        if step == "exit":
            break
        try:
            conn.send((True, getattr(steps, step)(*args)))
        except BaseException:  # noqa: BLE001 - handed back to the test
            conn.send((False, traceback.format_exc()))
    steps.stop()


class _Steps:
    """What a test can ask a client process to do. Results are plain data (picklable)."""

    def __init__(self, client):
        self.client = client
        self.session = None

    @property
    def stream(self):
        assert self.session is not None, "no stream: call start first"
        return self.session.stream

    def start(self, app: str, w: int, h: int, fps: int) -> int:
        import scenario

        self.session = scenario.start_session(self.client, app, w, h, fps)
        return self.session.app_id

    def resume(self, app: str, w: int, h: int, fps: int) -> int:
        import scenario

        self.session = scenario.start_session(self.client, app, w, h, fps, verb="/resume")
        return self.session.app_id

    def serverinfo(self) -> dict:
        info = self.client.serverinfo(https=True).ok()
        return {"currentgame": int(info.text("currentgame") or "0"),
                "state": info.text("state") or ""}

    def check_pattern(self, w: int, h: int, fps: int, seconds: float) -> list[int]:
        """The test pattern at WxH with gapless counters (scenario.check_video)."""
        import scenario

        rep = scenario.check_video(self.stream, w, h, fps, seconds=seconds)
        return [rep.counters[0], rep.counters[-1]]

    def look(self, seconds: float) -> dict:
        return look(self.stream, seconds)

    def wait_for_look(self, want_bars: bool, colour: list[int] | None, tolerance: int,
                      timeout: float) -> dict:
        return wait_for_look(self.stream, want_bars, colour, tolerance, timeout)

    def check_keys(self, log_path: str) -> None:
        import scenario
        from hostctl import AppLog

        log = AppLog(Path(log_path))
        log.offset = 0
        scenario.wait_keyboard_focus(log)
        scenario.check_keys(self.stream, log)

    def type_text(self, text: str) -> None:
        self.stream.drain()
        self.stream.type_text(text)

    def drain(self) -> int:
        return self.stream.drain()

    def listen(self, seconds: float, probe_hz: list[float]) -> list[dict]:
        """Decode the next `seconds` of the client's audio as a player would; per channel its
        spectral peak, its level and the levels at `probe_hz` (dBFS)."""
        import opus

        stream = self.stream
        before = len(stream.audio)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stream.drain()
            time.sleep(0.05)
        packets = list(stream.audio)
        config = stream.opus_config
        pcm = opus.decode_all(config, [p for _, p in packets])[before * config.samples_per_frame:]
        return [{"peak_hz": float(opus.peak_hz(pcm[:, c])), "dbfs": float(opus.rms_db(pcm[:, c])),
                 "probes": {hz: float(opus.tone_db(pcm[:, c], hz)) for hz in probe_hz}}
                for c in range(config.channels)]

    def wait_terminated(self, timeout: float) -> dict:
        """Keep decoding until the host ends the connection; its termination error."""
        deadline = time.monotonic() + timeout
        stats = self.stream.stats
        while not stats.terminated and time.monotonic() < deadline:
            try:
                for _ in self.stream.frames(duration=0.2, timeout=1.0, rgb=False):
                    pass
            except Exception:  # noqa: BLE001 - the connection is going away
                time.sleep(0.05)
        return {"terminated": stats.terminated, "error": stats.termination_error}

    def terminated(self) -> bool:
        return self.stream.stats.terminated

    def cancel(self) -> None:
        self.client.cancel().ok()

    def stop(self) -> None:
        if self.session is not None:
            self.session.stream.stop()


def look(stream, seconds: float) -> dict:
    """Sizes of the frames decoded in `seconds`, the median colour of the last frame's
    central quarter, and whether the last frame shows the test pattern's bars."""
    import numpy as np

    import pattern

    sizes, last = set(), None
    for fr in stream.frames(duration=seconds):
        sizes.add((fr.width, fr.height))
        last = fr.rgb
    assert last is not None, "no frame decoded"
    h, w = last.shape[:2]
    centre = last[h * 3 // 8:h * 5 // 8, w * 3 // 8:w * 5 // 8].reshape(-1, 3)
    try:
        pattern.check_bars(last)
        bars = True
    except pattern.PatternError:
        bars = False
    return {"sizes": sorted(sizes), "centre": [int(c) for c in np.median(centre, axis=0)],
            "bars": bars}


def wait_for_look(stream, want_bars: bool, colour, tolerance: int, timeout: float) -> dict:
    """Decode until the picture shows the pattern's bars (want_bars) or a centre of `colour`;
    returns the look that matched, or fails with the last one."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = look(stream, 0.3)
        if want_bars and seen["bars"]:
            return seen
        if colour is not None and not seen["bars"] and all(
                abs(a - b) <= tolerance for a, b in zip(seen["centre"], colour)):
            return seen
    raise AssertionError(f"the picture never showed {'the pattern' if want_bars else colour} "
                         f"within {timeout:.0f} s; last: {seen}")
