//! Any bytes as a clip: the pure-Rust Y4M and raw MJPEG readers (header
//! fields, frame lines, plane sizes, JPEG marker walking), reading up to
//! eight frames. ffmpeg's demuxers are ffmpeg's to fuzz: inputs that would go
//! to them (neither Y4M's nor JPEG's magic) are skipped.
#![no_main]
use emoedge::source::video::{Clip, Pick, Picker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !(data.starts_with(b"YUV4MPEG2 ") || data.starts_with(&[0xFF, 0xD8, 0xFF])) {
        return;
    }
    let path = std::env::temp_dir().join(format!("emoedge-fuzz-{}.y4m", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(mut clip) = Clip::open(&path, 30.0) else { return };
    let mut picker = Picker::new(Pick::Every(1));
    for _ in 0..8 {
        match clip.next(&mut picker) {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
});
