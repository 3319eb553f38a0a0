//! emoedge reads faces on small devices and says in words what they show.
//!
//! The modules follow the data: [`source`] decodes a [`source::Frame`],
//! [`detect`] finds [`detect::FaceBox`]es, [`landmarks`] fits the mesh,
//! [`prior`] derives pose and action-unit cues, [`heads`] reads emotion, age
//! and gender, [`analysis`] gathers it all, and [`sink`] shows it. [`models`]
//! loads and verifies the model files; [`pipeline`] wires the stages.
//! Streams add [`track`] (stable IDs across frames), [`timeline`] (a track's
//! expression over time) and [`clip`] (a video file through all of it).

pub mod analysis;
pub mod backend;
pub mod bench;
pub mod clip;
pub mod config;
pub mod crop;
pub mod detect;
pub mod doctor;
pub mod explain;
pub mod heads;
pub mod heap;
pub mod hri;
pub mod landmarks;
pub mod llm;
pub mod mapped;
pub mod models;
pub mod pipeline;
pub mod prior;
pub mod roofline;
pub mod sink;
pub mod source;
pub mod timeline;
pub mod track;

/// The git revision this binary was built from.
pub const GIT_REV: &str = env!("EMOEDGE_GIT_REV");
/// The backends compiled in, comma-separated.
pub const BACKENDS: &str = env!("EMOEDGE_BACKENDS");
