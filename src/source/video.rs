//! Video clips into [`Frame`]s.
//!
//! Y4M and raw MJPEG (concatenated JPEGs, what `ffmpeg -f mjpeg` and many
//! cameras write) are read in pure Rust from a memory-mapped file: each
//! frame is converted straight from the mapping into the RGB frame, with no
//! copy in between. Everything else (mp4, mkv, avi, webm, mov) goes through
//! the ffmpeg libraries when the `ffmpeg` feature is on (the default).
//!
//! Frames the caller does not want ([`Pick`]) are skipped before conversion:
//! a raw MJPEG frame is not even decoded, a coded one is decoded (the codec
//! needs it for the next) but not converted.

use std::{path::Path, time::Duration};

use image::RgbImage;

use super::{camera::yuv_to_rgb, decode_image, Frame, MAX_SIDE};
use crate::mapped::MappedFile;

/// What a clip holds, as far as its header says.
#[derive(Clone, Debug)]
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second (raw MJPEG has no timing: the rate it was given).
    pub fps: f64,
    /// The number of frames, where the container says it.
    pub frames: Option<u64>,
    /// The format in words, e.g. "y4m 4:2:0 8-bit" or "h264 in mov,mp4,m4a,3gp,3g2,mj2".
    pub format: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is empty (0 bytes): there is no video in it")]
    Empty { path: String },
    #[error("{path} has no video stream (only {streams}); give emoedge a file with video in it")]
    NoVideo { path: String, streams: String },
    #[error("{path}: {message}")]
    Unsupported { path: String, message: String },
    #[error("{path} is not a video emoedge can read: {message}")]
    Invalid { path: String, message: String },
    #[error("{path} is cut short: frame {frame} ends past the end of the file (frames 0–{} are complete). Copy the file again, or analyse what is there with a tool that repairs it (ffmpeg -i in -c copy out)", frame.saturating_sub(1))]
    Truncated { path: String, frame: u64 },
    #[error("{path}: frame {frame} cannot be decoded: {message}")]
    Frame { path: String, frame: u64, message: String },
    #[error("{path} claims {width}×{height} pixels; the limit is {MAX_SIDE} per side")]
    TooLarge { path: String, width: u64, height: u64 },
    #[error("{path} is a {ext} file, and this emoedge was built without the `ffmpeg` feature, so it reads only Y4M and raw MJPEG. Convert it (ffmpeg -i {path} -pix_fmt yuv420p clip.y4m), or build with default features")]
    NoFfmpeg { path: String, ext: String },
    #[error("{0}")]
    Mapped(#[from] crate::mapped::Changed),
}

/// The file name extensions treated as video (everything else is a picture).
pub const EXTENSIONS: &[&str] =
    &["mp4", "m4v", "mov", "mkv", "webm", "avi", "y4m", "mjpeg", "mjpg", "ts", "mpg", "ogv"];

/// Whether `path` names a video clip rather than a picture: by extension,
/// or by the Y4M signature.
pub fn is_video(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if EXTENSIONS.contains(&ext.as_str()) {
        return true;
    }
    &first_bytes(path) == Y4M_MAGIC
}

const Y4M_MAGIC: &[u8; 10] = b"YUV4MPEG2 ";

/// The file's first ten bytes (zeros where it is shorter or unreadable):
/// enough to tell Y4M and JPEG from everything else.
fn first_bytes(path: &Path) -> [u8; 10] {
    let mut head = [0u8; 10];
    let _ = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    head
}

/// Which decoded frames to analyse.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// Every `n`th frame (1: all).
    Every(u32),
    /// At most this many frames per second of video, evenly spaced.
    Fps(f64),
}

/// A [`Pick`] in progress (the rate form remembers when it last took one).
#[derive(Clone, Debug)]
pub struct Picker {
    pick: Pick,
    next: f64,
}

impl Picker {
    pub fn new(pick: Pick) -> Picker {
        Picker { pick, next: 0.0 }
    }

