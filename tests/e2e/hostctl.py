"""Starting, stopping and inspecting a `punktfunk serve` process for the end-to-end tests."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gamestream import wait_for_serverinfo

REPO = Path(__file__).resolve().parents[2]
# Where the host keeps its persistent state (identity, paired clients) inside --data-dir.
STATE_FILE_NAME = "state.json"
READY_TIMEOUT = 30.0
STOP_GRACE = 5.0

# Port offsets from the base (HTTP) port.
HTTPS_OFFSET, MGMT_OFFSET, CONSOLE_OFFSET = -5, 1, 2
VIDEO_OFFSET, CONTROL_OFFSET, AUDIO_OFFSET, RTSP_OFFSET = 9, 10, 11, 21
TCP_OFFSETS = (HTTPS_OFFSET, 0, MGMT_OFFSET, CONSOLE_OFFSET, RTSP_OFFSET)
UDP_OFFSETS = (VIDEO_OFFSET, CONTROL_OFFSET, AUDIO_OFFSET)


def binary_path() -> Path:
    return Path(os.environ.get("PUNKTFUNK_BIN", REPO / "target" / "debug" / "punktfunk"))


_availability: tuple[bool, str] | None = None


def host_availability() -> tuple[bool, str]:
    """(usable, reason): whether the binary exists and implements `serve`."""
    global _availability
    if _availability is not None:
        return _availability
    b = binary_path()
    if not b.is_file() or not os.access(b, os.X_OK):
        _availability = (False, f"punktfunk binary not found at {b} "
                                f"(build it with `cargo build`, or set PUNKTFUNK_BIN)")
        return _availability
    try:
        p = subprocess.run([str(b), "serve", "--help"], capture_output=True, text=True,
                           timeout=20)
        out = p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        _availability = (False, f"`{b} serve --help` failed: {e}")
        return _availability
    if p.returncode != 0 or not re.search(r"data-dir|port-base", out):
        _availability = (False, f"{b} has no `serve` subcommand yet "
                                f"(`serve --help` exited {p.returncode}: {out.strip()[:200]!r})")
        return _availability
    _availability = (True, "")
    return _availability


def ports_free(base: int) -> bool:
    """Whether the host's ports are free on IPv4 and IPv6 (it listens on both)."""
    for family, wildcard in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind, offsets in ((socket.SOCK_STREAM, TCP_OFFSETS), (socket.SOCK_DGRAM, UDP_OFFSETS)):
            for off in offsets:
                with socket.socket(family, kind) as s:
                    if family == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    try:
                        s.bind((wildcard, base + off))
                    except OSError:
                        return False
    return True


