//! The face prior: what the landmarks say about a face before any learned head
//! looks at it. Landmarks normalised to the face, the head pose, and geometric
//! action-unit cues, as EMO-LLaMA and EmoLA feed their LLaMA.
//!
//! Indices are those of the 468-point MediaPipe face mesh. "Right" and "left"
//! are the subject's: the subject's right eye is on the left of the picture.

use crate::landmarks::Landmarks;

/// Mesh indices this module measures.
mod idx {
    pub const FOREHEAD: usize = 10;
    pub const CHIN: usize = 152;
    pub const NOSE_TIP: usize = 1;
    pub const FACE_RIGHT: usize = 234;
    pub const FACE_LEFT: usize = 454;

    pub const R_EYE_OUTER: usize = 33;
    pub const R_EYE_INNER: usize = 133;
    pub const R_EYE_UPPER: usize = 159;
    pub const R_EYE_LOWER: usize = 145;
    pub const L_EYE_OUTER: usize = 263;
    pub const L_EYE_INNER: usize = 362;
    pub const L_EYE_UPPER: usize = 386;
    pub const L_EYE_LOWER: usize = 374;

    /// Lower edge of the brows: inner end, middle, outer end.
    pub const R_BROW_INNER: usize = 55;
    pub const R_BROW_MID: usize = 52;
    pub const R_BROW_OUTER: usize = 46;
    pub const L_BROW_INNER: usize = 285;
    pub const L_BROW_MID: usize = 282;
    pub const L_BROW_OUTER: usize = 276;

    pub const R_ALA: usize = 129;
    pub const L_ALA: usize = 358;

    pub const MOUTH_RIGHT: usize = 61;
    pub const MOUTH_LEFT: usize = 291;
    pub const UPPER_LIP_TOP: usize = 0;
    pub const UPPER_LIP_INNER: usize = 13;
    pub const LOWER_LIP_INNER: usize = 14;
    pub const LOWER_LIP_BOTTOM: usize = 17;
}

/// Head rotation in degrees. Yaw is positive when the subject turns to their
/// left (towards the picture's right), pitch positive when looking up, roll
/// positive when the head tilts so the picture's right side goes down.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct HeadPose {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// FACS action units with a geometric cue here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionUnit {
    Au1,
    Au2,
    Au4,
    Au6,
    Au9,
    Au12,
    Au15,
    Au17,
    Au20,
    Au25,
    Au26,
}

impl ActionUnit {
    pub const ALL: [ActionUnit; 11] = [
        ActionUnit::Au1,
        ActionUnit::Au2,
        ActionUnit::Au4,
        ActionUnit::Au6,
        ActionUnit::Au9,
        ActionUnit::Au12,
        ActionUnit::Au15,
        ActionUnit::Au17,
        ActionUnit::Au20,
        ActionUnit::Au25,
        ActionUnit::Au26,
    ];

    /// The FACS number, as REP-155's FacialActionUnits carries it.
    pub fn number(self) -> u8 {
        match self {
            ActionUnit::Au1 => 1,
            ActionUnit::Au2 => 2,
            ActionUnit::Au4 => 4,
            ActionUnit::Au6 => 6,
            ActionUnit::Au9 => 9,
            ActionUnit::Au12 => 12,
            ActionUnit::Au15 => 15,
            ActionUnit::Au17 => 17,
            ActionUnit::Au20 => 20,
            ActionUnit::Au25 => 25,
            ActionUnit::Au26 => 26,
        }
    }

    /// The FACS name.
    pub fn name(self) -> &'static str {
        match self {
            ActionUnit::Au1 => "inner brow raiser",
            ActionUnit::Au2 => "outer brow raiser",
            ActionUnit::Au4 => "brow lowerer",
            ActionUnit::Au6 => "cheek raiser",
            ActionUnit::Au9 => "nose wrinkler",
            ActionUnit::Au12 => "lip corner puller",
            ActionUnit::Au15 => "lip corner depressor",
            ActionUnit::Au17 => "chin raiser",
            ActionUnit::Au20 => "lip stretcher",
            ActionUnit::Au25 => "lips part",
            ActionUnit::Au26 => "jaw drop",
        }
    }
}

