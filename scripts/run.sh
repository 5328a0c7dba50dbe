#!/usr/bin/env bash
# Installs what is missing, builds punktfunk and runs the host with its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p punktfunk
exec target/release/punktfunk serve "$@"
