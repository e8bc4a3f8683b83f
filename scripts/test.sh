#!/usr/bin/env bash
# Runs every test of the workspace, as CI does. Every tool a test needs is
# installed or checked here, so a fresh machine needs no manual setup; a tool
# that is missing fails the run loudly instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

# Formatting is part of the tests: rustfmt comes with rustup's default profile;
# add it where a minimal toolchain left it out.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check

# The compile tests build every generated kustomization with the real
# `kubectl kustomize`. kubectl comes with this machine image (its apt source is
# gone, so it cannot be reinstalled from there); say so plainly if it is missing.
if ! command -v "${KUBECTL:-kubectl}" >/dev/null; then
    echo "error: kubectl is not installed; the compile tests run \`kubectl kustomize\` on every generated overlay" >&2
    echo "  help: install kubectl (with its built-in kustomize), or point KUBECTL at one" >&2
    exit 1
fi

# The registry tests run the real CNCF distribution registry (Debian's
# `docker-registry`) on 127.0.0.1. Install it when it is missing; fail loudly
# when that is impossible rather than skip those tests.
if ! command -v docker-registry >/dev/null; then
    echo "installing docker-registry (the registry tests run it on 127.0.0.1)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry >/dev/null
fi
command -v docker-registry >/dev/null || {
    echo "error: docker-registry is not installed and could not be installed; the registry tests need it" >&2
    echo "  help: apt-get install -y docker-registry" >&2
    exit 1
}

# The WebAssembly policies: their native unit tests, then a rebuild that must
# give the recorded blake3 hashes (stdlib/wasm/HASHES, policies/examples/wasm/HASHES).
scripts/build-policies.sh --check
# The promotion example runs the example policies as built.
for m in examples/promotion/policies/*.wasm; do
    cmp -s "$m" "policies/examples/wasm/$(basename "$m")" || {
        echo "error: $m is not policies/examples/wasm/$(basename "$m"); copy it after scripts/build-policies.sh" >&2
        exit 1
    }
done

cargo test --workspace --locked

# A bounded fuzzing run (60 s per target, no sanitizer): any panic found on the
# way fails CI. The long run is `scripts/fuzz.sh` (book/src/fuzzing.md).
scripts/fuzz.sh --ci 60
