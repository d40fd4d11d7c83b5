#!/usr/bin/env bash
# iSCSI tape throughput: ../shared/harness/iscsi-tape-bench.c (libiscsi, one login, 256 KiB
# WRITE(6)/READ(6) in variable-block mode) writes and reads back MIB MiB on a virtual tape over
# loopback, with random data and with repeated data (a second full backup, as a dedup target
# sees it), next to the VTL's in-process write speed (`vtl_throughput` example: Vtl::execute
# without a network) from the same run. Reports MB/s and the daemon's CPU seconds per pass.
#
# Usage: bench/iscsi.sh                 (MIB=1024 by default; WORK=/tmp/qorestor-bench/iscsi)
# Needs: Debian packages libiscsi-dev, gcc, pkg-config. Numbers on a shared machine are noisy:
# quote them with the CPU seconds and the in-process figure of the same run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$here/../shared/harness}
MIB=${MIB:-1024}
WORK=${WORK:-/tmp/qorestor-bench/iscsi}
rm -rf "$WORK" && mkdir -p "$WORK"

cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-vtl --example vtl_throughput
QS="$here/target/release/qorestor"
gcc -O2 -Wall -o "$WORK/iscsi-tape-bench" "$HARNESS/iscsi-tape-bench.c" $(pkg-config --cflags --libs libiscsi)

data=$WORK/data
"$QS" --data "$data" system set-name bench >/dev/null
"$QS" --data "$data" vtl add lib --storage-group DefaultGroup --slots 4 --drives 1 --tapes 2 \
  --tape-size 100GB >/dev/null
IQN=iqn.2024-01.org.qorestor:bench:lib
"$QS" --data "$data" serve --iscsi-listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening iscsi' "$WORK/serve.out" && break; sleep 0.1; done
ADDR=$(awk '/^listening iscsi/{print $3}' "$WORK/serve.out")
[ -n "$ADDR" ] || { echo "serve did not start: $(cat "$WORK/serve.err")" >&2; exit 1; }

# CPU seconds (user+system) the daemon has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVE/stat"; }

results=()
for pattern in random repeat; do
  before=$(cpu)
  # The changer (LUN 0) moves the cartridge of slot 1000 into drive 500 (LUN 1) and back.
  out=$("$WORK/iscsi-tape-bench" -m "$MIB" -p "$pattern" -c 0 -s 1000 -d 500 "iscsi://$ADDR/$IQN/1")
  after=$(cpu)
  echo "$out" | sed "s/^/iscsi $pattern: /"
  w=$(echo "$out" | awk '/^write/{print $2}'); r=$(echo "$out" | awk '/^read/{print $2}')
  echo "$out" | grep -q '^verify ok' || { echo "iscsi $pattern: verify failed" >&2; exit 1; }
  results+=("$pattern write $w MB/s, read $r MB/s, daemon CPU $(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.1f", b-a}') s")
done
kill -TERM $SERVE; wait $SERVE || true
trap - EXIT

gib=$(awk -v m="$MIB" 'BEGIN{printf "%.3f", m/1024}')
inproc=$("$here/target/release/examples/vtl_throughput" "$gib" 1 "$WORK" | tail -1)
echo "in-process: $inproc"
v=$(echo "$inproc" | sed -n 's/.*VTL execute \([0-9.]*\) MB\/s.*/\1/p')
echo "== iSCSI over loopback, ${MIB} MiB, 256 KiB blocks (same run)"
for l in "${results[@]}"; do echo "  $l"; done
echo "  in-process VTL write: $v MB/s"
w=$(echo "${results[0]}" | awk '{print $3}')
awk -v w="$w" -v v="$v" 'BEGIN{if (v > 0) printf "  random write over iSCSI = %.0f%% of in-process\n", 100*w/v}'
