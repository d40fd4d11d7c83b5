#!/usr/bin/env bash
# Cleaner benchmark: ingest the 5 generations of the shared dataset, delete the oldest 3, give
# the space back; qorestor's cleaner next to `restic forget --prune` in the same run. Reports
# wall/user/sys seconds, peak RSS, bytes before and after, and the ideal (a fresh store holding
# only the kept generations). qorestor's cleaner runs once per compaction threshold, each on a
# copy of the same store, so the threshold can be chosen by measurement.
#
# Usage: bench/cleaner.sh            (THRESHOLDS="0 0.3 0.5 0.7 0.9" to change the list;
#                                     SKIP_RESTIC=1 to measure qorestor only)
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1
# --gens 5 --seed 42), Debian packages restic and b3sum.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DS=${DS:-/tmp/qorestor-bench/ds}
WORK=${WORK:-/tmp/qorestor-bench/cleaner}
RESULTS=${RESULTS:-/tmp/qorestor-bench/cleaner-results-$(date +%Y%m%d-%H%M%S)}
THRESHOLDS=${THRESHOLDS:-0 0.3 0.5 0.7 0.9}
GENS=5 DELETE=3
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
QS="$here/target/release/qorestor"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/cache-restic
mkdir -p "$WORK" "$RESULTS"
CSV=$RESULTS/cleaner.csv
echo "tool,setting,wall_s,user_s,sys_s,maxrss_kb,bytes_before,bytes_after,ideal_bytes,reclaimed,ideal_reclaim,reclaim_pct,verified" > "$CSV"

# timed LABEL CMD...: runs CMD under /usr/bin/time -v; sets W U S RSS.
timed() {
  local label=$1; shift
  local tf=$RESULTS/$label.time
  /usr/bin/time -v -o "$tf" "$@" > "$RESULTS/$label.out" 2> "$RESULTS/$label.err"
  W=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tf")
  U=$(awk -F': ' '/User time/{print $2}' "$tf")
  S=$(awk -F': ' '/System time/{print $2}' "$tf")
  RSS=$(awk -F': ' '/Maximum resident/{print $2}' "$tf")
}
size() { du -sb "$1" | cut -f1; }
row() { # tool setting before after ideal verified
  local reclaimed=$(( $3 - $4 )) ideal_reclaim=$(( $3 - $5 ))
  local pct; pct=$(awk -v a=$reclaimed -v b=$ideal_reclaim 'BEGIN{printf "%.1f", b ? 100*a/b : 0}')
  echo "$1,$2,$W,$U,$S,$RSS,$3,$4,$5,$reclaimed,$ideal_reclaim,$pct,$6" >> "$CSV"
  echo "$1 $2: ${W}s user=$U sys=$S rss=${RSS}KB bytes $3 -> $4 (ideal $5): reclaimed $pct% of the ideal, verified=$6"
}
same_as_source() { # store-get-command gen
  local a b; a=$(eval "$1" | b3sum --no-names); b=$(b3sum --no-names "$DS/tars/$2.tar"); [ "$a" = "$b" ]
}

# --- qorestor: the store, and the ideal store of the kept generations only -----------------
Q=$WORK/qs; QI=$WORK/qs-ideal; rm -rf "$Q" "$QI"
"$QS" --data "$Q" container add bench --type object > /dev/null
"$QS" --data "$QI" container add bench --type object > /dev/null
for g in $(seq 1 $GENS); do
  "$QS" --data "$Q" put "bench/gen$g" "$DS/tars/gen$g.tar" > /dev/null
  if [ "$g" -gt $DELETE ]; then "$QS" --data "$QI" put "bench/gen$g" "$DS/tars/gen$g.tar" > /dev/null; fi
done
for g in $(seq 1 $DELETE); do "$QS" --data "$Q" rm "bench/gen$g" > /dev/null; done
q_ideal=$(size "$QI")
for t in $THRESHOLDS; do
  C=$WORK/qs-$t; rm -rf "$C"; cp -a "$Q" "$C"; sync
  before=$(size "$C")
  timed "qorestor-$t" "$QS" --data "$C" --json cleaner run --compact-below "$t"
  after=$(size "$C")
  v=ok
  for g in $(seq $((DELETE + 1)) $GENS); do same_as_source "\"$QS\" --data \"$C\" get bench/gen$g -" "gen$g" || v=MISMATCH; done
  row qorestor "compact-below=$t" "$before" "$after" "$q_ideal" "$v"
  rm -rf "$C"
done

# --- restic: forget --prune of the 3 oldest snapshots --------------------------------------
if [ "${SKIP_RESTIC:-0}" = 1 ]; then rm -rf "$Q" "$QI"; echo "results: $CSV"; exit 0; fi
R=$WORK/restic; RI=$WORK/restic-ideal; rm -rf "$R" "$RI" "$RESTIC_CACHE_DIR"
restic -q -r "$R" init --repository-version 2
restic -q -r "$RI" init --repository-version 2
for g in $(seq 1 $GENS); do
  restic -q -r "$R" backup --host bench --stdin --stdin-filename "gen$g.tar" < "$DS/tars/gen$g.tar"
  if [ "$g" -gt $DELETE ]; then
    restic -q -r "$RI" backup --host bench --stdin --stdin-filename "gen$g.tar" < "$DS/tars/gen$g.tar"
  fi
done
r_ideal=$(size "$RI")
ids=$(restic -q -r "$R" snapshots --json | python3 -c "
import json, sys
snaps = sorted(json.load(sys.stdin), key=lambda s: s['time'])
print(' '.join(s['short_id'] for s in snaps[:$DELETE]))")
before=$(size "$R")
# shellcheck disable=SC2086
timed restic-prune restic -r "$R" forget --prune $ids
after=$(size "$R")
v=ok
snap_of() { restic -q -r "$R" snapshots --json | python3 -c "
import json, sys
print([s['short_id'] for s in json.load(sys.stdin) if '/$1.tar' in s['paths']][0])"; }
for g in $(seq $((DELETE + 1)) $GENS); do
  same_as_source "restic -q -r \"$R\" dump $(snap_of gen$g) /gen$g.tar" "gen$g" || v=MISMATCH
done
row restic "forget --prune (defaults)" "$before" "$after" "$r_ideal" "$v"
rm -rf "$Q" "$QI" "$R" "$RI"
echo "results: $CSV"
