#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target once, then runs each for a few seconds.
#
#   fuzz/smoke.sh [SECONDS] [TARGET...]      (default: $FUZZ_SECONDS, else 5; every target)
#
# Installs cargo-fuzz when `cargo fuzz` is missing. The stable toolchain refuses the sanitizer
# flags unless RUSTC_BOOTSTRAP=1. Targets are built with debug assertions and overflow checks
# (cargo-fuzz's default). Crash inputs land in fuzz/artifacts/TARGET/; logs in
# fuzz/target/smoke/TARGET.log. Exits non-zero if any target crashed.
set -uo pipefail

cd "$(dirname "$0")"
secs="${1:-${FUZZ_SECONDS:-5}}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 1
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "smoke: building ${#targets[@]} targets" >&2
cargo fuzz build || exit 1

mkdir -p target/smoke
failed=()
for t in "${targets[@]}"; do
    log="target/smoke/$t.log"
    mkdir -p "corpus/$t"
    if cargo fuzz run "$t" -- -max_total_time="$secs" >"$log" 2>&1; then
        runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
        printf 'smoke: %-14s ok     %s\n' "$t" "${runs:-?}"
    else
        failed+=("$t")
        printf 'smoke: %-14s CRASH  (see %s)\n' "$t" "fuzz/$log"
        grep -E 'panicked at|^SUMMARY|Test unit written to|attempt to|index out of' "$log" | head -n 6 | sed 's/^/    /'
        grep -A2 'panicked at' "$log" | head -n 3 | sed 's/^/    /'
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke: ${#failed[@]} target(s) crashed: ${failed[*]}" >&2
    exit 1
fi
echo "smoke: all ${#targets[@]} targets ran ${secs}s without a crash"
