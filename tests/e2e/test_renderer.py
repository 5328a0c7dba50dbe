"""The renderer each session runs, chosen at run time: `auto` without a render node falls back
to pixman and says why, a configured node that does not exist fails the launch naming it, the
API reports the renderer in use, and GPU-API clients (vkcube on lavapipe, glmark2 on llvmpipe)
stream moving pictures on both renderers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scenario
from conftest import make_client, need, pair_with_cli, random_pin
from gamestream import XmlStatusError

pytestmark = pytest.mark.host

RENDERERS = ["pixman", "gles"]


def start_host(host_factory, data_dir, port_base, tmp_path, config: str):
    """A host on `config`, whose renderer setting these tests choose themselves (no
    `--renderer` from $PUNKTFUNK_E2E_RENDERER), and a client paired with it."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(config)
    host = host_factory(data_dir, port_base, config=cfg)
    host.renderer = None
    host.start()
    client = make_client(host, tmp_path / "client")
    assert pair_with_cli(host, client, random_pin()) is None
    return host, client


def has_render_node() -> bool:
    return any(Path("/dev/dri").glob("renderD*"))


def lit(rgb) -> float:
    """The share of pixels that are clearly not black."""
    return float((rgb.max(axis=2) > 48).mean())


def moving_frames(session, seconds: float = 4.0, *, until_changed: int | None = None,
                  duration: float | None = None, timeout: float = 10.0
                  ) -> tuple[int, int, float]:
    """Decodes video once the app shows something: (frames, frames that differ from the one
    before, share of lit pixels in the last). Stops after `seconds` of frames at 30 fps, or with
    `until_changed`, once that many frames changed; either way after `duration` seconds from the
    first frame (default `seconds` + 8)."""
    frames = changed = 0
    prev = None
    share = 0.0
    if duration is None:
        duration = seconds + 8
    for fr in session.stream.frames(duration=duration, timeout=timeout):
        share = lit(fr.rgb)
        if prev is None and share == 0:
            continue  # the output is black until the app's first frame
        if prev is not None and not np.array_equal(prev, fr.rgb):
            changed += 1
        prev = fr.rgb
        frames += 1
        if changed >= until_changed if until_changed is not None else frames >= seconds * 30:
            break
    return frames, changed, share


def test_auto_without_a_render_node_renders_with_pixman_and_says_why(
        host_factory, data_dir, port_base, tmp_path):
    if has_render_node():
        pytest.skip("this machine has a render node: auto takes it")
    host, client = start_host(host_factory, data_dir, port_base, tmp_path,
                              '[video]\nrenderer = "auto"\n')
    session = scenario.start_session(client, scenario.TEST_PATTERN, 640, 480, 30)
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        listed = scenario.streaming_session(host)
        assert (listed["renderer"], listed["render_device"]) == ("pixman", "cpu"), listed
        status = scenario.mgmt_get(host, "/api/status")["renderer"]
        assert status["setting"] == "auto" and status["render_node"] == "auto", status
        assert status["in_use"]["name"] == "pixman", status
        # The API says why, as the log does.
        assert "no hardware render node" in status["in_use"]["fallback"], status
        log = host.log_text()
        assert "rendering with pixman on the CPU" in log and "no hardware render node" in log, \
            log[-3000:]
    finally:
        session.stream.stop()


def test_a_render_node_that_does_not_exist_fails_the_launch_naming_it(
        host_factory, data_dir, port_base, tmp_path):
    node = "/dev/dri/renderD199"
    assert not Path(node).exists()
    host, client = start_host(host_factory, data_dir, port_base, tmp_path,
                              f'[video]\nrender_node = "{node}"\n')
    app_id = client.app_id(scenario.TEST_PATTERN)
    with pytest.raises(XmlStatusError) as refused:
        client.launch(app_id, 640, 480, 30)
    assert f"cannot render on {node}: it does not exist" in refused.value.message, \
        refused.value.message
    # The host keeps serving: free, and the status still answers.
    info = client.serverinfo(https=True).ok()
    assert (info.text("state") or "").endswith("_SERVER_FREE"), info.body[:500]
    assert scenario.mgmt_get(host, "/api/sessions") == []
    assert node in host.log_text()


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_test_pattern_streams_on_each_renderer(renderer, host_factory, data_dir,
                                                   port_base, tmp_path):
    host, client = start_host(host_factory, data_dir, port_base, tmp_path,
                              f'[video]\nrenderer = "{renderer}"\n')
    session = scenario.start_session(client, scenario.TEST_PATTERN, 1280, 720, 60)
    try:
        scenario.check_video(session.stream, 1280, 720, 60, seconds=2.0)
        listed = scenario.streaming_session(host)
        assert listed["renderer"] == renderer, listed
        if renderer == "gles" and not has_render_node():
            assert listed["render_device"] == "software", listed
    finally:
        session.stream.stop()


GPU_APPS = {
    # Vulkan through Mesa's lavapipe, presenting with wl_shm.
    "vkcube": ("vkcube-wayland", []),
    # OpenGL ES through Mesa's llvmpipe; one scene that keeps moving for the whole test.
    "glmark2": ("glmark2-es2-wayland", ["--fullscreen", "-b", "build:duration=60"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("app", sorted(GPU_APPS))
def test_gpu_api_clients_stream_moving_pictures(app, renderer, host_factory, data_dir,
                                                port_base, tmp_path):
    program, args = GPU_APPS[app]
    path = need(program)
    cmd = ", ".join(f'"{a}"' for a in [path, *args])
    host, client = start_host(
        host_factory, data_dir, port_base, tmp_path,
        f'[video]\nrenderer = "{renderer}"\n\n[[apps]]\nname = "{app}"\ncmd = [{cmd}]\n')
    session = scenario.start_session(client, app, 1280, 720, 30)
    try:
        frames, changed, share = moving_frames(session)
        print(f"[e2e] {app} on {renderer}: {frames} frames, {changed} changed, "
              f"{share:.1%} of the picture lit")
        assert frames >= 20, f"only {frames} frames of {app}"
        assert changed >= frames // 4, f"{app} does not move: {changed} of {frames} frames changed"
        assert share > 0.02, f"{app}'s picture is black ({share:.1%} lit)"
        listed = scenario.streaming_session(host)
        assert listed["renderer"] == renderer, listed
    finally:
        session.stream.stop()


def test_the_renderer_the_harness_asks_for_is_the_one_in_use(paired_client):
    """With $PUNKTFUNK_E2E_RENDERER (scripts/test.sh runs the walking skeleton and the input
    tests again with `gles`) every host of the run renders with it."""
    host = paired_client.host
    wanted = host.renderer or ("gles" if has_render_node() else "pixman")
    session = scenario.start_session(paired_client.client, scenario.TEST_PATTERN, 640, 480, 30)
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        listed = scenario.streaming_session(host)
        assert listed["renderer"] == wanted, listed
    finally:
        session.stream.stop()
