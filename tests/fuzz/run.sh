#!/bin/bash
# Builds the fuzz targets (cargo-fuzz, libFuzzer, AddressSanitizer) and runs
# each for a while from its committed seed corpus.
#
#   bash tests/fuzz/run.sh                 # every target, 60 s each
#   bash tests/fuzz/run.sh 600             # 10 minutes each
#   bash tests/fuzz/run.sh 600 gguf image  # some targets
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

# cargo fuzz's build: every crate instrumented for coverage, with
# AddressSanitizer. It needs -Z flags: the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1, and ships the sanitizer runtimes, so no nightly is needed.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
    echo "fuzz: installing cargo-fuzz 0.13.2" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
cargo fuzz build --fuzz-dir tests/fuzz --target-dir target/fuzz-build >&2
BIN=target/fuzz-build/x86_64-unknown-linux-gnu/release

status=0
for t in "${TARGETS[@]}"; do
    corpus=target/fuzz/corpus/$t
    artifacts=target/fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=target/fuzz/$t.log
    # -rss_limit_mb: the face models and a parsed GGUF stay well under it;
    # -timeout: one input taking this long is a hang. A picture that decodes
    # goes through all the face models, which take seconds in an instrumented
    # build; everything else is milliseconds.
    timeout=10
    [ "$t" = image ] && timeout=120
    set +e
    "$BIN/$t" "$corpus" "tests/fuzz/corpus/$t" \
        -max_total_time="$SECONDS_EACH" -timeout="$timeout" -rss_limit_mb=3072 -artifact_prefix="$artifacts/" \
        -print_final_stats=1 > "$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$SECONDS_EACH")
    # crash-, timeout-, oom- and leak- files are findings; slow-unit- files
    # only say an input took over 10 s (a picture through every face model in
    # an ASan build), which -timeout above already bounds.
    found=$(find "$artifacts" -type f ! -name 'slow-unit-*' | wc -l)
    if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
        echo "fuzz: ok $t runs=$runs seconds=$secs corpus=$(find "$corpus" -type f | wc -l)"
    else
        echo "fuzz: FAIL $t exit=$rc findings=$found (see $log and $artifacts)"
        grep -E "ERROR|panicked|SUMMARY" "$log" | head -n 5 >&2 || true
        status=1
    fi
done
exit $status
