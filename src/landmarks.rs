//! Landmarks: the 468-point face mesh, fitted in a square crop around a
//! detected face and mapped back into frame pixels.
//!
//! Follows @vladmandic/human 3.3.6 `src/face/facemesh.ts`: a 192×192 crop of the
//! enlarged square box, RGB scaled to 0–1; the model returns 468 (x, y, z)
//! points in crop pixels and a face flag that is already a probability.

use std::path::Path;

use anyhow::bail;
use tract_onnx::prelude::*;

use crate::{
    crop::{rgb_tensor, Affine},
    detect::FaceBox,
    models::{Backend, Model, ModelError, Precision},
    source::Frame,
};

pub const MESH_INPUT: u32 = 192;
pub const MESH_POINTS: usize = 468;

/// The fitted mesh of one face.
#[derive(Clone, Debug)]
pub struct Landmarks {
    /// 468 points in frame pixels; z is depth in the same pixel units,
    /// relative to the face's centre (smaller is nearer the camera).
    pub points: Vec<[f32; 3]>,
    /// The mesh model's face flag, 0–1.
    pub confidence: f32,
    /// The square crop (crop pixels → frame pixels) the mesh was fitted in.
    /// The heads read their inputs from this same crop.
    pub crop: Affine,
}

impl Landmarks {
    /// The tight box around the mesh, with BlazeFace-style keypoints taken from
    /// the mesh (eye centres, nose tip, mouth centre, face sides).
    pub fn face_box(&self, score: f32) -> FaceBox {
        let p = &self.points;
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for q in p {
            x0 = x0.min(q[0]);
            y0 = y0.min(q[1]);
            x1 = x1.max(q[0]);
            y1 = y1.max(q[1]);
        }
        let mid = |i: usize, j: usize| [(p[i][0] + p[j][0]) / 2.0, (p[i][1] + p[j][1]) / 2.0];
        let at = |i: usize| [p[i][0], p[i][1]];
        let keypoints = [mid(33, 133), mid(362, 263), at(1), mid(13, 14), at(234), at(454)];
        FaceBox { x0, y0, x1, y1, score, keypoints }
    }
}

pub struct Mesh {
    model: Model,
    /// Turn the crop upright along the face's nose–mouth line.
    pub rotate: bool,
}

impl Mesh {
    pub fn load(dir: &Path, precision: Precision, backend: &dyn Backend) -> Result<Mesh, ModelError> {
        Ok(Mesh { model: Model::load(dir, "facemesh", precision, backend)?, rotate: true })
    }

    /// The model's input: the face crop, RGB 0–1.
    pub fn input(frame: &Frame, crop: &Affine) -> TractResult<Tensor> {
        rgb_tensor(&frame.image, crop, MESH_INPUT, MESH_INPUT, 1.0 / 255.0, 0.0)
    }

    pub fn landmarks(&self, frame: &Frame, face: &FaceBox) -> TractResult<Landmarks> {
        let crop = face.mesh_crop(self.rotate, MESH_INPUT);
        let outputs = self.model.run(Self::input(frame, &crop)?)?;
        let mut mesh = None;
        let mut flag = None;
        for t in &outputs {
            match t.len() {
                n if n == MESH_POINTS * 3 => mesh = Some(t.as_slice()),
                1 => flag = Some(t[0]),
                _ => {}
            }
        }
        let (Some(mesh), Some(confidence)) = (mesh, flag) else {
            bail!("facemesh outputs are not a 1404-value mesh and a face flag");
        };
        let scale = crop.scale();
        let points = mesh
            .chunks_exact(3)
            .map(|c| {
                let (x, y) = crop.apply(c[0], c[1]);
                [x, y, c[2] * scale]
            })
            .collect();
        Ok(Landmarks { points, confidence, crop })
    }
}
