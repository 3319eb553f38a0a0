//! The stages wired in order: frame → detect → landmarks → prior → heads →
//! [`Analysis`]. Each stage takes what the previous one produced; none reaches
//! back upstream.

use std::{path::Path, time::Instant};

use crate::{
    analysis::{Analysis, Face, StageTimes},
    config::Config,
    detect::{self, Detector},
    heads::Heads,
    landmarks::Mesh,
    models::{Backend, ModelError, Precision},
    prior::FacePrior,
    source::Frame,
};

/// Every model the pipeline needs, loaded once and reused for each frame.
pub struct Pipeline {
    detector: Detector,
    mesh: Mesh,
    heads: Heads,
    config: Config,
    pub precision: Precision,
}

#[derive(Debug, thiserror::Error)]
#[error("{stage} failed: {message}")]
pub struct StageError {
    pub stage: &'static str,
    pub message: String,
}

impl StageError {
    pub fn new(stage: &'static str, e: impl std::fmt::Display) -> StageError {
        StageError { stage, message: format!("{e:#}") }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Pipeline {
    pub fn load(
        dir: &Path,
        precision: Precision,
        backend: &dyn Backend,
        config: Config,
    ) -> Result<Pipeline, ModelError> {
        Ok(Pipeline {
            detector: Detector::load(dir, precision, backend)?,
            mesh: Mesh::load(dir, precision, backend)?,
            heads: Heads::load(dir, precision, backend, config.attributes.race)?,
            config,
            precision,
        })
    }

    /// The detector's boxes for a frame.
    pub fn detect(&self, frame: &Frame) -> Result<Vec<detect::FaceBox>, StageError> {
        self.detector.detect(frame, &self.config.detect).map_err(|e| StageError::new("face detection", e))
    }

    /// The stages after detection for one box: landmarks (and the mesh's face
    /// flag), prior, emotion, and age/gender unless `attributes` already
    /// holds them (a tracked face's do not change from frame to frame).
    /// `None` when the mesh says there is no face there.
    pub fn face_at(
        &self,
        frame: &Frame,
        bbox: &detect::FaceBox,
        attributes: Option<&crate::heads::Attributes>,
        id: u32,
    ) -> Result<Option<Face>, StageError> {
        let t = Instant::now();
        let landmarks = self.mesh.landmarks(frame, bbox).map_err(|e| StageError::new("landmarks", e))?;
        let landmarks_ms = ms(t);
        // The mesh's face flag is part of detection: the detector alone
        // fires on many non-faces.
        if landmarks.confidence < self.config.mesh.min_confidence {
            log::debug!("dropping a box with score {:.2}: mesh face flag {:.2}", bbox.score, landmarks.confidence);
            return Ok(None);
        }
        // The mesh locates the face better than the detector did.
        let bbox = landmarks.face_box(bbox.score);
        let t = Instant::now();
        let prior = FacePrior::from_landmarks(&landmarks);
        let prior_ms = ms(t);
        let t = Instant::now();
        let emotions = self.heads.emotion(frame, &landmarks).map_err(|e| StageError::new("emotion", e))?;
        let emotion_ms = ms(t);
        let t = Instant::now();
        let attributes = match attributes {
            Some(a) => a.clone(),
            None => self.heads.attributes(frame, &landmarks).map_err(|e| StageError::new("age and gender", e))?,
        };
        let attributes_ms = ms(t);
        Ok(Some(Face {
            id,
            bbox,
            landmarks,
            prior,
            emotions,
            attributes,
            times: StageTimes {
                landmarks: landmarks_ms,
                prior: prior_ms,
                emotion: emotion_ms,
                attributes: attributes_ms,
            },
        }))
    }

    /// Analyses one frame. `source` names it in the result.
    pub fn analyze(&self, frame: &Frame, source: &str) -> Result<Analysis, StageError> {
        let t = Instant::now();
        let boxes = self.detect(frame)?;
        let detect_ms = ms(t);
        let mut faces: Vec<Face> = Vec::new();
        for bbox in boxes {
            let Some(face) = self.face_at(frame, &bbox, None, faces.len() as u32)? else { continue };
            if faces.iter().any(|f| detect::iou(&f.bbox, &face.bbox) > self.config.detect.iou) {
                continue;
            }
            faces.push(face);
        }
        Ok(Analysis {
            source: source.to_string(),
            width: frame.width(),
            height: frame.height(),
            faces,
            decode_ms: 0.0,
            detect_ms,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}
