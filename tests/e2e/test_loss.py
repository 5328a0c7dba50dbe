"""End-to-end packet loss: the host in one network namespace, the Moonlight client in another,
joined by a veth pair whose host side drops packets at random (see netns.py).

- At 5 % random loss at least 95 % of the frames the host sends are decoded by the client.
- After two seconds of 20 % loss the stream flows without gaps again within one second.
- While 10 % loss runs, the session's FEC percentage in the management API rises above the
  configured one; after the loss ends it is back at the configured percentage and bitrate
  within RESTORE_LIMIT_S (docs/loss.md).

Frames are counted by the host's frame numbers, which never skip: the frames sent in a span are
the numbers it covers, the frames decoded those the client reassembled and PyAV decoded.

FEC carries the 5 % case. moonlight-common-c asks for `minRequiredFecPackets` 2 and sends FEC
status (the host logs both at the stream's start); the host starts with 20 % parity and raises
it while the client reports loss (docs/loss.md). With 20 % throughout, 96 to 99 % of frames
decoded; each loss FEC cannot repair costs two frames, then an IDR resumes the stream. With
`[video] fec_percent = 0` the same run decoded 88 %.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import hostctl
import netns
from conftest import pair_with_cli, random_pin

pytestmark = [pytest.mark.host, pytest.mark.slow]

CLIENT_PROGRAM = Path(__file__).resolve().parent / "netns_client.py"
MODE = (1280, 720, 60)
APP = "Noisy Test Pattern"
# Frames that need this long (or longer) to go from decoded to decoded count as a gap.
RECOVERY_LIMIT_S = 1.0
# A run of consecutive frame numbers this long means the stream flows again.
GAPLESS_RUN = 30
# How long the 5 % loss lasts.
LOSS_SECONDS = 20
# The configured FEC percentage (the default of `[video] fec_percent`).
CONFIGURED_FEC = 20
# How soon after the loss has ended the stream is back at its configured settings: the loss
# control waits 3 s without loss, then steps back once a second, at most six steps from its
# 80 % ceiling (docs/loss.md); one more second for the client's last reports and the polling.
RESTORE_LIMIT_S = 10.0

# Polls GET /api/sessions from inside the host's namespace, where the management API listens
# on loopback, and prints one JSON line per answer with the CLOCK_MONOTONIC time it was asked.
SESSION_POLLER = r"""
import json, sys, time, urllib.request
port, token_file, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
token = open(token_file).read().strip()
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/sessions",
                             headers={"Authorization": "Bearer " + token})
while True:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            print(json.dumps({"t": t, "sessions": json.load(r)}), flush=True)
    except Exception as e:
        print(json.dumps({"t": t, "error": str(e)}), flush=True)
    time.sleep(interval)
"""


def json_lines(stream):
    """The JSON objects among a process's output lines (other lines are skipped)."""
    for line in stream:
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


@dataclass
class Frame:
    n: int
    type: int
    t: float
    counter: int | None


@dataclass
class ClientRun:
    """One `netns_client.py stream` process and what it has printed so far."""

    proc: subprocess.Popen
    frames: list[Frame] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> None:
        for ev in json_lines(self.proc.stdout):
            with self.lock:
                if ev.get("event") == "frame":
                    self.frames.append(Frame(ev["n"], ev["type"], ev["t"], ev["counter"]))
                else:
                    self.other.append(ev)

    def snapshot(self) -> list[Frame]:
        with self.lock:
            return list(self.frames)

    def events(self, name: str) -> list[dict]:
        with self.lock:
            return [e for e in self.other if e.get("event") == name]

    def wait_frames(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.snapshot())} frames decoded "
                                     f"(client exit {self.proc.poll()}, said {self.other[-5:]})")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(15)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait(10)


