#!/usr/bin/env bash
# Runs a command on a virtual GPU: a small virtual machine with a virtio-gpu device whose GL
# work runs on this machine (virglrenderer, on Mesa's llvmpipe when there is no GPU here). The
# guest gets a real render node (/dev/dri/renderD128) with GBM, dmabufs, EGL dmabuf import and
# sync files: what the GPU path needs and what a machine without a GPU otherwise lacks.
#
#   scripts/gpu-vm.sh [--memory MiB] [--timeout SECONDS] [--out DIR] -- COMMAND [ARG...]
#
# The guest sees this machine's whole file system read-only, with a RAM overlay for writes, and
# runs COMMAND as root in the current directory with the current environment's PATH, HOME,
# CARGO_*, RUST_* and PUNKTFUNK_* variables. DIR (default: a fresh temporary folder) is shared
# writable at the same path inside, for files that must come back. The exit status is
# COMMAND's; 125 when the virtual machine itself failed or ran past SECONDS (default 1200).
#
# Needs qemu-system-x86 with its SDL display (qemu-system-gui), virglrenderer, Xvfb, a Debian
# kernel (bookworm-backports', downloaded once into target/gpu-vm) and busybox for the guest's first seconds;
# `scripts/deps.sh --gpu-vm` installs them. The guest runs under TCG (no KVM needed), so its
# CPU is several times slower than this machine's; its GL calls run here at full speed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

memory=4096
limit=1200
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --memory) memory=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "gpu-vm: unknown option $1 (the command follows --)" >&2; exit 125 ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: scripts/gpu-vm.sh [--memory MiB] [--timeout SECONDS] [--out DIR] -- COMMAND [ARG...]" >&2
  exit 125
fi
for tool in qemu-system-x86_64 Xvfb busybox cpio depmod; do
  if ! command -v "$tool" >/dev/null && [ ! -x "/sbin/$tool" ] && [ ! -x "/bin/$tool" ]; then
    echo "gpu-vm: $tool is missing; run scripts/deps.sh --gpu-vm" >&2
    exit 125
  fi
done
export PATH="$PATH:/sbin:/usr/sbin"

cache=$repo/target/gpu-vm
mkdir -p "$cache"

# The guest's kernel: Debian's from bookworm-backports (6.12), with its modules, unpacked once.
# Bookworm's own 6.1 lacks what explicit sync needs: virtio-gpu's timeline syncobjs came in 6.4,
# the syncobj eventfd a compositor waits with in 6.6. apt reads the backports index through a
# configuration of its own here, so the machine's package sources stay as they are.
suite=bookworm-backports
if [ ! -f "$cache/kernel/ready" ] || [ "$(sed -n 2p "$cache/kernel/ready")" != "$suite" ]; then
  rm -rf "$cache/kernel" "$cache/debs" "$cache/apt"
  mkdir -p "$cache/debs" "$cache/kernel" "$cache/apt/lists/partial" "$cache/apt/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    > "$cache/apt/sources.list"
  apt_own=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
           -o "Dir::Cache::pkgcache=$cache/apt/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$cache/apt/srcpkgcache.bin")
  if ! apt-get "${apt_own[@]}" update >"$cache/apt/update.log" 2>&1; then
    echo "gpu-vm: cannot read the $suite package index:" >&2
    tail -5 "$cache/apt/update.log" >&2
    exit 125
  fi
  fetch() {
    if ! (cd "$cache/debs" && apt-get "${apt_own[@]}" download "$1/$suite" >"$cache/apt/download.log" 2>&1); then
      echo "gpu-vm: cannot download $1 from $suite:" >&2
      tail -5 "$cache/apt/download.log" >&2
      exit 125
    fi
  }
  fetch linux-image-amd64
  image=$(dpkg-deb -f "$cache"/debs/linux-image-amd64_*.deb Depends | grep -o 'linux-image-[^ ,]*' || true)
  if [ -z "$image" ]; then
    echo "gpu-vm: linux-image-amd64 from $suite names no kernel image" >&2
    exit 125
  fi
  fetch "$image"
  dpkg-deb -x "$cache"/debs/linux-image-[0-9]*.deb "$cache/kernel"
  release=$(ls "$cache/kernel/lib/modules")
  # Its modules come xz-compressed; busybox's insmod in the initial RAM disk wants them plain.
  find "$cache/kernel/lib/modules" -name '*.ko.xz' -exec xz -d {} +
  depmod -b "$cache/kernel" "$release"
  printf '%s\n%s\n' "$release" "$suite" > "$cache/kernel/ready"
  rm -rf "$cache/debs" "$cache/apt"
fi
release=$(sed -n 1p "$cache/kernel/ready")
modules=$cache/kernel/lib/modules/$release

# The initial RAM disk: busybox, the modules for virtio and 9p, and an init that mounts this
# machine's root read-only under a RAM overlay and starts the guest script.
initrd=$cache/initrd-$release.gz
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
  ir=$(mktemp -d)
  mkdir -p "$ir/bin" "$ir/mods" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/host" "$ir/rw" "$ir/root"
  cp "$(command -v busybox)" "$ir/bin/busybox"
  order=""
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    for dep in $(modprobe -d "$cache/kernel" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'); do
      name=$(basename "$dep")
      case " $order " in *" $name "*) continue ;; esac
      cp "$dep" "$ir/mods/$name"
      order="$order $name"
    done
  done
  cat > "$ir/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $order; do insmod /mods/\$m || echo "gpu-vm: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose root /host || exec sh
