"""The authorization matrix of the GameStream HTTP and HTTPS endpoints, as one table-driven test:
every endpoint tried with no certificate, an unpaired certificate, a certificate unpaired a
moment ago, and a paired client reaching for another client's session, then by the paired
client that owns the session. Everything the protocol does not allow is refused and changes no
state (paired clients, sessions).

RTSP: every method, from a client without the launch's key, while no launch waits and while a
client's encrypted launch waits for its handshake; that client then streams as if nothing
happened.

The management API, on its loopback port and behind the web console's login: every route of
`docs/management-api.yaml` without and with a wrong token; without a login, with one that
ended, without the CSRF token, from another origin, and with everything right.

The video and audio ports: pings from another socket at a streaming client's address, `PING`s
and payloads that are not the stream's, are ignored while the client keeps its stream. (The
control port's table comes from `streamer/tests/control_port.rs`, with a real ENet client.)

The tables of outcomes are the ones in `docs/security.md`: this test makes them and fails when
the document says otherwise (`PUNKTFUNK_WRITE_DOCS=1` writes the new tables into it).
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time

import pytest
import requests

import hostctl
import scenario
from conftest import make_client, pair_with_cli, random_pin, start_paired_host
from gamestream import GameStreamClient, NvHttpError, parse_reply

pytestmark = pytest.mark.host

DOC = hostctl.REPO / "docs" / "security.md"
TABLES = {"http": ("<!-- authz-table begin -->", "<!-- authz-table end -->"),
          "rtsp": ("<!-- rtsp-table begin -->", "<!-- rtsp-table end -->"),
          "api": ("<!-- api-table begin -->", "<!-- api-table end -->"),
          "media": ("<!-- media-table begin -->", "<!-- media-table end -->")}

# (path, query) of each endpoint, with the values a client sends.
ENDPOINTS = [
    ("/serverinfo", []),
    ("/applist", []),
    ("/appasset", [("appid", "{app}"), ("AssetType", "2"), ("AssetIdx", "0")]),
    ("/launch", [("appid", "{app}"), ("mode", "640x480x30"), ("rikey", "00" * 16),
                 ("rikeyid", "1"), ("localAudioPlayMode", "0")]),
    ("/resume", [("rikey", "00" * 16), ("rikeyid", "1")]),
    ("/cancel", []),
    # A pairing stage with no pairing in progress.
    ("/pair", [("devicename", "roth"), ("updateState", "1"), ("phrase", "pairchallenge")]),
    ("/unpair", []),
    ("/no-such-endpoint", []),
]
# Who asks; the last column is the paired client whose session the others reach for.
WHO = ["no certificate", "unpaired", "unpaired a moment ago", "paired, not its session",
       "paired, its session"]
ALLOWED = "allowed"

# What the protocol allows. Over HTTP: serverinfo, and unpair (which only drops an unfinished
# pairing of the asking client) to anyone; the rest is HTTPS only. Over HTTPS: nothing but the
# pairing stages without a paired certificate; with one, everything, and cancel and resume
# reach only the asking client's own session.
EXPECTED_ALLOWED = {
    ("HTTP", "/serverinfo"): set(WHO),
    ("HTTP", "/unpair"): set(WHO),
    ("HTTPS", "/serverinfo"): {WHO[3], WHO[4]},
    ("HTTPS", "/applist"): {WHO[3], WHO[4]},
    ("HTTPS", "/appasset"): {WHO[3], WHO[4]},
    # A client with a session resumes it; a launch is refused (400) until it is cancelled.
    ("HTTPS", "/launch"): {WHO[3]},
    # The other paired client has no session to resume.
    ("HTTPS", "/resume"): {WHO[4]},
    # Cancel answers everyone paired; the other client's cancel ends nothing (checked below).
    ("HTTPS", "/cancel"): {WHO[3], WHO[4]},
    # The last pairing stage over HTTPS confirms a paired certificate (and changes nothing).
    ("HTTPS", "/pair"): {WHO[3], WHO[4]},
}


def classify(status: int, body: bytes) -> str:
    if status != 200:
        return f"refused (HTTP {status})"
    try:
        code = parse_reply("", status, body).status_code
    except Exception:
        # Not XML: box art.
        return ALLOWED if body[:8] == b"\x89PNG\r\n\x1a\n" else "refused (not XML)"
    return ALLOWED if code == 200 else f"refused ({code})"


def ask(client: GameStreamClient, https: bool, path: str, params,
        certificate: bool = True) -> str:
    """What the host does with one request."""
    try:
        if not https:
            r = requests.get(f"http://{client.host}:{client.http_port}{path}?"
                             f"{client.query(params)}", timeout=10,
                             headers={"Connection": "close"})
            return classify(r.status_code, r.content)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if certificate:
            ctx.load_cert_chain(str(client.identity.cert_path), str(client.identity.key_path))
        conn = http.client.HTTPSConnection(client.host, client.https_port, timeout=30,
                                           context=ctx)
        try:
            conn.request("GET", f"{path}?{client.query(params)}",
                         headers={"Connection": "close"})
            resp = conn.getresponse()
            return classify(resp.status, resp.read())
        finally:
            conn.close()
    except (ssl.SSLError, ConnectionError, socket.timeout, NvHttpError) as e:
        return f"refused ({type(e).__name__})"


def state(host) -> dict:
    """What a refused request must not change: the paired clients and the sessions."""
    clients = sorted(c["uniqueid"] for c in scenario.mgmt_get(host, "/api/clients"))
    sessions = sorted((s["id"], s["client"], s["app"])
                      for s in scenario.mgmt_get(host, "/api/sessions"))
    return {"clients": clients, "sessions": sessions}


def markdown(rows: dict[str, list[str]]) -> str:
    head = ("| request | " + " | ".join(WHO) + " |\n"
            + "|---|" + "---|" * len(WHO) + "\n")
    return head + "".join(f"| {name} | " + " | ".join(cells) + " |\n"
                          for name, cells in rows.items())


def check_doc(table: str, text: str) -> None:
    begin, end = TABLES[table]
    doc = DOC.read_text() if DOC.exists() else ""
    if begin in doc and end in doc:
        current = doc.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    else:
        current = None
    if current == text:
        return
    if os.environ.get("PUNKTFUNK_WRITE_DOCS") == "1" and current is not None:
        before, rest = doc.split(begin, 1)
        DOC.write_text(before + begin + "\n" + text + end + rest.split(end, 1)[1])
        return
    raise AssertionError(
        f"docs/security.md's {table} table differs from what the host does; run with "
        f"PUNKTFUNK_WRITE_DOCS=1 to update it. The host:\n{text}")


def test_the_authorization_matrix(host_factory, data_dir, port_base, tmp_path):
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    other = make_client(host, tmp_path / "other")
    revoked = make_client(host, tmp_path / "revoked")
    stranger = make_client(host, tmp_path / "stranger")
    for c in (other, revoked):
        assert pair_with_cli(host, c, random_pin()) is None
    token = (host.data_dir / "mgmt-token").read_text().strip()
    mgmt = f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}"
    listed = {c["uniqueid"]: c["id"] for c in scenario.mgmt_get(host, "/api/clients")}
    r = requests.delete(f"{mgmt}/api/clients/{listed[revoked.identity.uniqueid]}",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    app = str(owner.app_id(scenario.TEST_PATTERN))
    endpoints = [(path, [(k, v.format(app=app)) for k, v in params])
                 for path, params in ENDPOINTS]
    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30)
    try:
        before = state(host)
        assert len(before["sessions"]) == 1, before
        rows: dict[str, list[str]] = {}
        askers = [(stranger, False), (stranger, True), (revoked, True), (other, True)]
        for https in (False, True):
            for path, params in endpoints:
                name = f"{'HTTPS' if https else 'HTTP'} {path}"
                cells = [ask(c, https, path, params, certificate=cert) for c, cert in askers]
                rows[name] = cells
                if (https, path) == (True, "/launch"):
                    # The other client's launch started a session of its own: end it, the
                    # owner's stays.
                    assert ask(other, True, "/cancel", []) == ALLOWED
                assert state(host) == before, f"{name} changed the host's state"
        # The owner last: resume its session, then cancel it; the rest changes nothing.
        for https in (False, True):
            for path, params in endpoints:
                name = f"{'HTTPS' if https else 'HTTP'} {path}"
                if (https, path) in ((True, "/cancel"), (True, "/launch")):
                    continue
                rows[name].append(ask(owner, https, path, params))
        rows["HTTPS /launch"].append(ask(owner, True, "/launch", endpoints[3][1]))
        rows["HTTPS /cancel"].append(ask(owner, True, "/cancel", []))
        after = state(host)
        assert after["clients"] == before["clients"], (before, after)
        assert after["sessions"] == [], after
    finally:
        session.stream.stop()
    text = markdown(rows)
    print(text)
    for name, cells in rows.items():
        scheme, path = name.split(" ", 1)
        allowed = EXPECTED_ALLOWED.get((scheme, path), set())
        for who, got in zip(WHO, cells):
            assert (got == ALLOWED) == (who in allowed), f"{name}, {who}: {got}"
    check_doc("http", text)


RTSP_METHODS = ["OPTIONS", "DESCRIBE", "SETUP", "ANNOUNCE", "PLAY", "TEARDOWN", "GET_PARAMETER"]


def rtsp_plain(port: int, method: str) -> str:
    """What the host does with one plaintext RTSP request."""
    target = f"rtsp://127.0.0.1:{port}/streamid=video/0/0" if method == "SETUP" else \
        f"rtsp://127.0.0.1:{port}"
    body = b"v=0\r\n" if method == "ANNOUNCE" else b""
    req = (f"{method} {target} RTSP/1.0\r\nCSeq: 1\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(req)
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
    except ConnectionError:
        # Closed unanswered; a reset or an orderly close is the same to a client.
        return "refused (closed)"
    except socket.timeout:
        return "refused (no reply)"
    if not reply:
        return "refused (closed)"
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    code = status.split(" ")[1] if status.startswith("RTSP/1.0 ") else status[:20]
    return ALLOWED if code == "200" else f"refused ({code})"


def test_rtsp_without_the_launch_key(host_factory, data_dir, port_base, tmp_path):
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    rows = {m: [rtsp_plain(host.rtsp_port, m)] for m in RTSP_METHODS}

    def probe(launch) -> None:
        assert launch.session_url.startswith("rtspenc://"), launch.session_url
        for m in RTSP_METHODS:
            rows[m].append(rtsp_plain(host.rtsp_port, m))

    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30,
                                     before_connect=probe)
    try:
        # The launch those requests reached for is intact: its client streams.
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
    finally:
        session.stream.stop()
    text = ("| method | no launch waiting | a client's encrypted launch waiting |\n"
            "|---|---|---|\n" + "".join(f"| {m} | " + " | ".join(c) + " |\n"
                                       for m, c in rows.items()))
    print(text)
    for m, cells in rows.items():
        assert ALLOWED not in cells, f"{m}: {cells}"
    check_doc("rtsp", text)


def test_media_ports_do_not_follow_pings_that_are_not_the_clients(
        host_factory, data_dir, port_base, tmp_path):
    """While a client streams, another program at the same address pings the video and audio
    ports: legacy `PING`s (matched by address) and pings with a payload that is not the
    stream's. The stream stays with its client, without a frame gap, and nothing reaches the
    other program. The outcomes are docs/security.md's media table."""
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30)
    rogue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rogue.bind(("127.0.0.1", 0))
    rogue.settimeout(0.02)
    rows: dict[str, str] = {}
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        kinds = [("`PING` (a client before the payload pings)", lambda: b"PING"),
                 ("a ping with a payload that is not the stream's",
                  lambda: os.urandom(16) + b"\0\0\0\x01")]
        for port_name, port in (("video", host.video_port), ("audio", host.audio_port)):
            for kind, payload in kinds:
                received = 0
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    rogue.sendto(payload(), ("127.0.0.1", port))
                    try:
                        while True:
                            received += len(rogue.recv(2048))
                    except (socket.timeout, BlockingIOError):
                        pass
                rows[f"{port_name} port: {kind}, from another socket at the client's address, "
                     "for 1 s"] = "ignored" if received == 0 else f"followed ({received} bytes)"
                assert received == 0, f"{received} bytes of the stream went to the other program"
        # The video goes on to its client, frame after frame.
        scenario.check_video(session.stream, 640, 480, 30, seconds=2.0)
        rows["the stream's client, meanwhile"] = "keeps its stream, no frame gap"
    finally:
        rogue.close()
        session.stream.stop()
    text = ("| on the video and audio ports | outcome |\n|---|---|\n"
            + "".join(f"| {k} | {v} |\n" for k, v in rows.items()))
    print(text)
    check_doc("media", text)


