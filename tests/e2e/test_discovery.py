"""End-to-end: the host advertises itself with mDNS (`_nvstream._tcp`) the way Moonlight
browses for it, and stops when `[host] mdns = false`.

The host and the browser (python-zeroconf) run in two network namespaces the test creates,
joined by a veth pair: the browser sees exactly what a client on the host's link would, and
multicast never reaches the machine's real interfaces. Where network namespaces cannot be
created (no `ip`, no privilege), the tests skip and say why.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.host

zeroconf = pytest.importorskip("zeroconf", reason="python-zeroconf is not installed")
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf  # noqa: E402

# The two ends of the link, each in its own namespace; the addresses exist only there.
HOST_ADDR, CLIENT_ADDR = "10.233.0.1", "10.233.0.2"
CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Link:
    """Two namespaces, "host" and "client", joined by a veth pair. `enter(side)` moves this
    thread into one: sockets it opens and processes it starts live there."""

    def __init__(self, tag: str):
        self.names = {"host": f"pfmdnsh{tag}", "client": f"pfmdnsc{tag}"}

    def create(self) -> None:
        for ns in self.names.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        h, c = self.names["host"], self.names["client"]
        _ip("link", "add", "pfmdnsh", "netns", h, "type", "veth", "peer", "name", "pfmdnsc",
            "netns", c)
        for ns, dev, addr in [(h, "pfmdnsh", HOST_ADDR), (c, "pfmdnsc", CLIENT_ADDR)]:
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")

    def enter(self, side: str) -> None:
        fd = os.open(f"/var/run/netns/{self.names[side]}", os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def delete(self) -> None:
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def link():
    """A host and a client namespace joined by a veth pair; the test starts in the client's.
    The machine's own network is never touched."""
    if shutil.which("ip") is None:
        reason = "`ip` is not installed (apt-get install iproute2); no network namespace"
        print(f"\n[e2e] SKIP: {reason}")
        pytest.skip(reason)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    link = Link(secrets.token_hex(3))
    try:
        try:
            link.create()
        except (RuntimeError, OSError) as e:
            reason = f"cannot create network namespaces here ({e})"
            print(f"\n[e2e] SKIP: {reason}")
            pytest.skip(reason)
        link.enter("client")
        yield link
    finally:
        _setns(original)
        os.close(original)
        link.delete()


SERVICE = "_nvstream._tcp.local."
BROWSE_TIMEOUT = 15.0


class Collector(ServiceListener):
    """Remembers every instance name seen and resolves the ones the test asks about."""

    def __init__(self):
        self.names: set[str] = set()
        self.changed = threading.Event()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)
        self.changed.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)
        self.changed.set()

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.discard(name)
        self.changed.set()


def browser_at(addr: str) -> Zeroconf:
    """A zeroconf instance on the interface with `addr` (of the namespace this thread is in)."""
    return Zeroconf(interfaces=[addr], ip_version=zeroconf.IPVersion.V4Only)


def config_with(tmp_path: Path, name: str, mdns: bool) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(f'[host]\nname = "{name}"\nmdns = {"true" if mdns else "false"}\n')
    return p


