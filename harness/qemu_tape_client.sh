#!/usr/bin/env bash
# The Linux kernel's own tape stack against an iSCSI virtual tape library: a small QEMU guest
# (Debian's kernel, a busybox initramfs) whose st, ch and sg drivers see the library's
# changer and drive through QEMU's libiscsi block driver (no kernel iSCSI initiator works in
# these containers), and runs mtx, mt-st, tapeinfo and sg_inq against them
# (harness/qemu/guest-init.sh). Software emulation (TCG): about 10-20 s a run.
#
# Usage: harness/qemu_tape_client.sh HOST:PORT TARGET_IQN CHANGER_LUN DRIVE_LUN
#        harness/qemu_tape_client.sh --prepare     (only fetch the guest kernel)
#   DRIVE_LUN must be the drive with the lowest element address (the guest loads drive 0).
#   The first full slot's cartridge is rewritten.
# Needs (Debian): qemu-system-x86 qemu-block-extra busybox-static cpio mtx mt-st sg3-utils; the
# guest kernel is fetched once with `apt-get download linux-image-<version>-amd64` into
# $QORESTOR_TOOLS/guest-kernel (default /var/cache/qorestor-tools as root).
# Output: the guest's "PASS|FAIL name note" lines, then "N passed, M failed, 0 skipped".
# Exit status 0 when every check passed, 1 otherwise, 2 for a setup error.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" = 0 ]; then default_tools=/var/cache/qorestor-tools; else default_tools=${XDG_CACHE_HOME:-$HOME/.cache}/qorestor-tools; fi
tools=${QORESTOR_TOOLS:-$default_tools}
kernel_dir=$tools/guest-kernel
# Loaded in this order in the guest: virtio-scsi transport, then the SCSI upper drivers.
modules="virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci scsi_common scsi_mod virtio_scsi sg st ch"
setup_error() { echo "qemu_tape_client: $*" >&2; exit 2; }

fetch_kernel() {
  [ -f "$kernel_dir/ready" ] && return 0
  local package
  package=$(apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$package" ] || setup_error "apt knows no linux-image-amd64 (apt-get update?)"
  rm -rf "$kernel_dir" && mkdir -p "$kernel_dir/download" || setup_error "cannot create $kernel_dir"
  (cd "$kernel_dir/download" && apt-get download "$package" > /dev/null 2>&1) || setup_error "apt-get download $package failed"
  dpkg-deb -x "$kernel_dir"/download/*.deb "$kernel_dir/root" || setup_error "cannot unpack $package"
  rm -rf "$kernel_dir/download"
  echo "$package" > "$kernel_dir/ready"
}

if [ "${1:-}" = --prepare ]; then fetch_kernel; echo "guest kernel: $(cat "$kernel_dir/ready")"; exit 0; fi
[ $# -eq 4 ] || { sed -n '2,/^set -uo/p' "$0" | sed '$d' >&2; exit 2; }
portal=$1 iqn=$2 changer_lun=$3 drive_lun=$4
for tool in qemu-system-x86_64 cpio gzip mtx mt-st tapeinfo sg_inq; do
  command -v "$tool" > /dev/null || setup_error "$tool is missing"
done
[ -x /bin/busybox ] || setup_error "/bin/busybox is missing (Debian package busybox-static)"
[ -f /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so ] || setup_error "QEMU's iSCSI driver is missing (qemu-block-extra)"
fetch_kernel

work=$(mktemp -d "${TMPDIR:-/tmp}/qemu-tape-client.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/initramfs
version=$(ls "$kernel_dir/root/lib/modules" | head -n 1)
mkdir -p "$root"/{bin,dev,proc,sys,tmp,modules}
cp /bin/busybox "$root/bin/"
for applet in sh mount insmod sleep cat ls echo dd md5sum poweroff sync grep head tail sed awk cut tr test [; do
  ln -s busybox "$root/bin/$applet"
done
# The tape tools with the shared libraries they link.
for program in mtx tapeinfo mt-st sg_inq; do
  path=$(command -v "$program")
  cp "$path" "$root/bin/"
  for lib in $(ldd "$path" | grep -oE '/[^ ]+\.so[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
  done
done
for module in $modules; do
  file=$(find "$kernel_dir/root/lib/modules/$version" -name "$module.ko*" | head -n 1)
  [ -n "$file" ] || setup_error "kernel $version has no module $module"
  case "$file" in
    *.xz) xz -dc "$file" > "$root/modules/$module.ko" ;;
    *.zst) zstd -qdc "$file" > "$root/modules/$module.ko" ;;
    *) cp "$file" "$root/modules/$module.ko" ;;
  esac
done
echo "$modules" > "$root/modules/order"
cp "$here/qemu/guest-init.sh" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2> /dev/null | gzip -1) > "$work/initramfs.gz" || setup_error "cannot pack the initramfs"

url=iscsi://$portal/$iqn
# The timeout bounds a hung guest only; a run takes seconds.
timeout 600 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
  -kernel "$kernel_dir/root/boot/vmlinuz-$version" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 panic=-1 loglevel=3" \
  -iscsi initiator-name=iqn.2024-01.org.qorestor.harness:qemu-guest \
  -device virtio-scsi-pci,id=scsi0 \
  -drive "if=none,id=changer,format=raw,file=$url/$changer_lun" \
  -device scsi-generic,drive=changer,bus=scsi0.0,channel=0,scsi-id=0,lun=0 \
  -drive "if=none,id=tape,format=raw,file=$url/$drive_lun" \
  -device scsi-generic,drive=tape,bus=scsi0.0,channel=0,scsi-id=1,lun=0 < /dev/null > "$work/console.log" 2>&1
qemu_status=$?
tr -d '\r' < "$work/console.log" > "$work/console.txt"
grep -a '^RESULT ' "$work/console.txt" | cut -c8-
passed=$(grep -ac '^RESULT PASS' "$work/console.txt")
failed=$(grep -ac '^RESULT FAIL' "$work/console.txt")
if ! grep -aq '^END tape checks' "$work/console.txt"; then
  echo "FAIL guest-finished -- the guest stopped early (qemu exit status $qemu_status); its console:"
  tail -n 30 "$work/console.txt"
  failed=$((failed + 1))
elif [ "$failed" -gt 0 ]; then
  echo "the guest's console:"
  cat "$work/console.txt"
fi
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
