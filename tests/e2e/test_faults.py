"""End-to-end: faults around a live host. A client that vanishes without a word, an app that
crashes in a loop, and a data directory that turns read-only or fills up. None of them may lose
a paired client or leave a process behind, and the host keeps serving.

(Xwayland killed under an X11 app: `compositor/tests/xwayland.rs`. The sound server killed:
`test_audio.py`. `kill -9` of the host during state writes: `test_state.py`.)
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

import hostctl
import pattern
import scenario
from clientproc import ClientProcess
from conftest import make_client, pair_with_cli, random_pin
from scenario import mgmt_get
from test_concurrent_sessions import paired_process, pattern_app
from test_dedicated_session import SessionHost

pytestmark = [pytest.mark.host, pytest.mark.slow]

# streamer/src/control.rs PEER_TIMEOUT: how long a silent client keeps its stream.
PEER_TIMEOUT = 10.0
# Threads a GameStream stream runs on in the host (streamer/src/stream.rs, send.rs).
STREAM_THREADS = {"video", "video-send", "audio"}


def thread_names(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return names


def stop_and_check_nothing_left(host: hostctl.Host) -> None:
    """SIGTERM the host; it exits 0 and no process it started outlives it."""
    hostctl.check_gone(host.terminate())


def test_a_client_that_vanishes_keeps_its_session_for_a_resume_and_its_stream_is_freed(
        host_factory, data_dir, port_base, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(pattern_app("Pattern"))
    host = host_factory(data_dir, port_base, config=cfg).start()
    w, h, fps = 640, 480, 30
    a = paired_process(host, tmp_path / "client", "A")
    b = None
    try:
        app_id = a.call("start", "Pattern", w, h, fps)
        a.call("check_pattern", w, h, fps, 1.5)
        running = thread_names(host.proc.pid)
        assert STREAM_THREADS <= set(running), running
        [session] = mgmt_get(host, "/api/sessions")
        assert session["streaming"], session

        # The client's process dies: no ENet disconnect, no /cancel, nothing.
        a.proc.kill()
        a.proc.join(5)
        vanished = time.monotonic()
        while "control peer timed out" not in host.log_text():
            assert time.monotonic() - vanished < PEER_TIMEOUT + 10, \
                f"the host never noticed the client was gone:\n{host.log_text()[-3000:]}"
            time.sleep(0.2)
        noticed = time.monotonic() - vanished
        assert noticed > PEER_TIMEOUT - 1, f"the stream ended {noticed:.1f} s after the client"
        deadline = time.monotonic() + 10
        while STREAM_THREADS & set(thread_names(host.proc.pid)):
            assert time.monotonic() < deadline, \
                f"stream threads outlived the stream: {thread_names(host.proc.pid)}"
            time.sleep(0.2)
        # The session and its app stay for the client's return.
        [kept] = mgmt_get(host, "/api/sessions")
        assert kept["id"] == session["id"] and not kept["streaming"], kept
        assert host.processes("testpattern"), "the app ended with the stream"

        # The client comes back (a new process, the same paired identity) and resumes.
        b = ClientProcess("A again", tmp_path / "client", host.http_port, host.https_port,
                          (host.data_dir / "identity" / "cert.pem").read_bytes())
        assert b.call("serverinfo")["currentgame"] == app_id
        assert b.call("resume", "Pattern", w, h, fps) == app_id
        b.call("check_pattern", w, h, fps, 1.5)
        [again] = mgmt_get(host, "/api/sessions")
        assert again["id"] == session["id"] and again["streaming"], again
        print(f"\n[e2e] vanished client: stream ended after {noticed:.1f} s, "
              f"session {session['id']} resumed")
        stop_and_check_nothing_left(host)
    finally:
        a.close()
        if b is not None:
            b.close()


# session/src/native/mod.rs: a punktfunk/1 connection that hears nothing for this long closes.
NATIVE_IDLE_TIMEOUT = 20.0
NATIVE_STREAM_THREADS = {"native-video", "native-audio"}


def test_a_native_client_that_vanishes_keeps_its_session_for_a_resume(host, tmp_path):
    from test_native import client_binary, paired

    client = paired(host, tmp_path)
    cmd = [str(client_binary()), "--state-dir", str(client.state_dir), "stream", client.address,
           "--mode", "640x480@30", "--json", str(tmp_path / "first.json")]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not [s for s in mgmt_get(host, "/api/sessions") if s["streaming"]]:
            assert time.monotonic() < deadline, "the native stream never started"
            time.sleep(0.2)
        [session] = mgmt_get(host, "/api/sessions")
        assert NATIVE_STREAM_THREADS <= set(thread_names(host.proc.pid))
    finally:
        first.kill()
        first.wait()
    vanished = time.monotonic()
    while [s for s in mgmt_get(host, "/api/sessions") if s["streaming"]]:
        assert time.monotonic() - vanished < NATIVE_IDLE_TIMEOUT + 10, \
            "the host never noticed the native client was gone"
        time.sleep(0.2)
    noticed = time.monotonic() - vanished
    deadline = time.monotonic() + 10
    while NATIVE_STREAM_THREADS & set(thread_names(host.proc.pid)):
        assert time.monotonic() < deadline, thread_names(host.proc.pid)
        time.sleep(0.2)
    [kept] = mgmt_get(host, "/api/sessions")
    assert kept["id"] == session["id"] and not kept["streaming"], kept

    # The client comes back and its stream continues the same session.
    report = client.stream(tmp_path / "again.json", "--mode", "640x480@30", "--seconds", "2")
    assert report["frames_decoded"] >= 30 and report["frame_number_gaps"] == 0, report
    [again] = mgmt_get(host, "/api/sessions")
    assert again["id"] == session["id"], again
    print(f"\n[e2e] vanished native client: stream ended after {noticed:.1f} s, "
          f"session {session['id']} resumed")
    stop_and_check_nothing_left(host)


def test_a_base_app_that_crashes_in_a_loop_is_restarted_later_each_time_and_the_stream_goes_on(
        data_dir, port_base, tmp_path):
    starts = tmp_path / "starts"
    host = SessionHost(data_dir, port_base, log_dir=tmp_path)
    # The test pattern for 1.5 s, then SIGABRT: a game that crashes soon after it starts.
    host.base_cmd = ["sh", "-c", f'date +%s.%N >> {starts}; exec timeout -s ABRT 1.5 '
                                 f'{hostctl.binary_path()} testpattern']
    host.start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    session = scenario.start_session(client, "Desktop", 640, 480, 30)
    stream = session.stream
    try:
        numbers, with_bars, was_shown = [], 0, False
        for n, fr in enumerate(stream.frames(duration=14.0, timeout=12.0)):
            numbers.append(fr.number)
            if n % 5 == 0:
                try:
                    pattern.check_bars(fr.rgb)
                    shown = True
                except pattern.PatternError:
                    shown = False
                with_bars += shown and not was_shown
                was_shown = shown
        times = [float(t) for t in starts.read_text().split()]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # Restarted after 2, 4, 8 s (plus its 1.5 s of life): later each time.
        assert len(times) >= 3, f"started {len(times)} times in 14 s: {times}"
        assert all(g2 > g1 + 1 for g1, g2 in zip(gaps, gaps[1:])), \
            f"restarts did not back off: gaps {gaps}"
        assert gaps[0] > 2.5, f"restarted {gaps[0]:.1f} s after the crash"
        assert with_bars >= 2, "the app's picture never came back after a restart"
        assert not stream.stats.terminated, "the stream ended with the crashing app"
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), \
            f"frame numbers jumped: {numbers}"
        assert len(host.processes("testpattern")) <= 1, host.processes("testpattern")
        print(f"\n[e2e] crash loop: {len(times)} starts, gaps "
              f"{', '.join(f'{g:.1f}' for g in gaps)} s; stream went on")
        stream.stop()
        stop_and_check_nothing_left(host)
    finally:
        stream.stop()
        host.stop()


class Tmpfs:
    """A small tmpfs mounted on `path`, for a data directory that can be made read-only or
    full under a running host. Needs root (as CI has); a machine without it fails the test
    under PUNKTFUNK_E2E_REQUIRE_HOST and skips it otherwise."""

    def __init__(self, path: Path, size: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            why = f"cannot mount a tmpfs: {r.stderr.strip()}"
            if os.environ.get("PUNKTFUNK_E2E_REQUIRE_HOST"):
                raise AssertionError(why)
            pytest.skip(why)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def fill(directory: Path) -> Path:
    """Fills the file system of `directory`; returns the file that holds the space."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def rename(host: hostctl.Host, client_id: str, name: str) -> requests.Response:
    token = (host.data_dir / "mgmt-token").read_text().strip()
    return requests.patch(
        f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}/api/clients/{client_id}",
        json={"name": name}, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def still_paired(client) -> bool:
    return client.serverinfo(https=True).ok().text("PairStatus") == "1"


