#!/usr/bin/env bash
# Checks the GPU path on this machine, one line per stage, and exits non-zero when a stage
# failed. Meant for a machine with a GPU (and for the virtual GPU of scripts/gpu-vm.sh):
#
#   scripts/gpu-check.sh [--out DIR]
#
# Stages: the render node and EGL devices; the compositor rendering the test pattern with GLES
# on the node (pixels compared with pixman's); a GL client handing over dmabufs; explicit sync
# offered (where the node's driver has timeline syncobjs with eventfd waits); Xwayland with
# glamor; the test pattern rendered into GBM buffers; on NVIDIA, which kinds of GL texture and
# EGL image CUDA takes, and frames converted on the GPU handed to CUDA and into a CUDA frame,
# elsewhere imported as VA surfaces, compared with the compositor's (needs cargo, or the
# `gpu_cuda` or `gpu_vaapi` test binary built); a 10-bit stream's frames rendered in 10 bits (the
# `gpu_picture` test); which video encoders the host finds (an H100 or H200 has none, and says
# so); a session with a GPU client streamed to the Moonlight client library, and the test
# pattern streamed from frames converted to Y'CbCr on the GPU (both need the test venv:
# scripts/test.sh makes it; PUNKTFUNK_E2E_PYTHON names another python with its packages).
# What is not built yet is a failed stage, named as such. Uses target/debug/punktfunk (cargo
# build -p punktfunk), or PUNKTFUNK_BIN. Takes about a minute on a GPU. scripts/gpu-kit.sh packs
# it, with all it runs, for a machine without the toolchain.
set -uo pipefail

out=""
if [ "${1:-}" = "--out" ]; then out=$2; fi
if [ -z "$out" ]; then out=$(mktemp -d); fi
mkdir -p "$out"
# Paths given relative to where it was started, before it moves to the checkout's root.
out=$(cd "$out" && pwd) || exit 1
# PUNKTFUNK_BIN is a file; PUNKTFUNK_E2E_PYTHON a file where it has a slash, else a command.
case "${PUNKTFUNK_BIN:-/}" in /*) ;; *) PUNKTFUNK_BIN=$PWD/$PUNKTFUNK_BIN ;; esac
case "${PUNKTFUNK_E2E_PYTHON:-}" in /* | "") ;; */*) PUNKTFUNK_E2E_PYTHON=$PWD/$PUNKTFUNK_E2E_PYTHON ;; esac
cd "$(dirname "$0")/.."
bin=${PUNKTFUNK_BIN:-target/debug/punktfunk}
failed=0

stage() { # stage NAME pass|fail|none DETAIL
  printf '%-14s %-4s %s\n' "$1" "$2" "$3"
  if [ "$2" = fail ]; then failed=1; fi
}

if [ ! -x "$bin" ]; then
  stage build fail "$bin is missing: cargo build -p punktfunk"
  exit 1
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
mkdir -p /tmp/.X11-unix 2>/dev/null || true

# 1. The render node, the EGL devices, the driver.
nodes=$(ls /dev/dri/renderD* 2>/dev/null | tr '\n' ' ')
if command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
else
  gpu="no nvidia-smi"
fi
if [ -n "$nodes" ]; then
  stage node pass "render nodes: $nodes($gpu)"
else
  stage node fail "no render node in /dev/dri ($gpu); GBM and dmabufs need one"
fi

# `punktfunk run` with GLES, its log kept; prints the log's path.
run_gles() { # run_gles NAME FRAMES CMD...
  local name=$1 frames=$2
  shift 2
  PUNKTFUNK_LOG=info,compositor::xwayland::server=debug timeout 120 "$bin" run --mode 640x480@30 \
    --renderer "${RENDERER:-gles}" ${GPU_FRAMES:+--gpu-frames} --frames "$frames" \
    --output "$out/$name.png" -- "$@" \
    > "$out/$name.log" 2>&1
}

# Prints the share of equal bytes of two PNGs of the test pattern; fails below 90 %.
same_picture() { # same_picture A.png B.png
  python3 - "$1" "$2" <<'EOF'
import sys, zlib, struct
def pixels(path):
    data = open(path, "rb").read()
    chunks, pos = [], 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    return zlib.decompress(b"".join(chunks))
a, b = pixels(sys.argv[1]), pixels(sys.argv[2])
# The pattern's frame counter differs between the two runs; compare the size and the share of
# equal bytes of the picture.
same = sum(x == y for x, y in zip(a, b)) / max(len(a), 1)
print(f"{same:.1%} of the bytes equal")
sys.exit(0 if len(a) == len(b) and same > 0.9 else 1)
EOF
}

