//! `emoedge analyze` on a video clip: the progress bar, JSON lines, the
//! annotated video, the timeline plot, the per-track summary and the LLM's
//! account of the dynamics. The work itself is `emoedge::clip`.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use emoedge::{
    analysis::round,
    clip::{self, ClipAnalysis, FrameView},
    llm::session::Llm,
    pipeline::Pipeline,
    sink::{self, clip::ClipWriter},
    source::video::{Clip, Pick, Picker},
};

use crate::Failure;

pub struct ClipOutputs<'a> {
    pub json: bool,
    pub annotate: Option<&'a Path>,
    pub plot: Option<&'a Path>,
    pub pick: Pick,
    pub talk: Option<(&'a Llm, Option<&'a str>)>,
    /// Several inputs: outputs become folders of per-input files.
    pub many: bool,
}

/// `target` for one input; with several, `<target>/<stem>.<suffix>`.
fn per_input(target: &Path, input: &Path, many: bool, suffix: &str) -> PathBuf {
    if !many {
        return target.to_path_buf();
    }
    let _ = std::fs::create_dir_all(target);
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "clip".into());
    target.join(format!("{stem}.{suffix}"))
}

/// Analyses one clip. The exit code: 0 with a face, 1 without, 3 when the
/// clip could not be read (or ended early), 5 when an output failed.
pub fn analyze(pipeline: &Pipeline, path: &Path, out: &ClipOutputs) -> Result<u8, Failure> {
    let video = pipeline.config().video.clone();
    let mut clip = match Clip::open(path, video.mjpeg_fps) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(3);
        }
    };
    log::info!(
        "{}: {}×{} {} at {:.2} fps",
        clip.name,
        clip.info.width,
        clip.info.height,
        clip.info.format,
        clip.info.fps
    );
    let expected = clip.info.frames.map(|n| Picker::new(out.pick).expected(n, clip.info.fps));
    let bar = indicatif::ProgressBar::new(expected.unwrap_or(0)).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} frames  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let fps_out = clip::analysed_fps(&clip.info, out.pick);
    let annotate = out.annotate.map(|a| per_input(a, path, out.many, "annotated.mp4"));
    let mut writer: Option<ClipWriter> = None;
    let stdout = std::io::stdout();
    let on_frame = |view: &FrameView| -> anyhow::Result<()> {
        bar.inc(1);
        if bar.position() == 1 {
            // The heap has grown to what every later frame reuses.
            emoedge::heap::to_huge_pages();
        }
        if out.json {
            let (w, h) = (view.frame.width(), view.frame.height());
            let line = serde_json::json!({
                "frame": view.index,
                "t": round(view.t as f32, 3),
                "faces": view.tracks.iter().map(|t| t.face.to_json(w, h)).collect::<Vec<_>>(),
            });
            writeln!(stdout.lock(), "{line}").context("writing to stdout")?;
        }
        if let Some(target) = &annotate {
            let caption = format!("{:.2} s  frame {}", view.t, view.index);
            let img = sink::annotate::draw_tracks(view.frame, &view.tracks, &caption);
            if writer.is_none() {
                writer = Some(ClipWriter::create(target, img.width(), img.height(), fps_out)?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&img)?;
            }
        }
        Ok(())
    };
    let result = clip::analyze(pipeline, &mut clip, out.pick, &video, on_frame);
    bar.finish_and_clear();
    let analysis = match result {
        Ok(a) => a,
        Err(clip::ClipError::Sink(e)) => return Err(Failure(5, e)),
        Err(e) => return Err(Failure(2, e.into())),
    };
    if let Some(w) = writer {
        w.finish().map_err(|e| Failure(5, e))?;
        if let Some(t) = &annotate {
            log::info!("wrote {}", t.display());
        }
    }
    if !out.json {
        print!("{}", sink::terminal::render_clip(&analysis));
    }
    let explanations = match out.talk {
        Some((llm, ask)) => explain(llm, ask, &analysis, !out.json)?,
        None => Vec::new(),
    };
    if out.json {
        let mut summary = analysis.summary_json();
        if let Some(tracks) = summary["summary"]["tracks"].as_array_mut() {
            for (track, text) in tracks.iter_mut().zip(&explanations) {
                track["explanation"] = serde_json::Value::String(text.clone());
            }
        }
        writeln!(stdout.lock(), "{summary}").context("writing to stdout").map_err(|e| Failure(5, e))?;
    }
    if let Some(plot) = out.plot {
        let file = per_input(plot, path, out.many, "timeline.png");
        match sink::plot::draw(&analysis) {
            Some(img) => {
                img.save(&file)
                    .with_context(|| format!("writing the timeline plot {}", file.display()))
                    .map_err(|e| Failure(5, e))?;
                log::info!("wrote {}", file.display());
            }
            None => eprintln!("note: {} has no face, so there is no timeline to plot", analysis.source),
        }
    }
    eprintln!(
        "{}: {} frames analysed in {:.1} s, {:.1} frames/s",
        analysis.source,
        analysis.frames_analysed,
        analysis.seconds,
        analysis.frames_per_second()
    );
    Ok(if analysis.stopped.is_some() {
        3
    } else if analysis.timelines.is_empty() {
        1
    } else {
        0
    })
}

/// The LLM's account of each track's dynamics; streamed to stdout when `stream`.
fn explain(llm: &Llm, ask: Option<&str>, clip: &ClipAnalysis, stream: bool) -> Result<Vec<String>, Failure> {
    let mut texts = Vec::new();
    for timeline in &clip.timelines {
        let mut out = std::io::stdout();
        if stream {
            let _ = write!(out, "  track {} says: ", timeline.id);
        }
        let text = emoedge::explain::explain_dynamics(llm, timeline, clip.min_confidence, clip.smoothing, ask, |t| {
            if stream {
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            }
        })
        .map_err(|e| Failure(4, e))?;
        if stream {
            println!();
        }
        texts.push(text.trim().to_string());
    }
    Ok(texts)
}
