"""End-to-end: the management API against its OpenAPI document (docs/management-api.yaml).

Every route refuses a request without the right bearer token; the host serves the document
itself; and schemathesis, generating requests from the document, finds no server error and no
reply that contradicts the document.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import hostctl

pytestmark = pytest.mark.host

DOC = hostctl.REPO / "docs" / "management-api.yaml"
ROUTES = [("POST", "/api/pair"), ("GET", "/api/clients"), ("DELETE", "/api/clients/1"),
          ("PATCH", "/api/clients/1"),
          ("GET", "/api/status"), ("GET", "/api/sessions"), ("DELETE", "/api/sessions/1"),
          ("GET", "/api/sessions/1/stats"), ("GET", "/api/pairings"),
          ("GET", "/api/logs"), ("GET", "/api/logs/host"), ("GET", "/api/logs/host/events"),
          ("GET", "/api/settings"), ("PUT", "/api/settings/video.fec_percent"),
          ("DELETE", "/api/settings/video.fec_percent"),
          ("GET", "/api/apps"), ("POST", "/api/apps"), ("PUT", "/api/apps/1"),
          ("DELETE", "/api/apps/1"), ("GET", "/api/apps/1/image"), ("PUT", "/api/apps/1/image"),
          ("GET", "/api/openapi.yaml")]


def mgmt_url(host: hostctl.Host, path: str) -> str:
    return f"http://127.0.0.1:{host.port_base + hostctl.MGMT_OFFSET}{path}"


def token(host: hostctl.Host) -> str:
    return (host.data_dir / "mgmt-token").read_text().strip()


def call(host: hostctl.Host, method: str, path: str, auth: str | None) -> requests.Response:
    headers = {"Connection": "close"}
    if auth is not None:
        headers["Authorization"] = auth
    body = b'{"pin": "1234"}' if method == "POST" else None
    # An event stream does not end: only its head is read.
    r = requests.request(method, mgmt_url(host, path), headers=headers, data=body, timeout=10,
                         stream=True)
    if r.status_code == 200 and path.endswith("/events"):
        r.close()
    return r


def test_every_route_rejects_a_missing_or_wrong_token(host):
    right = token(host)
    wrong = [None, "", "Bearer", f"Bearer {right[:-1]}", f"Bearer {right}0",
             f"Basic {right}", f"Bearer {right.upper()}", "Bearer " + "0" * len(right)]
    for method, path in ROUTES + [("GET", "/api/does-not-exist"), ("PUT", "/api/status")]:
        for auth in wrong:
            r = call(host, method, path, auth)
            assert r.status_code == 401, f"{method} {path} with {auth!r}: {r.status_code} {r.text}"
            assert r.json() == {"error": "missing or wrong token"}, r.text
        # and the right token gets past the check (whatever the route then answers), to a
        # route the host serves
        r = call(host, method, path, f"Bearer {right}")
        assert r.status_code != 401, f"{method} {path} refused the right token: {r.text}"
        if (method, path) in ROUTES and not path.endswith("/events"):
            assert r.status_code != 405 and r.text != '{"error":"no such route"}\n', \
                f"{method} {path} is not served: {r.status_code} {r.text}"


def test_the_host_serves_its_openapi_document(host):
    r = call(host, "GET", "/api/openapi.yaml", f"Bearer {token(host)}")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/yaml"), r.headers
    assert r.content == DOC.read_bytes(), "the served document differs from docs/"


def test_routes_answer_as_documented(host):
    auth = f"Bearer {token(host)}"
    status = call(host, "GET", "/api/status", auth)
    assert status.status_code == 200
    assert status.json()["ports"]["http"] == host.http_port, status.text
    assert call(host, "GET", "/api/clients", auth).json() == []
    r = call(host, "POST", "/api/pair", auth)
    assert r.status_code == 404 and "no pairing is pending" in r.json()["error"], r.text
    r = requests.post(mgmt_url(host, "/api/pair"), data=b'{"pin": "12a4"}',
                      headers={"Authorization": auth}, timeout=10)
    assert r.status_code == 400 and "four digits" in r.json()["error"], r.text
    r = call(host, "DELETE", "/api/clients/42", auth)
    assert r.status_code == 404 and "42" in r.json()["error"], r.text


def schemathesis_cli() -> list[str]:
    exe = Path(sys.executable).parent / "schemathesis"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("schemathesis")
    if found:
        return [found]
    reason = "schemathesis is not installed (pip install -r tests/e2e/requirements.txt)"
    print(f"\n[e2e] SKIP: {reason}")
    pytest.skip(reason)


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(host, tmp_path):
    cmd = schemathesis_cli() + [
        "--config-file", str(Path(__file__).parent / "schemathesis.toml"),
        "run", str(DOC),
        "--url", mgmt_url(host, ""),
        "--header", f"Authorization: Bearer {token(host)}",
        "--checks", "all",
        # An event stream stays open until the client closes it: no request of it would end.
        "--exclude-operation-id", "followLog",
        "--max-examples", "30",
        "--max-time", "60",
        "--request-timeout", "5",
        "--seed", "1",
        "--no-color",
        "--report-dir", str(tmp_path / "schemathesis"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = r.stdout + r.stderr
    print(out[-3000:])
    assert r.returncode == 0, f"schemathesis found problems (exit {r.returncode}):\n{out[-12000:]}"
    assert "server error" not in out.lower() or "0 server error" in out.lower(), out[-6000:]
    assert host.running, f"the host died under schemathesis:\n{host.log_text()}"


def test_sighup_reloads_the_config_and_a_broken_file_changes_nothing(host_factory, data_dir,
                                                                      port_base, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[video]\nfec_percent = 20\n\n[[apps]]\nname = "One"\ncmd = ["true"]\n')
    host = host_factory(data_dir, port_base, config=config).start()
    auth = f"Bearer {token(host)}"

    def apps() -> list[str]:
        return [a["name"] for a in call(host, "GET", "/api/apps", auth).json()]

    def hangup_and_wait(line: str) -> None:
        before = host.log_text().count(line)
        host.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while host.log_text().count(line) == before:
            assert time.monotonic() < deadline, f"no {line!r} in the log:\n{host.log_text()}"
            time.sleep(0.1)

    assert apps() == ["One"]
    config.write_text(config.read_text() + '\n[[apps]]\nname = "Two"\ncmd = ["true"]\n')
    hangup_and_wait("SIGHUP: reloaded the config file")
    assert apps() == ["One", "Two"]
    config.write_text('[video]\nfec_percent = 900\n')
    hangup_and_wait("SIGHUP: the config file was not reloaded")
    refusal = [line for line in host.log_text().splitlines() if "not reloaded" in line]
    assert "integer `900`" in refusal[-1], refusal
    assert apps() == ["One", "Two"], "a broken file changed the catalog"
    assert host.running
