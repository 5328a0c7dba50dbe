"""What the streaming benches share: the host binary, a paired host on loopback, one stream.

The host, the client and the pairing are the end-to-end harness's (tests/e2e/), so a bench
streams exactly as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def add_bin_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bin", default=os.environ.get("PUNKTFUNK_BIN",
                                                    str(ROOT / "target/release/punktfunk")))


def use_binary(path: str) -> Path:
    """Makes `path` the binary the harness runs; exits with the reason when it cannot serve."""
    binary = Path(path).resolve()
    os.environ["PUNKTFUNK_BIN"] = str(binary)
    import hostctl

    ok, reason = hostctl.host_availability()
    if not ok:
        sys.exit(reason)
    return binary


def parse_mode(mode: str) -> tuple[int, int, int]:
    """"WxH@fps" (fps 60 when left out) -> (w, h, fps)."""
    size, _, fps = mode.partition("@")
    w, h = (int(v) for v in size.split("x"))
    return w, h, int(fps or 60)


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


@contextmanager
def paired_host(tmp: Path, apps: dict[str, list[str]] | None = None,
                env: dict[str, str] | None = None) -> Iterator[tuple]:
    """`punktfunk serve` on a free loopback port family with its data under `tmp`, serving
    `apps` (title -> command line; the default app list when None), and a client paired
    through `punktfunk pair`. Yields (host, client); stops the host on the way out."""
    import hostctl
    from conftest import make_client, pair_with_cli, random_pin

    cfg = None
    if apps is not None:
        cfg = tmp / "config.toml"
        cfg.write_text("".join(f'[[apps]]\nname = "{name}"\ncmd = {json.dumps(cmd)}\n'
                               for name, cmd in apps.items()))
    host = hostctl.Host(tmp / "data", hostctl.free_port_base(), config=cfg, log_dir=tmp, env=env)
    try:
        host.start()
        client = make_client(host, tmp / "client")
        err = pair_with_cli(host, client, random_pin())
        if err is not None:
            raise RuntimeError(f"pairing failed: {err!r}")
        yield host, client
    finally:
        host.stop()


@contextmanager
def streaming(client, app: str, w: int, h: int, fps: int, **kw) -> Iterator:
    """A stream of `app` at WxH@fps (scenario.start_session, `kw` passed on); cancelled and
    stopped on the way out."""
    import scenario

    session = scenario.start_session(client, app, w, h, fps, **kw)
    try:
        yield session
    finally:
        try:
            session.client.cancel()
        except Exception:
            pass
        session.stream.stop()
