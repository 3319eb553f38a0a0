//! `emoedge doctor`: what this board is and what emoedge can do on it. The
//! backends, the CPU and its features, the memory bandwidth measured here,
//! the cameras, the models and their checksums, and the LLM's decode speed:
//! the roofline's promise (bandwidth ÷ bytes read per token) beside a quick
//! measured run.

use std::{fmt::Write as _, path::Path};

use crate::{
    backend::{self, Device},
    models::{self, ModelFile, Precision},
};

/// One line of the report: a name, what was found, and whether it is fine.
pub struct Check {
    pub name: String,
    pub found: String,
    pub ok: bool,
}

pub struct Report {
    pub sections: Vec<(&'static str, Vec<Check>)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.sections.iter().flat_map(|(_, c)| c).all(|c| c.ok)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for (title, checks) in &self.sections {
            let _ = writeln!(s, "{title}");
            for c in checks {
                let _ = writeln!(s, "  {} {:<24} {}", if c.ok { "ok " } else { "!! " }, c.name, c.found);
            }
        }
        let _ = writeln!(s, "{}", if self.ok() { "all checks passed" } else { "some checks failed (marked !!)" });
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!(self
            .sections
            .iter()
            .map(|(t, cs)| (
                t.to_string(),
                serde_json::Value::Array(
                    cs.iter().map(|c| serde_json::json!({"name": c.name, "found": c.found, "ok": c.ok})).collect()
                )
            ))
            .collect::<serde_json::Map<_, _>>())
    }
}

fn check(name: impl Into<String>, found: impl Into<String>, ok: bool) -> Check {
    Check { name: name.into(), found: found.into(), ok }
}

/// The CPU features tract's kernels and ours use, as (name, present).
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("fp16 arithmetic", std::arch::is_aarch64_feature_detected!("fp16")),
            ("dot product", std::arch::is_aarch64_feature_detected!("dotprod")),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
            ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
    };
    // x86 says "model name"; arm64 kernels give only part numbers, but a
    // device tree names the board.
    field("model name")
        .or_else(|| {
            std::fs::read_to_string("/proc/device-tree/model").ok().map(|m| m.trim_end_matches('\0').to_string())
        })
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn memory_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The V4L2 capture devices: /dev/videoN with the driver's name for each.
pub fn cameras() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/video4linux") else { return out };
    for entry in dir.flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default().trim().to_string();
        out.push((format!("/dev/{node}"), name));
    }
    out.sort();
    out
}

/// What to measure: `quick` skips the LLM run (CI, or no LLM installed).
pub struct Options<'a> {
    pub models: &'a Path,
    pub llm: Option<&'a Path>,
    pub bandwidth_bytes: usize,
}

pub fn examine(opts: &Options) -> Report {
    let mut sections = Vec::new();

    let selected = backend::select(Device::Auto);
    sections.push((
        "backends",
        vec![
            check("compiled in", crate::BACKENDS, true),
            check("--device auto", format!("{} ({})", selected.backend.name(), selected.why), true),
            check("cuda", backend::cuda_available().map_or_else(|e| e, |_| "usable".into()), true),
        ],
    ));

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let features: Vec<String> =
        cpu_features().iter().map(|(n, on)| format!("{n} {}", if *on { "yes" } else { "no" })).collect();
    let bandwidth = crate::roofline::read_bandwidth(opts.bandwidth_bytes, 3);
    let mut cpu = vec![
        check("model", cpu_model(), true),
        check("architecture", format!("{} ({} cores)", std::env::consts::ARCH, cores), true),
        check("features", features.join(", "), true),
        check(
            "memory",
            memory_total().map_or("unknown".into(), |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)),
            true,
        ),
        check("read bandwidth", format!("{:.1} GB/s on one thread (measured now)", bandwidth / 1e9), bandwidth > 0.0),
    ];
    if cfg!(target_arch = "aarch64") {
        cpu.push(check(
            "fp16 models",
            if models::native_f16() { "computed in fp16" } else { "widened to fp32 (no ARMv8.2 FP16)" },
            true,
        ));
    }
    sections.push(("cpu", cpu));

    let cams = cameras();
    sections.push((
        "cameras",
        if cams.is_empty() {
            vec![check("V4L2", "none found (/sys/class/video4linux is empty); the daemon can play a recording", true)]
        } else {
            cams.into_iter().map(|(dev, name)| check(dev, name, true)).collect()
        },
    ));

    let mut model_checks = Vec::new();
    for m in models::MODELS {
        let (found, ok) = match ModelFile::open(opts.models, m.name, m.precision) {
            Ok(_) => (format!("sha256 {}…  {} bytes", &m.sha256[..12], m.bytes), true),
            Err(e) => (e.to_string(), false),
        };
        model_checks.push(check(format!("{} {}", m.name, m.precision), found, ok));
    }
    sections.push(("face models", model_checks));

    let mut llm = Vec::new();
    match opts.llm {
        None => llm.push(check("LLM", "not installed (bash .ci/setup installs SmolLM2-135M); skipped", true)),
        Some(path) => match quick_decode(path, bandwidth) {
            Ok((bytes, expected, measured)) => {
                llm.push(check("int8 export", format!("{:.1} MB read per token", bytes / 1e6), true));
                llm.push(check("decode, roofline", format!("{expected:.0} tok/s (bandwidth ÷ bytes)"), true));
                llm.push(check(
                    "decode, measured",
                    format!("{measured:.0} tok/s, one thread ({:.0}% of the roofline)", 100.0 * measured / expected),
                    measured > 0.0,
                ));
            }
            Err(e) => llm.push(check("LLM", format!("{e:#}"), false)),
        },
    }
    sections.push(("compact LLaMA", llm));
    Report { sections }
}

/// The int8 export's size, the roofline's decode rate, and a measured one
/// (16 prompt tokens, 32 decoded, one thread).
fn quick_decode(source: &Path, bandwidth: f64) -> anyhow::Result<(f64, f64, f64)> {
    let export = crate::llm::convert::ensure_export(source, Precision::Int8)?;
    let bytes = std::fs::metadata(&export)?.len() as f64;
    crate::llm::linear::set_threads(1);
    let llm = crate::llm::session::Llm::load(source, Precision::Int8)?;
    let run = crate::bench::llm::measure(&llm, 16, 32)?;
    Ok((bytes, bandwidth / bytes, run.decode_tok_s))
}
