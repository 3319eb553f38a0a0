//! Camera buffers into [`Frame`]s: packed YUYV 4:2:2 and MJPEG, the two
//! formats nearly every V4L2 webcam offers.
//!
//! Each conversion reads the driver's buffer once and writes the RGB frame
//! once, so a memory-mapped capture buffer is never copied on the way in.
//! The inverse, [`rgb_to_yuyv`], records photos as a camera stream (tests,
//! the recorded source of the daemon, the benchmark's camera loop).

use std::time::Duration;

use image::{imageops, Rgb, RgbImage};

use super::{decode_image, Frame, SourceError};

/// What a camera delivers, as V4L2 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V: two pixels in four bytes.
    Yuyv,
    /// One JPEG picture per buffer.
    Mjpeg,
}

impl PixelFormat {
    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("a {width}×{height} YUYV frame needs {needed} bytes (stride {stride}), the buffer holds {got}")]
    Short { width: u32, height: u32, stride: usize, needed: usize, got: usize },
    #[error("YUYV needs an even width and a non-zero size, not {width}×{height}")]
    BadSize { width: u32, height: u32 },
    #[error(transparent)]
    Jpeg(#[from] SourceError),
}

/// BT.601 limited-range YUV to RGB in 8.8 fixed point, as webcams encode it.
#[inline]
pub(crate) fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let (d, e) = (u as i32 - 128, v as i32 - 128);
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clip(c + 409 * e), clip(c - 100 * d - 208 * e), clip(c + 516 * d)]
}

/// Converts one YUYV buffer (`stride` bytes a row; 0 means packed) into an
/// RGB frame taken at `timestamp`. `out` is reused when it has the right size.
pub fn yuyv_to_frame(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    timestamp: Duration,
    out: Option<RgbImage>,
) -> Result<Frame, BufferError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) {
        return Err(BufferError::BadSize { width, height });
    }
    let row = width as usize * 2;
    let stride = if stride == 0 { row } else { stride };
    let needed = stride * (height as usize - 1) + row;
    if stride < row || data.len() < needed {
        return Err(BufferError::Short { width, height, stride, needed, got: data.len() });
    }
    let mut image = match out {
        Some(img) if img.dimensions() == (width, height) => img,
        _ => RgbImage::new(width, height),
    };
    let rgb: &mut [u8] = &mut image;
    for (y, dst) in rgb.chunks_exact_mut(width as usize * 3).enumerate() {
        let src = &data[y * stride..y * stride + row];
        for (px, out) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (y0, u, y1, v) = (px[0], px[1], px[2], px[3]);
            out[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
            out[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
        }
    }
    Ok(Frame { image, timestamp })
}

/// Decodes one MJPEG buffer straight from the driver's memory.
pub fn mjpeg_to_frame(data: &[u8], timestamp: Duration) -> Result<Frame, BufferError> {
    let mut frame = decode_image(data, "the camera's MJPEG frame")?;
    frame.timestamp = timestamp;
    Ok(frame)
}

/// A buffer in `format` as a frame.
pub fn buffer_to_frame(
    format: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    timestamp: Duration,
) -> Result<Frame, BufferError> {
    match format {
        PixelFormat::Yuyv => yuyv_to_frame(data, width, height, stride, timestamp, None),
        PixelFormat::Mjpeg => mjpeg_to_frame(data, timestamp),
    }
}

/// An RGB picture as packed YUYV (BT.601 limited range), each chroma pair the
/// mean of its two pixels. The width must be even.
pub fn rgb_to_yuyv(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(image.width() as usize * image.height() as usize * 2);
    for row in image.as_raw().chunks_exact(image.width() as usize * 3) {
        for pair in row.chunks_exact(6) {
            let (a, b) = (&pair[..3], &pair[3..]);
            let (r, g, bl) =
                ((a[0] as i32 + b[0] as i32) / 2, (a[1] as i32 + b[1] as i32) / 2, (a[2] as i32 + b[2] as i32) / 2);
            let (u, v) = chroma(r, g, bl);
            out.extend_from_slice(&[luma(a), u, luma(b), v]);
        }
    }
    out
}

/// BT.601 limited-range luma of an RGB pixel.
#[inline]
pub(crate) fn luma(p: &[u8]) -> u8 {
    (((66 * p[0] as i32 + 129 * p[1] as i32 + 25 * p[2] as i32 + 128) >> 8) + 16) as u8
}

/// BT.601 limited-range chroma (U, V) of an RGB value (a mean of pixels).
#[inline]
pub(crate) fn chroma(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
    let v = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
    (u, v)
}

/// `photo` scaled to fit a `width`×`height` view, centred on dark gray, as a
/// camera would frame it.
pub fn letterbox(photo: &RgbImage, width: u32, height: u32) -> RgbImage {
    let k = (width as f32 / photo.width().max(1) as f32).min(height as f32 / photo.height().max(1) as f32);
    let (w, h) = (((photo.width() as f32 * k) as u32).max(1), ((photo.height() as f32 * k) as u32).max(1));
    let scaled = imageops::resize(photo, w, h, imageops::FilterType::Triangle);
    let mut view = RgbImage::from_pixel(width, height, Rgb([40, 40, 40]));
    imageops::overlay(&mut view, &scaled, ((width - w) / 2) as i64, ((height - h) / 2) as i64);
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_round_trip_stays_close() {
        // A gradient with colour in it: every channel moves across the picture.
        let img = RgbImage::from_fn(64, 8, |x, y| Rgb([(x * 4) as u8, (y * 30) as u8, 255 - (x * 4) as u8]));
        let yuyv = rgb_to_yuyv(&img);
        assert_eq!(yuyv.len(), 64 * 8 * 2);
        let back = yuyv_to_frame(&yuyv, 64, 8, 0, Duration::ZERO, None).unwrap();
        // 4:2:2 halves the chroma: neighbours share it, so allow a few levels.
        let worst = img.as_raw().iter().zip(back.image.as_raw()).map(|(a, b)| (*a as i32 - *b as i32).abs()).max();
        assert!(worst.unwrap() <= 12, "worst channel error {worst:?}");
    }

    #[test]
    fn yuyv_known_values() {
        // Limited-range black, white and pure red as a capture card sends them.
        let px = [16, 128, 235, 128];
        let f = yuyv_to_frame(&px, 2, 1, 0, Duration::ZERO, None).unwrap();
        assert_eq!(f.image.as_raw().as_slice(), &[0, 0, 0, 255, 255, 255]);
        let red = [81, 90, 81, 240];
        let f = yuyv_to_frame(&red, 2, 1, 0, Duration::ZERO, None).unwrap();
        let p = f.image.get_pixel(0, 0).0;
        assert!(p[0] > 250 && p[1] < 5 && p[2] < 5, "{p:?}");
    }

    #[test]
    fn strided_and_short_buffers() {
        // Rows padded to 8 bytes: the padding must be skipped.
        let data = [16, 128, 235, 128, 9, 9, 9, 9, 235, 128, 16, 128];
        let f = yuyv_to_frame(&data, 2, 2, 8, Duration::ZERO, None).unwrap();
        assert_eq!(f.image.as_raw().as_slice(), &[0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]);
        assert!(matches!(yuyv_to_frame(&data[..10], 2, 2, 8, Duration::ZERO, None), Err(BufferError::Short { .. })));
        assert!(matches!(yuyv_to_frame(&data, 3, 1, 0, Duration::ZERO, None), Err(BufferError::BadSize { .. })));
        assert!(mjpeg_to_frame(&[0xFF, 0xD8, 1, 2, 3], Duration::ZERO).is_err());
    }
}
