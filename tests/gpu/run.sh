#!/usr/bin/env bash
# The CUDA path, on a machine with an NVIDIA GPU (a Jetson, or a desktop with
# driver >= 560 and the CUDA 12 runtime: cudart, nvrtc, cuBLAS, cuDNN). This
# development machine has none, so this script is run where one is.
#
#   bash tests/gpu/run.sh
#
# 1. builds with --features cuda and checks that --device auto chose CUDA;
# 2. runs the face pipeline on the bundled photo on the GPU and on the CPU, at
#    fp32 and fp16, and compares them (tests/aarch64/compare.py's tolerances:
#    emotions 2e-3, landmarks 1e-3 of the size, AU cues 1e-2, age 0.5 y);
# 3. prints `emoedge doctor`: the board's bandwidth, the LLM decode roofline
#    (bandwidth ÷ bytes per token) and the measured decode beside it.
#    The LLM's weight kernels are emoedge's own (memory-mapped int8/fp16
#    GEMV), so it decodes on the CPU; the figure says what this board gives.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/gpu-check && mkdir -p "$out"
cargo build --release --locked --features cuda --bin emoedge
bin=./target/release/emoedge
RUST_LOG=info $bin --device auto analyze tests/data/astronaut.png 2> "$out/auto.log" >/dev/null || true
if grep -q "face models on cuda" "$out/auto.log"; then
    echo "gpu: ok   --device auto chose CUDA: $(grep -o 'face models on cuda.*' "$out/auto.log")"
else
    echo "gpu: FAIL --device auto did not choose CUDA: $(grep -o 'face models on .*' "$out/auto.log")"; exit 1
fi
status=0
for p in fp32 fp16; do
    $bin --device cpu analyze tests/data/astronaut.png --json --precision "$p" > "$out/cpu-$p.json"
    $bin --device cuda analyze tests/data/astronaut.png --json --precision "$p" > "$out/cuda-$p.json"
    TAG=gpu python3 tests/aarch64/compare.py analyze "$out/cpu-$p.json" "$out/cuda-$p.json" "$p" || status=1
done
# Per-stage times on each side, for the record.
for d in cpu cuda; do
    python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["faces"][0]["timings_ms"]; print("gpu: " + sys.argv[2] + " fp32 times (ms): " + ", ".join(f"{k} {v}" for k,v in f.items()))' "$out/$d-fp32.json" "$d"
done
$bin --device cuda doctor | sed 's/^/gpu: /'
exit $status
