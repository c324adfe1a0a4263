#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and pipeline tests, and the end-to-end tests
# that run vgate between network namespaces (root). Usage: sudo tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests need root; without it they would skip and the suite pass untested.
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run-all.sh: run it as root (sudo tests/run-all.sh): the end-to-end tests need it" >&2
    exit 1
fi
# Every root test must run, not skip (tests/common/mod.rs, root_required).
export VGATE_REQUIRE_ROOT=1
tests/setup-host.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Release build: the end-to-end tests run the optimised binary, as operators do.
cargo test --release -- --test-threads=2
# The Docker image, built and run (it installs the engine and debootstrap itself).
tests/docker-test.sh
# CI-sized fuzzing of the wire parsers, the pipeline and the config parser (fuzz/).
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/fuzz-smoke.sh