    /// Whether to analyse frame `index`, shown at `t`.
    pub fn keep(&mut self, index: u64, t: Duration) -> bool {
        match self.pick {
            Pick::Every(n) => index.is_multiple_of(n.max(1) as u64),
            Pick::Fps(f) => {
                let t = t.as_secs_f64();
                // Half a millisecond of slack: timestamps are rounded to the
                // container's time base.
                if t + 5e-4 < self.next {
                    return false;
                }
                self.next = self.next.max(t) + 1.0 / f.max(1e-3);
                true
            }
        }
    }

    /// How many of `total` frames at `fps` will be kept (for the progress bar).
    pub fn expected(&self, total: u64, fps: f64) -> u64 {
        match self.pick {
            Pick::Every(n) => total.div_ceil(n.max(1) as u64),
            Pick::Fps(f) if fps > 0.0 => ((total as f64 * (f / fps).min(1.0)).ceil()) as u64,
            Pick::Fps(_) => total,
        }
    }
}

/// An open clip.
pub struct Clip {
    pub name: String,
    pub info: ClipInfo,
    reader: Reader,
    /// Frames read so far, kept or not.
    index: u64,
}

enum Reader {
    Y4m(Y4m),
    Mjpeg(Mjpeg),
    #[cfg(feature = "ffmpeg")]
    Ffmpeg(Box<super::ffmpeg::Decoder>),
}

impl Clip {
    /// Opens a clip. `mjpeg_fps` times a raw MJPEG stream, which has no
    /// timing of its own.
    pub fn open(path: &Path, mjpeg_fps: f64) -> Result<Clip, VideoError> {
        let name = path.display().to_string();
        let read = |source| VideoError::Read { path: name.clone(), source };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len == 0 {
            return Err(VideoError::Empty { path: name });
        }
        let head = first_bytes(path);
        let (reader, info) = if &head == Y4M_MAGIC {
            let y4m = Y4m::open(MappedFile::open(path).map_err(read)?, &name)?;
            let info = y4m.info();
            (Reader::Y4m(y4m), info)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            let mjpeg = Mjpeg::open(MappedFile::open(path).map_err(read)?, mjpeg_fps, &name)?;
            let info = mjpeg.info.clone();
            (Reader::Mjpeg(mjpeg), info)
        } else {
            Self::open_coded(path, &name)?
        };
        Ok(Clip { name, info, reader, index: 0 })
    }

    #[cfg(feature = "ffmpeg")]
    fn open_coded(path: &Path, name: &str) -> Result<(Reader, ClipInfo), VideoError> {
        let d = super::ffmpeg::Decoder::open(path, name)?;
        let info = d.info.clone();
        Ok((Reader::Ffmpeg(Box::new(d)), info))
    }

    #[cfg(not(feature = "ffmpeg"))]
    fn open_coded(path: &Path, name: &str) -> Result<(Reader, ClipInfo), VideoError> {
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
        Err(VideoError::NoFfmpeg { path: name.into(), ext })
    }

    /// The next frame `picker` keeps, with its index in the clip; `None` at the end.
    pub fn next(&mut self, picker: &mut Picker) -> Result<Option<(u64, Frame)>, VideoError> {
        loop {
            let index = self.index;
            let fps = self.info.fps.max(1e-3);
            let step = match &mut self.reader {
                Reader::Y4m(r) => r.next(index, fps, picker, &self.name)?,
                Reader::Mjpeg(r) => r.next(index, fps, picker, &self.name)?,
                #[cfg(feature = "ffmpeg")]
                Reader::Ffmpeg(r) => r.next(index, picker)?,
            };
            self.index += 1;
            match step {
                Step::End => {
                    self.index -= 1;
                    return Ok(None);
                }
                Step::Skipped => continue,
                Step::Frame(frame) => return Ok(Some((index, frame))),
            }
        }
    }

    /// Frames read so far, kept or skipped.
    pub fn frames_read(&self) -> u64 {
        self.index
    }
}

/// One step of a reader.
pub(crate) enum Step {
    End,
    Skipped,
    Frame(Frame),
}

