"""Fixtures for the punktfunk end-to-end tests.

Tests that need the host binary are skipped (with the reason printed) while
`$PUNKTFUNK_BIN` (default: target/debug/punktfunk) is missing or has no `serve` subcommand.
Set PUNKTFUNK_E2E_REQUIRE_HOST=1 to turn those skips into failures (CI).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostctl  # noqa: E402
from gamestream import ClientIdentity, GameStreamClient  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "host: needs a working `punktfunk serve`")
    config.addinivalue_line("markers", "slow: streams video for several seconds")


def pytest_report_header(config):
    ok, reason = hostctl.host_availability()
    return [f"punktfunk binary: {hostctl.binary_path()} "
            f"({'usable' if ok else 'NOT usable: ' + reason})"]


def require_host() -> None:
    ok, reason = hostctl.host_availability()
    if not ok:
        if os.environ.get("PUNKTFUNK_E2E_REQUIRE_HOST") == "1":
            pytest.fail(f"host required but unusable: {reason}")
        print(f"\n[e2e] SKIP: {reason}")
        pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    hostctl.STARTED.clear()
    if item.get_closest_marker("host") is not None:
        require_host()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and hostctl.STARTED:
        for h in hostctl.STARTED:
            rep.sections.append((f"punktfunk serve log (port base {h.port_base})",
                                 h.log_text()))
            apps = h.app_logs_text()
            if apps:
                rep.sections.append((f"app logs (port base {h.port_base})", apps))


@pytest.fixture
def port_base() -> int:
    return hostctl.free_port_base()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def host_factory(tmp_path: Path):
    """Make (unstarted) Host objects; every one is stopped at teardown."""
    made: list[hostctl.Host] = []

    def make(data_dir: Path, port_base: int, config: Path | None = None, **kw) -> hostctl.Host:
        require_host()
        h = hostctl.Host(data_dir, port_base, config=config, log_dir=tmp_path, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


@pytest.fixture
def host(host_factory, data_dir: Path, port_base: int) -> hostctl.Host:
    """A running `punktfunk serve` with the default app list."""
    return host_factory(data_dir, port_base).start()


def make_client(host: hostctl.Host, directory: Path) -> GameStreamClient:
    return GameStreamClient(ClientIdentity.load_or_create(directory), "127.0.0.1",
                            host.http_port, host.https_port)


def need(program: str) -> str:
    """The program's path (on the PATH, or a game in /usr/games); a missing one fails under CI
    and skips elsewhere."""
    path = shutil.which(program) or (f"/usr/games/{program}"
                                     if os.path.exists(f"/usr/games/{program}") else None)
    if path is None:
        assert not os.environ.get("CI"), f"{program} is missing; scripts/deps.sh --test installs it"
        pytest.skip(f"{program} is not installed")
    return path


def random_pin() -> str:
    return f"{random.randrange(10000):04d}"


def pair_with_cli(host: hostctl.Host, client: GameStreamClient, client_pin: str,
                  host_pin: str | None = None, timeout: float = 30.0) -> Exception | None:
    """Pair `client` (PIN `client_pin`) while the test types `host_pin` (default: the same)
    into `punktfunk pair`. Returns the client's exception (None on success); raises if the
    CLI never accepted the PIN."""
    result: dict = {}

    def run():
        try:
            client.pair(client_pin, stage1_timeout=timeout + 30)
            result["error"] = None
        except Exception as e:  # handed back to the test
            result["error"] = e

    t = threading.Thread(target=run, name="pairing", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    attempts = []
    while True:
        r = host.enter_pin(host_pin or client_pin)
        attempts.append(r)
        if r.returncode == 0:
            break
        if time.monotonic() > deadline or ("error" in result and not t.is_alive()):
            raise AssertionError(f"`punktfunk pair` never accepted the PIN (last exit "
                                 f"{r.returncode}: {r.output.strip()[:500]}); client: "
                                 f"{result.get('error')!r}")
        time.sleep(0.25)
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("pairing did not finish after the PIN was entered on the host")
    return result["error"]


def start_paired_host(host_factory, data_dir: Path, port_base: int, tmp_path: Path,
                      config: str) -> tuple[hostctl.Host, GameStreamClient]:
    """A running host with `config` as its config.toml, and a client paired with it."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(config)
    host = host_factory(data_dir, port_base, config=cfg).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    return host, client


@dataclass
class Paired:
    host: hostctl.Host
    client: GameStreamClient
    pin: str


@pytest.fixture
def paired_client(host: hostctl.Host, tmp_path: Path) -> Paired:
    client = make_client(host, tmp_path / "client")
    pin = random_pin()
    err = pair_with_cli(host, client, pin)
    if err is not None:
        raise AssertionError(f"pairing with PIN {pin} failed: {err!r}")
    return Paired(host, client, pin)
