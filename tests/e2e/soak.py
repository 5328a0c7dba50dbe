"""The soak: one client streams the test pattern for a long time with input flowing, and the
host's resident memory, open file descriptors and threads are sampled at a fixed interval.

    .venv/bin/python tests/e2e/soak.py --minutes 30 --out soak-result

writes `soak.csv` (one row a sample) and `soak.svg` (the three curves) into the output
directory and prints a summary; it exits 1 when memory grew by 5 % or more after the first
minute, or when file descriptors or threads at the end differ from those after the first
minute, or when a frame was lost. `docs/reliability.md` shows the last result.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostctl  # noqa: E402
import scenario  # noqa: E402
from conftest import make_client, pair_with_cli, random_pin  # noqa: E402


def sample(pid: int) -> dict:
    """The host process's resident memory (KiB), open files and threads, and the resident
    memory of the processes it started (the app, Xwayland, the sound server)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    children = 0
    for child in hostctl.descendants(pid):
        try:
            text = Path(f"/proc/{child}/status").read_text()
            children += int(next(line.split()[1] for line in text.splitlines()
                                 if line.startswith("VmRSS:")))
        except (OSError, StopIteration):
            pass
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task")), "children_rss_kib": children}


def svg(rows: list[dict], path: Path) -> None:
    """Three stacked line charts over time, no dependencies."""
    series = [("rss_kib", "host resident memory (MiB)", 1 / 1024),
              ("fds", "open file descriptors", 1), ("threads", "threads", 1)]
    w, h, pad, gap = 720, 170, 56, 24
    t_max = max(r["t_s"] for r in rows) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" '
           f'height="{len(series) * (h + gap) + 30}" font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/>']
    for i, (key, title, scale) in enumerate(series):
        top = 10 + i * (h + gap)
        values = [r[key] * scale for r in rows]
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:
            lo, hi = lo - 1, hi + 1
        lo, hi = lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1
        px = lambda t: pad + (w - pad - 10) * t / t_max  # noqa: E731
        py = lambda v: top + 20 + (h - 40) * (1 - (v - lo) / (hi - lo))  # noqa: E731
        points = " ".join(f"{px(r['t_s']):.1f},{py(v):.1f}" for r, v in zip(rows, values))
        out += [f'<text x="{pad}" y="{top + 12}" font-weight="bold">{title}</text>',
                f'<rect x="{pad}" y="{top + 20}" width="{w - pad - 10}" height="{h - 40}" '
                f'fill="none" stroke="#bbb"/>',
                f'<text x="{pad - 4}" y="{py(hi) + 4:.1f}" text-anchor="end">{hi:.1f}</text>',
                f'<text x="{pad - 4}" y="{py(lo) + 4:.1f}" text-anchor="end">{lo:.1f}</text>',
                f'<polyline points="{points}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>']
    out += [f'<text x="{w / 2}" y="{len(series) * (h + gap) + 20}" text-anchor="middle">'
            f'minutes (0 to {t_max / 60:.0f})</text>', "</svg>"]
    path.write_text("\n".join(out) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--mode", default="1280x720@60")
    ap.add_argument("--out", type=Path, default=Path("soak-result"))
    args = ap.parse_args()
    size, fps = args.mode.split("@")
    w, h = (int(x) for x in size.split("x"))
    fps = int(fps)
    args.out.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="punktfunk-soak-"))
    cfg = work / "config.toml"
    cfg.write_text(f'[[apps]]\nname = "Pattern"\ncmd = ["{hostctl.binary_path()}", "testpattern"]\n')
    host = hostctl.Host(work / "data", hostctl.free_port_base(), config=cfg, log_dir=work)
    host.start()
    rows: list[dict] = []
    try:
        client = make_client(host, work / "client")
        assert pair_with_cli(host, client, random_pin()) is None, "pairing failed"
        session = scenario.start_session(client, "Pattern", w, h, fps)
        stream = session.stream
        start = time.monotonic()
        next_sample, next_input = start, start
        frames, gaps, last, step = 0, 0, None, 0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                row = {"t_s": round(now - start, 1), "frames": frames, "gaps": gaps,
                       **sample(host.proc.pid)}
                rows.append(row)
                print(f"[soak] {row['t_s']:7.1f} s  rss {row['rss_kib'] / 1024:6.1f} MiB  "
                      f"fds {row['fds']:3d}  threads {row['threads']:3d}  frames {frames}",
                      flush=True)
                if now - start >= args.minutes * 60:
                    break
                next_sample += args.interval
            if now >= next_input:
                # Input as a player makes it: the pointer circles, a key now and then.
                step += 1
                stream.send_mouse_move(3 if step % 40 < 20 else -3, 2 if step % 20 < 10 else -2)
                if step % 10 == 0:
                    stream.tap_key(0x41, hold=0.0)  # VK 'A'
                next_input += 0.05
            unit = stream.next_unit(timeout=0.02)
            if unit is not None:
                if last is not None and unit.number != last + 1:
                    gaps += 1
                last = unit.number
                frames += 1
            if stream.stats.terminated:
                raise SystemExit(f"the stream ended after {time.monotonic() - start:.0f} s")
        stream.stop()
        log = hostctl.AppLog(host.app_log("Pattern"))
        log.offset = 0
        events = log.events()
        keys = sum(1 for e in events if e.get("event") == "key" and e.get("state") == "pressed")
        motions = sum(1 for e in events if e.get("event") in ("pointer_motion", "relative_motion"))
    finally:
        host.stop()

    with open(args.out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    svg(rows, args.out / "soak.svg")

    # After the first minute (a third of a shorter run), when the stream has settled.
    settle_s = min(60.0, args.minutes * 60 / 3)
    settled = next(r for r in rows if r["t_s"] >= settle_s)
    end = rows[-1]
    growth = (end["rss_kib"] - settled["rss_kib"]) / settled["rss_kib"] * 100
    peak = max(r["rss_kib"] for r in rows)
    fds = sorted({r["fds"] for r in rows if r["t_s"] >= settled["t_s"]})
    threads = sorted({r["threads"] for r in rows if r["t_s"] >= settled["t_s"]})
    summary = (f"{args.minutes:g} min at {args.mode}: {end['frames']} frames, {end['gaps']} "
               f"frame-number gaps; host RSS {settled['rss_kib'] / 1024:.1f} MiB at "
               f"{settled['t_s']:.0f} s, {end['rss_kib'] / 1024:.1f} MiB at the end "
               f"({growth:+.1f} %), peak {peak / 1024:.1f} MiB; from then on fds {fds}, "
               f"threads {threads}; "
               f"children RSS at the end {end['children_rss_kib'] / 1024:.1f} MiB; the app got "
               f"{keys} key presses and {motions} pointer motions")
    print(f"[soak] {summary}")
    (args.out / "summary.txt").write_text(summary + "\n")
    ok = (growth < 5 and len(fds) == 1 and len(threads) == 1 and end["gaps"] == 0
          and keys > 0 and motions > 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
