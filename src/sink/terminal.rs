//! A short, readable table per face, for people at a terminal.

use std::fmt::Write as _;

use crate::{analysis::Analysis, clip::ClipAnalysis, prior::ActionUnit};

/// AU cues at or above this are listed as active.
pub const ACTIVE_AU: f32 = 0.3;

pub fn render(analysis: &Analysis) -> String {
    let mut s = String::new();
    let n = analysis.faces.len();
    let _ = writeln!(
        s,
        "{}  {}×{}  {} face{}  (decode {:.1} ms, detect {:.1} ms)",
        analysis.source,
        analysis.width,
        analysis.height,
        n,
        if n == 1 { "" } else { "s" },
        analysis.decode_ms,
        analysis.detect_ms
    );
    if n == 0 {
        let _ = writeln!(s, "  no face found");
    }
    for face in &analysis.faces {
        let b = &face.bbox;
        let _ = writeln!(
            s,
            "  face {}  box ({:.0},{:.0})–({:.0},{:.0})  confidence {:.2}",
            face.id,
            b.x0,
            b.y0,
            b.x1,
            b.y1,
            face.confidence()
        );
        let (top, p) = face.emotions.top();
        let (v, a) = face.emotions.valence_arousal();
        let _ = writeln!(s, "    expression   {top} {p:.2}   (valence {v:+.2}, arousal {a:+.2})");
        let mut ranked: Vec<_> = face.emotions.iter().collect();
        ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
        let others: Vec<String> = ranked.iter().skip(1).take(3).map(|(e, p)| format!("{e} {p:.2}")).collect();
        let _ = writeln!(s, "    then         {}", others.join(", "));
        let active: Vec<String> = ActionUnit::ALL
            .iter()
            .zip(face.prior.action_units.iter())
            .filter(|(_, v)| **v >= ACTIVE_AU)
            .map(|(au, v)| format!("AU{} {} {:.2}", au.number(), au.name(), v))
            .collect();
        let _ = writeln!(
            s,
            "    action units {}",
            if active.is_empty() { "none above 0.3".to_string() } else { active.join(", ") }
        );
        let pose = face.prior.pose;
        let _ =
            writeln!(s, "    head pose    yaw {:+.0}°, pitch {:+.0}°, roll {:+.0}°", pose.yaw, pose.pitch, pose.roll);
        let at = &face.attributes;
        let _ =
            writeln!(s, "    age, gender  {:.0} years, {} ({:.2})", at.age, at.gender.as_str(), at.gender_confidence);
        if let Some(race) = &at.race {
            let r: Vec<String> = race.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            let _ = writeln!(s, "    race         {}", r.join(", "));
        }
        let t = &face.times;
        let _ = writeln!(
            s,
            "    times (ms)   landmarks {:.1}, prior {:.2}, emotion {:.1}, age/gender {:.1}",
            t.landmarks, t.prior, t.emotion, t.attributes
        );
    }
    s
}

/// A clip's summary: one block per track.
pub fn render_clip(clip: &ClipAnalysis) -> String {
    let mut s = String::new();
    let i = &clip.info;
    let _ = writeln!(
        s,
        "{}  {}×{}  {}  {:.2} fps  {} frames read, {} analysed in {:.1} s ({:.1} frames/s)",
        clip.source,
        i.width,
        i.height,
        i.format,
        i.fps,
        clip.frames_read,
        clip.frames_analysed,
        clip.seconds,
        clip.frames_per_second()
    );
    if let Some(e) = &clip.stopped {
        let _ = writeln!(s, "  stopped early: {e}");
    }
    if clip.frames_analysed == 0 {
        let _ =
            writeln!(s, "  no frames to analyse{}", if clip.stopped.is_some() { "" } else { ": the clip is empty" });
    } else if clip.timelines.is_empty() {
        let _ = writeln!(s, "  no face in any analysed frame");
    }
    for t in &clip.timelines {
        let label = t
            .clip_label(clip.min_confidence)
            .map_or("no label".to_string(), |l| format!("{} {:.2} over the clip", l.expression, l.confidence));
        let _ = writeln!(
            s,
            "  track {}  {:.1}–{:.1} s ({} frames)  {label}  age {:.0}, {}",
            t.id,
            t.first_t(),
            t.last_t(),
            t.samples.len(),
            t.attributes.age,
            t.attributes.gender.as_str()
        );
        let segments: Vec<String> = t
            .segments()
            .iter()
            .map(|g| format!("{} {:.1}–{:.1} s (apex {:.2} at {:.1} s)", g.expression, g.start, g.end, g.peak, g.apex))
            .collect();
        let _ = writeln!(s, "    segments      {}", segments.join(" → "));
        let rises: Vec<String> = t
            .au_rises(clip.smoothing)
            .iter()
            .map(|r| format!("AU{} {} from {:.1} s (peak {:.2})", r.au.number(), r.au.name(), r.from, r.peak))
            .collect();
        let _ = writeln!(
            s,
            "    action units  {}",
            if rises.is_empty() { format!("none above {ACTIVE_AU}") } else { rises.join(", ") }
        );
    }
    s
}
