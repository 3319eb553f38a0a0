//! `emoedge doctor` tells the truth about this machine: its CPU features
//! against /proc/cpuinfo's flags, its core count, its cameras against
//! /sys/class/video4linux, the models' checksums, and a bandwidth figure.

use std::process::Command;

fn doctor() -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_emoedge"))
        .args(["doctor", "--quick", "--json"])
        .output()
        .expect("running emoedge doctor");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON")
}

fn found<'a>(report: &'a serde_json::Value, section: &str, name: &str) -> &'a str {
    report[section]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["found"].as_str())
        .unwrap_or_else(|| panic!("no {section}/{name} in {report}"))
}

#[test]
fn doctor_reports_this_machine_truthfully() {
    let r = doctor();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("reading /proc/cpuinfo");
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    let features = found(&r, "cpu", "features");
    // Each feature's yes/no is the kernel's flag (names as /proc/cpuinfo spells them).
    let pairs: &[(&str, &str)] = if cfg!(target_arch = "x86_64") {
        &[("avx2", "avx2"), ("fma", "fma"), ("f16c", "f16c"), ("avx512f", "avx512f")]
    } else {
        &[("neon", "asimd"), ("fp16 arithmetic", "asimdhp"), ("dot product", "asimddp")]
    };
    for (ours, kernel) in pairs {
        let yes = flags.contains(kernel);
        let said = format!("{ours} {}", if yes { "yes" } else { "no" });
        assert!(features.contains(&said), "{features:?} should say {said:?}");
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let arch = found(&r, "cpu", "architecture");
    assert!(arch.starts_with(std::env::consts::ARCH) && arch.contains(&format!("({cores} cores)")), "{arch}");
    let bw: f64 = found(&r, "cpu", "read bandwidth")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a bandwidth figure");
    assert!(bw > 0.5 && bw < 500.0, "{bw} GB/s");
    // Cameras: exactly the V4L2 nodes sysfs lists.
    let sys: Vec<String> = std::fs::read_dir("/sys/class/video4linux")
        .map(|d| d.flatten().map(|e| format!("/dev/{}", e.file_name().to_string_lossy())).collect())
        .unwrap_or_default();
    let cams = r["cameras"].as_array().expect("cameras");
    if sys.is_empty() {
        assert!(cams.len() == 1 && cams[0]["found"].as_str().is_some_and(|s| s.starts_with("none found")));
    } else {
        assert_eq!(cams.len(), sys.len());
    }
    // Every model verified (the manifest's files are all present here).
    let models = r["face models"].as_array().expect("face models");
    assert_eq!(models.len(), emoedge::models::MODELS.len());
    assert!(models.iter().all(|m| m["ok"] == true), "{models:?}");
    // No GPU here: auto chose the CPU and said why.
    assert!(found(&r, "backends", "--device auto").starts_with("cpu (no CUDA: "), "{r}");
}
