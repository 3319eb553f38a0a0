//! Annotated clips out: coded video through ffmpeg (the `ffmpeg` feature),
//! Y4M in pure Rust, or a folder of numbered PNGs.

use std::{
    io::BufWriter,
    path::{Path, PathBuf},
};

use image::RgbImage;

/// Where `--annotate` sends a clip's frames, chosen by the path: a `.y4m`
/// file, a video file ffmpeg can write (`.mp4`, `.mkv`, `.avi`, ...), or a
/// folder (a path without an extension) of `frame-000000.png`, ...
pub enum ClipWriter {
    Y4m(Y4mWriter<BufWriter<std::fs::File>>),
    #[cfg(feature = "ffmpeg")]
    Coded(Box<Encoder>),
    Pngs {
        dir: PathBuf,
        written: u64,
    },
}

impl ClipWriter {
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> anyhow::Result<ClipWriter> {
        use anyhow::Context;
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            None => {
                std::fs::create_dir_all(path).with_context(|| format!("creating the folder {}", path.display()))?;
                Ok(ClipWriter::Pngs { dir: path.to_path_buf(), written: 0 })
            }
            Some("y4m") => {
                let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                Ok(ClipWriter::Y4m(Y4mWriter::new(BufWriter::new(file), width, height, fps)?))
            }
            #[cfg(feature = "ffmpeg")]
            Some(_) => Ok(ClipWriter::Coded(Box::new(
                Encoder::create(path, width, height, fps)
                    .map_err(|e| anyhow::anyhow!("cannot write the video {}: {e}", path.display()))?,
            ))),
            #[cfg(not(feature = "ffmpeg"))]
            Some(other) => anyhow::bail!(
                "cannot write {}: this emoedge was built without the `ffmpeg` feature, so it writes .y4m or a folder of PNGs, not .{other}",
                path.display()
            ),
        }
    }

    pub fn write(&mut self, image: &RgbImage) -> anyhow::Result<()> {
        match self {
            ClipWriter::Y4m(w) => w.write(image)?,
            #[cfg(feature = "ffmpeg")]
            ClipWriter::Coded(e) => e.write(image).map_err(|e| anyhow::anyhow!("encoding a frame: {e}"))?,
            ClipWriter::Pngs { dir, written } => {
                let file = dir.join(format!("frame-{written:06}.png"));
                image.save(&file).map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
                *written += 1;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            ClipWriter::Y4m(w) => {
                w.finish()?;
            }
            #[cfg(feature = "ffmpeg")]
            ClipWriter::Coded(e) => e.finish().map_err(|e| anyhow::anyhow!("finishing the video: {e}"))?,
            ClipWriter::Pngs { .. } => {}
        }
        Ok(())
    }
}

/// RGB into 8-bit 4:2:0 planes (BT.601 limited range, each chroma sample the
/// mean of its 2×2 block), as Y4M `C420jpeg` holds them. Odd sizes round the
/// chroma planes up.
pub fn rgb_to_yuv420(image: &RgbImage) -> Vec<u8> {
    use crate::source::camera::{chroma, luma};
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0u8; w * h + 2 * cw * ch];
    let raw = image.as_raw();
    for (i, p) in raw.chunks_exact(3).enumerate() {
        out[i] = luma(p);
    }
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut s, mut n) = ([0i32; 3], 0);
            for y in (2 * cy)..(2 * cy + 2).min(h) {
                for x in (2 * cx)..(2 * cx + 2).min(w) {
                    let p = &raw[(y * w + x) * 3..][..3];
                    (0..3).for_each(|k| s[k] += p[k] as i32);
                    n += 1;
                }
            }
            let (u, v) = chroma(s[0] / n, s[1] / n, s[2] / n);
            out[w * h + cy * cw + cx] = u;
            out[w * h + cw * ch + cy * cw + cx] = v;
        }
    }
    out
}

/// Writes frames as a Y4M clip (8-bit 4:2:0): the pure-Rust output of
/// `--annotate`, and how the tests make their clips.
pub struct Y4mWriter<W: std::io::Write> {
    out: W,
    size: (u32, u32),
}

impl<W: std::io::Write> Y4mWriter<W> {
    pub fn new(mut out: W, width: u32, height: u32, fps: f64) -> std::io::Result<Y4mWriter<W>> {
        // The rate as a fraction: 30000:1001 for NTSC's 29.97, exact otherwise.
        let (n, d) = if (fps * 1001.0 / 1000.0).fract().abs() < 1e-6 && fps.fract() != 0.0 {
            ((fps * 1001.0).round() as u64, 1001)
        } else {
            ((fps * 1000.0).round() as u64, 1000)
        };
        writeln!(out, "YUV4MPEG2 W{width} H{height} F{n}:{d} Ip A1:1 C420jpeg")?;
        Ok(Y4mWriter { out, size: (width, height) })
    }

