#!/usr/bin/env python3
"""Check the converted face models: every variant vs the fp32 model, with onnxruntime (1 thread)
and optionally with tract (through a small probe binary, see --tractprobe).

    python quant/check_face.py --out models/face [--tractprobe PATH] [--json report.json]

Eval inputs are real images: the astronaut (whole image for blazeface, its blazeface face crop for
the face models) plus the 36 LFW faces of skimage's lfw_subset that were NOT used for calibration.
Reported per file: max |diff| vs fp32 (per output, over all eval inputs), top-1 agreement for the
softmax outputs, single-thread median latency, and (with --tractprobe) max |tract - onnxruntime|
on the astronaut input for the same file.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from convert_face import INPUT_NAME, MODELS, preprocess, sample_images

# outputs that are class distributions (top-1 agreement is meaningful)
CLASS_OUTPUTS = {("emotion", "emotion"), ("gear", "age"), ("gear", "gender"), ("gear", "race"),
                 ("faceres", "age"), ("gender", "gender")}
# single sigmoid outputs: agreement of the > 0.5 decision
BINARY_OUTPUTS = {("faceres", "gender"), ("gender-ssrnet-imdb", "gender"), ("facemesh", "face_flag")}
VARIANTS = [("fp32", ""), ("fp16", ".fp16"), ("int8", ".int8")]


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_ms(fn, runs):
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def blazeface_detections(ref, out):
    """detector-level diff: on anchors the fp32 model scores > 0.5, max |score diff| and max
    |box diff| (cx,cy,w,h in input pixels). The raw logits of background anchors reach -1000,
    so the plain max-abs-diff of logits says little."""
    sig = lambda v: 1 / (1 + np.exp(-np.clip(v, -80, 80)))  # noqa: E731
    sa = np.concatenate([sig(ref[0][0, :, 0]), sig(ref[2][0, :, 0])])
    sb = np.concatenate([sig(out[0][0, :, 0]), sig(out[2][0, :, 0])])
    ba = np.concatenate([ref[1][0, :, :4], ref[3][0, :, :4]])
    bb = np.concatenate([out[1][0, :, :4], out[3][0, :, :4]])
    m = sa > 0.5
    if not m.any():
        return None
    return float(np.abs(sa - sb)[m].max()), float(np.abs(ba - bb)[m].max()), int(m.sum())


def run_tract(probe, model_path, x, runs, env=None):
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/x.npy", np.ascontiguousarray(x, dtype="<f4"))
        p = subprocess.run([probe, str(model_path), f"{d}/x.npy", f"{d}/y", str(runs)],
                           capture_output=True, text=True, env={**os.environ, **(env or {})})
        if p.returncode != 0:
            return None, None, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"
        outs, ms = [], None
        i = 0
        while Path(f"{d}/y.{i}.npy").exists():
            outs.append(np.load(f"{d}/y.{i}.npy"))
            i += 1
        for line in p.stdout.splitlines():  # median of the timed runs, else the first run
            if line.startswith("bench_ms_median") or (line.startswith("first_run_ms") and ms is None):
                ms = float(line.split()[1])
        return outs, ms, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("models/face"))
    ap.add_argument("--tractprobe", help="path to the tractprobe binary (optional)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per file")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--precisions", nargs="*", default=[p for p, _ in VARIANTS])
    args = ap.parse_args()

    blaze = args.out / "blazeface.onnx"
    results = []
    for name in MODELS:
        xs = [preprocess(name, im) for im in sample_images(name, blaze, "eval")]
        ref_sess = session(args.out / f"{name}.onnx")
        out_names = [o.name for o in ref_sess.get_outputs()]
        refs = [ref_sess.run(None, {INPUT_NAME: x}) for x in xs]
        for precision, suffix in [v for v in VARIANTS if v[0] in args.precisions]:
            path = args.out / f"{name}{suffix}.onnx"
            sess = session(path)
            outs = [sess.run(None, {INPUT_NAME: x}) for x in xs]
            r = dict(name=name, precision=precision, file=path.name, bytes=path.stat().st_size,
                     n_eval=len(xs), outputs={})
            for k, on in enumerate(out_names):
                diffs = [float(np.max(np.abs(o[k] - ref[k]))) for o, ref in zip(outs, refs)]
                d = dict(shape=list(refs[0][k].shape), max_abs_diff=max(diffs), astronaut_diff=diffs[0],
                         ref_range=[float(min(ref[k].min() for ref in refs)),
                                    float(max(ref[k].max() for ref in refs))])
                if (name, on) in BINARY_OUTPUTS:
                    agree = [int((o[k] > 0.5).item() == (ref[k] > 0.5).item()) for o, ref in zip(outs, refs)]
                    d["threshold_agree"] = f"{sum(agree)}/{len(agree)}"
                if (name, on) in CLASS_OUTPUTS:
                    agree = [int(np.argmax(o[k]) == np.argmax(ref[k])) for o, ref in zip(outs, refs)]
                    d["top1_agree"] = f"{sum(agree)}/{len(agree)}"
                r["outputs"][on] = d
            if name == "blazeface":
                dets = [blazeface_detections(ref, o) for o, ref in zip(outs, refs)]
                dets = [d for d in dets if d]
                r["detections"] = dict(images_with_face=len(dets), anchors=sum(d[2] for d in dets),
                                       max_score_diff=max(d[0] for d in dets),
                                       max_box_diff_px=max(d[1] for d in dets))
            if name == "faceres":
                k = out_names.index("embedding")
                cos = [float(np.dot(o[k].ravel(), ref[k].ravel()) /
                             (np.linalg.norm(o[k]) * np.linalg.norm(ref[k]))) for o, ref in zip(outs, refs)]
                r["embedding_min_cosine"] = min(cos)
            r["ort_ms"] = median_ms(lambda: sess.run(None, {INPUT_NAME: xs[0]}), args.runs)
            if args.tractprobe:
                # tract runs f16 arithmetic in software on x86 (very slow): check fp16 files with
                # one native run, and time them after tract's f16_to_f32 transform as well.
                native_runs = 0 if precision == "fp16" else args.runs
                touts, tms, err = run_tract(args.tractprobe, path, xs[0], native_runs)
                r["tract_ms"], r["tract_error"] = tms, err
                if precision == "fp16":
                    _, r["tract_f16_to_f32_ms"], _ = run_tract(args.tractprobe, path, xs[0], args.runs,
                                                              {"TRACT_F16_TO_F32": "1"})
                if touts is not None:
                    r["tract_vs_ort"] = {on: float(np.max(np.abs(t.reshape(o.shape) - o)))
                                         for on, t, o in zip(out_names, touts, outs[0])}
                    r["tract_vs_fp32"] = {on: float(np.max(np.abs(t.reshape(o.shape) - o)))
                                          for on, t, o in zip(out_names, touts, refs[0])}
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
