//! A clip's timeline as a picture (`--plot`): per track, the smoothed
//! emotion probabilities over time with the label's segments as a band above
//! them, and the AU cue intensities below. plotters draws the lines; the text
//! is embedded-graphics' mono font, as in the bench chart (no font files).

use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, ascii::FONT_7X13_BOLD, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    text::{Baseline, Text},
};
use image::RgbImage;
use plotters::prelude::*;

use crate::{clip::ClipAnalysis, heads::Emotion, prior::ActionUnit, sink::annotate::Canvas, sink::terminal::ACTIVE_AU};

const WIDTH: u32 = 1200;
const LEFT: i32 = 50;
const RIGHT: i32 = 1010;
const HEADER: i32 = 26;
const BAND: i32 = 12;
const PANEL: i32 = 150;
const GAP: i32 = 22;
const TRACK: i32 = HEADER + BAND + PANEL + GAP + PANEL + 30;

/// A colour per emotion, the usual associations (happiness yellow, sadness blue...).
fn emotion_colour(e: Emotion) -> RGBColor {
    match e {
        Emotion::Neutral => RGBColor(140, 140, 140),
        Emotion::Happiness => RGBColor(240, 180, 0),
        Emotion::Sadness => RGBColor(40, 90, 200),
        Emotion::Surprise => RGBColor(230, 110, 200),
        Emotion::Fear => RGBColor(120, 50, 170),
        Emotion::Disgust => RGBColor(60, 150, 60),
        Emotion::Anger => RGBColor(210, 40, 40),
    }
}

/// Eleven distinguishable colours for the AUs (Tableau's palette, and one more).
const AU_COLOURS: [RGBColor; 11] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
];

/// A tick spacing that gives at most about ten ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 10.0)
        .unwrap_or(1800.0)
}

