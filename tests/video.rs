//! Video clips made here from real face photos (the astronaut; five LFW
//! faces from scikit-image, labelled by eye: 007, 012 and 043 neutral, 019
//! and 096 happy) and pictures with no face: a cut between two people, a
//! pan, a zoom, a face that leaves and comes back, two faces side by side.
//! The clips are written as Y4M by emoedge's own writer and transcoded by
//! the ffmpeg CLI into the containers people use. Then the bad ones: cut,
//! empty, audio only, 10-bit, odd-sized.

// The clips are transcoded, and the containers read, through ffmpeg.
#![cfg(feature = "ffmpeg")]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use emoedge::{
    clip::{self, ClipAnalysis, VideoConfig},
    heads::Emotion,
    models::Precision,
    pipeline::Pipeline,
    sink::clip::Y4mWriter,
    source::video::{Clip, Pick, VideoError},
};
use image::{imageops, Rgb, RgbImage};

const W: u32 = 640;
const H: u32 = 480;
/// The clips' frame rate: low, to keep the suite quick; the tracker's
/// forget-after is in seconds, so nothing else depends on it.
const FPS: f64 = 10.0;

fn background() -> RgbImage {
    RgbImage::from_pixel(W, H, Rgb([40, 40, 40]))
}

/// Her head and shoulders (the face is ~100 px of this 250 px square).
fn astronaut(size: u32) -> RgbImage {
    let photo = imageops::crop_imm(&common::frame("astronaut.png").image, 100, 10, 250, 250).to_image();
    imageops::resize(&photo, size, size, imageops::FilterType::Triangle)
}

/// A 25×25 LFW face (a tight crop, gray), scaled up to `size`.
fn lfw(name: &str, size: u32) -> RgbImage {
    let small = common::frame(name).image;
    imageops::resize(&small, size, size, imageops::FilterType::Triangle)
}

/// `parts` laid on the dark background at their top-left corners.
fn scene(parts: &[(&RgbImage, i64, i64)]) -> RgbImage {
    let mut view = background();
    for (img, x, y) in parts {
        imageops::overlay(&mut view, *img, *x, *y);
    }
    view
}

/// No face: the coffee cup, filling the frame.
fn no_face() -> RgbImage {
    imageops::resize(&common::frame("coffee.png").image, W, H, imageops::FilterType::Triangle)
}

/// `n` frames of the neutral LFW face, then `n` of the smiling astronaut
/// where it was (or the other way round): one face changing in place.
fn neutral_and_happy(n: usize, happy_first: bool) -> Vec<RgbImage> {
    let (a, b) = (astronaut(320), lfw("lfw-007-neutral.png", 150));
    let (happy, neutral) = (scene(&[(&a, 160, 80)]), scene(&[(&b, 245, 150)]));
    let (first, second) = if happy_first { (happy, neutral) } else { (neutral, happy) };
    let mut frames = vec![first; n];
    frames.extend(vec![second; n]);
    frames
}

fn write_y4m(path: &Path, frames: &[RgbImage]) {
    let (w, h) = frames.first().map_or((W, H), |f| f.dimensions());
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("creating a clip"));
    let mut out = Y4mWriter::new(file, w, h, FPS).expect("writing the Y4M header");
    for f in frames {
        out.write(f).expect("writing a frame");
    }
    out.finish().expect("flushing the clip");
}

/// The reference encoder: the ffmpeg CLI (`bash .ci/setup` installs it).
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("running ffmpeg (install it: bash .ci/setup)");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn pipeline() -> Pipeline {
    common::pipeline(Precision::Fp32)
}

