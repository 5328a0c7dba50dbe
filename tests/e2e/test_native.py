"""punktfunk/1, the native protocol, end to end: the reference client `punktfunk-client` against
`punktfunk serve` on 127.0.0.1.

Pairing with the PIN the host prints (`punktfunk pair --native`), a wrong PIN and an unpaired
certificate refused without changing anything, the test pattern streamed at an odd mode with two
mode changes mid-stream (decoded at each size, the app redrawing at it, no frame missing), typing
into a terminal, and the quit that stops the app.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import requests

import hostctl
import netns
import pattern
from conftest import need
from scenario import mgmt_get

NATIVE_OFFSET = 30


def client_binary() -> Path:
    """`punktfunk-client`, next to the host binary (PUNKTFUNK_CLIENT_BIN overrides)."""
    path = Path(os.environ.get("PUNKTFUNK_CLIENT_BIN")
                or hostctl.binary_path().with_name("punktfunk-client"))
    if not path.is_file():
        assert not os.environ.get("PUNKTFUNK_E2E_REQUIRE_HOST"), \
            f"{path} is missing; build it with cargo build -p punktfunk-client"
        pytest.skip(f"{path} is not built")
    return path


class NativeClient:
    """One `punktfunk-client` identity (its state directory) talking to one host."""

    def __init__(self, host: hostctl.Host, state_dir: Path):
        self.host = host
        self.state_dir = state_dir
        self.address = f"127.0.0.1:{host.port_base + NATIVE_OFFSET}"
        # Runs the client elsewhere (in a network namespace) when set.
        self.prefix: list[str] = []

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        cmd = [*self.prefix, str(client_binary()), "--state-dir", str(self.state_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def pair(self, pin: str) -> subprocess.CompletedProcess:
        return self.run("pair", self.address, "--pin", pin, "--name", "e2e client")

    def stream(self, report: Path, *args: str, timeout: float = 120.0) -> dict:
        p = self.run("stream", self.address, "--json", str(report), *args, timeout=timeout)
        assert p.returncode == 0, f"stream failed ({p.returncode}): {p.stdout}\n{p.stderr}"
        return json.loads(report.read_text())


def arm_pin(host: hostctl.Host) -> str:
    r = host.cli("pair", "--native", "--data-dir", str(host.data_dir),
                 "--port-base", str(host.port_base))
    assert r.returncode == 0, r.output
    pin = r.stdout.strip()
    assert len(pin) == 6 and pin.isdigit(), r.output
    return pin


def paired_clients(host: hostctl.Host) -> list[str]:
    r = host.clients()
    assert r.returncode == 0, r.output
    return [line for line in r.stdout.splitlines() if line and line != "no paired clients"]


def paired(host: hostctl.Host, tmp_path: Path) -> NativeClient:
    client = NativeClient(host, tmp_path / "client")
    p = client.pair(arm_pin(host))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    return client


def test_pairing_takes_the_printed_pin_once_and_refuses_a_wrong_one(host, tmp_path):
    client = NativeClient(host, tmp_path / "client")
    assert paired_clients(host) == []

    # A wrong PIN: refused, nothing stored, and the armed PIN is used up.
    pin = arm_pin(host)
    wrong = f"{(int(pin) + 1) % 1_000_000:06d}"
    p = client.pair(wrong)
    assert p.returncode != 0 and "PIN did not match" in p.stderr, p.stderr
    assert paired_clients(host) == []
    p = client.pair(pin)
    assert p.returncode != 0 and "no PIN is armed" in p.stderr, p.stderr
    assert paired_clients(host) == []
    assert not (client.state_dir / "hosts.json").exists() or \
        client.address not in json.loads((client.state_dir / "hosts.json").read_text())

    # The printed PIN pairs: the host lists the client under its name, the client pins the host.
    p = client.pair(arm_pin(host))
    assert p.returncode == 0, p.stderr
    [line] = paired_clients(host)
    assert "e2e client" in line and "punktfunk/1" in line, line
    pins = json.loads((client.state_dir / "hosts.json").read_text())
    assert len(pins[client.address]) == 64, pins

    # A paired client lists the catalog.
    p = client.run("list", client.address)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("\tTest Pattern"), p.stdout


def test_an_unpaired_certificate_gets_nothing(host, tmp_path):
    client = paired(host, tmp_path)
    # Another identity that pins the same host but was never paired.
    stranger = NativeClient(host, tmp_path / "stranger")
    stranger.state_dir.mkdir()
    shutil.copy(client.state_dir / "hosts.json", stranger.state_dir / "hosts.json")
    p = stranger.run("list", stranger.address)
    assert p.returncode != 0 and "not paired" in p.stderr, p.stderr
    p = stranger.run("stream", stranger.address, "--mode", "640x360@30", "--seconds", "2")
    assert p.returncode != 0 and "not paired" in p.stderr, p.stderr
    assert mgmt_get(host, "/api/sessions") == []
    assert len(paired_clients(host)) == 1


def last_frame(png: Path) -> np.ndarray:
    with av.open(str(png)) as f:
        return next(f.decode(video=0)).to_ndarray(format="rgb24")


def test_the_test_pattern_streams_at_an_odd_mode_and_changes_mode_twice(host, tmp_path):
    client = paired(host, tmp_path)
    report = client.stream(
        tmp_path / "report.json", "--mode", "1366x768@60", "--seconds", "5",
        "--reconfigure", "800x600@60@1.5", "--reconfigure", "1280x720@30@3",
        "--output", str(tmp_path / "last.png"), "--frame-times", str(tmp_path / "times.csv"),
        "--quit")
    assert report["resolutions"] == ["1366x768", "800x600", "1280x720"], report
    assert report["reconfigured"] == ["800x600@60", "1280x720@30"], report
    assert report["frame_number_gaps"] == 0 and report["frames_lost"] == 0, report
    assert report["frames_decoded"] == report["frames_received"] >= 60, report
    assert report["decode_errors"] == 0, report
    latency = report["latency_us"]
    assert latency["render_to_decoded"]["p50"] > 0, report
    # Every frame's header said what the encoder took, a part of the way to the client.
    assert latency["encode"]["count"] == report["frames_received"], latency
    assert 0 < latency["encode"]["p50"] < latency["render_to_reassembled"]["p50"], latency
    assert latency["render_to_reassembled_without_encode"]["count"] == report["frames_received"]
    # The same per frame, on the host's clock: rendered, then reassembled, then decoded.
    lines = (tmp_path / "times.csv").read_text().splitlines()
    assert lines[0] == "pts_ns,reassembled_ns,decoded_ns,encode_us"
    rows = [[int(v) if v else None for v in line.split(",")] for line in lines[1:]]
    assert len(rows) == report["frames_received"]
    for pts, reassembled, decoded, encode_us in rows:
        assert pts < reassembled < decoded and encode_us > 0, (pts, reassembled, decoded)

    # The app redrew at the last size: its bars and its frame counter in the last frame.
    rgb = last_frame(tmp_path / "last.png")
    assert rgb.shape == (720, 1280, 3)
    pattern.check_bars(rgb)
    assert pattern.decode_counter(rgb) > 0

    # --quit stopped the app and its session.
    assert mgmt_get(host, "/api/sessions") == []


def test_typing_reaches_a_terminal(host_factory, data_dir, port_base, tmp_path):
    need("foot")
    marker = tmp_path / "typed-over-punktfunk1"
    config = tmp_path / "config.toml"
    config.write_text('[[apps]]\nname = "Shell"\ncmd = ["foot", "sh"]\n\n'
                      '[apps.env]\nTERM = "foot"\n')
    host = host_factory(data_dir, port_base, config=config).start()
    client = paired(host, tmp_path)
    report = client.stream(tmp_path / "report.json", "--app", "Shell", "--mode", "1024x640@30",
                           "--seconds", "4", "--type", f"touch {marker}\n")
    assert report["frames_decoded"] > 0, report
    assert marker.exists(), "the typed command did not run in the terminal"
    # Without --quit the session stays for a resume; ending it stops the shell.
    [session] = mgmt_get(host, "/api/sessions")
    assert session["app"] == "Shell", session


def test_a_synthetic_stream_of_800_mbits_arrives_whole(host, tmp_path):
    """The transport alone: frames of filler at 800 Mbit/s for 10 s on loopback, every one
    reassembled, none dropped by the host's socket (its counter, logged when the stream
    stops)."""
    client = paired(host, tmp_path)
    report = client.stream(tmp_path / "report.json", "--mode", "1920x1080@60",
                           "--seconds", "10", "--synthetic-kbps", "800000")
    assert report["synthetic"] is True, report
    assert report["latency_us"]["encode"]["count"] == 0, "filler is not encoded"
    assert report["frames_lost"] == 0 and report["frame_number_gaps"] == 0, report
    # The rate itself is a benchmark (docs/benchmarks.md, section 12): on a busy machine a debug
    # build makes fewer frames, but every frame it makes arrives.
    assert report["frames_received"] >= 300, report
    assert 400_000 < report["bitrate_kbps"] < 840_000, report
    assert report["datagrams_dropped"]["total"] == 0, report
    deadline = time.monotonic() + 10
    stopped = None
    while stopped is None and time.monotonic() < deadline:
        stopped = re.search(r"native stream stopped frames_sent=(\d+) datagrams_sent=\d+ "
                            r"send_failures=(\d+)", host.log_text())
        time.sleep(0.2)
    assert stopped, "the host did not log the stream's end"
    assert int(stopped.group(1)) >= report["frames_received"], stopped.group(0)
    assert stopped.group(2) == "0", f"the host's socket refused datagrams: {stopped.group(0)}"


def test_ten_percent_random_loss_costs_under_one_percent_of_the_frames(host_factory, data_dir,
                                                                       port_base, tmp_path):
    """The host in one network namespace, the client in another, 10 % of the host's packets
    dropped at random (netns.py) for the whole stream: the test pattern with noise (frames of a
    game's size) at 1080p60 for 15 s, at least 99 % of the frames complete by FEC alone. The
    client reports loss four times a second; the host's loss control (GameStream's) raises the
    FEC share with it and, at 10 % (heavy loss), cuts the bitrate and says so. From the first
    report on, every frame carries the recovery shards its own size needs at the measured rate
    (fec::Protection): the frames lost are those sent before it, a few at most."""
    why = netns.unavailable()
    if why:
        assert not os.environ.get("CI"), why
        pytest.skip(why)
    link = netns.LossyLink.create()
    try:
        config = tmp_path / "config.toml"
        config.write_text('[[apps]]\nname = "Noisy Test Pattern"\n'
                          f'cmd = ["{hostctl.binary_path()}", "testpattern", "--noise"]\n')
        host = host_factory(data_dir, port_base, netns=link.host_ns, config=config).start()
        client = NativeClient(host, tmp_path / "client")
        client.address = f"{netns.HOST_ADDR}:{host.port_base + NATIVE_OFFSET}"
        client.prefix = link.in_client_ns([])
        p = client.pair(arm_pin(host))
        assert p.returncode == 0, p.stderr
        link.set_loss(10)
        report = client.stream(tmp_path / "report.json", "--app", "Noisy Test Pattern",
                               "--mode", "1920x1080@60", "--seconds", "15", "--quit")
        dropped = link.dropped()
        link.set_loss(0)
        frames = report["frames_received"] + report["frames_lost"]
        # About a tenth of what the host sent (the client received the rest).
        assert dropped > report["datagrams"] // 20, f"the loss rule dropped only {dropped}"
        assert report["frames_received"] >= 100, report
        assert report["fec_recovered"] > 0, report
        assert report["frames_lost"] <= frames // 100, \
            f"{report['frames_lost']} of {frames} frames lost: {report}"
        cuts = [c for c in report["bitrate_changes"] if c["reason"] == "congestion"]
        assert cuts and cuts[0]["kbps"] < 10_000, report["bitrate_changes"]
        assert "loss control: more protection" in host.log_text()
        print(f"\n[e2e] native at 10 % loss: {report['frames_lost']} of {frames} frames lost, "
              f"{report['fec_recovered']} recovered, bitrate "
              f"{' -> '.join(str(c['kbps']) for c in cuts)} kbit/s")
        host.stop()
    finally:
        link.delete()


def test_the_console_stops_a_native_session_and_unpairing_locks_the_client_out(host, tmp_path):
    client = paired(host, tmp_path)
    report_path = tmp_path / "report.json"
    cmd = [*client.prefix, str(client_binary()), "--state-dir", str(client.state_dir), "stream",
           client.address, "--mode", "800x600@30", "--json", str(report_path)]
    streaming = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        sessions = []
        while time.monotonic() < deadline:
            # Streaming, and its first frame encoded (and sent) already.
            sessions = [s for s in mgmt_get(host, "/api/sessions")
                        if s["streaming"] and s["video_encoder"]]
            if sessions:
                break
            time.sleep(0.2)
        [session] = sessions
        # The client's first frames on their way through its decoder.
        time.sleep(1.0)
        assert (session["width"], session["height"]) == (800, 600), session
        token = (host.data_dir / "mgmt-token").read_text().strip()
        r = requests.delete(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}"
                            f"/api/sessions/{session['id']}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        out, err = streaming.communicate(timeout=30)
    finally:
        if streaming.poll() is None:
            streaming.kill()
            streaming.wait()
    # The client heard why its stream ended, and left cleanly.
    assert streaming.returncode == 0, err
    report = json.loads(report_path.read_text())
    assert report["close"] == "app_exited" and report["frames_decoded"] > 0, report
    assert mgmt_get(host, "/api/sessions") == []

    # Unpaired, the same certificate gets nothing.
    [line] = paired_clients(host)
    r = host.cli("unpair", line.split("\t")[0], "--data-dir", str(host.data_dir),
                 "--port-base", str(host.port_base))
    assert r.returncode == 0, r.output
    p = client.run("list", client.address)
    assert p.returncode != 0 and "not paired" in p.stderr, p.stderr


def test_a_mode_the_encoder_cannot_take_is_refused_and_the_stream_goes_on(host, tmp_path):
    client = paired(host, tmp_path)
    report = client.stream(tmp_path / "report.json", "--mode", "640x360@30", "--seconds", "3",
                           "--reconfigure", "801x600@30@1", "--quit")
    assert report["reconfigured"] == [], report
    assert report["resolutions"] == ["640x360"], report
    assert report["frame_number_gaps"] == 0 and report["frames_decoded"] >= 30, report


def test_the_apps_sound_is_decoded_by_the_client(host_factory, data_dir, port_base, tmp_path):
    """An app plays a tone on the left speaker, then one on each speaker (test_audio.py's
    script, through pacat into the session's sink); the reference client decodes the Opus
    packets and writes what a player would play (--audio-output). The WAV holds each tone at
    its frequency on its speaker, the other speaker silent, for the script's length."""
    import test_audio as ta

    for program in ("pacat", "pulseaudio"):
        need(program)
    layout = ta.LAYOUTS[0]  # stereo, what the reference client asks for
    script = ta.tone_script(layout)
    cfg, trigger = ta.tone_app_config(tmp_path, layout, script)
    host = host_factory(data_dir, port_base, config=cfg).start()
    ta.require_sound_server(host)
    client = paired(host, tmp_path)
    wav = tmp_path / "sound.wav"
    # The script (2 s) starts half a second after the session's sound is captured.
    stop = threading.Event()

    def play_once_captured() -> None:
        while not stop.is_set():
            if any("native-audio" in line and "audio capture started" in line
                   for line in host.log_text().splitlines()):
                time.sleep(0.5)
                trigger.touch()
                return
            time.sleep(0.05)

    player = threading.Thread(target=play_once_captured, daemon=True)
    player.start()
    try:
        report = client.stream(tmp_path / "report.json", "--app", "Tones", "--mode", "640x480@30",
                               "--seconds", "5", "--audio-output", str(wav), "--quit")
    finally:
        stop.set()
        player.join(timeout=5)
    assert trigger.exists(), "the session's sound was never captured"
    assert report["audio_decode_errors"] == 0, report
    assert report["audio_decoded"] == report["audio_frames"] > 600, report
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, ta.RATE, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32768.0
    loud = ta.sounding(pcm)
    assert loud.any(), "no sound in the decoded audio"
    first = int(np.argmax(loud))
    last = len(loud) - int(np.argmax(loud[::-1])) - 1
    heard_s = (last - first + 1) * ta.BLOCK / ta.RATE
    total = sum(s.seconds for s in script)
    assert abs(heard_s - total) <= 0.05, f"the script lasts {total} s, sounded {heard_s:.3f} s"
    segments = ta.check_segments(pcm, layout, script, first * ta.BLOCK)
    print(f"\n[e2e] native audio: {report['audio_decoded']} packets decoded, "
          f"{report['audio_concealed']} concealed; {segments}")
