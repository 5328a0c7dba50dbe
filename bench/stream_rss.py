#!/usr/bin/env python3
"""Peak resident memory of `punktfunk serve` while it streams the test pattern at 1080p60.

Starts the host on a free port family with a fresh data directory, pairs a client through
`punktfunk pair`, launches the built-in Test Pattern at 1920x1080@60 with the stock Moonlight
client library (moonlight-common-c, from the end-to-end harness in tests/e2e/), checks that the
picture really is the test pattern, then keeps the stream running for --seconds while taking
the video units off the client's queue without decoding them (so the client leaves the CPU to
the host). Before cancelling it reads VmHWM (peak RSS) and VmRSS from /proc for the host process
and, separately, for the test pattern child.

Run:  .venv/bin/python bench/stream_rss.py [--bin target/release/punktfunk] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
import time
from pathlib import Path

import common


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(val.split()[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_bin_argument(ap)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=60)
    args = ap.parse_args()
    common.use_binary(args.bin)

    import pattern
    import scenario

    w, h, fps = args.width, args.height, args.fps
    with tempfile.TemporaryDirectory(prefix="punktfunk-rss-") as tmp, \
            common.paired_host(Path(tmp)) as (host, client):
        idle = status_kib(host.proc.pid)
        with common.streaming(client, scenario.TEST_PATTERN, w, h, fps) as session:
            stream = session.stream
            # Decode until the test pattern is on screen at the requested size.
            started = time.monotonic()
            for fr in stream.frames(timeout=10):
                assert (fr.width, fr.height) == (w, h), (fr.width, fr.height)
                try:
                    pattern.check_bars(fr.rgb)
                    break
                except pattern.PatternError:
                    if time.monotonic() - started > scenario.APP_START_TIMEOUT:
                        raise
            # Stream for a while, taking units off the queue without decoding them.
            units, samples = 0, []
            t0 = time.monotonic()
            next_sample = t0
            while (now := time.monotonic()) - t0 < args.seconds:
                try:
                    unit = stream._units.get(timeout=1.0)
                except queue.Empty:
                    raise RuntimeError("no video for 1 s") from None
                if unit is None:
                    raise RuntimeError("the stream ended early")
                units += 1
                if now >= next_sample:
                    samples.append(status_kib(host.proc.pid)["VmRSS"])
                    next_sample += 0.5
            span = time.monotonic() - t0
            host_mem = status_kib(host.proc.pid)
            apps = host.processes(scenario.TESTPATTERN_NEEDLE)
            app_mem = {pid: (cl, status_kib(pid)) for pid, cl in apps}
            result = {
                "mode": f"{w}x{h}@{fps}",
                "seconds": round(span, 1),
                "video_units": units,
                "fps_received": round(units / span, 1),
                "host_pid": host.proc.pid,
                "host_vmhwm_mib": round(host_mem["VmHWM"] / 1024, 1),
                "host_vmrss_mib": round(host_mem["VmRSS"] / 1024, 1),
                "host_vmrss_median_mib": round(sorted(samples)[len(samples) // 2] / 1024, 1),
                "host_idle_paired_vmhwm_mib": round(idle["VmHWM"] / 1024, 1),
                "testpattern": [{"pid": pid, "vmhwm_mib": round(m["VmHWM"] / 1024, 1),
                                 "vmrss_mib": round(m["VmRSS"] / 1024, 1),
                                 "cmd": Path(cl.split()[0]).name}
                                for pid, (cl, m) in app_mem.items()],
            }
            print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
