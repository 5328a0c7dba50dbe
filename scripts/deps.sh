#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages punktfunk needs to build, run and test.
# Idempotent: packages already present are skipped.
set -euo pipefail

build=(pkg-config clang libclang-dev libssl-dev libavcodec-dev libavformat-dev libavutil-dev
       libswscale-dev libx264-dev libopus-dev libpixman-1-dev libxkbcommon-dev libwayland-dev
       libpulse-dev libgbm-dev)
# Mesa's EGL and GL drivers: the GLES renderer (on a GPU, or on llvmpipe without one).
runtime=(xkb-data libegl1 libegl-mesa0 libgl1-mesa-dri)
# Stream audio needs a PulseAudio-protocol server. A desktop with PipeWire has pipewire-pulse and
# keeps it (the pulseaudio package would replace it); elsewhere the host starts a private
# pulseaudio of its own.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
installed pipewire-pulse || runtime+=(pulseaudio)
testing=(python3-venv weston foot wev wayland-utils wl-clipboard fonts-dejavu-core x11-utils x11-apps xterm xwayland systemd desktop-file-utils)
testing+=(iproute2 nftables)  # network namespaces with packet loss (tests/e2e/test_loss.py)
testing+=(pulseaudio-utils)  # pacat plays the audio tests' tones
testing+=(vulkan-tools mesa-vulkan-drivers glmark2-es2-wayland)  # GPU-API clients on lavapipe/llvmpipe
testing+=(chromium-bsu xinput)  # an SDL2 OpenGL game, and XI2 raw events (tests/e2e/test_games.py)
testing+=(chromium chromium-driver)  # a real browser for the web console (tests/e2e/test_console.py)
testing+=(g++)  # libfuzzer-sys builds libFuzzer for the fuzz targets (scripts/fuzz.sh)
# A virtual GPU with a render node, dmabufs and GBM (scripts/gpu-vm.sh): QEMU's virtio-gpu with
# virglrenderer, shown in an SDL window on Xvfb; the guest boots Debian's kernel with busybox.
# Mesa's VAAPI driver for virgl imports the compositor's buffers as VA surfaces there.
gpu_vm=(qemu-system-x86 qemu-system-gui xvfb busybox-static cpio kmod xz-utils debian-archive-keyring mesa-va-drivers)
testing+=("${gpu_vm[@]}")

want=("${build[@]}" "${runtime[@]}")
case "${1:-}" in
  --test) want+=("${testing[@]}") ;;
  --gpu-vm) want+=("${gpu_vm[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