    pub fn write(&mut self, image: &RgbImage) -> std::io::Result<()> {
        if image.dimensions() != self.size {
            return Err(std::io::Error::other(format!(
                "a {}×{} frame in a {}×{} clip",
                image.width(),
                image.height(),
                self.size.0,
                self.size.1
            )));
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&rgb_to_yuv420(image))
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes RGB frames as a coded clip (H.264 where the libraries have
/// libx264, else MPEG-4 Part 2), in the container the path's extension names.
#[cfg(feature = "ffmpeg")]
pub struct Encoder {
    output: ffmpeg_next::format::context::Output,
    encoder: ffmpeg_next::encoder::Video,
    scaler: ffmpeg_next::software::scaling::Context,
    /// The picture copied into a frame swscale allocated (it reads past row
    /// ends of unpadded buffers), then its YUV conversion.
    rgb: ffmpeg_next::frame::Video,
    frame: ffmpeg_next::frame::Video,
    size: (u32, u32),
    time_base: ffmpeg_next::Rational,
    stream_time_base: ffmpeg_next::Rational,
    next_pts: i64,
}

#[cfg(feature = "ffmpeg")]
impl Encoder {
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Encoder, ffmpeg_next::Error> {
        crate::source::ffmpeg::init();
        let mut output = ffmpeg_next::format::output(&path)?;
        let global_header = output.format().flags().contains(ffmpeg_next::format::Flags::GLOBAL_HEADER);
        let codec = ffmpeg_next::encoder::find_by_name("libx264")
            .or_else(|| ffmpeg_next::encoder::find(ffmpeg_next::codec::Id::MPEG4))
            .ok_or(ffmpeg_next::Error::EncoderNotFound)?;
        // 4:2:0 needs even sizes; the last odd row or column is dropped.
        let (ew, eh) = (width & !1, height & !1);
        let rate = ffmpeg_next::Rational::new((fps * 1000.0).round().max(1.0) as i32, 1000).reduce();
        let time_base = rate.invert();
        let mut stream = output.add_stream(codec)?;
        let stream_index = stream.index();
        let mut enc = ffmpeg_next::codec::context::Context::new_with_codec(codec).encoder().video()?;
        enc.set_width(ew);
        enc.set_height(eh);
        enc.set_format(ffmpeg_next::format::Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(rate));
        // No B-frames: packets come out in display order, so the mp4 needs no
        // edit list to hide the reordering delay (players differ on those).
        enc.set_max_b_frames(0);
        if global_header {
            enc.set_flags(ffmpeg_next::codec::Flags::GLOBAL_HEADER);
        }
        let mut options = ffmpeg_next::Dictionary::new();
        options.set("preset", "veryfast");
        let encoder = enc.open_with(options)?;
        stream.set_parameters(&encoder);
        output.write_header()?;
        let stream_time_base = output.stream(stream_index).map(|s| s.time_base()).unwrap_or(time_base);
        let scaler = ffmpeg_next::software::scaling::Context::get(
            ffmpeg_next::format::Pixel::RGB24,
            width,
            height,
            ffmpeg_next::format::Pixel::YUV420P,
            ew,
            eh,
            ffmpeg_next::software::scaling::Flags::BILINEAR,
        )?;
        Ok(Encoder {
            output,
            encoder,
            scaler,
            rgb: ffmpeg_next::frame::Video::new(ffmpeg_next::format::Pixel::RGB24, width, height),
            frame: ffmpeg_next::frame::Video::new(ffmpeg_next::format::Pixel::YUV420P, ew, eh),
            size: (width, height),
            time_base,
            stream_time_base,
            next_pts: 0,
        })
    }

    pub fn write(&mut self, image: &RgbImage) -> Result<(), ffmpeg_next::Error> {
        if image.dimensions() != self.size {
            return Err(ffmpeg_next::Error::InvalidData);
        }
        let row = self.size.0 as usize * 3;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data_mut(0);
        for (y, src) in image.chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
        self.scaler.run(&self.rgb, &mut self.frame)?;
        self.frame.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder.send_frame(&self.frame)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), ffmpeg_next::Error> {
        let mut packet = ffmpeg_next::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // Each frame lasts one tick of the encoder's time base; without
            // it the mp4 muxer ends the edit list at the last frame's start
            // and players drop that frame.
            packet.set_duration(1);
            packet.rescale_ts(self.time_base, self.stream_time_base);
            packet.write_interleaved(&mut self.output)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), ffmpeg_next::Error> {
        self.encoder.send_eof()?;
        self.drain()?;
        self.output.write_trailer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::video::{planar_to_rgb, Planes};

    #[test]
    fn yuv420_round_trip_stays_close_at_odd_sizes() {
        let mut img = RgbImage::new(7, 5);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 30) as u8, (y * 40) as u8, 128]);
        }
        let planes = rgb_to_yuv420(&img);
        assert_eq!(planes.len(), 7 * 5 + 2 * 4 * 3);
        let back = planar_to_rgb(&planes, 7, 5, Planes { shift_x: 1, shift_y: 1, mono: false, bits: 8 }, false);
        // Chroma is shared by 2×2 blocks: a smooth gradient stays within a few levels.
        for (a, b) in img.pixels().zip(back.pixels()) {
            for k in 0..3 {
                assert!((a[k] as i32 - b[k] as i32).abs() <= 24, "{a:?} vs {b:?}");
            }
        }
    }
}
