//! The heads: learned models that read a face crop. Emotion (7 classes), and
//! the soft biometrics age and gender (race only when switched on).

use std::fmt;

/// The seven basic emotions, in the seeds' (EMO-LLaMA's) label set and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion {
    Neutral,
    Happiness,
    Sadness,
    Surprise,
    Fear,
    Disgust,
    Anger,
}

impl Emotion {
    pub const ALL: [Emotion; 7] = [
        Emotion::Neutral,
        Emotion::Happiness,
        Emotion::Sadness,
        Emotion::Surprise,
        Emotion::Fear,
        Emotion::Disgust,
        Emotion::Anger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Happiness => "happiness",
            Emotion::Sadness => "sadness",
            Emotion::Surprise => "surprise",
            Emotion::Fear => "fear",
            Emotion::Disgust => "disgust",
            Emotion::Anger => "anger",
        }
    }

    /// REP-155's word for it (hri_msgs/Expression constants).
    pub fn rep155(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Happiness => "happy",
            Emotion::Sadness => "sad",
            Emotion::Surprise => "surprised",
            Emotion::Fear => "scared",
            Emotion::Disgust => "disgusted",
            Emotion::Anger => "angry",
        }
    }

    /// Pleasure and arousal of each emotion on −1…1, from Russell and
    /// Mehrabian's (1977) PAD ratings; neutral sits at the origin.
    fn valence_arousal(self) -> (f32, f32) {
        match self {
            Emotion::Neutral => (0.0, 0.0),
            Emotion::Happiness => (0.76, 0.48),
            Emotion::Sadness => (-0.63, -0.27),
            Emotion::Surprise => (0.40, 0.67),
            Emotion::Fear => (-0.64, 0.60),
            Emotion::Disgust => (-0.60, 0.35),
            Emotion::Anger => (-0.51, 0.59),
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probability for each emotion, indexed in [`Emotion::ALL`] order; sums to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmotionScores(pub [f32; 7]);

impl EmotionScores {
    pub fn get(&self, e: Emotion) -> f32 {
        self.0[e as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Emotion, f32)> + '_ {
        Emotion::ALL.iter().map(|e| (*e, self.0[*e as usize]))
    }

    /// The most probable emotion and its probability.
    pub fn top(&self) -> (Emotion, f32) {
        self.iter().fold((Emotion::Neutral, f32::MIN), |best, (e, p)| if p > best.1 { (e, p) } else { best })
    }

    /// Expected valence and arousal under the distribution.
    pub fn valence_arousal(&self) -> (f32, f32) {
        self.iter().fold((0.0, 0.0), |(v, a), (e, p)| {
            let (ev, ea) = e.valence_arousal();
            (v + p * ev, a + p * ea)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
    /// The model's margin is too small to say.
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Unknown => "unknown",
        }
    }
}

/// Soft biometrics of one face.
#[derive(Clone, Debug, PartialEq)]
pub struct Attributes {
    /// Years.
    pub age: f32,
    /// 0–1: how concentrated the age estimate is.
    pub age_confidence: f32,
    pub gender: Gender,
    /// 0.5–1: the probability of the reported gender; `Unknown` below the margin.
    pub gender_confidence: f32,
    /// Only when switched on in the config (see the README for why it is off).
    pub race: Option<Vec<(&'static str, f32)>>,
}

// ---- the models ------------------------------------------------------------

use std::path::Path;

use anyhow::{bail, ensure};
use tract_onnx::prelude::*;

use crate::{
    crop::{rgb_tensor, sample_rgb, Affine},
    landmarks::{Landmarks, MESH_INPUT},
    models::{Backend, Model, ModelError, Precision},
    source::Frame,
};

/// The emotion model's output order (oarriaga's FER2013 classifier).
const EMOTION_MODEL_ORDER: [Emotion; 7] = [
    Emotion::Anger,
    Emotion::Disgust,
    Emotion::Fear,
    Emotion::Happiness,
    Emotion::Sadness,
    Emotion::Surprise,
    Emotion::Neutral,
];
/// Luma weights human uses for the grayscale emotion input.
const GRAY: [f32; 3] = [0.2989, 0.5870, 0.1140];
/// Gear's race labels, in its output order.
const RACE: [&str; 5] = ["white", "black", "asian", "indian", "other"];
/// Below this margin from 0.5 (on the 0–1 "male" output) the gender is unknown.
const GENDER_MARGIN: f32 = 0.05;

/// Where a sub-rectangle of the face crop, given in fractions of the crop
/// (`[x0, y0, x1, y1]`), sampled at `w`×`h`, reads in the frame.
fn face_map(landmarks: &Landmarks, part: [f32; 4], w: u32, h: u32) -> Affine {
    let s = MESH_INPUT as f32;
    landmarks.crop.then(&Affine::rect(part[0] * s, part[1] * s, part[2] * s, part[3] * s, w, h))
}

pub struct Heads {
    emotion: Model,
    faceres: Model,
    gear: Option<Model>,
}

impl Heads {
    pub fn load(dir: &Path, precision: Precision, backend: &dyn Backend, race: bool) -> Result<Heads, ModelError> {
        Ok(Heads {
            emotion: Model::load(dir, "emotion", precision, backend)?,
            faceres: Model::load(dir, "faceres", precision, backend)?,
            // Gear is loaded only to reproduce the seeds' race field.
            gear: if race { Some(Model::load(dir, "gear", precision, backend)?) } else { None },
        })
    }

    /// The emotion model's input: the face crop at 64×64, gray, scaled to −1…1.
    pub fn emotion_input(frame: &Frame, landmarks: &Landmarks) -> TractResult<Tensor> {
        let px = sample_rgb(&frame.image, &face_map(landmarks, [0.0, 0.0, 1.0, 1.0], 64, 64), 64, 64);
        let data: Vec<f32> =
            px.iter().map(|p| ((p[0] * GRAY[0] + p[1] * GRAY[1] + p[2] * GRAY[2]) / 255.0 - 0.5) * 2.0).collect();
        Tensor::from_shape(&[1, 64, 64, 1], &data)
    }

    pub fn emotion(&self, frame: &Frame, landmarks: &Landmarks) -> TractResult<EmotionScores> {
        let out = self.emotion.run(Self::emotion_input(frame, landmarks)?)?;
        let p = out.first().map(|t| t.as_slice()).unwrap_or(&[]);
        ensure!(p.len() == 7, "emotion model gave {} values, expected 7", p.len());
        let sum: f32 = p.iter().sum::<f32>().max(1e-12);
        let mut scores = [0.0; 7];
        for (e, v) in EMOTION_MODEL_ORDER.iter().zip(p) {
            scores[*e as usize] = v / sum;
        }
        Ok(EmotionScores(scores))
    }

    /// The description model's input: the face crop at 224×224, RGB 0–255.
    pub fn faceres_input(frame: &Frame, landmarks: &Landmarks) -> TractResult<Tensor> {
        rgb_tensor(&frame.image, &face_map(landmarks, [0.0, 0.0, 1.0, 1.0], 224, 224), 224, 224, 1.0, 0.0)
    }

    /// Gear's input: the face crop's box x 0.1–0.9, y 0–0.9, at 198×198, RGB 0–1.
    pub fn gear_input(frame: &Frame, landmarks: &Landmarks) -> TractResult<Tensor> {
        rgb_tensor(&frame.image, &face_map(landmarks, [0.1, 0.0, 0.9, 0.9], 198, 198), 198, 198, 1.0 / 255.0, 0.0)
    }

    pub fn attributes(&self, frame: &Frame, landmarks: &Landmarks) -> TractResult<Attributes> {
        let out = self.faceres.run(Self::faceres_input(frame, landmarks)?)?;
        let by_len = |n: usize| out.iter().find(|t| t.len() == n).map(|t| t.as_slice());
        let (Some(male), Some(age_bins)) = (by_len(1), by_len(100)) else {
            bail!("faceres outputs are not a gender value and 100 age bins");
        };
        let (age, age_confidence) = age_from_bins(age_bins);
        let (gender, gender_confidence) = gender_from_male_probability(male[0]);
        let race = match &self.gear {
            Some(gear) => {
                let out = gear.run(Self::gear_input(frame, landmarks)?)?;
                let r = out.iter().find(|t| t.len() == 5).map(|t| t.as_slice()).unwrap_or(&[]);
                Some(RACE.iter().copied().zip(r.iter().copied()).collect())
            }
            None => None,
        };
        Ok(Attributes { age, age_confidence, gender, gender_confidence, race })
    }
}

/// Age from the description model's 100 one-year bins: the expectation under
/// the distribution, and how much probability lies within five years of it.
fn age_from_bins(bins: &[f32]) -> (f32, f32) {
    let total: f32 = bins.iter().sum::<f32>().max(1e-12);
    let age = bins.iter().enumerate().map(|(i, p)| i as f32 * p).sum::<f32>() / total;
    let near = bins.iter().enumerate().filter(|(i, _)| (*i as f32 - age).abs() <= 5.0).map(|(_, p)| p).sum::<f32>();
    (age, near / total)
}

/// The reported gender is the more probable one; too close to even, unknown.
fn gender_from_male_probability(male: f32) -> (Gender, f32) {
    let male = male.clamp(0.0, 1.0);
    let confidence = male.max(1.0 - male);
    let gender = if (male - 0.5).abs() <= GENDER_MARGIN {
        Gender::Unknown
    } else if male > 0.5 {
        Gender::Male
    } else {
        Gender::Female
    };
    (gender, confidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emotion_top_and_valence() {
        let mut s = [0.0; 7];
        s[Emotion::Happiness as usize] = 0.9;
        s[Emotion::Neutral as usize] = 0.1;
        let e = EmotionScores(s);
        assert_eq!(e.top().0, Emotion::Happiness);
        let (v, a) = e.valence_arousal();
        assert!(v > 0.6 && a > 0.3);
        assert_eq!(Emotion::Fear.rep155(), "scared");
    }

    #[test]
    fn gender_margin_gives_unknown() {
        assert_eq!(gender_from_male_probability(0.52).0, Gender::Unknown);
        assert_eq!(gender_from_male_probability(0.1), (Gender::Female, 0.9));
        assert_eq!(gender_from_male_probability(0.8).0, Gender::Male);
    }

    #[test]
    fn age_is_the_expectation_over_bins() {
        let mut bins = [0.0; 100];
        bins[30] = 0.5;
        bins[40] = 0.5;
        let (age, conf) = age_from_bins(&bins);
        assert!((age - 35.0).abs() < 1e-4);
        assert!((conf - 1.0).abs() < 1e-6);
    }
}
