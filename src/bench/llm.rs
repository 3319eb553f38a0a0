//! The compact LLaMA beside llama.cpp on the same weights, and the memory
//! roofline both are held to.
//!
//! Each configuration runs in a fresh process, ours (`emoedge bench-llm`) and
//! llama.cpp's (`tests/reference/llama_bench.py`, through llama-cpp-python),
//! so that each peak RSS is that configuration's own. Both feed the same
//! prompt token ids and decode the same number of greedy steps.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};

use super::{BenchRow, Target};
use crate::{
    llm::{convert, sampler::argmax, session::Llm},
    models::Precision,
};

/// What one configuration measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LlmRun {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub first_token_ms: f64,
    pub load_s: f64,
    pub peak_rss_kib: u64,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
}

/// The prompt both sides are fed: ordinary tokens, deterministic.
pub fn prompt_ids(n: usize) -> Vec<u32> {
    (0..n).map(|i| 1000 + (i as u32 * 7919) % 30000).collect()
}

/// (peak RSS, anonymous RSS, file-backed RSS) in KiB, from /proc/self/status.
pub fn memory_kib() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("RssAnon:"), field("RssFile:"))
}

/// Prefill `prompt` tokens, then `decode` greedy steps, in this process.
pub fn measure(llm: &Llm, prompt: usize, decode: usize) -> Result<LlmRun> {
    let mut ids = prompt_ids(prompt);
    // Warm-up, as llama.cpp's side does: pages the weights in.
    llm.session()?.logits_after(&ids[..8.min(prompt)])?;
    let mut session = llm.session()?;
    let t = Instant::now();
    let first = argmax(session.logits_after(&ids)?);
    let prefill = t.elapsed().as_secs_f64();
    ids.push(first);
    let t = Instant::now();
    for _ in 0..decode {
        let next = argmax(session.logits_after(&ids)?);
        ids.push(next);
    }
    let decode_s = t.elapsed().as_secs_f64().max(1e-9);
    let (peak, anon, file) = memory_kib();
    Ok(LlmRun {
        prefill_tok_s: prompt as f64 / prefill,
        decode_tok_s: decode as f64 / decode_s,
        first_token_ms: prefill * 1e3,
        load_s: llm.load_seconds,
        peak_rss_kib: peak,
        rss_anon_kib: anon,
        rss_file_kib: file,
    })
}

fn run_json(mut cmd: Command, what: &str) -> Result<LlmRun> {
    let out = cmd.output().with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{what} printed no result: {stdout}"))
}

/// Ours, in a fresh `emoedge bench-llm` process.
pub fn run_ours(exe: &Path, gguf: &Path, p: Precision, threads: usize, prompt: usize, decode: usize) -> Result<LlmRun> {
    let mut cmd = Command::new(exe);
    // On the CPU, as llama.cpp is: the rows compare kernels on the same cores.
    cmd.args(["--device", "cpu", "--threads", &threads.to_string(), "bench-llm", "--model"]).arg(gguf);
    cmd.args(["--precision", p.as_str(), "--prompt", &prompt.to_string(), "--decode", &decode.to_string()]);
    run_json(cmd, &format!("emoedge bench-llm at {p}"))
}

/// The Python with llama-cpp-python: `$EMOEDGE_LLAMA_PYTHON`, else the source
/// tree's `.venv-llama/` that `.ci/setup-llama` makes. `None` when absent.
pub fn llama_python() -> Option<PathBuf> {
    let python = std::env::var_os("EMOEDGE_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-llama/bin/python"));
    python.exists().then_some(python)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/llama_bench.py")
}

/// llama.cpp's kind for a precision: the same weights ours runs.
pub fn llama_kind(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "f32",
        Precision::Fp16 => "f16",
        Precision::Int8 => "q8_0",
    }
}

