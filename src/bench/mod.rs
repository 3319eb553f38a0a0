//! `emoedge bench`: our runtime beside the reference runtimes, on the same
//! machine, in one run, as ratios.
//!
//! - `face`: each face model and the per-frame pipeline, tract against
//!   onnxruntime (same ONNX file, same input, one thread each);
//! - `llm`: the compact LLaMA against llama.cpp on the same weights, with the
//!   memory roofline and the memory split;
//! - `chart`: the PNG that `--out` writes beside `bench.json`.

pub mod camera;
pub mod chart;
pub mod face;
pub mod llm;

use std::fmt;

pub use face::{difference, face_bench, face_jobs, median_ms, run_reference, Job, ReferenceRun, FACE_MODELS};

/// What a row must reach: a bound on the ratio (ours ÷ reference) or on our
/// own figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    RatioAtLeast(f64),
    RatioAtMost(f64),
    OursAtLeast(f64),
    OursAtMost(f64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::RatioAtLeast(v) => write!(f, "ratio ≥ {v}"),
            Target::RatioAtMost(v) => write!(f, "ratio ≤ {v}"),
            Target::OursAtLeast(v) => write!(f, "ours ≥ {v}"),
            Target::OursAtMost(v) => write!(f, "ours ≤ {v}"),
        }
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// One line of the benchmark table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    pub metric: String,
    pub ours: f64,
    pub reference: Option<f64>,
    pub unit: &'static str,
    /// ours ÷ reference. For times and memory below 1 is better; for rates above 1.
    pub ratio: Option<f64>,
    /// The largest output difference from the reference, where compared.
    pub max_diff: Option<f32>,
    /// The bound this row should meet, where the project has set one.
    pub target: Option<Target>,
    /// Whether it does (`None`: no target, or no reference to compare with).
    pub met: Option<bool>,
}

impl BenchRow {
    pub fn new(metric: String, ours: f64, reference: Option<f64>, unit: &'static str) -> BenchRow {
        let ratio = reference.filter(|r| *r > 0.0).map(|r| ours / r);
        BenchRow { metric, ours, reference, unit, ratio, max_diff: None, target: None, met: None }
    }

    pub fn with_target(mut self, target: Target) -> BenchRow {
        self.met = match target {
            Target::RatioAtLeast(v) => self.ratio.map(|r| r >= v),
            Target::RatioAtMost(v) => self.ratio.map(|r| r <= v),
            Target::OursAtLeast(v) => Some(self.ours >= v),
            Target::OursAtMost(v) => Some(self.ours <= v),
        };
        self.target = Some(target);
        self
    }
}

/// The machine the figures belong to.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub features: Vec<&'static str>,
    pub kernels: &'static str,
    pub emoedge: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().into())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            features: cpu_features(),
            kernels: crate::llm::kernels::isa(),
            emoedge: format!("{} (git {})", env!("CARGO_PKG_VERSION"), crate::GIT_REV),
        }
    }
}

/// The SIMD features that matter to the kernels, as this CPU reports them.
pub fn cpu_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, has) in [
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("f16c", is_x86_feature_detected!("f16c")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
        ] {
            if has {
                out.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        for (name, has) in [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
            ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
        ] {
            if has {
                out.push(name);
            }
        }
    }
    out
}

/// The table as printed: one line per row, ratios and targets beside.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out =
        format!("{:<72} {:>10} {:>10} {:>8}  {:<14} {}\n", "metric", "emoedge", "reference", "ratio", "target", "met");
    for r in rows {
        let reference = r.reference.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let ratio = r.ratio.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "-".into());
        let target = r.target.map(|t| t.to_string()).unwrap_or_default();
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out += &format!("{:<72} {:>10.2} {:>10} {:>8}  {:<14} {met}\n", r.metric, r.ours, reference, ratio, target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_the_right_side() {
        let r = BenchRow::new("x".into(), 30.0, Some(40.0), "tok/s");
        assert_eq!(r.clone().with_target(Target::RatioAtLeast(1.0)).met, Some(false));
        assert_eq!(r.clone().with_target(Target::RatioAtMost(1.0)).met, Some(true));
        assert_eq!(r.clone().with_target(Target::OursAtLeast(30.0)).met, Some(true));
        assert_eq!(BenchRow::new("y".into(), 1.0, None, "ms").with_target(Target::RatioAtMost(1.0)).met, None);
    }
}
