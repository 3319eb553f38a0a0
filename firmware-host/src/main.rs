//! emoedge-firmware-host: the appliance daemon. It owns the camera, the
//! threads, the HRI socket, the kiosk display and the systemd watchdog; every
//! bit of analysis is the emoedge library's.
//!
//! ```text
//! capture ──► Latest (drop oldest) ──► perception ──► Bus ──► stdout, each client's queue
//!                                          │  ▲                   ▲
//!                                          ▼  │ tracks            │ answers
//!                                     explainer (LLM) ◄── socket requests
//! ```

mod bus;
mod camera;
mod config;
mod display;
mod explainer;
mod memory;
mod privileges;
mod queue;
mod socket;

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use emoedge::{
    hri::{self, Request},
    models::Precision,
    pipeline::Pipeline,
    sink::kiosk,
    source::{self, Frame},
    track::{Change, Track, Tracker},
};
use serde_json::json;

use crate::{
    bus::{lock, Bus},
    camera::monotonic_now,
    config::{DaemonConfig, DisplayTarget, StdoutMode},
    explainer::Explainer,
    queue::Latest,
};

const AFTER_HELP: &str = "\
Events are JSON lines (schema: firmware-host/hri-events.schema.json) on stdout and on
the Unix socket; a client may write {\"ask\": \"...\", \"face\": <id>} lines and gets the
answer as an `explanation` event. SIGTERM or SIGINT stops the daemon cleanly; it then
prints a summary line on stderr. Under systemd (Type=notify) it reports READY and pings
the watchdog only while frames are flowing.

Exit codes:
  0  stopped by a signal or at the end of --duration
  2  usage or configuration error (bad config, socket in use)
  4  a model file is missing, corrupt or cannot be loaded
  5  `record` could not read a picture or write its output

Environment:
  RUST_LOG                log filter (default info), e.g. RUST_LOG=debug
  EMOEDGE_DAEMON_CONFIG   the config file, as --config
  EMOEDGE_MODELS          the models directory
  EMOEDGE_LLM_GGUF        the LLM GGUF (default: the bundled SmolLM2-135M-Instruct)";

#[derive(Parser)]
#[command(name = "emoedge-firmware-host", version,
          about = "The emoedge appliance daemon: camera → face analysis → HRI events, kiosk screen and explanations.",
          after_help = AFTER_HELP)]
struct Cli {
    /// The TOML config (`--print-config` shows every key with its default).
    #[arg(long, env = "EMOEDGE_DAEMON_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the default config, commented, and exit.
    #[arg(long)]
    print_config: bool,
    /// The V4L2 capture device [config: camera.device].
    #[arg(long)]
    device: Option<PathBuf>,
    /// Play a recorded YUYV stream instead of a camera [config: camera.recording].
    #[arg(long, value_name = "FILE")]
    recording: Option<PathBuf>,
    /// The Unix socket for clients [config: events.socket].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// No socket at all.
    #[arg(long, conflicts_with = "socket")]
    no_socket: bool,
    /// What stdout carries [config: events.stdout].
    #[arg(long, value_enum)]
    stdout: Option<StdoutMode>,
    /// Where the kiosk screen goes [config: display.target].
    #[arg(long, value_enum)]
    display: Option<DisplayTarget>,
    /// The PNG snapshot's path [config: display.png].
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// No language model: no explanations, questions are refused.
    #[arg(long)]
    no_llm: bool,
    /// The models directory [config: analysis.models].
    #[arg(long)]
    models: Option<PathBuf>,
    /// Stop after this many seconds (tests, demos).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Record pictures as a raw YUYV stream that `--recording` plays (and
    /// `v4l2-ctl --stream-from` can feed to a V4L2 output): each picture
    /// letterboxed to the size, `--repeat` frames each.
    Record {
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 480)]
        height: u32,
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
}

