//! The LLaMA forward pass as a tract graph over an emoedge export's weights.
//!
//! The graph holds its weights one of two ways ([`Weights`]). On the CPU they
//! stay in the memory-mapped file, read by emoedge's own kernels, and each
//! decoder layer is two of our ops: [`AttentionBlock`] and
//! [`FeedForwardBlock`]. For a GPU they are copied into tensors and the graph
//! uses only tract's standard ops, which tract-cuda translates: its runtime
//! cannot run our custom ops on the device.
//!
//! One graph serves prefill and decode:
//! ```text
//! input  tokens    : i64 [S]          (S = new tokens this call)
//! input  positions : i64 [S]          (their absolute positions, P .. P+S)
//! output logits    : f32 [1, vocab]   (the last position only)
//! ```
//! The KV cache lives inside the graph, in op state: one [`AttentionBlock`]
//! per layer (mapped), or two of tract's `DynKeyValueCache` before its `Sdpa`
//! (tensors). Either holds [n_kv_heads, P, head_dim] keys and values, P being
//! the tokens already seen; each run appends S. A session's state is the
//! cache: spawn a new state to forget, clone it to fork.

use anyhow::{Context, Result};
use tract_nnef::internal::*;
use tract_onnx::tract_core::ops::{
    array::{Gather, Slice},
    binary::TypedBinOp,
    cast::Cast,
    change_axes::wire_with_rank_broadcast,
    einsum::EinSum,
    math,
    nn::{silu::silu, RmsNorm},
};
use tract_transformers::ops::{apply_rope::ApplyRope, dyn_kv_cache::DynKeyValueCache, sdpa::Sdpa};

use super::{
    attention::AttentionBlock,
    convert::ROPE_LAYOUT_KEY,
    ffn::FeedForwardBlock,
    gguf::{GgmlType, Gguf, TensorInfo},
    linear::{MappedEmbedding, MappedLinear, Projection},
    norm,
};

/// A GGUF tensor's row-major shape (GGUF lists the fastest axis first).
fn shape(t: &TensorInfo) -> Vec<usize> {
    t.dims.iter().rev().map(|d| *d as usize).collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub n_layers: usize,
    pub dim: usize,        // 576
    pub ffn_dim: usize,    // 1536
    pub n_heads: usize,    // 9
    pub n_kv_heads: usize, // 3
    pub head_dim: usize,   // 64
    pub vocab: usize,      // 49152
    pub rope_base: f32,    // 100000
    pub rms_eps: f32,      // 1e-5
    pub max_ctx: usize,    // 8192 (size of the RoPE tables)
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch = g.get("general.architecture")?.as_str().unwrap_or_default().to_string();
        anyhow::ensure!(
            arch == "llama",
            "{}: architecture {arch:?} is not supported; emoedge runs LLaMA-family models (general.architecture = \"llama\")",
            g.path
        );
        let u = |s: &str| -> Result<usize> {
            let key = format!("{arch}.{s}");
            g.get(&key)?.as_u64().map(|v| v as usize).with_context(|| format!("{}: {key} is not an integer", g.path))
        };
        let f = |s: &str| g.metadata.get(&format!("{arch}.{s}")).and_then(|v| v.as_f64()).map(|v| v as f32);
        let dim = u("embedding_length")?;
        let n_heads = u("attention.head_count")?.max(1);
        let config = Config {
            n_layers: u("block_count")?,
            dim,
            ffn_dim: u("feed_forward_length")?,
            n_heads,
            n_kv_heads: u("attention.head_count_kv").unwrap_or(n_heads),
            head_dim: dim / n_heads,
            vocab: shape(g.tensor("token_embd.weight")?)[0],
            rope_base: f("rope.freq_base").unwrap_or(10000.0),
            rms_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            max_ctx: u("context_length").unwrap_or(2048).min(8192),
        };
        anyhow::ensure!(
            config.n_kv_heads > 0
                && config.n_heads.is_multiple_of(config.n_kv_heads)
                && config.head_dim.is_multiple_of(8),
            "{}: inconsistent attention shape {config:?}",
            g.path
        );
        Ok(config)
    }
}

/// Where the graph's weights live, which decides the ops that read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// In the export's memory mapping, read by emoedge's kernels: no copy,
    /// and the fastest CPU path. Only tract's CPU runtime can run it.
    Mapped,
    /// Copied into tensors held by the runtime (f16 from an F16 export, else
    /// dequantised to f32), with tract's own EinSum, DynKeyValueCache and
    /// Sdpa: any tract runtime translates it, tract-cuda included.
    Tensors,
}

/// Small builder around a TypedModel: naming + the few wiring helpers we need.
struct Builder<'g> {
    model: TypedModel,
    gguf: &'g Gguf,
    weights: Weights,
}

