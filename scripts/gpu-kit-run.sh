#!/usr/bin/env bash
# The entry point of the archive scripts/gpu-kit.sh makes (packed as its `run`); not for a
# checkout.
#
#   run env               what this machine has: GPU, render nodes, driver files, libraries
#   run check [OUT-DIR]   scripts/gpu-check.sh's stages with the packed programs
#   run bench [OUT-DIR]   the composite and gpu_convert benches at 1080p and 4K
#                         (COMPOSITE_SIZES, GPU_CONVERT_SIZES and their *_FRAMES override)
#   run x11-data          installs the packed xkbcomp and XKB data where Xwayland looks for them
#                         (/usr/bin/xkbcomp, /usr/share/X11/xkb), if they are missing; the only
#                         command that writes outside the kit
#
# Each packed program is a wrapper that puts the packed libraries `run` chose first; nothing
# else in the machine's environment changes. The driver's files are looked for where
# distributions and container runtimes put them (/usr/lib*, /usr/local/nvidia), and `run env`
# says what was found, and where.
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
export PATH="$kit/bin:$PATH"

ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
have_lib() { # have_lib SONAME: the machine's dynamic loader finds it
  local dir
  if "$ldconfig" -p 2>/dev/null | grep -qF $'\t'"$1 "; then return 0; fi
  for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }}; do
    if [ -e "$dir/$1" ]; then return 0; fi
  done
  return 1
}
first_dir() { # first_dir GLOB...: the first directory that exists
  local d
  for d in "$@"; do
    if [ -d "$d" ]; then echo "$d"; return 0; fi
  done
  return 1
}
notes=()
note() { notes+=("$1"); }

# The NVIDIA driver's libraries, where a container runtime mounts them.
if ! have_lib libEGL_nvidia.so.0 && ! have_lib libcuda.so.1; then
  for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [ -e "$dir/libcuda.so.1" ] || [ -e "$dir/libEGL_nvidia.so.0" ]; then
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      note "NVIDIA's libraries from $dir"
      break
    fi
  done
