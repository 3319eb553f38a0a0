//! Where frames come from: a V4L2 camera (memory-mapped streaming), or a
//! recorded stream played at the camera's pace. The capture thread turns
//! either into upright RGB [`Frame`]s, straight from the driver's buffer.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use emoedge::source::{
    camera::{buffer_to_frame, BufferError, PixelFormat},
    Frame,
};
use v4l::{
    buffer::Type,
    control::{Control, Type as ControlType, Value},
    io::traits::{CaptureStream, Stream as _},
    prelude::*,
    video::{capture::Parameters, Capture},
    FourCC,
};

use crate::config::CameraConfig;

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not a streaming video capture device (driver {driver}, card {card})")]
    NotCapture { path: PathBuf, driver: String, card: String },
    #[error(
        "{path} cannot deliver {want}: it offers {got}. Set [camera] format/width/height to what the camera supports"
    )]
    Format { path: PathBuf, want: String, got: String },
    #[error("{path}: {what} failed: {source}")]
    Io { path: PathBuf, what: &'static str, source: io::Error },
    #[error("{path} delivered no frame for {0:?}", TIMEOUT)]
    Stalled { path: PathBuf },
    #[error("{path}: a frame could not be converted: {source}")]
    Buffer { path: PathBuf, source: BufferError },
    #[error("recording {path}: {message}")]
    Recording { path: PathBuf, message: String },
}

impl CameraError {
    /// A frame that could not be converted is skipped; anything else means
    /// the device has to be opened again.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, CameraError::Buffer { .. })
    }
}

/// A camera buffer copied out of the driver's, not yet decoded. The capture
/// thread keeps the camera's pace and the perception thread takes only the
/// latest buffer, so decoding at take time decodes only the frames that are
/// analysed: a 640×480 YUYV camera at 240 frames/s spent a quarter of a core
/// converting frames that were then dropped.
pub struct Captured {
    path: PathBuf,
    format: PixelFormat,
    data: Vec<u8>,
    width: u32,
    height: u32,
    stride: usize,
    /// When it was captured, on the kernel's monotonic clock.
    pub timestamp: Duration,
}

impl Captured {
    /// The RGB frame. A buffer that cannot be converted is an error the caller skips.
    pub fn decode(&self) -> Result<Frame, CameraError> {
        buffer_to_frame(self.format, &self.data, self.width, self.height, self.stride, self.timestamp)
            .map_err(|source| CameraError::Buffer { path: self.path.clone(), source })
    }
}

/// How long a silent camera is waited for before it counts as lost.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The kernel's monotonic clock, which V4L2 stamps its buffers with; frames
/// carry it so that the latency to their event can be measured.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Captured, CameraError>;
    /// Device, size and format, for logs and `camera` events.
    fn describe(&self) -> String;
}

/// Opens the configured source.
pub fn open(config: &CameraConfig) -> Result<Box<dyn FrameSource>, CameraError> {
    Ok(match &config.recording {
        Some(path) => Box::new(Recording::open(path, config)?),
        None => Box::new(V4l2Camera::open(config)?),
    })
}

pub struct V4l2Camera {
    path: PathBuf,
    // Declared before `device` so that it is dropped (streaming stopped, buffers
    // unmapped) before the device is closed.
    stream: Option<MmapStream<'static>>,
    /// Held open for the stream's sake (the stream shares its handle).
    _device: Device,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
}

