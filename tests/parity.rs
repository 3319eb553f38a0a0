//! tract against onnxruntime: every face model, at every precision, on the
//! same ONNX file and the same real input (the astronaut's own crops).
//!
//! Tolerance: max |tract − ort| ≤ tol · max |ort|, per output tensor, with
//! `tol` per precision below. Scaling by the output's own range keeps one rule
//! fair for logits near 0 and pixel offsets near 100. fp32 must agree to float
//! rounding. For fp16, onnxruntime rounds every activation to f16 while tract
//! on a CPU without f16 arithmetic computes in f32 from the f16 weights (see
//! `models::Cpu`), so the two differ by f16's own precision, compounded over
//! the layers. int8 graphs leave each runtime its own requantisation rounding.

mod common;

use emoedge::{
    bench::{difference, face_jobs, run_reference},
    models::{self, Cpu, Model, Precision},
};

fn tolerance(p: Precision) -> f32 {
    match p {
        Precision::Fp32 => 1e-5,
        Precision::Fp16 => 1e-2,
        Precision::Int8 => 1e-2,
    }
}

#[test]
fn tract_matches_onnxruntime_on_every_model_and_precision() {
    let frame = common::frame("astronaut.png");
    let analysis = common::analyze(&common::pipeline(Precision::Fp32), &frame);
    assert_eq!(analysis.faces.len(), 1, "the parity inputs come from the astronaut's one face");
    let jobs = face_jobs(&frame, &analysis.faces[0]).expect("the face models' inputs");
    let dir = models::default_dir();
    let reference = run_reference(&jobs, &dir, &common::scratch("parity"), 0).unwrap_or_else(|e| panic!("{e}"));

    let mut failures = Vec::new();
    println!("{:<16} {:>11} {:>11}  tolerance", "model", "max |diff|", "relative");
    for (job, theirs) in jobs.iter().zip(&reference) {
        let model = Model::load(&dir, job.model, job.precision, &Cpu).unwrap();
        let ours = model.run(job.input.clone()).unwrap();
        let tol = tolerance(job.precision);
        let (abs, rel) = difference(&ours, &theirs.outputs).unwrap_or((f32::NAN, f32::NAN));
        let ok = rel <= tol;
        println!("{:<16} {abs:>11.3e} {rel:>11.3e}  {tol:.0e}{}", job.key(), if ok { "" } else { "  FAILED" });
        if !ok {
            failures.push(job.key());
        }
    }
    assert!(failures.is_empty(), "tract and onnxruntime disagree beyond tolerance on {failures:?}");
}
