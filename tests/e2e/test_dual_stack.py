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
