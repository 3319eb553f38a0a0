//! Any bytes as a picture file, into the pipeline: decode (with its limits),
//! then, for what decodes, face detection and the rest of the analysis.
#![no_main]
use std::sync::OnceLock;

use emoedge::{config::Config, models, pipeline::Pipeline, source};
use libfuzzer_sys::fuzz_target;

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        Pipeline::load(&models::default_dir(), models::Precision::Int8, &models::Cpu, Config::default())
            .expect("the face models (run from the repository)")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = source::decode_image(data, "fuzz input") else { return };
    // Huge but valid pictures are slow, not wrong: keep the fuzzer moving.
    if frame.width() as u64 * frame.height() as u64 > 1 << 20 {
        return;
    }
    let _ = pipeline().analyze(&frame, "fuzz");
    let _ = source::camera::yuyv_to_frame(data, frame.width() & !1, frame.height(), 0, Default::default(), None);
});
