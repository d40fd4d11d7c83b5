#!/usr/bin/env bash
# Compares qorestor with restic and borg on the benchmark dataset, in one bench/run_peers.py
# invocation (so that ratios hold on a noisy machine). Builds the release binary first.
# Usage: bench/peers.sh [run_peers.py options...]   e.g. bench/peers.sh --mode stream
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1 --gens 5 --seed 42)
# and Debian packages restic borgbackup b3sum.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
export QS="$here/target/release/qorestor"
export ENGINE_INIT='"$QS" --data "$REPO" init && "$QS" --data "$REPO" container add bench --type object'
export ENGINE_BACKUP_STREAM='"$QS" --data "$REPO" put "bench/$GEN" - < "$SRC"'
export ENGINE_RESTORE_STREAM='"$QS" --data "$REPO" get "bench/$GEN" - > "$DEST"'
export RESULTS=${RESULTS:-/tmp/qorestor-bench/results-$(date +%Y%m%d-%H%M%S)}
if [ $# -eq 0 ]; then set -- --mode stream; fi
python3 "$here/bench/run_peers.py" "$@" restic borg engine
echo "results: $RESULTS/peers.csv"
