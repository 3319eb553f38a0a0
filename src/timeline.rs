//! A tracked face over a clip: its emotion and AU time series, the segments
//! of each expression (onset, apex, offset), one label for the whole clip,
//! and that story in words for the LLM (dynamic FER, as EMO-LLaMA does on
//! DFEW and MAFW).
//!
//! The rules, stated once:
//! - A **segment** is a run of frames in which the tracker's label (the
//!   smoothed emotion with its switching margin) is one emotion. Its
//!   *apex* is the frame where that emotion's smoothed probability peaks;
//!   its *onset* runs from `start` (the last low point of that probability
//!   before the run, searched back to the previous segment's apex) to the
//!   apex; its *offset* from the apex to `end`, the run's last frame.
//! - The **clip label** is the emotion with the highest mean
//!   log-probability over the confident frames (face confidence ≥ the
//!   threshold; all frames when none is): the label most likely under all
//!   those frames at once, taking them as independent evidence, so a frame
//!   that all but rules an emotion out counts heavily against it. Its
//!   confidence is that emotion's share after renormalising the geometric
//!   means of the probabilities.

use serde_json::{json, Value};

use crate::{
    analysis::round,
    heads::{Attributes, Emotion, EmotionScores},
    prior::ActionUnit,
    sink::terminal::ACTIVE_AU,
    track::Track,
};

/// One analysed frame of one track.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The frame's index in the clip, and its time in seconds.
    pub frame: u64,
    pub t: f64,
    /// This frame's own reading.
    pub emotions: EmotionScores,
    /// The tracker's smoothed probabilities and label after this frame.
    pub smoothed: EmotionScores,
    pub label: Emotion,
    pub action_units: [f32; 11],
    pub confidence: f32,
}

/// A track's whole life in a clip.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub id: u32,
    pub samples: Vec<Sample>,
    /// Read once, when the track was born.
    pub attributes: Attributes,
}

/// One expression episode; see the module's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub expression: Emotion,
    /// The onset's start.
    pub start: f64,
    /// When the tracker's label became this emotion.
    pub from: f64,
    pub apex: f64,
    pub end: f64,
    /// The smoothed probability at the apex.
    pub peak: f32,
    /// The first and last frame (clip indices) where the label held.
    pub frames: (u64, u64),
}

/// The clip-level reading of a track.
#[derive(Clone, Debug)]
pub struct ClipLabel {
    pub expression: Emotion,
    pub confidence: f32,
    /// The renormalised geometric means.
    pub emotions: EmotionScores,
    /// How many frames it was computed over.
    pub frames: usize,
}

/// Where an AU becomes active in a timeline (its cue crosses [`ACTIVE_AU`]).
#[derive(Clone, Debug)]
pub struct AuRise {
    pub au: ActionUnit,
    pub from: f64,
    pub peak: f32,
    pub peak_t: f64,
}

impl Timeline {
    pub fn new(track: &Track) -> Timeline {
        Timeline { id: track.id, samples: Vec::new(), attributes: track.face.attributes.clone() }
    }

    /// Records `track` as seen in frame `frame` at `t` seconds.
    pub fn push(&mut self, frame: u64, t: f64, track: &Track) {
        self.samples.push(Sample {
            frame,
            t,
            emotions: track.face.emotions,
            smoothed: track.smoothed,
            label: track.label,
            action_units: track.face.prior.action_units,
            confidence: track.face.confidence(),
        });
    }

    pub fn first_t(&self) -> f64 {
        self.samples.first().map_or(0.0, |s| s.t)
    }

