//! The face stage side by side: tract against onnxruntime on the same ONNX
//! file and the same real input, for correctness (the parity tests) and for
//! speed. onnxruntime runs in a Python child process,
//! `tests/reference/ort_run.py`, which `.ci/setup` installs.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use tract_onnx::prelude::*;

use super::{BenchRow, Target};
use crate::{
    analysis::Face,
    detect::Detector,
    heads::Heads,
    landmarks::Mesh,
    models::{self, Precision},
    source::Frame,
};

/// The face models the pipeline runs, in pipeline order.
pub const FACE_MODELS: [&str; 5] = ["blazeface", "facemesh", "emotion", "faceres", "gear"];

/// One model run to compare: a model at a precision, and its input.
#[derive(Clone, Debug)]
pub struct Job {
    pub model: &'static str,
    pub precision: Precision,
    pub input: Tensor,
}

impl Job {
    pub fn key(&self) -> String {
        format!("{}.{}", self.model, self.precision)
    }
}

/// The real inputs each face model sees for this frame and face, at every precision.
pub fn face_jobs(frame: &Frame, face: &Face) -> TractResult<Vec<Job>> {
    let inputs = [
        Detector::input(frame)?,
        Mesh::input(frame, &face.landmarks.crop)?,
        Heads::emotion_input(frame, &face.landmarks)?,
        Heads::faceres_input(frame, &face.landmarks)?,
        Heads::gear_input(frame, &face.landmarks)?,
    ];
    let mut jobs = Vec::new();
    for (model, input) in FACE_MODELS.iter().zip(inputs) {
        for precision in Precision::ALL {
            jobs.push(Job { model, precision, input: input.clone() });
        }
    }
    Ok(jobs)
}

/// What onnxruntime gave for one job.
#[derive(Clone, Debug)]
pub struct ReferenceRun {
    pub outputs: Vec<Vec<f32>>,
    /// Median milliseconds per run, when timed.
    pub ms: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot run the reference Python {python}: {source}. Run `bash .ci/setup` to install it")]
    Spawn { python: PathBuf, source: std::io::Error },
    #[error("the onnxruntime reference failed ({status}); see its output above")]
    Failed { status: std::process::ExitStatus },
    #[error("reading the reference's results in {dir}: {message}")]
    Results { dir: PathBuf, message: String },
}

/// The Python that has onnxruntime: `$EMOEDGE_REF_PYTHON`, else the source
/// tree's `.venv-ref/` that `.ci/setup` makes.
pub fn reference_python() -> PathBuf {
    std::env::var_os("EMOEDGE_REF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ref/bin/python"))
}