/// A Y4M file: a text header, then "FRAME" lines each followed by the planes.
struct Y4m {
    map: MappedFile,
    /// Where the next frame's "FRAME" line starts.
    pos: usize,
    width: usize,
    height: usize,
    fps: f64,
    layout: Planes,
    colour: String,
    full_range: bool,
}

/// Plane geometry: chroma subsampling as shifts, bytes per sample.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    pub shift_x: u32,
    pub shift_y: u32,
    pub mono: bool,
    pub bits: u32,
}

impl Planes {
    fn bytes(&self) -> usize {
        if self.bits > 8 {
            2
        } else {
            1
        }
    }
    fn chroma(&self, width: usize, height: usize) -> (usize, usize) {
        if self.mono {
            (0, 0)
        } else {
            (width.div_ceil(1 << self.shift_x), height.div_ceil(1 << self.shift_y))
        }
    }
    fn frame_bytes(&self, width: usize, height: usize) -> usize {
        let (cw, ch) = self.chroma(width, height);
        (width * height + 2 * cw * ch) * self.bytes()
    }
}

impl Y4m {
    fn open(map: MappedFile, name: &str) -> Result<Y4m, VideoError> {
        let invalid = |message: String| VideoError::Invalid { path: name.into(), message };
        let end = map
            .iter()
            .take(4096)
            .position(|&b| b == b'\n')
            .ok_or_else(|| invalid("the Y4M header has no end of line in its first 4096 bytes".into()))?;
        let header = std::str::from_utf8(&map[10..end]).map_err(|_| invalid("the Y4M header is not text".into()))?;
        let (mut width, mut height, mut fps, mut colour, mut full_range) = (0u64, 0u64, 25.0, "420jpeg", false);
        for field in header.split(' ').filter(|f| !f.is_empty()) {
            // The key is one character, and the header is UTF-8 but not
            // ASCII: split after the first character, not the first byte.
            let (key, value) = field.split_at(field.chars().next().map_or(0, char::len_utf8));
            let number = |v: &str| {
                v.parse::<u64>().map_err(|_| invalid(format!("the Y4M header's {key} field {v:?} is not a number")))
            };
            match key {
                "W" => width = number(value)?,
                "H" => height = number(value)?,
                "F" => {
                    let (n, d) = value.split_once(':').unwrap_or((value, "1"));
                    let (n, d) = (number(n)?, number(d)?);
                    if n == 0 || d == 0 {
                        return Err(invalid(format!("the Y4M frame rate {value} is not a rate")));
                    }
                    fps = n as f64 / d as f64;
                }
                "C" => colour = value,
                "X" if value.eq_ignore_ascii_case("COLORRANGE=FULL") => full_range = true,
                _ => {}
            }
        }
        if width == 0 || height == 0 {
            return Err(invalid(format!("the Y4M header gives no size ({width}×{height})")));
        }
        if width > MAX_SIDE as u64 || height > MAX_SIDE as u64 {
            return Err(VideoError::TooLarge { path: name.into(), width, height });
        }
        let (shift, bits) = match colour.split_once('p') {
            Some((s, b)) if b.chars().all(|c| c.is_ascii_digit()) => (s, b.parse().unwrap_or(8)),
            _ => (colour, 8),
        };
        let layout = match shift {
            "420" | "420jpeg" | "420paldv" | "420mpeg2" => Planes { shift_x: 1, shift_y: 1, mono: false, bits },
            "422" => Planes { shift_x: 1, shift_y: 0, mono: false, bits },
            "444" => Planes { shift_x: 0, shift_y: 0, mono: false, bits },
            "mono" => Planes { shift_x: 0, shift_y: 0, mono: true, bits },
            other => {
                return Err(VideoError::Unsupported {
                    path: name.into(),
                    message: format!("the Y4M colour space C{other} is not one emoedge reads (4:2:0, 4:2:2, 4:4:4 or mono, 8 to 16 bits); convert it with ffmpeg -pix_fmt yuv420p"),
                })
            }
        };
        if !(8..=16).contains(&bits) {
            return Err(VideoError::Unsupported {
                path: name.into(),
                message: format!("{bits}-bit samples (C{colour})"),
            });
        }
        let sampling = match (layout.mono, layout.shift_x, layout.shift_y) {
            (true, _, _) => "mono",
            (_, 1, 1) => "4:2:0",
            (_, 1, 0) => "4:2:2",
            _ => "4:4:4",
        };
        let colour = format!("y4m {sampling} {bits}-bit");
        Ok(Y4m { map, pos: end + 1, width: width as usize, height: height as usize, fps, layout, colour, full_range })
    }

