//! tract against onnxruntime: every face model, at every precision, on the
//! same ONNX file and the same real input (the astronaut's own crops).
//!
//! Tolerance: |tract − ort| ≤ atol + rtol·|ort| for every output value, with
//! (atol, rtol) per precision below. fp32 must agree to float rounding; fp16
//! and int8 graphs leave each runtime its own kernels (accumulation order,
//! requantisation rounding), so their bounds are looser.

mod common;

use std::process::Command;

use emoedge::{
    detect::Detector,
    heads::Heads,
    landmarks::Mesh,
    models::{self, Cpu, Model, Precision},
};
use tract_onnx::prelude::*;

fn tolerance(p: Precision) -> (f32, f32) {
    match p {
        Precision::Fp32 => (1e-3, 1e-3),
        Precision::Fp16 => (2e-2, 2e-2),
        Precision::Int8 => (5e-2, 5e-2),
    }
}

#[test]
fn tract_matches_onnxruntime_on_every_model_and_precision() {
    let frame = common::frame("astronaut.png");
    let analysis = common::analyze(&common::pipeline(Precision::Fp32), &frame);
    assert_eq!(analysis.faces.len(), 1, "the parity inputs come from the astronaut's one face");
    let face = &analysis.faces[0];
    let detections = Detector::input(&frame);
    let mesh = Mesh::input(&frame, &face.landmarks.crop);
    let inputs: Vec<(&str, Tensor)> = vec![
        ("blazeface", detections),
        ("facemesh", mesh),
        ("emotion", Heads::emotion_input(&frame, &face.landmarks)),
        ("faceres", Heads::faceres_input(&frame, &face.landmarks)),
        ("gear", Heads::gear_input(&frame, &face.landmarks)),
    ];

    // Write every job, run onnxruntime once over all of them.
    let dir = common::scratch("parity");
    let models_dir = models::default_dir();
    let mut jobs = Vec::new();
    for (name, input) in &inputs {
        for precision in Precision::ALL {
            let entry = models::entry(name, precision).unwrap_or_else(|| panic!("{name} {precision} not in manifest"));
            let job = format!("{name}.{precision}");
            let shape: Vec<usize> = input.shape().to_vec();
            let spec = serde_json::json!({"model": models_dir.join(entry.file), "shape": shape});
            std::fs::write(dir.join(format!("{job}.json")), spec.to_string()).unwrap();
            let values = input.to_plain_array_view::<f32>().unwrap();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("{job}.in")), bytes).unwrap();
            jobs.push((job, *name, precision, input.clone()));
        }
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ort_run.py");
    let status = Command::new(common::reference_python()).arg(script).arg(&dir).status().expect("running onnxruntime");
    assert!(status.success(), "the onnxruntime reference failed");

    let mut failures = Vec::new();
    println!("{:<22} {:>12} {:>12}  tolerance", "model", "max |diff|", "max rel");
    for (job, name, precision, input) in jobs {
        let model = Model::load(&models_dir, name, precision, &Cpu).unwrap();
        let ours = model.run(input).unwrap();
        let shapes: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{job}.out.json"))).unwrap()).unwrap();
        let count = shapes["shapes"].as_array().unwrap().len();
        assert_eq!(ours.len(), count, "{job}: tract gives {} outputs, onnxruntime {count}", ours.len());
        let (atol, rtol) = tolerance(precision);
        let (mut max_abs, mut max_rel, mut ok) = (0f32, 0f32, true);
        for (k, ours) in ours.iter().enumerate() {
            let theirs: Vec<f32> = std::fs::read(dir.join(format!("{job}.out{k}")))
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(ours.len(), theirs.len(), "{job} output {k}: sizes differ");
            for (a, b) in ours.iter().zip(&theirs) {
                let diff = (a - b).abs();
                max_abs = max_abs.max(diff);
                max_rel = max_rel.max(diff / b.abs().max(1e-6));
                ok &= diff <= atol + rtol * b.abs();
            }
        }
        println!("{job:<22} {max_abs:>12.3e} {max_rel:>12.3e}  {atol:.0e} + {rtol:.0e}·|ort|");
        if !ok {
            failures.push(job);
        }
    }
    assert!(failures.is_empty(), "tract and onnxruntime disagree beyond tolerance on {failures:?}");
}
