"""End-to-end: YUV 4:4:4. A client that asks for it (Moonlight's "YUV 4:4:4" option) gets H.264
High 4:4:4 with full-resolution chroma, read back from the client library, from the management
API's session list and from the decoded pictures: the edge of a red square on a green bar stays
sharp on the odd column and row where 4:2:0 would blend the two colours.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import moonlight
import pattern
import scenario

pytestmark = pytest.mark.host

VIDEO_FORMAT_H264_HIGH8_444 = 0x0004
SCM_H264_HIGH8_444 = 0x0004_0000
W, H, FPS = 1280, 720, 30
# The pointer marker (9x9, centred on the pointer) inside the green bar (x 480..640), with its
# left edge on column 597 and its top edge on row 297: odd, so 4:2:0 would pair each edge with
# the green pixel before it.
POINTER = (601, 301)
LEFT, TOP = POINTER[0] - 4, POINTER[1] - 4


def edge_colours(rgb: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """The pixels on both sides of the marker's left and top edges, halfway along them."""
    px = lambda x, y: tuple(int(c) for c in rgb[y, x])  # noqa: E731
    return {
        "left of the marker": px(LEFT - 1, POINTER[1]),
        "marker's left column": px(LEFT, POINTER[1]),
        "above the marker": px(POINTER[0], TOP - 1),
        "marker's top row": px(POINTER[0], TOP),
    }


def is_green(c: tuple[int, int, int]) -> bool:
    return c[1] > 200 and c[0] < 50 and c[2] < 50


def is_red(c: tuple[int, int, int]) -> bool:
    return c[0] > 200 and c[1] < 50 and c[2] < 50


def test_yuv444_keeps_single_pixel_colour_edges(paired_client):
    info = paired_client.client.serverinfo(https=True).ok()
    scm = int(info.text("ServerCodecModeSupport") or "0")
    assert scm & SCM_H264_HIGH8_444, f"4:4:4 not advertised: ServerCodecModeSupport={scm:#x}"
    session = scenario.start_session(
        paired_client.client, scenario.TEST_PATTERN, W, H, FPS,
        video_formats=moonlight.VIDEO_FORMAT_H264 | VIDEO_FORMAT_H264_HIGH8_444)
    try:
        stream = session.stream
        assert stream.negotiated_video_format == VIDEO_FORMAT_H264_HIGH8_444, \
            f"negotiated {stream.negotiated_video_format:#x}"
        listed = scenario.streaming_session(paired_client.host)
        assert (listed["video_codec"], listed["chroma"], listed["bit_depth"]) == \
            ("h264", "4:4:4", 8), listed
        assert listed["video_encoder"] == "libx264", listed
        decoder = moonlight.H264Decoder(moonlight.VIDEO_FORMAT_H264)
        started = time.monotonic()
        moved = False
        last = None
        while time.monotonic() - started < 20:
            unit = stream.next_unit(timeout=5)
            assert unit is not None, "the stream stopped"
            for picture in decoder.decode(unit.data, None):
                assert picture.format.name == "yuv444p", \
                    f"decoded a {picture.format.name} picture, not 4:4:4"
                rgb = picture.to_ndarray(format="rgb24")
                assert rgb.shape[:2] == (H, W)
                if not moved:
                    try:
                        pattern.check_bars(rgb)
                    except pattern.PatternError:
                        continue
                    stream.send_mouse_position(POINTER[0], POINTER[1], W, H)
                    moved = True
                    continue
                marker = pattern.find_marker(rgb)
                if marker is None or abs(marker.x - POINTER[0]) > 1.5 \
                        or abs(marker.y - POINTER[1]) > 1.5:
                    continue
                last = edge_colours(rgb)
                if all(is_green(c) if "marker's" not in k else is_red(c)
                       for k, c in last.items()):
                    session.client.cancel().ok()
                    return
        pytest.fail(f"the marker's edges never showed clean colours: {last} "
                    "(4:2:0 blends each odd edge with its neighbour)")
    finally:
        session.stream.stop()
