#!/usr/bin/env python3
"""CPU cost of one stream: host CPU time per streamed second and per frame, next to bare libx264
encoding the same number of frames of the same picture with the same settings.

For every mode (default 1280x720@60 and 1920x1080@60) and picture (the test pattern, plain and
with --noise) this starts `punktfunk serve` on loopback with a fresh data directory, pairs through
`punktfunk pair`, launches the test pattern with the stock Moonlight client library
(moonlight-common-c) and, once the picture is on screen, streams --seconds while taking the video
units off the client's queue without decoding them (so the client leaves the CPU to the host).
Host CPU is utime+stime of the `punktfunk serve` process (all its threads: compositor, video,
audio, control) from /proc/<pid>/stat, read at the start and the end of the window; the test
pattern's own process is read the same way and reported apart.

Peer, in the same run: `punktfunk run` records 300 frames of the same picture at the same size
to a .y4m; `ffmpeg` then encodes as many frames as the stream carried (looping the file) with
libx264 and the host's settings (ultrafast, zerolatency, one thread and slice, the video
bitrate the host's encoder was opened with, as its log says, as target and peak, no GOP, no
scene cuts), its CPU time taken from wait4(). Reading the
file costs ffmpeg something too: the same command with the null encoder measures that, and it is
subtracted (`x264`), and shown (`ffmpeg read`).

Run:  .venv/bin/python bench/stream_cpu.py [--bin target/release/punktfunk] [--seconds 20]
          [--modes 1280x720@60,1920x1080@60] [--pictures plain,noise]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

APP = "Benchmark Test Pattern"
TICK = os.sysconf("SC_CLK_TCK")
RECORD_FRAMES = 300


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def child_cpu(cmd: list[str]) -> float:
    """Runs cmd to the end; its CPU time (user + system), seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def stream_host(binary: Path, tmp: Path, w: int, h: int, fps: int, noise: bool,
                seconds: float) -> dict:
    import pattern
    import scenario

    cmd = [str(binary), "testpattern"] + (["--noise"] if noise else [])
    env = {"PUNKTFUNK_LOG": "info,streamer::encode=debug"}
    kbps = scenario.bitrate_for(w, h)
    with common.paired_host(tmp, {APP: cmd}, env) as (host, client), \
            common.streaming(client, APP, w, h, fps, bitrate_kbps=kbps) as session:
        stream = session.stream
        started = time.monotonic()
        for fr in stream.frames(timeout=10):
            if (fr.width, fr.height) == (w, h):
                try:
                    pattern.check_bars(fr.rgb)
                    break
                except pattern.PatternError:
                    pass
            if time.monotonic() - started > scenario.APP_START_TIMEOUT:
                raise RuntimeError("the test pattern never showed")
        apps = [pid for pid, _ in host.processes(scenario.TESTPATTERN_NEEDLE)]
        # Settle for a second, then measure.
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            stream.next_unit(timeout=1.0)
        host_cpu0, app_cpu0 = cpu_s(host.proc.pid), sum(cpu_s(p) for p in apps)
        t0 = time.monotonic()
        units = 0
        while time.monotonic() - t0 < seconds:
            unit = stream.next_unit(timeout=1.0)
            if unit is None:
                raise RuntimeError("no video for 1 s, or the stream ended")
            units += 1
        host_cpu1, app_cpu1 = cpu_s(host.proc.pid), sum(cpu_s(p) for p in apps)
        span = time.monotonic() - t0
        # The encoder's settings as the host logged them: the peer uses the same bitrate.
        opened = [line for line in host.log_text().splitlines() if "libx264 opened" in line]
        m = re.search(r"bitrate_kbps: (\d+).*slices: (\d+)", opened[-1]) if opened else None
        if m is None or m[2] != "1":
            raise RuntimeError(f"unexpected encoder settings: {opened[-1:]}")
        return {"seconds": round(span, 2), "frames": units, "fps": round(units / span, 1),
                "stream_kbps": kbps, "kbps": int(m[1]),
                "host_cpu_s": round(host_cpu1 - host_cpu0, 2),
                "testpattern_cpu_s": round(app_cpu1 - app_cpu0, 2)}


def peer(binary: Path, tmp: Path, w: int, h: int, fps: int, noise: bool, frames: int,
         kbps: int) -> dict:
    y4m = tmp / "pattern.y4m"
    subprocess.run([str(binary), "run", "--mode", f"{w}x{h}@{fps}", "--frames",
                    str(RECORD_FRAMES), "--output", str(y4m), "--", str(binary), "testpattern"]
                   + (["--noise"] if noise else []),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    inp = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-stream_loop", "-1",
           "-i", str(y4m), "-frames:v", str(frames)]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", "1",
            "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{int(kbps * 1.5 / fps)}k",
            "-forced-idr", "1", "-x264-params",
            "keyint=infinite:scenecut=0:bframes=0:repeat-headers=1:aud=0:slices=1:nal-hrd=none",
            "-f", "null", "-"]
    read_only = ["-f", "null", "-"]
    try:
        enc = child_cpu(inp + x264)
        base = child_cpu(inp + read_only)
    finally:
        y4m.unlink(missing_ok=True)
    return {"ffmpeg_x264_cpu_s": round(enc, 2), "ffmpeg_read_cpu_s": round(base, 2),
            "x264_cpu_s": round(enc - base, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_bin_argument(ap)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--modes", default="1280x720@60,1920x1080@60")
    ap.add_argument("--pictures", default="plain,noise")
    args = ap.parse_args()
    binary = common.use_binary(args.bin)

    for mode in args.modes.split(","):
        w, h, fps = common.parse_mode(mode)
        for picture in args.pictures.split(","):
            noise = picture == "noise"
            with tempfile.TemporaryDirectory(prefix="punktfunk-cpu-") as tmp:
                tmp = Path(tmp)
                load = os.getloadavg()[0]
                s = stream_host(binary, tmp, w, h, fps, noise, args.seconds)
                p = peer(binary, tmp, w, h, fps, noise, s["frames"], s["kbps"])
                n = s["frames"]
                result = {"mode": f"{w}x{h}@{fps}", "picture": picture,
                          "load_avg_1m": round(load, 2), **s, **p,
                          "host_ms_per_s": round(1e3 * s["host_cpu_s"] / s["seconds"], 1),
                          "host_ms_per_frame": round(1e3 * s["host_cpu_s"] / n, 3),
                          "testpattern_ms_per_frame": round(1e3 * s["testpattern_cpu_s"] / n, 3),
                          "x264_ms_per_frame": round(1e3 * p["x264_cpu_s"] / n, 3),
                          "host / x264": round(s["host_cpu_s"] / p["x264_cpu_s"], 2)
                          if p["x264_cpu_s"] > 0 else None}
                print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
