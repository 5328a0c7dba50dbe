"""End-to-end: the host's state survives `kill -9` in the middle of pairing or of a change made
through the management API.

State files are replaced atomically (temporary file, fsync, rename). These tests kill
`punktfunk serve` with SIGKILL while a pairing is in flight and check what a user sees on the
next start: the host comes up with the same identity, a client paired before still works, and
the half-done pairing left no client behind (or a complete one).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

import hostctl
from conftest import make_client, pair_with_cli, random_pin
from gamestream import GameStreamClient

pytestmark = pytest.mark.host

PENDING_LINE = "pairing requested; waiting for the PIN"


def start_pairing(client: GameStreamClient, pin: str) -> tuple[threading.Thread, dict]:
    """Runs the client's side of pairing in a thread; its outcome lands in the dict."""
    result: dict = {}

    def run():
        try:
            client.pair(pin, stage1_timeout=60)
            result["error"] = None
        except Exception as e:  # handed back to the test
            result["error"] = e

    t = threading.Thread(target=run, name="pairing", daemon=True)
    t.start()
    return t, result


def log_count(host: hostctl.Host, needle: str) -> int:
    """How often the current run of the host has logged `needle`."""
    return host.log_path.read_text(errors="replace").count(needle)


def wait_for_log(host: hostctl.Host, needle: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while log_count(host, needle) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the host never logged {needle!r}:\n{host.log_text()}")
        if not host.running:
            raise AssertionError(f"the host exited:\n{host.log_text()}")
        time.sleep(0.05)


def kill_hard(host: hostctl.Host) -> None:
    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(10)
    assert host.proc.returncode == -signal.SIGKILL, host.proc.returncode


def state_clients(host: hostctl.Host) -> list[dict]:
    state = json.loads(host.state_file.read_text())  # must parse: never a torn file
    return state["clients"]


def host_cert(host: hostctl.Host) -> bytes:
    return (host.data_dir / "identity" / "cert.pem").read_bytes()


def check_restart(host: hostctl.Host, old: GameStreamClient, cert: bytes) -> list[dict]:
    """Restart after the kill; the paired client `old` must still list the apps over pinned
    HTTPS. Returns the paired clients as `punktfunk clients` would show them."""
    host.start()
    assert host_cert(host) == cert, "the host identity changed across the kill"
    assert old.applist(), "the client paired before the kill lost its pairing"
    r = host.clients()
    assert r.returncode == 0, r.output
    clients = state_clients(host)
    for c in clients:
        assert c["id"] in r.stdout, (c, r.stdout)
    return clients


def test_kill_while_stage1_waits_for_the_pin(host, tmp_path):
    old = make_client(host, tmp_path / "old")
    err = pair_with_cli(host, old, random_pin())
    assert err is None, f"pairing before the kill failed: {err!r}"
    cert = host_cert(host)
    before = state_clients(host)
    assert len(before) == 1, before

    new = make_client(host, tmp_path / "new")
    seen = log_count(host, PENDING_LINE)
    thread, result = start_pairing(new, random_pin())
    wait_for_log(host, PENDING_LINE, seen + 1)
    kill_hard(host)
    thread.join(30)
    assert not thread.is_alive(), "the client's pairing did not notice the host died"
    assert result.get("error") is not None, "pairing completed although the host was killed"

    after = check_restart(host, old, cert)
    assert after == before, f"a pairing that never got its PIN changed the state: {after}"
    leftovers = [p.name for p in host.data_dir.rglob("*.tmp-*")]
    print(f"[e2e] temporary files left by the kill: {leftovers or 'none'}")

    # the interrupted client can pair normally after the restart
    err = pair_with_cli(host, new, random_pin())
    assert err is None, f"pairing after the restart failed: {err!r}"
    assert len(state_clients(host)) == 2


@pytest.mark.slow
def test_kill_at_random_moments_after_the_pin(host, tmp_path):
    """SIGKILL at a random moment between the PIN and the end of pairing, several times; every
    restart loads the state and each killed pairing is either absent or complete."""
    old = make_client(host, tmp_path / "old")
    assert pair_with_cli(host, old, random_pin()) is None
    cert = host_cert(host)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"[e2e] kill delays from seed {seed}")
    for round_ in range(4):
        count = len(state_clients(host))
        client = make_client(host, tmp_path / f"client{round_}")
        pin = random_pin()
        seen = log_count(host, PENDING_LINE)
        thread, result = start_pairing(client, pin)
        wait_for_log(host, PENDING_LINE, seen + 1)
        r = host.enter_pin(pin)
        assert r.returncode == 0, r.output
        time.sleep(rng.uniform(0.0, 0.15))
        kill_hard(host)
        thread.join(30)
        after = check_restart(host, old, cert)
        assert len(after) in (count, count + 1), after
        if result.get("error") is None:
            # the client finished all five stages, so the host saved it before answering
            assert len(after) == count + 1, "a completed pairing was lost"
            assert client.applist(), "a completed pairing does not authorise the client"


