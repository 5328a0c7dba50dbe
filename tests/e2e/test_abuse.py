"""Abuse under a live stream: while a client streams, hundreds of half-open connections sit on
the HTTP, HTTPS and RTSP ports, oversized and malformed requests arrive, and random and
truncated datagrams hit the video, control and audio ports. The stream goes on without a frame
gap, and another client pairs and streams meanwhile."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time

import pytest
import requests

import scenario
from clientproc import ClientProcess
from conftest import make_client, pair_with_cli, random_pin, start_paired_host

pytestmark = pytest.mark.host

HALF_OPEN = 300  # per port
DATAGRAMS = 3000  # per port


ABUSER = "127.0.0.2"  # another address than the clients' (127.0.0.1)


def half_open(port: int, first_bytes: bytes, source: str = ABUSER) -> socket.socket:
    """A connection from `source` that sends the start of a request and then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    if first_bytes:
        s.sendall(first_bytes)
    return s


def still_open(s: socket.socket) -> bool:
    """Whether the host has not closed the connection."""
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


@pytest.mark.slow
def test_a_stream_survives_abuse_and_another_client_pairs_and_streams(
        host_factory, data_dir, port_base, tmp_path):
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30)
    held: list[socket.socket] = []
    rng = random.Random(1)
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        open_after: dict[str, int] = {}
        for name, port, start in [
                ("HTTP", host.http_port, b"GET /serverinfo HTTP/1.1\r\nHost: x"),
                ("HTTPS", host.https_port, b""),  # TCP only, no TLS handshake
                ("RTSP", host.rtsp_port, b"OPTIONS rtsp://127.0.0.1 RTSP/1.0\r\n")]:
            conns = [half_open(port, start) for _ in range(HALF_OPEN)]
            held += conns
            # The host takes them from its queue and closes what is over the limit; on a busy
            # machine that takes a moment.
            deadline = time.monotonic() + 15
            while True:
                open_after[name] = sum(still_open(c) for c in conns)
                if open_after[name] <= 64 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        # One address gets 64 connections per port, the rest are closed at once (RTSP closes
        # them all: no launch is waiting).
        assert all(1 <= open_after[p] <= 64 for p in ("HTTP", "HTTPS")), open_after
        assert open_after["RTSP"] <= 64, open_after
        # Oversized and malformed requests get an answer or a closed connection, nothing more.
        big = requests.get(f"http://127.0.0.1:{host.http_port}/serverinfo",
                           headers={"X-Big": "a" * 100_000}, timeout=15)
        assert big.status_code in (400, 431), big.status_code
        for garbage in (b"\x00" * 5000, b"GET / HTTP/9.9\r\n\r\n", os.urandom(20000)):
            with socket.create_connection(("127.0.0.1", host.rtsp_port), timeout=15) as s:
                try:
                    s.sendall(garbage)
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(4096):
                        pass
                except OSError:
                    # Closed before it read everything (reset, or gone before the shutdown):
                    # as good as a close.
                    pass
        # Random and truncated datagrams on the media and control ports.
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 0
        for port in (host.video_port, host.control_port, host.audio_port):
            for _ in range(DATAGRAMS):
                size = rng.choice([0, 1, 4, 16, 19, 20, 21, rng.randrange(1, 1400)])
                udp.sendto(os.urandom(size), ("127.0.0.1", port))
                sent += 1
        udp.close()
        # The stream goes on, frame after frame.
        video = scenario.check_video(session.stream, 640, 480, 30, seconds=2.0)
        # Another client pairs and streams while the connections are still held.
        # (moonlight-common-c holds one connection per process: the other client streams from
        # a process of its own.)
        other = make_client(host, tmp_path / "other")
        assert pair_with_cli(host, other, random_pin()) is None
        second = ClientProcess("other", tmp_path / "other", host.http_port, host.https_port,
                               other.server_cert_pem)
        try:
            second.call("start", scenario.TEST_PATTERN, 640, 480, 30)
            second.call("check_pattern", 640, 480, 30, 1.0)
        finally:
            second.close()
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        print(f"[e2e] abuse: {len(held)} half-open connections ({open_after} kept open by the "
              f"host), {sent} datagrams; "
              f"{video.frames} frames decoded in {video.span_s:.1f} s meanwhile, no gap")
    finally:
        for s in held:
            s.close()
        session.stream.stop()
    assert host.running, "the host died"


