#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, integration, command-line and documentation
# tests), then the ring algorithms model-checked under loom (built with --cfg loom in a
# target directory of their own, so the two builds do not invalidate each other).
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages first (compilers, libclang for bindgen, Open MPI): a fresh machine needs
# nothing but Rust and this command.
scripts/deps.sh
# The C API tests link the shared library, which `cargo test` alone does not build.
cargo build --release --lib
cargo test --release --workspace
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib -- ring::model buffer::freelist
