"""End-to-end: the web console in a real browser (Debian's chromium, driven by chromedriver)
against `punktfunk serve`, with the Moonlight client library as the client.

A user sets the console's password through the set-up link from the host's log, logs out and in,
pairs a client by typing its PIN into the Pairing page, watches the Home page's graphs move
while the client streams, and stops the session from the Sessions page; the client sees its
stream end. Wrong passwords, changes without the CSRF token, stale cookies and API calls
without a login are refused and change nothing.

With PUNKTFUNK_WRITE_DOCS=1 the screenshots go to docs/console/ for docs/console.md.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import urllib3

import hostctl
import scenario
from conftest import make_client, need, random_pin

pytestmark = pytest.mark.host

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PASSWORD = "correct horse battery"
DOCS = hostctl.REPO / "docs" / "console"
DESKTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture
def browser(tmp_path):
    chromium = need("chromium")
    driver_path = need("chromedriver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                # The console has the host's own certificate, which no browser knows.
                "--ignore-certificate-errors",
                f"--user-data-dir={tmp_path / 'chromium'}",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def console_url(host: hostctl.Host, path: str = "/") -> str:
    return f"https://127.0.0.1:{host.port_base + hostctl.CONSOLE_OFFSET}{path}"


def setup_link(host: hostctl.Host) -> str:
    """The one-time link from the host's log, pointed at 127.0.0.1."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"one-time link: (https://\S+)", host.log_text())
        if m:
            return re.sub(r"^https://[^/]+", console_url(host, "").rstrip("/"), m.group(1))
        time.sleep(0.2)
    raise AssertionError(f"no set-up link in the host's log:\n{host.log_text()[-3000:]}")


def wait(driver, condition, what: str, timeout: float = 15.0):
    """Polls `condition(driver)` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
            if value:
                return value
        except Exception as e:  # the page may be redrawing
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} on {driver.current_url} "
                         f"(last error: {last!r}):\n{driver.page_source[-3000:]}")


def by_css(driver, css: str):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def text_of(driver, css: str) -> str:
    return " ".join(e.text for e in by_css(driver, css))


def fill(driver, css: str, value: str) -> None:
    field = by_css(driver, css)[0]
    field.clear()
    field.send_keys(value)


def submit(driver, css: str = "main button[type=submit]") -> None:
    by_css(driver, css)[0].click()


UNLABELLED = """
return [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
  .filter((e) => !((e.labels && e.labels.length) || e.getAttribute("aria-label")
                   || e.getAttribute("aria-labelledby")
                   || (e.tagName === "BUTTON" && e.textContent.trim())))
  .map((e) => e.outerHTML.slice(0, 160));
"""


def screenshot(driver, name: str, tmp_path: Path) -> None:
    """Both widths of the page now shown, to docs/console/ with PUNKTFUNK_WRITE_DOCS=1. Every
    control on it must have a label a screen reader can read."""
    unlabelled = driver.execute_script(UNLABELLED)
    assert not unlabelled, f"controls without a label on {name}: {unlabelled}"
    out = DOCS if os.environ.get("PUNKTFUNK_WRITE_DOCS") else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    for label, (w, h) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(w, h)
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.3)
        path = out / f"{name}-{label}.png"
        assert driver.save_screenshot(str(path)), path
        assert path.stat().st_size > 5000, f"{path} is nearly empty"
    driver.set_window_size(*DESKTOP)


def log_in(driver, host: hostctl.Host, password: str) -> None:
    driver.get(console_url(host, "/login"))
    fill(driver, "#password", password)
    submit(driver)


def cookie(driver) -> str:
    c = driver.get_cookie("punktfunk_console")
    assert c is not None, "no session cookie"
    assert c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict", c
    return c["value"]


def api(host, method: str, path: str, session: str | None = None, csrf: str | None = None,
        **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    cookies = {"punktfunk_console": session} if session else None
    return requests.request(method, console_url(host, path), headers=headers, cookies=cookies,
                            verify=False, allow_redirects=False, timeout=10, **kw)


def raw_tls(host, request: bytes) -> bytes:
    """Sends `request` as it is over TLS to the console; the start of the answer."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", host.port_base + hostctl.CONSOLE_OFFSET), 5) as raw:
        with ctx.wrap_socket(raw) as tls:
            tls.settimeout(10)
            tls.sendall(request)
            return tls.recv(200)