/// What the landmarks alone tell about a face.
#[derive(Clone, Debug)]
pub struct FacePrior {
    /// The landmarks in a face-centred frame: origin between the eyes, the
    /// head's rotation undone, one unit = the distance between the eye centres.
    pub normalized: Vec<[f32; 3]>,
    pub pose: HeadPose,
    /// Cue intensity, 0–1, for each of [`ActionUnit::ALL`] in order.
    pub action_units: [f32; 11],
}

impl FacePrior {
    pub fn intensity(&self, au: ActionUnit) -> f32 {
        let i = ActionUnit::ALL.iter().position(|a| *a == au).unwrap_or(0);
        self.action_units[i]
    }

    pub fn from_landmarks(landmarks: &Landmarks) -> FacePrior {
        let p = &landmarks.points;
        let (rotation, pose) = head_rotation(p);
        let eye_mid = mid(mid(p[idx::R_EYE_OUTER], p[idx::R_EYE_INNER]), mid(p[idx::L_EYE_OUTER], p[idx::L_EYE_INNER]));
        let iod = dist(mid(p[idx::R_EYE_OUTER], p[idx::R_EYE_INNER]), mid(p[idx::L_EYE_OUTER], p[idx::L_EYE_INNER]))
            .max(1e-6);
        // Express every point in the head's own axes: x along the face from
        // the subject's right to left, y from chin to forehead reversed (down),
        // z out of the face. This frontalises the geometry, so the AU cues
        // below hold for a turned head too.
        let normalized = p
            .iter()
            .map(|q| {
                let d = sub(*q, eye_mid);
                [dot(d, rotation[0]) / iod, dot(d, rotation[1]) / iod, dot(d, rotation[2]) / iod]
            })
            .collect::<Vec<_>>();
        let action_units = au_cues(&normalized);
        FacePrior { normalized, pose, action_units }
    }
}

/// The raw geometric measure behind each AU cue, from frontalised landmarks
/// (unit = inter-ocular distance, y down), in [`ActionUnit::ALL`] order.
/// Signs are chosen so that a larger value always means more of the action.
fn au_measures(n: &[[f32; 3]]) -> [f32; 11] {
    use idx::*;
    let y = |i: usize| n[i][1];
    let x = |i: usize| n[i][0];
    let d = |i: usize, j: usize| ((n[i][0] - n[j][0]).powi(2) + (n[i][1] - n[j][1]).powi(2)).sqrt();

    // AU1: height of the inner brow ends above the inner eye corners.
    let au1 = ((y(R_EYE_INNER) - y(R_BROW_INNER)) + (y(L_EYE_INNER) - y(L_BROW_INNER))) / 2.0;
    // AU2: height of the outer brow ends above the outer eye corners.
    let au2 = ((y(R_EYE_OUTER) - y(R_BROW_OUTER)) + (y(L_EYE_OUTER) - y(L_BROW_OUTER))) / 2.0;
    // AU4: brows pulled down and together: minus (mid-brow height above the
    // upper lids + the gap between the inner brow ends).
    let au4 =
        -(((y(R_EYE_UPPER) - y(R_BROW_MID)) + (y(L_EYE_UPPER) - y(L_BROW_MID))) / 2.0 + d(R_BROW_INNER, L_BROW_INNER));
    // AU6: the cheeks push the lower lids up and narrow the eyes: minus the
    // eye opening (upper to lower lid) over the eye's width.
    let au6 = -(d(R_EYE_UPPER, R_EYE_LOWER) / d(R_EYE_OUTER, R_EYE_INNER)
        + d(L_EYE_UPPER, L_EYE_LOWER) / d(L_EYE_OUTER, L_EYE_INNER))
        / 2.0;
    // AU9: the nose wrinkles and the alae rise towards the inner eye corners:
    // minus the ala-to-inner-eye-corner distance.
    let au9 = -(d(R_ALA, R_EYE_INNER) + d(L_ALA, L_EYE_INNER)) / 2.0;
    // AU12 / AU15: the lip corners above (below) the line through the middle
    // of the lips, halfway between the upper lip's top and the lower lip's bottom.
    let lip_mid = (y(UPPER_LIP_TOP) + y(LOWER_LIP_BOTTOM)) / 2.0;
    let corner_lift = lip_mid - (y(MOUTH_RIGHT) + y(MOUTH_LEFT)) / 2.0;
    // AU17: the chin boss pushes the lower lip up: minus the lower-lip-to-chin distance.
    let au17 = -d(LOWER_LIP_BOTTOM, CHIN);
    // AU20: the lips stretch sideways: mouth width.
    let au20 = (x(MOUTH_LEFT) - x(MOUTH_RIGHT)).abs();
    // AU25: the gap between the inner lips. AU26: how far the jaw drops, nose tip to chin.
    let au25 = d(UPPER_LIP_INNER, LOWER_LIP_INNER);
    let au26 = d(NOSE_TIP, CHIN);
    [au1, au2, au4, au6, au9, corner_lift, -corner_lift, au17, au20, au25, au26]
}

