//! Model files: the manifest, memory-mapped loading with sha256 verification,
//! precision variants, and the backends that turn a model into a runnable plan.
//!
//! Nothing here knows what a face is. A stage asks for a model by name and
//! precision and gets back a [`Model`] it can run on tensors.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::Runnable;

/// The numeric precision of an exported model variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16, Precision::Int8];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            other => Err(format!("unknown precision {other:?}: expected fp32, fp16 or int8")),
        }
    }
}

/// One line of `models/manifest.toml`, embedded at compile time by `build.rs`.
#[derive(Debug)]
pub struct ModelEntry {
    pub name: &'static str,
    /// Relative to the models directory.
    pub file: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
    pub precision: Precision,
    pub input: &'static str,
    pub input_shape: &'static [usize],
    pub outputs: &'static [&'static str],
    pub licence: &'static str,
    pub source: &'static str,
    /// The command that rebuilds this file from its registry package.
    pub regenerate: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/manifest.rs"));

/// The manifest entry for a model name at a precision, if the manifest has one.
pub fn entry(name: &str, precision: Precision) -> Option<&'static ModelEntry> {
    MODELS.iter().find(|m| m.name == name && m.precision == precision)
}

/// Where model files live: `$EMOEDGE_MODELS`, else the source tree's `models/`
/// (a development build), else the packaged location.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EMOEDGE_MODELS") {
        return PathBuf::from(dir);
    }
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if source_tree.join("manifest.toml").exists() {
        return source_tree;
    }
    PathBuf::from("/usr/share/emoedge/models")
}

/// Errors a user can cause by what is (or is not) in the models directory.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model {name:?} at precision {precision} in the manifest (models/manifest.toml)")]
    NotInManifest { name: String, precision: Precision },
    #[error("cannot open model file {path}: {source}. Regenerate it with `{regenerate}`, or point EMOEDGE_MODELS at a models directory")]
    Open { path: PathBuf, regenerate: &'static str, source: std::io::Error },
    #[error("model file {path} is {actual} bytes, the manifest expects {expected}: it is truncated or replaced. Regenerate it with `{regenerate}`")]
    Size { path: PathBuf, expected: u64, actual: u64, regenerate: &'static str },
    #[error("model file {path} has sha256 {actual}, the manifest expects {expected}: it is corrupt or replaced. Regenerate it with `{regenerate}`")]
    Checksum { path: PathBuf, expected: &'static str, actual: String, regenerate: &'static str },
    #[error("tract cannot load {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{0}")]
    Changed(String),
}

/// A verified model file, memory-mapped. The bytes tract parses are the bytes
/// whose sha256 we checked: we hash the mapping itself, not a separate read.
pub struct ModelFile {
    pub entry: &'static ModelEntry,
    pub path: PathBuf,
    map: crate::mapped::MappedFile,
}

impl ModelFile {
    pub fn open(dir: &Path, name: &str, precision: Precision) -> Result<ModelFile, ModelError> {
        let entry = entry(name, precision).ok_or_else(|| ModelError::NotInManifest { name: name.into(), precision })?;
        let path = dir.join(entry.file);
        let open_err = |source| ModelError::Open { path: path.clone(), regenerate: entry.regenerate, source };
        let actual = std::fs::metadata(&path).map_err(open_err)?.len();
        // Check the size before mapping: an empty file cannot be mapped, and a
        // short one would be hashed for nothing.
        if actual != entry.bytes {
            return Err(ModelError::Size { path, expected: entry.bytes, actual, regenerate: entry.regenerate });
        }
        // A file cut while mapped reads as zeros here, fails the checksum, and
        // `check` says why (see `mapped`).
        let map = crate::mapped::MappedFile::open(&path).map_err(open_err)?;
        let actual = sha256_hex(&map);
        map.check().map_err(|e| ModelError::Changed(e.to_string()))?;
        if actual != entry.sha256 {
            return Err(ModelError::Checksum { path, expected: entry.sha256, actual, regenerate: entry.regenerate });
        }
        Ok(ModelFile { entry, path, map })
    }

    /// Parses the ONNX graph into tract's typed form, with the manifest's input shape.
    pub fn typed_model(&self) -> Result<TypedModel, ModelError> {
        let parsed = parse_onnx(&self.map, self.entry.input_shape, &self.path);
        // The parse copied what it needs; the mapping must have held up until here.
        self.map.check().map_err(|e| ModelError::Changed(e.to_string()))?;
        parsed
    }
}

/// ONNX bytes into tract's typed form, `input_shape` fixed on the first
/// input; `path` only names errors. tract answers malformed bytes with
/// errors, and a panic inside it becomes one too: a model must never take a
/// daemon down.
pub fn parse_onnx(bytes: &[u8], input_shape: &[usize], path: &Path) -> Result<TypedModel, ModelError> {
    let load_err = |message: String| ModelError::Load { path: path.to_path_buf(), message };
    let shape: TVec<usize> = input_shape.iter().copied().collect();
    std::panic::catch_unwind(|| {
        tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
            .and_then(|m| m.into_typed())
    })
    .map_err(|_| load_err("the ONNX parser failed on this file (a panic inside tract)".into()))?
    .map_err(|e| load_err(format!("{e:#}")))
}

/// The sha256 of `bytes`, as the manifest writes it: lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub use crate::backend::{native_f16, Backend, Cpu};

/// A model ready to run: verified, parsed, optimised for its backend.
#[derive(Clone)]
pub struct Model {
    pub entry: &'static ModelEntry,
    plan: Arc<dyn Runnable>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Model({} {})", self.entry.name, self.entry.precision)
    }
}

impl Model {
    pub fn load(dir: &Path, name: &str, precision: Precision, backend: &dyn Backend) -> Result<Model, ModelError> {
        let file = ModelFile::open(dir, name, precision)?;
        let typed = file.typed_model()?;
        let plan = backend
            .prepare(typed)
            .map_err(|e| ModelError::Load { path: file.path.clone(), message: format!("{e:#}") })?;
        log::debug!("loaded {} ({}) on {}", file.path.display(), precision, backend.name());
        Ok(Model { entry: file.entry, plan: Arc::from(plan) })
    }

    /// Runs the model on one NHWC f32 input and returns each output flattened
    /// to f32, in the model's output order.
    pub fn run(&self, input: Tensor) -> TractResult<Vec<Vec<f32>>> {
        let outputs = self.plan.run(tvec!(input.into()))?;
        outputs
            .into_iter()
            .map(|t| {
                let t = t.cast_to::<f32>()?;
                Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
            })
            .collect()
    }
}