_used_bases: set[int] = set()


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes outgoing connections' local ports from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_base() -> int:
    """A base port whose whole port family (base-5 .. base+30) is free and lies below the
    kernel's ephemeral range, where no outgoing connection can take one of its ports between
    this check and the host's start."""
    rng = random.Random()
    low, _ = ephemeral_ports()
    top = max(low, 12000) - 32
    for _ in range(500):
        base = rng.randrange(10000, top)
        if any(abs(base - u) < 32 for u in _used_bases):
            continue
        if ports_free(base):
            _used_bases.add(base)
            return base
    raise RuntimeError("no free port base found")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses
    return int(stat[stat.rindex(")") + 2:].split()[1])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pp = _ppid(int(entry))
            if pp is not None:
                children.setdefault(pp, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class HostError(RuntimeError):
    pass


_log_serial = 0

# every Host started during the current test, so that failures can show their logs
STARTED: list["Host"] = []


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Host:
    """One `punktfunk serve` process with its own data dir and port family."""

    def __init__(self, data_dir: Path, port_base: int, config: Path | None = None,
                 log_dir: Path | None = None, env: dict | None = None,
                 netns: str | None = None):
        """`netns`: run the host, and the CLI talking to it, inside that network namespace."""
        self.netns = netns
        self.data_dir = Path(data_dir)
        self.port_base = port_base
        self.config = config
        self.log_dir = Path(log_dir or self.data_dir.parent)
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._known_children: dict[int, str] = {}
        self.runs = 0
        self.log_paths: list[Path] = []
        # `--renderer` for the host: $PUNKTFUNK_E2E_RENDERER runs a whole test file on one
        # renderer; None leaves it to the config.
        self.renderer: str | None = os.environ.get("PUNKTFUNK_E2E_RENDERER") or None
        STARTED.append(self)

    # ports
    @property
    def http_port(self) -> int:
        return self.port_base

    @property
    def https_port(self) -> int:
        return self.port_base + HTTPS_OFFSET

    @property
    def rtsp_port(self) -> int:
        return self.port_base + RTSP_OFFSET

    @property
    def control_port(self) -> int:
        return self.port_base + CONTROL_OFFSET

    @property
    def video_port(self) -> int:
        return self.port_base + VIDEO_OFFSET

    @property
    def audio_port(self) -> int:
        return self.port_base + AUDIO_OFFSET

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE_NAME

    def app_log(self, app_name: str) -> Path:
        return self.data_dir / "logs" / f"app-{slug(app_name)}.log"

    def env(self) -> dict:
        env = dict(os.environ)
        for k in ("WAYLAND_DISPLAY", "WAYLAND_SOCKET", "DISPLAY"):
            env.pop(k, None)
        if not env.get("XDG_RUNTIME_DIR") or not Path(env["XDG_RUNTIME_DIR"]).is_dir():
            xdg = self.log_dir / "xdg-runtime"
            xdg.mkdir(mode=0o700, parents=True, exist_ok=True)
            env["XDG_RUNTIME_DIR"] = str(xdg)
        # The host reads $XDG_CONFIG_HOME/punktfunk/config.toml without --config: one of its
        # own, so that a config of the user running the tests never leaks in.
        env["XDG_CONFIG_HOME"] = str(self.log_dir / "xdg-config")
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        return env

    def in_netns(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def command(self) -> list[str]:
        cmd = [str(binary_path()), "serve", "--data-dir", str(self.data_dir),
               "--port-base", str(self.port_base)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        if self.renderer is not None:
            cmd += ["--renderer", self.renderer]
        if not getattr(self, "mdns", False):
            # mDNS multicasts on the machine's network; only the discovery tests want it.
            cmd.append("--no-mdns")
        return self.in_netns(cmd)

    def spawn(self) -> subprocess.Popen:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        global _log_serial
        _log_serial += 1
        self.log_path = self.log_dir / f"serve-{self.port_base}-{_log_serial:03d}.log"
        self.log_paths.append(self.log_path)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=str(self.log_dir))
        log.close()
        return self.proc

    def start(self, timeout: float = READY_TIMEOUT) -> "Host":
        """Start `serve` and wait until it answers. A host that never ran before and could not
        bind a port (something else took one since `free_port_base` checked) moves to another
        free port family and tries again, up to three times."""
        for attempt in range(3):
            proc = self.spawn()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if self.answers(0.5):
                    return self
            else:
                raise HostError(f"punktfunk serve did not answer /serverinfo on port "
                                f"{self.http_port} within {timeout:.0f} s:\n{self.log_text()}")
            first_run = self.runs == attempt + 1
            last_log = self.log_paths[-1].read_text(errors="replace")
            if first_run and "Address already in use" in last_log and attempt < 2:
                self.port_base = free_port_base()
                continue
            raise HostError(f"punktfunk serve exited with {proc.returncode} before it was "
                            f"ready:\n{self.log_text()}")
        raise AssertionError("unreachable")

    def answers(self, timeout: float) -> bool:
        """Whether /serverinfo answers on the HTTP port (from inside the host's namespace)."""
        if not self.netns:
            return wait_for_serverinfo("127.0.0.1", self.http_port, timeout)
        probe = ("import sys; from gamestream import wait_for_serverinfo; "
                 f"sys.exit(0 if wait_for_serverinfo('127.0.0.1', {self.http_port}, {timeout}) "
                 "else 1)")
        p = subprocess.run(self.in_netns([sys.executable, "-c", probe]), cwd=Path(__file__).parent,
                           capture_output=True, timeout=timeout + 20)
        return p.returncode == 0

    def run_to_exit(self, timeout: float = 20.0) -> int:
        """Spawn `serve` and wait for it to exit by itself (for start-up failure tests)."""
        proc = self.spawn()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HostError(f"punktfunk serve kept running for {timeout:.0f} s:\n"
                            f"{self.log_text()}") from None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_children(self) -> None:
        if self.running:
            for pid in descendants(self.proc.pid):
                self._known_children.setdefault(pid, cmdline(pid))

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_GRACE seconds. Returns the exit status."""
        if self.proc is None:
            return None
        self.note_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        rc = self.proc.returncode
        self._reap_leftovers()
        return rc

    def children(self) -> dict[int, str]:
        """The processes the host started and that run now: pid and command line."""
        return {pid: cmdline(pid) for pid in descendants(self.proc.pid)}

    def terminate(self, children: dict[int, str] | None = None) -> dict[int, str]:
        """SIGTERM; the host must exit with 0 within 20 s. Returns `children` (by default the
        processes it runs at the moment) for `check_gone`."""
        children = self.children() if children is None else children
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the host still runs 20 s after SIGTERM:\n{self.log_text()}")
        assert rc == 0, f"the host exited with {rc} after SIGTERM:\n{self.log_text()}"
        return children


    def _reap_leftovers(self) -> None:
        """Kill processes the host started that outlived it (by PID, checking the PID still
        belongs to the same command line)."""
        time.sleep(0.2)
        for pid, cl in list(self._known_children.items()):
            if cl and cmdline(pid) == cl:
                print(f"[e2e] warning: host child {pid} ({cl}) outlived the host; killing it")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._known_children.clear()

    def processes(self, needle: str) -> list[tuple[int, str]]:
        """Descendants of the host whose command line contains `needle`."""
        if not self.running:
            return []
        out = []
        for pid in descendants(self.proc.pid):
            cl = cmdline(pid)
            self._known_children.setdefault(pid, cl)
            if needle in cl:
                out.append((pid, cl))
        return out

    def log_text(self, limit: int = 60000) -> str:
        texts = []
        for p in self.log_paths:
            data = p.read_bytes()[-limit:].decode(errors="replace")
            texts.append(f"--- {p.name} ---\n{data}")
        return "\n".join(texts) or "(no log)"

    def app_logs_text(self, limit: int = 20000) -> str:
        texts = []
        logs = self.data_dir / "logs"
        if logs.is_dir():
            for p in sorted(logs.glob("*.log")):
                data = p.read_bytes()[-limit:].decode(errors="replace")
                texts.append(f"--- {p.name} ---\n{data}")
        return "\n".join(texts)

    # CLI
    def cli(self, *args: str, timeout: float = 30.0) -> CliResult:
        p = subprocess.run(self.in_netns([str(binary_path()), *args]), capture_output=True,
                           text=True, timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL)
        return CliResult(p.returncode, p.stdout, p.stderr)

    def enter_pin(self, pin: str) -> CliResult:
        return self.cli("pair", pin, "--data-dir", str(self.data_dir),
                        "--port-base", str(self.port_base))

    def clients(self) -> CliResult:
        """`punktfunk clients` for this host (with --port-base when the CLI takes it)."""
        r = self.cli("clients", "--data-dir", str(self.data_dir),
                     "--port-base", str(self.port_base))
        if r.returncode != 0 and re.search(r"unexpected argument|unrecognized|unknown option",
                                           r.output, re.I):
            r = self.cli("clients", "--data-dir", str(self.data_dir))
        return r


class AppLog:
    """Reads the JSON lines an app (the test pattern) prints, from a given offset on."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        if not self.path.exists():
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def events(self) -> list[dict]:
        out = []
        for line in self.text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "event") -> list[dict]:
        """Wait until predicate(events) is truthy; returns the events."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if predicate(evs):
                return evs
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} in "
                                     f"{self.path}; got:\n{self.text()[-4000:]}")
            time.sleep(0.05)


def check_gone(children: dict[int, str]) -> None:
    """None of `children` (pid and command line) runs any more: a process that is gone, or a
    zombie, has no command line."""
    time.sleep(0.5)
    left = {pid: cl for pid, cl in children.items() if cl and cmdline(pid) == cl}
    assert not left, f"processes of the host outlived it: {left}"
