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
# Each packed program is a wrapper that puts the packed libraries `run` chose (lib/use) first;
# its children inherit that. `run` itself sets, for what it starts, where the driver's files
# are: distributions and container runtimes put them in different places (/usr/lib*,
# /usr/local/nvidia), and a container may have NVIDIA's libraries without the manifests that
# point EGL and GBM to them; `run` then writes those into the kit (lib/driver). `run env` says
# what it found, and where.
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  env | check | bench | x11-data) ;;
  *)
    sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
# Xwayland's files, where Xwayland looks for them: needs none of the preparation below.
if [ "$1" = x11-data ]; then
  if [ ! -e /usr/bin/xkbcomp ]; then
    printf '#!/bin/sh\nexec "%s/bin/xkbcomp" "$@"\n' "$kit" > /usr/bin/xkbcomp &&
      chmod +x /usr/bin/xkbcomp || { echo "run: cannot write /usr/bin/xkbcomp" >&2; exit 1; }
    echo "/usr/bin/xkbcomp: the kit's"
  fi
  if [ ! -d /usr/share/X11/xkb ]; then
    mkdir -p /usr/share/X11 && cp -r "$kit/share/X11/xkb" /usr/share/X11/ ||
      { echo "run: cannot write /usr/share/X11/xkb" >&2; exit 1; }
    echo "/usr/share/X11/xkb: the kit's"
  fi
  exit 0
fi
export PATH="$kit/bin:$PATH"
if [ -x /usr/local/nvidia/bin/nvidia-smi ] && ! command -v nvidia-smi >/dev/null; then
  export PATH="$PATH:/usr/local/nvidia/bin"
fi

notes=()
note() { notes+=("$1"); }

# The machine's 64-bit libraries, as its loader looks for them: LD_LIBRARY_PATH, the loader's
# cache (read once), the default folders. A 32-bit one (beside the 64-bit ones in
# /usr/local/nvidia/lib, say) is passed over, as the loader passes it over.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
ldcache=$("$ldconfig" -p 2>/dev/null || true)
elf64() { [ "$(od -An -tx1 -j4 -N1 "$1" 2>/dev/null | tr -d ' ')" = 02 ]; }
lib_path() { # lib_path SONAME: prints where the machine's loader finds it
  local path
  for path in $(for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }}; do echo "$dir/$1"; done) \
    $(awk -v n="$1" '$1 == n && /x86-64/ { print $NF }' <<< "$ldcache") \
    {/lib,/usr/lib}/x86_64-linux-gnu/"$1" {/lib64,/usr/lib64}/"$1"; do
    if [ -e "$path" ] && elf64 "$path"; then echo "$path"; return 0; fi
  done
  return 1
}
have_lib() { lib_path "$1" >/dev/null; }
# Folders of the kit that `run` makes anew each time (lib/use, lib/driver): each is made beside
# the one in use and put in place at once, so a program started meanwhile sees the old one or
# the new one, never half of one.
fresh_dir() { # fresh_dir NAME: prints a new, empty lib/NAME.XXXXXX
  local dir
  dir=$(mktemp -d "$kit/lib/$1.XXXXXX" 2>/dev/null) ||
    { echo "run: cannot write into $kit/lib; unpack the kit where it may write" >&2; return 1; }
  chmod 755 "$dir" && echo "$dir"
}
swap_in() { # swap_in NAME DIR: lib/NAME becomes DIR; the older ones go
  local link=$kit/lib/$1 old
  if [ -d "$link" ] && [ ! -L "$link" ]; then rm -rf "$link"; fi
  ln -s "${2##*/}" "$link.link.$$" && mv -T "$link.link.$$" "$link" ||
    { echo "run: cannot put $2 in place" >&2; exit 1; }
  for old in "$link".??????; do
    if [ -d "$old" ] && [ "$old" != "$2" ] && [ "${old##*/}" != "$(readlink "$link")" ]; then
      rm -rf "$old"
    fi
  done
}

# NVIDIA's driver: its libraries where a container runtime mounts them, and the manifests that
# point glvnd's EGL, EGL's external platforms and GBM to them. Where the machine has a manifest,
# it is used; a missing one is written into lib/driver, naming the (64-bit) library by its path.
if ! have_lib libEGL_nvidia.so.0 && ! have_lib libcuda.so.1; then
  for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [ -e "$dir/libcuda.so.1" ] || [ -e "$dir/libEGL_nvidia.so.0" ]; then
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      note "NVIDIA's libraries from $dir"
      break
    fi
  done
