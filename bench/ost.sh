#!/usr/bin/env bash
# OST benchmark: the shared dataset's five generations written to `qorestor serve --ost-listen`
# over loopback with `qorestor ost put`, optimized (--mode dedupe) into one data directory and
# passthrough into another, against `qorestor put`/`get` on the same files. One run; prints a
# markdown table per part and the issue's checks:
#   1. optimized write of each later generation sends at most 1.2x the bytes the engine stores
#      new for it plus 1% of its logical bytes;
#   2. passthrough of the same data stores the same bytes;
#   3. passthrough of generation 1 reaches at least 80% of `qorestor put`'s throughput;
#   4. optimized writes of generations 2-5 cost the server at most 0.3x the CPU seconds per GB
#      of passthrough (wall-time ratio reported too);
#   5. restore (`ost get` of generation 5) reaches at least 80% of `qorestor get`'s throughput;
#   6. the server's peak RSS stays under 256 MiB with 8 optimized writers at once.
# Server CPU is utime+stime of serve's serving process (the supervisor's child) from /proc;
# client CPU (get, ost get) is GNU time's user+system; stored bytes are the storage unit's
# physical bytes (`ost ls --json`, the group's pack bytes).
#
# Usage: bench/ost.sh
# Needs: the dataset (python3 bench/gen_dataset.py /tmp/qorestor-bench/ds --size-gib 1 --gens 5
# --seed 42), python3, b3sum, GNU time (/usr/bin/time). Work files go to $WORK (removed at the end unless KEEP=1).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DS=${DS:-/tmp/qorestor-bench/ds}
WORK=${WORK:-/tmp/qorestor-bench/ost}
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p qorestor-cli
QS="$here/target/release/qorestor"
rm -rf "$WORK"
mkdir -p "$WORK"
pw=$WORK/password
echo "bench ost password" > "$pw"
tick=$(getconf CLK_TCK)