/// Runs every job through onnxruntime (one thread), timing each `repeat` times.
pub fn run_reference(
    jobs: &[Job],
    models_dir: &Path,
    work: &Path,
    repeat: usize,
) -> Result<Vec<ReferenceRun>, ReferenceError> {
    let results_err = |message: String| ReferenceError::Results { dir: work.to_path_buf(), message };
    std::fs::create_dir_all(work).map_err(|e| results_err(e.to_string()))?;
    for job in jobs {
        let entry = models::entry(job.model, job.precision)
            .ok_or_else(|| results_err(format!("{} is not in the manifest", job.key())))?;
        let spec = serde_json::json!({"model": models_dir.join(entry.file), "shape": job.input.shape()});
        let values = job.input.to_plain_array_view::<f32>().map_err(|e| results_err(e.to_string()))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(work.join(format!("{}.json", job.key())), spec.to_string())
            .map_err(|e| results_err(e.to_string()))?;
        std::fs::write(work.join(format!("{}.in", job.key())), bytes).map_err(|e| results_err(e.to_string()))?;
    }
    let python = reference_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ort_run.py");
    let status = Command::new(&python)
        .arg(script)
        .arg(work)
        .args(["--repeat", &repeat.to_string()])
        .status()
        .map_err(|source| ReferenceError::Spawn { python: python.clone(), source })?;
    if !status.success() {
        return Err(ReferenceError::Failed { status });
    }
    jobs.iter()
        .map(|job| {
            let key = job.key();
            let meta: serde_json::Value = std::fs::read_to_string(work.join(format!("{key}.out.json")))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                .map_err(results_err)?;
            let count = meta["shapes"].as_array().map(|a| a.len()).unwrap_or(0);
            let outputs = (0..count)
                .map(|k| {
                    std::fs::read(work.join(format!("{key}.out{k}")))
                        .map(|b| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
                        .map_err(|e| results_err(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            Ok(ReferenceRun { outputs, ms: meta["ms"].as_f64() })
        })
        .collect()
}

/// How far two runs' outputs are apart: the largest absolute difference, and
/// that difference relative to the largest reference magnitude in the same
/// output tensor (the worst over all outputs). The relative figure is the
/// fair one across outputs whose scales differ by orders of magnitude, as
/// BlazeFace's logits and pixel offsets do. `None` when the shapes differ.
pub fn difference(ours: &[Vec<f32>], reference: &[Vec<f32>]) -> Option<(f32, f32)> {
    if ours.len() != reference.len() {
        return None;
    }
    let (mut abs, mut rel) = (0f32, 0f32);
    for (a, b) in ours.iter().zip(reference) {
        if a.len() != b.len() {
            return None;
        }
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        abs = abs.max(d);
        rel = rel.max(d / scale);
    }
    Some((abs, rel))
}

/// Median milliseconds of `repeat` runs of `f`, after one warm-up run.
pub fn median_ms<T>(repeat: usize, mut f: impl FnMut() -> T) -> f64 {
    let _ = f();
    let mut times: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times every face model at every precision on tract and on onnxruntime
/// (both single-threaded), then the whole pipeline per frame. `progress` is
/// called after each step with (done, total).
pub fn face_bench(
    pipelines: &[(Precision, &crate::pipeline::Pipeline)],
    frame: &Frame,
    models_dir: &Path,
    work: &Path,
    repeat: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<BenchRow>, Box<dyn std::error::Error>> {
    let fp32 = pipelines.iter().find(|(p, _)| *p == Precision::Fp32).ok_or("the benchmark needs the fp32 pipeline")?.1;
    let analysis = fp32.analyze(frame, "bench")?;
    let face = analysis.faces.first().ok_or("the benchmark picture has no face")?;
    let jobs = face_jobs(frame, face)?;
    let total = jobs.len() + pipelines.len() + 1;
    let reference = run_reference(&jobs, models_dir, work, repeat)?;
    progress(1, total);
    let mut rows = Vec::new();
    let mut ort_frame_ms = std::collections::HashMap::new();
    for (i, (job, theirs)) in jobs.iter().zip(&reference).enumerate() {
        let model = crate::models::Model::load(models_dir, job.model, job.precision, &crate::models::Cpu)?;
        let ours = model.run(job.input.clone())?;
        // As a long-running loop has it after its first frame (see `heap`).
        crate::heap::to_huge_pages();
        let ms = median_ms(repeat, || model.run(job.input.clone()));
        let max_diff = difference(&ours, &theirs.outputs).map(|d| d.0).unwrap_or(f32::NAN);
        // The default pipeline runs every model but gear, once per face.
        if job.model != "gear" {
            *ort_frame_ms.entry(job.precision).or_insert(0.0) += theirs.ms.unwrap_or(f64::NAN);
        }
        rows.push(BenchRow {
            max_diff: Some(max_diff),
            ..BenchRow::new(format!("{} {} (ms)", job.model, job.precision), ms, theirs.ms, "ms")
        });
        progress(i + 2, total);
    }
    for (k, (precision, pipeline)) in pipelines.iter().enumerate() {
        pipeline.analyze(frame, "bench")?;
        crate::heap::to_huge_pages();
        let ms = median_ms(repeat, || pipeline.analyze(frame, "bench"));
        let reference = ort_frame_ms.get(precision).copied();
        let row = BenchRow::new(
            format!("face pipeline per frame, 1 face, {precision} (ms; reference = sum of its models)"),
            ms,
            reference,
            "ms",
        );
        // Target: at least as fast as onnxruntime, i.e. no more of its time.
        rows.push(row.with_target(Target::RatioAtMost(1.0)));
        progress(jobs.len() + 2 + k, total);
    }
    Ok(rows)
}