    fn info(&self) -> ClipInfo {
        let per = self.layout.frame_bytes(self.width, self.height) + 6;
        ClipInfo {
            width: self.width as u32,
            height: self.height as u32,
            fps: self.fps,
            frames: Some(((self.map.len() - self.pos) / per) as u64),
            format: self.colour.clone(),
        }
    }

    fn next(&mut self, index: u64, fps: f64, picker: &mut Picker, name: &str) -> Result<Step, VideoError> {
        if self.pos >= self.map.len() {
            return Ok(Step::End);
        }
        let rest = &self.map[self.pos..];
        let line = rest.iter().take(1024).position(|&b| b == b'\n');
        let line = match line {
            Some(l) if rest.starts_with(b"FRAME") => l,
            None if rest.len() < 1024 && b"FRAME".starts_with(&rest[..rest.len().min(5)]) => {
                return Err(VideoError::Truncated { path: name.into(), frame: index })
            }
            _ => {
                return Err(VideoError::Invalid {
                    path: name.into(),
                    message: format!("frame {index} does not start with a FRAME line (byte {})", self.pos),
                })
            }
        };
        let start = self.pos + line + 1;
        let size = self.layout.frame_bytes(self.width, self.height);
        if start + size > self.map.len() {
            return Err(VideoError::Truncated { path: name.into(), frame: index });
        }
        self.pos = start + size;
        let t = Duration::from_secs_f64(index as f64 / fps);
        if !picker.keep(index, t) {
            return Ok(Step::Skipped);
        }
        let image =
            planar_to_rgb(&self.map[start..start + size], self.width, self.height, self.layout, self.full_range);
        self.map.check()?;
        Ok(Step::Frame(Frame { image, timestamp: t }))
    }
}

/// Planar YUV (any subsampling, 8 to 16 bits little-endian) into RGB, one
/// pass over the planes.
pub(crate) fn planar_to_rgb(data: &[u8], width: usize, height: usize, layout: Planes, full_range: bool) -> RgbImage {
    let bytes = layout.bytes();
    let (cw, ch) = layout.chroma(width, height);
    let (y_plane, chroma) = data.split_at(width * height * bytes);
    let (u_plane, v_plane) = chroma.split_at(cw * ch * bytes);
    let down = layout.bits.saturating_sub(8);
    let sample = |plane: &[u8], i: usize| -> u8 {
        if bytes == 1 {
            plane[i]
        } else {
            (u16::from_le_bytes([plane[2 * i], plane[2 * i + 1]]) >> down).min(255) as u8
        }
    };
    // Full range is stretched into the studio range the converter expects.
    let y_of = |v: u8| if full_range { (16 + (v as u32 * 219 + 127) / 255) as u8 } else { v };
    let mut image = RgbImage::new(width as u32, height as u32);
    let rgb: &mut [u8] = &mut image;
    for (row, dst) in rgb.chunks_exact_mut(width * 3).enumerate() {
        let crow = row >> layout.shift_y;
        for (col, px) in dst.chunks_exact_mut(3).enumerate() {
            let y = y_of(sample(y_plane, row * width + col));
            let (u, v) = if layout.mono {
                (128, 128)
            } else {
                let c = crow * cw + (col >> layout.shift_x);
                (sample(u_plane, c), sample(v_plane, c))
            };
            px.copy_from_slice(&yuv_to_rgb(y, u, v));
        }
    }
    image
}

