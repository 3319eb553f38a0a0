//! An annotated picture: boxes, landmarks, the label and AU bars, drawn with
//! `embedded-graphics` (the same drawing code the kiosk display uses).

use std::convert::Infallible;

use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, ascii::FONT_9X15_BOLD, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use image::RgbImage;

use crate::{analysis::Analysis, heads::Emotion, prior::ActionUnit, source::Frame};

/// The annotated picture's longest side. Larger pictures are scaled down so
/// the text stays legible.
const MAX_SIDE: u32 = 1024;

/// An `RgbImage` as an embedded-graphics draw target.
pub struct Canvas<'a>(pub &'a mut RgbImage);

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        let (w, h) = (self.0.width() as i32, self.0.height() as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                self.0.put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// A copy of the frame, scaled down so its longest side is at most
/// [`MAX_SIDE`], and the scale applied.
fn scaled_copy(frame: &Frame) -> (RgbImage, f32) {
    let long = frame.width().max(frame.height());
    if long > MAX_SIDE {
        let k = MAX_SIDE as f32 / long as f32;
        let (w, h) =
            (((frame.width() as f32 * k).round() as u32).max(1), ((frame.height() as f32 * k).round() as u32).max(1));
        (image::imageops::resize(&frame.image, w, h, image::imageops::FilterType::Triangle), k)
    } else {
        (frame.image.clone(), 1.0)
    }
}

/// Draws the analysis over a copy of the frame.
pub fn draw(frame: &Frame, analysis: &Analysis) -> RgbImage {
    let (mut img, k) = scaled_copy(frame);
    let mut canvas = Canvas(&mut img);
    for face in &analysis.faces {
        draw_face(&mut canvas, face, face.emotions.top(), k, Point::zero());
    }
    img
}

/// One frame of an annotated clip: each track's face with its ID and
/// smoothed label, and `caption` (the time) in the corner.
pub fn draw_tracks(frame: &Frame, tracks: &[&crate::track::Track], caption: &str) -> RgbImage {
    let (mut img, k) = scaled_copy(frame);
    let mut canvas = Canvas(&mut img);
    for t in tracks {
        draw_face(&mut canvas, &t.face, (t.label, t.smoothed.get(t.label)), k, Point::zero());
    }
    let font = MonoTextStyle::new(&FONT_9X15_BOLD, Rgb888::WHITE);
    let _ = Rectangle::new(Point::new(0, 0), Size::new(caption.len() as u32 * 9 + 6, 17))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(20, 20, 20)))
        .draw(&mut canvas);
    let _ = Text::with_baseline(caption, Point::new(3, 1), font, Baseline::Top).draw(&mut canvas);
    img
}

/// Draws one face's box, mesh, `label` (an emotion and its probability) and
/// AU bars, its coordinates scaled by `k` and shifted by `at`.
pub fn draw_face(canvas: &mut Canvas, face: &crate::analysis::Face, label: (Emotion, f32), k: f32, at: Point) {
    let green = Rgb888::new(40, 220, 90);
    let b = &face.bbox;
    let (x0, y0, x1, y1) =
        ((b.x0 * k) as i32 + at.x, (b.y0 * k) as i32 + at.y, (b.x1 * k) as i32 + at.x, (b.y1 * k) as i32 + at.y);
    let stroke = (((x1 - x0) / 100).max(1)) as u32;
    let _ = Rectangle::with_corners(Point::new(x0, y0), Point::new(x1, y1))
        .into_styled(PrimitiveStyle::with_stroke(green, stroke))
        .draw(canvas);
    for p in &face.landmarks.points {
        let _ = Pixel(Point::new((p[0] * k) as i32, (p[1] * k) as i32) + at, Rgb888::new(255, 255, 80)).draw(canvas);
    }

    // The label above the box, on a dark band so it reads on any background.
    let (top, prob) = label;
    let a = &face.attributes;
    let label = format!("#{} {} {:.0}%  {:.0}y {}", face.id, top, prob * 100.0, a.age, a.gender.as_str());
    let font = MonoTextStyle::new(&FONT_9X15_BOLD, Rgb888::WHITE);
    let ly = (y0 - 17).max(0);
    let _ = Rectangle::new(Point::new(x0, ly), Size::new(label.len() as u32 * 9 + 4, 17))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(20, 20, 20)))
        .draw(canvas);
    let _ = Text::with_baseline(&label, Point::new(x0 + 2, ly + 1), font, Baseline::Top).draw(canvas);

    // AU bars to the right of the box: one row per AU, bar length = intensity.
    let small = MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE);
    let (bx, bar_w) = (x1 + 4, 60);
    for (i, (au, v)) in ActionUnit::ALL.iter().zip(face.prior.action_units.iter()).enumerate() {
        let y = y0 + i as i32 * 12;
        let _ = Rectangle::new(Point::new(bx, y), Size::new(34 + bar_w, 11))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::new(20, 20, 20)))
            .draw(canvas);
        let _ = Text::with_baseline(&format!("AU{}", au.number()), Point::new(bx + 1, y + 1), small, Baseline::Top)
            .draw(canvas);
        let len = (v.clamp(0.0, 1.0) * bar_w as f32).round() as u32;
        let colour =
            if *v >= crate::sink::terminal::ACTIVE_AU { Rgb888::new(255, 140, 0) } else { Rgb888::new(120, 120, 120) };
        if len > 0 {
            let _ = Rectangle::new(Point::new(bx + 32, y + 2), Size::new(len, 7))
                .into_styled(PrimitiveStyle::with_fill(colour))
                .draw(canvas);
        }
    }
}