impl Builder<'_> {
    fn wire(
        &mut self,
        name: impl Into<String>,
        op: impl Into<Box<dyn TypedOp>>,
        inputs: &[OutletId],
    ) -> Result<OutletId> {
        Ok(self.model.wire_node(name, op, inputs)?[0])
    }

    /// Binary op with numpy-style rank broadcasting.
    fn bin(&mut self, name: &str, op: TypedBinOp, a: OutletId, b: OutletId) -> Result<OutletId> {
        Ok(wire_with_rank_broadcast(name, &mut self.model, op, &[a, b])?[0])
    }

    fn konst(&mut self, name: &str, t: Tensor) -> Result<OutletId> {
        self.model.add_const(name, t)
    }

    /// A weight as a constant, for [`Weights::Tensors`]. An F16 export's
    /// weights stay f16 (half the GPU memory, and what the GPU's matrix
    /// kernels read); the rest are dequantised to f32.
    fn weight_tensor(&mut self, gguf_name: &str) -> Result<OutletId> {
        let info = self.gguf.tensor(gguf_name)?;
        let t = if info.kind == GgmlType::F16 {
            let halves: Vec<f16> =
                self.gguf.raw(info)?.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
            Tensor::from_shape(&shape(info), &halves)?
        } else {
            Tensor::from_shape(&shape(info), &self.gguf.dequantize(info)?)?
        };
        self.konst(gguf_name, t)
    }

    /// y[S, n] = x[S, k] · W[n, k]ᵀ (a bias-less nn.Linear).
    fn linear(&mut self, name: &str, gguf_name: &str, x: OutletId) -> Result<OutletId> {
        match self.weights {
            Weights::Mapped => {
                let weight = self.gguf.matrix(gguf_name)?;
                self.wire(name, MappedLinear { weight }, &[x])
            }
            Weights::Tensors => {
                let w = self.weight_tensor(gguf_name)?;
                self.matmul_t(name, x, w)
            }
        }
    }

    /// x[S, k] · W[n, k]ᵀ as tract's EinSum (a matrix product on every runtime).
    fn matmul_t(&mut self, name: &str, x: OutletId, w: OutletId) -> Result<OutletId> {
        self.wire(name, EinSum::new("mk,nk->mn".parse()?, f32::datum_type()), &[x, w])
    }

    /// RMSNorm over the last axis, times the learned gain `g` (a small f32 vector, copied).
    fn rms_norm(&mut self, name: &str, x: OutletId, gguf_name: &str, eps: f32) -> Result<OutletId> {
        let rank = self.model.outlet_fact(x)?.rank();
        let normed = self.wire(name, RmsNorm { axis: rank - 1, eps: Arc::new(tensor0(eps)) }, &[x])?;
        let gain = self.norm(gguf_name, eps)?.gain;
        let gain = self.konst(&format!("{name}.gain"), tensor1(&gain))?;
        self.bin(&format!("{name}.mul"), math::mul(), normed, gain)
    }

    /// An RMSNorm's learned gain (a small f32 vector, copied) with its epsilon.
    fn norm(&self, gguf_name: &str, eps: f32) -> Result<norm::RmsNorm> {
        let info = self.gguf.tensor(gguf_name)?;
        Ok(norm::RmsNorm { gain: self.gguf.dequantize(info)?, eps })
    }

    /// One decoder layer as emoedge's two fused ops over the mapped weights
    /// (see [`AttentionBlock`] for why fused). `cos`, `sin`: [S, hd].
    fn layer_mapped(&mut self, c: &Config, l: usize, x: OutletId, cos: OutletId, sin: OutletId) -> Result<OutletId> {
        let g = self.gguf;
        let w = |s: &str| format!("blk.{l}.{s}.weight");
        let attention = AttentionBlock {
            norm: self.norm(&w("attn_norm"), c.rms_eps)?,
            qkv: Projection::new(vec![g.matrix(&w("attn_q"))?, g.matrix(&w("attn_k"))?, g.matrix(&w("attn_v"))?])?,
            o: g.matrix(&w("attn_output"))?,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            last_only: l + 1 == c.n_layers,
        };
        let x = self.wire(format!("l{l}.attention"), attention, &[x, cos, sin])?;
        let ffn = FeedForwardBlock {
            norm: self.norm(&w("ffn_norm"), c.rms_eps)?,
            gate_up: Projection::new(vec![g.matrix(&w("ffn_gate"))?, g.matrix(&w("ffn_up"))?])?,
            down: g.matrix(&w("ffn_down"))?,
        };
        self.wire(format!("l{l}.ffn"), ffn, &[x])
    }

    /// One decoder layer in tract's standard ops, which every tract runtime
    /// translates (tract-cuda included). `cos`, `sin`: [S, hd].
    #[allow(clippy::too_many_arguments)]
    fn layer_tensors(
        &mut self,
        c: &Config,
        l: usize,
        mut x: OutletId,
        cos: OutletId,
        sin: OutletId,
        s_dim: &TDim,
        p_dim: &TDim,
    ) -> Result<OutletId> {
        let (hd, nh, nkv) = (c.head_dim, c.n_heads, c.n_kv_heads);
        let b = self;
        let w = |s: &str| format!("blk.{l}.{s}.weight");
        let n = |s: &str| format!("l{l}.{s}");
        let cos = b.wire(n("rope.cos.4d"), AxisOp::Reshape(0, tvec![], tvec![1.into(), 1.into()]), &[cos])?; // [1,1,S,hd]
        let sin = b.wire(n("rope.sin.4d"), AxisOp::Reshape(0, tvec![], tvec![1.into(), 1.into()]), &[sin])?;
        // [S, n*hd] -> [1, n, S, hd]
        let split_heads = |b: &mut Builder, name: &str, t: OutletId, n: usize| -> Result<OutletId> {
            let t = b.wire(
                format!("{name}.split"),
                AxisOp::Reshape(1, tvec![(n * hd).into()], tvec![n.into(), hd.into()]),
                &[t],
            )?; // [S, n, hd]
            let t = b.wire(format!("{name}.heads_first"), AxisOp::Move(1, 0), &[t])?; // [n, S, hd]
            b.wire(format!("{name}.batch"), AxisOp::Add(0), &[t]) // [1, n, S, hd]
        };

        // ---- attention -------------------------------------------------------
        let h = b.rms_norm(&n("attn_norm"), x, &w("attn_norm"), c.rms_eps)?; // [S, d]
        let q = b.linear(&n("q"), &w("attn_q"), h)?; // [S, nh*hd]
        let k = b.linear(&n("k"), &w("attn_k"), h)?; // [S, nkv*hd]
        let v = b.linear(&n("v"), &w("attn_v"), h)?; // [S, nkv*hd]
        let q = split_heads(b, &n("q"), q, nh)?; // [1, nh, S, hd]
        let k = split_heads(b, &n("k"), k, nkv)?; // [1, nkv, S, hd]
        let v = split_heads(b, &n("v"), v, nkv)?; // [1, nkv, S, hd]
        let q = b.wire(n("q.rope"), ApplyRope, &[q, cos, sin])?;
        let k = b.wire(n("k.rope"), ApplyRope, &[k, cos, sin])?;

        // causal GQA attention over the cached and new keys, scale 1/sqrt(hd): [1, nh, S, hd]
        let cached = |b: &mut Builder, what: &str, new: OutletId| {
            let cache = DynKeyValueCache {
                name: n(&format!("{what}_cache")),
                axis: 2,
                past_sequence_fact: f32::fact([1.into(), nkv.into(), p_dim.clone(), hd.into()]),
                input_sequence_fact: f32::fact([1.into(), nkv.into(), s_dim.clone(), hd.into()]),
            };
            b.wire(n(&format!("{what}_cache")), cache, &[new]) // [1, nkv, P+S, hd]
        };
        let (k, v) = (cached(b, "k", k)?, cached(b, "v", v)?);
        // Causal from the bottom right: query i (at P + i) sees keys 0 ..= P + i.
        let sdpa =
            Sdpa { scale: None, datum_type: f32::datum_type(), acc_datum_type: f32::datum_type(), is_causal: true };
        let att = b.wire(n("attention"), sdpa, &[q, k, v])?;
        let att = b.wire(n("att.rm_batch"), AxisOp::Rm(0), &[att])?; // [nh, S, hd]
        let att = b.wire(n("att.seq_first"), AxisOp::Move(0, 1), &[att])?; // [S, nh, hd]
        let att =
            b.wire(n("att.merge"), AxisOp::Reshape(1, tvec![nh.into(), hd.into()], tvec![(nh * hd).into()]), &[att])?; // [S, d]
        let o = b.linear(&n("o"), &w("attn_output"), att)?; // [S, d]
        x = b.bin(&n("attn_residual"), math::add(), x, o)?;

        // ---- SwiGLU feed-forward ---------------------------------------------
        let h = b.rms_norm(&n("ffn_norm"), x, &w("ffn_norm"), c.rms_eps)?; // [S, d]
        let gate = b.linear(&n("gate"), &w("ffn_gate"), h)?; // [S, ffn]
        let up = b.linear(&n("up"), &w("ffn_up"), h)?; // [S, ffn]
        let gate = b.wire(n("silu"), silu(), &[gate])?;
        let act = b.bin(&n("swiglu"), math::mul(), gate, up)?; // [S, ffn]
        let down = b.linear(&n("down"), &w("ffn_down"), act)?; // [S, d]
        b.bin(&n("ffn_residual"), math::add(), x, down)
    }
}

