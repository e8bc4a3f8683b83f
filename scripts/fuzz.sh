#!/usr/bin/env bash
# Fuzzes keelson with libFuzzer: the targets in fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh [--ci] [SECONDS] [TARGET...]
#       --ci      the bounded run (scripts/test.sh ends with it): 20 s per
#                 target unless SECONDS is given, no sanitizer; built in
#                 target/ beside `cargo test`'s build, whose dependencies it
#                 reuses: only keelson and kdl are compiled again, with
#                 coverage instrumentation (keelson is safe Rust: we hunt panics)
#       default   the long run: 1800 s per target, every crate instrumented,
#                 AddressSanitizer (a release build of its own, in fuzz/target/)
#       TARGET    kdl_lower, policy_json, registry_response (default: all)
#   scripts/fuzz.sh [--ci] --reproduce TARGET FILE
#       runs one input through a target (no fuzzing), with its backtrace
#   scripts/fuzz.sh [--ci] --minimize TARGET FILE
#       minimises a crashing input (libFuzzer's -minimize_crash, 255 runs, as
#       cargo fuzz tmin) into
#       fuzz/artifacts/TARGET/minimized-NAME
#
# No cargo-fuzz is needed: this script sets the flags cargo-fuzz would, builds
# the targets with cargo and runs the libFuzzer binaries itself (cargo-fuzz
# works too, on fuzz/ as usual, for its other commands). Each target runs on
# its corpus: fuzz/corpus/<target>/ (kept between runs, git-ignored) plus the
# committed fuzz/seeds/<target>/ and fuzz/regressions/<target>/, with the
# dictionary fuzz/dicts/<target>.dict. Any crash, panic, timeout or
# out-of-memory fails the run (exit 1) once every target has run, naming each
# artifact and how to reproduce, minimise and keep it as a regression test.
#
# Only stable Rust is needed: the long run's -Zsanitizer works on stable with
# RUSTC_BOOTSTRAP=1, which this script sets for that build only (never for the
# bounded one: build scripts that probe for nightly features would answer
# otherwise, and no dependency could be reused). FUZZ_SANITIZER overrides the
# long run's sanitizer (address, none); CARGO_BUILD_JOBS and CARGO_TARGET_DIR
# are honoured. See book/src/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_TARGETS=(kdl_lower policy_json registry_response)

ci=false
action=fuzz
seconds=""
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) ci=true ;;
        --reproduce) action=reproduce ;;
        --minimize | --minimise) action=minimize ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $1 (see scripts/fuzz.sh --help)" >&2; exit 2 ;;
        *)
            if [ -z "$seconds" ] && [ "$action" = fuzz ] && [[ "$1" =~ ^[0-9]+$ ]]; then
                seconds="$1"
            else
                targets+=("$1")
            fi
            ;;
    esac
    shift
done

if [ "$ci" = true ]; then
    seconds="${seconds:-20}"
    sanitizer=none
else
    seconds="${seconds:-1800}"
    sanitizer="${FUZZ_SANITIZER:-address}"
fi
case "$sanitizer" in
    address | none) ;;
    *) echo "error: FUZZ_SANITIZER=$sanitizer: use address or none" >&2; exit 2 ;;
esac

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 2; }

if [ "$action" != fuzz ]; then
    [ "${#targets[@]}" -eq 2 ] || { echo "usage: scripts/fuzz.sh [--ci] --$action TARGET FILE" >&2; exit 2; }
    file="${targets[1]}"
    [ -f "$file" ] || { echo "error: no file $file" >&2; exit 2; }
    targets=("${targets[0]}")
fi
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "error: no fuzz target \`$t\` (fuzz/fuzz_targets/)" >&2; exit 2; }
done

# libFuzzer's coverage instrumentation, as cargo-fuzz sets it.
SANCOV=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cllvm-args=-sanitizer-coverage-stack-depth
    --cfg fuzzing
)

# The fuzz workspace uses the main workspace's versions: its lock file is
# made from ../Cargo.lock (fuzz/Cargo.lock is git-ignored), and it builds
# offline from what `cargo fetch` brought for the main workspace.
cargo fetch --locked --quiet
cp Cargo.lock fuzz/Cargo.lock