mount -t tmpfs -o size=75% rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /root || exec sh
mount --move /dev /root/dev
umount /proc /sys
# The kernel hands its unknown parameters to init as variables: gpuvm is the guest script.
exec switch_root /root /bin/sh "\$gpuvm"
EOF
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$initrd.tmp")
  mv "$initrd.tmp" "$initrd"
  rm -rf "$ir"
fi

run=$(mktemp -d "$cache/run.XXXXXX")
if [ -z "$out" ]; then out=$run/out; fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
xvfb_pid=""
cleanup() {
  if [ -n "$xvfb_pid" ]; then kill "$xvfb_pid" 2>/dev/null || true; fi
  rm -f "$run/guest.sh" "$run/env" "$run/xvfb.log"; rmdir "$run/out" "$run" 2>/dev/null || true
}
trap cleanup EXIT

# What the guest runs: mounts, loopback, the GPU driver, then the command.
{
  printf 'export %q\n' "PATH=$PATH"
  env | grep -E '^(HOME|CARGO_[A-Z_]*|RUST[A-Z_]*|PUNKTFUNK_[A-Z0-9_]*|CI)=' | while IFS= read -r kv; do
    printf 'export %q\n' "$kv"
  done
} > "$run/env"
{
  echo '#!/bin/sh'
  echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs run /run'
  echo 'mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm'
  # /tmp stays this machine's (under the RAM overlay): a checkout may live there.
  echo 'mkdir -p /tmp/.X11-unix; chmod 1777 /tmp /tmp/.X11-unix'
  printf 'mkdir -p %q && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out %q\n' "$out" "$out"
  printf '. %q\n' "$run/env"
  echo 'ip link set lo up 2>/dev/null || busybox ip link set lo up'
  printf 'modprobe -d %q -S %q virtio-gpu\n' "$cache/kernel" "$release"
  echo 'i=0; while [ ! -e /dev/dri/renderD128 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done'
  printf ': > %q\n' "$out/.gpu-vm-started"
  printf 'cd %q\n' "$PWD"
  printf '%q ' "$@"
  echo
  printf 'echo $? > %q\n' "$out/.gpu-vm-status"
  # Power off, and wait for it in the shell itself: a program run from the 9p root may fail to
  # load while the devices go, and init exiting would panic the kernel.
  echo 'sync; echo o > /proc/sysrq-trigger; while :; do :; done'
} > "$run/guest.sh"
rm -f "$out/.gpu-vm-status"

# QEMU shows the virtual GPU's output in an SDL window with a GL context: on an X server of its
# own, whose GL is Mesa's.
for display in $(seq 90 140); do
  [ -e "/tmp/.X11-unix/X$display" ] || [ -e "/tmp/.X$display-lock" ] || break
done
mkdir -p /tmp/.X11-unix
Xvfb ":$display" -screen 0 640x480x24 -nolisten tcp >"$run/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$display" ] && break; sleep 0.1; done

# A guest that ends before the command starts is started again, at most three times in all:
# once, its kernel panicked while booting (a trap on code being patched, `Oops: int3` in
# sched_clock_cpu, under QEMU's multi-threaded TCG). A guest that started the command is not.
set +e
for boot in 1 2 3; do
  rm -f "$out/.gpu-vm-started"
  DISPLAY=":$display" SDL_VIDEODRIVER=x11 timeout "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "$(nproc)" -m "$memory" \
    -nographic -serial mon:stdio -no-reboot -nic none \
    -kernel "$cache/kernel/boot/vmlinuz-$release" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 gpuvm=$run/guest.sh" \
    -virtfs "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap" \
    -vga none -device virtio-gpu-gl-pci -display sdl,gl=on
  qemu=$?
  started=$([ -f "$out/.gpu-vm-started" ] && echo yes)
  if [ -f "$out/.gpu-vm-status" ] || [ -n "$started" ] || [ "$qemu" -eq 124 ]; then break; fi
  if [ "$boot" -lt 3 ]; then
    echo "gpu-vm: the virtual machine ended before the command started (qemu exit $qemu); starting it again" >&2
  fi
done
set -e
rm -f "$out/.gpu-vm-started"
if [ ! -f "$out/.gpu-vm-status" ]; then
  if [ "$qemu" -eq 124 ]; then
    echo "gpu-vm: the command ran past $limit s; the virtual machine was stopped" >&2
  elif [ -n "$started" ]; then
    echo "gpu-vm: the virtual machine ended while the command ran (qemu exit $qemu)" >&2
  else
    echo "gpu-vm: the virtual machine ended before the command started, $boot times (qemu exit $qemu)" >&2
  fi
  exit 125
fi
status=$(cat "$out/.gpu-vm-status")
rm -f "$out/.gpu-vm-status"
exit "$status"
