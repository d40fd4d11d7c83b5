#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run). Installs what it needs first:
# Debian packages as root (APT_PACKAGES below), and cargo-fuzz for the fuzz smoke runs.
# Usage: scripts/test-all.sh            (from anywhere; as root for the apt step)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need. NDMP: amanda-common (ndmjob, run by ../shared/harness/ndmp_probe.sh
# from crates/qorestor-cli/tests/ndmp.rs) and tshark (its NDMP dissector checks our frames).
# iSCSI: libiscsi's tools and headers (vtl_probe.sh builds iscsi-cdb with gcc and pkg-config),
# and for qemu_linux_client.sh QEMU with its libiscsi block driver plus the guest's tools
# (busybox, cpio, mtx, mt-st, sg3-utils).
APT_PACKAGES=(amanda-common tshark libiscsi-bin libiscsi-dev gcc pkg-config python3
  qemu-system-x86 qemu-block-extra busybox-static cpio mtx mt-st sg3-utils)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    # wireshark-common asks whether non-root users may capture: answer no, never block.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test-all.sh: missing Debian packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi

step() { printf '\n== %s\n' "$*"; }

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
step "fuzz smoke (each target a few seconds)"
FUZZ_SECONDS=${FUZZ_SECONDS:-4} bash fuzz/smoke.sh
# One closing line with the totals of every cargo test binary (empty crates report 0 tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
