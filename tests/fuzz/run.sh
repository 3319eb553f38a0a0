#!/bin/bash
# Builds the fuzz targets (libFuzzer) and runs each for a while from its
# committed seed corpus.
#
#   bash tests/fuzz/run.sh                 # every target, 60 s each
#   bash tests/fuzz/run.sh 600             # 10 minutes each
#   bash tests/fuzz/run.sh 600 gguf image  # some targets
#
# Two builds (EMOEDGE_FUZZ_BUILD):
#   asan (the default): cargo fuzz's build, every crate instrumented for
#     coverage, with AddressSanitizer. Thorough; its first build takes over 20
#     minutes on 2 cores (tract-core alone over 11).
#   quick (CI): only emoedge's crates instrumented for coverage, with debug
#     assertions and overflow checks but no ASan (tests/fuzz/rustc-sancov).
#     The dependencies are `cargo test --release`'s own artifacts, so after
#     that build only emoedge and the targets compile. Rust's safe code needs
#     no ASan to find panics, hangs and runaway allocations; the unsafe
#     corners (the mappings, ffmpeg) are what the asan build is for.
# EMOEDGE_FUZZ_JOBS targets run side by side (default: 1; CI: 2, one a core).
#
# Prints one line per target, "fuzz: ok TARGET runs=N seconds=S" or
# "fuzz: FAIL TARGET ...", and exits non-zero on any crash, time-out or
# out-of-memory. Findings go to target/fuzz/artifacts/TARGET/; the corpus each
# run grows is kept in target/fuzz/corpus/TARGET/ (the committed seeds in
# tests/fuzz/corpus/ are only read).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(image onnx gguf request config clip)
BUILD=${EMOEDGE_FUZZ_BUILD:-asan}
JOBS=${EMOEDGE_FUZZ_JOBS:-1}

case "$BUILD" in
asan)
    # It needs -Z flags: the stable toolchain accepts them with
    # RUSTC_BOOTSTRAP=1, and ships the sanitizer runtimes, so no nightly is
    # needed. tract instrumented is slow to build, so it is optimised lightly.
    export RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_OPT_LEVEL=1
    if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
        echo "fuzz: installing cargo-fuzz 0.13.2" >&2
        cargo install cargo-fuzz --version 0.13.2 --locked
    fi
    cargo fuzz build --fuzz-dir tests/fuzz --target-dir target/fuzz-build >&2
    BIN=target/fuzz-build/x86_64-unknown-linux-gnu/release
    ;;
quick)
    TD=${CARGO_TARGET_DIR:-target}
    RUSTC_WRAPPER="$ROOT/tests/fuzz/rustc-sancov" \
        cargo build --release --locked --manifest-path tests/fuzz/Cargo.toml --target-dir "$TD" >&2
    BIN=$TD/release
    ;;
*)
    echo "fuzz: EMOEDGE_FUZZ_BUILD is asan or quick, not $BUILD" >&2
    exit 2
    ;;
esac

# One target: its verdict line goes to target/fuzz/TARGET.verdict.
fuzz_one() {
    local t=$1 corpus=target/fuzz/corpus/$1 artifacts=target/fuzz/artifacts/$1 log=target/fuzz/$1.log
    mkdir -p "$corpus" "$artifacts"
    # -rss_limit_mb: the face models and a parsed GGUF stay well under it;
    # -timeout: one input taking this long is a hang. A picture that decodes
    # goes through all the face models, which take seconds in an instrumented
    # build; everything else is milliseconds.
    local timeout=10
    [ "$t" = image ] && timeout=120
    local rc=0
    "$BIN/$t" "$corpus" "tests/fuzz/corpus/$t" \
        -max_total_time="$SECONDS_EACH" -timeout="$timeout" -rss_limit_mb=3072 -artifact_prefix="$artifacts/" \
        -print_final_stats=1 > "$log" 2>&1 || rc=$?
    local runs secs found
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$SECONDS_EACH")
    # crash-, timeout-, oom- and leak- files are findings; slow-unit- files
    # only say an input took over 10 s (a picture through every face model in
    # an ASan build), which -timeout above already bounds.
    found=$(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l)
    if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
        echo "fuzz: ok $t runs=$runs seconds=$secs corpus=$(find "$corpus" -type f | wc -l) build=$BUILD"
    else
        echo "fuzz: FAIL $t exit=$rc findings=$found (see $log and $artifacts)"
        # -a: libFuzzer's log holds the input's raw bytes, and grep would
        # otherwise only say "binary file matches".
        grep -a -E "ERROR|panicked|SUMMARY" "$log" | head -n 5 || true
    fi > "target/fuzz/$t.verdict"
}

mkdir -p target/fuzz
running=0
for t in "${TARGETS[@]}"; do
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
status=0
for t in "${TARGETS[@]}"; do
    cat "target/fuzz/$t.verdict"
    grep -q "^fuzz: ok " "target/fuzz/$t.verdict" || status=1
done
exit $status
