//! Faces followed through clips made here from the real photos: a pan, a
//! face that leaves and comes back, and two faces side by side.

mod common;

use emoedge::{
    bench::camera::recorded_stream,
    heads::Emotion,
    models::Precision,
    source::Frame,
    track::{Change, TrackConfig, Tracker},
};
use image::{imageops, Rgb, RgbImage};

fn run(frames: &[Frame], config: TrackConfig) -> (Tracker, Vec<Vec<Change>>) {
    let p = common::pipeline(Precision::Fp32);
    let mut tracker = Tracker::new(config);
    let changes = frames.iter().map(|f| tracker.update(&p, f).expect("tracking a frame")).collect();
    (tracker, changes)
}

fn born(changes: &[Vec<Change>]) -> Vec<u32> {
    changes.iter().flatten().filter_map(|c| if let Change::Born { id } = c { Some(*id) } else { None }).collect()
}

/// 60 frames of the astronaut panning 2 px a frame: one track, one ID, seen
/// in every frame, labelled happy throughout.
#[test]
fn a_pan_keeps_one_id() {
    let frames = recorded_stream(&common::frame("astronaut.png"), 60);
    let (tracker, changes) = run(&frames, TrackConfig::default());
    assert_eq!(born(&changes), vec![0], "{changes:?}");
    assert!(changes.iter().flatten().all(|c| !matches!(c, Change::Lost { .. })), "{changes:?}");
    let t = tracker.visible().next().expect("the face is still tracked at the end");
    assert_eq!((t.id, t.seen), (0, 60));
    assert_eq!(t.label, Emotion::Happiness);
}

/// The face, then 30 frames of the coffee cup (no face), then the face again:
/// the first track ends after `max_missed` frames and a new ID appears.
#[test]
fn a_face_back_after_a_long_absence_gets_a_new_id() {
    let face = recorded_stream(&common::frame("astronaut.png"), 10);
    let cup =
        Frame::from_rgb(imageops::resize(&common::frame("coffee.png").image, 640, 480, imageops::FilterType::Triangle));
    let mut frames: Vec<Frame> = face.clone();
    frames.extend(std::iter::repeat_n(cup, 30));
    frames.extend(face);
    let (_, changes) = run(&frames, TrackConfig::default());
    assert_eq!(born(&changes), vec![0, 1], "{changes:?}");
    let lost_at = changes.iter().position(|c| c.contains(&Change::Lost { id: 0 })).expect("track 0 ends");
    // Unseen from frame 10; lost once unseen for more than max_missed (15) frames.
    assert_eq!(lost_at, 10 + 15, "{changes:?}");
}

/// Two astronauts side by side: two tracks with distinct IDs, both kept.
#[test]
fn two_faces_side_by_side_are_two_tracks() {
    // Her head and shoulders (the face is ~100 px of this 250 px square), so
    // that each face stays a fifth of the frame's width.
    let photo = imageops::crop_imm(&common::frame("astronaut.png").image, 100, 10, 250, 250).to_image();
    let half = imageops::resize(&photo, 320, 320, imageops::FilterType::Triangle);
    let mut view = RgbImage::from_pixel(640, 480, Rgb([40, 40, 40]));
    imageops::overlay(&mut view, &half, 0, 80);
    imageops::overlay(&mut view, &half, 320, 80);
    let frames = vec![Frame::from_rgb(view); 12];
    let (tracker, changes) = run(&frames, TrackConfig::default());
    assert_eq!(born(&changes), vec![0, 1], "{changes:?}");
    let mut ids: Vec<u32> = tracker.visible().map(|t| t.id).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1]);
}

/// The pan seen by a loop that keeps up with only every 40th frame (the
/// daemon behind a 240 frames/s camera): the face jumps ~80 px, about its
/// own width, between the frames analysed. The mesh seeded from the last
/// landmarks loses it, the detector finds it again, and it keeps its ID
/// (and its age and gender) instead of being born anew.
#[test]
fn a_face_that_jumps_between_frames_keeps_its_id() {
    let frames: Vec<Frame> = recorded_stream(&common::frame("astronaut.png"), 240).into_iter().step_by(40).collect();
    let (tracker, changes) = run(&frames, TrackConfig::default());
    assert_eq!(born(&changes), vec![0], "{changes:?}");
    assert!(changes.iter().flatten().all(|c| !matches!(c, Change::Lost { .. })), "{changes:?}");
    let t = tracker.visible().next().expect("the face is tracked at the end");
    assert_eq!((t.id, t.seen), (0, frames.len() as u32));
}