def test_a_read_only_or_full_data_directory_loses_no_paired_client(host_factory, port_base,
                                                                   tmp_path):
    fs = Tmpfs(tmp_path / "data", "8m")
    # The host's and its apps' logs go on writing into `logs`: a file system cannot be made
    # read-only under files open for writing, so they get one of their own.
    logs = Tmpfs(fs.path / "logs", "32m")
    host = None
    try:
        host = host_factory(fs.path, port_base).start()
        a = make_client(host, tmp_path / "a")
        assert pair_with_cli(host, a, random_pin()) is None
        [a_entry] = mgmt_get(host, "/api/clients")
        before = (fs.path / "state.json").read_bytes()
        outcomes = {}

        for fault in ("read-only", "full"):
            if fault == "read-only":
                fs.remount("ro")
            else:
                fs.remount("rw")
                filler = fill(fs.path)
            b = make_client(host, tmp_path / f"b-{fault}")
            err = pair_with_cli(host, b, random_pin())
            assert err is not None, f"pairing succeeded on a {fault} data directory"
            r = rename(host, a_entry["id"], "Living room")
            assert r.status_code == 500, r.text
            expected = "Read-only file system" if fault == "read-only" else "No space left"
            assert expected in r.json()["error"], r.text
            assert expected in host.log_text()
            # Nothing was lost: the paired client still streams-ready, the file is unchanged.
            assert still_paired(a)
            assert mgmt_get(host, "/api/clients") == [a_entry]
            assert (fs.path / "state.json").read_bytes() == before
            assert not list(fs.path.glob("**/*.tmp-*")), list(fs.path.rglob("*"))
            outcomes[fault] = f"pairing refused ({err}), rename refused ({r.status_code})"

        # Space again: both work, and a restarted host loads what was saved.
        filler.unlink()
        b = make_client(host, tmp_path / "b")
        assert pair_with_cli(host, b, random_pin()) is None
        assert rename(host, a_entry["id"], "Living room").status_code == 200
        host.stop()
        host = host_factory(fs.path, port_base).start()
        names = sorted(c["name"] for c in mgmt_get(host, "/api/clients"))
        assert names == ["Living room", "client 2"], names
        assert still_paired(a) and still_paired(b)
        for fault, outcome in outcomes.items():
            print(f"\n[e2e] data directory {fault}: {outcome}; the paired client stayed")
    finally:
        if host is not None:
            host.stop()
        logs.unmount()
        fs.unmount()
