"""End-to-end: an X11 app (xterm, through the compositor's Xwayland) from the config, streamed
to the Moonlight client library and typed into through it."""

from __future__ import annotations

import shutil

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
    # No DISPLAY in the config: the host gives every app its compositor's Xwayland. `sh`
    # reads no rc files: the user's interactive bash may spend seconds in them first.
    cfg.write_text('[[apps]]\nname = "XTerm"\n'
                   'cmd = ["xterm", "-bg", "black", "-fg", "white", "-e", "sh"]\n')
    host = host_factory(data_dir, port_base, config=cfg).start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    assert [a.title for a in client.applist()] == ["XTerm"]
    target = tmp_path / "typed-in-xterm"
    session = scenario.start_session(client, "XTerm", 1280, 720, 60)
    try:
        scenario.type_command_and_wait_for(session, host, target, "xterm")
        session.client.cancel().ok()
    finally:
        session.stream.stop()
