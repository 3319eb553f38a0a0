//! The kiosk screen: the camera frame with each tracked face's box, label and
//! AU bars, a status line, and the latest explanation in words underneath.
//! It renders into an RGB picture of the display's size; the daemon puts that
//! on the framebuffer or saves it as a PNG snapshot.

use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, ascii::FONT_9X15, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    text::{Baseline, Text},
};
use image::{imageops, Rgb, RgbImage};

use super::annotate::{draw_face, Canvas};
use crate::{source::Frame, track::Track};

/// Height of the text panel under the picture, in pixels.
const PANEL: u32 = 96;
const STATUS: u32 = 14;

/// What the screen shows at one moment.
pub struct KioskView<'a> {
    pub frame: &'a Frame,
    /// The tracks seen in `frame`.
    pub tracks: &'a [Track],
    /// The latest explanation: which face, and the text.
    pub explanation: Option<(u32, &'a str)>,
    /// One line: frames/s, camera state, and so on.
    pub status: &'a str,
    /// What the panel says while there is no explanation to show.
    pub note: &'a str,
}

/// Renders `view` on a `width`×`height` screen.
pub fn render(view: &KioskView, width: u32, height: u32) -> RgbImage {
    let (width, height) = (width.max(64), height.max(PANEL + STATUS + 32));
    let mut screen = RgbImage::from_pixel(width, height, Rgb([12, 12, 16]));
    // The picture, scaled to fit the space above the panel.
    let (fw, fh) = (view.frame.width().max(1), view.frame.height().max(1));
    let area_h = height - PANEL - STATUS;
    let k = (width as f32 / fw as f32).min(area_h as f32 / fh as f32);
    let (w, h) = (((fw as f32 * k) as u32).max(1), ((fh as f32 * k) as u32).max(1));
    let scaled = imageops::resize(&view.frame.image, w, h, imageops::FilterType::Triangle);
    let at = Point::new(((width - w) / 2) as i32, STATUS as i32);
    imageops::replace(&mut screen, &scaled, at.x as i64, at.y as i64);

    let mut canvas = Canvas(&mut screen);
    for t in view.tracks {
        draw_face(&mut canvas, &t.face, (t.label, t.smoothed.get(t.label)), k, at);
    }
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::new(200, 200, 200));
    let _ = Text::with_baseline(view.status, Point::new(4, 2), small, Baseline::Top).draw(&mut canvas);

    // The explanation, wrapped to the panel's width.
    let font = MonoTextStyle::new(&FONT_9X15, Rgb888::WHITE);
    let top = (height - PANEL) as i32 + 4;
    let text = match view.explanation {
        Some((id, text)) => format!("#{id}: {text}"),
        None if view.tracks.is_empty() => "No face in view.".to_string(),
        None => view.note.to_string(),
    };
    let columns = ((width as usize).saturating_sub(8) / 9).max(8);
    for (i, line) in wrap(&text, columns).iter().take((PANEL as usize - 8) / 16).enumerate() {
        let _ = Text::with_baseline(line, Point::new(4, top + i as i32 * 16), font, Baseline::Top).draw(&mut canvas);
    }
    screen
}

/// Greedy word wrap to `columns` characters; over-long words are cut.
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let word: String = word.chars().take(columns).collect();
        let last = lines.last_mut().expect("lines starts non-empty");
        if last.is_empty() {
            *last = word;
        } else if last.chars().count() + 1 + word.chars().count() <= columns {
            last.push(' ');
            last.push_str(&word);
        } else {
            lines.push(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        let lines = wrap("the lip corners are pulled up and the cheeks are raised", 16);
        assert!(lines.iter().all(|l| l.chars().count() <= 16), "{lines:?}");
        assert_eq!(lines.join(" "), "the lip corners are pulled up and the cheeks are raised");
        assert_eq!(wrap("", 10), vec![String::new()]);
        assert_eq!(wrap("abcdefghijkl", 5), vec!["abcde".to_string()]);
    }

    #[test]
    fn renders_any_size_without_a_face() {
        let frame = Frame::from_rgb(RgbImage::new(640, 480));
        let view = KioskView { frame: &frame, tracks: &[], explanation: None, status: "0 fps", note: "" };
        for (w, h) in [(800, 480), (320, 240), (1, 1)] {
            let img = render(&view, w, h);
            assert!(img.width() >= w && img.height() >= h);
        }
    }
}
