//! The benchmark as a picture: one bar per compared row, how many times
//! better emoedge is than its reference, on a log scale around parity.
//!
//! plotters draws the bars, the grid and the target marks into an RGB buffer.
//! Its text needs a system font through font-kit (fontconfig, freetype), so
//! the labels are drawn with embedded-graphics' built-in mono font instead,
//! the same one the annotated pictures use: no font files, no C libraries.

use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, ascii::FONT_7X13_BOLD, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    text::{Baseline, Text},
};
use image::RgbImage;
use plotters::prelude::*;

use super::{BenchRow, Target};
use crate::sink::annotate::Canvas;

const WIDTH: u32 = 1280;
const ROW: u32 = 18;
const TOP: u32 = 44;
const LABEL: u32 = 560;
const PLOT: (u32, u32) = (LABEL + 10, WIDTH - 90);
/// The axis spans 1/8× to 8×.
const SPAN: f64 = 3.0;

/// Whether a bigger figure is better for this unit.
fn higher_is_better(unit: &str) -> bool {
    !matches!(unit, "ms" | "s" | "MiB")
}

/// "Times better than the reference": the ratio, or its inverse for costs.
fn advantage(row: &BenchRow) -> Option<f64> {
    let r = row.ratio.filter(|r| *r > 0.0 && r.is_finite())?;
    Some(if higher_is_better(row.unit) { r } else { 1.0 / r })
}

/// The target as an advantage, for the rows whose target is a ratio.
fn target_advantage(row: &BenchRow) -> Option<f64> {
    let v = match row.target? {
        Target::RatioAtLeast(v) | Target::RatioAtMost(v) => v,
        _ => return None,
    };
    Some(if higher_is_better(row.unit) { v } else { 1.0 / v })
}

fn x_of(adv: f64) -> i32 {
    let t = (adv.log2().clamp(-SPAN, SPAN) + SPAN) / (2.0 * SPAN);
    (PLOT.0 as f64 + t * (PLOT.1 - PLOT.0) as f64) as i32
}

/// Draws the rows that have a reference. `None` when there are none.
pub fn draw(rows: &[BenchRow], title: &str) -> Option<RgbImage> {
    let rows: Vec<(&BenchRow, f64)> = rows.iter().filter_map(|r| advantage(r).map(|a| (r, a))).collect();
    if rows.is_empty() {
        return None;
    }
    let height = TOP + ROW * rows.len() as u32 + 30;
    let mut buf = vec![255u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, height)).into_drawing_area();
        let grid = RGBColor(225, 225, 225);
        for k in -3..=3 {
            let x = x_of(2f64.powi(k));
            let color = if k == 0 { BLACK } else { grid };
            let _ = root.draw(&PathElement::new(vec![(x, TOP as i32 - 6), (x, height as i32 - 26)], color));
        }
        for (i, (row, adv)) in rows.iter().enumerate() {
            let y = (TOP + ROW * i as u32) as i32;
            if i % 2 == 0 {
                let _ = root
                    .draw(&Rectangle::new([(0, y), (WIDTH as i32, y + ROW as i32)], RGBColor(246, 246, 246).filled()));
            }
            let (x0, x1) = (x_of(1.0), x_of(*adv));
            let color = if *adv >= 1.0 { RGBColor(60, 160, 90) } else { RGBColor(215, 90, 70) };
            let _ = root.draw(&Rectangle::new([(x0.min(x1), y + 3), (x0.max(x1), y + ROW as i32 - 3)], color.filled()));
            if let Some(t) = target_advantage(row) {
                let xt = x_of(t);
                let _ = root.draw(&Rectangle::new([(xt - 1, y + 1), (xt + 1, y + ROW as i32 - 1)], BLUE.filled()));
            }
        }
        let _ = root.present();
    }
    let mut img = RgbImage::from_raw(WIDTH, height, buf)?;
    let mut canvas = Canvas(&mut img);
    let black = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    let gray = MonoTextStyle::new(&FONT_6X10, Rgb888::new(110, 110, 110));
    let _ = Text::with_baseline(
        title,
        Point::new(10, 8),
        MonoTextStyle::new(&FONT_7X13_BOLD, Rgb888::BLACK),
        Baseline::Top,
    )
    .draw(&mut canvas);
    let legend = "bar: times better than the reference (log scale; green = ahead, red = behind); blue tick: the target";
    let _ = Text::with_baseline(legend, Point::new(10, 24), gray, Baseline::Top).draw(&mut canvas);
    for (i, (row, adv)) in rows.iter().enumerate() {
        let y = (TOP + ROW * i as u32 + 4) as i32;
        let label: String = row.metric.chars().take((LABEL / 6) as usize - 1).collect();
        let _ = Text::with_baseline(&label, Point::new(6, y), black, Baseline::Top).draw(&mut canvas);
        let _ = Text::with_baseline(&format!("{adv:.2}x"), Point::new(PLOT.1 as i32 + 8, y), black, Baseline::Top)
            .draw(&mut canvas);
    }
    let axis_y = (TOP + ROW * rows.len() as u32 + 8) as i32;
    for k in -3..=3 {
        let label = if k < 0 { format!("1/{}x", 1 << -k) } else { format!("{}x", 1 << k) };
        let x = x_of(2f64.powi(k)) - 3 * label.len() as i32;
        let _ = Text::with_baseline(&label, Point::new(x, axis_y), gray, Baseline::Top).draw(&mut canvas);
    }
    Some(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_and_rates_point_the_same_way() {
        let faster = BenchRow::new("t".into(), 5.0, Some(10.0), "ms");
        let quicker = BenchRow::new("r".into(), 20.0, Some(10.0), "tok/s");
        assert_eq!(advantage(&faster), Some(2.0));
        assert_eq!(advantage(&quicker), Some(2.0));
        assert!(x_of(2.0) > x_of(1.0) && x_of(0.5) < x_of(1.0));
        let img = draw(&[faster, quicker], "test").unwrap();
        assert_eq!(img.width(), WIDTH);
    }
}
