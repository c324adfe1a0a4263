#!/usr/bin/env bash
# CI-sized fuzzing: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 30) each,
# starting from the committed seed corpus. Fails on the first crash, leak or timeout and
# prints the reproducer; replay one with `cargo +nightly fuzz run TARGET ARTIFACT` and make
# it a test in tests/fuzz_regressions.rs. Long runs: see README, "Fuzzing".
#
# libFuzzer needs nightly rustc flags (-Z sanitizer). The `nightly` toolchain is used when
# installed; otherwise stable with RUSTC_BOOTSTRAP=1 (same compiler, unstable flags allowed).
# Targets are built optimised with debug assertions and overflow checks on (cargo-fuzz's
# default, not -O) and AddressSanitizer, so an overflow or a debug_assert is a crash too.
# Usage: tests/fuzz-smoke.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

# Runs grow the corpus; keep the committed seeds as they are and fuzz a scratch copy.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

"${fuzz[@]}" build

status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    cp -r "corpus/$t/." "$scratch/$t/"
    log="$scratch/$t.log"
    echo "fuzz $t: ${seconds}s"
    # -max_len: the pipeline's inputs are sequences of frames; 16 KiB holds several big ones.
    if "${fuzz[@]}" run "$t" "$scratch/$t" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
        grep -E '^#[0-9]+.*cov:' "$log" | tail -n 1 || true
    else
        status=1
        tail -n 60 "$log"
        echo "fuzz $t: FAILED"
        sed -n 's|.*Test unit written to \(.*\)$|\1|p' "$log" | while read -r unit; do
            echo "  reproducer: $(realpath "$unit")"
            echo "  replay:     (cd fuzz && ${fuzz[*]} run $t $unit)"
        done
    fi
done
exit $status
