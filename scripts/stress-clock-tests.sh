#!/usr/bin/env bash
# The tests that used to wait on the wall clock (the cleaner scheduler and `serve`'s cleaner
# window, the VTL's flush-interval tick, the NDMP mover and server), run RUNS times in a row
# (default 20) while `stress-ng --cpu N` loads the machine. They wait on events, so load may
# slow them but never fail them: the script stops at the first failure and prints its output.
# Prints each round's seconds per group and a min/median/max summary.
#
# Usage: scripts/stress-clock-tests.sh [RUNS]
# Environment: STRESS_CPUS (stress-ng workers, default: the number of CPUs; 0 runs unloaded).
# Needs: stress-ng (Debian: apt-get install stress-ng), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
CPUS=${STRESS_CPUS:-$(nproc)}
case "$RUNS" in '' | *[!0-9]*) echo "stress-clock-tests: RUNS must be a number, not '$RUNS'" >&2; exit 2 ;; esac
if [ "$CPUS" != 0 ] && ! command -v stress-ng >/dev/null; then
  echo "stress-clock-tests: needs stress-ng (apt-get install stress-ng), or STRESS_CPUS=0" >&2
  exit 2
fi

# group name | cargo selection of the test binary | test name filter
GROUPS_=(
  "scheduler|-p qorestor-cli --bin qorestor|scheduler::"
  "serve|-p qorestor-cli --test serve|"
  "vtl-tick|-p qorestor-vtl --test vtl|durability::tick_flushes_an_idle_drive_once_the_interval_has_passed"
  "ndmp-mover|-p qorestor-ndmp --test ndmp|mover::"
  "ndmp-server|-p qorestor-ndmp --test ndmp|server::"
)

# Build first, unloaded; find each test executable (and its package directory, the test's cwd).
declare -A EXE DIR
for g in "${GROUPS_[@]}"; do
  IFS='|' read -r name sel _ <<< "$g"
  # shellcheck disable=SC2086
  read -r exe dir < <(cargo test $sel --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"], os.path.dirname(m["manifest_path"]))
')
  [ -x "${exe:-}" ] || { echo "stress-clock-tests: cannot build the tests of $name ($sel)" >&2; exit 1; }
  EXE[$name]=$exe DIR[$name]=$dir
done

STRESS_PID=
if [ "$CPUS" != 0 ]; then
  stress-ng --cpu "$CPUS" --quiet &
  STRESS_PID=$!
  trap 'kill "$STRESS_PID" 2>/dev/null; wait "$STRESS_PID" 2>/dev/null || true' EXIT
fi
if [ -n "$STRESS_PID" ]; then load="stress-ng --cpu $CPUS (pid $STRESS_PID)"; else load="no load"; fi
echo "stress-clock-tests: $RUNS rounds under $load"

LOG=$(mktemp /tmp/stress-clock-tests.XXXXXX)
TIMES=$(mktemp /tmp/stress-clock-tests-times.XXXXXX)
T0=$(date +%s.%N)
for round in $(seq 1 "$RUNS"); do
  line="round $round:"
  for g in "${GROUPS_[@]}"; do
    IFS='|' read -r name _ filter <<< "$g"
    t=$(date +%s.%N)
    # shellcheck disable=SC2086
    if ! (cd "${DIR[$name]}" && "${EXE[$name]}" $filter > "$LOG" 2>&1); then
      echo "$line"
      echo "stress-clock-tests: FAILED: $name in round $round; its output:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t" "$(date +%s.%N)")
    echo "$name $s" >> "$TIMES"
    line="$line $name ${s}s"
  done
  echo "$line"
done
python3 - "$TIMES" "$T0" "$RUNS" <<'EOF'
import statistics, sys, time
times = {}
for line in open(sys.argv[1]):
    name, s = line.split()
    times.setdefault(name, []).append(float(s))
for name, t in times.items():
    print(f"{name}: min {min(t):.2f} s, median {statistics.median(t):.2f} s, max {max(t):.2f} s")
print(f"all {sys.argv[3]} rounds passed in {time.time() - float(sys.argv[2]):.0f} s")
EOF
rm -f "$LOG" "$TIMES"