@pytest.mark.slow
def test_out_of_file_descriptors_the_host_waits_keeps_streaming_and_serves_again(
        host_factory, data_dir, port_base, tmp_path):
    """The host runs out of file descriptors (its limit lowered to what it has open plus a few)
    while connections pour in: it logs that it cannot accept and retries after a pause instead
    of spinning, the stream goes on, and once the connections are gone it answers again."""
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30)
    held: list[socket.socket] = []
    pid = host.proc.pid
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        limit = open_fds + 20
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
        for _ in range(100):
            held.append(half_open(host.http_port, b"GET /serverinfo HTTP/1.1\r\n"))
        deadline = time.monotonic() + 10
        while "cannot accept connections" not in host.log_text():
            assert time.monotonic() < deadline, "no log line about the failed accepts"
            time.sleep(0.1)
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        for s in held:
            s.close()
        held.clear()
        # Connections it could not accept time out on their own; then it answers again.
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{host.http_port}/serverinfo", timeout=5)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the host does not answer again"
            time.sleep(0.5)
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
    finally:
        for s in held:
            s.close()
        session.stream.stop()
    assert host.running, "the host died"


FLOOD_ADDRESSES = 80
FLOOD_PER_ADDRESS = 16  # 1280 in all: more than the 1024 a port serves at once


@pytest.mark.slow
def test_a_flood_from_many_addresses_delays_a_new_client_by_at_most_the_request_deadline(
        host_factory, data_dir, port_base, tmp_path):
    """Half-open connections from 80 addresses (16 each, under the per-address limit) fill the
    HTTP port past its 1024 connections while a client streams. The stream goes on without a
    gap; a new request waits in the kernel's queue until the host drops the idle connections
    at their 10 s request deadline, then gets its answer."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    host, owner = start_paired_host(host_factory, data_dir, port_base, tmp_path, "")
    session = scenario.start_session(owner, scenario.TEST_PATTERN, 640, 480, 30)
    held: list[socket.socket] = []
    try:
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        flood_start = time.monotonic()
        for a in range(FLOOD_ADDRESSES):
            source = f"127.0.1.{a + 1}"
            held += [half_open(host.http_port, b"GET /serverinfo HTTP/1.1\r\nHost: x", source)
                     for _ in range(FLOOD_PER_ADDRESS)]
        # The stream goes on while the port is full.
        video = scenario.check_video(session.stream, 640, 480, 30, seconds=2.0)
        sockets = sum(1 for fd in os.listdir(f"/proc/{host.proc.pid}/fd")
                      if os.readlink(f"/proc/{host.proc.pid}/fd/{fd}").startswith("socket:"))
        # A new client's request, from the clients' address, answered once the flood's
        # connections reach their deadline.
        asked = time.monotonic()
        r = requests.get(f"http://127.0.0.1:{host.http_port}/serverinfo", timeout=30)
        waited = time.monotonic() - asked
        assert r.status_code == 200, r.status_code
        assert waited < 10 + 5, f"the request waited {waited:.1f} s"
        scenario.check_video(session.stream, 640, 480, 30, seconds=1.0)
        assert sockets < 1024 + 64, f"the host held {sockets} sockets"
        print(f"[e2e] flood: {len(held)} half-open connections from {FLOOD_ADDRESSES} addresses "
              f"in {asked - flood_start:.1f} s; the host held {sockets} sockets; "
              f"{video.frames} frames meanwhile, no gap; a new request waited {waited:.1f} s")
    finally:
        for s in held:
            s.close()
        session.stream.stop()
    assert host.running, "the host died"
