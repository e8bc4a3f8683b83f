#!/usr/bin/env bash
# Builds the WebAssembly policies reproducibly, and tests them.
#
#   scripts/build-policies.sh           build, and write the modules and their hashes:
#                                         stdlib/wasm/<name>.wasm            (stdlib/policies/<name>)
#                                         policies/examples/wasm/<name>.wasm (policies/examples/<name>)
#                                         and HASHES beside each
#   scripts/build-policies.sh --check   rebuild into a temporary directory and fail unless
#                                       every module's blake3 hash, and the toolchain, are
#                                       the recorded ones (and the committed .wasm files
#                                       are the recorded bytes, and the sources' record is
#                                       current)
#   scripts/build-policies.sh --ci      what scripts/test.sh runs: the native unit tests,
#                                       and no module rebuilt while the policy sources (and
#                                       the toolchain) are the recorded ones; otherwise
#                                       --check, then fail all the same if the record is stale
#   scripts/build-policies.sh --sources print the hash of the policy sources
#
# Every mode but --sources first runs the native unit tests of the SDK, the
# standard and the example policies (`cargo test`).
#
# The record of the sources: the second line of each HASHES is
# `# sources sha256:<hex>`, the sha256 of the files the modules and their
# native tests are built from (every Cargo.toml, Cargo.lock and src/ file of
# policies/ and stdlib/policies/, but policies/template/, which no module is
# built from, and this script), as `--sources` prints it. A build writes it with
# the modules, so while it is current the committed modules are what these
# sources build to, and CI (--ci) has no module to rebuild. Change a policy, its
# SDK, a lock file or this script, and CI fails until scripts/build-policies.sh
# has been run and its output committed. The committed modules' hashes are
# checked on every `cargo test` (tests/policies.rs; the embedded standard
# modules also in compiler/src/policy/stdlib.rs).
#
# The guest code lives in two cargo workspaces of its own, each with its
# committed Cargo.lock (used with --locked): policies/ (the keelson-policy SDK,
# the examples and the build helper `policy-tools`) and stdlib/policies/. The
# compiler's workspace never changes what they are built from. Builds are
# path-independent: the repository root, $CARGO_HOME and the registry source
# directories are remapped in the modules (panic messages name source files),
# so the same toolchain gives the same bytes in any directory, on any machine.
#
# HASHES format: `# built with <rustc -V>`, `# sources sha256:<hex>`, then
# `<blake3 hex>  <name>.wasm` lines sorted by name. Hashes come from `policy-tools hash` (the blake3
# crate), which also strips the two linker-made exports rustc adds
# (`__data_end`, `__heap_base`; `policy-tools finish`) and checks each
# module's ABI surface (`policy-tools surface`).
#
# CARGO_BUILD_JOBS is honoured (e.g. CARGO_BUILD_JOBS=1 on a busy machine).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"

die() {
    echo "error: $*" >&2
    exit 1
}