echo "building the fuzz targets ($([ "$ci" = true ] && echo "bounded run" || echo "long run, sanitizer: $sanitizer"))" >&2
start=$(date +%s)
if [ "$ci" = true ]; then
    # target/, with ../Cargo.toml's dev profile (fuzz/Cargo.toml repeats it):
    # every dependency `cargo test` built there is reused as it is. keelson and
    # kdl get settings of their own (optimised, line tables, 16 codegen units,
    # so no other build makes these units) and fuzz/instrument.sh adds the
    # instrumentation to them.
    target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    config=()
    for crate in keelson kdl; do
        config+=(
            --config "profile.dev.package.$crate.opt-level=2"
            --config "profile.dev.package.$crate.debug=\"line-tables-only\""
            --config "profile.dev.package.$crate.incremental=false"
            --config "profile.dev.package.$crate.codegen-units=16"
        )
    done
    log=$(mktemp)
    if ! (cd fuzz && env -u RUSTC_BOOTSTRAP -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
        RUSTC_WRAPPER="$ROOT/fuzz/instrument.sh" KEELSON_FUZZ_RUSTFLAGS="${SANCOV[*]}" \
        cargo build --offline --bins --target-dir "$target_dir" "${config[@]}" 2>&1) | tee "$log" >&2; then
        rm -f "$log"
        exit 1
    fi
    # After `cargo test`, only keelson, kdl and the targets should compile:
    # anything else is a dependency whose features differ between the builds.
    mapfile -t others < <(sed -n 's/^ *Compiling \([^ ]*\) .*/\1/p' "$log" | grep -v -x -E 'keelson|kdl|keelson-fuzz' | sort -u)
    rm -f "$log"
    if [ "${#others[@]}" -gt 0 ]; then
        shown="${others[*]:0:12}"
        [ "${#others[@]}" -le 12 ] || shown="$shown … (${#others[@]} in all)"
        echo "note: besides keelson and kdl, the fuzz build compiled $shown" >&2
        echo "  right after \`cargo test\` it reuses every dependency, unless one's features differ between the two builds: see \"the test build's features\" in fuzz/Cargo.toml" >&2
    fi
    bin_dir="$target_dir/debug"
else
    # Every crate instrumented (RUSTFLAGS with --target leaves build scripts
    # and proc-macros alone), release, in a directory per sanitizer so that
    # switching does not rebuild everything. 16 codegen units: one per crate
    # (cargo-fuzz's default) makes wasmtime's build far slower for a small
    # gain in executions per second.
    host=$(rustc -vV | sed -n 's/^host: //p')
    target_dir="$ROOT/fuzz/target/$sanitizer"
    flags="${SANCOV[*]}"
    [ "$sanitizer" = address ] && flags="$flags -Zsanitizer=address"
    (cd fuzz && RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags ${RUSTFLAGS:-}" \
        cargo build --offline --release --bins --target "$host" --target-dir "$target_dir" \
        --config profile.release.codegen-units=16)
    bin_dir="$target_dir/$host/release"
fi
echo "built in $(($(date +%s) - start)) s" >&2

# AddressSanitizer's default options, as cargo-fuzz sets them.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

case "$action" in
    reproduce)
        RUST_BACKTRACE=1 exec "$bin_dir/${targets[0]}" "$file"
        ;;
    minimize)
        t=${targets[0]}
        mkdir -p "fuzz/artifacts/$t"
        out="fuzz/artifacts/$t/minimized-$(basename "$file")"
        "$bin_dir/$t" -minimize_crash=1 -runs=255 -artifact_prefix="fuzz/artifacts/$t/" \
            -exact_artifact_path="$out" "$file"
        echo "minimised: $out" >&2
        exit 0
        ;;
esac

mode=$([ "$ci" = true ] && echo "--ci " || true)
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    marker=$(mktemp)
    echo "fuzzing $t for $seconds s" >&2
    # -max_len: estate files are small; 64 KiB leaves room for several.
    # -timeout: one input taking 30 s is a bug (a hang), and a crash.
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    if ! "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=30 \
        "${dict[@]}" -print_final_stats=1 \
        "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t"; then
        failed+=("$t")
        echo >&2
        echo "error: fuzz target \`$t\` crashed" >&2
        found=false
        while IFS= read -r artifact; do
            found=true
            name=$(basename "$artifact")
            echo "  artifact:   $artifact" >&2
            echo "  reproduce:  scripts/fuzz.sh $mode--reproduce $t $artifact" >&2
            echo "  minimise:   scripts/fuzz.sh $mode--minimize $t $artifact" >&2
            echo "  keep it:    cp fuzz/artifacts/$t/minimized-$name fuzz/regressions/$t/<what-it-is>-$name" >&2
            echo "              (cargo test -p keelson --test it -- fuzz_regressions:: replays it)" >&2
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
