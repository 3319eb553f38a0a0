//! A video clip through the pipeline: frames → [`Tracker`] → per-track
//! [`Timeline`]s. The caller sees each analysed frame as it goes (for JSON
//! lines, the annotated video, a progress bar) and gets the timelines at the end.

use std::{collections::BTreeMap, time::Instant};

use serde::Deserialize;

use crate::{
    pipeline::{Pipeline, StageError},
    source::{
        video::{Clip, ClipInfo, Pick, Picker, VideoError},
        Frame,
    },
    timeline::Timeline,
    track::{Change, Track, TrackConfig, Tracker},
};

/// `[video]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// Seconds a face may go unseen before its track ends (a face back later gets a new ID).
    pub forget_after: f64,
    /// Face confidence (detector × mesh) a frame needs to count towards the clip label.
    pub min_confidence: f32,
    /// The frame rate assumed for raw MJPEG streams, which carry no timing.
    pub mjpeg_fps: f64,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig { forget_after: 1.0, min_confidence: 0.5, mjpeg_fps: 30.0 }
    }
}

/// One analysed frame, as the caller sees it.
pub struct FrameView<'a> {
    pub index: u64,
    pub t: f64,
    pub frame: &'a Frame,
    /// The tracks seen in this frame.
    pub tracks: Vec<&'a Track>,
    pub changes: &'a [Change],
}

/// What a clip gave.
pub struct ClipAnalysis {
    pub source: String,
    pub info: ClipInfo,
    /// One per track, in order of birth.
    pub timelines: Vec<Timeline>,
    pub frames_read: u64,
    pub frames_analysed: u64,
    /// Wall-clock seconds spent (decoding included).
    pub seconds: f64,
    /// Why the clip ended before its end, if it did (a cut file, a bad frame):
    /// everything before it was analysed.
    pub stopped: Option<VideoError>,
    pub min_confidence: f32,
    pub smoothing: f32,
}

impl ClipAnalysis {
    /// Analysed frames per second of wall-clock time.
    pub fn frames_per_second(&self) -> f64 {
        self.frames_analysed as f64 / self.seconds.max(1e-9)
    }

    /// The last JSON line: `{"summary": {"tracks": [...]}}`.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({ "summary": {
            "source": self.source,
            "format": self.info.format,
            "width": self.info.width,
            "height": self.info.height,
            "fps": crate::analysis::round(self.info.fps as f32, 3),
            "frames_read": self.frames_read,
            "frames_analysed": self.frames_analysed,
            "stopped": self.stopped.as_ref().map(|e| e.to_string()),
            "tracks": self.timelines.iter().map(|t| t.to_json(self.min_confidence)).collect::<Vec<_>>(),
        }})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{0}")]
    Sink(anyhow::Error),
}

/// The frame rate of the analysed frames.
pub fn analysed_fps(info: &ClipInfo, pick: Pick) -> f64 {
    match pick {
        Pick::Every(n) => info.fps / n.max(1) as f64,
        Pick::Fps(f) => f.min(info.fps),
    }
}

/// Runs the clip through `pipeline`, calling `on_frame` after each analysed
/// frame. An error while reading a frame ends the clip early but keeps what
/// was analysed (see [`ClipAnalysis::stopped`]); a failing stage or sink ends it.
pub fn analyze(
    pipeline: &Pipeline,
    clip: &mut Clip,
    pick: Pick,
    config: &VideoConfig,
    mut on_frame: impl FnMut(&FrameView) -> anyhow::Result<()>,
) -> Result<ClipAnalysis, ClipError> {
    let started = Instant::now();
    let fps = analysed_fps(&clip.info, pick);
    let track_config = TrackConfig {
        max_missed: (config.forget_after * fps).ceil().max(1.0) as u32,
        ..pipeline.config().track.clone()
    };
    let smoothing = track_config.smoothing;
    let mut tracker = Tracker::new(track_config);
    let mut timelines: BTreeMap<u32, Timeline> = BTreeMap::new();
    let mut picker = Picker::new(pick);
    let (mut analysed, mut stopped) = (0u64, None);
    loop {
        let (index, frame) = match clip.next(&mut picker) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                log::warn!("{e}");
                stopped = Some(e);
                break;
            }
        };
        let changes = tracker.update(pipeline, &frame)?;
        let t = frame.timestamp.as_secs_f64();
        let tracks: Vec<&Track> = tracker.visible().collect();
        for track in &tracks {
            timelines.entry(track.id).or_insert_with(|| Timeline::new(track)).push(index, t, track);
        }
        on_frame(&FrameView { index, t, frame: &frame, tracks, changes: &changes }).map_err(ClipError::Sink)?;
        analysed += 1;
    }
    Ok(ClipAnalysis {
        source: clip.name.clone(),
        info: clip.info.clone(),
        timelines: timelines.into_values().collect(),
        frames_read: clip.frames_read(),
        frames_analysed: analysed,
        seconds: started.elapsed().as_secs_f64(),
        stopped,
        min_confidence: config.min_confidence,
        smoothing,
    })
}
