#!/usr/bin/env bash
# Runs every test: the Rust workspace with the `pmix` feature (unit, integration, command-line
# and documentation tests, the C API from C and through bindgen, PMIx under mpirun), a soak of
# 10^5 messages under injected faults, the same suite again with debug assertions and
# overflow checks on (profile `checked`), the ring and free-list algorithms model-checked under
# loom (built with --cfg loom in a target directory of their own, so the builds do not
# invalidate each other), and each fuzz target for a short run (FUZZ_SECONDS, default 15;
# 0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages first (compilers, libclang for bindgen, Open MPI): a fresh machine needs
# nothing but Rust and this command.
scripts/deps.sh
# The C API tests link the shared library, which `cargo test` alone does not build.
# With PMIx (the `pmix` feature: libpmix-dev from deps.sh), so its bootstrap is tested too.
cargo build --release --lib
cargo test --release --workspace --features pmix
# End-to-end delivery under injected faults and a forwarder killed every 2 s (docs/delivery.md).
target/release/hyperfabric soak --messages 100000
cargo build --profile checked --lib
cargo test --profile checked --workspace --features pmix
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib -- ring::model buffer::freelist
fuzz_seconds=${FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds"
fi
