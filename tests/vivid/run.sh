#!/bin/bash
# The daemon against a real V4L2 device: emoedge-firmware-host inside a qemu guest,
# capturing from the vivid virtual camera while the bundled portrait streams into
# vivid's output (looped back into its capture), with an unplug and replug mid-run.
# CI runs it every time; it needs only qemu (TCG), no /dev/kvm and no camera.
#
#   bash tests/vivid/run.sh
#
# It builds the daemon, records the frames, runs tests/vivid/daemon-in-guest.sh in the
# guest through tests/vivid/guest.sh (the harness: kernel, initramfs, vivid, qemu), then
# checks what the guest shipped back: the events (against the JSON Schema), the labels,
# the unplug, the daemon's summary. Its last line:
#   vivid: frames=N events=M fps=F faces_labelled=K unplug_recovered=yes|no
# and it exits non-zero when a check fails. Files land in target/vivid/out/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WORK=${VIVID_WORK:-$ROOT/target/vivid}
OUT=$WORK/out
say() { echo "vivid: $*" >&2; }

cargo build --release --locked -p firmware-host
BIN=target/release/emoedge-firmware-host

# The payload: the daemon (guest.sh adds the shared libraries it needs), the int8
# face models (the smallest; labels agree with fp32), its config, the script.
PAY=$WORK/payload
rm -rf "$PAY" "$OUT"
mkdir -p "$PAY/models/face" "$OUT"
cp "$BIN" "$PAY/"
cp models/manifest.toml "$PAY/models/"
for m in blazeface facemesh emotion faceres; do cp "models/face/$m.int8.onnx" "$PAY/models/face/"; done
cp tests/vivid/daemon-in-guest.sh "$PAY/run-in-guest.sh"
cat > "$PAY/daemon.toml" <<'TOML'
[camera]
device = "/dev/vivid-camera"     # guest.sh's symlink: exists only while vivid is set up
width = 640
height = 480
format = "yuyv"
input = 3                        # HDMI, the input vivid loops its output into
controls = { loop_video = 1, osd_text_mode = 2 }
max_backoff = 2.0
[events]
socket = "/run/emoedge/events.sock"
stdout = "json"
[display]
target = "auto"                  # no framebuffer in the guest: PNG snapshots
png = "/tmp/kiosk.png"
png_interval = 5.0
[llm]
enabled = false                  # the compact LLaMA under emulation would take minutes a token
[analysis]
models = "/payload/models"
precision = "int8"
TOML
FRAMES=$WORK/daemon-frames.yuyv
"$BIN" record tests/data/astronaut.png -o "$FRAMES"

set +e
VIVID_FRAMES=$FRAMES VIVID_PAYLOAD_DIR=$PAY VIVID_TIMEOUT=${VIVID_TIMEOUT:-1500} bash tests/vivid/guest.sh
guest_rc=$?
set -e

# Slice what the guest shipped over ttyS1 into files (guest.sh checked each md5).
python3 - "$WORK/serial0.log" "$WORK/serial1.out" "$OUT" <<'PY'
import re, sys
log, data, out = open(sys.argv[1], errors="replace").read(), open(sys.argv[2], "rb").read(), sys.argv[3]
for off, n, name in re.findall(r"vivid-guest: ttyS1 shipped offset=(\d+) bytes=(\d+) md5=[0-9a-f]+ name=(\S+)", log):
    open(f"{out}/{name}", "wb").write(data[int(off):int(off) + int(n)])
PY

PY=.venv-ref/bin/python
[ -x "$PY" ] || { say "no $PY: run bash .ci/setup"; exit 2; }
schema_ok=no
if [ -s "$OUT/events.jsonl" ] && "$PY" tests/reference/validate_events.py firmware-host/hri-events.schema.json "$OUT/events.jsonl" >&2; then
    schema_ok=yes
fi
# The checks, from the events and the daemon's own summary line.
"$PY" - "$OUT" "$guest_rc" "$schema_ok" <<'PY'
import json, re, sys
out, guest_rc, schema_ok = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes"
events = []
try:
    events = [json.loads(l) for l in open(f"{out}/events.jsonl") if l.strip()]
except OSError:
    pass
summary = ""
try:
    summary = next((l for l in open(f"{out}/daemon.log") if l.startswith("firmware-host:")), "")
except OSError:
    pass
field = lambda k: (re.search(rf"\b{k}=([0-9.]+)", summary) or [None, "0"])[1]
faces = [e for e in events if e.get("type") == "faces"]
labelled = sum(1 for e in faces for f in e["faces"] if f["expression"]["expression"] == "happy")
other = sum(1 for e in faces for f in e["faces"] if f["expression"]["expression"] != "happy")
# Recovered: after a `lost`, a `streaming` again, and then a labelled face.
lost = next((i for i, e in enumerate(events) if e.get("type") == "camera" and e["state"] == "lost"), None)
back = next((i for i, e in enumerate(events) if lost is not None and i > lost and e.get("type") == "camera" and e["state"] == "streaming"), None)
recovered = back is not None and any(e.get("type") == "faces" and e["faces"] for e in events[back:])
seqs = [e["seq"] for e in events if "seq" in e]
gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]))
lat = [e["latency_ms"] for e in faces]
lat.sort()
p50 = lat[len(lat) // 2] if lat else 0
checks = {
    "the guest run": guest_rc == 0,
    "events against the schema": schema_ok,
    "labelled faces (happy)": labelled >= 10,
    "no face with another label": other == 0,
    "unplug recovered": recovered,
    "sequence without gaps": bool(seqs) and gaps == 0 and seqs[0] == 1,
    "kiosk snapshot": __import__("os").path.getsize(f"{out}/kiosk.png") > 1000 if __import__("os").path.exists(f"{out}/kiosk.png") else False,
}
for name, ok in checks.items():
    print(f"vivid: {'ok  ' if ok else 'FAIL'} {name}", file=sys.stderr)
print(f"vivid: daemon summary: {summary.strip()}", file=sys.stderr)
print(f"vivid: latency from a frame's capture to its event in the guest: median {p50:.0f} ms over {len(lat)} frames", file=sys.stderr)
print(f"vivid: frames={field('frames')} events={len(events)} fps={field('fps')} faces_labelled={labelled} "
      f"unplug_recovered={'yes' if recovered else 'no'}")
sys.exit(0 if all(checks.values()) else 1)
PY
