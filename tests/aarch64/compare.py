"""Compares two emoedge outputs within stated tolerances: aarch64 (qemu) against
x86_64 here, or CUDA against the CPU on a GPU machine (tests/gpu/run.sh).

analyze: the same faces, the same label; emotion probabilities within 2e-3,
landmarks within 1e-3 of the picture's size (half a pixel at 512 px), AU cues
within 1e-2, age within 0.5 years. generate: the same greedy tokens (the
first 16). With tract's ARMv8.2 kernels ("fp16-armv8.2", "int8-armv8.2"), fp16
is computed in half precision there and widened to f32 here, so its
tolerances are wider: see TOLERANCES. Prints one `TAG: ok|FAIL ...` line per check (TAG from the
environment, default aarch64); exits 1 on a FAIL.
"""
import json
import os
import sys

TAG = os.environ.get("TAG", "aarch64")
# (emotion probabilities, landmarks as a share of the picture, AU cues, age in years)
TOLERANCES = {"fp16-armv8.2": (2e-2, 5e-3, 5e-2, 2.0)}
DEFAULT = (2e-3, 1e-3, 1e-2, 0.5)
kind, x86_path, arm_path, precision = sys.argv[1:5]
failed = False


def report(ok, what):
    global failed
    failed |= not ok
    print(f"{TAG}: {'ok' if ok else 'FAIL'} {what}")


if kind == "analyze":
    te, tl, ta, tg = TOLERANCES.get(precision, DEFAULT)
    a, b = json.load(open(x86_path)), json.load(open(arm_path))
    report(len(a["faces"]) == len(b["faces"]) == 1, f"{precision}: one face on both ({len(a['faces'])}, {len(b['faces'])})")
    for fa, fb in zip(a["faces"], b["faces"]):
        la, lb = fa["expression"]["expression"], fb["expression"]["expression"]
        report(la == lb, f"{precision}: label {la} vs {lb}")
        de = max(abs(fa["emotions"][k] - fb["emotions"][k]) for k in fa["emotions"])
        report(de <= te, f"{precision}: emotion probabilities differ by {de:.2e} (tolerance {te:g}; the JSON keeps 4 decimals)")
        dl = max(abs(p - q) for pa, pb in zip(fa["landmarks"], fb["landmarks"]) for p, q in zip(pa, pb))
        report(dl <= tl, f"{precision}: landmarks differ by {dl:.2e} of the picture (tolerance {tl:g}; 5 decimals kept)")
        ia, ib = fa["action_units"]["intensities"], fb["action_units"]["intensities"]
        da = max(abs(p - q) for p, q in zip(ia, ib))
        report(da <= ta, f"{precision}: AU cues differ by {da:.2e} (tolerance {ta:g})")
        dg = abs(fa["soft_biometrics"]["age"] - fb["soft_biometrics"]["age"])
        report(dg <= tg, f"{precision}: age differs by {dg:.2f} years (tolerance {tg:g})")
else:
    def tokens(path):
        return [int(l) for l in open(path).read().split("\n") if l.strip().isdigit()][-16:]
    ta, tb = tokens(x86_path), tokens(arm_path)
    same = sum(1 for p, q in zip(ta, tb) if p == q)
    report(len(ta) == 16 and ta == tb, f"LLM {precision}: greedy tokens identical, {same} of {len(ta)}")
sys.exit(1 if failed else 0)
