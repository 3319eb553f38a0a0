//! Face detection with BlazeFace (256×256): anchors, box decoding, NMS, and the
//! enlarged square box the landmark stage crops.
//!
//! Pre- and post-processing follow @vladmandic/human 3.3.6 `src/face/blazeface.ts`.

use std::path::Path;

use anyhow::{bail, ensure};
use tract_onnx::prelude::*;

use crate::{
    config::DetectConfig,
    crop::{rgb_tensor, Affine},
    models::{Backend, Model, ModelError, Precision},
    source::Frame,
};

const INPUT: u32 = 256;
/// Human enlarges the detector's box by this before cropping the mesh input.
const ENLARGE: f32 = 1.4;

/// A face found in a frame, in frame pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    /// Detector score (sigmoid of its logit), 0–1.
    pub score: f32,
    /// BlazeFace's six keypoints: right eye, left eye, nose tip, mouth centre,
    /// right ear tragion, left ear tragion (the subject's right and left).
    pub keypoints: [[f32; 2]; 6],
}

impl FaceBox {
    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }
    pub fn center(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// The square crop region the mesh model reads: the box enlarged 1.4× and
    /// made square on its longer side. With `rotate`, the crop turns so that
    /// the line from the nose to the mouth points straight down.
    pub fn mesh_crop(&self, rotate: bool, out: u32) -> Affine {
        let (cx, cy) = self.center();
        let side = ENLARGE * self.width().max(self.height());
        let axis = if rotate {
            let ([nx, ny], [mx, my]) = (self.keypoints[2], self.keypoints[3]);
            let (dx, dy) = (mx - nx, my - ny);
            // The crop's y axis is (−sin φ, cos φ); point it along nose → mouth.
            let phi = (-dx).atan2(dy);
            // Human turns the crop only past 0.2 rad; smaller tilts stay put,
            // which keeps near-upright faces identical to the reference.
            if phi.abs() > 0.2 && dx.hypot(dy) > 0.0 {
                phi
            } else {
                0.0
            }
        } else {
            0.0
        };
        Affine::square(cx, cy, side, axis, out)
    }
}

/// Intersection over union of two boxes.
pub fn iou(a: &FaceBox, b: &FaceBox) -> f32 {
    let ix = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0);
    let iy = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0);
    let inter = ix * iy;
    let union = a.area() + b.area() - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression: the best box wins, and any box overlapping
/// a winner by more than `iou_threshold` goes. Returns at most `max` boxes, best first.
pub fn nms(mut boxes: Vec<FaceBox>, iou_threshold: f32, max: usize) -> Vec<FaceBox> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<FaceBox> = Vec::new();
    for b in boxes {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| iou(k, &b) <= iou_threshold) {
            kept.push(b);
        }
    }
    kept
}

/// Anchor centres in input pixels: a 16×16 grid with 2 anchors per cell (stride
/// 16), then an 8×8 grid with 6 per cell (stride 32): 896 in all.
pub fn anchors() -> Vec<[f32; 2]> {
    let mut a = Vec::with_capacity(896);
    for (stride, per_cell) in [(16u32, 2usize), (32, 6)] {
        let grid = INPUT.div_ceil(stride);
        for gy in 0..grid {
            for gx in 0..grid {
                let centre = [stride as f32 * (gx as f32 + 0.5), stride as f32 * (gy as f32 + 0.5)];
                a.extend(std::iter::repeat_n(centre, per_cell));
            }
        }
    }
    a
}

pub struct Detector {
    model: Model,
    anchors: Vec<[f32; 2]>,
}

impl Detector {
    pub fn load(dir: &Path, precision: Precision, backend: &dyn Backend) -> Result<Detector, ModelError> {
        Ok(Detector { model: Model::load(dir, "blazeface", precision, backend)?, anchors: anchors() })
    }

    /// The model's input for a frame: the whole frame stretched to 256×256
    /// (as human does), scaled to −1…1.
    pub fn input(frame: &Frame) -> TractResult<Tensor> {
        let map = Affine::rect(0.0, 0.0, frame.width() as f32, frame.height() as f32, INPUT, INPUT);
        rgb_tensor(&frame.image, &map, INPUT, INPUT, 1.0 / 127.5, -1.0)
    }

