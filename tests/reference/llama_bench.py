#!/usr/bin/env python3
"""llama.cpp's side of `emoedge bench`, through the llama-cpp-python package.

    llama_bench.py quantize SRC.gguf OUT.gguf f32|f16|q8_0
        OUT from SRC with llama.cpp's own llama_model_quantize (allow_requantize),
        as `emoedge convert` makes its exports from the same source.
    llama_bench.py run MODEL.gguf --threads N --prompt P --decode D
        prints one JSON line: prefill_tok_s, decode_tok_s, first_token_ms,
        load_s, peak_rss_kib, rss_anon_kib, rss_file_kib.

The prompt is the token ids emoedge's bench feeds its own model,
1000 + (7919 i mod 30000): the same work on both sides. Each `run` is its own
process, so its peak RSS is its own. `.ci/setup-llama` installs the package.
"""
import argparse
import ctypes
import json
import sys
import time
from pathlib import Path


def status_kib():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0])
    return out


def quantize(src, out, kind):
    import llama_cpp

    ftype = {"f32": llama_cpp.LLAMA_FTYPE_ALL_F32, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
             "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = 1
    tmp = out.with_suffix(".partial")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize to {kind} failed ({rc})")
    tmp.rename(out)


def run(model, threads, prompt, decode):
    import llama_cpp
    import llama_cpp.llama_cpp as L
    import numpy as np

    # The AMX/extra buffer types of a native build crash on batches; the
    # portable AVX2 build has none, and this keeps both the same.
    orig = L.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    L.llama_model_default_params = params
    t = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, n_batch=512, n_ubatch=512, n_threads=threads,
                          n_threads_batch=threads, seed=0, verbose=False, logits_all=False)
    load_s = time.perf_counter() - t
    ids = [1000 + (i * 7919) % 30000 for i in range(prompt)]

    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))

    llm.reset()
    llm.eval(ids[:8])  # warm-up: page the weights in, allocate the buffers
    llm.reset()
    t = time.perf_counter()
    llm.eval(ids)
    tok = int(np.argmax(last_logits()))
    prefill = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(decode):
        llm.eval([tok])
        tok = int(np.argmax(last_logits()))
    decode_s = time.perf_counter() - t
    s = status_kib()
    print(json.dumps({"prefill_tok_s": prompt / prefill, "decode_tok_s": decode / decode_s,
                      "first_token_ms": prefill * 1e3, "load_s": load_s, "peak_rss_kib": s["VmHWM"],
                      "rss_anon_kib": s["RssAnon"], "rss_file_kib": s["RssFile"]}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("src", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("kind", choices=["f32", "f16", "q8_0"])
    r = sub.add_parser("run")
    r.add_argument("model", type=Path)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--prompt", type=int, default=128)
    r.add_argument("--decode", type=int, default=128)
    a = ap.parse_args()
    if a.cmd == "quantize":
        quantize(a.src, a.out, a.kind)
    else:
        run(a.model, a.threads, a.prompt, a.decode)


if __name__ == "__main__":
    main()