def rename(host: hostctl.Host, client_id: str, name: str) -> int:
    token = (host.data_dir / "mgmt-token").read_text().strip()
    r = requests.patch(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}"
                       f"/api/clients/{client_id}", json={"name": name},
                       headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return r.status_code


def test_kill_during_renames_leaves_a_state_that_loads(host, tmp_path):
    """SIGKILL while the management API renames a client over and over, several times: every
    restart loads the state, the client stays paired and has one of the names that were
    sent."""
    old = make_client(host, tmp_path / "old")
    assert pair_with_cli(host, old, random_pin()) is None
    cert = host_cert(host)
    [entry] = state_clients(host)
    assert rename(host, entry["id"], "Living room") == 200
    assert state_clients(host)[0]["name"] == "Living room"
    assert "Living room" in host.clients().stdout
    sent = {"Living room"}
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"[e2e] kill delays from seed {seed}")
    for round_ in range(3):
        stop = threading.Event()
        done: list[int] = []

        def renames():
            i = 0
            while not stop.is_set():
                name = f"room {round_}.{i}"
                sent.add(name)  # before the request: the host may save it and die
                try:
                    done.append(rename(host, entry["id"], name))
                except requests.RequestException:
                    return
                i += 1

        t = threading.Thread(target=renames, name="renames", daemon=True)
        t.start()
        time.sleep(rng.uniform(0.2, 0.5))
        kill_hard(host)
        stop.set()
        t.join(10)
        assert done and all(code == 200 for code in done), done[-5:]
        [after] = check_restart(host, old, cert)
        assert after["id"] == entry["id"] and after["name"] in sent, after
    leftovers = [p.name for p in host.data_dir.rglob("*.tmp-*")]
    print(f"[e2e] temporary files left by the kills: {leftovers or 'none'}")


def test_one_host_per_data_directory_and_unpair_never_fights_a_running_host(
        host_factory, data_dir, port_base, tmp_path):
    """A second host on the same data directory refuses to start; `punktfunk unpair` with a
    --port-base no host answers on refuses while the host runs (it used to edit state.json
    behind the host's back, which then wrote the client back), and edits it once none runs."""
    host = host_factory(data_dir, port_base).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    client_id = json.loads((data_dir / "state.json").read_text())["clients"][0]["id"]

    second = host_factory(data_dir, hostctl.free_port_base())
    assert second.run_to_exit() != 0
    assert "another punktfunk host runs with the data directory" in second.log_text()
    assert host.running and client.serverinfo(https=True).ok()

    wrong_base = str(hostctl.free_port_base())
    r = host.cli("unpair", client_id, "--data-dir", str(data_dir), "--port-base", wrong_base)
    assert r.returncode != 0 and "does not answer" in r.output, r.output
    state = json.loads((data_dir / "state.json").read_text())
    assert [c["id"] for c in state["clients"]] == [client_id]
    assert client_id in host.clients().output

    host.stop()
    r = host.cli("unpair", client_id, "--data-dir", str(data_dir), "--port-base", wrong_base)
    assert r.returncode == 0 and "unpaired" in r.output, r.output
    assert json.loads((data_dir / "state.json").read_text())["clients"] == []


def test_a_client_that_asks_to_pair_again_pairs_with_the_pin_of_its_new_request(host, tmp_path):
    """The user cancelled on the TV and retried while the first request still waited for its
    PIN: the first request is answered with an error, the second pairs with its own PIN (both
    were abandoned before, and `punktfunk pair` found nothing pending)."""
    client = make_client(host, tmp_path / "client")
    errors: dict[str, Exception | None] = {}

    def pair(name: str, pin: str):
        try:
            client.pair(pin, stage1_timeout=60)
            errors[name] = None
        except Exception as e:  # handed back to the test
            errors[name] = e

    first_pin, second_pin = "1111", "2222"
    first = threading.Thread(target=pair, args=("first", first_pin), daemon=True)
    first.start()
    deadline = time.monotonic() + 10
    while host.log_text().count("waiting for the PIN") < 1:
        assert time.monotonic() < deadline, "the first request never waited for a PIN"
        time.sleep(0.05)
    second = threading.Thread(target=pair, args=("second", second_pin), daemon=True)
    second.start()
    # The second request answers the first.
    first.join(10)
    assert errors.get("first") is not None, "the replaced request should have failed"
    r = host.enter_pin(second_pin)
    assert r.returncode == 0, f"the second request is not pending: {r.output}"
    second.join(30)
    assert errors.get("second") is None, errors.get("second")
    assert client.serverinfo(https=True).ok().text("PairStatus") == "1"
    assert "no PIN was entered" not in host.log_text()
