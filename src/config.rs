//! The config file: TOML, every key optional, defaults that work.
//!
//! ```toml
//! models = "/usr/share/emoedge/models"   # default: $EMOEDGE_MODELS, then the source tree
//! precision = "fp32"                     # fp32 | fp16 | int8
//! device = "auto"                        # auto | cpu | cuda (the `cuda` build)
//! [detect]
//! min_score = 0.5       # detector score to keep a box
//! iou = 0.3             # boxes overlapping more than this are one face
//! max_faces = 20
//! [mesh]
//! min_confidence = 0.5  # the mesh's face flag; below it the box is not a face
//! [attributes]
//! race = false          # off by default: see the README
//! [track]               # video and camera streams
//! detect_every = 10     # run the detector every N frames; tracked faces use their last landmarks
//! max_missed = 15       # frames a face may go unseen before its track ends
//! smoothing = 0.35      # weight of the newest frame in the smoothed emotions
//! switch_margin = 0.1   # lead another emotion needs over the current label to replace it
//! [video]               # clips (emoedge analyze clip.mp4)
//! forget_after = 1.0    # seconds a face may go unseen before its track ends
//! min_confidence = 0.5  # face confidence a frame needs to count towards the clip label
//! mjpeg_fps = 30.0      # the rate assumed for raw MJPEG streams (they carry no timing)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::models::Precision;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: Option<PathBuf>,
    pub precision: Option<Precision>,
    /// Where the face models and the LLM run (`--device`).
    pub device: Option<crate::backend::Device>,
    pub detect: DetectConfig,
    pub mesh: MeshConfig,
    pub attributes: AttributesConfig,
    pub track: crate::track::TrackConfig,
    pub video: crate::clip::VideoConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    pub min_score: f32,
    pub iou: f32,
    pub max_faces: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    pub min_confidence: f32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributesConfig {
    /// Inferring race is biometric categorisation that the EU AI Act forbids
    /// in many settings; it is here only to reproduce the seed papers' prompt.
    pub race: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig { min_score: 0.5, iou: 0.3, max_faces: 20 }
    }
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig { min_confidence: 0.5 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.detect.max_faces, 20);
        assert!(!c.attributes.race);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("precison = \"fp16\"").is_err());
        assert!(Config::parse("precision = \"fp64\"").is_err());
        assert_eq!(Config::parse("precision = \"int8\"").unwrap().precision, Some(Precision::Int8));
    }
}