# 2. The test pattern rendered with GLES on the node, next to pixman.
if run_gles pattern-gles 20 "$bin" testpattern; then
  device=$(grep -o 'renderer renderer="gles" device=[^ ]*' "$out/pattern-gles.log" | head -1)
  case "$device" in
    *device=/dev/dri/*)
      RENDERER=pixman run_gles pattern-pixman 20 "$bin" testpattern
      # The EGL display is on GBM's platform unless that failed (CUDA's GL interop wants it).
      platform="EGL on GBM's platform"
      if grep -q "EGL on GBM's platform does not work" "$out/pattern-gles.log"; then
        platform="EGL's device platform: GBM's does not work ($out/pattern-gles.log)"
      fi
      if equal=$(same_picture "$out/pattern-gles.png" "$out/pattern-pixman.png"); then
        stage gles pass "test pattern with GLES on ${device#*device=} ($platform), like pixman's: $equal"
      else
        stage gles fail "GLES on ${device#*device=} and pixman drew different pictures: $equal ($out/pattern-*.png)"
      fi ;;
    *) stage gles fail "GLES did not run on a render node: ${device:-no renderer line} ($out/pattern-gles.log)" ;;
  esac
else
  stage gles fail "punktfunk run failed ($out/pattern-gles.log)"
fi

# 3. A GL client renders on the GPU and hands over dmabufs.
if command -v weston-simple-dmabuf-egl >/dev/null; then
  run_gles dmabuf-client 40 weston-simple-dmabuf-egl
  if grep -q "the first GPU buffer from a client is imported" "$out/dmabuf-client.log"; then
    stage client-dmabuf pass "weston-simple-dmabuf-egl's buffers imported ($out/dmabuf-client.png)"
  else
    stage client-dmabuf fail "no client dmabuf imported ($out/dmabuf-client.log)"
  fi
else
  stage client-dmabuf fail "weston-simple-dmabuf-egl is missing (apt install weston)"
fi

# 3b. Explicit sync (wp_linux_drm_syncobj_manager_v1), which NVIDIA's driver uses where it is
# offered: the compositor says in that log whether the node supports it, and why not.
if [ -f "$out/dmabuf-client.log" ]; then
  if grep -q "explicit sync offered" "$out/dmabuf-client.log"; then
    stage explicit-sync pass "wp_linux_drm_syncobj_manager_v1 offered on the node"
  elif why=$(grep -o "no explicit sync: .*" "$out/dmabuf-client.log" | head -1) && [ -n "$why" ]; then
    stage explicit-sync none "$why"
  else
    stage explicit-sync fail "the compositor said nothing about explicit sync ($out/dmabuf-client.log)"
  fi
fi

# 4. Xwayland with glamor (DRI3 for X11 GL and Vulkan games), seen in its own log.
if command -v xterm >/dev/null; then
  run_gles xwayland 40 xterm -e sleep 30
  if grep -q "glamor GL provider\|glamor X acceleration enabled" "$out/xwayland.log"; then
    stage glamor pass "Xwayland initialized glamor on the node"
  else
    stage glamor fail "Xwayland without glamor ($out/xwayland.log)"
  fi
else
  stage glamor fail "xterm is missing (apt install xterm)"
fi

# 5. Frames as dmabufs, and the zero-copy hand-off to the encoder.
if GPU_FRAMES=1 run_gles gbm-frames 20 "$bin" testpattern; then
  dmabufs=$(grep -o '[0-9]* of the [0-9]* frames were dmabufs' "$out/gbm-frames.log")
  if ! grep -q "ring of GBM buffers" "$out/gbm-frames.log" || [ "${dmabufs%% *}" = 0 ]; then
    stage gbm-frames fail "no frame came as a dmabuf: ${dmabufs:-none counted} ($out/gbm-frames.log)"
  elif [ ! -f "$out/pattern-pixman.png" ]; then
    stage gbm-frames fail "$dmabufs, but pixman's picture to compare is missing"
  elif equal=$(same_picture "$out/gbm-frames.png" "$out/pattern-pixman.png"); then
    stage gbm-frames pass "test pattern rendered into GBM buffers, $dmabufs; read back like pixman's: $equal"
  else
    stage gbm-frames fail "the GBM frames read back differ from pixman's: $equal ($out/gbm-frames.png)"
  fi
else
  stage gbm-frames fail "punktfunk run --gpu-frames failed ($out/gbm-frames.log)"
fi

# 6. The hand-off to the encoder on the GPU, frames converted on the GPU compared with what the
# compositor reads back: on NVIDIA registered with CUDA and copied into a CUDA frame
# (streamer/tests/gpu_cuda.rs), elsewhere imported as VA surfaces (streamer/tests/gpu_vaapi.rs).
# Cargo's in a checkout, or the newest test binary a build left in target/*/deps (where
# scripts/gpu-kit.sh packs them).
gpu_test() { # gpu_test TEST [NAME-FILTER]
  if [ -f Cargo.toml ] && command -v cargo >/dev/null; then
    cargo test -q -p streamer --test "$1" -- --include-ignored --nocapture ${2:+"$2"}
  else
    local t
    t=$(ls -t target/debug/deps/"$1"-* target/release/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | head -1)
    if [ -z "$t" ]; then
      echo "no cargo and no $1 test binary (cargo test -p streamer --test $1 --no-run)"
      return 1
    fi
    "$t" --include-ignored --nocapture ${2:+"$2"}
  fi
}
hand_off() { # hand_off STAGE TEST [NAME-FILTER]
  # The test's own panic is the last one (a helper thread's may come before it).
  if timeout 300 bash -c "$(declare -f gpu_test); gpu_test $2 ${3:-}" > "$out/$1.log" 2>&1; then
    local line
    line=$(grep -o "\[$1\].*" "$out/$1.log" | head -1)
    if [ -n "$line" ]; then
      stage "$1" pass "$line"
    else
      stage "$1" fail "no [$1] line: the test did not run ($out/$1.log)"
    fi
  else
    stage "$1" fail "$(grep -A1 'panicked at ' "$out/$1.log" | tail -1) ($out/$1.log)"
  fi
}
if [ -e /dev/nvidiactl ]; then
  # Which GL textures and EGL images CUDA takes here (the compositor's kind of texture must be
  # one), then the route.
  hand_off cuda-interop gpu_cuda cuda_registers
  hand_off cuda gpu_cuda frames_reach_cuda
  stage vaapi none "NVIDIA: frames reach NVENC through CUDA"
else
  stage cuda-interop none "no NVIDIA driver (/dev/nvidiactl): CUDA's GL and EGL interop are NVIDIA's"
  stage cuda none "no NVIDIA driver (/dev/nvidiactl): the CUDA hand-off is NVIDIA's"
  hand_off vaapi gpu_vaapi
fi

# The ring of a 10-bit stream's frames: 10 bits a channel (streamer/tests/gpu_picture.rs).
hand_off ten-bit gpu_picture ten_bits

# 7. The video encoders the host finds.
port=$((20000 + RANDOM % 20000 / 100 * 100))
data=$(mktemp -d)
# Until it has said which it uses (a first start makes the host's key first, which takes a
# while on a slow CPU), at most a minute.
PUNKTFUNK_LOG=info "$bin" serve --no-mdns --port-base "$port" --data-dir "$data" \
  > "$out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 120); do
  if grep -q 'video encoders per codec' "$out/serve.log" || ! kill -0 "$serve_pid" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
kill "$serve_pid" 2>/dev/null
wait "$serve_pid" 2>/dev/null
encoders=$(grep -o 'video encoders per codec.*' "$out/serve.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g')
reasons=$(grep -o '\(NVENC\|VAAPI\) unavailable: [^;]*' "$out/serve.log" | sort -u | tr '\n' ';')
rm -rf "$data"
case "$encoders" in
  "") stage encoders fail "the host did not report its encoders ($out/serve.log)" ;;
  *nvenc*|*vaapi*) stage encoders pass "$encoders" ;;
  *) stage encoders none "no GPU encoder: ${reasons:-none found}; ${encoders#video encoders per codec }" ;;
