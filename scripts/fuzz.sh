#!/usr/bin/env bash
# Fuzzes keelson with cargo-fuzz (libFuzzer): the targets in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh [--ci] [SECONDS] [TARGET...]
#       --ci      the bounded run: 60 s per target unless SECONDS is given,
#                 no sanitizer (keelson is safe Rust: we hunt panics)
#       default   the long run: 1800 s per target, AddressSanitizer
#       TARGET    kdl_lower, policy_json, registry_response (default: all)
#   scripts/fuzz.sh --reproduce TARGET FILE
#       runs one input through a target (no fuzzing), with its backtrace
#
# It installs cargo-fuzz when missing (a pinned version, --locked), builds the
# targets, and runs each on its corpus: fuzz/corpus/<target>/ (kept between
# runs, git-ignored) plus the committed fuzz/seeds/<target>/ and
# fuzz/regressions/<target>/, with the dictionary fuzz/dicts/<target>.dict.
# Any crash, panic, timeout or out-of-memory fails the run (exit 1) once
# every target has run, naming each artifact and how to reproduce, minimise
# and keep it as a regression test.
#
# Only stable Rust is needed: cargo-fuzz's nightly flags (-Zsanitizer) work on
# stable with RUSTC_BOOTSTRAP=1, which this script sets for cargo-fuzz only.
# FUZZ_SANITIZER overrides the sanitizer (address, none); CARGO_BUILD_JOBS is
# honoured. See book/src/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(kdl_lower policy_json registry_response)

ci=false
reproduce=false
seconds=""
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) ci=true ;;
        --reproduce) reproduce=true ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $1 (see scripts/fuzz.sh --help)" >&2; exit 2 ;;
        *)
            if [ -z "$seconds" ] && [ "$reproduce" = false ] && [[ "$1" =~ ^[0-9]+$ ]]; then
                seconds="$1"
            else
                targets+=("$1")
            fi
            ;;
    esac
    shift
done

if [ "$ci" = true ]; then
    seconds="${seconds:-60}"
    sanitizer="${FUZZ_SANITIZER:-none}"
else
    seconds="${seconds:-1800}"
    sanitizer="${FUZZ_SANITIZER:-address}"
fi

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 2; }
if [ "$(cargo fuzz --version 2>/dev/null | head -n1)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi

# cargo-fuzz passes -Zsanitizer (and other nightly flags); stable accepts them
# with this. It is set for this script's cargo-fuzz runs only.
export RUSTC_BOOTSTRAP=1

# Each sanitizer builds into its own directory, so switching between the
# bounded and the long run does not rebuild everything.
target_dir="fuzz/target/$sanitizer"
# One codegen unit per crate (cargo-fuzz's default) makes wasmtime's build
# far slower for a small gain in executions per second.
build_flags=(--fuzz-dir fuzz -s "$sanitizer" --codegen-units 16 --target-dir "$target_dir")

if [ "$reproduce" = true ]; then
    [ "${#targets[@]}" -eq 2 ] || { echo "usage: scripts/fuzz.sh --reproduce TARGET FILE" >&2; exit 2; }
    RUST_BACKTRACE=1 exec cargo fuzz run "${build_flags[@]}" "${targets[0]}" "${targets[1]}"
fi

[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "error: no fuzz target \`$t\` (fuzz/fuzz_targets/)" >&2; exit 2; }
done

echo "building the fuzz targets (sanitizer: $sanitizer) into $target_dir" >&2
start=$(date +%s)
cargo fuzz build "${build_flags[@]}"
echo "built in $(($(date +%s) - start)) s" >&2

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    marker=$(mktemp)
    echo "fuzzing $t for $seconds s" >&2
    # -max_len: estate files are small; 64 KiB leaves room for several.
    # -timeout: one input taking 30 s is a bug (a hang), and a crash.
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    if ! cargo fuzz run "${build_flags[@]}" "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=30 \
        "${dict[@]}" -print_final_stats=1; then
        failed+=("$t")
        echo >&2
        echo "error: fuzz target \`$t\` crashed" >&2
        found=false
        while IFS= read -r artifact; do
            found=true
            name=$(basename "$artifact")
            echo "  artifact:   $artifact" >&2
            echo "  show it:    RUSTC_BOOTSTRAP=1 cargo fuzz fmt ${build_flags[*]} $t $artifact" >&2
            echo "  reproduce:  scripts/fuzz.sh --reproduce $t $artifact" >&2
            echo "  minimise:   RUSTC_BOOTSTRAP=1 cargo fuzz tmin ${build_flags[*]} $t $artifact" >&2
            echo "  keep it:    cp <minimised file> fuzz/regressions/$t/<what-it-is>-$name" >&2
            echo "              (cargo test -p keelson --test fuzz_regressions replays it)" >&2
        done < <(find "fuzz/artifacts/$t" -type f -newer "$marker")
        [ "$found" = true ] || echo "  (no artifact written; see the output above)" >&2
    fi
    rm -f "$marker"
done

echo "fuzzed ${#targets[@]} target(s), $seconds s each, $(($(date +%s) - start)) s in all (build included)" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "error: crashes in: ${failed[*]}" >&2
    exit 1
fi