fn main() -> ExitCode {
    memory::tune_allocator();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if cli.print_config {
        print!("{}", config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Record { images, out, width, height, repeat }) = &cli.command {
        return match record(images, out, *width, *height, *repeat) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(5)
            }
        };
    }
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(config, cli.duration) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn load_config(cli: &Cli) -> Result<DaemonConfig> {
    let mut c = match &cli.config {
        Some(p) => DaemonConfig::load(p)?,
        None => DaemonConfig::default(),
    };
    if let Some(d) = &cli.device {
        c.camera.device = d.clone();
        c.camera.recording = None;
    }
    if let Some(r) = &cli.recording {
        c.camera.recording = Some(r.clone());
    }
    if let Some(s) = &cli.socket {
        c.events.socket = Some(s.clone());
    }
    if cli.no_socket {
        c.events.socket = None;
    }
    if let Some(s) = cli.stdout {
        c.events.stdout = s;
    }
    if let Some(d) = cli.display {
        c.display.target = d;
    }
    if let Some(p) = &cli.png {
        c.display.png = p.clone();
    }
    if cli.no_llm {
        c.llm.enabled = false;
    }
    if let Some(m) = &cli.models {
        c.analysis.models = Some(m.clone());
    }
    Ok(c)
}

fn record(images: &[PathBuf], out: &std::path::Path, width: u32, height: u32, repeat: usize) -> Result<()> {
    anyhow::ensure!(width > 0 && height > 0 && width % 2 == 0, "the width must be even and both sides non-zero");
    let mut bytes = Vec::new();
    for path in images {
        let frame = source::read_image(path)?;
        let view = source::camera::letterbox(&frame.image, width, height);
        let yuyv = source::camera::rgb_to_yuyv(&view);
        for _ in 0..repeat.max(1) {
            bytes.extend_from_slice(&yuyv);
        }
    }
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "{}: {} frames of {width}x{height} YUYV",
        out.display(),
        bytes.len() / (width as usize * height as usize * 2)
    );
    Ok(())
}

/// Counters the summary line and the watchdog read.
#[derive(Default)]
struct Stats {
    captured: AtomicU64,
    frames: AtomicU64,
    frames_with_face: AtomicU64,
    camera_lost: AtomicU64,
    camera_recovered: AtomicU64,
    /// (first, last) processed frame.
    span: Mutex<Option<(Instant, Instant)>>,
    /// The latest capture-to-event latencies, in ms.
    latencies: Mutex<VecDeque<f32>>,
}

impl Stats {
    fn frame_done(&self, latency_ms: f32, faces: usize) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.frames_with_face.fetch_add((faces > 0) as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut span = lock(&self.span);
        *span = Some((span.map_or(now, |s| s.0), now));
        let mut l = lock(&self.latencies);
        if l.len() == 10_000 {
            l.pop_front();
        }
        l.push_back(latency_ms);
    }

    fn frames_flowing(&self, within: Duration) -> bool {
        lock(&self.span).is_some_and(|(_, last)| last.elapsed() < within)
    }

    fn fps(&self) -> f64 {
        let n = self.frames.load(Ordering::Relaxed);
        match *lock(&self.span) {
            Some((a, b)) if n > 1 => (n - 1) as f64 / (b - a).as_secs_f64().max(1e-9),
            _ => 0.0,
        }
    }

    fn latency_percentile(&self, p: f64) -> f32 {
        let mut l: Vec<f32> = lock(&self.latencies).iter().copied().collect();
        if l.is_empty() {
            return 0.0;
        }
        l.sort_by(f32::total_cmp);
        l[((l.len() - 1) as f64 * p).round() as usize]
    }
}

/// What the kiosk shows: the latest analysed frame, its tracks, the latest words.
#[derive(Default)]
struct Screen {
    frame: Option<Arc<Frame>>,
    tracks: Vec<Track>,
    explanation: Option<(u32, String)>,
    camera: String,
}

