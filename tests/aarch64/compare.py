"""Compares two emoedge outputs within stated tolerances: aarch64 (qemu) against
x86_64 here, or CUDA against the CPU on a GPU machine (tests/gpu/run.sh).

analyze: the same faces, the same label; emotion probabilities within 2e-3,
landmarks within 1e-3 of the picture's size (half a pixel at 512 px), AU cues
within 1e-2, age within 0.5 years. generate: the same greedy tokens (the
first 16). Prints one `TAG: ok|FAIL ...` line per check (TAG from the
environment, default aarch64); exits 1 on a FAIL.
"""
import json
import os
import sys

TAG = os.environ.get("TAG", "aarch64")
kind, x86_path, arm_path, precision = sys.argv[1:5]
failed = False


def report(ok, what):
    global failed
    failed |= not ok
    print(f"{TAG}: {'ok' if ok else 'FAIL'} {what}")


if kind == "analyze":
    a, b = json.load(open(x86_path)), json.load(open(arm_path))
    report(len(a["faces"]) == len(b["faces"]) == 1, f"{precision}: one face on both ({len(a['faces'])}, {len(b['faces'])})")
    for fa, fb in zip(a["faces"], b["faces"]):
        la, lb = fa["expression"]["expression"], fb["expression"]["expression"]
        report(la == lb, f"{precision}: label {la} vs {lb}")
        de = max(abs(fa["emotions"][k] - fb["emotions"][k]) for k in fa["emotions"])
        report(de <= 2e-3, f"{precision}: emotion probabilities differ by {de:.2e} (tolerance 2e-3; the JSON keeps 4 decimals)")
        dl = max(abs(p - q) for pa, pb in zip(fa["landmarks"], fb["landmarks"]) for p, q in zip(pa, pb))
        report(dl <= 1e-3, f"{precision}: landmarks differ by {dl:.2e} of the picture (tolerance 1e-3; 5 decimals kept)")
        ia, ib = fa["action_units"]["intensities"], fb["action_units"]["intensities"]
        da = max(abs(p - q) for p, q in zip(ia, ib))
        report(da <= 1e-2, f"{precision}: AU cues differ by {da:.2e} (tolerance 1e-2)")
        dg = abs(fa["soft_biometrics"]["age"] - fb["soft_biometrics"]["age"])
        report(dg <= 0.5, f"{precision}: age differs by {dg:.2f} years (tolerance 0.5)")
else:
    def tokens(path):
        return [int(l) for l in open(path).read().split("\n") if l.strip().isdigit()][-16:]
    ta, tb = tokens(x86_path), tokens(arm_path)
    same = sum(1 for p, q in zip(ta, tb) if p == q)
    report(len(ta) == 16 and ta == tb, f"LLM {precision}: greedy tokens identical, {same} of {len(ta)}")
sys.exit(1 if failed else 0)
