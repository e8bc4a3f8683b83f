#!/usr/bin/env bash
# The estate benchmark, as the book's Performance page reports it:
#   scripts/bench.sh [--apps 100,1000,10000] [--runs 3]
# Builds keelson and the harness in release mode, installs the jrsonnet
# baseline (pinned) when it is missing, and prints the Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

JRSONNET_VERSION=0.5.0-pre98
if ! "$HOME/.cargo/bin/jrsonnet" --version >/dev/null 2>&1; then
  echo "installing jrsonnet $JRSONNET_VERSION (the Jsonnet baseline)" >&2
  cargo install --locked jrsonnet --version "$JRSONNET_VERSION"
fi
cargo build --release --locked -p keelson -p keelson-bench
exec target/release/keelson-bench scale "$@"