    pub fn last_t(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.t)
    }

    pub fn segments(&self) -> Vec<Segment> {
        let s = &self.samples;
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (i, x) in s.iter().enumerate() {
            match runs.last_mut() {
                Some((_, end)) if s[*end].label == x.label => *end = i,
                _ => runs.push((i, i)),
            }
        }
        let mut out: Vec<Segment> = Vec::new();
        let mut previous_apex = 0usize;
        for (a, b) in runs {
            let e = s[a].label;
            let p = |i: usize| s[i].smoothed.get(e);
            let apex = (a..=b).fold(a, |best, i| if p(i) > p(best) { i } else { best });
            // The onset's start: walk back from the run's first frame while
            // the probability keeps falling (its last low point, the latest
            // of equal ones), no further than the last apex.
            let mut start = a;
            while start > previous_apex && p(start - 1) < p(start) {
                start -= 1;
            }
            out.push(Segment {
                expression: e,
                start: s[start].t,
                from: s[a].t,
                apex: s[apex].t,
                end: s[b].t,
                peak: p(apex),
                frames: (s[a].frame, s[b].frame),
            });
            previous_apex = apex;
        }
        out
    }

    /// The clip-level label; `None` for an empty timeline.
    pub fn clip_label(&self, min_confidence: f32) -> Option<ClipLabel> {
        let confident: Vec<&Sample> = self.samples.iter().filter(|s| s.confidence >= min_confidence).collect();
        let used: Vec<&Sample> = if confident.is_empty() { self.samples.iter().collect() } else { confident };
        if used.is_empty() {
            return None;
        }
        let mut mean = [0f64; 7];
        for s in &used {
            for (m, p) in mean.iter_mut().zip(s.emotions.0) {
                // A floor keeps a single zero from sending the mean to −∞.
                *m += (p.max(1e-6) as f64).ln() / used.len() as f64;
            }
        }
        let top = mean.iter().cloned().fold(f64::MIN, f64::max);
        let weights: Vec<f64> = mean.iter().map(|m| (m - top).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut scores = [0f32; 7];
        for (s, w) in scores.iter_mut().zip(&weights) {
            *s = (w / total) as f32;
        }
        let emotions = EmotionScores(scores);
        let (expression, confidence) = emotions.top();
        Some(ClipLabel { expression, confidence, emotions, frames: used.len() })
    }

    /// The AUs that become active, in order of when: each one's first
    /// crossing of the active threshold, on the AU cue smoothed like the
    /// emotions (an exponential average with `smoothing` as the new frame's weight).
    pub fn au_rises(&self, smoothing: f32) -> Vec<AuRise> {
        let a = smoothing.clamp(0.0, 1.0);
        let mut out = Vec::new();
        for (k, au) in ActionUnit::ALL.iter().enumerate() {
            let mut level: Option<f32> = None;
            let mut rise: Option<AuRise> = None;
            for s in &self.samples {
                let v = s.action_units[k];
                let l = level.map_or(v, |l| (1.0 - a) * l + a * v);
                level = Some(l);
                match &mut rise {
                    None if l >= ACTIVE_AU => rise = Some(AuRise { au: *au, from: s.t, peak: l, peak_t: s.t }),
                    Some(r) if l > r.peak => {
                        r.peak = l;
                        r.peak_t = s.t;
                    }
                    _ => {}
                }
            }
            out.extend(rise);
        }
        out.sort_by(|x, y| x.from.total_cmp(&y.from));
        out
    }

    /// The timeline in words: the evidence of the LLM's user turn, and the
    /// terminal summary's story line.
    pub fn describe(&self, min_confidence: f32, smoothing: f32) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (i, g) in self.segments().iter().enumerate() {
            parts.push(format!(
                "{}{} from {:.1} s to {:.1} s (apex {:.0}% at {:.1} s)",
                if i == 0 { "" } else { "then " },
                g.expression,
                g.start,
                g.end,
                g.peak * 100.0,
                g.apex
            ));
        }
        let aus: Vec<String> = self
            .au_rises(smoothing)
            .iter()
            .map(|r| {
                format!(
                    "AU{} {} ({}) from {:.1} s, peak {:.1} at {:.1} s",
                    r.au.number(),
                    r.au.name(),
                    crate::explain::visible_cue(r.au),
                    r.from,
                    r.peak,
                    r.peak_t
                )
            })
            .collect();
        let label = self.clip_label(min_confidence);
        format!(
            "Facial analysis of one person in a video, seen from {:.1} s to {:.1} s ({} frames).\n\
             Expression over time: {}.\n\
             Facial action units that became active: {}.\n\
             Expression over the whole clip: {}.\n\
             Estimated age {:.0}, gender {}.",
            self.first_t(),
            self.last_t(),
            self.samples.len(),
            if parts.is_empty() { "none".to_string() } else { parts.join("; ") },
            if aus.is_empty() { "none".to_string() } else { aus.join("; ") },
            label.map_or("unknown".to_string(), |l| format!("{} ({:.0}%)", l.expression, l.confidence * 100.0)),
            self.attributes.age,
            self.attributes.gender.as_str(),
        )
    }

    /// The summary record of this track.
    pub fn to_json(&self, min_confidence: f32) -> Value {
        let label = self.clip_label(min_confidence);
        let emotions = |s: &EmotionScores| -> serde_json::Map<String, Value> {
            s.iter().map(|(e, p)| (e.as_str().to_string(), json!(round(p, 4)))).collect()
        };
        json!({
            "id": self.id.to_string(),
            "expression": label.as_ref().map(|l| json!({
                "expression": l.expression.rep155(),
                "confidence": round(l.confidence, 4),
                "frames": l.frames,
                "rule": "mean log-probability over confident frames",
            })),
            "emotions": label.as_ref().map(|l| emotions(&l.emotions)),
            "first_t": round(self.first_t() as f32, 3),
            "last_t": round(self.last_t() as f32, 3),
            "frames": self.samples.len(),
            "segments": self.segments().iter().map(|g| json!({
                "expression": g.expression.rep155(),
                "start": round(g.start as f32, 3),
                "from": round(g.from as f32, 3),
                "apex": round(g.apex as f32, 3),
                "end": round(g.end as f32, 3),
                "peak": round(g.peak, 4),
                "frames": [g.frames.0, g.frames.1],
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(frame: u64, happy: f32, label: Emotion, confidence: f32) -> Sample {
        let mut p = [0f32; 7];
        p[Emotion::Happiness as usize] = happy;
        p[Emotion::Neutral as usize] = 1.0 - happy;
        Sample {
            frame,
            t: frame as f64 / 10.0,
            emotions: EmotionScores(p),
            smoothed: EmotionScores(p),
            label,
            action_units: [happy; 11],
            confidence,
        }
    }

    fn timeline(samples: Vec<Sample>) -> Timeline {
        let attributes = Attributes {
            age: 30.0,
            age_confidence: 0.5,
            gender: crate::heads::Gender::Unknown,
            gender_confidence: 0.5,
            race: None,
        };
        Timeline { id: 3, samples, attributes }
    }

    #[test]
    fn segments_find_onset_apex_and_offset() {
        use Emotion::*;
        // Neutral, then happiness rising from frame 3, peaking at 7, fading.
        let ps = [0.1, 0.1, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.9, 0.7];
        let labels =
            [Neutral, Neutral, Neutral, Neutral, Neutral, Happiness, Happiness, Happiness, Happiness, Happiness];
        let t = timeline(ps.iter().zip(labels).enumerate().map(|(i, (p, l))| sample(i as u64, *p, l, 1.0)).collect());
        let g = t.segments();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].expression, g[0].frames), (Neutral, (0, 4)));
        assert_eq!((g[1].expression, g[1].frames), (Happiness, (5, 9)));
        // The onset starts where happiness began to rise (frame 2, its last
        // low point), not where the label switched.
        assert!((g[1].start - 0.2).abs() < 1e-9, "{:?}", g[1]);
        assert!((g[1].apex - 0.7).abs() < 1e-9 && (g[1].peak - 0.95).abs() < 1e-6);
        assert!((g[1].end - 0.9).abs() < 1e-9);
        let rises = t.au_rises(1.0);
        assert!(rises.iter().all(|r| (r.from - 0.4).abs() < 1e-9), "{rises:?}");
    }

    #[test]
    fn the_clip_label_is_a_geometric_mean_over_confident_frames() {
        use Emotion::*;
        // happiness 0.8, 0.8, 0.3: mean logs −0.55 (happiness) and −1.19
        // (neutral), shares 0.655 and 0.345. The unconfident last frame,
        // which rules happiness out, must not count.
        let t = timeline(vec![
            sample(0, 0.8, Happiness, 0.9),
            sample(1, 0.8, Happiness, 0.9),
            sample(2, 0.3, Neutral, 0.9),
            sample(3, 0.0, Neutral, 0.1),
        ]);
        let l = t.clip_label(0.5).unwrap();
        assert_eq!(l.frames, 3);
        assert_eq!(l.expression, Happiness, "{l:?}");
        let sum: f32 = l.emotions.0.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!((l.confidence - 0.655).abs() < 0.005, "{l:?}");
        assert_eq!(t.clip_label(0.0).unwrap().expression, Neutral, "with the frame that rules it out");
        assert!(timeline(vec![]).clip_label(0.5).is_none());
    }
}