/// Runs a clip file through the library; per analysed frame, the visible
/// tracks' (id, label).
fn analyze(p: &Pipeline, path: &Path, pick: Pick) -> (ClipAnalysis, Vec<Vec<(u32, Emotion)>>) {
    // Raw MJPEG carries no timing: it is given the clips' rate.
    let mut clip = Clip::open(path, FPS).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut per_frame = Vec::new();
    let result = clip::analyze(p, &mut clip, pick, &VideoConfig::default(), |view| {
        per_frame.push(view.tracks.iter().map(|t| (t.id, t.label)).collect());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("analysing {}: {e}", path.display()));
    (result, per_frame)
}

fn label_of(c: &ClipAnalysis, id: u32) -> Emotion {
    let t = c.timelines.iter().find(|t| t.id == id).unwrap_or_else(|| panic!("no track {id}"));
    t.clip_label(0.5).expect("a clip label").expression
}

/// A hard cut from the smiling astronaut to a neutral face in the same
/// place: the label must follow within 3 analysed frames (0.3 s), and each
/// side's clip-level reading must be its own.
#[test]
fn the_label_changes_at_a_cut() {
    let dir = common::scratch("video-cut");
    let frames = neutral_and_happy(15, true);
    let path = dir.join("cut.y4m");
    write_y4m(&path, &frames);
    let (c, per_frame) = analyze(&pipeline(), &path, Pick::Every(1));
    assert_eq!(c.frames_analysed, 30);
    let label = |i: usize| per_frame[i].first().map(|x| x.1);
    for (i, f) in per_frame.iter().enumerate().take(15) {
        assert_eq!(label(i), Some(Emotion::Happiness), "frame {i}: {f:?}");
    }
    let switched = (15..30).find(|&i| label(i) == Some(Emotion::Neutral)).expect("the label never became neutral");
    assert!(switched - 15 <= 3, "neutral only {} frames after the cut: {per_frame:?}", switched - 15);
    for (i, f) in per_frame.iter().enumerate().skip(switched) {
        assert_eq!(label(i), Some(Emotion::Neutral), "frame {i}: {f:?}");
    }
    // Whether the tracker kept the ID across the cut (same place) or not,
    // the first track's clip label is happiness and the story has both.
    let first = &c.timelines[0];
    let segments = first.segments();
    if c.timelines.len() == 1 {
        assert_eq!(segments.iter().map(|s| s.expression).collect::<Vec<_>>(), [Emotion::Happiness, Emotion::Neutral]);
        let cut_t = 15.0 / FPS;
        assert!((segments[1].from - cut_t).abs() <= 3.0 / FPS + 1e-6, "{segments:?}");
    } else {
        assert_eq!(label_of(&c, c.timelines[1].id), Emotion::Neutral);
    }
    assert_eq!(label_of(&c, first.id), Emotion::Happiness);
}

/// The astronaut panning 12 px a frame across the view, then zooming out
/// from 300 to 180 px and in to 336 px about where the pan ended: one
/// track, one ID, seen in every frame.
#[test]
fn ids_stay_stable_through_a_pan_and_a_zoom() {
    let dir = common::scratch("video-pan");
    let face = astronaut(300);
    let mut frames: Vec<RgbImage> = (0..25).map(|i| scene(&[(&face, 20 + 12 * i, 90)])).collect();
    // The pan's last crop is centred on (458, 240).
    let sizes = (0..10).map(|i| 300 - 12 * i).chain((0..14).map(|i| 180 + 12 * i));
    for size in sizes {
        let f = astronaut(size);
        frames.push(scene(&[(&f, 458 - size as i64 / 2, 240 - size as i64 / 2)]));
    }
    let path = dir.join("pan.y4m");
    write_y4m(&path, &frames);
    let (c, per_frame) = analyze(&pipeline(), &path, Pick::Every(1));
    assert_eq!(c.timelines.len(), 1, "one track: {per_frame:?}");
    assert!(per_frame.iter().all(|f| f.len() == 1 && f[0].0 == c.timelines[0].id), "{per_frame:?}");
    assert_eq!(label_of(&c, c.timelines[0].id), Emotion::Happiness);
    assert_eq!(c.timelines[0].samples.len(), 49);
}

/// The face, 0.5 s of no face, the face again (the same track: shorter
/// than forget-after, 1 s), then 2 s of no face and the face once more (a
/// new ID). Subsampled with --fps 5 on the way, which must not change it.
#[test]
fn a_new_id_appears_after_a_long_absence_only() {
    let dir = common::scratch("video-absence");
    let face = scene(&[(&astronaut(300), 170, 90)]);
    let cup = no_face();
    let mut frames = Vec::new();
    for (img, n) in [(&face, 10), (&cup, 5), (&face, 10), (&cup, 20), (&face, 10)] {
        frames.extend(std::iter::repeat_n(img.clone(), n));
    }
    let path = dir.join("absence.y4m");
    write_y4m(&path, &frames);
    let p = pipeline();
    for pick in [Pick::Every(1), Pick::Fps(5.0)] {
        let (c, per_frame) = analyze(&p, &path, pick);
        let ids: Vec<u32> = c.timelines.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), 2, "{pick:?}: two tracks, {per_frame:?}");
        let (first, second) = (&c.timelines[0], &c.timelines[1]);
        assert!(
            first.first_t() < 0.1 && (first.last_t() - 2.4).abs() < 0.25,
            "{pick:?}: {}–{}",
            first.first_t(),
            first.last_t()
        );
        assert!(
            (second.first_t() - 4.5).abs() < 0.25,
            "{pick:?}: the face's return at 4.5 s, got {}",
            second.first_t()
        );
        assert!(ids.iter().all(|&id| label_of(&c, id) == Emotion::Happiness));
        let expected = if matches!(pick, Pick::Fps(_)) { 28 } else { 55 };
        assert_eq!(c.frames_analysed, expected, "{pick:?}");
    }
}

