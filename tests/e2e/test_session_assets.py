"""The session assets pass the checkers their consumers use: `systemd-analyze verify` for the
user unit, `desktop-file-validate` for the wayland-sessions entry.

Each check first shows that the checker notices a deliberately broken copy, so that a checker
which accepts anything cannot make these tests pass. Where a checker cannot run here the test
skips and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "assets" / "punktfunk-session.service"
DESKTOP = REPO / "assets" / "punktfunk.desktop"


def skip(reason: str):
    print(f"\n[e2e] SKIP: {reason}")
    pytest.skip(reason)


def systemd_verify(unit: Path, runtime_dir: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        skip("systemd-analyze is not installed (Debian package `systemd`)")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir), SYSTEMD_LOG_COLOR="0")
    return subprocess.run([exe, "--user", "--man=no", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, env=env)


def test_the_user_unit_passes_systemd_analyze_verify(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)

    # The checker must notice a broken copy; otherwise it cannot run here.
    broken = tmp_path / "punktfunk-session.service"
    broken.write_text(UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    r = systemd_verify(broken, runtime)
    out = r.stdout + r.stderr
    if "sometimes" not in out:
        skip(f"systemd-analyze cannot verify units in this environment (exit {r.returncode}: "
             f"{out.strip()[:300]!r})")

    r = systemd_verify(UNIT, runtime)
    out = (r.stdout + r.stderr).strip()
    # verify exits 0 on warnings about the unit too, so any output at all is a finding.
    assert r.returncode == 0 and out == "", f"systemd-analyze verify {UNIT.name}:\n{out}"


def test_the_unit_runs_serve_and_restarts_on_failure():
    keys = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    assert keys["ExecStart"].split()[-2:] == ["punktfunk", "serve"], keys["ExecStart"]
    assert keys["Restart"] == "on-failure"
    assert keys["WantedBy"] == "default.target", "a user unit is wanted by default.target"


def test_the_session_entry_passes_desktop_file_validate(tmp_path):
    exe = shutil.which("desktop-file-validate")
    if exe is None:
        skip("desktop-file-validate is not installed (Debian package `desktop-file-utils`)")

    broken = tmp_path / "punktfunk.desktop"
    broken.write_text(DESKTOP.read_text().replace("Type=Application", "Type=Session"))
    r = subprocess.run([exe, str(broken)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "desktop-file-validate accepted a broken entry"

    r = subprocess.run([exe, str(DESKTOP)], capture_output=True, text=True, timeout=30)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and "error" not in out, f"desktop-file-validate:\n{out}"
    assert "Exec=punktfunk serve" in DESKTOP.read_text().splitlines()
