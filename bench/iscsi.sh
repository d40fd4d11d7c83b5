#!/usr/bin/env bash
# iSCSI tape throughput: bench/iscsi_tape_stream.c (libiscsi, one login, 256 KiB
# WRITE(6)/READ(6) in variable-block mode) writes and reads back MIB MiB on a virtual tape over
# loopback, with random data and with repeated data (a second full backup, as a dedup target
# sees it), next to the VTL's in-process write speed (`vtl_throughput` example: Vtl::execute
# without a network) from the same run. Reports MB/s and the daemon's CPU seconds per pass.
#
# With tgt installed (Debian package `tgt`, run as root; TGT=0 to skip), the same passes run
# against tgtd's plain file-backed tape (no dedup) in the same run: the issue's anchor, measured
# next to ours instead of quoted from another day.
#
# Usage: bench/iscsi.sh                 (MIB=1024 by default; WORK=/tmp/qorestor-bench/iscsi)
# Needs: Debian packages libiscsi-dev, gcc, pkg-config (and tgt for the reference). Numbers on a
# shared machine are noisy: quote them with the CPU seconds and the same run's reference figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
MIB=${MIB:-1024}
WORK=${WORK:-/tmp/qorestor-bench/iscsi}
rm -rf "$WORK" && mkdir -p "$WORK"

cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-vtl --example vtl_throughput
QS="$here/target/release/qorestor"
cc -O2 -Wall -o "$WORK/iscsi_tape_stream" "$here/bench/iscsi_tape_stream.c" $(pkg-config --cflags --libs libiscsi)

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
  out=$("$WORK/iscsi_tape_stream" -m "$MIB" -p "$pattern" -c 0 -s 1000 -d 500 "iscsi://$ADDR/$IQN/1")
  after=$(cpu)
  echo "$out" | sed "s/^/iscsi $pattern: /"
  w=$(echo "$out" | awk '/^write/{print $2}'); r=$(echo "$out" | awk '/^read/{print $2}')
  echo "$out" | grep -q '^verify ok' || { echo "iscsi $pattern: verify failed" >&2; exit 1; }
  results+=("$pattern write $w MB/s, read $r MB/s, daemon CPU $(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.1f", b-a}') s")
done
kill -TERM $SERVE; wait $SERVE || true
trap - EXIT

# tgt: a file-backed tape on its own portal; the same tool and passes (tape rewritten from BOT).
tgt_results=()
if [ "${TGT:-1}" != 0 ] && command -v tgtd >/dev/null && [ "$(id -u)" = 0 ]; then
  TGT_PORT=${TGT_PORT:-3262}
  tgtimg --op new --device-type tape --barcode TGT001 --size $((MIB * 2 + 64)) --type data \
    --file "$WORK/tgt-tape.img" >/dev/null
  # Its own control port (-C), so that a system tgtd is left alone.
  tgtd -f -C 7 --iscsi portal=127.0.0.1:$TGT_PORT > "$WORK/tgtd.log" 2>&1 &
  TGTD=$!
  trap 'kill -9 $TGTD 2>/dev/null || true' EXIT
  for _ in $(seq 50); do tgtadm -C 7 --lld iscsi --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
  TGT_IQN=iqn.2024-01.org.qorestor:tgt-reference
  tgtadm -C 7 --lld iscsi --op new --mode target --tid 1 -T $TGT_IQN
  tgtadm -C 7 --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --bstype ssc --device-type tape \
    -b "$WORK/tgt-tape.img"
  tgtadm -C 7 --lld iscsi --op bind --mode target --tid 1 -I ALL
  # tgt's defaults (8 KiB data segments, 64 KiB first burst, solicited data first) halve its
  # write speed here; the reference is tgt at its best, with the sizes our target offers.
  for kv in MaxRecvDataSegmentLength=262144 MaxXmitDataSegmentLength=262144 \
    FirstBurstLength=262144 MaxBurstLength=16776192 InitialR2T=No ImmediateData=Yes; do
    tgtadm -C 7 --lld iscsi --op update --mode target --tid 1 -n "${kv%=*}" -v "${kv#*=}"
  done
  tgt_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$TGTD/stat"; }
  for pattern in random repeat; do
    before=$(tgt_cpu)
    out=$("$WORK/iscsi_tape_stream" -m "$MIB" -p "$pattern" "iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1")
    after=$(tgt_cpu)
    echo "$out" | sed "s/^/tgt $pattern: /"
    w=$(echo "$out" | awk '/^write/{print $2}'); r=$(echo "$out" | awk '/^read/{print $2}')
    tgt_results+=("$pattern write $w MB/s, read $r MB/s, tgtd CPU $(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.1f", b-a}') s")
  done
  kill -9 $TGTD; wait $TGTD 2>/dev/null || true
  trap - EXIT
  rm -f "$WORK/tgt-tape.img"
else
  echo "tgt reference skipped (needs root and the tgt package; TGT=${TGT:-1})"
fi

gib=$(awk -v m="$MIB" 'BEGIN{printf "%.3f", m/1024}')
inproc=$("$here/target/release/examples/vtl_throughput" "$gib" 1 "$WORK" | tail -1)
echo "in-process: $inproc"
v=$(echo "$inproc" | sed -n 's/.*VTL execute \([0-9.]*\) MB\/s.*/\1/p')
echo "== iSCSI over loopback, ${MIB} MiB, 256 KiB blocks (same run)"
for l in "${results[@]}"; do echo "  $l"; done
echo "  in-process VTL write: $v MB/s"
if [ ${#tgt_results[@]} -gt 0 ]; then
  echo "== tgt file-backed tape (no dedup), same run"
  for l in "${tgt_results[@]}"; do echo "  $l"; done
  for i in 0 1; do
    awk -v a="${results[$i]}" -v b="${tgt_results[$i]}" 'BEGIN{
      split(a, x, " "); split(b, y, " ");
      printf "  %s: qorestor/tgt write %.2fx, read %.2fx\n", x[1], x[3] / y[3], x[6] / y[6] }'
  done
fi
w=$(echo "${results[0]}" | awk '{print $3}')
awk -v w="$w" -v v="$v" 'BEGIN{if (v > 0) printf "  random write over iSCSI = %.0f%% of in-process\n", 100*w/v}'
