#!/usr/bin/env bash
# NDMP benchmark: backup and restore of a 1 GiB generation tree of the shared dataset through
# `qorestor serve --ndmp-listen` with Amanda's ndmjob as DMA (harness/ndmp_probe.py, its e2e
# tests at 10 KiB and 64 KiB records: TIME lines; harness/build_ndmjob.sh builds ndmjob once), next to writing the same tar
# straight through `qorestor put` and reading it back with `qorestor get` in the same run.
#
# Usage: bench/ndmp.sh                 (TREE=DIR to back up another tree)
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1
# --gens 5 --seed 42), amanda-common, tar. Numbers on a shared machine are noisy: compare the
# lines of one run with each other, not across runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DS=${DS:-/tmp/qorestor-bench/ds}
TREE=${TREE:-$DS/trees/gen1}
WORK=${WORK:-/tmp/qorestor-bench/ndmp}
[ -d "$TREE" ] || { echo "bench/ndmp.sh: no tree at $TREE (generate the dataset first)" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
QS="$here/target/release/qorestor"
rm -rf "$WORK"; mkdir -p "$WORK"
bytes=$(du -sb "$TREE" | cut -f1)
echo "tree $TREE: $bytes bytes"

# --- NDMP: serve, then the probe's e2e backup and restore (with diff -r of the restore) -----
D=$WORK/ndmp-data
"$QS" --data "$D" vtl add lib --storage-group DefaultGroup --drives 1 --slots 4 --tapes 2 \
    --tape-size 100GB > /dev/null
"$QS" --data "$D" vtl load lib --barcode QS0001L5 --drive 0 > /dev/null
printf 'bench\n' | "$QS" --data "$D" ndmp update --user ndmp --password-stdin > /dev/null
"$QS" --data "$D" serve --ndmp-listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q '^listening ndmp' "$WORK/serve.out" && break; sleep 0.1; done
port=$(awk '/^listening ndmp/ { n = split($3, a, ":"); print a[n] }' "$WORK/serve.out")
python3 "$here/harness/ndmp_probe.py" --port "$port" --user ndmp --password bench --tape lib/tape0 \
    --tests e2e --source "$TREE" --timeout 3600 --work "$WORK/probe" | grep -E '^(TIME|PASS|FAIL|SKIP)|passed'
kill -TERM $serve; wait $serve || true
trap - EXIT
"$QS" --data "$D" stats --json > "$WORK/ndmp-stats.json"

# --- the same tar straight through put / get -----------------------------------------------
Q=$WORK/put-data
"$QS" --data "$Q" container add bench --storage-group DefaultGroup --type object > /dev/null
t0=$(date +%s.%N)
tar -cf - -C "$TREE" . | "$QS" --data "$Q" put bench/tree - > /dev/null
echo "TIME  put $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.2f", a-b}') s"
mkdir -p "$WORK/get-restore"
t0=$(date +%s.%N)
"$QS" --data "$Q" get bench/tree - | tar -xf - -C "$WORK/get-restore"
echo "TIME  get $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.2f", a-b}') s"
diff -r --no-dereference "$TREE" "$WORK/get-restore" > /dev/null && echo "get restore identical"
echo "stats of the NDMP data directory (the cartridge holds the last backup): $(tr -d '\n ' < "$WORK/ndmp-stats.json")"
