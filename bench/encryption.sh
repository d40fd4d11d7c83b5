#!/usr/bin/env bash
# Encryption cost: `qorestor bench` on the shared dataset with a plain storage group and with an
# encrypted one (static and internal modes), alternated ROUNDS times in the same run, so the
# ratios are comparable on this shared, noisy machine. Prints CPU-seconds per GB of generation 1
# (mostly new data: every stored chunk is sealed) and of generations 2..N (mostly duplicates:
# keyed hashing only), and the encrypted/plain ratio of each (target: under 1.15).
#
# Usage: bench/encryption.sh      (ROUNDS=3 by default; MODES="static internal")
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1
# --gens 5 --seed 42).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DS=${DS:-/tmp/qorestor-bench/ds}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-static internal}
RESULTS=${RESULTS:-/tmp/qorestor-bench/encryption-results-$(date +%Y%m%d-%H%M%S)}
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
QS="$here/target/release/qorestor"
mkdir -p "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  for mode in plain $MODES; do
    flag=()
    [ "$mode" != plain ] && flag=(--encryption "$mode")
    "$QS" --json bench --dataset "$DS" --work "$RESULTS/work" "${flag[@]}" > "$RESULTS/$mode-$r.json"
    echo "round $r $mode done" >&2
  done
done
python3 - "$RESULTS" "$ROUNDS" plain $MODES <<'PY'
import json, sys, statistics
res, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(mode, r):
    return json.load(open(f"{res}/{mode}-{r}.json"))
def figures(rep):
    ph = [p for p in rep["phases"] if p["op"].startswith("ingest")]
    g1 = ph[0]
    rest = ph[1:]
    later_cpu = sum(p["cpu_s"] for p in rest); later_gb = sum(p["logical_bytes"] for p in rest) / 1e9
    restore = [p for p in rep["phases"] if p["op"].startswith("restore")][0]
    return g1["cpu_s_per_gb"], later_cpu / later_gb, g1["mb_per_s"], restore["cpu_s_per_gb"], rep["stored_bytes"]
med = {}
for m in modes:
    rows = [figures(load(m, r)) for r in range(1, rounds + 1)]
    med[m] = [statistics.median(col) for col in zip(*rows)]
print(f"{'group':<10} {'gen1 CPU-s/GB':>14} {'gens2+ CPU-s/GB':>16} {'gen1 MB/s':>10} {'restore CPU-s/GB':>17} {'stored bytes':>13}")
for m in modes:
    g1, later, mbs, rst, stored = med[m]
    print(f"{m:<10} {g1:>14.2f} {later:>16.2f} {mbs:>10.0f} {rst:>17.2f} {stored:>13}")
for m in modes[1:]:
    print(f"{m} / plain: gen1 CPU {med[m][0]/med['plain'][0]:.3f}, gens2+ CPU {med[m][1]/med['plain'][1]:.3f}, "
          f"restore CPU {med[m][3]/med['plain'][3]:.3f}, stored {med[m][4]/med['plain'][4]:.4f}")
print(f"(medians of {rounds} alternated rounds; results in {res})")
PY
