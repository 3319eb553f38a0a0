//! Shared by the integration tests: the bundled pictures, the models, and
//! the reference Python (onnxruntime) that `.ci/setup` installs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use emoedge::{
    analysis::Analysis,
    config::Config,
    models::{self, Cpu, Precision},
    pipeline::Pipeline,
    source::{self, Frame},
};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

pub fn frame(name: &str) -> Frame {
    source::read_image(&data(name)).unwrap_or_else(|e| panic!("test picture {name}: {e}"))
}

pub fn pipeline(precision: Precision) -> Pipeline {
    Pipeline::load(&models::default_dir(), precision, &Cpu, Config::default())
        .unwrap_or_else(|e| panic!("loading the {precision} models: {e}"))
}

pub fn analyze(pipeline: &Pipeline, frame: &Frame) -> Analysis {
    pipeline.analyze(frame, "test").unwrap_or_else(|e| panic!("analysis failed: {e}"))
}

/// A scratch directory under target/, fresh for each call site.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}
