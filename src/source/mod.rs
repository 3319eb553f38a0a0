//! Decoding pictures into the one input every stage reads: an upright RGB8 [`Frame`].
//!
//! EXIF orientation is applied here, so no later stage has to know a phone
//! held sideways. Decoding is bounded: a header that claims a huge picture is
//! refused before any pixel buffer is allocated.

use std::{io::Cursor, path::Path, time::Duration};

use image::{ImageDecoder, ImageReader, Limits, RgbImage};

/// The largest picture side we decode. 16k covers every camera and scan; a
/// larger header is almost always corrupt or hostile.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory a decoder may allocate (a 16k × 16k RGBA picture).
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// One upright picture, RGB8, with the time it was taken within its stream
/// (zero for a still photo).
#[derive(Clone, Debug)]
pub struct Frame {
    pub image: RgbImage,
    pub timestamp: Duration,
}

impl Frame {
    pub fn from_rgb(image: RgbImage) -> Frame {
        Frame { image, timestamp: Duration::ZERO }
    }
    pub fn width(&self) -> u32 {
        self.image.width()
    }
    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is empty: expected a JPEG or PNG picture")]
    Empty { path: String },
    #[error("{path} is not a picture we can read: {message}. Expected a JPEG or PNG file")]
    Decode { path: String, message: String },
    #[error("{path} is a truncated JPEG: it has no end-of-image marker. Copy the file again")]
    Truncated { path: String },
    #[error("{path} claims to be {width}×{height} pixels; the limit is {MAX_SIDE} per side. Scale it down first")]
    TooLarge { path: String, width: u32, height: u32 },
}

/// Reads and decodes a picture file.
pub fn read_image(path: &Path) -> Result<Frame, SourceError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read { path: name.clone(), source })?;
    decode_image(&bytes, &name)
}

/// Decodes a JPEG or PNG held in memory; `name` only labels errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<Frame, SourceError> {
    if bytes.is_empty() {
        return Err(SourceError::Empty { path: name.into() });
    }
    let decode_err = |e: image::ImageError| SourceError::Decode { path: name.into(), message: e.to_string() };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SourceError::Decode { path: name.into(), message: e.to_string() })?;
    // JPEG decoders fill a cut-off picture with gray and carry on; we would
    // rather say the file is cut than analyse half a face. Entropy-coded data
    // stuffs every 0xFF with 0x00, so FF D9 can only be the end marker.
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(SourceError::Truncated { path: name.into() });
        }
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    // Checked before decoding, so a lying header costs nothing.
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(SourceError::TooLarge { path: name.into(), width, height });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(Frame::from_rgb(image.into_rgb8()))
}

pub mod camera;
#[cfg(feature = "ffmpeg")]
pub(crate) mod ffmpeg;
pub mod video;
