#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain.
#
#   scripts/fuzz.sh build                  build every target in fuzz/fuzz_targets
#   scripts/fuzz.sh list                   name them
#   scripts/fuzz.sh run TARGET [OPTION...] fuzz one target until stopped (or -max_total_time=S,
#                                          -runs=N); new inputs go to fuzz/work/TARGET, crashes
#                                          to fuzz/artifacts/TARGET
#   scripts/fuzz.sh seeds [TEST...]        record real traffic: run end-to-end tests (default: a set
#                                          that covers every protocol) with hosts that copy what
#                                          their parsers read, add the repo's config files, and
#                                          merge it all into fuzz/corpus (only inputs that add
#                                          coverage are kept)
#   scripts/fuzz.sh merge TARGET           fold fuzz/work/TARGET into fuzz/corpus/TARGET
#   scripts/fuzz.sh smoke [SECONDS]        every target for SECONDS (default 10) on its checked-in
#                                          corpus, then every file of fuzz/regressions once; fails
#                                          on the first crash
#
# cargo-fuzz needs a nightly toolchain only for its sanitizers. Without them, libFuzzer's
# coverage instrumentation is a set of stable rustc flags (the same cargo-fuzz passes), and
# libfuzzer-sys builds libFuzzer itself with the C++ compiler: that is all this script does.
# Panics, failed assertions (debug assertions and overflow checks are on), aborts, timeouts
# and running out of memory are found; memory errors in unsafe code are not (no AddressSanitizer).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN="target/$TRIPLE/release"
targets() { ls fuzz_targets | sed 's/\.rs$//'; }

build() {
  # --target keeps the flags off build scripts and proc macros.
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing" CARGO_INCREMENTAL=0 cargo build --locked --release --target "$TRIPLE" --bins
}

run() {
  local target=$1
  shift
  [ -f "fuzz_targets/$target.rs" ] || { echo "no fuzz target $target (see: $0 list)" >&2; exit 2; }
  mkdir -p "work/$target" "artifacts/$target" "corpus/$target"
  # New inputs go to the first directory; the checked-in corpus is only read.
  "$BIN/$target" -artifact_prefix="artifacts/$target/" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 "$@" "work/$target" "corpus/$target"
}

# Keeps, of DIR's inputs, those that add coverage to fuzz/corpus/TARGET.
merge() {
  local target=$1 from=$2
  mkdir -p "corpus/$target"
  [ -d "$from" ] && [ -n "$(ls -A "$from")" ] || return 0
  "$BIN/$target" -merge=1 -rss_limit_mb=2048 -timeout=10 "corpus/$target" "$from" 2>&1 \
    | grep -E "MERGE-OUTER: [0-9]+ new files" || true
}

seeds() {
  local rec
  rec=$(mktemp -d)
  build
  (cd .. && cargo build -p punktfunk -p punktfunk-client)
  if [ $# -eq 0 ]; then
    set -- tests/e2e/test_walking_skeleton.py tests/e2e/test_input.py tests/e2e/test_native.py \
      tests/e2e/test_authz.py tests/e2e/test_state.py tests/e2e/test_gamepads.py \
      tests/e2e/test_pen.py tests/e2e/test_audio.py tests/e2e/test_mgmt_api.py
  fi
  (cd .. && PUNKTFUNK_FUZZ_CORPUS="$rec" PUNKTFUNK_E2E_REQUIRE_HOST=1 \
    PUNKTFUNK_BIN="$PWD/target/debug/punktfunk" .venv/bin/python -m pytest -q -x "$@") || true
  mkdir -p "$rec/config"
  cp ../assets/config.toml "$rec/config/assets-config.toml"
  # The recordings name this checkout and the tests' temporary directories; neutral paths of
  # the same shape go into the repo instead.
  python3 - "$rec" "$(cd .. && pwd)" <<'PY'
import pathlib, re, sys
root, repo = pathlib.Path(sys.argv[1]), sys.argv[2].encode()
for f in root.rglob("*"):
    if f.is_file():
        b = f.read_bytes().replace(repo, b"/opt/punktfunk")
        b = re.sub(rb"/tmp/pytest-of-[^/]+/pytest-[0-9]+/", b"/tmp/test/", b)
        f.write_bytes(b)
PY
  for t in $(targets); do
    echo "== $t: $(ls "$rec/$t" 2>/dev/null | wc -l) recorded"
    merge "$t" "$rec/$t"
  done
  rm -rf "$rec"
}

case "${1:-}" in
  build) build ;;
  list) targets ;;
  run)
    [ $# -ge 2 ] || { echo "usage: $0 run TARGET [libFuzzer option...]" >&2; exit 2; }
    shift
    [ -x "$BIN/$1" ] || build
    run "$@"
    ;;
  seeds) shift; seeds "$@" ;;
  merge)
    [ $# -eq 2 ] || { echo "usage: $0 merge TARGET" >&2; exit 2; }
    [ -x "$BIN/$2" ] || build
    merge "$2" "work/$2"
    ;;
  smoke)
    seconds=${2:-10}
    build
    for t in $(targets); do
      echo "== $t: ${seconds}s"
      mkdir -p work
      log="work/$t.log"
      if ! run "$t" -max_total_time="$seconds" > "$log" 2>&1; then
        grep -E -A12 "panicked|ERROR" "$log" >&2 || tail -20 "$log" >&2
        echo "fuzz target $t failed; the input is in fuzz/artifacts/$t" >&2
        exit 1
      fi
      grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" "$log" || true
      if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
        "$BIN/$t" "regressions/$t"/* >/dev/null 2>&1 || { echo "$t: a regression input fails again" >&2; exit 1; }
      fi
    done
    ;;
  *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
