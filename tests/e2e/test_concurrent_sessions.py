"""End-to-end: two Moonlight clients stream from one host at the same time.

Each client is a separate OS process (the client library is a singleton) with its own paired
identity, and both connect from 127.0.0.1, so the host cannot tell them apart by address. Each
client gets its own compositor, app and mode; what one client sees and types never reaches the
other, and stopping the host ends both streams and leaves no process behind.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

import hostctl
import scenario
from clientproc import ClientProcess
from conftest import make_client, pair_with_cli, random_pin
from hostctl import AppLog
from scenario import mgmt_get

pytestmark = [pytest.mark.host, pytest.mark.slow]

# foot's background in the terminal app: a colour the test pattern's centre never has.
TERMINAL_BG = (0x20, 0x60, 0xC0)
COLOUR_TOLERANCE = 24


def pattern_app(name: str) -> str:
    return f'[[apps]]\nname = "{name}"\ncmd = ["{hostctl.binary_path()}", "testpattern"]\n'


def terminal_app(name: str) -> str:
    bg = "".join(f"{c:02x}" for c in TERMINAL_BG)
    # `sh`, not the user's login shell: an interactive bash runs the user's rc files, which
    # can take seconds (or block on a lock) before the shell reads what the client types.
    return (f'[[apps]]\nname = "{name}"\ncmd = ["foot", "-o", "colors.background={bg}", "sh"]\n'
            f'env = {{ TERM = "foot" }}\n')


def paired_process(host: hostctl.Host, directory: Path, name: str) -> ClientProcess:
    """Pair a fresh client identity (in this process) and hand it to a client process."""
    client = make_client(host, directory)
    err = pair_with_cli(host, client, random_pin())
    assert err is None, f"pairing client {name}: {err!r}"
    return ClientProcess(name, directory, host.http_port, host.https_port, client.server_cert_pem)


def test_two_clients_two_apps_two_modes(host_factory, data_dir, port_base, tmp_path):
    if shutil.which("foot") is None:
        print("\n[e2e] SKIP: foot is not installed")
        pytest.skip("foot is not installed")
    cfg = tmp_path / "config.toml"
    cfg.write_text(pattern_app("Pattern") + terminal_app("Terminal"))
    host = host_factory(data_dir, port_base, config=cfg).start()
    a = paired_process(host, tmp_path / "client-a", "A")
    b = paired_process(host, tmp_path / "client-b", "B")
    pattern_log = host.app_log("Pattern")
    try:
        (wa, ha), (wb, hb), fps = (960, 540), (800, 600), 30
        pattern_id = a.call("start", "Pattern", wa, ha, fps)
        assert a.call("serverinfo")["currentgame"] == pattern_id
        free = b.call("serverinfo")
        assert free["currentgame"] == 0 and free["state"].endswith("_SERVER_FREE"), \
            f"client B sees client A's game as its own: {free}"

        # B launches while A streams: B gets its own session and A's stream goes on.
        terminal_id = b.call("start", "Terminal", wb, hb, fps)
        assert terminal_id != pattern_id
        assert a.call("serverinfo")["currentgame"] == pattern_id
        assert b.call("serverinfo")["currentgame"] == terminal_id
        a.call("check_pattern", wa, ha, fps, 3.0)
        listed = sorted((x["app"], x["width"], x["height"], x["fps"], x["streaming"])
                        for x in mgmt_get(host, "/api/sessions"))
        assert listed == [("Pattern", wa, ha, fps, True), ("Terminal", wb, hb, fps, True)], listed

        # Each sees its own app at its own size.
        look_b = b.call("wait_for_look", False, list(TERMINAL_BG), COLOUR_TOLERANCE, 15.0)
        assert look_b["sizes"] == [(wb, hb)], look_b
        look_a = a.call("look", 1.0)
        assert look_a["sizes"] == [(wa, ha)] and look_a["bars"], look_a
        whole = AppLog(pattern_log)
        whole.offset = 0
        configures = [e for e in whole.events() if e.get("event") == "configure"]
        assert configures and (configures[-1]["width"], configures[-1]["height"]) == (wa, ha), \
            configures[-3:]

        # B's typing reaches B's terminal and nothing of it reaches A's pattern.
        log = AppLog(pattern_log)
        file_b = tmp_path / "typed-by-b"
        b.call("type_text", f"touch {file_b}\n")
        deadline = time.monotonic() + 10
        while not file_b.exists():
            assert time.monotonic() < deadline, \
                f"{file_b} never appeared after client B typed into its terminal"
            b.call("drain")
            time.sleep(0.1)
        time.sleep(1.0)
        leaked = [e for e in log.events() if e.get("event") in ("key", "keyboard_enter")]
        assert not leaked, f"client B's keys reached client A's app: {leaked[:10]}"

        # A's typing reaches A's pattern and nothing of it reaches B's terminal.
        a.call("check_keys", str(pattern_log))
        file_a = tmp_path / "typed-by-a"
        log.mark()
        a.call("type_text", f"touch {file_a}\n")
        log.wait_for(lambda evs: sum(1 for e in evs if e.get("event") == "key"
                                     and e.get("state") == "pressed"
                                     and e.get("keysym") == "Return") >= 1,
                     timeout=5, what="client A's Return in its pattern")
        time.sleep(2.0)
        assert not file_a.exists(), "client A's typing ran a command in client B's terminal"

        # A quits: only A's session ends.
        a.call("cancel")
        deadline = time.monotonic() + 10
        while host.processes("testpattern"):
            assert time.monotonic() < deadline, "A's app still runs 10 s after its /cancel"
            time.sleep(0.1)
        assert host.processes("foot"), "client A's /cancel stopped client B's app"
        assert not b.call("terminated"), "client A's /cancel ended client B's stream"
        look_b = b.call("look", 1.0)
        assert look_b["sizes"] == [(wb, hb)], look_b
        assert b.call("serverinfo")["currentgame"] == terminal_id
        assert a.call("serverinfo")["currentgame"] == 0

        # The management API ends B's session: B is told, its app goes.
        [only] = mgmt_get(host, "/api/sessions")
        assert only["app"] == "Terminal", only
        token = (host.data_dir / "mgmt-token").read_text().strip()
        r = requests.delete(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}"
                            f"/api/sessions/{only['id']}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert b.call("wait_terminated", 10.0) == {"terminated": True, "error": 0}
        assert not host.processes("foot"), "B's app outlived its session"
        assert mgmt_get(host, "/api/sessions") == []
    finally:
        a.close()
        b.close()


def test_plaintext_launches_from_one_address_wait_their_turn(host_factory, data_dir, port_base,
                                                             tmp_path):
    """Plaintext RTSP requests are told apart only by their source address: while one client's
    plaintext launch waits for its handshake, another client at the same address gets a clear
    error instead of a session that could take the wrong requests; the first is not touched."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(pattern_app("Pattern One") + pattern_app("Pattern Two"))
    host = host_factory(data_dir, port_base, config=cfg).start()
    clients = []
    for name in ("a", "b"):
        c = make_client(host, tmp_path / f"client-{name}")
        assert pair_with_cli(host, c, random_pin()) is None
        clients.append(c)
    a, b = clients
    # No `corever` in the query: the client asks for plaintext RTSP.
    first = a.launch(a.app_id("Pattern One"), 640, 480, 30, library_query="")
    assert first.session_url.startswith("rtsp://"), first.session_url
    r = b.launch(b.app_id("Pattern Two"), 640, 480, 30, library_query="", check=False).reply
    assert r.status_code == 503 and "try again" in r.status_message, r.body[:300]
    assert len(host.processes("testpattern")) == 1, host.processes("testpattern")
    assert a.serverinfo(https=True).ok().text("currentgame") == str(a.app_id("Pattern One"))
    assert b.serverinfo(https=True).ok().text("currentgame") == "0"
    # An encrypted launch from the same address is told apart by its key: it goes ahead.
    second = b.launch(b.app_id("Pattern Two"), 640, 480, 30)
    assert second.session_url.startswith("rtspenc://"), second.session_url
    assert len(host.processes("testpattern")) == 2
    a.cancel().ok()
    b.cancel().ok()