/// The smiling astronaut and a neutral face side by side: two tracks, each
/// with its own clip label.
#[test]
fn two_faces_side_by_side_keep_their_own_labels() {
    let dir = common::scratch("video-two");
    let (a, b) = (astronaut(300), lfw("lfw-043-neutral.png", 150));
    let frames = vec![scene(&[(&a, 10, 90), (&b, 420, 160)]); 12];
    let path = dir.join("two.y4m");
    write_y4m(&path, &frames);
    let (c, _) = analyze(&pipeline(), &path, Pick::Every(1));
    assert_eq!(c.timelines.len(), 2);
    let mut by_x: Vec<(f32, Emotion)> =
        c.timelines.iter().map(|t| (t.samples[0].emotions.0[0], label_of(&c, t.id))).collect();
    by_x.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Sorted by P(neutral): the astronaut first.
    assert_eq!(by_x.iter().map(|x| x.1).collect::<Vec<_>>(), [Emotion::Happiness, Emotion::Neutral], "{by_x:?}");
}

/// One short clip in each container and codec people hand us: each gives
/// all its frames, one track and the happy label.
#[test]
fn every_container_decodes() {
    let dir = common::scratch("video-containers");
    let face = astronaut(300);
    let frames: Vec<RgbImage> = (0..10).map(|i| scene(&[(&face, 150 + 4 * i, 90)])).collect();
    let src = dir.join("src.y4m");
    write_y4m(&src, &frames);
    let s = src.to_str().expect("a UTF-8 path");
    let mut clips: Vec<PathBuf> = vec![src.clone()];
    for (name, args) in [
        ("h264.mp4", &["-c:v", "libx264", "-pix_fmt", "yuv420p"][..]),
        ("h264.mkv", &["-c:v", "libx264", "-pix_fmt", "yuv420p"][..]),
        ("mjpeg.avi", &["-c:v", "mjpeg", "-q:v", "3"][..]),
        ("vp9.webm", &["-c:v", "libvpx-vp9", "-b:v", "1M"][..]),
        ("raw.mjpeg", &["-c:v", "mjpeg", "-q:v", "3", "-f", "mjpeg"][..]),
        ("ffmpeg.y4m", &["-pix_fmt", "yuv420p"][..]),
    ] {
        let out = dir.join(name);
        let mut a = vec!["-i", s];
        a.extend_from_slice(args);
        a.push(out.to_str().expect("a UTF-8 path"));
        ffmpeg(&a);
        clips.push(out);
    }
    let p = pipeline();
    for path in clips {
        let (c, _) = analyze(&p, &path, Pick::Every(1));
        assert!(c.stopped.is_none(), "{}: {:?}", path.display(), c.stopped);
        assert_eq!(c.frames_analysed, 10, "{}", path.display());
        assert_eq!((c.info.width, c.info.height), (W, H), "{}", path.display());
        assert_eq!(c.timelines.len(), 1, "{}", path.display());
        assert_eq!(label_of(&c, c.timelines[0].id), Emotion::Happiness, "{}", path.display());
        // Timestamps follow the clip's rate, whatever the container's time base.
        let last = c.timelines[0].last_t();
        assert!((last - 0.9).abs() < 0.02, "{}: last frame at {last} s", path.display());
    }
}