class Drain:
    """Keeps decoding a stream in the background, as a client on screen does, until the host
    ends it."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.frames = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.is_set() and not self.stream.stats.terminated:
            try:
                for _ in self.stream.frames(duration=0.5, timeout=2.0, rgb=False):
                    self.frames += 1
            except Exception:  # noqa: BLE001 - the stream is going away
                time.sleep(0.1)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)


USER_CONFIG = """# The living-room host. This comment is the user's and stays.
[host]
mdns = false   # no multicast in tests
"""


def jpeg(path: Path, w: int = 300, h: int = 420) -> Path:
    """A JPEG of a red field with a white band, made with libavcodec's MJPEG encoder."""
    from fractions import Fraction

    import av
    import numpy as np

    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[h // 3: h // 2] = 255
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    data = b"".join(bytes(p) for p in list(codec.encode(frame)) + list(codec.encode(None)))
    assert data.startswith(b"\xff\xd8\xff"), data[:8]
    path.write_bytes(data)
    return path


def add_app_in_the_apps_page(browser, host, tmp_path: Path, config: Path) -> None:
    """The Apps page adds an app with box art; bad input is refused with a message."""
    browser.get(console_url(host, "/#apps"))
    wait(browser, lambda d: by_css(d, '[data-app="Test Pattern"]'), "the built-in app listed")
    assert "Built in" in text_of(browser, '[data-app="Test Pattern"]')
    before = config.read_text()
    # A command with an open quote, and a working directory that is not there.
    fill(browser, "#app-name", "Console Pattern")
    fill(browser, "#app-cmd", "punktfunk 'testpattern")
    submit(browser, "#app-form button[type=submit]")
    wait(browser, lambda d: "not closed" in text_of(d, "#app-result"), "the quote message")
    fill(browser, "#app-cmd", "punktfunk testpattern")
    fill(browser, "#app-dir", str(tmp_path / "not-there"))
    submit(browser, "#app-form button[type=submit]")
    wait(browser, lambda d: "is not a directory" in text_of(d, "#app-result"),
         "the config loader's message")
    assert config.read_text() == before, "a refused app changed the config file"
    fill(browser, "#app-dir", "")
    fill(browser, "#app-env", "PUNKTFUNK_TEST_TAG=console")
    by_css(browser, "#app-image")[0].send_keys(str(jpeg(tmp_path / "art.jpg")))
    submit(browser, "#app-form button[type=submit]")
    wait(browser, lambda d: "Console Pattern is saved" in text_of(d, "main"), "the saved message")
    wait(browser, lambda d: by_css(d, '[data-app="Console Pattern"] img'), "the new app listed")
    img = by_css(browser, '[data-app="Console Pattern"] img')[0]
    wait(browser, lambda d: img.get_attribute("naturalWidth") == "300", "the box art shown")
    screenshot(browser, "apps", tmp_path)
    text = config.read_text()
    assert text.startswith(before), f"the user's text changed:\n{text}"
    assert "Console Pattern" in text and "PUNKTFUNK_TEST_TAG" in text, text


def change_a_setting(browser, host, tmp_path: Path, config: Path) -> None:
    """The Settings page: a value the config loader refuses changes nothing, a good one is
    saved in place and applies to the next session."""
    browser.get(console_url(host, "/#settings"))
    fec = '[data-setting="video.fec_percent"]'
    wait(browser, lambda d: by_css(d, f"{fec} input"), "the FEC setting")
    assert "Applies to new sessions" in text_of(browser, fec)
    assert "Default: 20" in text_of(browser, fec)
    assert "Share of forward error correction" in text_of(browser, fec)
    assert "Needs a restart" in text_of(browser, '[data-setting="host.port_base"]')
    before = config.read_text()
    fill(browser, f"{fec} input", "400")
    submit(browser, f"{fec} button")
    wait(browser, lambda d: "expected u8" in text_of(d, f"{fec} [role=status]"),
         "the loader's refusal")
    assert config.read_text() == before
    fill(browser, f"{fec} input", "35")
    submit(browser, f"{fec} button")
    wait(browser, lambda d: "New sessions use it" in text_of(d, f"{fec} [role=status]"), "saved")
    assert "Set in the file to 35" in text_of(browser, fec)
    text = config.read_text()
    assert text.startswith(USER_CONFIG) and "fec_percent = 35" in text, text
    screenshot(browser, "settings", tmp_path)


def watch_the_logs(browser, host, tmp_path: Path) -> None:
    """The Logs page: the host's log by level and text, live; an app's log."""
    from selenium.webdriver.support.ui import Select

    browser.get(console_url(host, "/#logs"))
    wait(browser, lambda d: "console login" in text_of(d, "ol.log"), "the host's log")
    assert "INFO" in text_of(browser, "ol.log")
    Select(by_css(browser, "#log-level")[0]).select_by_value("warn")
    wait(browser, lambda d: "console login with a wrong password" in text_of(d, "ol.log"),
         "the warnings")
    assert all(li.get_attribute("class") in ("level-warn", "level-error")
               for li in by_css(browser, "ol.log li")), text_of(browser, "ol.log")
    # A new line shows up by itself.
    def wrong_ones(d) -> int:
        return text_of(d, "ol.log").count("console login with a wrong password")
    time.sleep(1)
    before = wrong_ones(browser)
    r = api(host, "POST", "/login", data={"password": "live wrong guess"})
    assert r.status_code == 401
    wait(browser, lambda d: wrong_ones(d) == before + 1, "the new warning, live")
    fill(browser, "#log-filter", "wrong password")
    visible = [li.text for li in by_css(browser, "ol.log li") if li.is_displayed()]
    assert visible and all("wrong password" in t for t in visible), visible
    screenshot(browser, "logs", tmp_path)
    fill(browser, "#log-filter", "")
    Select(by_css(browser, "#log-source")[0]).select_by_value("app-console-pattern.log")
    wait(browser, lambda d: "configure" in text_of(d, "ol.log"), "the app's output")
    assert not by_css(browser, "#log-level-box")[0].is_displayed(), "an app's log has no levels"


def test_set_up_log_in_pair_watch_and_stop_a_stream(host_factory, data_dir, port_base, browser,
                                                    tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(USER_CONFIG)
    # The app is added as `punktfunk testpattern`, found on the PATH as a user's would be.
    path = f"{hostctl.binary_path().parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    host = host_factory(data_dir, port_base, config=config, env={"PATH": path}).start()
    # The set-up link from the log sets the password, and the browser is logged in.
    link = setup_link(host)
    browser.get(console_url(host))
    assert "No password is set yet" in browser.page_source
    screenshot(browser, "setup-needed", tmp_path)
    browser.get(link)
    screenshot(browser, "setup", tmp_path)
    fill(browser, "#password", PASSWORD)
    fill(browser, "#confirm", PASSWORD + "x")
    submit(browser)
    wait(browser, lambda d: "the two passwords differ" in d.page_source, "the mismatch message")
    assert not (host.data_dir / "console-password").exists()
    fill(browser, "#password", PASSWORD)
    fill(browser, "#confirm", PASSWORD)
    submit(browser)
    wait(browser, lambda d: text_of(d, "main h1") == "Home", "the Home page")
    stored = (host.data_dir / "console-password").read_text()
    assert stored.startswith("$argon2id$"), stored
    assert oct((host.data_dir / "console-password").stat().st_mode & 0o777) == "0o600"
    assert not (host.data_dir / "console-setup-token").exists(), "the link is used up"
    browser.get(link)
    wait(browser, lambda d: d.current_url.endswith("/login"), "the used link to go to the login")

    # Log out, a wrong password, log in.
    browser.get(console_url(host))
    wait(browser, lambda d: by_css(d, ".logout button"), "the Log out button")
    old = cookie(browser)
    submit(browser, ".logout button")
    wait(browser, lambda d: "You are logged out" in d.page_source, "the logged-out page")
    assert api(host, "GET", "/api/clients", session=old).status_code == 401, \
        "the cookie of a logged-out browser still works"
    log_in(browser, host, "wrong horse battery")
    wait(browser, lambda d: "Wrong password." in d.page_source, "the wrong-password message")
    screenshot(browser, "login", tmp_path)
    log_in(browser, host, PASSWORD)
    wait(browser, lambda d: text_of(d, "main h1") == "Home", "the Home page after login")
    session = cookie(browser)
    csrf = by_css(browser, 'meta[name="csrf-token"]')[0].get_attribute("content")
    # The keyboard reaches every page: Tab to the Pairing link, Enter opens it.
    from selenium.webdriver.common.keys import Keys
    body = by_css(browser, "body")[0]
    for _ in range(10):
        body.send_keys(Keys.TAB) if browser.switch_to.active_element.tag_name == "body" \
            else browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.text == "Pairing":
            break
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, lambda d: text_of(d, "main h1") == "Pairing", "Pairing opened from the keyboard")
    assert re.fullmatch(r"[0-9a-f]{64}", csrf), csrf

    # A Moonlight client starts pairing; its PIN goes into the Pairing page.
    browser.get(console_url(host, "/#pairing"))
    wait(browser, lambda d: "No client waits for a PIN" in d.page_source, "the empty Pairing page")
    client = make_client(host, tmp_path / "client")
    pin = random_pin()
    outcome: dict = {}

    def pair():
        try:
            client.pair(pin, stage1_timeout=60)
            outcome["error"] = None
        except Exception as e:  # handed to the test
            outcome["error"] = e

    pairing = threading.Thread(target=pair, daemon=True)
    pairing.start()
    wait(browser, lambda d: "waits for its PIN" in text_of(d, "main"),
         "the pending pairing to show up by itself")
    screenshot(browser, "pairing", tmp_path)
    fill(browser, "#pin", pin)
    submit(browser)
    wait(browser, lambda d: "Paired: client 1" in text_of(d, "#pair-result"), "the paired message",
         timeout=30)
    pairing.join(30)
    assert outcome.get("error", "still running") is None, outcome
    assert client.serverinfo(https=True).ok().text("PairStatus") == "1"

    # The Clients page lists it; a rename goes through the API with the CSRF token.
    browser.get(console_url(host, "/#clients"))
    wait(browser, lambda d: by_css(d, 'tr[data-client="1"] input'), "the client's row")
    fill(browser, 'tr[data-client="1"] input', "Living room")
    submit(browser, 'tr[data-client="1"] button[type=submit]')
    wait(browser, lambda d: "Renamed to Living room" in d.page_source, "the rename")
    assert [c["name"] for c in scenario.mgmt_get(host, "/api/clients")] == ["Living room"]
    screenshot(browser, "clients", tmp_path)

    # Changes without the CSRF token, or without a login, are refused and change nothing.
    r = api(host, "DELETE", "/api/clients/1", session=session)
    assert r.status_code == 403 and "CSRF" in r.json()["error"], r.text
    r = api(host, "DELETE", "/api/clients/1", session=session, csrf="0" * 64)
    assert r.status_code == 403, r.text
    r = api(host, "DELETE", "/api/clients/1", session=session, csrf=csrf,
            headers={"Origin": "https://evil.example"})
    assert r.status_code == 403, r.text
    for method, path in (("GET", "/api/clients"), ("GET", "/api/status"),
                         ("DELETE", "/api/clients/1"), ("POST", "/api/pair")):
        r = api(host, method, path, csrf=csrf, json={"pin": "1234"})
        assert r.status_code == 401 and r.json()["error"] == "log in to the console first", \
            f"{method} {path}: {r.status_code} {r.text}"
    assert [c["id"] for c in scenario.mgmt_get(host, "/api/clients")] == ["1"]

    # An app added in the Apps page is what the client sees, with its box art, and launches,
    # with the FEC percentage set in the Settings page.
    add_app_in_the_apps_page(browser, host, tmp_path, config)
    change_a_setting(browser, host, tmp_path, config)
    assert [a.title for a in client.applist()] == ["Console Pattern"]
    status, art, _ = client.https_raw("/appasset", [("appid", str(client.app_id("Console Pattern"))),
                                                   ("AssetType", "2"), ("AssetIdx", "0")])
    assert status == 200 and art.startswith(b"\x89PNG"), (status, art[:16])
    assert art == (host.data_dir / "boxart" / "console-pattern.png").read_bytes()

    # The client streams it; the Home page's graphs move.
    s = scenario.start_session(client, "Console Pattern", 1280, 720, 60)
    drain = Drain(s.stream)
    try:
        browser.get(console_url(host, "/#home"))
        fps = wait(browser, lambda d: float(re.sub(r"[^0-9.]", "", text_of(
            d, '[data-session] [data-metric="fps"] .value')) or 0) > 10 and text_of(
            d, '[data-session] [data-metric="fps"] .value'), "frames per second above 10")
        points = by_css(browser, '[data-session] [data-metric="bitrate_kbps"] polyline')[0] \
            .get_attribute("points")
        wait(browser, lambda d: by_css(d, '[data-session] [data-metric="bitrate_kbps"] polyline')[0]
             .get_attribute("points") != points and len(by_css(
                 d, '[data-session] [data-metric="bitrate_kbps"] polyline')[0]
                 .get_attribute("points").split()) >= 3, "the bitrate graph to move")
        bitrate = text_of(browser, '[data-session] [data-metric="bitrate_kbps"] .value')
        assert text_of(browser, '[data-session] [data-metric="fec_percent"] .value') == "35 %"
        assert float(bitrate.split()[0]) > 0, bitrate
        assert "Living room: Console Pattern" in text_of(browser, "[data-session] h3")
        # Where no GPU renders or encodes, the Home page says why (`auto` for both here).
        facts = text_of(browser, "dl.facts")
        if host.renderer is None and not any(Path("/dev/dri").glob("renderD*")):
            assert "No GPU renders: no hardware render node" in facts, facts
        if not Path("/dev/nvidiactl").exists():
            assert re.search(r"nvenc \(H264[^)]*\) unavailable: \S", facts), facts
        print(f"[console] home shows {fps} and {bitrate}")
        if os.environ.get("PUNKTFUNK_WRITE_DOCS"):
            time.sleep(20)  # the graphs of the docs' picture show a stretch of the stream
        screenshot(browser, "home", tmp_path)

        # Stop it from the Sessions page; the client sees its stream end.
        browser.get(console_url(host, "/#sessions"))
        wait(browser, lambda d: by_css(d, "tr[data-session] button"), "the Stop button")
        screenshot(browser, "sessions", tmp_path)
        by_css(browser, "tr[data-session] button")[0].click()
        browser.switch_to.alert.accept()
        wait(browser, lambda d: "stopped" in text_of(d, "main [role=status]"), "the stop message")
        deadline = time.monotonic() + 10
        while not s.stream.stats.terminated and time.monotonic() < deadline:
            time.sleep(0.1)
        assert s.stream.stats.terminated, "the client's stream did not end"
        assert scenario.mgmt_get(host, "/api/sessions") == []
        assert drain.frames > 30, drain.frames
    finally:
        drain.stop()
        s.stream.stop()
    assert host.running
    watch_the_logs(browser, host, tmp_path)
    # The config file the console edited loads: the restarted host lists the app.
    host.stop()
    host.start()
    assert [a.title for a in client.applist()] == ["Console Pattern"]
    assert config.read_text().startswith(USER_CONFIG)


def test_bad_logins_stale_cookies_and_forged_forms_change_nothing(host, tmp_path):
    link = setup_link(host)
    token = link.split("token=", 1)[1]
    # A wrong set-up token, a short password, a form from another site: no password.
    for form, status in (({"token": "0" * 64, "password": PASSWORD, "confirm": PASSWORD}, 403),
                         ({"token": token, "password": "short", "confirm": "short"}, 400),
                         ({"token": token}, 400)):
        r = api(host, "POST", "/setup", data=form)
        assert r.status_code == status, f"{form}: {r.status_code} {r.text[:300]}"
    r = api(host, "POST", "/setup", data={"token": token, "password": PASSWORD,
                                          "confirm": PASSWORD},
            headers={"Origin": "https://evil.example"})
    assert r.status_code == 403, r.text[:300]
    assert not (host.data_dir / "console-password").exists()
    # An oversized form is refused with 413, from its Content-Length, before it is read. (The
    # body is not sent: the host closes the connection after its answer, and unread bytes
    # would turn the close into a reset that can swallow the answer.)
    head = ("POST /setup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200000\r\n\r\n")
    assert raw_tls(host, head.encode()).startswith(b"HTTP/1.1 413"), "no 413"
    assert not (host.data_dir / "console-password").exists()

    # `punktfunk console-link` prints the same link; the set-up works once.
    out = subprocess.run([str(hostctl.binary_path()), "console-link", "--data-dir",
                          str(host.data_dir), "--port-base", str(host.port_base)],
                         capture_output=True, text=True, timeout=20, env=host.env())
    assert out.returncode == 0 and f"setup?token={token}" in out.stdout, out
    r = api(host, "POST", "/setup", data={"token": token, "password": PASSWORD,
                                          "confirm": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text[:300]
    first = r.cookies["punktfunk_console"]
    assert api(host, "GET", "/api/clients", session=first).json() == []
    r = api(host, "POST", "/setup", data={"token": token, "password": "another password",
                                          "confirm": "another password"})
    assert r.status_code == 403, r.text[:300]

    # A logout without the page's token (missing, short, long or wrong) logs nobody out.
    csrf = re.search(r'csrf-token" content="([0-9a-f]{64})"',
                     api(host, "GET", "/", session=first).text).group(1)
    for forged in ({"next": "/"}, {"csrf": "1"}, {"csrf": csrf + "0"}, {"csrf": "0" * 64}):
        r = api(host, "POST", "/logout", session=first, data=forged)
        assert r.status_code == 403 and "Not logged out" in r.text, (forged, r.status_code)
    assert api(host, "GET", "/api/clients", session=first).status_code == 200

    # Box art that is no PNG or JPEG, or broken, or too large, is refused and stored nowhere.
    # The host runs without --config: its first save creates the default config file.
    default_config = host.log_dir / "xdg-config" / "punktfunk" / "config.toml"
    assert not default_config.exists()
    r = api(host, "POST", "/api/apps", session=first, csrf=csrf,
            json={"name": "Art", "cmd": ["true"]})
    assert r.status_code == 200, r.text
    assert 'name = "Art"' in default_config.read_text()
    art = f"/api/apps/{r.json()['id']}/image"
    for body, message in ((b"GIF89a\x01\x00\x01\x00", "must be a PNG or JPEG"),
                          (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot be read"),
                          (b"\xff\xd8\xff\xe0 no JPEG after all", "cannot be read")):
        r = api(host, "PUT", art, session=first, csrf=csrf, data=body,
                headers={"Content-Type": "image/png"})
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    head = (f"PUT {art} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: punktfunk_console={first}\r\n"
            f"X-CSRF-Token: {csrf}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {9 * 1024 * 1024}\r\n\r\n")
    assert raw_tls(host, head.encode()).startswith(b"HTTP/1.1 413"), "no 413 for 9 MiB"
    assert not (host.data_dir / "boxart").exists()
    assert [a["has_image"] for a in api(host, "GET", "/api/apps", session=first).json()] == [False]

    # Five wrong passwords from one address, and the sixth try waits, right or not.
    for _ in range(5):
        r = api(host, "POST", "/login", data={"password": "wrong password"})
        assert r.status_code == 401 and "Wrong password." in r.text, r.status_code
    r = api(host, "POST", "/login", data={"password": PASSWORD})
    assert r.status_code == 429 and "Too many wrong passwords" in r.text, r.status_code
    assert "console login with a wrong password" in host.log_text()

    # A stale or made-up cookie: the API says to log in, the page sends to the login.
    for stale in ("0" * 64, "not even hex", ""):
        r = api(host, "GET", "/api/status", session=stale)
        assert r.status_code == 401, (stale, r.text)
        r = api(host, "GET", "/", session=stale)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), stale
    r = api(host, "GET", "/", session="0" * 64)
    assert r.headers["location"] == "/login?ended=1"

    # `punktfunk console-password` sets a new one; the browser logged in before is out.
    out = subprocess.run([str(hostctl.binary_path()), "console-password", "--data-dir",
                          str(host.data_dir)], input="a new password\n", capture_output=True,
                         text=True, timeout=20, env=host.env())
    assert out.returncode == 0, out
    assert api(host, "GET", "/api/clients", session=first).status_code == 401
    out = subprocess.run([str(hostctl.binary_path()), "console-password", "--data-dir",
                          str(host.data_dir)], input="short\n", capture_output=True, text=True,
                         timeout=20, env=host.env())
    assert out.returncode != 0 and "too short" in out.stderr, out

    # Unknown pages and API paths; the console's pages carry their security headers.
    r = api(host, "GET", "/nowhere")
    assert r.status_code == 404
    assert api(host, "GET", "/api/nowhere").json() == {"error": "no such route"}
    r = api(host, "GET", "/login")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "same-origin"
    # Garbage on the console's port does not hurt it.
    with socket.create_connection(("127.0.0.1", host.port_base + hostctl.CONSOLE_OFFSET), 5) as raw:
        raw.sendall(b"\x16\x03\x01garbage that is no TLS handshake\r\n\r\n")
        raw.settimeout(5)
        try:
            raw.recv(100)
        except OSError:
            pass
    assert raw_tls(host, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400"), \
        "malformed HTTP gets 400"
    assert api(host, "GET", "/login").status_code == 200
    assert host.running


def test_the_sessions_page_launches_an_app_into_a_running_session(data_dir, port_base, browser,
                                                                   tmp_path):
    """On a host with a base app, the Sessions page puts a catalog app on top in a running
    session; the client's stream goes on and shows it."""
    from clientproc import wait_for_look
    from test_concurrent_sessions import COLOUR_TOLERANCE, TERMINAL_BG
    from test_dedicated_session import start_desktop_host

    host, client = start_desktop_host(data_dir, port_base, tmp_path)
    try:
        browser.get(setup_link(host))
        fill(browser, "#password", PASSWORD)
        fill(browser, "#confirm", PASSWORD)
        submit(browser)
        wait(browser, lambda d: text_of(d, "main h1") == "Home", "the Home page")
        session = scenario.start_session(client, "Desktop", 960, 540, 30)
        try:
            wait_for_look(session.stream, True, None, 0, 10.0)
            browser.get(console_url(host, "/#sessions"))
            pick = 'tr[data-session] select'
            wait(browser, lambda d: by_css(d, pick), "the app to launch")
            from selenium.webdriver.support.ui import Select
            Select(by_css(browser, pick)[0]).select_by_visible_text("Terminal")
            submit(browser, "tr[data-session] form button[type=submit]")
            wait(browser, lambda d: "Terminal is on in session" in text_of(d, "main [role=status]"),
                 "the launch message")
            wait_for_look(session.stream, False, list(TERMINAL_BG), COLOUR_TOLERANCE, 15.0)
            assert [s["app"] for s in scenario.mgmt_get(host, "/api/sessions")] == ["Terminal"]
            assert not session.stream.stats.terminated, "the stream ended with the launch"
        finally:
            session.stream.stop()
    finally:
        host.stop()
