"""The GPU kit's choice of libraries (scripts/gpu-kit.sh, scripts/gpu-kit-run.sh).

On a foreign machine the kit's `run` must take a packed library only where the machine lacks it
or has it without a symbol version a packed program needs, and the machine's own everywhere
else (its loaders match its driver, and the libraries a driver loads with must be as new as it
needs). Three small libraries, built here with the C compiler, stand for the three cases; the
"machine" keeps its copies in a folder on LD_LIBRARY_PATH. A fourth case is a library of the
machine's own in its default folder, zlib, packed too. A packed program that says which copy of
each library it got runs through the wrapper scripts/gpu-kit.sh writes.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path

from conftest import need

ROOT = Path(__file__).resolve().parents[2]


def build_library(cc: str, build: Path, out: Path, name: str, origin: str, newer: bool) -> None:
    """lib<name>.so.1 whose `<name>_origin()` says `origin`; the newer one also has
    `<name>_new()`, under the symbol version NEW."""
    src = build / f"{name}-{origin}.c"
    script = build / f"{name}-{origin}.map"
    code = f'const char *{name}_origin(void) {{ return "{origin}"; }}\n'
    versions = f"OLD {{ global: {name}_origin; local: *; }};\n"
    if newer:
        code += f"int {name}_new(void) {{ return 2; }}\n"
        versions += f"NEW {{ global: {name}_new; }} OLD;\n"
    src.write_text(code)
    script.write_text(versions)
    subprocess.run([cc, "-shared", "-fPIC", f"-Wl,-soname,lib{name}.so.1",
                    f"-Wl,--version-script={script}", "-o", str(out), str(src)], check=True)


def test_the_kit_takes_only_the_libraries_the_machine_lacks_or_has_too_old(tmp_path):
    cc = need("cc")
    kit = tmp_path / "punktfunk-gpu-kit"
    packed, machine, build = kit / "lib" / "packed", tmp_path / "machine", tmp_path / "build"
    for d in (packed, machine, build, kit / "libexec", kit / "bin"):
        d.mkdir(parents=True)
    # kitsame: the machine's is as new as the kit's; kitold: the machine's lacks NEW;
    # kitgone: the machine has none.
    for name, on_machine in (("kitsame", "new"), ("kitold", "old"), ("kitgone", None)):
        build_library(cc, build, packed / f"lib{name}.so.1", name, "packed", newer=True)
        if on_machine:
            build_library(cc, build, machine / f"lib{name}.so.1", name, "machine",
                          newer=on_machine == "new")
    program = build / "prog.c"
    program.write_text(
        '#include <stdio.h>\n'
        + "".join(f"const char *{n}_origin(void); int {n}_new(void);\n"
                  for n in ("kitsame", "kitold", "kitgone"))
        + 'const char *zlibVersion(void);\n'
        'int main(void) {\n'
        '  printf("same=%s old=%s gone=%s new=%d zlib=%s\\n", kitsame_origin(), kitold_origin(),\n'
        '         kitgone_origin(), kitsame_new() + kitold_new() + kitgone_new(),\n'
        '         zlibVersion() ? "yes" : "no");\n'
        '  return 0;\n}\n')
    # Linked against the packed (newer) libraries, as the kit's programs are against Debian 12's.
    subprocess.run([cc, "-o", str(kit / "libexec" / "prog"), str(program), f"-L{packed}",
                    "-l:libkitsame.so.1", "-l:libkitold.so.1", "-l:libkitgone.so.1",
                    "-l:libz.so.1"], check=True)
    zlib = ctypes.util.find_library("z")
    assert zlib == "libz.so.1", zlib
    machine_zlib = next(p for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                    "/lib64", "/usr/lib64")
                        if (p := Path(d) / zlib).exists())
    shutil.copy(machine_zlib, packed / zlib)
    # A choice left by an older kit, as a plain folder: replaced.
    (kit / "lib" / "use").mkdir()
    (kit / "lib" / "use" / "libstale.so.1").write_text("")
    (kit / "run").write_bytes((ROOT / "scripts" / "gpu-kit-run.sh").read_bytes())
    (kit / "run").chmod(0o755)
    (kit / "REVISION").write_text("test\n")
    subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/gpu-kit.sh" && kit="{kit}" '
                    '&& wrap prog bin/prog'], check=True)

    env = {**os.environ, "LD_LIBRARY_PATH": str(machine)}
    report = subprocess.run([str(kit / "run"), "env"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    print(report.stdout)
    used = sorted(p.name for p in (kit / "lib" / "use").iterdir())
    assert used == ["libkitgone.so.1", "libkitold.so.1"], report.stdout
    for name in used:
        assert (kit / "lib" / "use" / name).resolve() == packed / name
    assert "2 of the 4 packed ones in use" in report.stdout
    assert "cannot load here" not in report.stdout

    ran = subprocess.run([str(kit / "bin" / "prog")], env=env, capture_output=True, text=True,
                         timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "same=machine old=packed gone=packed new=6 zlib=yes"

    # Without the packed copy of a library the machine has too old, the program cannot load,
    # and `run env` says which version is missing.
    (packed / "libkitold.so.1").unlink()
    report = subprocess.run([str(kit / "run"), "env"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "the packed programs cannot load here" in report.stdout, report.stdout
    assert "libkitold.so.1: version `NEW' not found" in report.stdout, report.stdout