/// 10-bit and odd-sized streams are converted and analysed like any other.
/// (The 10-bit Y4M is even-sized: ffmpeg's Y4M muxer writes odd-width
/// 16-bit chroma planes half a sample short.)
#[test]
fn ten_bit_and_odd_sized_streams_are_analysed() {
    let dir = common::scratch("video-formats");
    let face = astronaut(300);
    let odd: Vec<RgbImage> =
        (0..6).map(|_| imageops::crop_imm(&scene(&[(&face, 150, 90)]), 0, 0, 621, 479).to_image()).collect();
    let src = dir.join("odd.y4m");
    write_y4m(&src, &odd);
    let s = src.to_str().expect("a UTF-8 path");
    let ten_y4m = dir.join("ten.y4m");
    let ten_mkv = dir.join("ten.mkv");
    let odd_mkv = dir.join("odd.mkv");
    ffmpeg(&[
        "-i",
        s,
        "-pix_fmt",
        "yuv420p10le",
        "-vf",
        "crop=620:478:0:0",
        "-strict",
        "-1",
        ten_y4m.to_str().unwrap_or_default(),
    ]);
    ffmpeg(&[
        "-i",
        s,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p10le",
        "-vf",
        "crop=620:478:0:0",
        ten_mkv.to_str().unwrap_or_default(),
    ]);
    ffmpeg(&["-i", s, "-c:v", "ffv1", odd_mkv.to_str().unwrap_or_default()]);
    let p = pipeline();
    for path in [&src, &ten_y4m, &ten_mkv, &odd_mkv] {
        let (c, _) = analyze(&p, path, Pick::Every(1));
        assert_eq!(c.frames_analysed, 6, "{}", path.display());
        assert_eq!(c.timelines.len(), 1, "{}", path.display());
        assert_eq!(label_of(&c, c.timelines[0].id), Emotion::Happiness, "{}: {}", path.display(), c.info.format);
    }
    let (c, _) = analyze(&p, &ten_y4m, Pick::Every(1));
    assert!(c.info.format.contains("10-bit"), "{}", c.info.format);
}