/// Concatenated JPEG pictures. Frame boundaries come from walking each
/// JPEG's marker segments to its entropy-coded data and then to the end
/// marker, so a thumbnail inside an APP segment does not end a frame early.
struct Mjpeg {
    map: MappedFile,
    pos: usize,
    info: ClipInfo,
}

impl Mjpeg {
    fn open(map: MappedFile, fps: f64, name: &str) -> Result<Mjpeg, VideoError> {
        let first = jpeg_end(&map, 0).ok_or_else(|| VideoError::Truncated { path: name.into(), frame: 0 })?;
        let probe = decode_image(&map[..first], name).map_err(|e| VideoError::Frame {
            path: name.into(),
            frame: 0,
            message: e.to_string(),
        })?;
        let info = ClipInfo {
            width: probe.width(),
            height: probe.height(),
            fps,
            // Frames are found by walking the file; estimate from the first.
            frames: Some((map.len() / first.max(1)) as u64),
            format: "mjpeg (raw JPEG stream)".into(),
        };
        Ok(Mjpeg { map, pos: 0, info })
    }

    fn next(&mut self, index: u64, fps: f64, picker: &mut Picker, name: &str) -> Result<Step, VideoError> {
        // Padding between frames (some muxers align them) is skipped.
        while self.pos < self.map.len() && self.map[self.pos] != 0xFF {
            self.pos += 1;
        }
        if self.pos >= self.map.len() {
            return Ok(Step::End);
        }
        let end =
            jpeg_end(&self.map, self.pos).ok_or_else(|| VideoError::Truncated { path: name.into(), frame: index })?;
        let (start, t) = (self.pos, Duration::from_secs_f64(index as f64 / fps));
        self.pos = end;
        if !picker.keep(index, t) {
            return Ok(Step::Skipped);
        }
        let mut frame = decode_image(&self.map[start..end], name).map_err(|e| VideoError::Frame {
            path: name.into(),
            frame: index,
            message: e.to_string(),
        })?;
        self.map.check()?;
        if (frame.width(), frame.height()) != (self.info.width, self.info.height) {
            return Err(VideoError::Frame {
                path: name.into(),
                frame: index,
                message: format!(
                    "it is {}×{}, the stream began at {}×{}",
                    frame.width(),
                    frame.height(),
                    self.info.width,
                    self.info.height
                ),
            });
        }
        frame.timestamp = t;
        Ok(Step::Frame(frame))
    }
}

