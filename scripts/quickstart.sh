#!/usr/bin/env bash
# The quick start (a one-minute tour; the main job is `qorestor serve`, see the README): builds the release
# binary, stores the same backup stream twice in a fresh data directory, reads it back, and
# shows the savings. Usage: scripts/quickstart.sh [DATA_DIR] (default: a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p qorestor-cli
qs=./target/release/qorestor
data=${1:-$(mktemp -d /tmp/qorestor-quickstart.XXXXXX)}
src=$(mktemp /tmp/qorestor-quickstart-src.XXXXXX)
trap 'rm -f "$src" "$src.back"' EXIT
# A stand-in for a nightly full: this repository's sources as a tar stream, plus random bytes.
{ tar cf - --exclude=./target --exclude=./fuzz/target . 2>/dev/null; head -c 20000000 /dev/urandom; } > "$src"
export QORESTOR_DATA=$data
$qs init
$qs container add nightly --type object >/dev/null
$qs put nightly/monday.tar "$src"
$qs put nightly/tuesday.tar "$src"
$qs get nightly/tuesday.tar "$src.back"
cmp "$src" "$src.back" && echo "tuesday.tar read back bit-exact"
$qs ls nightly
$qs stats --container nightly
echo "data directory: $data (export QORESTOR_DATA=$data to keep using it)"
