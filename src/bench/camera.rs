//! The camera loop's throughput: frames/s from a recorded 640×480 stream
//! through tracking (mesh and emotion per tracked face, the detector every
//! few frames) to an HRI event line, on one core, while the compact LLaMA
//! explains on another.
//!
//! The stream is recorded once in memory from the sample portrait: it pans
//! across a 640×480 view, so the tracker has to follow it. The frames are
//! already decoded RGB: V4L2 capture and the YUYV/MJPEG conversion are the
//! daemon's and are not in this figure.

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use image::{imageops, Rgb, RgbImage};

use crate::{
    llm::session::Llm,
    pipeline::{Pipeline, StageError},
    source::Frame,
    track::Tracker,
};

/// `n` frames of `photo` panning across a 640×480 view, 2 px a frame.
pub fn recorded_stream(photo: &Frame, n: usize) -> Vec<Frame> {
    let (w, h) = (640u32, 480u32);
    let scale = (h as f32 * 0.9) / photo.height().max(1) as f32;
    let face = imageops::resize(
        &photo.image,
        (photo.width() as f32 * scale) as u32,
        (photo.height() as f32 * scale) as u32,
        imageops::FilterType::Triangle,
    );
    let span = w.saturating_sub(face.width()).max(1) as usize;
    (0..n)
        .map(|i| {
            let mut view = RgbImage::from_pixel(w, h, Rgb([40, 40, 40]));
            // Back and forth across the free width.
            let x = (2 * i) % (2 * span);
            let x = if x < span { x } else { 2 * span - x };
            imageops::overlay(&mut view, &face, x as i64, (h - face.height()) as i64 / 2);
            let mut frame = Frame::from_rgb(view);
            frame.timestamp = Duration::from_secs_f64(i as f64 / 30.0);
            frame
        })
        .collect()
}

/// What a run of the loop measured.
#[derive(Clone, Debug)]
pub struct LoopRun {
    pub frames_per_second: f64,
    /// Frames in which the tracker saw at least one face.
    pub frames_with_face: usize,
    pub tracks_born: usize,
    /// Explanations the LLM finished meanwhile.
    pub explanations: usize,
}

/// Runs `frames` through `pipeline` and a tracker on this thread, turning
/// each frame's tracks into an event line, while `llm` (if any) generates
/// explanations on its own thread. Returns the loop's frames/s.
pub fn camera_loop(pipeline: &Pipeline, frames: &[Frame], llm: Option<&Llm>) -> Result<LoopRun, StageError> {
    let stop = AtomicBool::new(false);
    let explanations = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        if let Some(llm) = llm {
            let (stop, explanations) = (&stop, &explanations);
            let face = pipeline.analyze(&frames[0], "camera")?.faces.into_iter().next();
            scope.spawn(move || {
                let Some(face) = face else { return };
                let template = llm.tokenizer.chat_template.as_deref();
                let Ok((prompt, _)) = crate::explain::prompt(&face, None, template) else { return };
                let Ok(ids) = llm.tokenizer.encode(&prompt, true) else { return };
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut session) = llm.session() else { return };
                    if session.generate(&ids, 24, Default::default(), |_| {}).is_err() {
                        return;
                    }
                    explanations.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let result = run_frames(pipeline, frames);
        stop.store(true, Ordering::Relaxed);
        result.map(|mut run| {
            run.explanations = explanations.load(Ordering::Relaxed);
            run
        })
    })
}

fn run_frames(pipeline: &Pipeline, frames: &[Frame]) -> Result<LoopRun, StageError> {
    let mut tracker = Tracker::new(pipeline.config().track.clone());
    let (mut with_face, mut born) = (0, 0);
    let mut sink = std::io::sink();
    let t = Instant::now();
    for (seq, frame) in frames.iter().enumerate() {
        let changes = tracker.update(pipeline, frame)?;
        born += changes.iter().filter(|c| matches!(c, crate::track::Change::Born { .. })).count();
        let faces: Vec<serde_json::Value> =
            tracker.visible().map(|t| t.face.to_json(frame.width(), frame.height())).collect();
        with_face += !faces.is_empty() as usize;
        let event = serde_json::json!({"seq": seq, "t": frame.timestamp.as_secs_f64(), "faces": faces});
        let _ = std::io::Write::write_all(&mut sink, event.to_string().as_bytes());
    }
    Ok(LoopRun {
        frames_per_second: frames.len() as f64 / t.elapsed().as_secs_f64().max(1e-9),
        frames_with_face: with_face,
        tracks_born: born,
        explanations: 0,
    })
}
