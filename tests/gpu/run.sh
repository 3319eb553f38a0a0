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
# 3. runs the LLM on the GPU (its graph of tract's ops: weights as tensors,
#    EinSum, DynKeyValueCache, Sdpa) and on the CPU (emoedge's mapped
#    kernels), at fp32 and fp16: the first 8 greedy tokens of a prompt must be
#    the same, and the log must say the GPU took it (no fallback);
# 4. measures GPU decode at fp16 (128-token prompt, 128 greedy steps) and sets
#    it against the GPU's roofline: f16 weight bytes ÷ the GPU memory bandwidth,
#    from EMOEDGE_GPU_GBS or, for a few known boards, from the GPU's name;
# 5. prints `emoedge doctor`: the CPU's bandwidth, its LLM decode roofline
#    and the measured CPU decode beside it.
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
# The LLM. Its CUDA graph is translated by tract-cuda; a failure there would
# fall back to the CPU with a warning, which is a FAIL here.
prompt="The capital of France is"
for p in fp32 fp16; do
    RUST_LOG=info $bin --device cuda generate --precision "$p" -n 16 --tokens --prompt "$prompt" \
        > "$out/llm-cuda-$p.txt" 2> "$out/llm-cuda-$p.log" || status=1
    $bin --device cpu generate --precision "$p" -n 16 --tokens --prompt "$prompt" > "$out/llm-cpu-$p.txt" 2>/dev/null || status=1
    if grep -q "LLM on cuda" "$out/llm-cuda-$p.log" && grep -q "on cuda (Tensors weights" "$out/llm-cuda-$p.log"; then
        echo "gpu: ok   the LLM was loaded on CUDA at $p"
    else
        echo "gpu: FAIL the LLM did not run on CUDA at $p: $(grep -E 'LLM|using the CPU' "$out/llm-cuda-$p.log" | tail -2)"; status=1
    fi
    # The token ids are the lines after the text (one number a line).
    same=$(paste -d' ' <(grep -E '^[0-9]+$' "$out/llm-cpu-$p.txt") <(grep -E '^[0-9]+$' "$out/llm-cuda-$p.txt") \
        | awk '$1 != $2 { exit } { n++ } END { print n + 0 }')
    if [ "$same" -ge 8 ]; then
        echo "gpu: ok   LLM greedy tokens, CUDA vs CPU at $p: the first $same of 16 equal"
    else
        echo "gpu: FAIL LLM greedy tokens, CUDA vs CPU at $p: only the first $same of 16 equal"; status=1
    fi
done
# Decode against the GPU's memory roofline.
$bin --device cuda bench-llm --precision fp16 --prompt 128 --decode 128 > "$out/llm-bench.json" 2>/dev/null || status=1
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
python3 - "$out/llm-bench.json" "$gpu_name" "${EMOEDGE_GPU_GBS:-}" <<'PY'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
name, gbs = sys.argv[2], sys.argv[3]
# Peak memory bandwidth (GB/s) of the boards' GPUs, from NVIDIA's data sheets.
known = {"Orin Nano": 68, "Orin NX": 102, "AGX Orin": 204.8, "Xavier NX": 59.7, "AGX Xavier": 136.5,
         "RTX 4090": 1008, "RTX 3090": 936, "A100": 1555, "H100": 3350, "H200": 4800, "L4": 300, "T4": 320}
if not gbs:
    gbs = next((v for k, v in known.items() if k.lower() in name.lower()), None)
weight_bytes = 134_515_008 * 2  # SmolLM2-135M's parameters, as the fp16 export's f16 tensors
line = f"gpu: LLM on {name or 'the GPU'}: prefill {run['prefill_tok_s']:.0f} tok/s, decode {run['decode_tok_s']:.1f} tok/s"
if gbs:
    roof = float(gbs) * 1e9 / weight_bytes
    line += f"; roofline {roof:.0f} tok/s at {float(gbs):g} GB/s, decode at {100 * run['decode_tok_s'] / roof:.1f} % of it"
else:
    line += " (set EMOEDGE_GPU_GBS to the GPU's memory bandwidth for the roofline)"
print(line)
PY
$bin --device cuda doctor | sed 's/^/gpu: /'
exit $status
