#!/usr/bin/env bash
# Packs scripts/gpu-check.sh and the GPU benchmarks, with everything they run, into one archive
# for a GPU machine that has neither Rust nor this project's packages: a server's container
# with the GPU driver mounted in, a friend's gaming PC, a machine where a bug shows.
#
#   scripts/gpu-kit.sh [--out FILE]      # default target/gpu-kit.tar.xz
#
# On the GPU machine (x86-64, glibc 2.36 or newer, python3 for the picture comparison):
#
#   tar -xJf gpu-kit.tar.xz && punktfunk-gpu-kit/run check [OUT-DIR]   # gpu-check's stages
#   punktfunk-gpu-kit/run bench                                         # the GPU benchmarks
#
# The archive holds release builds of `punktfunk`, of the GPU tests gpu-check runs
# (`gpu_cuda`, `gpu_vaapi`, `gpu_picture`) and of the `composite` and `gpu_convert` benches;
# Xwayland, xkbcomp, xterm, glmark2 and the weston clients gpu-check starts; the shared
# libraries of all of these but glibc's; the XKB data and glmark2's scene. The GPU driver comes from
# the machine: its EGL, GBM, CUDA and VAAPI drivers are never packed. Of the packed libraries,
# `run` takes only those the machine lacks or has too old for the packed programs: the
# machine's own loaders (glvnd, GBM, libva) match its driver, and the libraries its driver loads
# with (libstdc++ for Mesa's) are as new as the driver needs. The stages that stream to the
# Moonlight client library need its Python packages, which are not packed: they fail there,
# saying so. Built on Debian 12 with scripts/deps.sh's packages; about 52 MiB.
set -euo pipefail

# Each packed executable sits in libexec/; the name it is called by is a wrapper that puts
# lib/use first: the packed libraries `run` chose (links into lib/packed). The rest of the
# machine's environment (its python3 too) is left as it is.
wrap() { # wrap REAL-NAME WRAPPER-PATH [SHELL-LINE] (relative to the kit's root)
  local up
  up=$(dirname "$2" | sed 's|[^/][^/]*|..|g')
  cat > "$kit/$2" <<EOF
#!/bin/sh
kit=\$(cd "\$(dirname "\$0")/$up" && pwd)
${3:-}
LD_LIBRARY_PATH="\$kit/lib/use\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \\
  exec "\$kit/libexec/$1" "\$@"
EOF
  chmod +x "$kit/$2"
}
# Sourced (by the kit's test), only the function above.
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then return 0; fi

out=target/gpu-kit.tar.xz
if [ "${1:-}" = "--out" ]; then
  case "$2" in /*) out=$2 ;; *) out=$PWD/$2 ;; esac
fi
cd "$(dirname "$0")/.."
scripts/deps.sh --test

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
kit=$stage/punktfunk-gpu-kit
mkdir -p "$kit"/{bin,libexec,lib/packed,share/X11,target/release/deps,scripts,tests}

# The executables cargo built, by target name: the JSON lines of `--message-format=json`.
executables() { # executables CARGO-ARGS... : prints "NAME PATH" per executable
  cargo "$@" --message-format=json-render-diagnostics \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
# One at a time: a failed build stops the script (set -e does not see into a $( ) list).
built=$(executables build --release -p punktfunk)
built+=$'\n'$(executables test --release -p streamer --test gpu_cuda --test gpu_vaapi \
  --test gpu_picture --no-run)
built+=$'\n'$(executables bench -p compositor --bench composite --no-run)
built+=$'\n'$(executables bench -p streamer --bench gpu_convert --no-run)

pack() { # pack PATH NAME WRAPPER
  cp "$1" "$kit/libexec/$2"
  strip "$kit/libexec/$2"
  wrap "$2" "$3"
}
while read -r name path; do
  case "$name" in
    punktfunk) pack "$path" punktfunk target/release/punktfunk ;;
    gpu_cuda | gpu_vaapi | gpu_picture) pack "$path" "$name" "target/release/deps/$name-kit" ;;
    composite | gpu_convert) pack "$path" "$name" "bin/$name" ;;
  esac
done <<< "$built"
for program in Xwayland xkbcomp xterm weston-simple-dmabuf-egl weston-simple-shm glmark2-es2-wayland; do
  path=$(command -v "$program") || { echo "$program is missing (scripts/deps.sh --test)" >&2; exit 1; }
  cp "$path" "$kit/libexec/$program"
  wrap "$program" "bin/$program"
done
# glmark2 (the GPU client of the `stream` stage, which runs its `build` scene: the horse, no
# textures) takes its model and shaders from the kit where the machine has none.
mkdir -p "$kit/share/glmark2/models" "$kit/share/glmark2/textures"
cp -r /usr/share/glmark2/shaders "$kit/share/glmark2/"
cp /usr/share/glmark2/models/horse.3ds "$kit/share/glmark2/models/"
wrap glmark2-es2-wayland bin/glmark2-es2-wayland \
  '[ -d /usr/share/glmark2 ] || set -- --data-path "$kit/share/glmark2" "$@"'

# Their libraries, but glibc's (the machine's own, which must be as new as Debian 12's) and the
# GPU driver's, which the machine brings.
glibc='^(libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl|ld-linux-x86-64)\.so'
driver='^(libcuda|libnvidia-|libEGL_nvidia|libEGL_mesa|libGLX_)'
for exe in "$kit"/libexec/*; do
  ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  if [[ $name =~ $glibc || $name =~ $driver ]]; then continue; fi
  cp -L "$lib" "$kit/lib/packed/"
done
for exe in punktfunk gpu_cuda gpu_vaapi gpu_picture composite gpu_convert; do
  if [ ! -x "$kit/libexec/$exe" ]; then echo "cargo built no $exe" >&2; exit 1; fi
done
linked=$(ldd "$kit"/libexec/*)
if grep 'not found' <<< "$linked" >&2; then
  echo "a packed program misses a library here (above)" >&2
  exit 1
fi
cp -r /usr/share/X11/xkb "$kit/share/X11/"

cp scripts/gpu-check.sh "$kit/scripts/"
cp -r tests/e2e "$kit/tests/"
rm -rf "$kit/tests/e2e/__pycache__" "$kit/tests/e2e/.pytest_cache"
cp scripts/gpu-kit-run.sh "$kit/run"
git describe --always --dirty > "$kit/REVISION" 2>/dev/null || echo unknown > "$kit/REVISION"

mkdir -p "$(dirname "$out")"
tar -C "$stage" -cf - punktfunk-gpu-kit | xz -9e -T0 > "$out"
echo "$out: $(du -h "$out" | cut -f1), punktfunk $(cat "$kit/REVISION")"
