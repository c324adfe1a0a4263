#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and pipeline tests, and the end-to-end tests
# that run vgate between network namespaces (root). Usage: sudo tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup-host.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Release build: the end-to-end tests run the optimised binary, as operators do.
cargo test --release -- --test-threads=2
# CI-sized fuzzing of the wire parsers, the pipeline and the config parser (fuzz/).
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/fuzz-smoke.sh