/// llama.cpp's own requantisation of `source` to `p`, made once into the cache.
pub fn llama_gguf(python: &Path, source: &Path, p: Precision) -> Result<PathBuf> {
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let out = convert::cache_dir().join(format!("llama.cpp-{stem}.{}.gguf", llama_kind(p)));
    if !out.exists() {
        std::fs::create_dir_all(convert::cache_dir())?;
        let done = Command::new(python)
            .arg(script())
            .arg("quantize")
            .arg(source)
            .arg(&out)
            .arg(llama_kind(p))
            .output()
            .context("cannot run llama.cpp's quantizer")?;
        if !done.status.success() {
            bail!(
                "llama.cpp could not requantise {} to {}: {}",
                source.display(),
                llama_kind(p),
                String::from_utf8_lossy(&done.stderr).trim()
            );
        }
    }
    Ok(out)
}

/// llama.cpp, in a fresh process.
pub fn run_llama(python: &Path, gguf: &Path, threads: usize, prompt: usize, decode: usize) -> Result<LlmRun> {
    let mut cmd = Command::new(python);
    cmd.arg(script()).arg("run").arg(gguf);
    cmd.args(["--threads", &threads.to_string(), "--prompt", &prompt.to_string(), "--decode", &decode.to_string()]);
    run_json(cmd, "llama.cpp")
}

