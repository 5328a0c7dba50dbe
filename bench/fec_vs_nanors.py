#!/usr/bin/env python3
"""FEC encode throughput of punktfunk's Reed-Solomon next to nanors, on identical shards.

nanors is the Reed-Solomon library the Moonlight client decodes with; the test-only Python
client package (moonlight-python, GPL, installed into the repository's .venv by the end-to-end
tests) ships it inside libmoonlight-common-c.so. It is never linked into punktfunk: this script
loads it with ctypes to check parity, and the Rust example `protocol/examples/fec_throughput.rs`
loads it with dlopen to time both implementations in one process, interleaved round by round.

For each configuration the script
  1. writes pseudo-random data shards to a file,
  2. runs the example, which writes our parity and reports its own byte comparison with nanors,
  3. computes nanors' parity here with ctypes on the same shards and compares it byte for byte
     with ours (a benchmark of a wrong encoder is worthless),
  4. repeats the timing run and prints the medians over the runs of each side's MB/s, of the
     same-run ratio ours / nanors (wall time) and of the same-run ratio of thread CPU time (which
     leaves out time spent waiting for a core on a loaded machine), with the load average.

Run:  .venv/bin/python bench/fec_vs_nanors.py [--repeats 5] [--kernel detect --kernel avx2]
(builds the example into $CARGO_TARGET_DIR, default target/, with cargo build --release).
Without --kernel our side runs the kernel picked at run time; each --kernel NAME (a name the
example takes, or `detect`) adds a row per configuration, timed in the same run, the runs of
the kernels interleaved.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO_MATRIX = bytes([0x77, 0x40, 0x38, 0x0E, 0xC7, 0xA7, 0x0D, 0x6C])

# (data shards, parity shards, shard bytes, audio code)
CONFIGS = [
    (212, 43, 1408, False),  # the largest video block at the default 20 % FEC
    (100, 20, 1408, False),
    (4, 2, 128, True),       # the audio code: 4 + 2 over small Opus payloads
]


def nanors_library() -> Path:
    hits = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/moonlight_python/"
                                      "libmoonlight-common-c.so")))
    if not hits:
        sys.exit("libmoonlight-common-c.so not found under .venv; run scripts/test.sh once")
    return Path(hits[0])


class Nanors:
    """nanors through the client library's exported function pointers."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.reed_solomon_init()
        ptr = lambda name: ctypes.c_void_p.in_dll(self.lib, name).value  # noqa: E731
        self.new = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int, ctypes.c_int)(
            ptr("reed_solomon_new_fn"))
        self.release = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(ptr("reed_solomon_release_fn"))
        self.encode_fn = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
            ctypes.c_int)(ptr("reed_solomon_encode_fn"))

    def parity(self, data: list[bytes], parity: int, audio: bool) -> list[bytes]:
        d, n = len(data), len(data[0])
        rs = self.new(d, parity)
        try:
            if audio:
                # The parity rows follow three ints (data, parity, total); the client replaces
                # them with the audio matrix the same way.
                ctypes.memmove(rs + 12, AUDIO_MATRIX, len(AUDIO_MATRIX))
            bufs = [ctypes.create_string_buffer(s, n) for s in data]
            bufs += [ctypes.create_string_buffer(n) for _ in range(parity)]
            ptrs = (ctypes.c_void_p * len(bufs))(*[ctypes.addressof(b) for b in bufs])
            rc = self.encode_fn(rs, ptrs, len(bufs), n)
            assert rc == 0, f"reed_solomon_encode returned {rc}"
            return [b.raw for b in bufs[d:]]
        finally:
            self.release(rs)


def build_example() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "protocol", "--example",
                    "fec_throughput"], cwd=ROOT, check=True)
    return target / "release" / "examples" / "fec_throughput"


def print_row(d: int, p: int, n: int, audio: bool, runs: list, identical: bool) -> None:
    med = lambda side, key: statistics.median(r[side][key] for r in runs)  # noqa: E731
    ours_mbs, theirs_mbs = med("ours", "mb_s"), med("nanors", "mb_s")
    ratios = [r["ratio"]["wall"] for r in runs]
    cpu_ratio = statistics.median(r["ratio"]["cpu"] for r in runs)
    name = f"{d}+{p} x {n}{' audio' if audio else ''}"
    print(f"{name:<18} {ours_mbs:>10.0f} {theirs_mbs:>12.0f} "
          f"{statistics.median(ratios):>12.2f} "
          f"{' '.join(f'{x:.2f}' for x in ratios):>24} {cpu_ratio:>10.2f} "
          f"{med('ours', 'p99_ns') / 1e3:>12.1f} "
          f"{med('nanors', 'p99_ns') / 1e3:>14.1f}  "
          f"{'identical' if identical else 'DIFFERENT'} (kernel {runs[0]['kernel']})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timing runs per configuration")
    ap.add_argument("--rounds", type=int, default=31, help="rounds per timing run")
    ap.add_argument("--json", action="store_true", help="print the raw run results too")
    ap.add_argument("--kernel", action="append", metavar="NAME",
                    help="our kernel (gfni, gfniavx2, avx512, avx2, ssse3, scalar or detect); "
                         "repeat to time several in one run")
    args = ap.parse_args()

    lib = nanors_library()
    nanors = Nanors(lib)
    exe = build_example()
    rng = random.Random(0x5EED)
    print(f"nanors from {lib.relative_to(ROOT)}; {args.repeats} runs x {args.rounds} rounds; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'block':<18} {'ours MB/s':>10} {'nanors MB/s':>12} {'ours/nanors':>12} "
          f"{'runs':>24} {'cpu ratio':>10} {'ours p99 us':>12} {'nanors p99 us':>14}  parity")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for d, p, n, audio in CONFIGS:
            data = [rng.randbytes(n) for _ in range(d)]
            shards = Path(tmp) / "shards.bin"
            shards.write_bytes(b"".join(data))
            kernels = args.kernel or ["detect"]
            runs: dict[str, list] = {k: [] for k in kernels}
            outs = {k: Path(tmp) / f"parity-{k}.bin" for k in kernels}
            for _ in range(args.repeats):
                for k in kernels:
                    cmd = [str(exe), "--data", str(d), "--parity", str(p), "--len", str(n),
                           "--input", str(shards), "--parity-out", str(outs[k]),
                           "--nanors", str(lib), "--rounds", str(args.rounds)]
                    if audio:
                        cmd.append("--audio")
                    if k != "detect":
                        cmd += ["--kernel", k]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[k].append(json.loads(out))
                    if args.json:
                        print(out.strip())
            theirs = b"".join(nanors.parity(data, p, audio))
            for k in kernels:
                identical = theirs == outs[k].read_bytes() and all(r["parity_identical"]
                                                                  for r in runs[k])
                failed |= not identical
                print_row(d, p, n, audio, runs[k], identical)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if failed:
        print("parity differs from nanors: the timings above are meaningless", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
