"""The Moonlight client (moonlight-common-c through moonlight.py) as a program of its own, for
tests that run it in another network namespace (`ip netns exec NS python netns_client.py ...`).

    netns_client.py pair   --address A --http-port P --identity DIR --pin 1234
    netns_client.py stream --address A --http-port P --identity DIR --app NAME
                           --width W --height H --fps F [--bitrate KBPS] [--seconds S]

`pair` keeps the host's certificate next to the client identity (server-cert.pem) so that a
later `stream` can pin it. `stream` prints one JSON object per line on stdout, flushed at once:

    {"event": "started", "t": T}
    {"event": "frame", "n": N, "type": 0|1, "t": T, "counter": C}
    {"event": "bad_frame", "n": N, "t": T, "error": "..."}
    {"event": "end", "units": U, "reason": "..."}

`n` is moonlight-common-c's frame number of the decode unit (the host's frame index), `t` the
CLOCK_MONOTONIC second the picture was decoded, `counter` the test pattern's frame counter read
from the picture (null when it cannot be read). A frame is reported once the library has
reassembled it and PyAV decoded it; frames the library dropped never appear. The stream runs
for `--seconds` or until stdin is closed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

import moonlight
import pattern
import scenario
from gamestream import ClientIdentity, GameStreamClient

SERVER_CERT = "server-cert.pem"


def emit(**fields) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def client_for(args) -> GameStreamClient:
    identity = ClientIdentity.load_or_create(args.identity)
    cert = Path(args.identity) / SERVER_CERT
    return GameStreamClient(identity, args.address, args.http_port, args.http_port - 5,
                            server_cert_pem=cert.read_bytes() if cert.exists() else None)


def pair(args) -> int:
    client = client_for(args)
    client.pair(args.pin, stage1_timeout=60)
    (Path(args.identity) / SERVER_CERT).write_bytes(client.server_cert_pem)
    emit(event="paired")
    return 0


def counter_from_luma(luma: np.ndarray) -> int | None:
    """The test pattern's counter from a decoded picture's luma plane (see pattern.py)."""
    if luma.shape[1] < pattern.CELL * pattern.COUNTER_BITS:
        return None
    row = luma[6:10, : pattern.CELL * pattern.COUNTER_BITS].astype(np.float32)
    cells = row.reshape(4, pattern.COUNTER_BITS, pattern.CELL)[:, :, 6:10].mean(axis=(0, 2))
    # limited-range luma: black 16, white 235
    if np.any(np.abs(cells - 125.5) < 45):
        return None
    return int(sum(1 << i for i in range(pattern.COUNTER_BITS) if cells[i] > 125.5))


def stream(args) -> int:
    client = client_for(args)
    session = scenario.start_session(client, args.app, args.width, args.height, args.fps,
                                     bitrate_kbps=args.bitrate)
    s = session.stream
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    emit(event="started", t=time.monotonic())
    deadline = time.monotonic() + args.seconds
    reason = "seconds"
    decoder = moonlight.H264Decoder(s.negotiated_video_format)
    try:
        while True:
            if stop.is_set():
                reason = "stdin closed"
                break
            if time.monotonic() > deadline:
                break
            unit = s.next_unit(timeout=0.5)
            if unit is None:
                if not s.connected:
                    reason = f"connection ended (error {s.stats.termination_error})"
                    break
                continue
            try:
                pictures = decoder.decode(unit.data, "gray")
            except Exception as e:  # a unit PyAV cannot decode is a lost frame
                emit(event="bad_frame", n=unit.number, t=time.monotonic(), error=str(e))
                continue
            for luma in pictures:
                emit(event="frame", n=unit.number, type=unit.frame_type, t=time.monotonic(),
                     counter=counter_from_luma(luma))
    finally:
        emit(event="end", units=s.stats.units, reason=reason)
        s.stop()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["pair", "stream"])
    ap.add_argument("--address", required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--pin")
    ap.add_argument("--app", default=scenario.TEST_PATTERN)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--bitrate", type=int)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    return pair(args) if args.command == "pair" else stream(args)


if __name__ == "__main__":
    sys.exit(main())
