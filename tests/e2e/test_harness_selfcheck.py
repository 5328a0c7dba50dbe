"""Checks of the harness itself; none of them needs the punktfunk host.

* the moonlight-common-c library loads and exports everything the harness binds;
* the pairing client works against a small in-test implementation of the host side of
  pairing (stages 1-5 over real HTTP/HTTPS on 127.0.0.1), including wrong-PIN, MITM and
  certificate-pinning failures;
* the test-pattern reader works on synthetic frames drawn per docs/testpattern.md, both raw
  and after an H.264 round trip at the bitrate the e2e tests use;
* the video check lets through only the repeated pictures it says it allows.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import gamestream as gs
import moonlight
import pattern


# ----------------------------------------------------------------------- library ----
def test_library_exports_everything_bound():
    syms = moonlight.exported_symbols()
    wanted = moonlight.BOUND_FUNCTIONS + moonlight.BOUND_VARIABLES + moonlight.RS_SYMBOLS
    missing = [s for s in wanted if s not in syms]
    assert not missing, f"libmoonlight-common-c.so lacks {missing}"
    ffi, lib = moonlight.load()
    for name in moonlight.BOUND_FUNCTIONS:
        getattr(lib, name)  # resolves the symbol through cffi
    assert isinstance(lib.NegotiatedVideoFormat, int)
    rs = lib.reed_solomon_new_def(4, 2)
    assert rs != ffi.NULL
    lib.reed_solomon_release_def(rs)


def test_launch_query_and_iv():
    q = moonlight.launch_url_query_parameters()
    assert q.startswith("&") and "corever=" in q, q
    assert moonlight.remote_input_iv(-2) == b"\xff\xff\xff\xfe" + bytes(12)
    assert moonlight.remote_input_iv(0x01020304) == b"\x01\x02\x03\x04" + bytes(12)


def test_struct_layouts():
    ffi, _ = moonlight.load()
    # x86-64 layouts of the structs in Limelight.h
    assert ffi.sizeof("STREAM_CONFIGURATION") == 12 * 4 + 32
    assert ffi.offsetof("DECODE_UNIT", "receiveTimeUs") == 16
    assert ffi.offsetof("DECODE_UNIT", "bufferList") == 48
    assert ffi.sizeof("SERVER_INFORMATION") == 40
    assert ffi.offsetof("CONNECTION_LISTENER_CALLBACKS", "setAdaptiveTriggers") == 12 * 8


def test_vk_table():
    assert moonlight.vk_for_char("a") == (0x41, False)
    assert moonlight.vk_for_char("Z") == (0x5A, True)
    assert moonlight.vk_for_char("/") == (0xBF, False)
    assert moonlight.vk_for_char("_") == (0xBD, True)


# -------------------------------------------------------------------------- crypto ----
def test_identity_certificate(tmp_path: Path):
    ident = gs.ClientIdentity.create(tmp_path)
    cert = x509.load_pem_x509_certificate(ident.cert_pem)
    assert cert.version == x509.Version.v3
    assert cert.subject.rfc4514_string() == "CN=NVIDIA GameStream Client"
    assert cert.issuer == cert.subject
    assert cert.public_key().key_size == 2048
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert len(gs.cert_signature(ident.cert_pem)) == 256
    again = gs.ClientIdentity.load(tmp_path)
    assert again == ident
    data = secrets.token_bytes(16)
    assert gs.verify_sha256(ident.cert_pem, data, gs.sign_sha256(ident.key_pem, data))
    assert not gs.verify_sha256(ident.cert_pem, data + b"x", gs.sign_sha256(ident.key_pem, data))
    k = gs.aes_key(b"\x01" * 16, "1234")
    blob = secrets.token_bytes(48)
    assert gs.aes_ecb_decrypt(k, gs.aes_ecb_encrypt(k, blob)) == blob
    with pytest.raises(ValueError):
        gs.aes_ecb_encrypt(k, b"short")


class FakeHost:
    """The host side of GameStream pairing (docs/protocol/gamestream-session-setup.md §3),
    just enough to exercise the client: HTTP for serverinfo and stages 1-4, HTTPS for 5."""

    def __init__(self, tmp: Path, host_pin: str, mitm: bool = False, empty_plaincert=False,
                 tls_cert_differs: bool = False):
        self.host_pin = host_pin
        self.mitm = mitm
        self.empty_plaincert = empty_plaincert
        self.cert, self.key = gs.make_self_signed("Sunshine Gamestream Host", serial=7)
        _, self.other_key = gs.make_self_signed("other")
        self.session: dict = {}
        self.paired: list[bytes] = []
        self.unpairs = 0
        tls_cert, tls_key = (gs.make_self_signed("impostor") if tls_cert_differs
                             else (self.cert, self.key))
        (tmp / "host-cert.pem").write_bytes(tls_cert)
        (tmp / "host-key.pem").write_bytes(tls_key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                body = fake.handle(url.path, q, https=isinstance(self.connection, ssl.SSLSocket))
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.https = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tmp / "host-cert.pem"), str(tmp / "host-key.pem"))
        self.https.socket = ctx.wrap_socket(self.https.socket, server_side=True)
        for srv in (self.http, self.https):
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close(self):
        for srv in (self.http, self.https):
            srv.shutdown()
            srv.server_close()

    @staticmethod
    def xml(status: int, **elems) -> str:
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in elems.items())
        return f'<?xml version="1.0" encoding="utf-8"?><root status_code="{status}">{inner}</root>'

    def handle(self, path: str, q: dict, https: bool) -> str:
        if path == "/serverinfo":
            return self.xml(200, appversion="7.1.431.-1", GfeVersion="3.23.0.74",
                            uniqueid="fake", HttpsPort=self.https.server_address[1],
                            ServerCodecModeSupport=1, PairStatus=0, currentgame=0,
                            state="SUNSHINE_SERVER_FREE")
        if path == "/unpair":
            self.unpairs += 1
            self.session.clear()
            return self.xml(200)
        if path != "/pair":
            return self.xml(404)
        s = self.session
        if https and q.get("phrase") == "pairchallenge":
            return self.xml(200, paired=1)
        if q.get("phrase") == "getservercert":
            s.clear()
            s["client_cert"] = bytes.fromhex(q["clientcert"])
            s["key"] = gs.aes_key(bytes.fromhex(q["salt"]), self.host_pin)
            plain = "" if self.empty_plaincert else self.cert.hex()
            return self.xml(200, paired=1, plaincert=plain)
        if "clientchallenge" in q:
            c1 = gs.aes_ecb_decrypt(s["key"], bytes.fromhex(q["clientchallenge"]))
            s["server_secret"] = secrets.token_bytes(16)
            s["server_challenge"] = secrets.token_bytes(16)
            h = gs.sha256(c1 + gs.cert_signature(self.cert) + s["server_secret"])
            resp = gs.aes_ecb_encrypt(s["key"], h + s["server_challenge"])
            return self.xml(200, paired=1, challengeresponse=resp.hex().upper())
        if "serverchallengeresp" in q:
            s["client_hash"] = gs.aes_ecb_decrypt(s["key"], bytes.fromhex(q["serverchallengeresp"]))
            signer = self.other_key if self.mitm else self.key
            secret = s["server_secret"]
            return self.xml(200, paired=1,
                            pairingsecret=(secret + gs.sign_sha256(signer, secret)).hex().upper())
        if "clientpairingsecret" in q:
            blob = bytes.fromhex(q["clientpairingsecret"])
            c_secret, sig = blob[:16], blob[16:]
            ok = (gs.sha256(s["server_challenge"] + gs.cert_signature(s["client_cert"]) +
                            c_secret) == s["client_hash"][:32]
                  and gs.verify_sha256(s["client_cert"], c_secret, sig))
            if ok:
                self.paired.append(s["client_cert"])
            return self.xml(200, paired=1 if ok else 0)
        return self.xml(404)


@pytest.fixture
def fake_host_factory(tmp_path):
    made = []

    def make(**kw):
        d = tmp_path / f"fake{len(made)}"
        d.mkdir()
        f = FakeHost(d, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def _client(tmp_path: Path, fake: FakeHost) -> gs.GameStreamClient:
    return gs.GameStreamClient(gs.ClientIdentity.create(tmp_path / "client"), "127.0.0.1",
                               fake.http.server_address[1], https_port=0, timeout=5)


def test_pairing_round_trip(tmp_path, fake_host_factory):
    fake = fake_host_factory(host_pin="4711")
    client = _client(tmp_path, fake)
    client.pair("4711")
    assert fake.paired == [client.identity.cert_pem]
    assert client.server_cert_pem == fake.cert
    assert client.https_port == fake.https.server_address[1]
    assert fake.unpairs == 0
    # pinned HTTPS works afterwards
    assert client.serverinfo(https=True).ok().text("appversion") == "7.1.431.-1"


def test_pairing_wrong_pin_is_detected(tmp_path, fake_host_factory):
    fake = fake_host_factory(host_pin="1111")
    client = _client(tmp_path, fake)
    with pytest.raises(gs.IncorrectPin):
        client.pair("2222")
    assert fake.paired == []
    assert fake.unpairs == 1
    assert client.server_cert_pem is None


def test_pairing_mitm_is_detected(tmp_path, fake_host_factory):
    fake = fake_host_factory(host_pin="1234", mitm=True)
    client = _client(tmp_path, fake)
    with pytest.raises(gs.MitmDetected):
        client.pair("1234")
    assert fake.paired == [] and fake.unpairs == 1


def test_pairing_already_in_progress(tmp_path, fake_host_factory):
    fake = fake_host_factory(host_pin="1234", empty_plaincert=True)
    with pytest.raises(gs.AlreadyInProgress):
        _client(tmp_path, fake).pair("1234")


def test_https_pinning_rejects_other_cert(tmp_path, fake_host_factory):
    fake = fake_host_factory(host_pin="1234", tls_cert_differs=True)
    client = _client(tmp_path, fake)
    with pytest.raises(gs.NvHttpError, match="mismatch"):
        client.pair("1234")


def test_reply_parsing():
    r = gs.parse_reply("/applist", 200, b'<?xml version="1.0" encoding="utf-8"?>'
                       b'<root status_code="401" status_message="nope" query="/applist"/>')
    assert r.status_code == 401 and r.status_message == "nope"
    with pytest.raises(gs.XmlStatusError):
        r.ok()
    with pytest.raises(gs.NvHttpError):
        gs.parse_reply("/x", 200, b"not xml")


# ------------------------------------------------------------------------- pattern ----
@pytest.mark.parametrize("w,h", [(1280, 720), (1366, 768), (854, 480), (1918, 1078)])
@pytest.mark.parametrize("n", [0, 1, 2, 255, 0x12345678, 0xFFFFFFFF])
def test_pattern_reader_on_synthetic_frames(w, h, n):
    img = pattern.draw(n, w, h, pointer=(100, h - 40))
    assert pattern.decode_counter(img) == n
    pattern.check_bars(img, tolerance=0)
    m = pattern.find_marker(img)
    assert m is not None and abs(m.x - 100) <= 0.5 and abs(m.y - (h - 40)) <= 0.5
    bx = pattern.block_x(img)
    expected = pattern.expected_block_x(n, w)
    assert bx == expected or (abs(expected - 100) < 40 and bx is None), (bx, expected)


def test_pattern_reader_rejects_wrong_images():
    img = pattern.draw(5, 1280, 720)
    img[0:16, 16 * 3: 16 * 4] = 128  # a grey cell is unreadable
    with pytest.raises(pattern.PatternError):
        pattern.decode_counter(img)
    img = pattern.draw(5, 1280, 720)
    img[16:540, 0:160] = (0, 0, 255)  # white bar painted blue
    with pytest.raises(pattern.PatternError, match="white"):
        pattern.check_bars(img)
    assert pattern.find_marker(pattern.draw(5, 1280, 720)) is None  # red bar masked out


def test_pattern_after_h264_round_trip():
    """Encode synthetic frames with x264 at 720p / 10 Mbps, decode them with the harness's
    decoder, and read them back: the tolerances must hold for real H.264."""
    import av

    w, h, fps = 1280, 720, 60
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = av.Fraction(1, fps) if hasattr(av, "Fraction") else __import__(
        "fractions").Fraction(1, fps)
    enc.bit_rate = 10_000_000
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bframes": "0"}
    dec = moonlight.H264Decoder()
    pointer = (300, 600)
    got = []
    for i in range(30):
        n = 1000 + i
        frame = av.VideoFrame.from_ndarray(pattern.draw(n, w, h, pointer), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        for pkt in enc.encode(frame):
            got += dec.decode(bytes(pkt))
    for pkt in enc.encode(None):
        got += dec.decode(bytes(pkt))
    assert len(got) == 30
    for i, rgb in enumerate(got):
        assert rgb.shape == (h, w, 3)
        assert pattern.decode_counter(rgb) == 1000 + i
        pattern.check_bars(rgb)
        m = pattern.find_marker(rgb)
        assert m is not None and abs(m.x - pointer[0]) <= 1.5 and abs(m.y - pointer[1]) <= 1.5
        bx = pattern.block_x(rgb)
        assert bx is not None and abs(bx - pattern.expected_block_x(1000 + i, w)) <= 3


class _FakeStream:
    """Decoded frames of the test pattern showing `counters`, received 1/30 s apart, as
    scenario.check_video reads a stream."""

    negotiated_video_format = 1

    def __init__(self, counters: list[int], w: int, h: int):
        from types import SimpleNamespace

        self.stats = SimpleNamespace(audio_packets=0, size_mismatches=0)
        self._frames = [SimpleNamespace(width=w, height=h, rgb=pattern.draw(n, w, h),
                                        number=k + 1, receive_time_us=k * 1_000_000 // 30)
                        for k, n in enumerate(counters)]

    def frames(self, timeout: float):
        yield from self._frames


@pytest.mark.parametrize("counters, error", [
    (list(range(5, 45)), None),
    # The stream's first picture up to four times (keyframes the client asked for at the start).
    ([5, 5, 5] + list(range(5, 45)), None),
    # One repeat later on (the cursor appearing), as before.
    (list(range(5, 20)) + [19] + list(range(20, 45)), None),
    ([5] * 5 + list(range(6, 45)), "counter went 5 -> 5"),
    (list(range(5, 20)) + [19, 19] + list(range(20, 45)), "counter went 19 -> 19"),
    (list(range(5, 20)) + list(range(21, 45)), "counter went 19 -> 21"),
], ids=["advancing", "first-picture-repeats", "one-repeat", "first-picture-five-times",
        "two-repeats-later", "skipped-frame"])
def test_video_check_allows_only_the_repeats_it_says(counters, error):
    import scenario

    w, h = 640, 360
    stream = _FakeStream(counters, w, h)
    if error is None:
        rep = scenario.check_video(stream, w, h, 30, seconds=1.0)
        assert rep.counters[0] == 5
    else:
        with pytest.raises(AssertionError, match=error):
            scenario.check_video(stream, w, h, 30, seconds=1.0)


def test_app_log_reader(tmp_path):
    import hostctl

    p = tmp_path / "app-test-pattern.log"
    p.write_text('{"event":"ready","width":1280,"height":720}\n')
    log = hostctl.AppLog(p)
    with open(p, "a") as f:
        f.write('junk line\n{"event":"key","key":30,"keysym":"a","utf8":"a","state":"pressed"}\n')
    evs = log.wait_for(lambda e: any(x.get("keysym") == "a" for x in e), timeout=1)
    assert [e["event"] for e in evs] == ["key"]
    assert hostctl.slug("Test Pattern") == "test-pattern"
    assert hostctl.slug("My  App! 2") == "my-app-2"


def test_free_port_base():
    import hostctl

    base = hostctl.free_port_base()
    low, _ = hostctl.ephemeral_ports()
    # The whole family (up to base+30) stays below the ephemeral range.
    assert 10000 <= base and base + 30 < max(low, 12000) and hostctl.ports_free(base)


def test_stream_start_failure_is_reported():
    """LiStartConnection through the bindings (structs, callbacks, threads) against an RTSP
    port that accepts and hangs up at once: a clean StreamError naming the failed stage."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def hang_up():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    threading.Thread(target=hang_up, daemon=True).start()
    params = moonlight.StreamParams(
        rtsp_session_url=f"rtsp://127.0.0.1:{port}", app_version="7.1.431.-1",
        gfe_version="3.23.0.74", server_codec_mode_support=1, rikey=bytes(16), rikeyid=-5)
    stream = moonlight.Stream()
    try:
        with pytest.raises(moonlight.StreamError, match="RTSP handshake"):
            stream.start(params, timeout=30)
        assert "name resolution" in stream.stats.stages_completed
        assert not stream.connected
    finally:
        stop.set()
        srv.close()


@pytest.mark.host
def test_a_host_whose_port_was_taken_moves_to_another_family(host_factory, data_dir):
    """Something took the HTTP port between the check and the start: the harness starts the
    host on another free port family instead of failing the test."""
    import socket

    import hostctl

    taken = hostctl.free_port_base()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", taken))
        s.listen()
        host = host_factory(data_dir, taken).start()
        assert host.port_base != taken
        assert host.runs == 2, host.runs
        assert gs.wait_for_serverinfo("127.0.0.1", host.http_port, 5)
