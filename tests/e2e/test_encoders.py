"""End-to-end: the `[video] encoder` choice. A GPU encoder asked for by name on a machine where
it does not work (no NVIDIA driver, no render node) falls back to the CPU with a warning that
says why; the stream works either way, and the management API reports the choice.
"""

from __future__ import annotations

import re

import pytest
import requests

import hostctl
import scenario
from conftest import make_client, pair_with_cli, random_pin

pytestmark = pytest.mark.host


@pytest.mark.parametrize("encoder", ["nvenc", "vaapi"])
def test_a_forced_gpu_encoder_streams_and_names_its_fallback(host_factory, data_dir, port_base,
                                                             tmp_path, encoder):
    cfg = tmp_path / "config.toml"
    # A render node that cannot exist, so that VAAPI fails on every machine.
    cfg.write_text(f'[video]\nencoder = "{encoder}"\n'
                   'vaapi_device = "/nonexistent/renderD128"\n')
    host = host_factory(data_dir, port_base, config=cfg).start()
    token = (host.data_dir / "mgmt-token").read_text().strip()
    status = requests.get(f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}/api/status",
                          headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                          timeout=30).json()
    encoders = status["video_encoders"]
    assert encoders["setting"] == encoder, status
    if encoder == "vaapi":
        assert encoders["h264"] == "software", status
    # A GPU encoder that does not work here is listed with why, for each codec it failed.
    passed_over = {(u["encoder"], c): u["reason"] for u in encoders["unavailable"]
                   for c in u["codecs"]}
    if encoders["h264"] == "software":
        assert passed_over.get((encoder, "h264")), status
    if encoder == "vaapi":
        why = passed_over[("vaapi", "h264")]
        assert "/nonexistent/renderD128" in why or "built without h264_vaapi" in why, status

    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    session = scenario.start_session(client, scenario.TEST_PATTERN, 640, 360, 30)
    try:
        scenario.check_video(session.stream, 640, 360, 30, seconds=1.0)
        session.client.cancel().ok()
    finally:
        session.stream.stop()

    log = host.log_text()
    chosen = [line for line in log.splitlines() if "video encoder" in line and "backend=" in line]
    assert len(chosen) == 1, f"one 'video encoder' line per stream:\n{log}"
    backend = re.search(r"backend=(\w+)", chosen[0]).group(1)
    assert backend == encoders["h264"], (chosen[0], status)
    if backend == "software":
        label = {"nvenc": "NVENC", "vaapi": "VAAPI"}[encoder]
        reason = f'encoder = "{encoder}" is configured, but {label} is unavailable: '
        assert reason in log and "using the software encoder" in log, log
        assert "libx264" in chosen[0], chosen[0]
    else:
        assert backend == encoder, chosen[0]