/// Precomputed RoPE tables, HF rotate-half layout: [max_ctx, head_dim] with
/// cos[p, i] = cos[p, i + d/2] = cos(p * base^(-2i/d)).
fn rope_tables(c: &Config) -> Result<(Tensor, Tensor)> {
    let (d, half) = (c.head_dim, c.head_dim / 2);
    let mut cos = vec![0f32; c.max_ctx * d];
    let mut sin = vec![0f32; c.max_ctx * d];
    for p in 0..c.max_ctx {
        for i in 0..half {
            let inv_freq = (c.rope_base as f64).powf(-2.0 * i as f64 / d as f64);
            let theta = p as f64 * inv_freq;
            for j in [i, i + half] {
                cos[p * d + j] = theta.cos() as f32;
                sin[p * d + j] = theta.sin() as f32;
            }
        }
    }
    Ok((Tensor::from_shape(&[c.max_ctx, d], &cos)?, Tensor::from_shape(&[c.max_ctx, d], &sin)?))
}

/// The tensors [`build`] reads, by name.
pub fn required_tensors(c: &Config) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string(), "output_norm.weight".to_string()];
    for l in 0..c.n_layers {
        for t in
            ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
        {
            names.push(format!("blk.{l}.{t}.weight"));
        }
    }
    names
}

