#!/usr/bin/env python3
"""Video latency: from the test pattern's commit of frame N to the Moonlight client holding the
decoded picture of frame N, on loopback.

Starts `punktfunk serve` on loopback with the test pattern as its app, run as
`punktfunk testpattern --timestamps --frame-events [--noise]`, so that it prints the
CLOCK_MONOTONIC time at which it committed every frame together with the frame's counter
(`docs/testpattern.md`). The stock client library (moonlight-common-c) streams the mode; this
script decodes every access unit it hands over (FFmpeg's H.264 decoder through PyAV, one thread,
low delay, as the end-to-end tests do), reads the counter from the decoded picture's luma and
matches it to the commit line. All times are CLOCK_MONOTONIC on the same machine.

Figures per decoded frame, in ms (p50 / p99 / max):
  commit->decoded   the figure asked for: the app's commit -> the decoded picture in the client
  commit->handed    the app's commit -> the client library hands the unit to the decoder side
                    (compositor, host video thread, network, client reassembly)
  host              the host's own share as it reports it in the frame header: compositor
                    frame render -> packetized (convert, encode, packetize), 0.1 ms steps
  handed->decode    the unit waiting in this script's queue before the decoder gets it
  decode            inside the client's decoder: the access unit in -> the picture out
  commit->handed minus host   what the host's figure leaves out of commit->handed: the
                    compositor (commit -> frame rendered), the socket, loopback, the client's
                    receive thread, reassembly and queue
  receive->enqueue  the client library, first packet of the frame -> frame complete (its own
                    clock)
Reference in the same run: `decode` is the client's share; `host` is the host's share.

Run:  .venv/bin/python bench/frame_latency.py [--bin target/release/punktfunk] [--seconds 10]
          [--mode 1280x720@60] [--noise]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common
from common import percentile

APP = "Timed Test Pattern"
CELL, BITS = 16, 32


def summary(values_ms: list[float]) -> dict:
    return {"n": len(values_ms), "p50": round(percentile(values_ms, 0.5), 3),
            "p99": round(percentile(values_ms, 0.99), 3),
            "max": round(max(values_ms), 3) if values_ms else None}


def counter_from_luma(frame) -> int | None:
    """The frame counter from a decoded picture's Y plane (limited range: white 235, black 16),
    reading the 4x4 centre of each 16x16 cell; None when a cell is not clearly black or white."""
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    cells = y[6:10, : CELL * BITS].astype(np.float32).reshape(4, BITS, CELL)[:, :, 6:10]
    lum = cells.mean(axis=(0, 2))
    if np.any(np.abs(lum - 125.0) < 50.0):
        return None
    return int(sum(1 << i for i in range(BITS) if lum[i] > 125.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_bin_argument(ap)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", default="1280x720@60")
    ap.add_argument("--noise", action="store_true", help="run the test pattern with --noise")
    args = ap.parse_args()
    binary = common.use_binary(args.bin)
    w, h, fps = common.parse_mode(args.mode)

    import hostctl

    app_args = ["testpattern", "--timestamps", "--frame-events"] + (["--noise"] if args.noise else [])
    with tempfile.TemporaryDirectory(prefix="punktfunk-latency-") as tmp, \
            common.paired_host(Path(tmp), {APP: [str(binary)] + app_args}) as (host, client), \
            common.streaming(client, APP, w, h, fps) as session:
        stream = session.stream
        decoder = stream._decoder
        # Decode until the pattern's counter is readable at the requested size.
        started = time.monotonic()
        while True:
            unit = stream.next_unit(timeout=10)
            if unit is None:
                raise RuntimeError("no video")
            pics = decoder.decode(unit.data, None)
            if pics and (pics[0].width, pics[0].height) == (w, h) \
                    and counter_from_luma(pics[0]) is not None:
                break
            if time.monotonic() - started > 30:
                raise RuntimeError("the test pattern never showed")
        # Let the stream settle, decoding everything, then measure.
        # (counter, handed_ns, receive_us, enqueue_us, host_latency, t_dec0, t_dec1)
        rows = []
        unread = 0
        t_start = time.monotonic()
        while (time.monotonic() - t_start) < args.seconds + 1.0:
            unit = stream.next_unit(timeout=2)
            if unit is None:
                raise RuntimeError("the stream stopped")
            t0 = time.monotonic_ns()
            pics = decoder.decode(unit.data, None)
            t1 = time.monotonic_ns()
            for pic in pics:
                n = counter_from_luma(pic)
                if n is None:
                    unread += 1
                elif time.monotonic() - t_start >= 1.0:
                    rows.append((n, unit.handed_ns, unit.receive_time_us,
                                 unit.enqueue_time_us, unit.host_latency, t0, t1))
        commits = {}
        log = hostctl.AppLog(host.app_log(APP))
        log.offset = 0
        for e in log.events():
            if e.get("event") == "frame":
                commits[e["n"] % (1 << 32)] = e["t_ns"]
        seen, cols = set(), {k: [] for k in ("commit->decoded", "commit->handed", "host",
                                             "handed->decode", "decode",
                                             "commit->handed minus host",
                                             "receive->enqueue")}
        unmatched = 0
        for n, handed, recv_us, enq_us, host_lat, t0, t1 in rows:
            if n in seen:
                continue  # a picture sent again: only its first arrival counts
            seen.add(n)
            c = commits.get(n)
            if c is None:
                unmatched += 1
                continue
            cols["commit->decoded"].append((t1 - c) / 1e6)
            cols["commit->handed"].append((handed - c) / 1e6)
            cols["host"].append(host_lat / 10.0)
            cols["handed->decode"].append((t0 - handed) / 1e6)
            cols["decode"].append((t1 - t0) / 1e6)
            cols["commit->handed minus host"].append((handed - c) / 1e6 - host_lat / 10.0)
            cols["receive->enqueue"].append((enq_us - recv_us) / 1e3)
        committed = [n for n in commits if n >= min(seen, default=0) and n <= max(seen, default=0)]
        result = {"mode": f"{w}x{h}@{fps}", "noise": args.noise,
                  "binary": binary.name, "profile": binary.parent.name,
                  "load_avg_1m": os.getloadavg()[0],
                  "frames_decoded": len(rows), "distinct": len(seen),
                  "committed_in_span": len(committed), "unmatched": unmatched,
                  "unreadable": unread}
        result.update({k: summary(v) for k, v in cols.items()})
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