impl V4l2Camera {
    pub fn open(config: &CameraConfig) -> Result<V4l2Camera, CameraError> {
        let path = config.device.clone();
        let io_err = |what: &'static str| {
            let path = path.clone();
            move |source| CameraError::Io { path, what, source }
        };
        let device = Device::with_path(&path).map_err(|source| CameraError::Open { path: path.clone(), source })?;
        let caps = device.query_caps().map_err(io_err("VIDIOC_QUERYCAP"))?;
        use v4l::capability::Flags;
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE | Flags::STREAMING) {
            return Err(CameraError::NotCapture { path, driver: caps.driver, card: caps.card });
        }
        if let Some(input) = config.input {
            let mut index = input as libc::c_int;
            // SAFETY: VIDIOC_S_INPUT takes a pointer to an int we own.
            let r = unsafe {
                v4l::v4l2::ioctl(
                    device.handle().fd(),
                    v4l::v4l2::vidioc::VIDIOC_S_INPUT,
                    &mut index as *mut _ as *mut _,
                )
            };
            r.map_err(io_err("VIDIOC_S_INPUT"))?;
        }
        let mut fmt = device.format().map_err(io_err("VIDIOC_G_FMT"))?;
        fmt.width = config.width;
        fmt.height = config.height;
        fmt.fourcc = FourCC::new(&config.format.fourcc());
        let got = device.set_format(&fmt).map_err(io_err("VIDIOC_S_FMT"))?;
        if got.fourcc != fmt.fourcc {
            return Err(CameraError::Format {
                path,
                want: format!("{} {}x{}", fmt.fourcc, config.width, config.height),
                got: format!("{} {}x{}", got.fourcc, got.width, got.height),
            });
        }
        if (got.width, got.height) != (config.width, config.height) {
            log::warn!(
                "{}: asked for {}x{}, the driver gives {}x{}",
                path.display(),
                config.width,
                config.height,
                got.width,
                got.height
            );
        }
        if let Err(e) = device.set_params(&Parameters::with_fps(config.fps)) {
            log::warn!("{}: cannot set {} fps: {e}", path.display(), config.fps);
        }
        set_controls(&device, &path, config);
        let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, config.buffers)
            .map_err(io_err("VIDIOC_REQBUFS (mmap)"))?;
        stream.set_timeout(TIMEOUT);
        log::info!(
            "{}: {} ({}), {} {}x{} stride {}",
            path.display(),
            caps.card,
            caps.driver,
            got.fourcc,
            got.width,
            got.height,
            got.stride
        );
        Ok(V4l2Camera {
            path,
            stream: Some(stream),
            _device: device,
            format: config.format,
            width: got.width,
            height: got.height,
            stride: got.stride as usize,
        })
    }
}

/// Sets the configured controls by name; one the device lacks is a warning.
fn set_controls(device: &Device, path: &Path, config: &CameraConfig) {
    if config.controls.is_empty() {
        return;
    }
    let known = match device.query_controls() {
        Ok(k) => k,
        Err(e) => {
            log::warn!("{}: cannot list controls: {e}", path.display());
            return;
        }
    };
    for (name, value) in &config.controls {
        let Some(d) = known.iter().find(|d| control_name(&d.name) == *name) else {
            let names: Vec<String> = known.iter().map(|d| control_name(&d.name)).collect();
            log::warn!("{}: no control {name}; it has {}", path.display(), names.join(", "));
            continue;
        };
        let value = match d.typ {
            ControlType::Boolean => Value::Boolean(*value != 0),
            _ => Value::Integer(*value),
        };
        match device.set_control(Control { id: d.id, value }) {
            Ok(()) => log::debug!("{}: {name} set", path.display()),
            Err(e) => log::warn!("{}: cannot set {name}: {e}", path.display()),
        }
    }
}

/// v4l2-ctl's name for a control: "OSD Text Mode" is `osd_text_mode`.
pub fn control_name(label: &str) -> String {
    let mut s = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
    }
    s.trim_end_matches('_').to_string()
}

impl FrameSource for V4l2Camera {
    fn next_frame(&mut self) -> Result<Captured, CameraError> {
        let path = &self.path;
        let stream = self.stream.as_mut().ok_or_else(|| CameraError::Stalled { path: path.clone() })?;
        let (buf, meta) = match stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(CameraError::Stalled { path: path.clone() }),
            Err(source) => return Err(CameraError::Io { path: path.clone(), what: "VIDIOC_DQBUF", source }),
        };
        let used = (meta.bytesused as usize).min(buf.len());
        let now = monotonic_now();
        let stamp =
            Duration::new(meta.timestamp.sec.max(0) as u64, (meta.timestamp.usec.clamp(0, 999_999) * 1000) as u32);
        // Drivers stamp with CLOCK_MONOTONIC; anything else (or nothing) is
        // replaced by the time we dequeued the buffer.
        let stamp = if stamp <= now && now - stamp < Duration::from_secs(5) { stamp } else { now };
        Ok(Captured {
            path: path.clone(),
            format: self.format,
            data: buf[..used].to_vec(),
            width: self.width,
            height: self.height,
            stride: self.stride,
            timestamp: stamp,
        })
    }

    fn describe(&self) -> String {
        format!("{} {:?} {}x{}", self.path.display(), self.format, self.width, self.height)
    }
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        // The v4l crate panics when stopping fails for any reason but a
        // vanished device; stop here first and, if that fails, leak the
        // stream's buffers rather than panic in a destructor.
        if let Some(mut s) = self.stream.take() {
            match s.stop() {
                Ok(()) => drop(s),
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => drop(s),
                Err(e) => {
                    log::warn!("{}: stopping the stream failed ({e}); leaking its buffers", self.path.display());
                    std::mem::forget(s);
                }
            }
        }
    }
}

