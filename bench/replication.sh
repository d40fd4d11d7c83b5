#!/usr/bin/env bash
# Replication benchmark: one pass of a container holding generation 1 of the shared dataset to a
# second data directory, to that directory, and to a `qorestor serve --replication-listen` on it
# over plain TCP and TLS (aes256), each through bench/delay_proxy.py at every one-way delay in
# DELAYS (milliseconds; 0 = direct). Reports wall seconds, MB/s of stored bytes sent and
# source CPU seconds, and checks the replica (b3sum of the stream read back).
#
# Usage: bench/replication.sh       (DELAYS="0 5 25" by default; QS_OTHER=/path/to/qorestor adds
#                                    a second source binary, run alternately, for an A/B)
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1
# --gens 5 --seed 42), python3, b3sum.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DS=${DS:-/tmp/qorestor-bench/ds}
WORK=${WORK:-/tmp/qorestor-bench/replication}
DELAYS=${DELAYS:-0 5 25}
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
QS="$here/target/release/qorestor"
BINS=("$QS")
if [ -n "${QS_OTHER:-}" ]; then BINS+=("$QS_OTHER"); fi
mkdir -p "$WORK"
src=$WORK/src
pw=$WORK/password
echo "bench replication password" > "$pw"

if [ ! -f "$src/.bench-ready" ]; then
  rm -rf "$src"
  "$QS" --data "$src" container add c --type object > /dev/null
  "$QS" --data "$src" put c/gen1 "$DS/tars/gen1.tar"
  touch "$src/.bench-ready"
fi
want=$(b3sum --no-names "$DS/tars/gen1.tar")
stored=$("$QS" --data "$src" --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
echo "source: gen1.tar, $stored stored bytes"

serve_pid= proxy_pid=
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2> /dev/null || true
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2> /dev/null && wait "$serve_pid" 2> /dev/null || true
  proxy_pid= serve_pid=
}
trap cleanup EXIT

# one BIN MODE DELAY: a fresh target, one pass, one line of results.
one() {
  local bin=$1 mode=$2 delay=$3 dst=$WORK/dst target
  rm -rf "$dst"
  "$QS" --data "$src" replication delete c > /dev/null 2>&1 || true
  if [ "$mode" = dir ]; then
    target=$dst
    "$QS" --data "$src" replication add c --target "$target" > /dev/null
  else
    "$QS" --data "$dst" replication set-password --password-file "$pw" > /dev/null
    "$QS" --data "$dst" serve --replication-listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
    serve_pid=$!
    for _ in $(seq 100); do grep -q "listening replication" "$WORK/serve.out" && break; sleep 0.1; done
    target=$(awk '/listening replication/ {print $3}' "$WORK/serve.out")
    if [ "$delay" != 0 ]; then
      python3 "$here/bench/delay_proxy.py" 0 "$target" "$delay" > "$WORK/proxy.out" &
      proxy_pid=$!
      for _ in $(seq 100); do grep -q listening "$WORK/proxy.out" && break; sleep 0.1; done
      target=127.0.0.1:$(awk '/listening/ {print $2}' "$WORK/proxy.out")
    fi
    "$QS" --data "$src" replication add c --target "$target" --encryption "$mode" --password-file "$pw" > /dev/null
  fi
  /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$bin" --data "$src" --json replication start c > "$WORK/run.json"
  cleanup
  local got
  got=$("$QS" --data "$dst" get c/gen1 - | b3sum --no-names)
  read -r wall user sys < "$WORK/time"
  python3 - "$WORK/run.json" "$wall" "$user" "$sys" "$stored" "$([ "$bin" = "$QS" ] && echo this || echo other)" \
    "$mode" "$delay" "$([ "$got" = "$want" ] && echo ok || echo MISMATCH)" << 'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
wall, user, sys_, stored = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print("%-5s %-6s delay %3s ms: %6.2f s  %7.1f MB/s stored  cpu %5.2f s  bytes_sent %d  %s  replica %s" % (
    sys.argv[6], sys.argv[7], sys.argv[8], wall, stored / wall / 1e6, user + sys_, d["bytes_sent"], d["state"],
    sys.argv[9]))
EOF
}

for delay in $DELAYS; do
  for mode in none aes256; do
    for bin in "${BINS[@]}"; do one "$bin" "$mode" "$delay"; done
  done
done
for bin in "${BINS[@]}"; do one "$bin" dir 0; done