/// Where each measure sits on a typical face (cue 0) and on a marked action
/// (cue 1), in [`ActionUnit::ALL`] order: the median and the 95th percentile
/// over the 97 of scikit-image's 100 LFW faces that the pipeline finds
/// (upscaled 8×, measured 2026-11-30 with `RUST_LOG=emoedge::prior=trace`).
/// They are cues for a language model, not a FACS coder.
const RELAXED_AND_MARKED: [(f32, f32); 11] = [
    (0.222, 0.286),
    (0.175, 0.228),
    (-0.610, -0.536),
    (-0.275, -0.181),
    (-0.551, -0.473),
    (0.016, 0.072),
    (-0.016, 0.015),
    (-0.558, -0.441),
    (0.836, 0.991),
    (0.041, 0.215),
    (1.204, 1.393),
];

/// The cue for each AU, 0–1. Two cues are gated by the others: lips stretched
/// while the corners lift are a smile (AU12), not AU20; and a jaw drop needs
/// the lips apart (AU25).
fn au_cues(n: &[[f32; 3]]) -> [f32; 11] {
    let m = au_measures(n);
    log::trace!("AU measures {m:?}");
    let mut cue = [0.0; 11];
    for (c, (v, (relaxed, marked))) in cue.iter_mut().zip(m.iter().zip(RELAXED_AND_MARKED)) {
        *c = ramp(*v, relaxed, marked);
    }
    cue[8] *= 1.0 - cue[5];
    cue[10] *= cue[9];
    cue
}

/// 0 at `neutral`, 1 at `full`, linear between, clamped.
fn ramp(v: f32, neutral: f32, full: f32) -> f32 {
    ((v - neutral) / (full - neutral)).clamp(0.0, 1.0)
}

/// The head's axes from the mesh, and the pose angles they give. x runs from
/// the face's right edge to its left edge, y from the forehead to the chin, z
/// is their cross product (out of the face, towards the camera being -z).
fn head_rotation(p: &[[f32; 3]]) -> ([[f32; 3]; 3], HeadPose) {
    let x_axis = normalize(sub(p[idx::FACE_LEFT], p[idx::FACE_RIGHT]));
    let y_raw = sub(p[idx::CHIN], p[idx::FOREHEAD]);
    // Gram–Schmidt keeps the axes orthogonal when the mesh is not.
    let y_axis = normalize(sub(y_raw, scale(x_axis, dot(y_raw, x_axis))));
    let z_axis = cross(x_axis, y_axis);
    // Angles of the rotation R = [x y z] (columns) in the camera frame (x right, y down, z into the scene).
    let roll = x_axis[1].atan2(x_axis[0]);
    let yaw = (-x_axis[2]).asin();
    let pitch = (-y_axis[2]).atan2(z_axis[2]);
    let deg = 180.0 / std::f32::consts::PI;
    ([x_axis, y_axis, z_axis], HeadPose { yaw: -yaw * deg, pitch: -pitch * deg, roll: roll * deg })
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn mid(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, (a[2] + b[2]) / 2.0]
}
fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    dot(sub(a, b), sub(a, b)).sqrt()
}
fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = dot(a, a).sqrt().max(1e-12);
    scale(a, 1.0 / n)
}
fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
