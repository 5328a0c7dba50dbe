"""End-to-end: 10-bit video. A client with HDR turned on (Moonlight offers its 10-bit formats
then) gets HEVC Main10 or AV1 Main 10-bit, and with YUV 4:4:4 also on, HEVC RExt 4:4:4 10-bit or
AV1 High 4:4:4 10-bit: read back from the client library and from the management API, and
decoded as 10-bit pictures whose samples carry the two extra bits: the test pattern's grey 0x20
band is luma 174 (64 + 876 * 32 / 255 = 173.9), where an 8-bit picture widened to ten bits would
give 172.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import moonlight
import pattern
import scenario

pytestmark = pytest.mark.host

SCM_HEVC_MAIN10 = 0x0200
SCM_AV1_MAIN10 = 0x0002_0000
SCM_HEVC_REXT10_444 = 0x0010_0000
SCM_AV1_HIGH10_444 = 0x0040_0000
VIDEO_FORMAT_H265_REXT10_444 = 0x0800
VIDEO_FORMAT_AV1_HIGH10_444 = 0x8000
W, H, FPS = 640, 360, 30
# The grey of the motion band (rows 3/4 H .. H) in limited-range ten bits, the client's default
# colourspace (Rec. 601 limited; grey is the same in every matrix).
BAND_LUMA_10 = 174


def luma10(picture) -> np.ndarray:
    """The Y plane of a decoded 10-bit picture (4:2:0 or 4:4:4) as (H, W) values."""
    plane = picture.planes[0]
    rows = np.frombuffer(plane, dtype="<u2").reshape(picture.height, plane.line_size // 2)
    return rows[:, :picture.width]


HEVC_BASE = moonlight.VIDEO_FORMAT_H265 | moonlight.VIDEO_FORMAT_H265_MAIN10
AV1_BASE = moonlight.VIDEO_FORMAT_AV1_MAIN8 | moonlight.VIDEO_FORMAT_AV1_MAIN10


@pytest.mark.parametrize("fmt, base, scm_bit, codec, chroma", [
    (moonlight.VIDEO_FORMAT_H265_MAIN10, moonlight.VIDEO_FORMAT_H265, SCM_HEVC_MAIN10, "hevc",
     "4:2:0"),
    (moonlight.VIDEO_FORMAT_AV1_MAIN10, moonlight.VIDEO_FORMAT_AV1_MAIN8, SCM_AV1_MAIN10, "av1",
     "4:2:0"),
    (VIDEO_FORMAT_H265_REXT10_444, HEVC_BASE, SCM_HEVC_REXT10_444, "hevc", "4:4:4"),
    (VIDEO_FORMAT_AV1_HIGH10_444, AV1_BASE, SCM_AV1_HIGH10_444, "av1", "4:4:4"),
], ids=["hevc-main10", "av1-main10", "hevc-rext10-444", "av1-high10-444"])
def test_ten_bit_stream_has_ten_bit_samples(paired_client, fmt, base, scm_bit, codec, chroma):
    client = paired_client.client
    scm = int(client.serverinfo(https=True).ok().text("ServerCodecModeSupport") or "0")
    assert scm & scm_bit, f"10-bit {codec} not advertised: ServerCodecModeSupport={scm:#x}"
    # Moonlight for Android offers its 10-bit formats only for apps marked HDR-capable.
    apps = client.applist()
    assert apps and all(app.hdr for app in apps), apps
    # A generous bitrate for the size, so that quantisation moves a flat area's level by less
    # than the two codes the test tells apart.
    session = scenario.start_session(client, scenario.TEST_PATTERN, W, H, FPS,
                                     bitrate_kbps=20000,
                                     video_formats=moonlight.VIDEO_FORMAT_H264 | base | fmt)
    try:
        stream = session.stream
        assert stream.negotiated_video_format == fmt, \
            f"negotiated {stream.negotiated_video_format:#x}, wanted {fmt:#x}"
        listed = scenario.streaming_session(paired_client.host)
        assert (listed["video_codec"], listed["chroma"], listed["bit_depth"]) == \
            (codec, chroma, 10), listed
        decoder = moonlight.H264Decoder(fmt)
        started = time.monotonic()
        levels, counters = [], []
        while len(levels) < 20 and time.monotonic() - started < 30:
            unit = stream.next_unit(timeout=5)
            assert unit is not None, "the stream stopped"
            for picture in decoder.decode(unit.data, None):
                wanted = "yuv444p10le" if chroma == "4:4:4" else "yuv420p10le"
                assert picture.format.name == wanted, \
                    f"decoded a {picture.format.name} picture, not {wanted}"
                assert (picture.width, picture.height) == (W, H)
                rgb = picture.to_ndarray(format="rgb24")
                try:
                    pattern.check_bars(rgb)
                except pattern.PatternError:
                    continue  # the app has not drawn yet
                counters.append(pattern.decode_counter(rgb))
                # A strip of the band's grey away from the moving white block.
                y = luma10(picture)
                block = pattern.block_x(rgb)
                x0 = 16 if block is None or block > W // 2 else W - 80
                band = y[H * 3 // 4 + 8:H - 8, x0:x0 + 64]
                levels.append(int(np.median(band)))
        assert len(levels) >= 20, f"only {len(levels)} pictures showed the pattern: {levels}"
        # Each picture near the level, and the level itself, once the encoder has refined the
        # static picture, to within one code: 172 (an 8-bit picture widened) is two away.
        assert all(abs(v - BAND_LUMA_10) <= 3 for v in levels), levels
        assert abs(np.median(levels[-10:]) - BAND_LUMA_10) <= 1, \
            f"grey 0x20 decoded as 10-bit luma {levels}, not {BAND_LUMA_10}"
        assert counters == sorted(counters) and len(set(counters)) == len(counters), \
            f"the app's frame counter did not advance: {counters}"
        session.client.cancel().ok()
    finally:
        session.stream.stop()
