"""End-to-end: an X11 app (xterm, through the compositor's Xwayland) from the config, streamed
to the Moonlight client library and typed into through it."""

from __future__ import annotations

import shutil
import time

import pytest

import scenario
from conftest import make_client, pair_with_cli, random_pin

pytestmark = pytest.mark.host


@pytest.mark.slow
def test_xterm_from_config_typed_into(host_factory, data_dir, port_base, tmp_path):
    missing = [p for p in ("xterm", "Xwayland") if shutil.which(p) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install xterm xwayland)"
        print(f"\n[e2e] SKIP: {why}")
        pytest.skip(why)
    cfg = tmp_path / "config.toml"
    # No DISPLAY in the config: the host gives every app its compositor's Xwayland.
    cfg.write_text('[[apps]]\nname = "XTerm"\ncmd = ["xterm", "-bg", "black", "-fg", "white"]\n')
    host = host_factory(data_dir, port_base, config=cfg).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    assert [a.title for a in client.applist()] == ["XTerm"]
    target = tmp_path / "typed-in-xterm"
    session = scenario.start_session(client, "XTerm", 1280, 720, 60)
    try:
        # let the terminal come up: video flowing for a while
        frames = 0
        for _ in session.stream.frames(duration=3.0, rgb=False):
            frames += 1
        assert frames > 0
        session.stream.type_text(f"touch {target}\n")
        deadline = time.monotonic() + 10
        while not target.exists():
            session.stream.drain()
            if time.monotonic() > deadline:
                raise AssertionError(f"{target} did not appear after typing into xterm; app "
                                     f"log:\n{host.app_logs_text()}\nhost log:\n"
                                     f"{host.log_text(20000)}")
            time.sleep(0.1)
        session.client.cancel().ok()
    finally:
        session.stream.stop()