fn run(config: DaemonConfig, duration: Option<f64>) -> Result<(), (u8, anyhow::Error)> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| (2, e.into()))?;
    }
    let dir = config.analysis.models.clone().unwrap_or_else(emoedge::models::default_dir);
    let precision = config.analysis.precision.unwrap_or(Precision::Fp32);
    let device = config.analysis.device.unwrap_or_default();
    let selected = emoedge::backend::select(device);
    let pipeline = Pipeline::load(&dir, precision, selected.backend.as_ref(), config.analysis.clone())
        .map_err(|e| (4, anyhow::Error::from(e).context(format!("loading the face models from {}", dir.display()))))?;
    log::info!(
        "face models loaded from {} at {precision} on {}: {}",
        dir.display(),
        selected.backend.name(),
        selected.why
    );

    let bus = Arc::new(Bus::new(config.events.stdout, config.events.client_queue));
    let stats = Arc::new(Stats::default());
    let screen = Arc::new(Mutex::new(Screen::default()));
    let explainer = Arc::new(Explainer::new(config.llm.max_pending));
    let queue = Arc::new(Latest::<camera::Captured>::new(config.camera.queue));
    let mut threads = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new().name(name.into()).spawn(f).map_err(|e| (2, anyhow::Error::from(e)))
    };

    // Everything that needs privileges first: the sockets, the framebuffer,
    // the camera. Then, if configured, become an ordinary user.
    let mut listeners = Vec::new();
    if let Some(path) = &config.events.socket {
        listeners.push(socket::bind(path, config.events.socket_group.as_deref()).map_err(|e| (2, e))?);
        log::info!("events on {} (mode 0660)", path.display());
    }
    if let Some(addr) = config.events.tcp {
        let l = socket::bind_tcp(addr).map_err(|e| (2, e))?;
        if let socket::Listener::Tcp(_, a) = &l {
            log::info!("events on tcp {a} (loopback)");
        }
        listeners.push(l);
    }
    let framebuffer = match config.display.target {
        DisplayTarget::Auto | DisplayTarget::Framebuffer => {
            match display::Framebuffer::open(&config.display.framebuffer) {
                Ok(fb) => Some(fb),
                Err(e) => {
                    log::info!("no framebuffer ({e:#}); kiosk snapshots go to {}", config.display.png.display());
                    None
                }
            }
        }
        _ => None,
    };
    let first_camera = camera::open(&config.camera);
    raise_file_limit();
    match &config.service.user {
        Some(user) => privileges::drop_to(user).map_err(|e| (2, e))?,
        None if privileges::is_root() => {
            log::warn!("running as root; set [service] user to drop privileges once the devices are open")
        }
        None => {}
    }

    let client_ids = Arc::new(AtomicU64::new(0));
    for listener in listeners {
        let handler = request_handler(screen.clone(), explainer.clone());
        let limits = socket::Limits {
            max_clients: config.events.max_clients,
            requests_per_second: config.events.requests_per_second,
        };
        let (bus, stop, ids) = (bus.clone(), stop.clone(), client_ids.clone());
        threads.push(spawn("socket", Box::new(move || socket::serve(listener, ids, bus, handler, limits, stop)))?);
    }

    if config.llm.enabled {
        let (llm_cfg, bus, explainer, screen) = (config.llm.clone(), bus.clone(), explainer.clone(), screen.clone());
        // Not joined at shutdown: an explanation in progress may take seconds.
        spawn(
            "explainer",
            Box::new(move || {
                emoedge::llm::linear::set_threads(llm_cfg.threads);
                let Some(path) = llm_cfg.gguf.clone().or_else(emoedge::llm::bundled_gguf) else {
                    log::warn!("no LLM GGUF ([llm] gguf or EMOEDGE_LLM_GGUF): explanations are off");
                    explainer.close();
                    return;
                };
                // Loaded again when its file changes under it (see emoedge::mapped).
                loop {
                    match emoedge::llm::session::Llm::load_on_device(&path, llm_cfg.precision, device) {
                        Ok(llm) => {
                            let changed = explainer.run(&llm, &bus, llm_cfg.max_tokens, |id, text| {
                                lock(&screen).explanation = Some((id, text.to_string()));
                            });
                            if !changed {
                                break;
                            }
                            log::warn!("the LLM file changed while in use: loading it again");
                        }
                        Err(e) => {
                            log::warn!("the LLM {} cannot be loaded: {e:#}; explanations are off", path.display());
                            explainer.close();
                            break;
                        }
                    }
                }
            }),
        )?;
    } else {
        explainer.close();
    }

    {
        let (cfg, queue, bus, stats, stop, screen) =
            (config.camera.clone(), queue.clone(), bus.clone(), stats.clone(), stop.clone(), screen.clone());
        threads.push(spawn(
            "capture",
            Box::new(move || capture(&cfg, first_camera, &queue, &bus, &stats, &stop, &screen)),
        )?);
    }
    let perception = {
        let (queue, bus, stats, screen, explainer) =
            (queue.clone(), bus.clone(), stats.clone(), screen.clone(), explainer.clone());
        spawn("perception", Box::new(move || perceive(&pipeline, &queue, &bus, &stats, &screen, &explainer)))?
    };
    if config.display.target != DisplayTarget::Off {
        let (cfg, screen, stats, stop, bus, explainer) =
            (config.display.clone(), screen.clone(), stats.clone(), stop.clone(), bus.clone(), explainer.clone());
        threads.push(spawn(
            "display",
            Box::new(move || show(&cfg, framebuffer, &screen, &stats, &bus, &explainer, &stop)),
        )?);
    }

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled();
    let started = Instant::now();
    let mut pinged = Instant::now();
    let mut trimmed = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
        if trimmed.elapsed() >= Duration::from_secs(60) {
            memory::trim();
            if let Some((used, free)) = memory::heap() {
                log::debug!("heap: {} KiB in use, {} KiB free after the trim", used / 1024, free / 1024);
            }
            trimmed = Instant::now();
        }
        if duration.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
            break;
        }
        // Only while frames flow: a daemon whose camera never comes back is
        // restarted by systemd, which may fix what a retry cannot.
        if let Some(period) = watchdog {
            if pinged.elapsed() >= period / 3 && stats.frames_flowing(period / 2) {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                pinged = Instant::now();
            }
        }
    }
    log::info!("stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    stop.store(true, Ordering::Relaxed);
    explainer.close();
    for t in threads {
        let _ = t.join();
    }
    queue.close();
    let _ = perception.join();
    bus.flush_stdout(Duration::from_secs(2));
    let stdout_dropped = bus.stdout_dropped.load(Ordering::Relaxed);
    if stdout_dropped > 0 {
        log::warn!("stdout lost {stdout_dropped} lines to a reader that fell behind");
    }
    eprintln!(
        "firmware-host: frames={} captured={} dropped={} events={} fps={:.2} latency_ms_p50={:.1} latency_ms_p95={:.1} \
         frames_with_face={} camera_lost={} camera_recovered={} explanations={} heap_in_use_kib={}",
        stats.frames.load(Ordering::Relaxed),
        stats.captured.load(Ordering::Relaxed),
        queue.dropped(),
        bus.published.load(Ordering::Relaxed),
        stats.fps(),
        stats.latency_percentile(0.5),
        stats.latency_percentile(0.95),
        stats.frames_with_face.load(Ordering::Relaxed),
        stats.camera_lost.load(Ordering::Relaxed),
        stats.camera_recovered.load(Ordering::Relaxed),
        explainer.done.load(Ordering::Relaxed),
        memory::heap().map_or(0, |h| h.0 / 1024),
    );
    Ok(())
}

