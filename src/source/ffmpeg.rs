//! Coded video (mp4, mkv, avi, webm, ...) through the ffmpeg libraries, via
//! `ffmpeg-next`: demux, decode, and convert each kept frame with swscale.
//! Any pixel format swscale knows (10-bit, 4:2:2, ...) is converted.
//!
//! swscale converts into a frame of its own and the rows are then copied
//! into the RGB frame: its SIMD paths write (and read) past the end of a row
//! unless the buffers are padded and aligned its way, which an exact-size
//! RGB picture is not. (Handing it our buffer directly corrupted the heap on
//! a 6-pixel-wide clip; the copy costs ~0.1 ms at 640×480.)

use std::{path::Path, sync::Once, time::Duration};

use ffmpeg_next as ff;
use image::RgbImage;

use super::{
    video::{ClipInfo, Picker, Step, VideoError},
    Frame, MAX_SIDE,
};

/// ffmpeg logs to stderr on its own; we report its errors ourselves.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(if log::log_enabled!(log::Level::Debug) {
            ff::util::log::Level::Warning
        } else {
            ff::util::log::Level::Quiet
        });
    });
}

pub(crate) struct Decoder {
    pub info: ClipInfo,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    scaler: Option<(ff::format::Pixel, u32, u32, ff::software::scaling::Context)>,
    /// swscale's output, reused from frame to frame.
    rgb: ff::frame::Video,
    stream: usize,
    time_base: f64,
    start: i64,
    decoded: ff::frame::Video,
    /// The decoder has been sent the end of the stream.
    draining: bool,
    name: String,
}

impl Decoder {
    pub fn open(path: &Path, name: &str) -> Result<Decoder, VideoError> {
        init();
        let invalid = |e: ff::Error| VideoError::Invalid { path: name.into(), message: e.to_string() };
        let input = ff::format::input(&path).map_err(invalid)?;
        let Some(stream) = input.streams().best(ff::media::Type::Video) else {
            let kinds: Vec<String> =
                input.streams().map(|s| format!("{:?}", s.parameters().medium()).to_lowercase()).collect();
            let streams = if kinds.is_empty() { "no streams at all".to_string() } else { kinds.join(", ") };
            return Err(VideoError::NoVideo { path: name.into(), streams });
        };
        let index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 { f64::from(tb) } else { 0.0 };
        let start = if stream.start_time() == ff::ffi::AV_NOPTS_VALUE { 0 } else { stream.start_time() };
        let rate = stream.avg_frame_rate();
        let fps = if rate.denominator() != 0 && rate.numerator() > 0 { f64::from(rate) } else { 25.0 };
        let frames = (stream.frames() > 0).then_some(stream.frames() as u64).or_else(|| {
            (stream.duration() > 0 && time_base > 0.0)
                .then(|| (stream.duration() as f64 * time_base * fps).round() as u64)
        });
        let context = ff::codec::context::Context::from_parameters(stream.parameters()).map_err(invalid)?;
        let decoder = context.decoder().video().map_err(|e| VideoError::Unsupported {
            path: name.into(),
            message: format!("its video codec cannot be decoded by this ffmpeg ({e})"),
        })?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 {
            return Err(VideoError::Invalid {
                path: name.into(),
                message: "its video stream has no frame size".into(),
            });
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(VideoError::TooLarge { path: name.into(), width: width as u64, height: height as u64 });
        }
        let codec = decoder.codec().map(|c| c.name().to_string()).unwrap_or_else(|| "video".into());
        let info = ClipInfo {
            width,
            height,
            fps,
            frames,
            format: format!("{codec} {:?} in {}", decoder.format(), input.format().name()).to_lowercase(),
        };
        Ok(Decoder {
            info,
            input,
            decoder,
            scaler: None,
            rgb: ff::frame::Video::empty(),
            stream: index,
            time_base,
            start,
            decoded: ff::frame::Video::empty(),
            draining: false,
            name: name.into(),
        })
    }

    /// Decodes up to the next frame and converts it if `picker` keeps it.
    pub fn next(&mut self, index: u64, picker: &mut Picker) -> Result<Step, VideoError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => return self.take(index, picker),
                Err(ff::Error::Eof) => return Ok(Step::End),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(self.frame_error(index, e)),
            }
            if self.draining {
                return Ok(Step::End);
            }
            // Feed the decoder the next packet of our stream.
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() != self.stream => continue,
                Ok(()) => {
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        // A damaged packet: say so, and go on with the next
                        // (the codec recovers at the next key frame).
                        log::warn!("{}: a packet near frame {index} is damaged: {e}", self.name);
                    }
                }
                Err(ff::Error::Eof) => {
                    self.draining = true;
                    let _ = self.decoder.send_eof();
                }
                Err(e) => {
                    // A read error mid-file (a cut file ends this way): what
                    // was decoded stands; the caller learns how far it got.
                    log::warn!("{}: reading stopped after frame {index}: {e}", self.name);
                    self.draining = true;
                    let _ = self.decoder.send_eof();
                }
            }
        }
    }

    fn frame_error(&self, index: u64, e: ff::Error) -> VideoError {
        VideoError::Frame { path: self.name.clone(), frame: index, message: e.to_string() }
    }

    fn take(&mut self, index: u64, picker: &mut Picker) -> Result<Step, VideoError> {
        let ts = self.decoded.timestamp().or(self.decoded.pts());
        let t = match ts {
            Some(ts) if self.time_base > 0.0 => ((ts - self.start) as f64 * self.time_base).max(0.0),
            _ => index as f64 / self.info.fps.max(1e-3),
        };
        let t = Duration::from_secs_f64(t);
        if !picker.keep(index, t) {
            return Ok(Step::Skipped);
        }
        let (format, w, h) = (self.decoded.format(), self.decoded.width(), self.decoded.height());
        if (w, h) != (self.info.width, self.info.height) {
            return Err(VideoError::Frame {
                path: self.name.clone(),
                frame: index,
                message: format!("it is {w}×{h}, the stream began at {}×{}", self.info.width, self.info.height),
            });
        }
        if !matches!(&self.scaler, Some((f, sw, sh, _)) if (*f, *sw, *sh) == (format, w, h)) {
            let ctx = ff::software::scaling::Context::get(
                format,
                w,
                h,
                ff::format::Pixel::RGB24,
                w,
                h,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(|e| VideoError::Unsupported {
                path: self.name.clone(),
                message: format!("its pixel format {format:?} cannot be converted to RGB ({e})"),
            })?;
            self.scaler = Some((format, w, h, ctx));
        }
        let Some((_, _, _, scaler)) = &mut self.scaler else { unreachable!("the scaler was just set") };
        scaler.run(&self.decoded, &mut self.rgb).map_err(|e| VideoError::Frame {
            path: self.name.clone(),
            frame: index,
            message: format!("converting it to RGB: {e}"),
        })?;
        let stride = self.rgb.stride(0);
        let row = w as usize * 3;
        let data = self.rgb.data(0);
        let mut image = RgbImage::new(w, h);
        for (y, dst) in image.chunks_exact_mut(row).enumerate() {
            dst.copy_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(Step::Frame(Frame { image, timestamp: t }))
    }
}
