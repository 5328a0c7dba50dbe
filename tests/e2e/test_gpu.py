"""Games that render on the GPU, streamed to the Moonlight client library: a GLES benchmark
(Wayland, EGL) and an SDL2 OpenGL game on X11 (GLX through Xwayland's glamor and DRI3). Their
pictures reach the compositor as dmabufs, which the GLES renderer imports on the render node.
The output's frames stay on the GPU too, where the stream converts them to Y'CbCr; the test
pattern keeps its colours through that.

A render node with dmabufs is what a machine without a GPU lacks: these tests run on a virtual
GPU, where scripts/test.sh runs them:

    scripts/gpu-vm.sh -- env PUNKTFUNK_E2E_GPU=1 .venv/bin/python -m pytest tests/e2e/test_gpu.py

Without PUNKTFUNK_E2E_GPU they are skipped; with it, a missing render node fails them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pattern
import scenario
from conftest import need, start_paired_host
from test_renderer import moving_frames

pytestmark = [pytest.mark.host, pytest.mark.slow]

OFFERED = "zwp_linux_dmabuf_v1 and wl_drm offered"
IMPORTED = "the first GPU buffer from a client is imported"
CONVERTED = "frames are converted to Y'CbCr on the GPU"
NOT_CONVERTED = "on the GPU failed"


@pytest.fixture
def render_node() -> str:
    if os.environ.get("PUNKTFUNK_E2E_GPU") != "1":
        pytest.skip("runs on a render node: scripts/gpu-vm.sh -- env PUNKTFUNK_E2E_GPU=1 ...")
    nodes = sorted(Path("/dev/dri").glob("renderD*"))
    assert nodes, "PUNKTFUNK_E2E_GPU is set but there is no render node in /dev/dri"
    return str(nodes[0])


def check_gpu_stream(host, client, app: str, node: str) -> None:
    session = scenario.start_session(client, app, 640, 480, 30)
    try:
        # The guest runs the host and the game on an emulated CPU, a few frames a second, and
        # a game can stand still for seconds while it loads its next scene: wait long, for a
        # few changes.
        frames, changed, share = moving_frames(session, until_changed=4, duration=150,
                                               timeout=30)
        print(f"[e2e] {app} on the GPU: {frames} frames, {changed} changed, "
              f"{share:.1%} of the picture lit")
        assert changed >= 4, f"{app} does not move: {changed} of {frames} frames changed"
        assert share > 0.02, f"{app}'s picture is black ({share:.1%} lit)"
        listed = scenario.streaming_session(host)
        assert (listed["renderer"], listed["render_device"]) == ("gles", node), listed
    finally:
        session.stream.stop()
    log = host.log_text()
    assert OFFERED in log, log[-3000:]
    assert IMPORTED in log, f"{app} handed over no GPU buffer:\n{log[-3000:]}"
    assert CONVERTED in log, log[-3000:]
    assert NOT_CONVERTED not in log, log[-3000:]


def test_a_gles_client_renders_on_the_gpu_and_streams(render_node, host_factory, data_dir,
                                                      port_base, tmp_path):
    glmark2 = need("glmark2-es2-wayland")
    host, client = start_paired_host(
        host_factory, data_dir, port_base, tmp_path,
        '[[apps]]\nname = "glmark2"\n'
        f'cmd = ["{glmark2}", "--fullscreen", "-b", "build:duration=60"]\n')
    check_gpu_stream(host, client, "glmark2", render_node)


def test_an_x11_opengl_game_renders_through_glamor_and_streams(render_node, host_factory,
                                                               data_dir, port_base, tmp_path):
    game = need("chromium-bsu")
    home = tmp_path / "home"
    home.mkdir()
    host, client = start_paired_host(
        host_factory, data_dir, port_base, tmp_path,
        '[[apps]]\nname = "Chromium BSU"\n'
        f'cmd = ["{game}", "-na", "-w", "-v", "2"]\n'
        f'env = {{ HOME = "{home}", SDL_VIDEODRIVER = "x11" }}\n')
    check_gpu_stream(host, client, "Chromium BSU", render_node)


def test_the_test_pattern_keeps_its_colours_through_the_gpu_conversion(render_node,
                                                                        paired_client):
    session = scenario.start_session(paired_client.client, scenario.TEST_PATTERN, 640, 480, 30)
    counters = []
    try:
        for fr in session.stream.frames(duration=120, timeout=30):
            try:
                pattern.check_bars(fr.rgb)
            except pattern.PatternError:
                if counters:
                    raise
                continue  # black until the app's first frame
            counters.append(pattern.decode_counter(fr.rgb))
            if len(counters) >= 10:
                break
        listed = scenario.streaming_session(paired_client.host)
        assert (listed["renderer"], listed["render_device"]) == ("gles", render_node), listed
    finally:
        session.stream.stop()
    print(f"[e2e] test pattern from GPU frames: counters {counters}")
    assert len(counters) >= 10, f"the pattern showed in {len(counters)} frames"
    assert counters[-1] > counters[0], counters
    log = paired_client.host.log_text()
    assert CONVERTED in log, log[-3000:]
    assert NOT_CONVERTED not in log, log[-3000:]
