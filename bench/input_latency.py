#!/usr/bin/env python3
"""Input latency: from a control packet's arrival at the host to the event reaching a Wayland
client, and from the Moonlight client's send call to the same event (end to end).

Starts `punktfunk serve` on loopback with the test pattern as its app, run with `--timestamps`
so that every event line carries the CLOCK_MONOTONIC time the client dispatched it, and with
`PUNKTFUNK_LOG=info,streamer::input_timing=debug` so that the host logs, for every input packet,
when the control thread handed it to the stream (`arrived_ns`) and when it was queued to the
compositor (`delivered_ns`). The stock client library (moonlight-common-c) then sends --count key
taps (VK 'A', down and up) and --count absolute mouse moves, one event at a time with random
gaps of 20 to 40 ms, so that nothing queues behind anything else and the events fall at random
phases of the compositor's 60 Hz frame clock. Every event is matched to its host log line and
to the test pattern's line by order and content.

Figures, in ms (p50 / p99 / max):
  send->arrive     client library call -> host control thread (encrypt, ENet, loopback)
  arrive->queued   decrypt, parse, map, hand to the compositor thread
  queued->client   compositor thread: seat, Wayland event, flush; the client wakes and reads it
  arrive->client   the figure asked for: arrival at the host -> event dispatched in the client
  send->client     end to end
Peer, in the same run: a UDP datagram on loopback from this process to a second Python process
(time of sendto -> time recvfrom returned there): the cost of waking another process on this
machine, the floor under any cross-process step.

Run:  .venv/bin/python bench/input_latency.py [--bin target/release/punktfunk] [--count 300]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common
from common import percentile

APP = "Timed Test Pattern"
VK_A, KEY_A = 0x41, 30  # Windows VK code and the evdev code it maps to
HOST_LINE = re.compile(r"arrived_ns=(\d+) delivered_ns=(\d+) packet=(\w+)")

# The peer: prints "<recv monotonic ns> <payload>" for every datagram, until "stop".
PEER_PROGRAM = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data = s.recv(64)
    t = time.monotonic_ns()
    if data == b"stop":
        break
    print(t, data.decode(), flush=True)
"""


def summary(values_ns: list[int]) -> dict:
    ms = [v / 1e6 for v in values_ns]
    return {"n": len(ms), "p50": round(percentile(ms, 0.5), 3),
            "p99": round(percentile(ms, 0.99), 3), "max": round(max(ms), 3) if ms else None}