API_WHO = ["no token", "wrong token", "token", "no login", "ended login",
           "login, no CSRF token", "login, CSRF token, other origin", "login and CSRF token"]


def api_routes() -> list[tuple[str, str]]:
    import yaml

    doc = yaml.safe_load((hostctl.REPO / "docs" / "management-api.yaml").read_text())
    return [(method.upper(), path) for path, ops in doc["paths"].items() for method in ops
            if method in ("get", "post", "put", "patch", "delete")]


def api_outcome(r: requests.Response) -> str:
    return f"refused ({r.status_code})" if r.status_code in (401, 403) else ALLOWED


def test_the_api_authorization_matrix(host_factory, data_dir, port_base, tmp_path):
    """Each route with ids, keys and bodies that name nothing: a request let through reaches
    the route and changes nothing, so that the whole table runs against one host."""
    host, _ = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    token = (host.data_dir / "mgmt-token").read_text().strip()
    mgmt = f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}"
    console = f"https://127.0.0.1:{host.port_base + hostctl.CONSOLE_OFFSET}"
    setup = requests.get(f"{console}/", verify=False, timeout=10)
    assert setup.status_code == 200
    link_token = (host.data_dir / "console-setup-token").read_text().strip()

    def login() -> tuple[str, str]:
        r = requests.post(f"{console}/setup" if (host.data_dir / "console-setup-token").exists()
                          else f"{console}/login",
                          data={"token": link_token, "password": "a long password",
                                "confirm": "a long password"},
                          verify=False, allow_redirects=False, timeout=10)
        assert r.status_code == 303, r.text[:300]
        cookie = r.cookies["punktfunk_console"]
        page = requests.get(f"{console}/", cookies={"punktfunk_console": cookie}, verify=False,
                            timeout=10).text
        return cookie, page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

    ended, ended_csrf = login()
    r = requests.post(f"{console}/logout", data={"csrf": ended_csrf},
                      cookies={"punktfunk_console": ended}, verify=False,
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text[:300]
    cookie, csrf = login()

    def ask(who: str, method: str, path: str) -> str:
        headers, cookies = {}, None
        base = console
        if who in ("no token", "wrong token", "token"):
            base = mgmt
            if who != "no token":
                headers["Authorization"] = f"Bearer {token if who == 'token' else '0' * len(token)}"
        elif who == "ended login":
            cookies = {"punktfunk_console": ended}
            headers["X-CSRF-Token"] = ended_csrf
        elif who != "no login":
            cookies = {"punktfunk_console": cookie}
            if who != "login, no CSRF token":
                headers["X-CSRF-Token"] = csrf
            if who == "login, CSRF token, other origin":
                headers["Origin"] = "https://evil.example"
        url = base + (path.replace("{id}", "999999").replace("{key}", "no.such.key")
                      .replace("{name}", "no-such.log"))
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        r = requests.request(method, url, headers=headers, cookies=cookies, data=body,
                             verify=False, allow_redirects=False, timeout=10, stream=True)
        r.close()
        return api_outcome(r)

    def state() -> dict:
        return {"clients": scenario.mgmt_get(host, "/api/clients"),
                "apps": scenario.mgmt_get(host, "/api/apps"),
                "settings": scenario.mgmt_get(host, "/api/settings"),
                "sessions": scenario.mgmt_get(host, "/api/sessions")}

    before = state()
    rows: dict[str, list[str]] = {}
    for method, path in api_routes():
        cells = [ask(who, method, path) for who in API_WHO]
        rows[f"{method} {path}"] = cells
        safe = method == "GET"
        want = ["refused (401)", "refused (401)", ALLOWED, "refused (401)", "refused (401)",
                ALLOWED if safe else "refused (403)", ALLOWED if safe else "refused (403)",
                ALLOWED]
        assert cells == want, f"{method} {path}: {dict(zip(API_WHO, cells))}"
        assert state() == before, f"{method} {path} changed the host's state"
    head = ("| request | " + " | ".join(API_WHO) + " |\n"
            + "|---|" + "---|" * len(API_WHO) + "\n")
    check_doc("api", head + "".join(f"| {name} | " + " | ".join(cells) + " |\n"
                                    for name, cells in rows.items()))
    assert host.running
