//! `emoedge convert`: a LLaMA-family GGUF in, an emoedge export out.
//!
//! An export is itself a GGUF (so llama.cpp and gguf-py can read it too), with
//! every weight already in the layout the runtime reads straight from the
//! mapping:
//! - matrices in the run precision: F32 (the reference), F16, or Q8_0 for
//!   int8 (llama.cpp's `quantize_row_q8_0_ref`, so it equals llama.cpp's own
//!   Q8_0 requantisation);
//! - norm gains in F32;
//! - Q and K rows un-permuted from ggml's adjacent-pair RoPE to the
//!   rotate-half layout of tract's `ApplyRope` (`emoedge.rope_layout = "neox"`).
//!
//! The source's metadata (hyper-parameters, tokenizer, chat template) is
//! copied byte for byte. The output is deterministic, so its sha256 can sit in
//! the manifest. It is written to a temporary name and renamed, so an
//! interrupted conversion leaves nothing half-written behind.

use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use half::f16;

use super::{
    gguf::{GgmlType, Gguf},
    graph::Config,
    kernels::{self, RowFormat},
};
use crate::models::{sha256_hex, Precision};

pub const PRECISION_KEY: &str = "emoedge.precision";
pub const ROPE_LAYOUT_KEY: &str = "emoedge.rope_layout";
pub const SOURCE_KEY: &str = "emoedge.source_sha256";
/// Bumped whenever the export's bytes change for the same source, so that a
/// cache from an older emoedge is converted again rather than refused.
pub const EXPORT_VERSION: u32 = 2;

/// An export the manifest knows: the bundled model's conversions.
#[derive(Debug)]
pub struct LlmExport {
    pub name: &'static str,
    pub source: &'static str,
    pub source_sha256: &'static str,
    pub precision: Precision,
    pub sha256: &'static str,
    pub bytes: u64,
    pub licence: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/llm_manifest.rs"));

/// The precision an export was written at, or `None` for a plain GGUF.
pub fn export_precision(g: &Gguf) -> Option<Precision> {
    match g.metadata.get(PRECISION_KEY)?.as_str()? {
        "fp32" => Some(Precision::Fp32),
        "fp16" => Some(Precision::Fp16),
        "int8" => Some(Precision::Int8),
        _ => None,
    }
}

fn row_format(p: Precision) -> (RowFormat, GgmlType, u32) {
    match p {
        Precision::Fp32 => (RowFormat::F32, GgmlType::F32, 0),
        Precision::Fp16 => (RowFormat::F16, GgmlType::F16, 1),
        Precision::Int8 => (RowFormat::Q8_0, GgmlType::Q8_0, 8),
    }
}

/// GGUF (llama.cpp) stores Q and K rows permuted so that rotary pairs are
/// adjacent (2i, 2i+1). tract's `ApplyRope` pairs i with i + d/2. Undo it:
///   gguf row  h*d + 2*b + a   ->   export row  h*d + a*(d/2) + b
fn unpermute_rows(w: &[f32], n_heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    let half = head_dim / 2;
    for h in 0..n_heads {
        for b in 0..half {
            for a in 0..2 {
                let src = (h * head_dim + 2 * b + a) * cols;
                let dst = (h * head_dim + a * half + b) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_kv_str(out: &mut Vec<u8>, key: &str, value: &str) {
    put_str(out, key);
    out.extend_from_slice(&8u32.to_le_bytes()); // GGUF_TYPE_STRING
    put_str(out, value);
}

/// One output tensor: its directory entry and how to produce its bytes.
struct Planned<'a> {
    name: &'a str,
    dims: Vec<u64>,
    kind: u32,
    bytes: usize,
    /// Rows to un-permute over, for Q (n_heads) and K (n_kv_heads).
    heads: Option<usize>,
    matrix: bool,
}

/// Writes the export of `src` at `precision` to `out`. `progress(done, total)`
/// is called after each tensor.
pub fn convert(src: &Gguf, precision: Precision, out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<()> {
    if let Some(p) = export_precision(src) {
        bail!("{} is already an emoedge export (at {p}); convert the original GGUF instead", src.path);
    }
    let c = Config::from_gguf(src)?;
    let (format, kind, kind_id) = row_format(precision);
    let alignment = src.metadata.get("general.alignment").and_then(|v| v.as_u64()).unwrap_or(32).max(1) as usize;

    // Every tensor the graph needs must be there before anything is written.
    for name in super::graph::required_tensors(&c) {
        src.tensor(&name)?;
    }
    // Write Q, K, V and then gate, up back to back within each block: the
    // graph reads each group as one stream (see linear::Projection).
    let order = |name: &str| -> (usize, usize) {
        let rank = ["attn_q.", "attn_k.", "attn_v.", "attn_output.", "ffn_gate.", "ffn_up.", "ffn_down."]
            .iter()
            .position(|k| name.contains(k))
            .unwrap_or(7);
        let block = name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|b| b.parse().ok());
        (block.map(|b: usize| b + 1).unwrap_or(0), rank)
    };
    let mut sources: Vec<&super::gguf::TensorInfo> = src.tensors.iter().collect();
    sources.sort_by_key(|t| order(&t.name));
    let mut plan = Vec::with_capacity(src.tensors.len());
    for t in sources {
        let heads = if t.name.ends_with("attn_q.weight") {
            Some(c.n_heads)
        } else if t.name.ends_with("attn_k.weight") {
            Some(c.n_kv_heads)
        } else {
            None
        };
        let entry = match t.dims.as_slice() {
            [n] => {
                Planned { name: &t.name, dims: t.dims.clone(), kind: 0, bytes: 4 * *n as usize, heads, matrix: false }
            }
            [cols, rows] => {
                if !(*cols as usize).is_multiple_of(kernels::QK) {
                    bail!("{}: {} has rows of {cols} values, not a multiple of {}", src.path, t.name, kernels::QK);
                }
                let bytes = *rows as usize * format.row_bytes(*cols as usize);
                Planned { name: &t.name, dims: t.dims.clone(), kind: kind_id, bytes, heads, matrix: true }
            }
            _ => bail!(
                "{}: tensor {} has {} dimensions; a LLaMA has vectors and matrices",
                src.path,
                t.name,
                t.dims.len()
            ),
        };
        plan.push(entry);
    }

    // ---- header: the source's metadata verbatim, plus ours ------------------
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(plan.len() as u64).to_le_bytes());
    head.extend_from_slice(&(src.kv_count + 3).to_le_bytes());
    head.extend_from_slice(&src.bytes()[src.kv_bytes.clone()]);
    put_kv_str(&mut head, PRECISION_KEY, &precision.to_string());
    put_kv_str(&mut head, ROPE_LAYOUT_KEY, "neox");
    put_kv_str(&mut head, SOURCE_KEY, &sha256_hex(src.bytes()));
    let mut offset = 0usize;
    for t in &plan {
        put_str(&mut head, t.name);
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            head.extend_from_slice(&d.to_le_bytes());
        }
        head.extend_from_slice(&t.kind.to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = (offset + t.bytes).div_ceil(alignment) * alignment;
    }
    head.resize(head.len().div_ceil(alignment) * alignment, 0);

    // ---- data ----------------------------------------------------------------
    // A name of our own: two processes may convert the same model at once.
    static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = out.with_extension(format!("partial-{}-{serial}", std::process::id()));
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&head)?;
    let mut buf = Vec::new();
    for (i, t) in plan.iter().enumerate() {
        let info = src.tensor(t.name)?;
        let mut values = src.dequantize(info)?;
        if let Some(n) = t.heads {
            values = unpermute_rows(&values, n, c.head_dim, info.dims[0] as usize);
        }
        buf.clear();
        if !t.matrix || kind == GgmlType::F32 {
            buf.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        } else if kind == GgmlType::F16 {
            buf.extend(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()));
        } else {
            kernels::quantize_q8_0_row(&values, &mut buf);
        }
        debug_assert_eq!(buf.len(), t.bytes);
        buf.resize(t.bytes.div_ceil(alignment) * alignment, 0);
        w.write_all(&buf)?;
        progress(i + 1, plan.len());
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, out).with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

/// Where converted models are cached: `$EMOEDGE_CACHE`, else
/// `$XDG_CACHE_HOME/emoedge`, else `~/.cache/emoedge`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EMOEDGE_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("emoedge");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/emoedge"),
        None => std::env::temp_dir().join("emoedge-cache"),
    }
}

