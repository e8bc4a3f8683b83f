#!/usr/bin/env bash
# RUSTC_WRAPPER of the bounded fuzz build (scripts/fuzz.sh --ci): cargo runs
# `instrument.sh rustc ARGS…` for every crate. keelson and kdl get libFuzzer's
# coverage instrumentation ($KEELSON_FUZZ_RUSTFLAGS: the flags cargo-fuzz
# gives every crate); the other crates are compiled as they are, so they are
# the very units `cargo test` built, and are reused. Cargo does not know about
# these flags: scripts/fuzz.sh gives the two crates profile settings no other
# build uses, so that their instrumented units are never mistaken for plain
# ones, nor the reverse.
set -euo pipefail
rustc=$1
shift
case " $* " in
    *" --crate-name keelson "* | *" --crate-name kdl "*)
        # shellcheck disable=SC2086 # a list of flags
        exec "$rustc" "$@" ${KEELSON_FUZZ_RUSTFLAGS:?set by scripts/fuzz.sh}
        ;;
esac
exec "$rustc" "$@"