    /// Every face candidate in the frame, after NMS, best first.
    pub fn detect(&self, frame: &Frame, cfg: &DetectConfig) -> TractResult<Vec<FaceBox>> {
        let outputs = self.model.run(Self::input(frame)?)?;
        let rows = regressor_rows(&outputs)?;
        let (sx, sy) = (frame.width() as f32 / INPUT as f32, frame.height() as f32 / INPUT as f32);
        let mut boxes = Vec::new();
        for (row, anchor) in rows.iter().zip(&self.anchors) {
            let score = sigmoid(row[0]);
            if score <= cfg.min_score {
                continue;
            }
            // Offsets are in input pixels, relative to the anchor centre.
            let (cx, cy) = (row[1] + anchor[0], row[2] + anchor[1]);
            let (w, h) = (row[3], row[4]);
            let mut keypoints = [[0.0; 2]; 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = [(row[5 + 2 * k] + anchor[0]) * sx, (row[6 + 2 * k] + anchor[1]) * sy];
            }
            boxes.push(FaceBox {
                x0: (cx - w / 2.0) * sx,
                y0: (cy - h / 2.0) * sy,
                x1: (cx + w / 2.0) * sx,
                y1: (cy + h / 2.0) * sy,
                score,
                keypoints,
            });
        }
        Ok(nms(boxes, cfg.iou, cfg.max_faces))
    }
}

/// The 896 rows of 17 values (score logit, box, 6 keypoints) in anchor order,
/// whether the export kept BlazeFace's four heads or one concatenated output.
fn regressor_rows(outputs: &[Vec<f32>]) -> TractResult<Vec<[f32; 17]>> {
    let as_rows = |scores: &[f32], regs: &[f32]| -> Vec<[f32; 17]> {
        scores
            .iter()
            .zip(regs.chunks_exact(16))
            .map(|(s, r)| {
                let mut row = [0.0; 17];
                row[0] = *s;
                row[1..].copy_from_slice(r);
                row
            })
            .collect()
    };
    match outputs.len() {
        1 => {
            let flat = &outputs[0];
            ensure!(flat.len() == 896 * 17, "blazeface output has {} values, expected 896×17", flat.len());
            Ok(flat.chunks_exact(17).map(|c| c.try_into().unwrap_or([0.0; 17])).collect())
        }
        4 => {
            // Sort the heads by size: 384 scores, 512 scores, 384×16, 512×16.
            let mut heads: Vec<&[f32]> = outputs.iter().map(|t| t.as_slice()).collect();
            heads.sort_by_key(|h| h.len());
            ensure!(
                heads.iter().map(|h| h.len()).collect::<Vec<_>>() == [384, 512, 384 * 16, 512 * 16],
                "blazeface heads have unexpected sizes"
            );
            let mut rows = as_rows(heads[1], heads[3]);
            rows.extend(as_rows(heads[0], heads[2]));
            Ok(rows)
        }
        n => bail!("blazeface has {n} outputs, expected 1 or 4"),
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, score: f32) -> FaceBox {
        FaceBox { x0, y0: 0.0, x1: x0 + 10.0, y1: 10.0, score, keypoints: [[0.0; 2]; 6] }
    }

    #[test]
    fn there_are_896_anchors_centred_in_their_cells() {
        let a = anchors();
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], [8.0, 8.0]);
        assert_eq!(a[1], [8.0, 8.0]);
        assert_eq!(a[2], [24.0, 8.0]);
        assert_eq!(a[512], [16.0, 16.0]);
        assert_eq!(a[895], [240.0, 240.0]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_distinct_ones() {
        let kept = nms(vec![b(0.0, 0.6), b(2.0, 0.9), b(50.0, 0.7)], 0.3, 10);
        assert_eq!(kept.iter().map(|k| k.score).collect::<Vec<_>>(), vec![0.9, 0.7]);
        assert_eq!(nms(vec![b(0.0, 0.6), b(50.0, 0.7)], 0.3, 1).len(), 1);
    }

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        assert!((iou(&b(0.0, 1.0), &b(0.0, 1.0)) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&b(0.0, 1.0), &b(20.0, 1.0)), 0.0);
    }

    #[test]
    fn upright_face_crop_is_not_rotated_and_tilted_one_is() {
        let mut f = b(0.0, 1.0);
        f.keypoints[2] = [5.0, 4.0];
        f.keypoints[3] = [5.0, 8.0];
        assert_eq!(f.mesh_crop(true, 192).b, 0.0);
        f.keypoints[3] = [8.0, 7.0]; // mouth down and to the right: head tilted
        let m = f.mesh_crop(true, 192);
        assert!(m.b.abs() > 0.0);
        // The crop's down direction follows nose → mouth.
        let (dx, dy) = (m.b, m.d);
        assert!((dy / dx - 1.0).abs() < 1e-4);
    }
}
