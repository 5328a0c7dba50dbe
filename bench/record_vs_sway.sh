#!/usr/bin/env bash
# Host CPU time per recorded frame: `punktfunk run` recording a client to H.264, next to sway's
# headless backend (pixman renderer) with wf-recorder recording the same client with the same
# libx264 settings (ultrafast, zerolatency, 20 Mbit/s, yuv420p). Both run back to back in this
# script, so the ratio compares like with like on a noisy machine.
#
# CPU counted: punktfunk's own process (compositor, conversion, encoder; not the app); for the
# peer, sway's process over the recording window plus the whole wf-recorder process (capture,
# pixel conversion, encoder; not the app). Frames: what ends up in each output file.
#
# Usage: bench/record_vs_sway.sh [runs]
#   env: PUNKTFUNK_BIN, MODE=1280x720@60, DURATION=10, CLIENT=testpattern|weston-simple-shm
# The client defaults to punktfunk's test pattern (fullscreen, redrawn every frame):
# weston-simple-shm aborts under sway's pixman renderer ("Both buffers busy at redraw()"), so
# with CLIENT=weston-simple-shm only the punktfunk side has a figure.
# Needs: sway, wf-recorder, ffprobe (Debian: sway wf-recorder ffmpeg). sway does not run as
# root, so as root both compositors' clients and sway itself run as the user `nobody`.
set -euo pipefail

runs=${1:-3}
bin=$(realpath "${PUNKTFUNK_BIN:-target/release/punktfunk}")
mode=${MODE:-1280x720@60}
duration=${DURATION:-10}
client=${CLIENT:-testpattern}
case "$client" in
    testpattern) client_cmd=("$(realpath "${PUNKTFUNK_BIN:-target/release/punktfunk}")" testpattern) ;;
    *) client_cmd=("$(command -v "$client")") ;;
esac
size=${mode%@*}
rate=${mode#*@}
frames=$((rate * duration))
tck=$(getconf CLK_TCK)

for tool in sway wf-recorder ffprobe; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install sway wf-recorder ffmpeg)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "no punktfunk binary at $bin (cargo build --release -p punktfunk)" >&2; exit 2; }

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

as_user=()
if [ "$(id -u)" = 0 ]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi

# utime + stime of one process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

frames_in() {
    [ -s "$1" ] || { echo 0; return; }
    ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
        -of csv=p=0 "$1" || echo 0
}

punktfunk_run() {
    local log="$work/pf.log"
    "$bin" run --mode "$mode" --frames "$frames" --output "$work/pf.h264" -- "${client_cmd[@]}" \
        >/dev/null 2>"$log"
    # "recorded N frames ... host CPU X ms per frame"
    sed -n 's/.*host CPU \([0-9.]*\) ms per frame.*/\1/p' "$log"
}

sway_run() {
    local rt="$work/rt-$1"
    mkdir -p "$rt"
    chmod 700 "$rt"
    [ -n "${as_user[*]}" ] && chown 65534:65534 "$rt" "$work"
    cat >"$work/sway.conf" <<EOF
output HEADLESS-1 mode ${size}@${rate}Hz
default_border none
for_window [title=".*"] fullscreen enable
exec ${client_cmd[*]}
EOF
    chmod 644 "$work/sway.conf"
    env -i PATH="$PATH" XDG_RUNTIME_DIR="$rt" WLR_BACKENDS=headless WLR_RENDERER=pixman \
        WLR_LIBINPUT_NO_DEVICES=1 "${as_user[@]}" sway -c "$work/sway.conf" \
        >"$work/sway.log" 2>&1 &
    local sway=$!
    pids+=("$sway")
    for _ in $(seq 100); do [ -S "$rt/wayland-1" ] && break; sleep 0.1; done
    sleep 2 # the test pattern maps and goes fullscreen
    env -i PATH="$PATH" XDG_RUNTIME_DIR="$rt" WAYLAND_DISPLAY=wayland-1 "${as_user[@]}" \
        wf-recorder -y -c libx264 -x yuv420p -r "$rate" \
        -p preset=ultrafast -p tune=zerolatency -p b=20000000 \
        -f "$work/sway.h264" >"$work/wf.log" 2>&1 &
    local wf=$!
    pids+=("$wf")
    sleep 0.5
    local s0
    s0=$(cpu_ticks "$sway")
    sleep "$duration"
    local s1 w1
    s1=$(cpu_ticks "$sway" 2>/dev/null || echo "$s0")
    w1=$(cpu_ticks "$wf" 2>/dev/null || echo 0)
    # wf-recorder finishes its file on SIGINT; one that hangs (no frame ever came) is killed.
    kill -INT "$wf" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$wf" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$wf" 2>/dev/null || true
    wait "$wf" 2>/dev/null || true
    kill "$sway" 2>/dev/null || true
    wait "$sway" 2>/dev/null || true
    local n
    n=$(frames_in "$work/sway.h264")
    awk -v s=$((s1 - s0)) -v w="$w1" -v n="$n" -v t="$tck" \
        'BEGIN { if (n * 10 >= f) printf "%.3f %d\n", (s + w) * 1000 / t / n, n; else print "nan 0" }'
}

echo "mode $mode, client $client, ${duration} s per recording, $runs runs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %14s %14s %12s %8s\n' run "punktfunk ms" "sway+wf ms" "sway frames" ratio
for run in $(seq "$runs"); do
    pf=$(punktfunk_run)
    sway_run "$run" >"$work/peer" || echo "nan 0" >"$work/peer"
    read -r peer n <"$work/peer" || true
    awk -v r="$run" -v a="$pf" -v b="$peer" -v n="$n" -v f="$frames" \
        'BEGIN { if (n * 10 >= f) printf "%-4s %14.3f %14.3f %12d %8.3f\n", r, a, b, n, a / b;
                 else printf "%-4s %14.3f %14s %12d %8s   (the client did not run under sway)\n", r, a, "n/a", n, "n/a" }'
done
