#!/usr/bin/env bash
# Installs what is missing and runs every test: Rust unit and integration tests, then the
# end-to-end tests that drive the real Moonlight client library against `punktfunk serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test

# Xwayland and some clients need the X socket directory.
if [ ! -d /tmp/.X11-unix ]; then mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix; fi

# Formatting first: stable rustfmt skips the nightly-only options of rustfmt.toml, warning about
# each; only a real difference fails.
for manifest in Cargo.toml fuzz/Cargo.toml; do
  if ! fmt=$(cargo fmt --all --check --manifest-path "$manifest" 2>&1); then
    echo "$fmt" | grep -v "unstable features are only available in nightly"
    echo "cargo fmt --check failed for $manifest: run cargo fmt --manifest-path $manifest" >&2
    exit 1
  fi
done
# Incremental caches only help rebuilds; a test run is one build, and its caches took gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build -p punktfunk -p punktfunk-client
cargo test --workspace
cargo clippy --workspace --all-targets -- -D warnings
# The fuzz targets (their own workspace), each run for 10 s on its checked-in corpus, then
# every input that ever crashed one (scripts/fuzz.sh, docs/reliability.md).
scripts/fuzz.sh smoke 10
# The compositor's tests again on the GLES renderer (Mesa's llvmpipe without a GPU).
PUNKTFUNK_TEST_RENDERER=gles cargo test -p compositor -- --skip gles_and_pixman_draw_the_same_pixels
# The GPU path on a virtual GPU with a render node (scripts/gpu-vm.sh): GL clients' dmabufs,
# wl_drm, a fake dmabuf refused, explicit sync; frames rendered into GBM buffers and handed out as dmabufs; the
# X11 tests with Xwayland's glamor on; a stream's picture from frames converted on the GPU;
# those frames imported as VA surfaces (Mesa's VAAPI driver for virgl); a stream whose encoder
# fails on those surfaces going on from CPU memory; what gpu-check asks CUDA about on NVIDIA,
# made.
cargo test -p compositor --test gpu_clients --test gpu_frames --test xwayland --no-run
cargo test -p streamer --lib --test gpu_picture --test gpu_vaapi --test gpu_cuda --no-run
# (One line for the guest's shell: gpu-vm.sh quotes a command with newlines in bash's $'...'.)
gpu_tests="PUNKTFUNK_TEST_RENDERER=gles cargo test -p compositor --test gpu_clients"
gpu_tests+=" --test gpu_frames --test xwayland -- --include-ignored"
gpu_tests+=" && cargo test -p streamer --test gpu_picture --test gpu_vaapi -- --include-ignored"
gpu_tests+=" && cargo test -p streamer --lib -- --ignored pipeline::gpu_tests"
gpu_tests+=" && cargo test -p streamer --test gpu_cuda -- --ignored every_kind_handed_to_cuda"
scripts/gpu-vm.sh --timeout 900 -- sh -c "$gpu_tests"

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q -r tests/e2e/requirements.txt
export PUNKTFUNK_E2E_REQUIRE_HOST=1 PUNKTFUNK_BIN="$PWD/target/debug/punktfunk"
.venv/bin/python -m pytest tests/e2e -q -rs
# The walking skeleton and the input tests again, every host rendering with GLES (on Mesa's
# llvmpipe without a GPU).
PUNKTFUNK_E2E_RENDERER=gles .venv/bin/python -m pytest -q -rs tests/e2e/test_walking_skeleton.py \
  tests/e2e/test_input.py tests/e2e/test_x11_input.py tests/e2e/test_renderer.py tests/e2e/test_games.py
# Games that render on the GPU streamed to the client library, on the virtual GPU: a GLES client
# over zwp_linux_dmabuf_v1, an SDL2 OpenGL game on X11 through Xwayland's glamor.
scripts/gpu-vm.sh --timeout 900 -- env PUNKTFUNK_E2E_GPU=1 .venv/bin/python -m pytest -q -rs \
  tests/e2e/test_gpu.py