USAGE="usage: scripts/build-policies.sh [--check | --ci | --sources]"
CHECK=0
CI_MODE=0
case "${1:-}" in
    "") ;;
    --check) CHECK=1 ;;
    --ci) CHECK=1 CI_MODE=1 ;;
    --sources) ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument \`$1\` ($USAGE)" ;;
esac
[ $# -le 1 ] || die "too many arguments ($USAGE)"

# The files the modules and the native tests are built from, sorted.
policy_sources() {
    {
        find policies stdlib/policies \( -name target -o -path policies/template \) -prune -o \
            -type f ! -name '.*' ! -name '*~' \( -name Cargo.toml -o -name Cargo.lock -o -path '*/src/*' \) -print
        echo scripts/build-policies.sh
    } | LC_ALL=C sort
}
# Their hash: sha256 (coreutils), so checking the record builds nothing.
sources_hash() {
    policy_sources | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
SOURCES=$(sources_hash)
if [ "${1:-}" = --sources ]; then
    echo "sha256:$SOURCES"
    exit 0
fi
RECORDS=(stdlib/wasm/HASHES policies/examples/wasm/HASHES)

START=$SECONDS
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
command -v rustc >/dev/null || die "rustc is not installed (https://rustup.rs)"
TOOLCHAIN=$(rustc -V)
TARGET=wasm32-unknown-unknown

# Whether both records name these sources and this toolchain.
STALE=()
for record in "${RECORDS[@]}"; do
    if [ ! -f "$record" ] || [ "$(sed -n 2p "$record")" != "# sources sha256:$SOURCES" ]; then
        STALE+=("$record")
    fi
done
# --ci rebuilds the modules only when the record is not these sources and
# this toolchain.
REBUILD=1
if [ "$CI_MODE" -eq 1 ] && [ ${#STALE[@]} -eq 0 ]; then
    REBUILD=0
    for record in "${RECORDS[@]}"; do
        [ "$(head -n1 "$record")" = "# built with $TOOLCHAIN" ] || REBUILD=1
    done
    [ "$REBUILD" -eq 0 ] || echo "the policy modules were built with another toolchain than $TOOLCHAIN: rebuilding and checking them" >&2
elif [ "$CI_MODE" -eq 1 ]; then
    echo "the policy sources changed since ${STALE[*]} recorded them: rebuilding and checking the modules" >&2
fi

export CARGO_TARGET_DIR="$ROOT/target/policies"

SDK_WS=policies/Cargo.toml
STDLIB_WS=stdlib/policies/Cargo.toml
for ws in "$SDK_WS" "$STDLIB_WS"; do
    [ -f "$(dirname "$ws")/Cargo.lock" ] || die "$(dirname "$ws")/Cargo.lock is missing; it is committed, and builds use --locked"
done

echo "== native unit tests (SDK, stdlib, examples)" >&2
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --manifest-path "$SDK_WS" --all -- --check || die "the guest code is not formatted (cargo fmt --manifest-path $SDK_WS --all)"
    cargo fmt --manifest-path "$STDLIB_WS" --all -- --check || die "the guest code is not formatted (cargo fmt --manifest-path $STDLIB_WS --all)"
fi
cargo test --locked --manifest-path "$SDK_WS" --workspace
cargo test --locked --manifest-path "$STDLIB_WS" --workspace --exclude keelson-policy

if [ "$REBUILD" -eq 0 ]; then
    echo "ok: the policy sources are the ones the committed modules were built from (sha256:$SOURCES, $TOOLCHAIN): nothing to rebuild; \`scripts/build-policies.sh --check\` rebuilds them ($((SECONDS - START))s)" >&2
    exit 0
fi

# The wasm target: add it with rustup when it is missing.
if ! rustc --print target-list | grep -qx "$TARGET"; then
    die "this rustc ($TOOLCHAIN) does not know the target $TARGET"
fi
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$TARGET/lib" ]; then
    command -v rustup >/dev/null ||
        die "the $TARGET standard library is not installed, and there is no rustup to add it"
    echo "adding the $TARGET target (rustup target add $TARGET)" >&2
    rustup target add "$TARGET" || die "\`rustup target add $TARGET\` failed; the policies cannot be built"
    [ -d "$(rustc --print sysroot)/lib/rustlib/$TARGET/lib" ] ||
        die "\`rustup target add $TARGET\` did not install the $TARGET standard library"
fi

# The modules: every cdylib crate of each workspace (crate name = directory
# name). stdlib/policies/keelson-policy is a symlink to the SDK (see
# stdlib/policies/Cargo.toml), a library only.
names_in() {
    for manifest in "$1"/*/Cargo.toml; do
        if grep -q '"cdylib"' "$manifest"; then basename "$(dirname "$manifest")"; fi
    done
}
mapfile -t STDLIB < <(names_in stdlib/policies)
mapfile -t EXAMPLES < <(names_in policies/examples)
[ ${#STDLIB[@]} -gt 0 ] || die "no standard policies in stdlib/policies/"
[ ${#EXAMPLES[@]} -gt 0 ] || die "no example policies in policies/examples/"

echo "== building the build helper" >&2
cargo build --locked --release --manifest-path "$SDK_WS" -p policy-tools
TOOLS="$CARGO_TARGET_DIR/release/policy-tools"

echo "== building the modules for $TARGET ($TOOLCHAIN)" >&2
# Path independence. Source paths end up in the modules (panic messages name
# files), so the repository root becomes /keelson and $CARGO_HOME /cargo; each
# registry's source directory becomes /crates, as its name depends on the
# registry's URL (a mirror) and on cargo's version. rustc applies the last
# matching remap, so the specific ones come last. The registry sources exist
# by now: the native tests above unpacked the same crates.
cargo fetch --locked --manifest-path "$SDK_WS" >/dev/null
cargo fetch --locked --manifest-path "$STDLIB_WS" >/dev/null
CARGO_HOME_DIR=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
REMAP="--remap-path-prefix=$ROOT=/keelson --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
for src in "$CARGO_HOME_DIR"/registry/src/*/; do
    [ -d "$src" ] && REMAP="$REMAP --remap-path-prefix=${src%/}=/crates"
done
case "$ROOT$CARGO_HOME_DIR" in
    *" "*) die "the repository or \$CARGO_HOME path has a space, which RUSTFLAGS cannot carry" ;;
esac
# Only the wasm target gets these flags, so the native builds keep their cache.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$REMAP"
pkgs() { for n in "$@"; do printf -- '-p\n%s\n' "$n"; done; }
mapfile -t P < <(pkgs "${EXAMPLES[@]}")
cargo build --locked --release --target "$TARGET" --manifest-path "$SDK_WS" "${P[@]}"
mapfile -t P < <(pkgs "${STDLIB[@]}")
cargo build --locked --release --target "$TARGET" --manifest-path "$STDLIB_WS" "${P[@]}"
BUILT="$CARGO_TARGET_DIR/$TARGET/release"

# Writes the modules of one set into $1 and their HASHES.
emit() {
    local out=$1
    shift
    mkdir -p "$out"
    local files=()
    for name in "$@"; do
        "$TOOLS" finish "$BUILT/${name//-/_}.wasm" "$out/$name.wasm"
        files+=("$out/$name.wasm")
    done
    "$TOOLS" surface "${files[@]}" >&2
    {
        echo "# built with $TOOLCHAIN"
        echo "# sources sha256:$SOURCES"
        "$TOOLS" hash "${files[@]}" | LC_ALL=C sort -k2
    } >"$out/HASHES"
}

if [ "$CHECK" -eq 0 ]; then
    for set in stdlib/wasm policies/examples/wasm; do
        mkdir -p "$set"
        # Modules whose crate is gone go too.
        for old in "$set"/*.wasm; do [ -e "$old" ] && rm "$old"; done
    done
    emit stdlib/wasm "${STDLIB[@]}"
    emit policies/examples/wasm "${EXAMPLES[@]}"
    echo "== written (blake3, bytes)" >&2
    for set in stdlib/wasm policies/examples/wasm; do
        grep -v '^#' "$set/HASHES" | while read -r hash file; do
            printf '%s  %-26s %8d bytes\n' "$hash" "$set/$file" "$(wc -c <"$set/$file")"
        done
    done
    echo "done in $((SECONDS - START))s" >&2
    exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
emit "$TMP/stdlib" "${STDLIB[@]}"
emit "$TMP/examples" "${EXAMPLES[@]}"

FAILED=0
fail() {
    echo "error: $*" >&2
    FAILED=1
}
compare() {
    local recorded=$1 rebuilt=$2 dir
    dir=$(dirname "$recorded")
    [ -f "$recorded" ] || {
        fail "$recorded is missing; run scripts/build-policies.sh and commit the result"
        return
    }
    local header
    header=$(head -n1 "$recorded")
    if [ "$header" != "# built with $TOOLCHAIN" ]; then
        fail "$recorded was built with a different toolchain:
    recorded: ${header#\# built with }
    here:     $TOOLCHAIN
  help: the bytes depend on the compiler; check with the recorded toolchain, or rebuild and commit"
        return
    fi
    local hash file want
    while read -r hash file; do
        want=$(grep -v '^#' "$recorded" | awk -v f="$file" '$2 == f { print $1 }')
        if [ -z "$want" ]; then
            fail "$dir/$file is built but not recorded in $recorded (rebuilt: $hash)"
        elif [ "$want" != "$hash" ]; then
            fail "$dir/$file does not rebuild to the recorded bytes:
    recorded: $want
    rebuilt:  $hash"
        fi
    done < <(grep -v '^#' "$rebuilt")
    while read -r want file; do
        grep -q "  $file\$" "$rebuilt" || fail "$recorded records $file, which is no longer built (recorded: $want)"
        if [ ! -f "$dir/$file" ]; then
            fail "$dir/$file is recorded in $recorded but missing"
        else
            local have
            have=$("$TOOLS" hash "$dir/$file" | awk '{ print $1 }')
            [ "$have" = "$want" ] || fail "$dir/$file is not the recorded module:
    recorded:  $want
    committed: $have"
        fi
    done < <(grep -v '^#' "$recorded")
}
compare stdlib/wasm/HASHES "$TMP/stdlib/HASHES"
compare policies/examples/wasm/HASHES "$TMP/examples/HASHES"

if [ "$FAILED" -ne 0 ]; then
    echo "FAILED: the policy modules are not reproducible from this tree ($((SECONDS - START))s)" >&2
else
    n=$(cat stdlib/wasm/HASHES policies/examples/wasm/HASHES | grep -vc '^#')
    echo "ok: $n modules rebuild to their recorded hashes with $TOOLCHAIN ($((SECONDS - START))s)" >&2
fi
if [ ${#STALE[@]} -gt 0 ]; then
    for record in "${STALE[@]}"; do
        recorded=$(sed -n 2p "$record" 2>/dev/null | sed -n 's/^# sources //p')
        echo "error: $record records the policy sources ${recorded:-(no record)}, but this tree's are sha256:$SOURCES" >&2
    done
    echo "  help: the policies changed: run scripts/build-policies.sh (it tests and rebuilds them, and records their sources), and commit what it changes" >&2
    FAILED=1
fi
exit "$FAILED"
