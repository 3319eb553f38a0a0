//! The camera loop's throughput: frames/s from a recorded 640×480 stream
//! through tracking (mesh and emotion per tracked face, the detector every
//! few frames) to an HRI event line, on one core, while the compact LLaMA
//! explains on another.
//!
//! The stream is recorded once in memory from the sample portrait, as the
//! YUYV buffers a webcam delivers: it pans across a 640×480 view, so the
//! tracker has to follow it. Each frame then takes the daemon's
//! capture-to-event path: YUYV to RGB straight from the buffer, the tracker,
//! the `track` and `faces` events (`crate::hri`), serialised with their
//! envelope. Only the kernel's DQBUF and the hand-over between threads are
//! not in the figure.

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
    use crate::{hri, source::camera};
    let recording: Vec<Vec<u8>> = frames.iter().map(|f| camera::rgb_to_yuyv(&f.image)).collect();
    let mut tracker = Tracker::new(pipeline.config().track.clone());
    let (mut with_face, mut born, mut seq) = (0, 0, 0u64);
    let mut sink = std::io::sink();
    let mut publish = |body: &serde_json::Value| {
        seq += 1;
        let _ = std::io::Write::write_all(&mut sink, hri::envelope(seq, 0.0, body).as_bytes());
    };
    let mut spare = None;
    let t = Instant::now();
    for (i, (buffer, recorded)) in recording.iter().zip(frames).enumerate() {
        let captured = Instant::now();
        let frame =
            camera::yuyv_to_frame(buffer, recorded.width(), recorded.height(), 0, recorded.timestamp, spare.take())
                .map_err(|e| StageError::new("YUYV conversion", e))?;
        let changes = tracker.update(pipeline, &frame)?;
        for c in &changes {
            born += matches!(c, crate::track::Change::Born { .. }) as usize;
            publish(&hri::change_event(c));
        }
        with_face += (tracker.visible().count() > 0) as usize;
        let latency = captured.elapsed().as_secs_f64() * 1e3;
        publish(&hri::faces_event(&tracker, i as u64, frame.width(), frame.height(), latency));
        spare = Some(frame.image);
    }
    Ok(LoopRun {
        frames_per_second: frames.len() as f64 / t.elapsed().as_secs_f64().max(1e-9),
        frames_with_face: with_face,
        tracks_born: born,
        explanations: 0,
    })
}

/// What the daemon said about its own run.
#[derive(Clone, Debug)]
pub struct DaemonRun {
    pub frames_per_second: f64,
    pub latency_ms_p50: f64,
    /// Answers the daemon's LLM gave meanwhile.
    pub explanations: usize,
}

/// The daemon binary itself (`emoedge-firmware-host`, beside `exe`) on
/// `frames` recorded as YUYV and offered at 240 frames/s, so that analysis,
/// not the source, is the limit. A client keeps asking questions over the
/// socket meanwhile, so the LLM is busy on the other core. The figures are
/// the daemon's own summary line after `seconds`.
pub fn daemon_loop(daemon: &std::path::Path, frames: &[Frame], seconds: f64) -> anyhow::Result<DaemonRun> {
    use std::io::{BufRead, Write};
    anyhow::ensure!(!frames.is_empty(), "no frames to record");
    let dir = std::env::temp_dir().join(format!("emoedge-bench-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let recording = dir.join("stream.yuyv");
    let bytes: Vec<u8> = frames.iter().flat_map(|f| crate::source::camera::rgb_to_yuyv(&f.image)).collect();
    std::fs::write(&recording, bytes)?;
    let socket = dir.join("events.sock");
    let config = dir.join("daemon.toml");
    let (w, h) = (frames[0].width(), frames[0].height());
    std::fs::write(
        &config,
        format!(
            "[camera]\nrecording = {recording:?}\nwidth = {w}\nheight = {h}\nfps = 240\n\
             [events]\nsocket = {socket:?}\nstdout = \"off\"\nrequests_per_second = 50.0\n\
             [display]\ntarget = \"off\"\n[llm]\nmax_tokens = 32\n"
        ),
    )?;
    let child = std::process::Command::new(daemon)
        .arg("--config")
        .arg(&config)
        .arg("--duration")
        .arg(seconds.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", daemon.display()))?;
    // The questioner: one question at a time, the next as soon as an answer comes.
    let t = Instant::now();
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(s) => break Some(s),
            Err(_) if t.elapsed().as_secs_f64() < seconds => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    if let Some(stream) = stream {
        let mut out = stream.try_clone()?;
        let mut asked = false;
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let face = v["ids"].get(0).and_then(|id| id.as_str()).map(str::to_string);
            let answered = v["type"] == "explanation" || v["type"] == "error";
            if let (Some(face), false) = (face, asked) {
                let _ = writeln!(out, "{{\"ask\": \"What do her eyes and mouth show?\", \"face\": {face}}}");
                asked = true;
            } else if answered {
                asked = false;
            }
        }
    }
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("firmware-host: "))
        .ok_or_else(|| anyhow::anyhow!("the daemon printed no summary ({}): {stderr}", output.status))?;
    let field = |name: &str| -> Option<f64> {
        summary.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    Ok(DaemonRun {
        frames_per_second: field("fps").unwrap_or(0.0),
        latency_ms_p50: field("latency_ms_p50").unwrap_or(0.0),
        explanations: field("explanations").unwrap_or(0.0) as usize,
    })
}
