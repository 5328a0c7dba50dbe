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

With `--protocol native` the same app and mode stream over punktfunk/1 to the reference client
(`punktfunk-client`, next to the host binary; FFmpeg's H.264 decoder, slice threads, low delay),
which writes every frame's render, reassembly and decode time on the host's clock
(`--frame-times`). A frame's picture is the app's latest commit before the render, so the commit
is found by time, not by reading the counter. Figures per frame, in ms:
  commit->decoded   as above
  commit->render    the app's commit -> the compositor's render of it
  render->reassembled, render->decoded   from the render on (what the client reports)
  encode            the host's encoder, as the frame's header says
  render->reassembled minus encode   everything else on the way: the conversion, sealing,
                    pacing, the socket, loopback, reassembly
`--protocol both` alternates the two `--rounds` times (default 3), each on a fresh host.

Run:  .venv/bin/python bench/frame_latency.py [--bin target/release/punktfunk] [--seconds 10]
          [--mode 1280x720@60] [--noise] [--protocol gamestream|native|both] [--rounds 3]
"""

from __future__ import annotations

import argparse
import bisect
import csv
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
    ap.add_argument("--protocol", choices=("gamestream", "native", "both"), default="gamestream")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each with --protocol both")
    args = ap.parse_args()
    binary = common.use_binary(args.bin)
    mode = common.parse_mode(args.mode)
    app_args = ["testpattern", "--timestamps", "--frame-events"] + (["--noise"] if args.noise else [])
    protocols = {"gamestream": [measure_gamestream], "native": [measure_native],
                 "both": [measure_gamestream, measure_native] * args.rounds}[args.protocol]
    results = []
    for measure in protocols:
        with tempfile.TemporaryDirectory(prefix="punktfunk-latency-") as tmp:
            result = {"mode": args.mode, "noise": args.noise, "binary": binary.name,
                      "profile": binary.parent.name}
            result.update(measure(Path(tmp), [str(binary)] + app_args, mode, args.seconds))
            result["load_avg_1m"] = os.getloadavg()[0]
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    if args.protocol == "both":
        print(json.dumps(medians(results), indent=1))
    return 0


def medians(results: list[dict]) -> dict:
    """Per protocol, the median over the rounds of each figure's p50 and p99."""
    out = {}
    for proto in ("gamestream", "native"):
        runs = [r for r in results if r["protocol"] == proto]
        figures = {k for r in runs for k, v in r.items() if isinstance(v, dict) and "p50" in v}
        out[proto] = {k: {q: round(percentile([r[k][q] for r in runs], 0.5), 3)
                          for q in ("p50", "p99")} for k in sorted(figures)}
    return out


def commit_times(host, app: str) -> dict[int, int]:
    """The test pattern's commits: frame counter -> CLOCK_MONOTONIC ns."""
    import hostctl

    log = hostctl.AppLog(host.app_log(app))
    log.offset = 0
    return {e["n"] % (1 << 32): e["t_ns"] for e in log.events() if e.get("event") == "frame"}


def measure_native(tmp: Path, app_cmd: list[str], mode: tuple[int, int, int],
                   seconds: float) -> dict:
    """The app over punktfunk/1 to punktfunk-client; see the module documentation."""
    import hostctl
    from test_native import NativeClient, arm_pin

    w, h, fps = mode
    cfg = tmp / "config.toml"
    cfg.write_text(f'[[apps]]\nname = "{APP}"\ncmd = {json.dumps(app_cmd)}\n')
    host = hostctl.Host(tmp / "data", hostctl.free_port_base(), config=cfg, log_dir=tmp)
    try:
        host.start()
        client = NativeClient(host, tmp / "client")
        p = client.pair(arm_pin(host))
        if p.returncode != 0:
            raise RuntimeError(f"pairing failed: {p.stderr}")
        times = tmp / "times.csv"
        report = client.stream(tmp / "report.json", "--app", APP, "--mode", f"{w}x{h}@{fps}",
                               "--seconds", str(seconds + 1.0), "--frame-times", str(times),
                               "--quit", timeout=seconds + 60)
        commits = commit_times(host, APP)
    finally:
        host.stop()
    with open(times) as f:
        frames = [{k: int(v) if v else None for k, v in row.items()} for row in csv.DictReader(f)]
    by_time = sorted((t, n) for n, t in commits.items())
    commit_ts = [t for t, _ in by_time]
    cols = {k: [] for k in ("commit->decoded", "commit->render", "render->reassembled",
                            "render->decoded", "encode", "render->reassembled minus encode")}
    first_pts = frames[0]["pts_ns"] if frames else 0
    seen = set()
    for f in frames:
        if f["decoded_ns"] is None or f["pts_ns"] - first_pts < 1e9:
            continue  # the first second is skipped, as for GameStream
        i = bisect.bisect_right(commit_ts, f["pts_ns"]) - 1
        if i < 0 or by_time[i][1] in seen:
            continue  # no commit yet, or a picture sent again: only its first arrival counts
        seen.add(by_time[i][1])
        commit = by_time[i][0]
        cols["commit->decoded"].append((f["decoded_ns"] - commit) / 1e6)
        cols["commit->render"].append((f["pts_ns"] - commit) / 1e6)
        cols["render->reassembled"].append((f["reassembled_ns"] - f["pts_ns"]) / 1e6)
        cols["render->decoded"].append((f["decoded_ns"] - f["pts_ns"]) / 1e6)
        cols["encode"].append(f["encode_us"] / 1e3)
        cols["render->reassembled minus encode"].append(
            (f["reassembled_ns"] - f["pts_ns"]) / 1e6 - f["encode_us"] / 1e3)
    result = {"protocol": "native", "frames_decoded": report["frames_decoded"],
              "frames_lost": report["frames_lost"], "distinct": len(seen),
              "clock_rtt_ns": report["clock"]["rtt_ns"]}
    result.update({k: summary(v) for k, v in cols.items()})
    return result


def measure_gamestream(tmp: Path, app_cmd: list[str], mode: tuple[int, int, int],
                       seconds: float) -> dict:
    """The app over GameStream to the stock client library; see the module documentation."""
    w, h, fps = mode
    with common.paired_host(tmp, {APP: app_cmd}) as (host, client), \
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
        while (time.monotonic() - t_start) < seconds + 1.0:
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
        commits = commit_times(host, APP)
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
        result = {"protocol": "gamestream", "frames_decoded": len(rows), "distinct": len(seen),
                  "committed_in_span": len(committed), "unmatched": unmatched,
                  "unreadable": unread}
        result.update({k: summary(v) for k, v in cols.items()})
        return result


if __name__ == "__main__":
    sys.exit(main())
