#!/usr/bin/env bash
# emoedge on aarch64 under emulation (qemu-user): cross-build with Debian's
# gcc-aarch64-linux-gnu, run the library's tests, then `emoedge analyze` on the
# bundled photo and a short greedy `generate`, and compare both with x86_64.
#
# tract picks its NEON kernels there and its AVX2/FMA kernels here, so floats
# differ in their last bits; the stated tolerances (tests/aarch64/compare.py)
# are what the two must agree within. The boards' build has no ffmpeg (libav
# for arm64 is not cross-installed here): clips are Y4M or MJPEG there.
#
#   bash tests/aarch64/run.sh            # everything (~15 min from cold on 2 cores)
#   EMOEDGE_AARCH64_QUICK=1 bash ...     # CI's subset: skip the LLM comparison
set -euo pipefail
cd "$(dirname "$0")/../.."
bash .ci/setup-aarch64
T=aarch64-unknown-linux-gnu
TD=${CARGO_TARGET_DIR:-target}
out=target/aarch64-check
mkdir -p "$out"
export EMOEDGE_CACHE="$PWD/$out/cache"
failed=0

echo "aarch64: building (release, --no-default-features) for $T" >&2
cargo build --release --locked --target "$T" --no-default-features --bin emoedge
[ -x "$TD/release/emoedge" ] || cargo build --release --locked --bin emoedge
x86="$TD/release/emoedge"
arm="qemu-aarch64-static -L /usr/aarch64-linux-gnu $TD/$T/release/emoedge"
# ELF e_machine 0xB7 is AArch64.
python3 -c 'import sys; b=open(sys.argv[1],"rb").read(20); sys.exit(0 if b[:4]==b"\x7fELF" and b[18]==0xB7 else 1)' \
    "$TD/$T/release/emoedge" && echo "aarch64: ok the binary is an AArch64 ELF"

echo "aarch64: the library's tests under qemu" >&2
if cargo test --release --locked --target "$T" --no-default-features --lib 2>&1 | tee "$out/lib-tests.log" | tail -3; then
    echo "aarch64: ok library tests: $(grep -o '[0-9]* passed' "$out/lib-tests.log" | tail -1)"
else
    echo "aarch64: FAIL library tests (see $out/lib-tests.log)"
    failed=1
fi

# x86_64's outputs, which every comparison below reads (fp16 only the full run's).
for p in fp32 fp16 int8; do
    $x86 analyze tests/data/astronaut.png --json --precision "$p" > "$out/x86-$p.json"
done
for p in fp32 int8; do
    $arm analyze tests/data/astronaut.png --json --precision "$p" > "$out/arm-$p.json"
    python3 tests/aarch64/compare.py analyze "$out/x86-$p.json" "$out/arm-$p.json" "$p" || failed=1
done
$arm --version | sed 's/^/aarch64: version: /' | head -3

if [ -z "${EMOEDGE_AARCH64_QUICK:-}" ]; then
    # The ARMv8.2 kernels. tract picks its fp16-arithmetic and SDOT kernels
    # from /proc/cpuinfo, which under qemu-user is this x86 host's, so above
    # it ran its baseline NEON ones. qemu's CPU has both extensions, and
    # TRACT_CPU_AARCH64_KIND=a55 makes tract take them (the Cortex-A55
    # flavour; a Pi 5 or a Jetson gets the generic flavour of the same
    # instructions). fp16 then computes in half precision, where x86 widens
    # to f32, hence its own tolerances (compare.py).
    for p in fp16 int8; do
        TRACT_CPU_AARCH64_KIND=a55 $arm analyze tests/data/astronaut.png --json --precision "$p" > "$out/arm-a55-$p.json"
        python3 tests/aarch64/compare.py analyze "$out/x86-$p.json" "$out/arm-a55-$p.json" "$p-armv8.2" || failed=1
    done
    # The LLM's own kernels: NEON there (SDOT for int8: qemu's CPU has it),
    # AVX2 here, at each precision.
    prompt="The person shows happiness because"
    for p in int8 fp16 fp32; do
        $x86 generate --precision "$p" --prompt "$prompt" -n 16 --tokens > "$out/x86-gen-$p.txt"
        $arm generate --precision "$p" --prompt "$prompt" -n 16 --tokens > "$out/arm-gen-$p.txt" 2>/dev/null
        python3 tests/aarch64/compare.py generate "$out/x86-gen-$p.txt" "$out/arm-gen-$p.txt" "$p" || failed=1
    done
fi
exit $failed