fi
driver=$(fresh_dir driver) || exit 1
manifest() { # manifest DIR FILE LIBRARY: lib/driver/DIR/FILE, an EGL manifest for LIBRARY
  mkdir -p "$driver/$1"
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s"}}\n' "$3" \
    > "$driver/$1/$2"
}
names_lib() { # names_lib SONAME DIR...: a manifest in one of DIR names SONAME
  local soname=$1 dir
  shift
  for dir in "$@"; do
    if grep -qs "\"$soname\|/$soname\"" "$dir"/*.json 2>/dev/null; then return 0; fi
  done
  return 1
}
vendor_dirs=(/etc/glvnd/egl_vendor.d /usr/share/glvnd/egl_vendor.d)
platform_dirs=(/etc/egl/egl_external_platform.d /usr/share/egl/egl_external_platform.d)
if [ -z "${__EGL_VENDOR_LIBRARY_DIRS:-}${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] &&
  path=$(lib_path libEGL_nvidia.so.0) && ! names_lib libEGL_nvidia.so.0 "${vendor_dirs[@]}"; then
  manifest egl_vendor.d 10_nvidia.json "$path"
  export __EGL_VENDOR_LIBRARY_DIRS=$kit/lib/driver/egl_vendor.d:$(IFS=:; echo "${vendor_dirs[*]}")
  note "NVIDIA's EGL vendor: $path (no manifest of the machine's named it)"
fi
if [ -z "${__EGL_EXTERNAL_PLATFORM_CONFIG_DIRS:-}${__EGL_EXTERNAL_PLATFORM_CONFIG_FILENAMES:-}" ]; then
  for platform in 15_nvidia_gbm.json:libnvidia-egl-gbm.so.1 10_nvidia_wayland.json:libnvidia-egl-wayland.so.1; do
    soname=${platform#*:}
    if path=$(lib_path "$soname") && ! names_lib "$soname" "${platform_dirs[@]}"; then
      manifest egl_external_platform.d "${platform%%:*}" "$path"
      export __EGL_EXTERNAL_PLATFORM_CONFIG_DIRS=$kit/lib/driver/egl_external_platform.d:$(IFS=:; echo "${platform_dirs[*]}")
      note "NVIDIA's EGL platform: $path (no manifest of the machine's named it)"
    fi
  done
fi
# NVIDIA's GBM backend is nvidia-drm_gbm.so, a link to libnvidia-allocator, where GBM looks.
gbm_dirs=(/usr/lib/x86_64-linux-gnu/gbm /usr/lib64/gbm)
backend_in() { # backend_in DIR...: prints the first DIR holding NVIDIA's GBM backend
  local dir
  for dir in "$@"; do
    if [ -e "$dir/nvidia-drm_gbm.so" ]; then echo "$dir"; return 0; fi
  done
  return 1
}
if [ -z "${GBM_BACKENDS_PATH:-}" ] && path=$(lib_path libnvidia-allocator.so.1) &&
  ! backend_in "${gbm_dirs[@]}" >/dev/null; then
  if ! backends=$(backend_in /usr/local/nvidia/lib64/gbm /usr/local/nvidia/lib/gbm); then
    mkdir -p "$driver/gbm"
    ln -s "$path" "$driver/gbm/nvidia-drm_gbm.so"
    backends=$kit/lib/driver/gbm
  fi
  # The machine's own backend folders after it (Mesa's dri_gbm.so lives there).
  for dir in "${gbm_dirs[@]}"; do
    if [ -d "$dir" ]; then backends+=":$dir"; fi
  done
  export GBM_BACKENDS_PATH=$backends
  note "NVIDIA's GBM backend: ${backends%%:*}/nvidia-drm_gbm.so"
fi
vendors=${__EGL_VENDOR_LIBRARY_FILENAMES:-}
for dir in $(echo "${__EGL_VENDOR_LIBRARY_DIRS:-${vendor_dirs[*]}}" | tr : ' '); do
  vendors+=$(compgen -G "$dir/*.json")
done
if [ -z "$vendors" ]; then
  note "no EGL vendor (glvnd's egl_vendor.d): EGL finds no driver"
fi
if have_lib libcuda.so.1 && ! have_lib libEGL_nvidia.so.0; then
  note "NVIDIA's driver without its EGL library: a container needs NVIDIA_DRIVER_CAPABILITIES with graphics (or all); it is '${NVIDIA_DRIVER_CAPABILITIES:-unset}'"
fi
if [ "$(cat /sys/module/nvidia_drm/parameters/modeset 2>/dev/null)" = N ]; then
  note "nvidia-drm without modeset=1: NVIDIA's GBM needs it (nvidia-drm.modeset=1)"
fi
if [ -e /dev/nvidiactl ] && ! compgen -G '/dev/dri/renderD*' >/dev/null; then
  note "NVIDIA's device without a render node: nvidia-drm must be loaded (modeset=1) and /dev/dri passed into a container"
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
# libstdc++, say) into the process: those must not be replaced by older packed ones. The loader
# decides: starting from none, each packed library it cannot find, or finds without a symbol
# version a packed program needs, is added, until it finds everything.
use=$(fresh_dir use) || exit 1
unsatisfied=""
while :; do
  complaints=$(LD_LIBRARY_PATH="$use${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$kit"/libexec/* 2>&1 |
    grep -o "[^ 	]* => not found\|[^ 	:]*: version \`[^']*' not found" | sort -u)
  added=0
  unsatisfied=""
  while read -r complaint; do
    if [ -z "$complaint" ]; then continue; fi
    name=$(basename "${complaint%%[ :]*}")
    if [ -e "$kit/lib/packed/$name" ] && [ ! -e "$use/$name" ]; then
      ln -s "../packed/$name" "$use/$name"
      added=1
    else
      unsatisfied+="$complaint; "
    fi
  done <<< "$complaints"
  if [ "$added" = 0 ]; then break; fi
done
if [ -n "$unsatisfied" ]; then
  note "the packed programs cannot load here: $unsatisfied"
fi
swap_in driver "$driver"
swap_in use "$use"
# The driver's libraries load next to the packed ones the wrappers put first: each must find
# what it needs there.
for soname in libEGL_nvidia.so.0 libnvidia-egl-gbm.so.1 libnvidia-allocator.so.1 libcuda.so.1; do
  if path=$(lib_path "$soname"); then
    missing=$(LD_LIBRARY_PATH="$use${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$path" 2>&1 |
      grep "not found" | tr -s ' \t' ' ' | tr '\n' ';')
    if [ -n "$missing" ]; then note "$soname cannot load here:$missing"; fi
  fi
done
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
  echo "capabilities   NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-unset}"
  local lib path
  for lib in libcuda.so.1 libEGL_nvidia.so.0 libnvidia-egl-gbm.so.1 libnvidia-allocator.so.1 \
    libEGL.so.1 libgbm.so.1 libva.so.2 libstdc++.so.6; do
    if [ -e "$use/$lib" ]; then
      echo "library        $lib: the kit's"
    elif path=$(lib_path "$lib"); then
      echo "library        $lib: the machine's, $path"
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
# OUT-DIR, made and named by its absolute path (gpu-check runs in the kit's folder).
out_dir() { # out_dir GIVEN DEFAULT
  mkdir -p "${1:-$2}" && (cd "${1:-$2}" && pwd)
}

case "$1" in
  env) env_report ;;
  check)
    out=$(out_dir "${2:-}" "$kit/out/check") || exit 1
    env_report | tee "$out/env.txt"
    PUNKTFUNK_BIN="$kit/target/release/punktfunk" "$kit/scripts/gpu-check.sh" --out "$out" 2>&1 |
      tee "$out/stages.txt"
    exit "${PIPESTATUS[0]}"
    ;;
  bench)
    out=$(out_dir "${2:-}" "$kit/out/bench") || exit 1
    env_report > "$out/env.txt"
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
    mkdir -p -m 700 "$XDG_RUNTIME_DIR"
    status=0
    COMPOSITE_RENDERERS=${COMPOSITE_RENDERERS:-pixman,gles,gles-dmabuf} \
      COMPOSITE_SIZES=${COMPOSITE_SIZES:-1080,2160} COMPOSITE_FRAMES=${COMPOSITE_FRAMES:-200} \
      composite 2>&1 | tee "$out/composite.txt" || status=1
    GPU_CONVERT_SIZES=${GPU_CONVERT_SIZES:-1080,2160} GPU_CONVERT_FRAMES=${GPU_CONVERT_FRAMES:-200} \
      gpu_convert 2>&1 | tee "$out/gpu_convert.txt" || status=1
    exit $status
    ;;
esac
