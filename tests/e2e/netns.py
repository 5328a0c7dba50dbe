"""Two network namespaces joined by a veth pair, with packet loss on one side's egress.

The host runs in one namespace and the client in the other, so that loss applies to the
stream's real path (host -> client over an Ethernet link) and to nothing else on the machine.
The addresses (a /30 in 10.231.0.0/16) exist only inside the two namespaces.

Loss comes from an nftables rule on the host-side veth's egress hook that drops each packet
with probability p (`numgen random`): the same effect as `tc qdisc ... netem loss p%` on that
device, and it also works on kernels built without sch_netem.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass

HOST_ADDR = "10.231.0.1"
CLIENT_ADDR = "10.231.0.2"
PREFIX = 30


def run(*cmd: str, input: str | None = None) -> str:
    p = subprocess.run(list(cmd), input=input, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def unavailable() -> str | None:
    """Why namespaces with loss cannot be set up here, or None."""
    for prog in ("ip", "nft"):
        if shutil.which(prog) is None:
            return f"`{prog}` is not installed (apt-get install iproute2 nftables)"
    probe = f"pfprobe{secrets.token_hex(3)}"
    try:
        run("ip", "netns", "add", probe)
    except (RuntimeError, OSError) as e:
        return f"cannot create a network namespace: {e}"
    try:
        run("ip", "netns", "del", probe)
    except RuntimeError:
        pass
    return None


@dataclass
class LossyLink:
    host_ns: str
    client_ns: str
    host_if: str
    client_if: str
    host_addr: str = HOST_ADDR
    client_addr: str = CLIENT_ADDR

    @classmethod
    def create(cls) -> "LossyLink":
        tag = secrets.token_hex(3)
        link = cls(f"pfh{tag}", f"pfc{tag}", f"pfh{tag}", f"pfc{tag}")
        try:
            link._setup()
        except Exception:
            link.delete()
            raise
        return link

    def _setup(self) -> None:
        run("ip", "netns", "add", self.host_ns)
        run("ip", "netns", "add", self.client_ns)
        run("ip", "link", "add", self.host_if, "netns", self.host_ns, "type", "veth",
            "peer", "name", self.client_if, "netns", self.client_ns)
        for ns, dev, addr in [(self.host_ns, self.host_if, self.host_addr),
                              (self.client_ns, self.client_if, self.client_addr)]:
            run("ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "netns", "exec", self.host_ns, "nft", "-f", "-", input=f"""
table netdev punktfunk_loss {{
    chain egress {{
        type filter hook egress device "{self.host_if}" priority 0; policy accept;
    }}
}}
""")

    def set_loss(self, percent: float) -> None:
        """Drop `percent` % of the packets leaving the host's side, chosen at random (0: none)."""
        run("ip", "netns", "exec", self.host_ns, "nft", "flush", "chain", "netdev",
            "punktfunk_loss", "egress")
        per_million = round(percent * 10_000)
        if per_million > 0:
            run("ip", "netns", "exec", self.host_ns, "nft", "add", "rule", "netdev",
                "punktfunk_loss", "egress", "numgen", "random", "mod", "1000000", "<",
                str(per_million), "counter", "drop")

    def dropped(self) -> int:
        """Packets the current loss rule has dropped so far (set_loss starts a new count)."""
        out = run("ip", "netns", "exec", self.host_ns, "nft", "list", "chain", "netdev",
                  "punktfunk_loss", "egress")
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def host_tx_packets(self) -> int:
        """Packets the host side has sent onto the link (dropped ones not counted)."""
        out = run("ip", "-n", self.host_ns, "-s", "link", "show", self.host_if)
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("TX:"):
                return int(lines[i + 1].split()[1])
        raise RuntimeError(f"no TX counters in {out!r}")

    def in_client_ns(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.client_ns, *cmd]

    def delete(self) -> None:
        """Removes both namespaces (and with them the veth pair and the nftables table)."""
        for ns in (self.host_ns, self.client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
