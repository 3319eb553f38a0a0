//! `emoedge bench --quick`: CI's smoke test of the benchmark's output format.
//! It checks the shape of bench.json, never the speed.

mod common;

use std::process::Command;

#[test]
fn quick_bench_writes_a_row_per_measurement() {
    let dir = common::scratch("bench_quick");
    let out = Command::new(env!("CARGO_BIN_EXE_emoedge"))
        .args(["bench", "--quick", "--out"])
        .arg(&dir)
        .output()
        .expect("running emoedge bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    assert!(json["machine"].is_object());
    let rows = json["rows"].as_array().unwrap();
    // 5 face models × 3 precisions and 3 pipelines; per LLM precision at one
    // thread: prefill, decode, peak/anonymous/file RSS, load; the bandwidth,
    // two roofline shares, the first explanation token and the camera loop;
    // the daemon's frames/s and latency (the workspace builds the daemon).
    let daemon = std::path::Path::new(env!("CARGO_BIN_EXE_emoedge")).with_file_name("emoedge-firmware-host");
    assert!(daemon.exists(), "{} is not built", daemon.display());
    assert_eq!(rows.len(), 15 + 3 + 3 * 6 + 1 + 2 + 1 + 1 + 2, "rows: {rows:?}");
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
    for row in rows {
        for key in ["metric", "ours", "reference", "unit", "ratio", "target", "met"] {
            assert!(row.get(key).is_some(), "row without {key}: {row}");
        }
        let ours = row["ours"].as_f64().unwrap();
        assert!(ours.is_finite() && ours > 0.0, "{row}");
        if !row["target"].is_null() {
            assert!(row["target"].as_str().unwrap().contains(['≥', '≤']), "{row}");
        }
        if let (Some(r), Some(ratio)) = (row["reference"].as_f64(), row["ratio"].as_f64()) {
            assert!((ratio - ours / r).abs() <= 1e-9 * ratio.abs().max(1.0), "ratio is not ours ÷ reference: {row}");
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("blazeface fp32") && stdout.contains("LLM int8 decode"), "{stdout}");
    assert!(stdout.contains("targets met:"), "{stdout}");
    // The chart: a PNG with one bar per row that has a reference.
    let chart = image::open(dir.join("bench.png")).expect("bench.png is a picture");
    let compared = rows.iter().filter(|r| !r["ratio"].is_null()).count() as u32;
    assert!(chart.height() >= 18 * compared, "{} rows compared, chart {}px tall", compared, chart.height());
}
