//! Faces followed across the frames of a stream: stable IDs, a smoothed
//! expression, and the moment a face's label changes.
//!
//! The camera daemon and video files share it. Per frame it costs the mesh
//! and the emotion head for each tracked face; the detector runs only every
//! `detect_every` frames (and whenever nothing is tracked), because a face's
//! next crop can be taken from its last landmarks, as MediaPipe's face mesh
//! does. Age and gender are read once, when a track is born. A face the mesh
//! loses because it moved about its own width between two analysed frames
//! (a loop that drops frames) is found again by the detector and keeps its
//! track, when it is near where that track was last seen and of its size.

use serde::Deserialize;

use crate::{
    analysis::Face,
    detect::{iou, FaceBox},
    heads::{Emotion, EmotionScores},
    pipeline::{Pipeline, StageError},
    source::Frame,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackConfig {
    /// Run the detector every this many frames (1 = every frame).
    pub detect_every: u32,
    /// Frames a face may go unseen before its track ends.
    pub max_missed: u32,
    /// Weight of the newest frame in the smoothed emotions (1 = no smoothing).
    pub smoothing: f32,
    /// How much the new top emotion must beat the current label to replace it.
    pub switch_margin: f32,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig { detect_every: 10, max_missed: 15, smoothing: 0.35, switch_margin: 0.1 }
    }
}

/// One followed face.
#[derive(Clone, Debug)]
pub struct Track {
    pub id: u32,
    /// The latest reading (its `id` is the track's); from the last frame it was seen in.
    pub face: Face,
    /// Exponentially smoothed emotion probabilities.
    pub smoothed: EmotionScores,
    /// The label, changed only when another emotion leads by the margin.
    pub label: Emotion,
    /// Frames since it was last seen (0: seen in this frame).
    pub missed: u32,
    /// Frames it has been seen in.
    pub seen: u32,
}

impl Track {
    /// `face` is this track's face in the latest frame.
    fn see(&mut self, face: Face, config: &TrackConfig, changes: &mut Vec<Change>) {
        let a = config.smoothing.clamp(0.0, 1.0);
        for (s, p) in self.smoothed.0.iter_mut().zip(face.emotions.0) {
            *s = (1.0 - a) * *s + a * p;
        }
        let (top, p) = self.smoothed.top();
        if top != self.label && p >= self.smoothed.get(self.label) + config.switch_margin {
            changes.push(Change::Relabelled { id: self.id, from: self.label, to: top });
            self.label = top;
        }
        self.face = face;
        self.missed = 0;
        self.seen += 1;
    }
}

/// Whether detection `b` may be the face last seen at `last`: of a similar
/// size (within 1.5×), its centre within twice that face's width.
fn near(last: &FaceBox, b: &FaceBox) -> bool {
    let (wl, wb) = (last.x1 - last.x0, b.x1 - b.x0);
    let similar = wl > 0.0 && wb > 0.0 && wb / wl < 1.5 && wl / wb < 1.5;
    similar && distance(last, b) <= 2.0 * wl
}

/// The distance between two boxes' centres.
fn distance(a: &FaceBox, b: &FaceBox) -> f32 {
    ((a.x0 + a.x1 - b.x0 - b.x1) / 2.0).hypot((a.y0 + a.y1 - b.y0 - b.y1) / 2.0)
}

/// What one frame changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Born { id: u32 },
    Relabelled { id: u32, from: Emotion, to: Emotion },
    Lost { id: u32 },
}

#[derive(Default)]
pub struct Tracker {
    pub config: TrackConfig,
    pub tracks: Vec<Track>,
    next_id: u32,
    frame: u64,
}

impl Tracker {
    pub fn new(config: TrackConfig) -> Tracker {
        Tracker { config, ..Default::default() }
    }

    /// The tracks seen in the latest frame.
    pub fn visible(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(|t| t.missed == 0)
    }

    /// Follows the faces into `frame`.
    pub fn update(&mut self, pipeline: &Pipeline, frame: &Frame) -> Result<Vec<Change>, StageError> {
        let mut changes = Vec::new();
        // 1. Each track: the mesh in the crop its last landmarks give.
        for t in &mut self.tracks {
            let seed = t.face.landmarks.face_box(t.face.bbox.score);
            match pipeline.face_at(frame, &seed, Some(&t.face.attributes), t.id)? {
                Some(face) => t.see(face, &self.config, &mut changes),
                None => t.missed += 1,
            }
        }
        // Two tracks that converged on one face: keep the older.
        let mut i = 0;
        while i < self.tracks.len() {
            let dup = self.tracks[..i].iter().any(|o| {
                o.missed == 0 && self.tracks[i].missed == 0 && iou(&o.face.bbox, &self.tracks[i].face.bbox) > 0.5
            });
            if dup {
                changes.push(Change::Lost { id: self.tracks[i].id });
                self.tracks.remove(i);
            } else {
                i += 1;
            }
        }
        // 2. The detector, now and then, for faces that are not tracked yet.
        let detect = self.frame.is_multiple_of(self.config.detect_every.max(1) as u64) || self.visible().count() == 0;
        if detect {
            let boxes: Vec<FaceBox> = pipeline.detect(frame)?;
            let overlap = pipeline.config().detect.iou;
            for b in boxes {
                if self.visible().any(|t| iou(&t.face.bbox, &b) > overlap) {
                    continue;
                }
                // A face found near where a track was just lost is that
                // track: the mesh loses a face that moved about its own width
                // between two analysed frames (a loop that drops frames).
                let lost = self.tracks.iter_mut().filter(|t| t.missed > 0 && near(&t.face.bbox, &b));
                if let Some(t) = lost.min_by(|p, q| distance(&p.face.bbox, &b).total_cmp(&distance(&q.face.bbox, &b))) {
                    if let Some(face) = pipeline.face_at(frame, &b, Some(&t.face.attributes), t.id)? {
                        t.see(face, &self.config, &mut changes);
                    }
                    continue;
                }
                if let Some(face) = pipeline.face_at(frame, &b, None, self.next_id)? {
                    if self.visible().any(|t| iou(&t.face.bbox, &face.bbox) > overlap) {
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    changes.push(Change::Born { id });
                    let label = face.emotions.top().0;
                    self.tracks.push(Track { id, smoothed: face.emotions, label, face, missed: 0, seen: 1 });
                }
            }
        }
        // 3. Tracks unseen for too long end.
        let max = self.config.max_missed;
        self.tracks.retain(|t| {
            let keep = t.missed <= max;
            if !keep {
                changes.push(Change::Lost { id: t.id });
            }
            keep
        });
        self.frame += 1;
        Ok(changes)
    }
}
