#!/usr/bin/env bash
# Runs every test of the workspace, as CI does. Installs nothing today beyond
# the Rust toolchain the machine has; later steps (wasm target, a registry,
# kubectl) are added here so a fresh machine needs no manual setup.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

cargo test --workspace --locked
