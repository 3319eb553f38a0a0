//! The daemon's TOML config. Every key is optional; `emoedge-firmware-host
//! --print-config` prints the defaults.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use emoedge::source::camera::PixelFormat;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    pub camera: CameraConfig,
    pub events: EventsConfig,
    pub display: DisplayConfig,
    pub llm: LlmConfig,
    pub service: ServiceConfig,
    /// The library's own keys (models, precision, detect, mesh, attributes, track).
    pub analysis: emoedge::config::Config,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// The V4L2 capture device.
    pub device: PathBuf,
    /// A recorded stream to play instead of a camera: raw frames of `width`×`height`
    /// in `format` (YUYV), as `emoedge-firmware-host record` writes them. Looped.
    pub recording: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: PixelFormat,
    /// The device's input to select (VIDIOC_S_INPUT), for cards with several.
    pub input: Option<u32>,
    /// Controls by their v4l2-ctl names (lowercase, `_` for spaces), e.g. `{ brightness = 128 }`.
    pub controls: BTreeMap<String, i64>,
    /// Driver buffers to stream through.
    pub buffers: u32,
    /// Frames held between capture and analysis; the oldest is dropped beyond this.
    pub queue: usize,
    /// Longest wait between reconnection attempts after the camera vanished (seconds).
    pub max_backoff: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// The Unix socket clients connect to; none disables it.
    pub socket: Option<PathBuf>,
    /// Group owning the socket (mode 0660), by name; default the daemon's own.
    pub socket_group: Option<String>,
    /// Also listen on TCP at this address, which must be loopback (127.0.0.1 or ::1).
    pub tcp: Option<std::net::SocketAddr>,
    /// What goes to stdout: "json" (event lines), "terminal" (readable lines) or "off".
    pub stdout: StdoutMode,
    /// Events a client may fall behind by before it is disconnected.
    pub client_queue: usize,
    /// Clients at once; more are turned away with an error line.
    pub max_clients: usize,
    /// Requests a client may send per second (a burst of as many is allowed).
    pub requests_per_second: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Started as root: switch to this user (and its groups, e.g. `video`) once
    /// the camera, the framebuffer and the socket are open.
    pub user: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StdoutMode {
    Json,
    Terminal,
    Off,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// "auto" (the framebuffer if it opens, else PNG snapshots), "framebuffer", "png" or "off".
    pub target: DisplayTarget,
    pub framebuffer: PathBuf,
    /// Where PNG snapshots go (replaced atomically each time).
    pub png: PathBuf,
    /// Seconds between PNG snapshots.
    pub png_interval: f64,
    /// Frames per second drawn on the framebuffer.
    pub fps: f64,
    /// The screen size for PNG snapshots (a framebuffer reports its own).
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DisplayTarget {
    Auto,
    Framebuffer,
    Png,
    Off,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Explanations on expression changes and answers to clients' questions.
    pub enabled: bool,
    /// A LLaMA-family GGUF; default the bundled SmolLM2-135M-Instruct.
    pub gguf: Option<PathBuf>,
    pub precision: emoedge::models::Precision,
    /// Tokens per explanation at most.
    pub max_tokens: usize,
    /// Threads for the LLM; the perception thread keeps the rest of the machine.
    pub threads: usize,
    /// Questions waiting at most; more are refused with an error reply.
    pub max_pending: usize,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            device: "/dev/video0".into(),
            recording: None,
            width: 640,
            height: 480,
            fps: 30,
            format: PixelFormat::Yuyv,
            input: None,
            controls: BTreeMap::new(),
            buffers: 4,
            queue: 2,
            max_backoff: 8.0,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            socket: Some("/run/emoedge/events.sock".into()),
            socket_group: None,
            tcp: None,
            stdout: StdoutMode::Json,
            client_queue: 1024,
            max_clients: 1024,
            requests_per_second: 5.0,
        }
    }
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            target: DisplayTarget::Auto,
            framebuffer: "/dev/fb0".into(),
            png: "/run/emoedge/kiosk.png".into(),
            png_interval: 2.0,
            fps: 10.0,
            width: 800,
            height: 480,
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            enabled: true,
            gguf: None,
            precision: emoedge::models::Precision::Int8,
            max_tokens: 48,
            threads: 1,
            max_pending: 8,
        }
    }
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<DaemonConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        DaemonConfig::parse(&text).with_context(|| format!("config file {} is not valid", path.display()))
    }

    pub fn parse(text: &str) -> Result<DaemonConfig> {
        let c: DaemonConfig = toml::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let c = &self.camera;
        if c.width == 0 || c.height == 0 || c.width % 2 != 0 || c.width > 8192 || c.height > 8192 {
            bail!("[camera] width and height must be 1..8192 and the width even, not {}x{}", c.width, c.height);
        }
        if c.fps == 0 || c.fps > 240 {
            bail!("[camera] fps must be 1..240, not {}", c.fps);
        }
        if c.buffers < 2 || c.buffers > 32 || c.queue == 0 || c.queue > 64 {
            bail!("[camera] buffers must be 2..32 and queue 1..64");
        }
        if !(c.max_backoff > 0.0) {
            bail!("[camera] max_backoff must be positive seconds");
        }
        let e = &self.events;
        if let Some(addr) = e.tcp {
            if !addr.ip().is_loopback() {
                bail!("[events] tcp = {addr}: TCP listens on loopback only (127.0.0.1 or ::1)");
            }
        }
        if e.client_queue == 0 || e.max_clients == 0 || !(e.requests_per_second > 0.0) {
            bail!("[events] client_queue, max_clients and requests_per_second must be positive");
        }
        let d = &self.display;
        if !(d.png_interval > 0.0) || !(d.fps > 0.0) || d.width == 0 || d.height == 0 {
            bail!("[display] png_interval, fps, width and height must be positive");
        }
        if self.llm.max_tokens == 0 || self.llm.threads == 0 {
            bail!("[llm] max_tokens and threads must be positive");
        }
        Ok(())
    }
}

