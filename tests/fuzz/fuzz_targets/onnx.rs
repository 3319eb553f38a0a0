//! Any bytes as a model file through the loader: the manifest's checks (size,
//! sha256) on a file holding them, and tract's ONNX parser behind them, as
//! `ModelFile::typed_model` calls it.
#![no_main]
use emoedge::models::{self, ModelFile, Precision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `parse_onnx` catches panics inside tract's parser and returns an error,
    // which is the behaviour under test. libFuzzer's panic hook would abort
    // on those caught panics too, so the default hook is put back; a panic
    // that escapes still aborts (libfuzzer-sys catches it and aborts).
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let dir = std::env::temp_dir().join(format!("emoedge-fuzz-onnx-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("face"));
    let entry = models::entry("emotion", Precision::Int8).expect("emotion int8 in the manifest");
    let _ = std::fs::write(dir.join(entry.file), data);
    // Random bytes never pass the checksum; the parser sees them directly.
    assert!(ModelFile::open(&dir, "emotion", Precision::Int8).is_err() || data.len() as u64 == entry.bytes);
    if let Ok(typed) = models::parse_onnx(data, entry.input_shape, std::path::Path::new("fuzz.onnx")) {
        let _ = typed.into_optimized();
    }
});