/// Two descriptors a client: raise the soft limit on open files to the hard
/// one, so a thousand clients fit. (Under the systemd unit, LimitNOFILE does it
/// and this call is filtered.)
fn raise_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max.min(65536), rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                log::debug!("cannot raise the open-file limit from {}", lim.rlim_cur);
            }
        }
    }
}

/// A question names a tracked face; the face's latest reading goes to the LLM.
fn request_handler(screen: Arc<Mutex<Screen>>, explainer: Arc<Explainer>) -> socket::Handler {
    Arc::new(move |req: Request, _client| match req {
        Request::Ask { question, face, id } => {
            let found = lock(&screen).tracks.iter().find(|t| t.id == face).map(|t| t.face.clone());
            match found {
                Some(f) => explainer.ask(f, question, id),
                None => Err(format!("no face {face} is in view; ask about one of the `ids` of the latest faces event")),
            }
        }
    })
}

/// Sleeps up to `d`, returning early (false) once `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// The capture thread: opens the camera, streams frames into `queue`, and on
/// any failure (unplugged, stalled, a driver panic) reports it once and
/// retries with doubling back-off until the camera is back.
fn capture(
    cfg: &config::CameraConfig,
    first: Result<Box<dyn camera::FrameSource>, camera::CameraError>,
    queue: &Latest<camera::Captured>,
    bus: &Bus,
    stats: &Stats,
    stop: &AtomicBool,
    screen: &Mutex<Screen>,
) {
    let mut backoff = Duration::from_millis(250);
    let mut lost = false;
    let source = cfg.recording.as_ref().unwrap_or(&cfg.device).display().to_string();
    // The first camera was opened before privileges were dropped.
    let mut first = Some(first);
    while !stop.load(Ordering::Relaxed) {
        let session = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), camera::CameraError> {
            let mut src = match first.take() {
                Some(opened) => opened?,
                None => camera::open(cfg)?,
            };
            let what = src.describe();
            log::info!("camera streaming: {what}");
            bus.publish(&json!({"type": "camera", "state": "streaming", "source": what}));
            lock(screen).camera = "streaming".into();
            if lost {
                stats.camera_recovered.fetch_add(1, Ordering::Relaxed);
                lost = false;
            }
            backoff = Duration::from_millis(250);
            while !stop.load(Ordering::Relaxed) {
                match src.next_frame() {
                    Ok(frame) => {
                        stats.captured.fetch_add(1, Ordering::Relaxed);
                        queue.push(frame);
                    }
                    Err(e) if !e.is_fatal() => log::warn!("skipping a frame: {e}"),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
        let message = match session {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                format!("the camera driver failed: {}", what.unwrap_or_default())
            }
        };
        if !lost {
            lost = true;
            stats.camera_lost.fetch_add(1, Ordering::Relaxed);
            log::error!("camera lost: {message}");
            bus.publish(&json!({"type": "camera", "state": "lost", "source": source, "message": message}));
            lock(screen).camera = "lost".into();
        } else {
            log::warn!("camera still unavailable: {message}; next try in {:.1} s", backoff.as_secs_f64());
        }
        if !nap(backoff, stop) {
            break;
        }
        backoff = (backoff * 2).min(Duration::from_secs_f64(cfg.max_backoff));
    }
    queue.close();
}

/// The perception thread: tracker, events, explanations to queue, the kiosk's state.
fn perceive(
    pipeline: &Pipeline,
    queue: &Latest<camera::Captured>,
    bus: &Bus,
    stats: &Stats,
    screen: &Mutex<Screen>,
    explainer: &Explainer,
) {
    let mut tracker = Tracker::new(pipeline.config().track.clone());
    let mut frame_no: u64 = 0;
    loop {
        let Some(captured) = queue.pop(Duration::from_millis(500)) else {
            if queue.is_closed() {
                break;
            }
            continue;
        };
        let frame = match captured.decode() {
            Ok(frame) => frame,
            Err(e) => {
                log::warn!("skipping a frame: {e}");
                continue;
            }
        };
        match tracker.update(pipeline, &frame) {
            Ok(changes) => {
                for change in &changes {
                    bus.publish(&hri::change_event(change));
                    if let Change::Born { id } | Change::Relabelled { id, .. } = change {
                        if let Some(t) = tracker.tracks.iter().find(|t| t.id == *id) {
                            explainer.explain(t.face.clone(), t.label);
                        }
                    }
                }
                let latency = monotonic_now().saturating_sub(frame.timestamp).as_secs_f64() * 1e3;
                bus.publish(&hri::faces_event(&tracker, frame_no, frame.width(), frame.height(), latency));
                let visible: Vec<Track> = tracker.visible().cloned().collect();
                stats.frame_done(latency as f32, visible.len());
                let mut s = lock(screen);
                s.tracks = visible;
                s.frame = Some(Arc::new(frame));
            }
            Err(e) => log::warn!("frame {frame_no} could not be analysed: {e}"),
        }
        frame_no += 1;
    }
}

/// The display thread: the framebuffer `fb` (opened before privileges were
/// dropped) where there is one, else PNG snapshots.
fn show(
    cfg: &config::DisplayConfig,
    mut fb: Option<display::Framebuffer>,
    screen: &Mutex<Screen>,
    stats: &Stats,
    bus: &Bus,
    explainer: &Explainer,
    stop: &AtomicBool,
) {
    let period = Duration::from_secs_f64(if fb.is_some() { 1.0 / cfg.fps } else { cfg.png_interval });
    let (w, h) = fb.as_ref().map_or((cfg.width, cfg.height), |f| (f.width, f.height));
    while nap(period, stop) {
        let (frame, tracks, explanation, camera) = {
            let s = lock(screen);
            (s.frame.clone(), s.tracks.clone(), s.explanation.clone(), s.camera.clone())
        };
        let Some(frame) = frame else { continue };
        let status = format!(
            "{:.1} fps | {} face{} | camera {camera} | {} client{}",
            stats.fps(),
            tracks.len(),
            if tracks.len() == 1 { "" } else { "s" },
            bus.clients(),
            if bus.clients() == 1 { "" } else { "s" }
        );
        let explanation = explanation.as_ref().map(|(id, t)| (*id, t.as_str()));
        let note = if explainer.is_closed() {
            "Explanations are off on this device."
        } else {
            "Waiting for an explanation..."
        };
        let view = kiosk::KioskView { frame: &frame, tracks: &tracks, explanation, note, status: &status };
        let img = kiosk::render(&view, w, h);
        match fb.as_mut() {
            Some(fb) => fb.show(&img),
            None => {
                if let Err(e) = display::write_png(&img, &cfg.png) {
                    log::warn!("kiosk snapshot: {e:#}");
                }
            }
        }
    }
}