def wait_for_instance(zc: Zeroconf, listener: Collector, full: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if full in listener.names:
            return True
        listener.changed.wait(0.2)
        listener.changed.clear()
    return full in listener.names


def multicast_self_check(zc: Zeroconf, link: Link) -> str | None:
    """Why multicast does not cross the link, or None when a record registered on the host's
    side is seen by `zc` on the client's."""
    probe = f"punktfunk-probe-{secrets.token_hex(4)}"
    info = zeroconf.ServiceInfo(SERVICE.replace("_nvstream", "_pfprobe"),
                                f"{probe}._pfprobe._tcp.local.", port=9,
                                addresses=[socket.inet_aton(HOST_ADDR)])
    link.enter("host")
    try:
        other = browser_at(HOST_ADDR)
    finally:
        link.enter("client")
    try:
        other.register_service(info, allow_name_change=True)
        got = zc.get_service_info(info.type, info.name, timeout=5000)
        if got is None:
            return "a record registered by a second local zeroconf instance was not seen"
        return None
    except Exception as e:  # noqa: BLE001 - any failure here means no usable multicast
        return f"multicast self-check failed: {e!r}"
    finally:
        other.close()


def start_in_host_namespace(host, link: Link) -> None:
    link.enter("host")
    try:
        host.start()
    finally:
        link.enter("client")


def test_host_is_listed_with_its_name_and_http_port(link, host_factory, data_dir, port_base,
                                                     tmp_path):
    name = f"punktfunk e2e {secrets.token_hex(3)}"
    full = f"{name}.{SERVICE}"
    zc = browser_at(CLIENT_ADDR)
    try:
        listener = Collector()
        ServiceBrowser(zc, SERVICE, listener)
        host = host_factory(data_dir, port_base, config=config_with(tmp_path, name, True))
        host.mdns = True
        start_in_host_namespace(host, link)
        if not wait_for_instance(zc, listener, full, BROWSE_TIMEOUT):
            raise AssertionError(f"{full!r} was not advertised within {BROWSE_TIMEOUT:.0f} s; "
                                 f"seen: {sorted(listener.names)}; multicast self-check: "
                                 f"{multicast_self_check(zc, link) or 'fine'}\n{host.log_text()}")
        info = zc.get_service_info(SERVICE, full, timeout=5000)
        assert info is not None, f"{full!r} was listed but does not resolve"
        assert info.port == host.http_port, (info.port, host.http_port)
        addresses = info.parsed_addresses()
        assert addresses, f"the record for {full!r} carries no address"
        assert addresses == [HOST_ADDR], \
            f"the record carries {addresses}, not the host's address on the link ({HOST_ADDR})"

        # a clean stop withdraws the record (goodbye packet)
        host.stop()
        deadline = time.monotonic() + 5
        while full in listener.names and time.monotonic() < deadline:
            time.sleep(0.1)
        assert full not in listener.names, "the record outlived the host"
    finally:
        zc.close()


def test_mdns_false_advertises_nothing(link, host_factory, data_dir, port_base, tmp_path):
    name = f"punktfunk quiet {secrets.token_hex(3)}"
    full = f"{name}.{SERVICE}"
    zc = browser_at(CLIENT_ADDR)
    try:
        # Only meaningful where an advertisement would be seen.
        why = multicast_self_check(zc, link)
        assert why is None, why
        listener = Collector()
        ServiceBrowser(zc, SERVICE, listener)
        host = host_factory(data_dir, port_base, config=config_with(tmp_path, name, False))
        host.mdns = True  # no --no-mdns: the config alone must turn it off
        start_in_host_namespace(host, link)
        assert not wait_for_instance(zc, listener, full, 4.0), \
            f"{full!r} was advertised although host.mdns = false"
        assert "mdns = false" in host.log_text(), host.log_text()
    finally:
        zc.close()



NATIVE_SERVICE = "_punktfunk._udp.local."


def test_punktfunk1_is_listed_with_its_port_and_certificate_fingerprint(link, host_factory,
                                                                         data_dir, port_base,
                                                                         tmp_path):
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    name = f"punktfunk native {secrets.token_hex(3)}"
    full = f"{name}.{NATIVE_SERVICE}"
    zc = browser_at(CLIENT_ADDR)
    try:
        listener = Collector()
        ServiceBrowser(zc, NATIVE_SERVICE, listener)
        host = host_factory(data_dir, port_base, config=config_with(tmp_path, name, True))
        host.mdns = True
        start_in_host_namespace(host, link)
        if not wait_for_instance(zc, listener, full, BROWSE_TIMEOUT):
            raise AssertionError(f"{full!r} was not advertised within {BROWSE_TIMEOUT:.0f} s; "
                                 f"seen: {sorted(listener.names)}\n{host.log_text()}")
        info = zc.get_service_info(NATIVE_SERVICE, full, timeout=5000)
        assert info is not None, f"{full!r} was listed but does not resolve"
        assert info.port == host.port_base + 30, (info.port, host.port_base)
        assert info.parsed_addresses() == [HOST_ADDR], info.parsed_addresses()
        cert = x509.load_pem_x509_certificate((data_dir / "identity" / "cert.pem").read_bytes())
        fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        assert txt["proto"] == "punktfunk/1", txt
        assert txt["fp"] == fingerprint, (txt, fingerprint)
        state = json.loads((data_dir / "state.json").read_text())
        assert txt["id"] == state["uniqueid"], txt
    finally:
        zc.close()
