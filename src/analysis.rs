//! The result of looking at one picture: per face its box, landmarks, prior,
//! emotions, action units and soft biometrics, plus what each stage cost.
//!
//! The JSON shape follows ROS4HRI REP-155 (`hri_msgs`): `roi` as
//! NormalizedRegionOfInterest2D, `expression` as Expression, `action_units`
//! as FacialActionUnits, `soft_biometrics` as SoftBiometrics.

use serde_json::{json, Value};

use crate::{
    detect::FaceBox,
    heads::{Attributes, EmotionScores},
    landmarks::Landmarks,
    prior::{ActionUnit, FacePrior},
};

/// Milliseconds spent in each stage. Detection and decoding are per picture;
/// the rest are per face.
#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub landmarks: f64,
    pub prior: f64,
    pub emotion: f64,
    pub attributes: f64,
}

/// Everything emoedge knows about one face in one picture.
#[derive(Clone, Debug)]
pub struct Face {
    /// Index in the picture, or a track ID where a tracker assigned one.
    pub id: u32,
    pub bbox: FaceBox,
    pub landmarks: Landmarks,
    pub prior: FacePrior,
    pub emotions: EmotionScores,
    pub attributes: Attributes,
    pub times: StageTimes,
}

/// One picture's analysis.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<Face>,
    pub decode_ms: f64,
    pub detect_ms: f64,
}

impl Face {
    /// The overall confidence that this is a face and that its reading holds:
    /// the detector's score times the mesh's face flag.
    pub fn confidence(&self) -> f32 {
        self.bbox.score * self.landmarks.confidence
    }

    pub fn to_json(&self, width: u32, height: u32) -> Value {
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let (top, top_p) = self.emotions.top();
        let (valence, arousal) = self.emotions.valence_arousal();
        let aus: Vec<u8> = ActionUnit::ALL.iter().map(|a| a.number()).collect();
        let a = &self.attributes;
        let mut soft = json!({
            "age": round(a.age, 1),
            "age_confidence": round(a.age_confidence, 3),
            "gender": a.gender.as_str(),
            "gender_confidence": round(a.gender_confidence, 3),
        });
        if let Some(race) = &a.race {
            soft["race"] = race
                .iter()
                .map(|(k, v)| (k.to_string(), json!(round(*v, 4))))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        json!({
            "id": self.id.to_string(),
            "confidence": round(self.confidence(), 4),
            "roi": {
                "xmin": round((self.bbox.x0 / w).clamp(0.0, 1.0), 4),
                "ymin": round((self.bbox.y0 / h).clamp(0.0, 1.0), 4),
                "xmax": round((self.bbox.x1 / w).clamp(0.0, 1.0), 4),
                "ymax": round((self.bbox.y1 / h).clamp(0.0, 1.0), 4),
            },
            "expression": {
                "expression": top.rep155(),
                "valence": round(valence, 3),
                "arousal": round(arousal, 3),
                "confidence": round(top_p, 4),
            },
            "emotions": self.emotions.iter().map(|(e, p)| (e.as_str().to_string(), json!(round(p, 4)))).collect::<serde_json::Map<_, _>>(),
            "action_units": {
                "aus": aus,
                "intensities": self.prior.action_units.iter().map(|v| round(*v, 3)).collect::<Vec<_>>(),
            },
            "head_pose": {
                "yaw": round(self.prior.pose.yaw, 1),
                "pitch": round(self.prior.pose.pitch, 1),
                "roll": round(self.prior.pose.roll, 1),
            },
            "soft_biometrics": soft,
            "landmarks": self.landmarks.points.iter().map(|p| [round(p[0] / w, 5), round(p[1] / h, 5)]).collect::<Vec<_>>(),
            "timings_ms": {
                "landmarks": round(self.times.landmarks as f32, 3),
                "prior": round(self.times.prior as f32, 3),
                "emotion": round(self.times.emotion as f32, 3),
                "attributes": round(self.times.attributes as f32, 3),
            },
        })
    }
}

impl Analysis {
    pub fn to_json(&self) -> Value {
        json!({
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "faces": self.faces.iter().map(|f| f.to_json(self.width, self.height)).collect::<Vec<_>>(),
            "timings_ms": { "decode": round(self.decode_ms as f32, 3), "detect": round(self.detect_ms as f32, 3) },
        })
    }
}

/// Rounds for output, so JSON lines stay short and diffable.
pub fn round(v: f32, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v as f64 * f).round() / f
}
