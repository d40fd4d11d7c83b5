#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run). First installs and builds what the tests
# need, once: Debian packages as root (APT_PACKAGES below), Amanda's ndmjob with its
# test-tape fixes (harness/build_ndmjob.sh), the QEMU guest's kernel
# (harness/qemu_tape_client.sh --prepare), the libiscsi probe helper and cargo-fuzz. Then:
# cargo fmt --check, clippy -D warnings, cargo doc, docs/CLI.md against the binary's help,
# cargo test --workspace (one build, real-client tests included) and a few seconds of each
# fuzz target. Ends with one "tests: N passed, M failed" line. No benchmarks.
# The tests include the README's quick start, run as written (crates/qorestor-cli/tests/readme.rs),
# and scripts/quickstart.sh (tests/quickstart_script.rs).
#
# How long, on 2 cores: 4-12 minutes once everything is installed and built (238-243 s on the
# development machine, 696 s in the last CI run); the first run on a fresh clone compiles
# everything, the fuzz targets too: 46 minutes measured while five other builds shared the
# machine (install 64 s, clippy 208 s, tests 1,547 s, fuzz smoke 891 s).
#
# Usage: scripts/test-all.sh     (from anywhere; as root for the install step)
# With CI=true a missing real client fails its test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n== %s (%d s)\n' "$*" $((SECONDS - started)); }

# Debian packages of the tests.
# NDMP (crates/qorestor-cli/tests/ndmp.rs, harness/ndmp_probe.py): amanda-common (libamanda
# for ndmjob), tshark (the NDMP dissector checks our frames), and what harness/build_ndmjob.sh
# needs to build ndmjob from Debian's amanda source package: dpkg-dev (apt-get source), gcc,
# libc6-dev, make, patch, pkg-config, rpcsvc-proto (rpcgen), libglib2.0-dev, libtirpc-dev.
# iSCSI (crates/qorestor-cli/tests/iscsi.rs): libiscsi's tools and headers (harness/vtl_probe.py
# builds harness/iscsi/scsi_session.c), and for harness/qemu_tape_client.sh QEMU with its
# libiscsi block driver plus the guest's tools (busybox, cpio, mtx, mt-st, sg3-utils; xz-utils
# and zstd unpack the kernel's modules).
APT_PACKAGES=(amanda-common tshark dpkg-dev gcc libc6-dev make patch pkg-config rpcsvc-proto
  libglib2.0-dev libtirpc-dev libiscsi-bin libiscsi-dev python3 diffutils tar
  qemu-system-x86 qemu-block-extra busybox-static cpio gzip xz-utils zstd mtx mt-st sg3-utils)

step "install"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f '${db:Status-Status}' "$p" 2> /dev/null | grep -qx installed || missing+=("$p")
done
no_indexes=$(compgen -G '/var/lib/apt/lists/*_Packages*' > /dev/null || echo yes)
if [ ${#missing[@]} -gt 0 ] || [ -n "$no_indexes" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-all.sh: missing Debian packages ${missing[*]:-} or package indexes; run as root to install them" >&2
    exit 1
  fi
  # wireshark-common asks whether non-root users may capture: answer no, never block.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  fi
fi
if [ "$(id -u)" = 0 ]; then
  echo "ndmjob: $(bash harness/build_ndmjob.sh)"
  bash harness/qemu_tape_client.sh --prepare
else
  echo "test-all.sh: not root: the real-client tools are built only if their caches exist" >&2
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi

step "format"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
step "tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
step "docs/CLI.md matches the binary's help"
python3 scripts/cli_reference.py "${CARGO_TARGET_DIR:-target}/debug/qorestor" --check docs/CLI.md
step "fuzz smoke (each target a few seconds)"
FUZZ_SECONDS=${FUZZ_SECONDS:-4} bash fuzz/smoke.sh
step "done"
# One closing line with the totals of every cargo test binary (empty crates report 0 tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
