#!/usr/bin/env bash
# Runs every test of the workspace, as CI does. Every tool a test needs is
# installed or checked here, so a fresh machine needs no manual setup; a tool
# that is missing fails the run loudly instead of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

# How long each step took, printed at the end.
TIMES=()
step() {
    local name=$1 started=$SECONDS
    shift
    echo "== $name" >&2
    "$@"
    TIMES+=("$name $((SECONDS - started))s")
}

# Formatting is part of the tests: rustfmt comes with rustup's default profile;
# add it where a minimal toolchain left it out.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
step "cargo fmt --check" cargo fmt --all -- --check

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

# The WebAssembly policies: their native unit tests, then the modules. These
# are committed with HASHES that record the toolchain and the hash of the
# sources they were built from (scripts/build-policies.sh writes both). While
# the sources and the toolchain are the recorded ones there is no module to
# rebuild; otherwise this rebuilds them, compares every module's blake3 with
# the record, and fails all the same until the record is brought up to date.
# That the committed modules are the recorded bytes, and the embedded standard
# ones too, `cargo test` checks below (tests/policies.rs, compiler/src/policy/stdlib.rs).
step "policies" scripts/build-policies.sh --ci

# The third-party Argo CD linters that tests/lint.rs runs on every generated
# tree, as a user's CI would: argocd-source-lint and argocheck, from PyPI.
step "lint tools" scripts/lint-tools.sh

# Build every test binary first: a compiler warning fails the run, so an
# item nothing uses or a private type in a public signature (see
# ARCHITECTURE.md, Visibility) cannot creep in. Cargo replays the warnings of
# crates built earlier, so a warm build is checked too.
no_warnings() {
    local log
    log=$(mktemp)
    cargo test --workspace --locked --no-run 2>&1 | tee "$log" >&2
    if grep -q '^warning' "$log"; then
        echo "error: the build has warnings (above); fix them" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}
step "build (no warnings)" no_warnings

# Every test of the workspace: one test binary per crate.
step "cargo test" cargo test --workspace --locked

# A bounded fuzzing run (20 s per target, no sanitizer): any panic found on the
# way fails CI. It reuses the dependencies `cargo test` just built. The long
# run is `scripts/fuzz.sh` (book/src/fuzzing.md).
step "fuzz (bounded)" scripts/fuzz.sh --ci

echo "test.sh: every step passed: ${TIMES[*]/%/,}" | sed 's/,$//' >&2