/// Builds the graph over an emoedge export (see [`super::convert`]).
pub fn build(gguf: &Gguf, weights: Weights) -> Result<(Config, TypedModel)> {
    let c = Config::from_gguf(gguf)?;
    anyhow::ensure!(
        gguf.metadata.get(ROPE_LAYOUT_KEY).and_then(|v| v.as_str()) == Some("neox"),
        "{} is not an emoedge export; run `emoedge convert` on it first (the runtime maps converted weights)",
        gguf.path
    );
    let mut b = Builder { model: TypedModel::default(), gguf, weights };
    let s = b.model.sym("S");
    let s_dim = TDim::from(s.clone());
    let p_dim = TDim::from(b.model.sym("P")); // tokens already in the cache (Weights::Tensors)

    // ---- inputs & embeddings -------------------------------------------------
    let tokens = b.model.add_source("tokens", i64::fact([s_dim.clone()]))?; // [S]
                                                                            // [vocab, d], also the head when tied: as tensors, one constant serves both.
    let table = match weights {
        Weights::Mapped => None,
        Weights::Tensors => Some(b.weight_tensor("token_embd.weight")?),
    };
    let mut x = match table {
        None => b.wire("embed", MappedEmbedding { table: gguf.matrix("token_embd.weight")? }, &[tokens])?,
        Some(table) => {
            let rows = b.wire("embed", Gather::new(0), &[table, tokens])?;
            b.wire("embed.f32", Cast::new(f32::datum_type()), &[rows])?
        }
    }; // [S, d]

    // ---- RoPE cos/sin for absolute positions P..P+S --------------------------
    let (cos_t, sin_t) = rope_tables(&c)?;
    let pos = b.model.add_source("positions", i64::fact([s_dim.clone()]))?; // [S]
    let cos_t = b.konst("rope.cos_table", cos_t)?;
    let sin_t = b.konst("rope.sin_table", sin_t)?;
    let cos = b.wire("rope.cos", Gather::new(0), &[cos_t, pos])?; // [S, hd]
    let sin = b.wire("rope.sin", Gather::new(0), &[sin_t, pos])?; // [S, hd]

    for l in 0..c.n_layers {
        x = match weights {
            Weights::Mapped => b.layer_mapped(&c, l, x, cos, sin)?,
            Weights::Tensors => b.layer_tensors(&c, l, x, cos, sin, &s_dim, &p_dim)?,
        };
    }

    // ---- head: last position only --------------------------------------------
    // (the mapped layers already left only that row: `AttentionBlock::last_only`)
    let last = match weights {
        Weights::Mapped => x,
        Weights::Tensors => b.wire("last", Slice::new(0, s_dim.clone() - 1, s_dim.clone()), &[x])?,
    }; // [1, d]
    let last = b.rms_norm("output_norm", last, "output_norm.weight", c.rms_eps)?;
    // Tied embeddings (SmolLM2) have no output.weight: the head is the embedding table.
    let head = if gguf.tensor("output.weight").is_ok() { "output.weight" } else { "token_embd.weight" };
    let logits = match table {
        Some(table) if head == "token_embd.weight" => b.matmul_t("logits", last, table)?,
        _ => b.linear("logits", head, last)?,
    }; // [1, vocab]

    b.model.select_output_outlets(&[logits])?;
    b.model.set_outlet_label(logits, "logits".into())?;
    Ok((c, b.model))
}