serve_pids=()
cleanup() {
  for p in "${serve_pids[@]}"; do kill -TERM "$p" 2> /dev/null && wait "$p" 2> /dev/null || true; done
  serve_pids=()
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# start DIR: a data directory with storage unit lsu and user bench, served; sets addr and pid.
start() {
  local dir=$1
  if [ ! -d "$dir" ]; then
    "$QS" --data "$dir" init > /dev/null
    "$QS" --data "$dir" container add lsu --type ost > /dev/null
    "$QS" --data "$dir" user add bench --role ost --password-stdin < "$pw" > /dev/null
  fi
  : > "$dir.serve.out"
  "$QS" --data "$dir" serve --ost-listen 127.0.0.1:0 > "$dir.serve.out" 2> "$dir.serve.err" &
  pid=$!
  serve_pids+=("$pid")
  for _ in $(seq 300); do grep -q "listening ost" "$dir.serve.out" && break; sleep 0.1; done
  addr=$(awk '/listening ost/ {print $3}' "$dir.serve.out")
  # serve is a supervisor; the server's work is done by its serving process.
  srv=$(pgrep -P "$pid" | head -n 1)
}

stop() {
  kill -TERM "$1"
  wait "$1" 2> /dev/null || true
}

cpu() { awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
physical() {
  "$QS" --json ost ls --server "$addr" --user bench --password-file "$pw" | json 'd[0]["physical_bytes"]'
}
now() { date +%s.%N; }

# write_gens MODE: gens 1-5 into a fresh directory; one line per generation into $WORK/MODE.tsv.
write_gens() {
  local mode=$1 dir=$WORK/$1
  start "$dir"
  : > "$WORK/$mode.tsv"
  for g in 1 2 3 4 5; do
    local before c0 t0 out t1 c1 after
    before=$(physical); c0=$(cpu "$srv"); t0=$(now)
    out=$("$QS" --json ost put --server "$addr" --user bench --password-file "$pw" --lsu lsu --image "gen$g" \
      --mode "$mode" "$DS/tars/gen$g.tar")
    t1=$(now); c1=$(cpu "$srv"); after=$(physical)
    local logical sent
    logical=$(echo "$out" | json 'd["logical_bytes"]')
    sent=$(echo "$out" | json 'd["bytes_sent"]')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$g" "$logical" "$sent" "$((after - before))" \
      "$(echo "$t1 - $t0" | bc -l)" "$(echo "$c1 - $c0" | bc -l)" >> "$WORK/$mode.tsv"
  done
}

write_gens dedupe
opt_pid=$pid opt_addr=$addr opt_srv=$srv
write_gens passthrough
stop "$pid"

# Local put and get of the same files.
local_dir=$WORK/local
"$QS" --data "$local_dir" init > /dev/null
"$QS" --data "$local_dir" container add c --type object > /dev/null
t0=$(now); "$QS" --data "$local_dir" put c/gen1 "$DS/tars/gen1.tar"; t1=$(now)
put_secs=$(echo "$t1 - $t0" | bc -l)
for g in 2 3 4 5; do "$QS" --data "$local_dir" put "c/gen$g" "$DS/tars/gen$g.tar"; done
t0=$(now)
/usr/bin/time -f "%U %S" -o "$WORK/get.time" "$QS" --data "$local_dir" get c/gen5 - | b3sum --no-names > "$WORK/get.b3"
t1=$(now)
get_secs=$(echo "$t1 - $t0" | bc -l)
addr=$opt_addr
c0=$(cpu "$opt_srv"); t0=$(now)
/usr/bin/time -f "%U %S" -o "$WORK/ostget.time" \
  "$QS" ost get --server "$addr" --user bench --password-file "$pw" --lsu lsu --image gen5 - | b3sum --no-names > "$WORK/ostget.b3"
t1=$(now); c1=$(cpu "$opt_srv")
ostget_secs=$(echo "$t1 - $t0" | bc -l)
echo "$c1 - $c0" | bc -l > "$WORK/ostget.server_cpu"
want=$(b3sum --no-names "$DS/tars/gen5.tar")
[ "$(cat "$WORK/ostget.b3")" = "$want" ] || { echo "ost get of gen5 differs from gen5.tar" >&2; exit 1; }
[ "$(cat "$WORK/get.b3")" = "$want" ] || { echo "get of gen5 differs from gen5.tar" >&2; exit 1; }
stop "$opt_pid"
rm -rf "$local_dir"

# Peak RSS of a fresh server with 8 optimized writers at once.
start "$WORK/rss"
writers=()
for i in 1 2 3 4 5 6 7 8; do
  g=$(( (i - 1) % 5 + 1 ))
  "$QS" ost put --server "$addr" --user bench --password-file "$pw" --lsu lsu --image "w$i" --mode dedupe \
    "$DS/tars/gen$g.tar" > /dev/null &
  writers+=($!)
done
for w in "${writers[@]}"; do wait "$w"; done
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$srv/status")
stop "$pid"

python3 - "$WORK" "$put_secs" "$get_secs" "$ostget_secs" "$rss_kib" "$DS/tars/gen5.tar" << 'EOF'
import os, sys
work, put_secs, get_secs, ostget_secs, rss_kib, gen5 = sys.argv[1], *map(float, sys.argv[2:6]), sys.argv[6]
def rows(mode):
    out = []
    for line in open(os.path.join(work, mode + ".tsv")):
        g, logical, sent, stored, wall, cpu = line.split("\t")
        out.append(dict(g=int(g), logical=int(logical), sent=int(sent), stored=int(stored), wall=float(wall), cpu=float(cpu)))
    return out
opt, pas = rows("dedupe"), rows("passthrough")
GB = 1e9
print("| gen | mode | logical GB | sent MB | stored new MB | wall s | MB/s | server CPU s | sent ≤ 1.2×new + 1% |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
checks = []
for o, p in zip(opt, pas):
    for r, mode in ((o, "optimized"), (p, "passthrough")):
        bound = 1.2 * r["stored"] + 0.01 * r["logical"]
        ok = "" if mode == "passthrough" or r["g"] == 1 else ("yes" if r["sent"] <= bound else "NO")
        print(f"| {r['g']} | {mode} | {r['logical']/GB:.3f} | {r['sent']/1e6:.1f} | {r['stored']/1e6:.1f} | {r['wall']:.1f} | "
              f"{r['logical']/r['wall']/1e6:.0f} | {r['cpu']:.1f} | {ok} |")
    if o["g"] > 1:
        checks.append((f"1. gen {o['g']}: optimized sent {o['sent']/1e6:.1f} MB <= 1.2 x {o['stored']/1e6:.1f} + 1% of logical",
                       o["sent"] <= 1.2 * o["stored"] + 0.01 * o["logical"]))
so, sp = sum(r["stored"] for r in opt), sum(r["stored"] for r in pas)
checks.append((f"2. stored: optimized {so/1e6:.1f} MB, passthrough {sp/1e6:.1f} MB (within 1%)", abs(so - sp) <= 0.01 * sp))
pt1 = pas[0]["logical"] / pas[0]["wall"]
put1 = pas[0]["logical"] / put_secs
checks.append((f"3. passthrough gen 1 {pt1/1e6:.0f} MB/s against put {put1/1e6:.0f} MB/s ({pt1/put1:.2f}x, >= 0.8)", pt1 >= 0.8 * put1))
later = lambda rs, k: sum(r[k] for r in rs[1:])
cpu_o = later(opt, "cpu") / (later(opt, "logical") / GB)
cpu_p = later(pas, "cpu") / (later(pas, "logical") / GB)
wall_ratio = later(opt, "wall") / later(pas, "wall")
checks.append((f"4. server CPU per GB, gens 2-5: optimized {cpu_o:.2f} s, passthrough {cpu_p:.2f} s ({cpu_o/cpu_p:.2f}x, <= 0.3; wall ratio {wall_ratio:.2f})",
               cpu_o <= 0.3 * cpu_p))
size5 = os.path.getsize(gen5)
r_ost, r_get = size5 / ostget_secs, size5 / get_secs
cpu_of = lambda name: sum(map(float, open(os.path.join(work, name)).read().split()))
cpu_get, cpu_client, cpu_server = cpu_of("get.time"), cpu_of("ostget.time"), cpu_of("ostget.server_cpu")
checks.append((f"5. restore gen 5: ost get {r_ost/1e6:.0f} MB/s against get {r_get/1e6:.0f} MB/s ({r_ost/r_get:.2f}x, >= 0.8); "
               f"CPU s per GB: get {cpu_get/(size5/GB):.2f}, ost get client {cpu_client/(size5/GB):.2f} + server {cpu_server/(size5/GB):.2f}",
               r_ost >= 0.8 * r_get))
checks.append((f"6. server peak RSS with 8 optimized writers: {rss_kib/1024:.0f} MiB (< 256)", rss_kib < 256 * 1024))
print()
for text, ok in checks:
    print(("ok   " if ok else "FAIL ") + text)
EOF