def test_sigterm_with_two_streams_ends_both_and_leaves_no_process(host_factory, data_dir,
                                                                   port_base, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(pattern_app("Pattern One") + pattern_app("Pattern Two"))
    host = host_factory(data_dir, port_base, config=cfg).start()
    a = paired_process(host, tmp_path / "client-a", "A")
    b = paired_process(host, tmp_path / "client-b", "B")
    try:
        a.call("start", "Pattern One", 854, 480, 30)
        b.call("start", "Pattern Two", 640, 480, 30)
        a.call("check_pattern", 854, 480, 30, 1.5)
        b.call("check_pattern", 640, 480, 30, 1.5)
        children = host.children()
        apps = [cl for cl in children.values() if "testpattern" in cl]
        assert len(apps) == 2, f"expected two test patterns among the host's children: {children}"
        if shutil.which("Xwayland"):
            xservers = [cl for cl in children.values() if "Xwayland" in cl]
            assert len(xservers) == 2, f"expected one Xwayland per session: {children}"

        host.terminate(children)
        for c in (a, b):
            ended = c.call("wait_terminated", 10.0)
            assert ended == {"terminated": True, "error": 0}, \
                f"client {c.name} did not get a graceful termination: {ended}"
        hostctl.check_gone(children)
    finally:
        a.close()
        b.close()



def test_two_launches_at_once_from_one_client_start_one_session(paired_client):
    """A client that sends /launch twice at once (a double tap) gets one session; the other
    request is refused, not a second session running beside the first."""
    host, client = paired_client.host, paired_client.client
    app_id = client.app_id(scenario.TEST_PATTERN)
    replies = []
    barrier = threading.Barrier(2)

    def launch():
        barrier.wait()
        replies.append(client.launch(app_id, 1280, 720, 60, check=False).reply)

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(r.status_code for r in replies)
    assert len(codes) == 2 and codes[0] == 200 and codes[1] != 200, \
        [(r.status_code, r.status_message) for r in replies]
    sessions = scenario.mgmt_get(host, "/api/sessions")
    assert len(sessions) == 1, sessions
    client.cancel().ok()
