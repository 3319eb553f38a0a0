#!/usr/bin/env python3
"""Runs ONNX models with onnxruntime, the reference the parity tests hold tract to.

Usage: ort_run.py DIR [--repeat N]

DIR holds one job per model run, written by the Rust test:
  <job>.json   {"model": "/abs/path/model.onnx", "shape": [1, 256, 256, 3]}
  <job>.in     the input, raw little-endian f32, row-major
For each job this writes <job>.out<k> (raw f32) per output and <job>.out.json
with the output shapes (and, with --repeat, the median milliseconds of N
timed runs after one warm-up). One thread, all graph optimisations, CPU only.
"""
import json
import pathlib
import sys
import time

import numpy as np
import onnxruntime as ort


def main(directory: str, repeat: int) -> None:
    d = pathlib.Path(directory)
    jobs = sorted(d.glob("*.json"))
    jobs = [j for j in jobs if not j.name.endswith(".out.json")]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sessions = {}
    for job in jobs:
        spec = json.loads(job.read_text())
        stem = job.with_suffix("")
        x = np.fromfile(str(stem) + ".in", dtype="<f4").reshape(spec["shape"])
        if spec["model"] not in sessions:
            sessions[spec["model"]] = ort.InferenceSession(spec["model"], opts, providers=["CPUExecutionProvider"])
        sess = sessions[spec["model"]]
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            sess.run(None, {sess.get_inputs()[0].name: x})
            times.append((time.perf_counter() - t) * 1e3)
        shapes = []
        for k, o in enumerate(outs):
            o = np.asarray(o, dtype="<f4")
            o.tofile(str(stem) + f".out{k}")
            shapes.append(list(o.shape))
        (pathlib.Path(str(stem) + ".out.json")).write_text(json.dumps({"shapes": shapes, "ms": sorted(times)[len(times) // 2] if times else None}))
    print(f"onnxruntime {ort.__version__}: ran {len(jobs)} jobs")


if __name__ == "__main__":
    args = sys.argv[1:]
    repeat = int(args[args.index("--repeat") + 1]) if "--repeat" in args else 0
    main(args[0], repeat)