class Peer:
    """A second process receiving datagrams on loopback and stamping their arrival."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PEER_PROGRAM], stdout=subprocess.PIPE,
                                     text=True)
        self.port = int(self.proc.stdout.readline())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent: dict[str, int] = {}

    def ping(self, i: int) -> None:
        tag = f"p{i}"
        self.sent[tag] = time.monotonic_ns()
        self.sock.sendto(tag.encode(), ("127.0.0.1", self.port))

    def latencies(self) -> list[int]:
        self.sock.sendto(b"stop", ("127.0.0.1", self.port))
        out, _ = self.proc.communicate(timeout=10)
        got = {}
        for line in out.splitlines():
            t, tag = line.split()
            got[tag] = int(t)
        return [got[tag] - t for tag, t in self.sent.items() if tag in got]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_bin_argument(ap)
    ap.add_argument("--count", type=int, default=300, help="key taps, and as many mouse moves")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=60)
    args = ap.parse_args()
    binary = common.use_binary(args.bin)

    import hostctl
    import moonlight
    import scenario

    w, h, fps = args.width, args.height, args.fps
    apps = {APP: [str(binary), "testpattern", "--timestamps"]}
    env = {"PUNKTFUNK_LOG": "info,streamer::input_timing=debug"}
    with tempfile.TemporaryDirectory(prefix="punktfunk-input-") as tmp, \
            common.paired_host(Path(tmp), apps, env) as (host, client), \
            common.streaming(client, APP, w, h, fps) as session:
        peer = Peer()
        try:
            stream = session.stream
            log = hostctl.AppLog(host.app_log(APP))
            log.offset = 0
            scenario.wait_keyboard_focus(log)
            log.wait_for(lambda evs: any(e.get("event") == "pointer_enter" for e in evs),
                         timeout=10, what="pointer_enter")
            # Keep the video queue drained so that the client's decoding never competes.
            stop = threading.Event()

            def drain():
                while not stop.is_set():
                    stream.next_unit(timeout=0.2)

            threading.Thread(target=drain, daemon=True).start()
            time.sleep(1.0)
            log.mark()
            host_log_start = host.log_path.stat().st_size

            sends: list[tuple[str, int, tuple]] = []  # (kind, send ns, what the client sees)
            rng = random.Random(1)
            for i in range(args.count):
                sends.append(("key", time.monotonic_ns(), (KEY_A, "pressed")))
                stream.send_key(VK_A, moonlight.KEY_ACTION_DOWN)
                time.sleep(rng.uniform(0.02, 0.04))
                sends.append(("key", time.monotonic_ns(), (KEY_A, "released")))
                stream.send_key(VK_A, moonlight.KEY_ACTION_UP)
                time.sleep(rng.uniform(0.02, 0.04))
                # a new pixel every time, so that every move is an event
                x, y = 100 + (i * 7) % (w - 200), 100 + (i * 13) % (h - 200)
                sends.append(("pointer", time.monotonic_ns(), (float(x), float(y))))
                stream.send_mouse_position(x, y, w, h)
                time.sleep(rng.uniform(0.01, 0.02))
                peer.ping(i)
                time.sleep(rng.uniform(0.01, 0.02))
            time.sleep(1.0)
            stop.set()

            # The test pattern's lines, and the host's.
            seen = []
            for e in log.events():
                if e.get("event") == "key" and e.get("key") == KEY_A:
                    seen.append(("key", e["t_ns"], (e["key"], e["state"])))
                elif e.get("event") == "pointer_motion":
                    seen.append(("pointer", e["t_ns"], (e["x"], e["y"])))
            host_text = host.log_path.read_bytes()[host_log_start:].decode(errors="replace")
            hosted = []
            for m in HOST_LINE.finditer(host_text):
                kind = {"KeyDown": "key", "KeyUp": "key", "MouseMoveAbs": "pointer"}.get(m[3])
                if kind:
                    hosted.append((kind, int(m[1]), int(m[2])))
            if not (len(sends) == len(seen) == len(hosted)):
                raise RuntimeError(f"sent {len(sends)} events, the host logged {len(hosted)}, "
                                   f"the client saw {len(seen)}")
            rows = {"key": [], "pointer": []}
            for (kind, t_send, what), (kind2, t_client, got), (kind3, t_arr, t_queued) in \
                    zip(sends, seen, hosted):
                if not (kind == kind2 == kind3 and what == got):
                    raise RuntimeError(f"events out of step: sent {kind} {what}, host {kind3}, "
                                       f"client {kind2} {got}")
                rows[kind].append((t_arr - t_send, t_queued - t_arr, t_client - t_queued,
                                   t_client - t_arr, t_client - t_send))
            result = {"mode": f"{w}x{h}@{fps}", "binary": binary.name,
                      "profile": binary.parent.name}
            for kind in ("key", "pointer"):
                cols = list(zip(*rows[kind]))
                result[kind] = {name: summary(list(col)) for name, col in
                                zip(("send->arrive", "arrive->queued", "queued->client",
                                     "arrive->client", "send->client"), cols)}
            everything = rows["key"] + rows["pointer"]
            result["all"] = {"arrive->client": summary([r[3] for r in everything]),
                             "send->client": summary([r[4] for r in everything])}
            result["peer: loopback datagram to another process"] = summary(peer.latencies())
            print(json.dumps(result, indent=1))
        finally:
            if peer.proc.poll() is None:
                peer.proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
