"""End-to-end: the host advertises itself with mDNS (`_nvstream._tcp`) the way Moonlight
browses for it, and stops when `[host] mdns = false`.

The browser is python-zeroconf, bound to this machine's own interfaces. When multicast does
not work here (no interface with multicast, or the mDNS port cannot be opened) the tests skip
and say why.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.host

# mDNS speaks multicast on the machine's real network interfaces. These tests only run where
# that is wanted: set PUNKTFUNK_E2E_MDNS=1.
if os.environ.get("PUNKTFUNK_E2E_MDNS") != "1":
    print("\n[e2e] SKIP test_discovery: mDNS multicasts on the local network; "
          "set PUNKTFUNK_E2E_MDNS=1 to run it")
    pytestmark = [pytest.mark.host, pytest.mark.skip(
        reason="mDNS multicasts on the local network; set PUNKTFUNK_E2E_MDNS=1 to run it")]

zeroconf = pytest.importorskip("zeroconf", reason="python-zeroconf is not installed")
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf  # noqa: E402

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


def local_browser() -> Zeroconf:
    """A zeroconf instance on this machine's own IPv4 interfaces, or a skip naming why not."""
    try:
        return Zeroconf(interfaces=zeroconf.InterfaceChoice.All,
                        ip_version=zeroconf.IPVersion.V4Only)
    except OSError as e:
        reason = f"multicast DNS is unavailable here ({e}); discovery cannot be tested"
        print(f"\n[e2e] SKIP: {reason}")
        pytest.skip(reason)


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


def multicast_self_check(zc: Zeroconf) -> str | None:
    """Why multicast cannot loop back here, or None when an advertisement of our own is seen
    by a second browser."""
    probe = f"punktfunk-probe-{secrets.token_hex(4)}"
    info = zeroconf.ServiceInfo(SERVICE.replace("_nvstream", "_pfprobe"),
                                f"{probe}._pfprobe._tcp.local.", port=9,
                                addresses=[socket.inet_aton("127.0.0.1")])
    other = local_browser()
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


def test_host_is_listed_with_its_name_and_http_port(host_factory, data_dir, port_base, tmp_path):
    name = f"punktfunk e2e {secrets.token_hex(3)}"
    full = f"{name}.{SERVICE}"
    zc = local_browser()
    try:
        listener = Collector()
        ServiceBrowser(zc, SERVICE, listener)
        host = host_factory(data_dir, port_base, config=config_with(tmp_path, name, True))
        host.mdns = True
        host.start()
        if not wait_for_instance(zc, listener, full, BROWSE_TIMEOUT):
            why = multicast_self_check(zc)
            if why is not None:
                print(f"\n[e2e] SKIP: {why}")
                pytest.skip(why)
            raise AssertionError(f"{full!r} was not advertised within {BROWSE_TIMEOUT:.0f} s; "
                                 f"seen: {sorted(listener.names)}\n{host.log_text()}")
        info = zc.get_service_info(SERVICE, full, timeout=5000)
        assert info is not None, f"{full!r} was listed but does not resolve"
        assert info.port == host.http_port, (info.port, host.http_port)
        addresses = info.parsed_addresses()
        assert addresses, f"the record for {full!r} carries no address"
        ours = {a for a in addresses if a.startswith("127.") or a in local_addresses()}
        assert ours, f"none of {addresses} is an address of this machine"

        # a clean stop withdraws the record (goodbye packet)
        host.stop()
        deadline = time.monotonic() + 5
        while full in listener.names and time.monotonic() < deadline:
            time.sleep(0.1)
        assert full not in listener.names, "the record outlived the host"
    finally:
        zc.close()


def test_mdns_false_advertises_nothing(host_factory, data_dir, port_base, tmp_path):
    name = f"punktfunk quiet {secrets.token_hex(3)}"
    full = f"{name}.{SERVICE}"
    zc = local_browser()
    try:
        why = multicast_self_check(zc)
        if why is not None:
            print(f"\n[e2e] SKIP: {why}")
            pytest.skip(why)
        listener = Collector()
        ServiceBrowser(zc, SERVICE, listener)
        host = host_factory(data_dir, port_base, config=config_with(tmp_path, name, False))
        host.mdns = True  # no --no-mdns: the config alone must turn it off
        host.start()
        assert not wait_for_instance(zc, listener, full, 4.0), \
            f"{full!r} was advertised although host.mdns = false"
        assert "mdns = false" in host.log_text(), host.log_text()
    finally:
        zc.close()


def local_addresses() -> set[str]:
    out = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            out.add(info[4][0])
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            import fcntl
            import struct
            for _, ifname in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(s.fileno(), 0x8915,  # SIOCGIFADDR
                                         struct.pack("256s", ifname.encode()[:15]))
                    out.add(socket.inet_ntoa(packed[20:24]))
                except OSError:
                    pass
    except OSError:
        pass
    return out