fi
# EGL vendors (glvnd) and EGL external platforms (NVIDIA's GBM platform): the standard places,
# and NVIDIA's where a container runtime mounted its driver and the standard places lack it.
standard_vendors=/etc/glvnd/egl_vendor.d:/usr/share/glvnd/egl_vendor.d
if [ -z "${__EGL_VENDOR_LIBRARY_DIRS:-}${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] &&
  ! compgen -G '/etc/glvnd/egl_vendor.d/*nvidia*.json' >/dev/null &&
  ! compgen -G '/usr/share/glvnd/egl_vendor.d/*nvidia*.json' >/dev/null &&
  dir=$(first_dir /usr/local/nvidia/share/glvnd/egl_vendor.d); then
  export __EGL_VENDOR_LIBRARY_DIRS=$dir:$standard_vendors
  note "NVIDIA's EGL vendor from $dir"
fi
vendors=${__EGL_VENDOR_LIBRARY_FILENAMES:-}
for dir in $(echo "${__EGL_VENDOR_LIBRARY_DIRS:-$standard_vendors}" | tr : ' '); do
  vendors+=$(compgen -G "$dir/*.json")
done
if [ -z "$vendors" ]; then
  note "no EGL vendor (glvnd's egl_vendor.d): EGL finds no driver"
fi
if [ -z "${__EGL_EXTERNAL_PLATFORM_CONFIG_DIRS:-}${__EGL_EXTERNAL_PLATFORM_CONFIG_FILENAMES:-}" ] &&
  ! compgen -G '/usr/share/egl/egl_external_platform.d/*nvidia*.json' >/dev/null &&
  dir=$(first_dir /usr/local/nvidia/share/egl/egl_external_platform.d); then
  export __EGL_EXTERNAL_PLATFORM_CONFIG_DIRS=$dir:/etc/egl/egl_external_platform.d:/usr/share/egl/egl_external_platform.d
  note "NVIDIA's EGL external platforms from $dir"
fi
# NVIDIA's GBM backend (nvidia-drm_gbm.so): where GBM looks, else the driver's own folder.
gbm_dir=/usr/lib/x86_64-linux-gnu/gbm
if [ -z "${GBM_BACKENDS_PATH:-}" ] && [ ! -e "$gbm_dir/nvidia-drm_gbm.so" ]; then
  for dir in /usr/lib64/gbm /usr/local/nvidia/lib64/gbm /usr/local/nvidia/lib/gbm; do
    if [ -e "$dir/nvidia-drm_gbm.so" ]; then
      export GBM_BACKENDS_PATH=$dir:$gbm_dir
      note "NVIDIA's GBM backend from $dir"
      break
    fi
  done
fi
# VAAPI drivers where the machine's distribution keeps them, for a packed libva (Debian's looks
# in /usr/lib/x86_64-linux-gnu/dri).
if [ -z "${LIBVA_DRIVERS_PATH:-}" ] && ! compgen -G '/usr/lib/x86_64-linux-gnu/dri/*_drv_video.so' >/dev/null; then
  for dir in /usr/lib64/dri /usr/lib/dri; do
    if compgen -G "$dir/*_drv_video.so" >/dev/null; then
      export LIBVA_DRIVERS_PATH=$dir
      note "VAAPI drivers from $dir"
      break
    fi
  done
fi
# The packed libraries the machine lacks, or has too old for the packed programs, linked into
# lib/use, which the wrappers put first; the machine's own everywhere else. Its own loaders
# (glvnd, GBM, libva) match its driver, and a driver loads its own dependencies (Mesa's
# libstdc++, say) into the process: those must not be replaced by older packed ones.
use=$kit/lib/use
rm -rf "$use" && mkdir -p "$use"
for lib in "$kit"/lib/packed/*; do
  name=$(basename "$lib")
  if ! have_lib "$name"; then ln -s "../packed/$name" "$use/$name"; fi
done
unsatisfied=""
for _ in 1 2 3 4 5 6 7 8; do
  # What the loader cannot satisfy: a missing library, or one without a symbol version a
  # packed program needs (ldd names the library).
  complaints=$(LD_LIBRARY_PATH="$use${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$kit"/libexec/* 2>&1 |
    grep -o "[^ 	]* => not found\|[^ 	:]*: version \`[^']*' not found" | sort -u)
  if [ -z "$complaints" ]; then break; fi
  unsatisfied=""
  while read -r complaint; do
    name=$(basename "${complaint%%[ :]*}")
    if [ -e "$kit/lib/packed/$name" ] && [ ! -e "$use/$name" ]; then
      ln -s "../packed/$name" "$use/$name"
    else
      unsatisfied+="$complaint; "
    fi
  done <<< "$complaints"
  if [ -n "$unsatisfied" ]; then break; fi
done
if [ -n "$unsatisfied" ]; then
  note "the packed programs cannot load here: $unsatisfied"
fi
# A VAAPI driver takes the libva it was built for or a newer one; the packed libva is Debian
# 12's (2.17).
if [ -e "$use/libva.so.2" ]; then
  for dir in $(echo "${LIBVA_DRIVERS_PATH:-/usr/lib/x86_64-linux-gnu/dri}" | tr : " "); do
    if compgen -G "$dir/*_drv_video.so" >/dev/null; then
      note "VAAPI drivers in $dir but no libva: the packed one may be older than they need (install libva2)"
    fi
  done
fi
if [ ! -d /usr/share/X11/xkb ]; then
  export XKB_CONFIG_ROOT="$kit/share/X11/xkb"
fi

env_report() {
  echo "kit            punktfunk $(cat "$kit/REVISION"), $(uname -m), Linux $(uname -r), glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2)"
  if command -v nvidia-smi >/dev/null; then
    echo "nvidia-smi     $(nvidia-smi --query-gpu=name,driver_version,pci.bus_id --format=csv,noheader 2>&1 | head -3 | tr '\n' ';')"
  else
    echo "nvidia-smi     none"
  fi
  echo "/dev/dri       $(ls /dev/dri 2>/dev/null | tr '\n' ' ' | grep . || echo none)"
  echo "/dev/nvidia*   $(ls /dev/nvidia* 2>/dev/null | tr '\n' ' ' | grep . || echo none)"
  echo "modules        $(grep -o '^nvidia[a-z_-]*\|^amdgpu\|^i915\|^xe\|^virtio_gpu' /proc/modules 2>/dev/null | tr '\n' ' ')"
  echo "modeset        $(cat /sys/module/nvidia_drm/parameters/modeset 2>/dev/null || echo -)"
  local lib
  for lib in libcuda.so.1 libEGL_nvidia.so.0 libnvidia-egl-gbm.so.1 libEGL.so.1 libgbm.so.1 libva.so.2 libstdc++.so.6; do
    if [ -e "$use/$lib" ]; then
      echo "library        $lib: the kit's"
    elif have_lib "$lib"; then
      echo "library        $lib: the machine's"
    else
      echo "library        $lib: none"
    fi
  done
  echo "libraries      $(ls "$use" | wc -l) of the $(ls "$kit/lib/packed" | wc -l) packed ones in use, the machine's own for the rest"
  local n
  for n in "${notes[@]}"; do echo "found          $n"; done
  if [ ! -x /usr/bin/xkbcomp ] || [ ! -d /usr/share/X11/xkb ]; then
    echo "x11            no /usr/bin/xkbcomp or /usr/share/X11/xkb: Xwayland cannot start (run x11-data)"
  fi
}

case "${1:-}" in
  env) env_report ;;
  check)
    out=${2:-$kit/out/check}
    mkdir -p "$out"
    env_report | tee "$out/env.txt"
    PUNKTFUNK_BIN="$kit/target/release/punktfunk" "$kit/scripts/gpu-check.sh" --out "$out" 2>&1 |
      tee "$out/stages.txt"
    exit "${PIPESTATUS[0]}"
    ;;
  bench)
    out=${2:-$kit/out/bench}
    mkdir -p "$out"
    env_report > "$out/env.txt"
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
    status=0
    COMPOSITE_RENDERERS=${COMPOSITE_RENDERERS:-pixman,gles,gles-dmabuf} \
      COMPOSITE_SIZES=${COMPOSITE_SIZES:-1080,2160} COMPOSITE_FRAMES=${COMPOSITE_FRAMES:-200} \
      composite 2>&1 | tee "$out/composite.txt" || status=1
    GPU_CONVERT_SIZES=${GPU_CONVERT_SIZES:-1080,2160} GPU_CONVERT_FRAMES=${GPU_CONVERT_FRAMES:-200} \
      gpu_convert 2>&1 | tee "$out/gpu_convert.txt" || status=1
    exit $status
    ;;
  x11-data)
    if [ ! -e /usr/bin/xkbcomp ]; then
      printf '#!/bin/sh\nexec "%s/bin/xkbcomp" "$@"\n' "$kit" > /usr/bin/xkbcomp
      chmod +x /usr/bin/xkbcomp
      echo "/usr/bin/xkbcomp: the kit's"
    fi
    if [ ! -d /usr/share/X11/xkb ]; then
      mkdir -p /usr/share/X11 && cp -r "$kit/share/X11/xkb" /usr/share/X11/
      echo "/usr/share/X11/xkb: the kit's"
    fi
    ;;
  *)
    sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