/// The defaults, as a config file with comments.
pub const DEFAULT_CONFIG: &str = r#"# emoedge-firmware-host config: every key is optional; these are the defaults.
[camera]
device = "/dev/video0"
# recording = "stream.yuyv"   # play a recorded stream instead (see `record`)
width = 640
height = 480
fps = 30
format = "yuyv"              # yuyv | mjpeg
# input = 0                  # VIDIOC_S_INPUT, for capture cards with several inputs
controls = {}                # e.g. { brightness = 128 } (v4l2-ctl's names)
buffers = 4
queue = 2                    # frames between capture and analysis; the oldest is dropped
max_backoff = 8.0            # seconds between reconnection attempts, at most

[events]
socket = "/run/emoedge/events.sock"   # mode 0660
# socket_group = "emoedge"
# tcp = "127.0.0.1:7878"     # also TCP, loopback only; off unless set
stdout = "json"              # json | terminal | off
client_queue = 1024          # a client further behind is disconnected
max_clients = 1024
requests_per_second = 5.0

[display]
target = "auto"              # auto | framebuffer | png | off
framebuffer = "/dev/fb0"
png = "/run/emoedge/kiosk.png"
png_interval = 2.0
fps = 10.0
width = 800                  # PNG snapshot size
height = 480

[llm]
enabled = true
# gguf = "/usr/share/emoedge/smollm2-135m-instruct.gguf"
precision = "int8"
max_tokens = 48
threads = 1
max_pending = 8

[service]
# user = "emoedge"           # started as root: become this user once devices are open

[analysis]                   # the emoedge library's keys (see its README)
# precision = "fp32"
# device = "auto"            # auto | cpu | cuda: the face models and the LLM (a cuda build)
[analysis.track]
detect_every = 10
max_missed = 15
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_match() {
        let c = DaemonConfig::parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(c.camera.width, CameraConfig::default().width);
        assert_eq!(c.events.socket, EventsConfig::default().socket);
        assert_eq!(c.display.target, DisplayTarget::Auto);
        assert!(DaemonConfig::parse("").unwrap().llm.enabled);
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            "[camera]\nwidht = 3",
            "[camera]\nwidth = 641",
            "[camera]\nfps = 0",
            "[camera]\nformat = \"h264\"",
            "[events]\nstdout = \"loud\"",
            "[analysis]\nprecison = \"fp16\"",
            "[llm]\nthreads = 0",
            "[events]\ntcp = \"0.0.0.0:7878\"",
            "[events]\ntcp = \"192.168.1.2:80\"",
            "camera = 3",
        ] {
            assert!(DaemonConfig::parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