/// Milliseconds from a ready Analysis of `face` to the first explanation
/// token, as the daemon does it: the sessions primed once at start
/// ([`crate::explain::primed_sessions`]) are forked for the face's prompt,
/// fed the rest of it, and sampled once. Median of `repeat`.
pub fn first_explanation_token_ms(llm: &Llm, face: &crate::analysis::Face, repeat: usize) -> Result<f64> {
    use crate::explain;
    let template = llm.tokenizer.chat_template.as_deref();
    let primed = explain::primed_sessions(llm)?;
    let mut times = Vec::new();
    for _ in 0..repeat.max(1) + 1 {
        let t = Instant::now();
        let (prompt, _) = explain::prompt(face, None, template)?;
        let ids = llm.tokenizer.encode(&prompt, true)?;
        let mut session = primed.fork(&ids)?;
        let g = session.generate(&ids, 1, Default::default(), |_| {})?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        log::debug!("first explanation token: {} of {} prompt tokens fed", g.fed_tokens, g.prompt_tokens);
    }
    times.remove(0); // the first run pages in what priming did not touch
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// What to run.
pub struct LlmPlan {
    pub source: PathBuf,
    pub precisions: Vec<Precision>,
    pub threads: Vec<usize>,
    pub prompt: usize,
    pub decode: usize,
    /// Bytes for the bandwidth probe's buffer (well above the last-level cache).
    pub probe_bytes: usize,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// All LLM rows: throughput per precision and thread count, memory, and the
/// roofline. `progress(label)` is called before each configuration.
pub fn llm_bench(exe: &Path, plan: &LlmPlan, mut progress: impl FnMut(&str)) -> Result<Vec<BenchRow>> {
    let python = llama_python();
    if python.is_none() {
        log::warn!("llama.cpp is not installed: its column stays empty (run `bash .ci/setup-llama`)");
    }
    let mut rows = Vec::new();
    // (precision, our bytes per step × tok/s, llama.cpp's) at one thread, for the roofline.
    let mut streams: Vec<(Precision, f64, Option<f64>)> = Vec::new();
    for &p in &plan.precisions {
        let export = convert::ensure_export(&plan.source, p)?;
        let our_bytes = std::fs::metadata(&export)?.len() as f64;
        let theirs_gguf = match &python {
            Some(py) => Some(llama_gguf(py, &plan.source, p)?),
            None => None,
        };
        // fp32 is the reference precision: one thread is enough to show it.
        let threads: Vec<usize> =
            if p == Precision::Fp32 { plan.threads.iter().copied().take(1).collect() } else { plan.threads.clone() };
        let kind = llama_kind(p).to_uppercase();
        for t in threads {
            progress(&format!("LLM {p}, {t} thread(s)"));
            let ours = run_ours(exe, &export, p, t, plan.prompt, plan.decode)?;
            let theirs = match (&python, &theirs_gguf) {
                (Some(py), Some(g)) => Some(run_llama(py, g, t, plan.prompt, plan.decode)?),
                _ => None,
            };
            let th = if t == 1 { "1 thread".to_string() } else { format!("{t} threads") };
            let vs = format!("vs llama.cpp {kind}");
            let mut prefill = BenchRow::new(
                format!("LLM {p} prefill, {}-token prompt, {th}, {vs} (tok/s)", plan.prompt),
                ours.prefill_tok_s,
                theirs.as_ref().map(|r| r.prefill_tok_s),
                "tok/s",
            );
            let mut decode = BenchRow::new(
                format!("LLM {p} decode, {} tokens, {th}, {vs} (tok/s)", plan.decode),
                ours.decode_tok_s,
                theirs.as_ref().map(|r| r.decode_tok_s),
                "tok/s",
            );
            if t == 1 && p == Precision::Int8 {
                prefill = prefill.with_target(Target::RatioAtLeast(1.0));
            }
            if t == 1 && p != Precision::Fp32 {
                decode = decode.with_target(Target::RatioAtLeast(1.0));
            }
            rows.extend([prefill, decode]);
            if t != 1 {
                continue;
            }
            let their = |f: fn(&LlmRun) -> u64| theirs.as_ref().map(|r| mib(f(r)));
            rows.push(
                BenchRow::new(
                    format!("LLM {p} peak RSS, {vs} (MiB)"),
                    mib(ours.peak_rss_kib),
                    their(|r| r.peak_rss_kib),
                    "MiB",
                )
                .with_target(Target::RatioAtMost(1.1)),
            );
            rows.push(BenchRow::new(
                format!("LLM {p} anonymous RSS at the end, {vs} (MiB)"),
                mib(ours.rss_anon_kib),
                their(|r| r.rss_anon_kib),
                "MiB",
            ));
            rows.push(BenchRow::new(
                format!("LLM {p} file-backed RSS at the end (the mapped weights), {vs} (MiB)"),
                mib(ours.rss_file_kib),
                their(|r| r.rss_file_kib),
                "MiB",
            ));
            rows.push(BenchRow::new(
                format!("LLM {p} load, {vs} (s)"),
                ours.load_s,
                theirs.as_ref().map(|r| r.load_s),
                "s",
            ));
            let their_bytes = theirs_gguf.as_ref().and_then(|g| std::fs::metadata(g).ok()).map(|m| m.len() as f64);
            streams.push((
                p,
                our_bytes * ours.decode_tok_s,
                their_bytes.zip(theirs.as_ref()).map(|(b, r)| b * r.decode_tok_s),
            ));
        }
    }

    // ---- the roofline ---------------------------------------------------------
    progress("memory bandwidth");
    let probe = crate::roofline::read_bandwidth(plan.probe_bytes, 3);
    let best_engine = streams.iter().flat_map(|(_, a, b)| [Some(*a), *b]).flatten().fold(0f64, f64::max);
    let roof = probe.max(best_engine);
    rows.push(BenchRow::new(
        "memory read bandwidth, 1 thread: our probe vs the best engine's weight stream (GB/s)".into(),
        probe / 1e9,
        (best_engine > 0.0).then_some(best_engine / 1e9),
        "GB/s",
    ));
    for (p, ours, theirs) in streams {
        if p == Precision::Fp32 {
            continue;
        }
        rows.push(
            BenchRow::new(
                format!(
                    "LLM {p} decode, share of the roofline ({:.1} GB/s), vs llama.cpp {} (%)",
                    roof / 1e9,
                    llama_kind(p).to_uppercase()
                ),
                100.0 * ours / roof,
                theirs.map(|t| 100.0 * t / roof),
                "%",
            )
            .with_target(Target::OursAtLeast(75.0)),
        );
    }
    Ok(rows)
}