/// The end (one past the EOI marker) of the JPEG starting at `start`, or
/// `None` if the data ends first or is not a JPEG.
fn jpeg_end(data: &[u8], start: usize) -> Option<usize> {
    let d = data.get(start..)?;
    if !d.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    // Marker segments up to the start of scan.
    loop {
        while *d.get(i)? == 0xFF && *d.get(i + 1)? == 0xFF {
            i += 1; // fill bytes
        }
        if *d.get(i)? != 0xFF {
            return None;
        }
        let marker = *d.get(i + 1)?;
        if marker == 0xD9 {
            return Some(start + i + 2);
        }
        let len = u16::from_be_bytes([*d.get(i + 2)?, *d.get(i + 3)?]) as usize;
        i += 2 + len;
        if marker == 0xDA {
            break;
        }
    }
    // Entropy-coded data: 0xFF is stuffed as FF 00, and RSTn markers sit
    // inside it; any other marker ends the scan (EOI, or another progressive scan).
    loop {
        let at = i + d.get(i..)?.iter().position(|&b| b == 0xFF)?;
        let next = *d.get(at + 1)?;
        match next {
            0x00 | 0xD0..=0xD7 | 0xFF => i = at + 1,
            0xD9 => return Some(start + at + 2),
            _ => {
                // Another segment (progressive JPEG: DHT, SOS, ...): walk it.
                let len = u16::from_be_bytes([*d.get(at + 2)?, *d.get(at + 3)?]) as usize;
                i = at + 2 + len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_boundaries_skip_stuffed_bytes_and_restart_markers() {
        let seg = |m: u8, body: &[u8]| {
            let mut v = vec![0xFF, m];
            v.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            v.extend_from_slice(body);
            v
        };
        let mut j = vec![0xFF, 0xD8];
        // An APP1 holding a whole thumbnail JPEG, EOI included.
        j.extend(seg(0xE1, &[0xFF, 0xD8, 0xFF, 0xD9]));
        j.extend(seg(0xDA, &[1, 2, 3]));
        j.extend_from_slice(&[9, 0xFF, 0x00, 8, 0xFF, 0xD3, 7, 0xFF, 0xD9]);
        let len = j.len();
        let mut two = j.clone();
        two.extend_from_slice(&j);
        assert_eq!(jpeg_end(&two, 0), Some(len));
        assert_eq!(jpeg_end(&two, len), Some(2 * len));
        assert_eq!(jpeg_end(&j[..len - 1], 0), None, "a cut JPEG has no end");
    }

    /// Mutated Y4M and MJPEG files (a seeded xorshift flips, cuts and
    /// repeats bytes) never panic the readers: each is a clip or an error.
    #[test]
    fn mutated_clips_are_errors_not_panics() {
        let mut y4m = b"YUV4MPEG2 W6 H4 F10:1 Ip A1:1 C420jpeg\n".to_vec();
        for _ in 0..3 {
            y4m.extend_from_slice(b"FRAME\n");
            y4m.extend((0..24 + 2 * 6).map(|i| (i * 7) as u8));
        }
        let mut jpeg = Vec::new();
        image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 90]))
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        let mjpeg = [jpeg.clone(), jpeg].concat();
        let path = std::env::temp_dir().join(format!("emoedge-mutated-{}.clip", std::process::id()));
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..600 {
            let mut data = if round % 2 == 0 { y4m.clone() } else { mjpeg.clone() };
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % data.len();
                match next() % 3 {
                    0 => data[at] = next() as u8,
                    1 => data.truncate(at.max(1)),
                    _ => {
                        let piece = data[at..].iter().take(16).copied().collect::<Vec<_>>();
                        data.splice(at..at, piece);
                    }
                }
            }
            std::fs::write(&path, &data).unwrap();
            if std::env::var_os("EMOEDGE_MUTATION_TRACE").is_some() {
                eprintln!("round {round}");
                let _ = std::fs::copy(&path, format!("/tmp/mutation-{round}"));
            }
            if let Ok(mut clip) = Clip::open(&path, 30.0) {
                let mut picker = Picker::new(Pick::Every(1));
                for _ in 0..5 {
                    if !matches!(clip.next(&mut picker), Ok(Some(_))) {
                        break;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }

    /// Found by the clip fuzz target: a header field that starts with a
    /// multi-byte character (here U+034F) panicked the field split.
    #[test]
    fn a_header_field_may_start_with_any_character() {
        let path = std::env::temp_dir().join(format!("emoedge-utf8-{}.y4m", std::process::id()));
        let mut data = "YUV4MPEG2 W4 H2 F10:1 \u{34f}# C420jpeg\n".as_bytes().to_vec();
        data.extend_from_slice(b"FRAME\n");
        data.extend([128u8; 8 + 2 * 2]);
        std::fs::write(&path, &data).unwrap();
        let mut clip = Clip::open(&path, 30.0).expect("an unknown field is skipped");
        let (index, frame) = clip.next(&mut Picker::new(Pick::Every(1))).unwrap().expect("one frame");
        assert_eq!((index, frame.width(), frame.height()), (0, 4, 2));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn picking_by_rate_spaces_frames_evenly() {
        let mut p = Picker::new(Pick::Fps(10.0));
        let kept: Vec<u64> = (0..60u64).filter(|&i| p.keep(i, Duration::from_secs_f64(i as f64 / 30.0))).collect();
        assert_eq!(kept.len(), 20);
        assert!(kept.windows(2).all(|w| w[1] - w[0] == 3), "{kept:?}");
        let mut p = Picker::new(Pick::Every(4));
        assert_eq!((0..10u64).filter(|&i| p.keep(i, Duration::ZERO)).count(), 3);
        assert_eq!(p.expected(10, 30.0), 3);
    }
}