/// Draws the timeline of every track; `None` when the clip had no face.
pub fn draw(clip: &ClipAnalysis) -> Option<RgbImage> {
    if clip.timelines.is_empty() {
        return None;
    }
    let t0 = clip.timelines.iter().map(|t| t.first_t()).fold(f64::MAX, f64::min);
    let t1 = clip.timelines.iter().map(|t| t.last_t()).fold(f64::MIN, f64::max).max(t0 + 1e-3);
    let x = |t: f64| LEFT + ((t - t0) / (t1 - t0) * (RIGHT - LEFT) as f64).round() as i32;
    let height = (TRACK * clip.timelines.len() as i32 + 8) as u32;
    let mut buf = vec![255u8; (WIDTH * height * 3) as usize];
    let step = tick_step(t1 - t0);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, height)).into_drawing_area();
        let grid = RGBColor(228, 228, 228);
        for (k, tl) in clip.timelines.iter().enumerate() {
            let top = k as i32 * TRACK + HEADER;
            let panels = [top + BAND + 4, top + BAND + 4 + PANEL + GAP];
            let y = |panel: i32, v: f32| panel + PANEL - (v.clamp(0.0, 1.0) * PANEL as f32).round() as i32;
            for panel in panels {
                let _ = root
                    .draw(&Rectangle::new([(LEFT, panel), (RIGHT, panel + PANEL)], RGBColor(250, 250, 250).filled()));
                for v in [0.25f32, 0.5, 0.75] {
                    let _ = root.draw(&PathElement::new(vec![(LEFT, y(panel, v)), (RIGHT, y(panel, v))], grid));
                }
                let mut t = (t0 / step).ceil() * step;
                while t <= t1 + 1e-9 {
                    let _ = root.draw(&PathElement::new(vec![(x(t), panel), (x(t), panel + PANEL)], grid));
                    t += step;
                }
                let _ = root.draw(&Rectangle::new([(LEFT, panel), (RIGHT, panel + PANEL)], RGBColor(160, 160, 160)));
            }
            // The label's segments as a coloured band, each running until the next takes over.
            let segments = tl.segments();
            for (i, g) in segments.iter().enumerate() {
                let c = emotion_colour(g.expression);
                let until = segments.get(i + 1).map_or(g.end, |n| n.from);
                let (a, b) = (x(g.from), x(until).max(x(g.from) + 1));
                let _ = root.draw(&Rectangle::new([(a, top), (b, top + BAND)], c.filled()));
            }
            // The active threshold on the AU panel.
            let ya = y(panels[1], ACTIVE_AU);
            let mut xx = LEFT;
            while xx < RIGHT {
                let _ = root.draw(&PathElement::new(vec![(xx, ya), ((xx + 6).min(RIGHT), ya)], RGBColor(90, 90, 90)));
                xx += 12;
            }
            // A line breaks where the track went unseen for a while (more
            // than three of its usual steps between samples).
            let mut steps: Vec<f64> = tl.samples.windows(2).map(|w| w[1].t - w[0].t).collect();
            steps.sort_by(f64::total_cmp);
            let gap = 3.0 * steps.get(steps.len() / 2).copied().unwrap_or(1.0);
            let series = |value: &dyn Fn(&crate::timeline::Sample) -> f32, panel: i32| -> Vec<Vec<(i32, i32)>> {
                let mut runs: Vec<Vec<(i32, i32)>> = vec![Vec::new()];
                let mut last: Option<f64> = None;
                for s in &tl.samples {
                    if last.is_some_and(|l| s.t - l > gap) {
                        runs.push(Vec::new());
                    }
                    last = Some(s.t);
                    if let Some(run) = runs.last_mut() {
                        run.push((x(s.t), y(panel, value(s))));
                    }
                }
                runs
            };
            for e in Emotion::ALL {
                for run in series(&|s| s.smoothed.get(e), panels[0]) {
                    let style = ShapeStyle::from(emotion_colour(e)).stroke_width(2);
                    let _ = root.draw(&PathElement::new(run, style));
                }
            }
            for (i, colour) in AU_COLOURS.iter().enumerate() {
                for run in series(&|s| s.action_units[i], panels[1]) {
                    let _ = root.draw(&PathElement::new(run, *colour));
                }
            }
            // Legend swatches.
            for (i, e) in Emotion::ALL.iter().enumerate() {
                let ly = panels[0] + 4 + i as i32 * 14;
                let _ = root
                    .draw(&Rectangle::new([(RIGHT + 12, ly + 2), (RIGHT + 26, ly + 8)], emotion_colour(*e).filled()));
            }
            for (i, c) in AU_COLOURS.iter().enumerate() {
                let ly = panels[1] + 2 + i as i32 * 12;
                let _ = root.draw(&Rectangle::new([(RIGHT + 12, ly + 2), (RIGHT + 26, ly + 7)], c.filled()));
            }
        }
        let _ = root.present();
    }
    let mut img = RgbImage::from_raw(WIDTH, height, buf)?;
    let mut canvas = Canvas(&mut img);
    let black = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let gray = MonoTextStyle::new(&FONT_6X10, Rgb888::new(100, 100, 100));
    let bold = MonoTextStyle::new(&FONT_7X13_BOLD, Rgb888::BLACK);
    let text = |canvas: &mut Canvas, s: &str, px: i32, py: i32, style: MonoTextStyle<Rgb888>| {
        let _ = Text::with_baseline(s, Point::new(px, py), style, Baseline::Top).draw(canvas);
    };
    for (k, tl) in clip.timelines.iter().enumerate() {
        let top = k as i32 * TRACK + HEADER;
        let panels = [top + BAND + 4, top + BAND + 4 + PANEL + GAP];
        let label = tl
            .clip_label(clip.min_confidence)
            .map_or(String::new(), |l| format!("{} {:.0}% over the clip", l.expression, l.confidence * 100.0));
        let title = format!("track {}  {:.1}-{:.1} s  {}  ({})", tl.id, tl.first_t(), tl.last_t(), label, clip.source);
        text(&mut canvas, &title, LEFT, top - 18, bold);
        text(&mut canvas, "emotion (smoothed)", LEFT + 4, panels[0] + 3, gray);
        text(&mut canvas, &format!("AU cues (dashed: active at {ACTIVE_AU})"), LEFT + 4, panels[1] + 3, gray);
        for panel in panels {
            for v in [0.0f32, 0.5, 1.0] {
                let py = panel + PANEL - (v * PANEL as f32) as i32 - 5;
                text(&mut canvas, &format!("{v:.1}"), LEFT - 24, py, gray);
            }
        }
        let mut t = (t0 / step).ceil() * step;
        while t <= t1 + 1e-9 {
            let s = if step < 1.0 { format!("{t:.1}") } else { format!("{t:.0}") };
            text(&mut canvas, &s, x(t) - 3 * s.len() as i32, panels[1] + PANEL + 4, gray);
            t += step;
        }
        text(&mut canvas, "s", RIGHT + 4, panels[1] + PANEL + 4, gray);
        for (i, e) in Emotion::ALL.iter().enumerate() {
            text(&mut canvas, e.as_str(), RIGHT + 30, panels[0] + 4 + i as i32 * 14, black);
        }
        for (i, au) in ActionUnit::ALL.iter().enumerate() {
            let name = format!("AU{} {}", au.number(), au.name());
            let name: String = name.chars().take(27).collect();
            text(&mut canvas, &name, RIGHT + 30, panels[1] + 1 + i as i32 * 12, black);
        }
    }
    Some(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_readable() {
        assert_eq!(tick_step(3.0), 0.5);
        assert_eq!(tick_step(10.0), 1.0);
        assert_eq!(tick_step(95.0), 10.0);
    }
}