/// The export of `path` at `precision`, converting it into the cache on first
/// use. An export given directly is used as it is. The bundled model's
/// exports are checked against the manifest's sha256.
pub fn ensure_export(path: &Path, precision: Precision) -> Result<PathBuf> {
    let src = Gguf::open(path)?;
    if let Some(p) = export_precision(&src) {
        if p != precision {
            bail!("{} is an emoedge export at {p}, not {precision}; pass --llm-precision {p} or convert the original GGUF", path.display());
        }
        return Ok(path.to_path_buf());
    }
    // The cache key hashes the header and the first MiB (metadata, tokenizer,
    // tensor directory) with the length: hashing the whole source on every
    // start would page it all in, and count it in our peak RSS, for nothing.
    let head = &src.bytes()[..src.bytes().len().min(1 << 20)];
    let key = sha256_hex(&[head, &(src.bytes().len() as u64).to_le_bytes()].concat());
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let out = cache_dir().join(format!("{stem}.{}.v{EXPORT_VERSION}.{precision}.gguf", &key[..12]));
    if !out.exists() {
        fs::create_dir_all(cache_dir())
            .with_context(|| format!("cannot create the cache {}", cache_dir().display()))?;
        log::info!("converting {} to {precision} into {} (once)", path.display(), out.display());
        let bar = indicatif::ProgressBar::new(src.tensors.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("converting to {msg} {bar:30} {pos}/{len} tensors")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(precision.to_string());
        convert(&src, precision, &out, |done, _| bar.set_position(done as u64))?;
        bar.finish_and_clear();
    }
    // The bundled model's exports are checked against the manifest, found by
    // the full source sha256 that the conversion recorded.
    let export = Gguf::open(&out)?;
    let source_sha = export.metadata.get(SOURCE_KEY).and_then(|v| v.as_str()).unwrap_or_default();
    let known = LLM_EXPORTS.iter().find(|e| e.source_sha256 == source_sha && e.precision == precision);
    if let Some(known) = known {
        // Hash once; then trust a stamp that names the sha256, the length and
        // the modification time, so a rewritten file is hashed again.
        let meta = fs::metadata(&out)?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let stamp = format!("{} {} {}", known.sha256, meta.len(), mtime.map(|d| d.as_nanos()).unwrap_or(0));
        let stamp_path = out.with_extension("gguf.verified");
        if fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
            return Ok(out);
        }
        let actual = sha256_hex(export.bytes());
        if actual != known.sha256 {
            bail!(
                "{} has sha256 {actual}, the manifest expects {} for {} at {precision}: delete it to convert again",
                out.display(),
                known.sha256,
                known.name
            );
        }
        let _ = fs::write(stamp_path, stamp);
    }
    Ok(out)
}
