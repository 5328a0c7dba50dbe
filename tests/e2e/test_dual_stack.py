"""End-to-end: the host takes IPv6 clients as well as IPv4 ones (`[host] address_family`).

A client of the Moonlight client library pairs, launches and streams over `::1` while the host
runs with its defaults; another one does the same over 127.0.0.1. With
`address_family = "ipv4"` the host does not answer on `::1`.
"""

from __future__ import annotations

import pytest
import requests

import scenario
from conftest import make_client, pair_with_cli, random_pin, start_paired_host
from gamestream import ClientIdentity, GameStreamClient

pytestmark = pytest.mark.host


def client_at(host, address: str, directory) -> GameStreamClient:
    return GameStreamClient(ClientIdentity.load_or_create(directory), address, host.http_port,
                            host.https_port)


def test_a_client_pairs_and_streams_over_ipv6_and_one_over_ipv4(host, tmp_path):
    """(The client library streams once per process: one stream after the other.)"""
    v6 = client_at(host, "::1", tmp_path / "v6")
    assert pair_with_cli(host, v6, random_pin()) is None
    assert v6.serverinfo(https=True).ok().text("PairStatus") == "1"
    v4 = make_client(host, tmp_path / "v4")
    assert pair_with_cli(host, v4, random_pin()) is None
    for client, w, h, fps, at in ((v6, 1280, 720, 60, "[::1]:"), (v4, 640, 480, 30, "127.0.0.1:")):
        session = scenario.start_session(client, scenario.TEST_PATTERN, w, h, fps)
        try:
            url = session.launch.session_url
            assert url.split("://", 1)[1].startswith(at), url
            report = scenario.check_video(session.stream, w, h, fps, seconds=2.0)
            print(f"[dual-stack] {report.frames} frames over {client.host}")
            [listed] = [s for s in scenario.mgmt_get(host, "/api/sessions") if s["streaming"]]
            scenario.cancel_and_check_gone(session, host)
        finally:
            session.stream.stop()
    assert host.running


def test_an_ipv4_only_host_does_not_answer_on_ipv6(host_factory, data_dir, port_base, tmp_path):
    host, client = start_paired_host(host_factory, data_dir, port_base, tmp_path,
                                     '[host]\naddress_family = "ipv4"\n')
    assert client.serverinfo(https=True).ok().text("PairStatus") == "1"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://[::1]:{host.http_port}/serverinfo", timeout=5)


def test_the_pin_goes_to_the_client_named_by_its_address(host, tmp_path):
    """An older pairing (here at 127.0.0.1, as a TV whose user walked away) does not get the
    PIN meant for the client at ::1 when the PIN names that client's address."""
    import threading
    import time

    def mgmt(method: str, path: str, body=None):
        token = (host.data_dir / "mgmt-token").read_text().strip()
        return requests.request(method, f"http://127.0.0.1:{host.port_base + 1}{path}",
                                json=body, headers={"Authorization": f"Bearer {token}"},
                                timeout=10)

    outcome: dict = {}

    def pair(name: str, client: GameStreamClient, pin: str) -> threading.Thread:
        def run():
            try:
                client.pair(pin, stage1_timeout=60)
                outcome[name] = None
            except Exception as e:  # handed to the test
                outcome[name] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def waiting() -> list[str]:
        return [p["address"] for p in mgmt("GET", "/api/pairings").json()]

    def wait_for(addresses: list[str]) -> None:
        deadline = time.monotonic() + 15
        while waiting() != addresses:
            assert time.monotonic() < deadline, waiting()
            time.sleep(0.1)

    tv = client_at(host, "127.0.0.1", tmp_path / "tv")
    laptop = client_at(host, "::1", tmp_path / "laptop")
    tv_pin, laptop_pin = random_pin(), random_pin()
    tv_thread = pair("tv", tv, tv_pin)
    wait_for(["127.0.0.1"])
    laptop_thread = pair("laptop", laptop, laptop_pin)
    wait_for(["127.0.0.1", "::1"])
    r = mgmt("POST", "/api/pair", {"pin": laptop_pin, "address": "not an address"})
    assert r.status_code == 400 and "not an IP address" in r.json()["error"], r.text
    r = mgmt("POST", "/api/pair", {"pin": laptop_pin, "address": "192.0.2.7"})
    assert r.status_code == 404 and "192.0.2.7" in r.json()["error"], r.text
    r = mgmt("POST", "/api/pair", {"pin": laptop_pin, "address": "::1"})
    assert r.status_code == 200, r.text
    laptop_thread.join(30)
    assert outcome.get("laptop", "still running") is None, outcome
    assert laptop.serverinfo(https=True).ok().text("PairStatus") == "1"
    assert waiting() == ["127.0.0.1"], "the older pairing lost its turn"
    r = mgmt("POST", "/api/pair", {"pin": tv_pin})
    assert r.status_code == 200, r.text
    tv_thread.join(30)
    assert outcome.get("tv", "still running") is None, outcome
    assert len(mgmt("GET", "/api/clients").json()) == 2


def test_a_native_client_pairs_and_streams_over_ipv6(host, tmp_path):
    """punktfunk/1 over `::1`: pairing, then a stream whose data plane is IPv6 too."""
    from test_native import NativeClient, arm_pin

    client = NativeClient(host, tmp_path / "native-v6")
    client.address = f"[::1]:{host.port_base + 30}"
    p = client.pair(arm_pin(host))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    report = client.stream(tmp_path / "report.json", "--mode", "640x480@30", "--seconds", "2",
                           "--quit")
    assert report["frames_decoded"] >= 30 and report["frame_number_gaps"] == 0, report
    started = [line for line in host.log_text().splitlines()
               if "punktfunk/1 stream started" in line]
    assert started and "remote=[::1]:" in started[-1], started