/// A recorded stream: raw frames back to back, played in a loop at `fps`.
pub struct Recording {
    path: PathBuf,
    data: Vec<u8>,
    frames: usize,
    next: usize,
    width: u32,
    height: u32,
    format: PixelFormat,
    period: Duration,
    due: Instant,
}

impl Recording {
    pub fn open(path: &Path, config: &CameraConfig) -> Result<Recording, CameraError> {
        let err = |message: String| CameraError::Recording { path: path.into(), message };
        if config.format != PixelFormat::Yuyv {
            return Err(err("only YUYV recordings can be played; set [camera] format = \"yuyv\"".into()));
        }
        let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let frame_bytes = config.width as usize * config.height as usize * 2;
        if data.is_empty() || data.len() % frame_bytes != 0 {
            return Err(err(format!(
                "{} bytes is not a whole number of {}x{} YUYV frames ({frame_bytes} bytes each)",
                data.len(),
                config.width,
                config.height
            )));
        }
        Ok(Recording {
            path: path.into(),
            frames: data.len() / frame_bytes,
            data,
            next: 0,
            width: config.width,
            height: config.height,
            format: config.format,
            period: Duration::from_secs_f64(1.0 / config.fps as f64),
            due: Instant::now(),
        })
    }
}

impl FrameSource for Recording {
    fn next_frame(&mut self) -> Result<Captured, CameraError> {
        // Paced like a camera: a frame every period, never a burst to catch up.
        let now = Instant::now();
        if self.due > now {
            std::thread::sleep(self.due - now);
        }
        self.due = Instant::now().max(self.due) + self.period;
        let n = self.data.len() / self.frames;
        let i = self.next % self.frames;
        self.next += 1;
        Ok(Captured {
            path: self.path.clone(),
            format: self.format,
            data: self.data[i * n..(i + 1) * n].to_vec(),
            width: self.width,
            height: self.height,
            stride: 0,
            timestamp: monotonic_now(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "recording {} ({} frames, {}x{} YUYV, looped)",
            self.path.display(),
            self.frames,
            self.width,
            self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_names_follow_v4l2_ctl() {
        assert_eq!(control_name("OSD Text Mode"), "osd_text_mode");
        assert_eq!(control_name("Loop Video"), "loop_video");
        assert_eq!(control_name("White Balance, Automatic"), "white_balance_automatic");
    }

    #[test]
    fn recordings_must_hold_whole_frames() {
        let dir = std::env::temp_dir().join(format!("emoedge-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = CameraConfig { width: 4, height: 2, fps: 1000, ..Default::default() };
        let bad = dir.join("bad.yuyv");
        std::fs::write(&bad, [0u8; 17]).unwrap();
        assert!(matches!(Recording::open(&bad, &config), Err(CameraError::Recording { .. })));
        assert!(Recording::open(&dir.join("missing.yuyv"), &config).is_err());
        let good = dir.join("good.yuyv");
        std::fs::write(&good, [128u8; 32]).unwrap();
        let mut r = Recording::open(&good, &config).unwrap();
        for _ in 0..3 {
            assert_eq!(r.next_frame().unwrap().decode().unwrap().width(), 4);
        }
        let no_camera = CameraConfig { device: dir.join("video99"), ..Default::default() };
        assert!(matches!(V4l2Camera::open(&no_camera), Err(CameraError::Open { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
