"""End-to-end: the dedicated session (`punktfunk session -- CMD`, a base app under the catalog
apps) and the apps' prep commands, working directory and box art.

What is checked is what a user sees: the pictures the client decodes, files the apps and their
commands write, the host's process table and its exit status.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

import hostctl
import scenario
from clientproc import wait_for_look
from conftest import make_client, need, pair_with_cli, random_pin
from scenario import mgmt_get
from test_concurrent_sessions import COLOUR_TOLERANCE, TERMINAL_BG, terminal_app

pytestmark = pytest.mark.host


class SessionHost(hostctl.Host):
    """`punktfunk session -- CMD` instead of `punktfunk serve`."""

    base_cmd: list[str] = []

    def command(self) -> list[str]:
        cmd = super().command()
        assert cmd[1] == "serve", cmd
        return [cmd[0], "session", *cmd[2:], "--", *self.base_cmd]


def mgmt_post(host: hostctl.Host, path: str, body: dict) -> requests.Response:
    token = (host.data_dir / "mgmt-token").read_text().strip()
    return requests.post(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}{path}",
                         json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def pids(host: hostctl.Host, needle: str) -> set[int]:
    return {pid for pid, _ in host.processes(needle)}


def start_desktop_host(data_dir: Path, port_base: int, tmp_path: Path):
    """A started `punktfunk session` whose base app ("Desktop") is the test pattern and whose
    catalog holds "Terminal" (foot), and a client paired with it."""
    need("foot")
    cfg = tmp_path / "config.toml"
    cfg.write_text(terminal_app("Terminal"))
    host = SessionHost(data_dir, port_base, config=cfg, log_dir=tmp_path)
    host.base_cmd = [str(hostctl.binary_path()), "testpattern"]
    host.start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    return host, client


@pytest.mark.slow
def test_base_app_shows_under_catalog_apps_and_comes_back(data_dir, port_base, tmp_path):
    host, client = start_desktop_host(data_dir, port_base, tmp_path)
    try:
        apps = {a.title: a.id for a in client.applist()}
        assert list(apps) == ["Desktop", "Terminal"], apps
        w, h, fps = 960, 540, 30
        session = scenario.start_session(client, "Desktop", w, h, fps)
        stream = session.stream
        try:
            # The base app alone.
            seen = wait_for_look(stream, True, None, 0, 10.0)
            assert seen["sizes"] == [(w, h)], seen
            info = client.serverinfo(https=True).ok()
            assert info.text("currentgame") == str(apps["Desktop"]), info.body[:300]
            [listed] = mgmt_get(host, "/api/sessions")
            assert listed["app"] == "Desktop", listed
            base_pids = pids(host, "testpattern")
            assert len(base_pids) == 1, host.processes("testpattern")

            # A catalog app on top: the stream shows it.
            r = mgmt_post(host, f"/api/sessions/{listed['id']}/launch", {"app": "Terminal"})
            assert r.status_code == 200, r.text
            wait_for_look(stream, False, list(TERMINAL_BG), COLOUR_TOLERANCE, 15.0)
            info = client.serverinfo(https=True).ok()
            assert info.text("currentgame") == str(apps["Terminal"]), info.body[:300]
            assert pids(host, "testpattern") == base_pids, "the base app was restarted"

            # Quitting it shows the base app again; the stream goes on.
            stream.drain()
            stream.type_text("exit\n")
            deadline = time.monotonic() + 10
            while host.processes("foot"):
                assert time.monotonic() < deadline, "foot still runs after `exit`"
                stream.drain()
                time.sleep(0.1)
            wait_for_look(stream, True, None, 0, 10.0)
            assert not stream.stats.terminated, "the stream ended with the catalog app"
            info = client.serverinfo(https=True).ok()
            assert info.text("currentgame") == str(apps["Desktop"]), info.body[:300]

            # Killing the base app brings it back.
            [old] = base_pids
            os.kill(old, signal.SIGKILL)
            deadline = time.monotonic() + 15
            while not (pids(host, "testpattern") - {old}):
                assert time.monotonic() < deadline, "the base app was not restarted"
                stream.drain()
                time.sleep(0.1)
            wait_for_look(stream, True, None, 0, 10.0)
            assert not stream.stats.terminated
        finally:
            stream.stop()

        # A client that launches a catalog app while its session runs gets it on top of the
        # base app, in the same session.
        session = scenario.start_session(client, "Terminal", w, h, fps)
        try:
            wait_for_look(session.stream, False, list(TERMINAL_BG), COLOUR_TOLERANCE, 15.0)
            assert len(mgmt_get(host, "/api/sessions")) == 1
            assert len(pids(host, "testpattern")) == 1
            session.client.cancel().ok()
            deadline = time.monotonic() + 10
            while host.processes("testpattern") or host.processes("foot"):
                assert time.monotonic() < deadline, \
                    f"apps left after /cancel: {host.processes('')}"
                time.sleep(0.1)
        finally:
            session.stream.stop()
    finally:
        assert host.stop() == 0, host.log_text()


def echo_line(tag: str, out: Path) -> list[str]:
    """A command that appends `tag` and the client variables to `out`."""
    return ["sh", "-c",
            f'echo "{tag} $PUNKTFUNK_CLIENT_WIDTH $PUNKTFUNK_CLIENT_HEIGHT $PUNKTFUNK_CLIENT_FPS '
            f'$SUNSHINE_CLIENT_WIDTH $SUNSHINE_CLIENT_HEIGHT $PUNKTFUNK_CLIENT_AUDIO_CONFIGURATION '
            f'$PUNKTFUNK_CLIENT_HDR $PUNKTFUNK_CLIENT_UNIQUEID $SUNSHINE_CLIENT_UNIQUE_ID '
            f'$SUNSHINE_APP_NAME $PWD" >> {out}']


def toml_list(cmd: list[str]) -> str:
    return "[" + ", ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in cmd) + "]"


@pytest.mark.slow
def test_prep_and_undo_run_in_order_with_the_client_variables(host_factory, data_dir, port_base,
                                                               tmp_path):
    out = tmp_path / "prep.log"
    work = tmp_path / "workdir"
    work.mkdir()
    image = tmp_path / "art.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    app_cmd = ["sh", "-c", echo_line("app", out)[2] + f'; exec "{hostctl.binary_path()}" testpattern']
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[[apps]]\nname = "Prepped"\n'
        f"cmd = {toml_list(app_cmd)}\n"
        f'working_dir = "{work}"\nimage = "{image}"\n'
        f"prep = [{{ do = {toml_list(echo_line('do1', out))}, undo = {toml_list(echo_line('undo1', out))} }},\n"
        f"        {{ do = {toml_list(echo_line('do2', out))}, undo = {toml_list(echo_line('undo2', out))} }}]\n"
        '[[apps]]\nname = "Broken"\n'
        f'cmd = ["{hostctl.binary_path()}", "testpattern"]\n'
        f"prep = [{{ do = {toml_list(echo_line('bdo1', out))}, undo = {toml_list(echo_line('bundo1', out))} }},\n"
        f'        {{ do = ["sh", "-c", "exit 7"], undo = {toml_list(echo_line("bundo2", out))} }}]\n')
    host = host_factory(data_dir, port_base, config=cfg).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    apps = {a.title: a.id for a in client.applist()}

    # The configured box art.
    status, body, _ = client.https_raw("/appasset", [("appid", str(apps["Prepped"])),
                                                     ("AssetType", "2"), ("AssetIdx", "0")])
    assert status == 200 and body == image.read_bytes(), "the app's image is not its box art"

    w, h, fps = 1024, 576, 30
    session = scenario.start_session(client, "Prepped", w, h, fps)
    try:
        scenario.check_video(session.stream, w, h, fps, seconds=1.0)
        session.client.cancel().ok()
    finally:
        session.stream.stop()
    deadline = time.monotonic() + 10
    while "undo1" not in (out.read_text() if out.exists() else ""):
        assert time.monotonic() < deadline, f"no undo after the app ended: {out.read_text()!r}"
        time.sleep(0.1)
    uid = client.identity.uniqueid
    want_vars = f"{w} {h} {fps} {w} {h} 2.0 false {uid} {uid} Prepped {work}"
    lines = out.read_text().splitlines()
    assert lines == [f"{tag} {want_vars}" for tag in ("do1", "do2", "app", "undo2", "undo1")], \
        "\n".join(lines)

    # A failing prep command: the launch fails, what ran is undone, the host keeps serving.
    out.unlink()
    r = client.launch(apps["Broken"], w, h, fps, check=False).reply
    assert r.status_code != 200, r.body[:300]
    assert "prep" in r.status_message, r.status_message
    got = [line.split()[0] for line in out.read_text().splitlines()]
    assert got == ["bdo1", "bundo1"], got
    assert not host.processes("testpattern"), "the app started although its prep failed"
    assert client.serverinfo(https=True).ok().text("currentgame") == "0"


def test_an_app_that_exits_at_once_fails_its_launch(host_factory, data_dir, port_base,
                                                    tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[apps]]\nname = "Quitter"\ncmd = ["sh", "-c", "exit 3"]\n')
    host = host_factory(data_dir, port_base, config=cfg).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    r = client.launch(client.app_id("Quitter"), 640, 480, 30, check=False).reply
    # Refused when the exit is noticed before the reply, else the session ends right after.
    assert r.status_code in (200, 503), r.body[:300]
    if r.status_code == 503:
        assert "exited" in r.status_message, r.body[:300]
    deadline = time.monotonic() + 3
    while mgmt_get(host, "/api/sessions"):
        assert time.monotonic() < deadline, "a session outlived its app by 3 s"
        time.sleep(0.05)
    assert client.serverinfo(https=True).ok().text("currentgame") == "0"
    # and the host still launches apps
    r = client.launch(client.app_id("Quitter"), 640, 480, 30, check=False).reply
    assert r.status_code in (200, 503), r.body[:300]


def test_config_mistake_in_prep_names_file_line_and_key(host_factory, data_dir, port_base,
                                                        tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[[apps]]\nname = "A"\ncmd = ["true"]\n'
                   'prep = [{ do = ["true"], redo = ["true"] }]\n')
    host = host_factory(data_dir, port_base, config=cfg)
    rc = host.run_to_exit(timeout=20)
    log = host.log_text()
    assert rc != 0, log
    assert str(cfg) in log and "line 4" in log and "redo" in log, log
