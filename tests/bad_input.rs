//! Bad input through the real binary: each case gives a clear message and its
//! documented exit code, never a panic, and memory stays bounded.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_emoedge");

fn run(args: &[&str], models: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    if let Some(m) = models {
        cmd.env("EMOEDGE_MODELS", m);
    }
    cmd.output().expect("running emoedge")
}

fn check(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "emoedge panicked: {stderr}");
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {stderr}");
    assert!(stderr.contains(message), "stderr should mention {message:?}: {stderr}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A PNG whose header claims `w`×`h` pixels, with one tiny (wrong) data chunk.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn broken_pictures_give_exit_code_3_with_a_message() {
    let dir = common::scratch("bad_pictures");
    let astronaut = std::fs::read(common::data("astronaut.png")).unwrap();
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(common::frame("astronaut.png").image)
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (write(&dir, "empty.png", b""), "is empty"),
        (write(&dir, "truncated.jpg", &jpeg[..jpeg.len() / 3]), "truncated JPEG"),
        (write(&dir, "truncated.png", &astronaut[..astronaut.len() / 2]), "not a picture we can read"),
        (
            write(
                &dir,
                "random.png",
                &(0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>(),
            ),
            "not a picture we can read",
        ),
        (write(&dir, "huge.png", &png_claiming(100_000, 100_000)), "claims to be 100000×100000"),
        (dir.join("missing.png"), "cannot read"),
    ];
    for (path, message) in cases {
        let out = run(&["analyze", path.to_str().unwrap()], None);
        check(&out, 3, message);
    }
}

#[test]
fn a_huge_header_is_refused_without_allocating() {
    let dir = common::scratch("huge_header");
    let path = write(&dir, "huge.png", &png_claiming(100_000, 100_000));
    let before = children_max_rss_kib();
    let out = run(&["analyze", path.to_str().unwrap()], None);
    check(&out, 3, "claims to be");
    // The process's peak RSS: the models plus tract, nowhere near the 30 GB
    // such a picture would take.
    let rss = children_max_rss_kib().max(before);
    assert!(rss < 600 * 1024, "peak RSS {rss} KiB");
}

fn children_max_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init().ru_maxrss
    }
}

#[test]
fn a_one_pixel_picture_has_no_face_and_exit_code_1() {
    let dir = common::scratch("one_pixel");
    let path = dir.join("one.png");
    image::RgbImage::from_pixel(1, 1, image::Rgb([200, 150, 120])).save(&path).unwrap();
    let out = run(&["analyze", "--json", path.to_str().unwrap()], None);
    check(&out, 1, "");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["faces"].as_array().unwrap().len(), 0);
}

#[test]
fn a_good_picture_among_bad_ones_is_still_analysed() {
    let dir = common::scratch("mixed");
    let bad = write(&dir, "bad.png", b"not a png");
    let good = common::data("astronaut.png");
    let out = run(&["analyze", "--json", bad.to_str().unwrap(), good.to_str().unwrap()], None);
    check(&out, 3, "bad.png");
    let line = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(json["faces"].as_array().unwrap().len(), 1);
}

/// A copy of the models directory, to damage.
fn models_copy(name: &str) -> PathBuf {
    let dir = common::scratch(name);
    let src = emoedge::models::default_dir();
    std::fs::copy(src.join("manifest.toml"), dir.join("manifest.toml")).unwrap();
    std::fs::create_dir_all(dir.join("face")).unwrap();
    for m in emoedge::models::MODELS {
        std::fs::copy(src.join(m.file), dir.join(m.file)).unwrap();
    }
    dir
}

#[test]
fn a_flipped_byte_in_a_model_names_the_file_and_the_fix() {
    let dir = models_copy("flipped_model");
    let file = dir.join("face/emotion.onnx");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let out = run(&["analyze", common::data("astronaut.png").to_str().unwrap()], Some(&dir));
    check(&out, 4, "emotion.onnx has sha256");
    check(&out, 4, "quant/convert_face.sh");
}

#[test]
fn a_missing_or_truncated_model_names_the_file() {
    let dir = models_copy("missing_model");
    std::fs::remove_file(dir.join("face/facemesh.onnx")).unwrap();
    let out = run(&["analyze", common::data("astronaut.png").to_str().unwrap()], Some(&dir));
    check(&out, 4, "facemesh.onnx");

    let dir = models_copy("truncated_model");
    let file = dir.join("face/blazeface.onnx");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let out = run(&["analyze", common::data("astronaut.png").to_str().unwrap()], Some(&dir));
    check(&out, 4, "truncated");
}

#[test]
fn a_bad_config_or_precision_is_a_usage_error() {
    let dir = common::scratch("bad_config");
    let cfg = write(&dir, "c.toml", b"precison = 1\n");
    let out =
        run(&["--config", cfg.to_str().unwrap(), "analyze", common::data("astronaut.png").to_str().unwrap()], None);
    check(&out, 2, "c.toml");
    let out = run(&["analyze", "--precision", "fp64", common::data("astronaut.png").to_str().unwrap()], None);
    check(&out, 2, "fp64");
}

#[test]
fn models_subcommand_verifies_every_checksum() {
    let out = run(&["models"], None);
    check(&out, 0, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(" ok").count(), emoedge::models::MODELS.len(), "{stdout}");
}

/// A broken LLM file given to `convert`, `generate` or `analyze --explain`:
/// exit code 4 and what is wrong, never a panic.
#[test]
fn a_broken_llm_file_gives_exit_code_4_with_a_message() {
    let dir = common::scratch("bad_llm");
    let gguf = emoedge::llm::bundled_gguf().expect("the bundled GGUF: run `bash .ci/setup`");
    let bytes = std::fs::read(&gguf).unwrap();
    let truncated = write(&dir, "truncated.gguf", &bytes[..bytes.len() / 2]);
    let picture = common::data("astronaut.png");
    let (t, p) = (truncated.to_str().unwrap(), picture.to_str().unwrap());
    check(&run(&["convert", t, "--precision", "int8", "-o", "/dev/null"], None), 4, "truncated");
    check(&run(&["convert", p], None), 4, "is not a GGUF file");
    check(&run(&["generate", "--model", t, "--prompt", "hi"], None), 4, "truncated");
    check(&run(&["analyze", p, "--explain", "--llm", p], None), 4, "is not a GGUF file");
}
