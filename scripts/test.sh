#!/usr/bin/env bash
# Runs every test of the workspace, as CI does. Installs nothing today beyond
# the Rust toolchain the machine has; later steps (wasm target, a registry,
# kubectl) are added here so a fresh machine needs no manual setup.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

# Formatting is part of the tests: rustfmt comes with rustup's default profile;
# add it where a minimal toolchain left it out.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check

cargo test --workspace --locked