/// Bad files: each is a clear error, or an empty result that says why.
#[test]
fn bad_clips_give_clear_errors() {
    let dir = common::scratch("video-bad");
    let face = astronaut(300);
    let frames: Vec<RgbImage> = (0..8).map(|_| scene(&[(&face, 150, 90)])).collect();
    let y4m = dir.join("good.y4m");
    write_y4m(&y4m, &frames);
    let mp4 = dir.join("good.mp4");
    ffmpeg(&[
        "-i",
        y4m.to_str().unwrap_or_default(),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        mp4.to_str().unwrap_or_default(),
    ]);
    let open_err = |path: &Path| -> String {
        match Clip::open(path, 30.0) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e.to_string(),
        }
    };
    let p = pipeline();

    // A Y4M cut in the middle of frame 5: frames 0–4 are analysed, then it says so.
    let bytes = std::fs::read(&y4m).expect("reading the clip");
    let frame_bytes = (W * H * 3 / 2) as usize + 6;
    let header = bytes.iter().position(|&b| b == b'\n').expect("a header") + 1;
    let put = |name: &str, data: &[u8]| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, data).expect("writing a test file");
        path
    };
    let cut = put("cut.y4m", &bytes[..header + 5 * frame_bytes + 1000]);
    let (c, _) = analyze(&p, &cut, Pick::Every(1));
    assert_eq!(c.frames_analysed, 5);
    let why = c.stopped.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("cut short") && why.contains("frame 5"), "{why}");
    assert!(matches!(c.stopped, Some(VideoError::Truncated { frame: 5, .. })));

    // An mp4 cut in half: its index (at the end) is gone.
    let mp4_bytes = std::fs::read(&mp4).expect("reading the mp4");
    let half = put("half.mp4", &mp4_bytes[..mp4_bytes.len() / 2]);
    let e = open_err(&half);
    assert!(e.contains("half.mp4") && e.contains("not a video emoedge can read"), "{e}");

    // Zero bytes; and a Y4M with its header and no frame.
    assert!(open_err(&put("empty.mp4", b"")).contains("is empty"));
    let header_only = put("header.y4m", &bytes[..header]);
    let (c, _) = analyze(&p, &header_only, Pick::Every(1));
    assert_eq!((c.frames_analysed, c.timelines.len()), (0, 0));
    assert!(c.stopped.is_none());
    assert!(emoedge::sink::terminal::render_clip(&c).contains("the clip is empty"));

    // Audio only.
    let audio = dir.join("audio.mkv");
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "flac", audio.to_str().unwrap_or_default()]);
    let e = open_err(&audio);
    assert!(e.contains("no video stream") && e.contains("audio"), "{e}");

    // Not a video at all, and a Y4M header that lies about its size.
    let text = put("notes.mp4", b"these are not the frames you are looking for");
    assert!(open_err(&text).contains("not a video emoedge can read"));
    let huge = put("huge.y4m", b"YUV4MPEG2 W99999999 H99999999 F10:1 C420jpeg\nFRAME\n");
    assert!(open_err(&huge).contains("limit is"));
}

