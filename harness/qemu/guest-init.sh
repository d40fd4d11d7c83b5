#!/bin/sh
# /init of the QEMU guest harness/qemu_tape_client.sh boots: the Linux tape stack (st, ch
# and sg drivers; mtx, mt-st, tapeinfo, sg_inq) against the changer and the drive that QEMU
# passes through from the iSCSI target. Prints "RESULT PASS|FAIL name note" lines between
# the BEGIN and END markers, then powers the guest off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do
  insmod "/modules/$module.ko" || echo "insmod $module failed"
done
# The SCSI scan of virtio-scsi is asynchronous: wait (bounded) for the tape and changer nodes.
tries=0
while { [ ! -c /dev/sch0 ] || [ ! -c /dev/nst0 ]; } && [ $tries -lt 200 ]; do
  sleep 0.1
  tries=$((tries + 1))
done
echo "BEGIN tape checks"

result() { echo "RESULT $1 $2 $3"; }
expect() { # expect NAME NOTE COMMAND...: PASS when the command succeeds
  name=$1 note=$2
  shift 2
  if "$@"; then result PASS "$name" "$note"; else result FAIL "$name" "$note"; fi
}
log() { # log COMMAND...: runs it, keeps its output in $out and shows it
  out=$("$@" 2>&1)
  rc=$?
  echo "\$ $* (exit $rc)"
  echo "$out"
  return $rc
}
has() { echo "$out" | grep -q "$1"; }
md5() { md5sum | cut -c1-32; }

changer=/dev/sch0 tape=/dev/nst0
expect devices "$(ls /dev | grep -E '^(sch|nst|sg)[0-9]' | tr '\n' ' ')" test -c $changer -a -c $tape
log sg_inq $changer
expect sg_inq-changer "peripheral device type 8" has 'PDT=8'
log sg_inq $tape
expect sg_inq-tape "peripheral device type 1" has 'PDT=1'
log mtx -f $changer inquiry
expect mtx-inquiry "" has 'Medium Changer'
log mtx -f $changer status
slot=$(echo "$out" | sed -n 's/.*Storage Element \([0-9]*\):Full.*/\1/p' | head -n 1)
expect mtx-status "first full slot: $slot" test -n "$slot"
slot=${slot:-1}
if has 'Data Transfer Element 0:Full'; then
  mt-st -f $tape offline
  mtx -f $changer unload > /dev/null 2>&1
fi
log mtx -f $changer load "$slot" 0
log mtx -f $changer status
expect mtx-load "slot $slot into drive 0" has "Data Transfer Element 0:Full (Storage Element $slot Loaded)"
log tapeinfo -f $tape
expect tapeinfo "$(echo "$out" | grep -E 'MinBlock|MaxBlock' | tr '\n' ' ')" has 'Ready: yes'

# Two files: 8 blocks of 64 KiB, then 3 of 32 KiB. st writes a filemark when a file written
# through it is closed; the weof adds the second filemark at the end.
dd if=/dev/urandom of=/tmp/first bs=65536 count=8 2> /dev/null
dd if=/dev/urandom of=/tmp/second bs=32768 count=3 2> /dev/null
written() {
  log mt-st -f $tape rewind && log dd if=/tmp/first of=$tape bs=65536 \
    && log dd if=/tmp/second of=$tape bs=32768 && log mt-st -f $tape weof 1
}
expect st-write "first file, filemark, second file, 2 filemarks" written
log mt-st -f $tape rewind
want=$(md5 < /tmp/first)
got=$(dd if=$tape bs=65536 2> /dev/null | md5)
expect st-read-file0 "md5 $got" test "$want" = "$got"
log mt-st -f $tape status
expect st-status-after-fm "after the first filemark" has 'File number=1, block number=0'
log mt-st -f $tape rewind
log mt-st -f $tape fsf 1
want=$(md5 < /tmp/second)
got=$(dd if=$tape bs=32768 2> /dev/null | md5)
expect st-fsf-read-file1 "md5 $got" test "$want" = "$got"
log mt-st -f $tape eod
log mt-st -f $tape status
expect st-eod "$(echo "$out" | grep 'File number')" has 'EOD'
log mt-st -f $tape rewind
log mt-st -f $tape tell
expect st-tell "READ POSITION after rewind" has 'At block 0'
log mt-st -f $tape offline
expect st-offline "LOAD UNLOAD" test $rc = 0
log mtx -f $changer unload "$slot" 0
log mtx -f $changer status
unloaded() { has "Storage Element $slot:Full" && has 'Data Transfer Element 0:Empty'; }
expect mtx-unload "drive 0 back to slot $slot" unloaded
log mtx -f $changer load "$slot" 0
log mt-st -f $tape rewind
want=$(md5 < /tmp/first)
got=$(dd if=$tape bs=65536 2> /dev/null | md5)
expect reload-persistence "first file after unload and load: md5 $got" test "$want" = "$got"
mt-st -f $tape offline > /dev/null 2>&1
mtx -f $changer unload "$slot" 0 > /dev/null 2>&1
echo "END tape checks"
sync
poweroff -f