class NetnsClient:
    """A Moonlight client in the link's client namespace, talking to the host over the veth."""

    def __init__(self, link: netns.LossyLink, host, directory: Path):
        self.link = link
        self.host = host
        self.directory = directory
        self.runs: list[ClientRun] = []

    def command(self, *args: str) -> list[str]:
        return self.link.in_client_ns([
            sys.executable, str(CLIENT_PROGRAM), *args, "--address", self.link.host_addr,
            "--http-port", str(self.host.http_port), "--identity", str(self.directory)])

    def pair(self, pin: str, stage1_timeout: float | None = None) -> None:
        p = subprocess.run(self.command("pair", "--pin", pin), capture_output=True, text=True,
                           timeout=(stage1_timeout or 60) + 30)
        if p.returncode != 0:
            raise RuntimeError(f"pairing over the veth failed ({p.returncode}): "
                               f"{p.stderr.strip()[-2000:]}")

    def stream(self, w: int, h: int, fps: int) -> ClientRun:
        proc = subprocess.Popen(
            self.command("stream", "--app", APP, "--width", str(w),
                         "--height", str(h), "--fps", str(fps)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
            cwd=CLIENT_PROGRAM.parent)
        run = ClientRun(proc)
        self.runs.append(run)
        threading.Thread(target=run.read, name="client-stdout", daemon=True).start()
        return run

    def close(self) -> None:
        for r in self.runs:
            r.close()


@pytest.fixture
def link():
    why = netns.unavailable()
    if why:
        print(f"\n[e2e] SKIP: {why}")
        pytest.skip(why)
    link = netns.LossyLink.create()
    try:
        yield link
    finally:
        link.delete()


@pytest.fixture
def lossy(link, host_factory, data_dir, port_base, tmp_path):
    # `link` first: its namespaces go away after the host has stopped.
    # The test pattern with noise: frames of a game's size (a dozen packets and more), where the
    # plain pattern fits a frame into one or two packets that FEC alone always restores.
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[[apps]]\nname = "{APP}"\n'
                   f'cmd = ["{hostctl.binary_path()}", "testpattern", "--noise"]\n')
    host = host_factory(data_dir, port_base, netns=link.host_ns, config=cfg,
                        env={"PUNKTFUNK_LOG": "info,streamer=debug"}).start()
    client = NetnsClient(link, host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    try:
        yield link, host, client
    finally:
        client.close()


@dataclass
class Sample:
    t: float
    fec_percent: int
    bitrate_kbps: int


class SessionPoller:
    """What the management API says about the one streaming session, twice a second."""

    def __init__(self, host):
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        cmd = host.in_netns([sys.executable, "-u", "-c", SESSION_POLLER,
                             str(host.port_base + hostctl.MGMT_OFFSET),
                             str(host.data_dir / "mgmt-token"), "0.5"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        threading.Thread(target=self._read, name="session-poller", daemon=True).start()

    def _read(self) -> None:
        for ev in json_lines(self.proc.stdout):
            with self.lock:
                if "error" in ev:
                    self.errors.append(ev["error"])
                    continue
                streaming = [s for s in ev["sessions"] if s.get("streaming")]
                if len(streaming) == 1 and streaming[0].get("fec_percent") is not None:
                    s = streaming[0]
                    self.samples.append(Sample(ev["t"], s["fec_percent"],
                                               s["video_bitrate_kbps"]))

    def snapshot(self) -> list[Sample]:
        with self.lock:
            return list(self.samples)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def check_pictures(frames: list[Frame]) -> None:
    """Every decoded picture is a test-pattern frame, in order: nothing garbled got through."""
    unreadable = [f.n for f in frames if f.counter is None]
    assert not unreadable, f"decoded frames without a readable counter: {unreadable[:20]}"
    back = [(a.n, a.counter, b.n, b.counter) for a, b in zip(frames, frames[1:])
            if b.counter <= a.counter or b.n <= a.n]
    assert not back, f"frames out of order (n, counter) -> (n, counter): {back[:10]}"


def first_after(frames: list[Frame], t: float) -> Frame:
    for f in frames:
        if f.t > t:
            return f
    raise AssertionError(f"no frame decoded after t={t:.2f}")


def gaps(frames: list[Frame]) -> list[tuple[int, int]]:
    """(last decoded, next decoded) frame numbers around every run of missing frames."""
    return [(a.n, b.n) for a, b in zip(frames, frames[1:]) if b.n != a.n + 1]


def stream_through_loss(link, client, percent: int, seconds: float,
                        after: float) -> tuple[list[Frame], int, float, float]:
    """Stream MODE until 60 frames and a second more have arrived, drop `percent` % of the
    packets for `seconds`, then stream `after` seconds more and stop. Returns the frames, the
    packets dropped and the monotonic times the loss started and ended."""
    w, h, fps = MODE
    run = client.stream(w, h, fps)
    run.wait_frames(60, timeout=60)
    time.sleep(1.0)

    link.set_loss(percent)
    t_on = time.monotonic()
    time.sleep(seconds)
    dropped = link.dropped()
    link.set_loss(0)
    t_off = time.monotonic()
    time.sleep(after)
    run.close()
    return run.snapshot(), dropped, t_on, t_off


def test_five_percent_loss_most_frames_decode(lossy):
    link, host, client = lossy
    # Long enough that the share is not down to luck: each lost frame costs about two.
    frames, dropped, t_on, t_off = stream_through_loss(link, client, 5, LOSS_SECONDS, 2.0)
    check_pictures([f for f in frames if f.t > t_on - 0.5])
    # The frames sent while the loss was on: from the first one to arrive after it started to
    # the one before the first that arrived after it ended.
    n_first = first_after(frames, t_on + 0.1).n
    n_last = first_after(frames, t_off + 0.1).n - 1
    sent = n_last - n_first + 1
    decoded = len({f.n for f in frames if n_first <= f.n <= n_last})
    idr_after_gap = sum(1 for a, b in zip(frames, frames[1:])
                        if n_first <= b.n <= n_last and b.n != a.n + 1 and b.type == 1)
    holes = [g for g in gaps(frames) if n_first <= g[1] <= n_last]
    print(f"\n[e2e] 5 % loss for {t_off - t_on:.1f} s: {dropped} packets dropped, frames "
          f"{n_first}..{n_last}: {decoded} of {sent} decoded ({100 * decoded / sent:.1f} %), "
          f"{len(holes)} gaps ({idr_after_gap} ended by an IDR frame), longest "
          f"{max((b - a - 1 for a, b in holes), default=0)} frames")
    fec = re.search(r"stream starting.*?(fec_percent=\d+ min_fec_packets=\d+ fec_status=\w+)",
                    host.log_text())
    print(f"[e2e] FEC: {fec.group(1) if fec else 'not in the host log'}")
    assert dropped > 0, "the loss rule dropped nothing"
    assert sent >= 15 * LOSS_SECONDS, f"only {sent} frames sent in {LOSS_SECONDS} s"
    assert decoded >= 0.95 * sent, \
        f"{decoded} of {sent} frames decoded at 5 % loss; gaps (last, next): {holes[:20]}"


def test_stream_recovers_within_a_second_after_a_loss_burst(lossy):
    link, host, client = lossy
    frames, dropped, t_on, t_off = stream_through_loss(link, client, 20, 2.0, 4.0)
    check_pictures([f for f in frames if f.t > t_on - 0.5])
    after = [f for f in frames if f.t > t_off]
    last_before = [f for f in frames if f.t <= t_off][-1]
    assert len(after) > GAPLESS_RUN, \
        f"the stream did not recover: {len(after)} frames decoded in the 4 s after the burst; " \
        f"the last before its end was frame {last_before.n}, " \
        f"{last_before.t - t_on:.2f} s into the burst"
    burst_gaps = [(a, b) for a, b in zip(frames, frames[1:])
                  if b.n != a.n + 1 and t_on < b.t and a.t < t_off + RECOVERY_LIMIT_S]
    assert dropped > 0 and burst_gaps, \
        f"20 % loss ({dropped} packets dropped) cost no frame: the burst did not bite"
    # The stream has recovered at the first frame after the burst from which every frame
    # number follows the one before, for GAPLESS_RUN frames and up to the end.
    start = len(after) - 1
    while start > 0 and after[start].n == after[start - 1].n + 1:
        start -= 1
    tail = after[start:]
    assert len(tail) >= GAPLESS_RUN, \
        f"the stream keeps losing frames after the burst: gaps {gaps(after)[:20]}"
    recovered = tail[0].t - t_off
    longest_stall = max(b.t - a.t for a, b in zip(frames, frames[1:]) if a.t > t_on - 1)
    print(f"\n[e2e] 20 % loss for {t_off - t_on:.1f} s: {dropped} packets dropped, "
          f"{len(burst_gaps)} gaps during it, longest stall {longest_stall * 1000:.0f} ms; "
          f"gapless again {recovered * 1000:.0f} ms after the loss ended (frame "
          f"{tail[0].n}, {'IDR' if tail[0].type == 1 else 'P'})")
    assert recovered <= RECOVERY_LIMIT_S, \
        f"gapless again only {recovered:.2f} s after the burst; gaps after it: " \
        f"{gaps(after)[:20]}"


def test_fec_rises_under_loss_and_returns_after_it(lossy):
    link, host, client = lossy
    w, h, fps = MODE
    poller = SessionPoller(host)
    try:
        run = client.stream(w, h, fps)
        run.wait_frames(60, timeout=60)
        time.sleep(2.0)
        before = poller.snapshot()
        assert before, f"the management API listed no streaming session: {poller.errors[-3:]}"
        assert before[-1].fec_percent == CONFIGURED_FEC, \
            f"FEC at {before[-1].fec_percent} % before any loss"
        configured_kbps = before[-1].bitrate_kbps

        link.set_loss(10)
        t_on = time.monotonic()
        time.sleep(6.0)
        dropped = link.dropped()
        link.set_loss(0)
        t_off = time.monotonic()

        # Wait until the settings are back, a little longer than they may take.
        deadline = t_off + RESTORE_LIMIT_S + 3.0
        while time.monotonic() < deadline:
            last = poller.snapshot()[-1]
            if last.t > t_off and (last.fec_percent, last.bitrate_kbps) == \
                    (CONFIGURED_FEC, configured_kbps):
                break
            time.sleep(0.5)
        time.sleep(2.0)
        run.close()
    finally:
        poller.close()
    samples = poller.snapshot()
    frames = run.snapshot()

    during = [s for s in samples if t_on < s.t <= t_off]
    after = [s for s in samples if s.t > t_off]
    timeline = ", ".join(f"{s.t - t_on:.1f}s {s.fec_percent}%/{s.bitrate_kbps}"
                         for s in samples if s.t > t_on - 1)
    print(f"\n[e2e] 10 % loss for {t_off - t_on:.1f} s ({dropped} packets dropped); "
          f"FEC %/kbps from the loss start: {timeline}")
    assert dropped > 0, "the loss rule dropped nothing"
    assert during and after, "the management API was not polled during and after the loss"
    peak = max(s.fec_percent for s in during)
    assert peak > CONFIGURED_FEC, \
        f"the FEC percentage stayed at {peak} % through {t_off - t_on:.0f} s of 10 % loss"
    # Back for good: the first sample after the loss from which every later one shows the
    # configured settings.
    back = len(after)
    while back > 0 and (after[back - 1].fec_percent, after[back - 1].bitrate_kbps) == \
            (CONFIGURED_FEC, configured_kbps):
        back -= 1
    assert back < len(after), \
        f"not back at {CONFIGURED_FEC} % and {configured_kbps} kb/s " \
        f"{after[-1].t - t_off:.1f} s after the loss: {after[-1]}"
    restored = after[back].t - t_off
    print(f"[e2e] peak FEC {peak} %, back at {CONFIGURED_FEC} % and {configured_kbps} kb/s "
          f"{restored:.1f} s after the loss ended")
    assert restored <= RESTORE_LIMIT_S, \
        f"back at the configured settings only {restored:.1f} s after the loss ended"
    # And the stream kept going throughout.
    assert any(f.t > after[back].t for f in frames), "no frame decoded after the restore"