/// The CLI on a clip: JSON lines (a record per analysed frame, then the
/// summary), the timeline plot and the annotated video.
#[test]
fn the_cli_writes_json_lines_a_plot_and_an_annotated_video() {
    let dir = common::scratch("video-cli");
    let frames = neutral_and_happy(12, false);
    let src = dir.join("clip.y4m");
    write_y4m(&src, &frames);
    let mp4 = dir.join("clip.mp4");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap_or_default(),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        mp4.to_str().unwrap_or_default(),
    ]);
    let (plot, annotated) = (dir.join("timeline.png"), dir.join("annotated.mp4"));
    let out = Command::new(env!("CARGO_BIN_EXE_emoedge"))
        .arg("analyze")
        .arg(&mp4)
        .args(["--json", "--every", "2", "--plot"])
        .arg(&plot)
        .arg("--annotate")
        .arg(&annotated)
        .output()
        .expect("running emoedge");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 12 + 1, "12 analysed frames (every 2nd of 24) and the summary");
    for (i, l) in lines[..12].iter().enumerate() {
        assert_eq!(l["frame"], 2 * i as u64);
        assert!((l["t"].as_f64().unwrap_or(-1.0) - 2.0 * i as f64 / FPS).abs() < 1e-3, "{l}");
        let faces = l["faces"].as_array().expect("faces");
        assert_eq!(faces.len(), 1, "{l}");
        for key in ["id", "roi", "expression", "emotions", "action_units", "soft_biometrics", "landmarks"] {
            assert!(faces[0].get(key).is_some(), "frame {i} has no {key}");
        }
    }
    let summary = &lines[12]["summary"];
    let tracks = summary["tracks"].as_array().expect("tracks");
    assert!(!tracks.is_empty());
    // The frames' face ids are the tracks' ids.
    let ids: Vec<&str> = tracks.iter().filter_map(|t| t["id"].as_str()).collect();
    assert!(lines[..12].iter().all(|l| ids.contains(&l["faces"][0]["id"].as_str().unwrap_or("?"))));
    let seq: Vec<&str> = tracks
        .iter()
        .flat_map(|t| t["segments"].as_array().into_iter().flatten())
        .filter_map(|s| s["expression"].as_str())
        .collect();
    assert_eq!(seq.first(), Some(&"neutral"), "{summary}");
    assert_eq!(seq.last(), Some(&"happy"), "{summary}");
    for t in tracks {
        for key in ["expression", "emotions", "first_t", "last_t", "segments"] {
            assert!(t.get(key).is_some(), "a track without {key}: {t}");
        }
    }
    // The plot: a picture with the emotion colours in it.
    let img = image::open(&plot).expect("the plot is a PNG").to_rgb8();
    assert_eq!(img.width(), 1200);
    let yellow = img.pixels().filter(|p| p.0 == [240, 180, 0]).count();
    assert!(yellow > 500, "the happiness line and band: {yellow} pixels");
    // The annotated video: as many frames as were analysed, at the clip's size.
    let mut clip = Clip::open(&annotated, 30.0).expect("the annotated video opens");
    assert_eq!((clip.info.width, clip.info.height), (W, H));
    let mut picker = emoedge::source::video::Picker::new(Pick::Every(1));
    let mut n = 0;
    while let Some((_, f)) = clip.next(&mut picker).expect("decoding the annotated video") {
        if n == 0 {
            // Green box pixels drawn on the dark background.
            assert!(f.image.pixels().filter(|p| p[1] > 180 && p[0] < 120 && p[2] < 150).count() > 100);
        }
        n += 1;
    }
    assert_eq!(n, 12);
}

/// The compact LLaMA's account of a neutral-to-happy clip: it starts from
/// the measured labels and the time of the change, then gives a reason that
/// cites a cue of the happy part (a smile, the lip corners, the cheeks) and
/// claims no other emotion.
#[test]
fn the_llm_explains_the_change() {
    use emoedge::llm::{bundled_gguf, session::Llm};
    let dir = common::scratch("video-llm");
    let frames = neutral_and_happy(12, false);
    let path = dir.join("change.y4m");
    write_y4m(&path, &frames);
    let (c, _) = analyze(&pipeline(), &path, Pick::Every(1));
    assert_eq!(c.timelines.len(), 1, "the tracker follows the face across the cut");
    let timeline = &c.timelines[0];
    let gguf = bundled_gguf().expect("the SmolLM2 GGUF is missing: run `bash .ci/setup`");
    let llm = Llm::load(&gguf, Precision::Int8).expect("loading the LLM");
    let mut streamed = String::new();
    let text = emoedge::explain::explain_dynamics(&llm, timeline, 0.5, c.smoothing, None, |t| streamed.push_str(t))
        .expect("explaining");
    println!("{text}");
    assert_eq!(streamed.trim(), text, "the stream and the result agree");
    assert!(text.starts_with("At first the person looks neutral; from 1."), "{text}");
    let (_, reason) = text.split_once("because").expect("a reason");
    let reason = reason.to_lowercase();
    assert!(["smil", "lip corner", "cheek", "mouth"].iter().any(|w| reason.contains(w)), "no happy cue: {text}");
    assert!(!["sad", "anger", "angry", "fear", "afraid", "disgust"].iter().any(|w| reason.contains(w)), "{text}");
}