esac

# 8. Sessions streamed to the Moonlight client library: a GPU client, and the test pattern, whose
# frames the stream converts to Y'CbCr on the GPU (its colour bars must survive that).
python=${PUNKTFUNK_E2E_PYTHON:-.venv/bin/python}
# What tests/e2e/test_gpu.py imports, itself and through the harness.
e2e_imports='import moonlight_python, av, pytest, numpy, cffi, cryptography, requests'
e2e() { # e2e STAGE TEST-SELECTION
  local missing last venv="the test venv (scripts/test.sh makes .venv; PUNKTFUNK_E2E_PYTHON names another python)"
  if [ -z "$nodes" ]; then
    stage "$1" fail "needs a render node"
  elif ! command -v "$python" >/dev/null; then
    stage "$1" fail "needs $venv: there is no $python"
  elif ! missing=$("$python" -c "$e2e_imports" 2>&1); then
    stage "$1" fail "needs $venv: $(echo "$missing" | tail -1)"
  elif PUNKTFUNK_E2E_GPU=1 PUNKTFUNK_E2E_REQUIRE_HOST=1 PUNKTFUNK_BIN="$(realpath "$bin")" \
      timeout 300 "$python" -m pytest -q -s tests/e2e/test_gpu.py -k "$2" > "$out/$1.log" 2>&1 &&
      last=$(tail -1 "$out/$1.log") && [[ $last == *" passed"* && $last != *skipped* ]]; then
    stage "$1" pass "$(grep -o '\[e2e\].*' "$out/$1.log" | head -1)"
  else
    stage "$1" fail "$(tail -1 "$out/$1.log") ($out/$1.log)"
  fi
}
e2e stream gles
e2e gpu-yuv test_pattern

echo "logs and pictures: $out"
exit "$failed"
