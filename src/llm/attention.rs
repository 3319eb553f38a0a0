//! Causal grouped-query attention with its own KV cache, as one stateful
//! tract op.
//!
//! tract's fused KV-cache attention packs K and V for a general matrix
//! product on every call, which for a decode step (one query row per head)
//! costs more than the arithmetic: ~10 % of an int8 step here. This op keeps
//! each KV head's keys and values as contiguous rows and runs the score dot
//! products through the same kernels as the weights (keys as f32 rows).
//!
//!   inputs  q [1, n_heads, S, d], k [1, n_kv, S, d], v [1, n_kv, S, d]  (RoPE applied)
//!   output    [1, n_heads, S, d]
//!   state   per KV head, the keys and values of the P positions seen so far
//! Query i of this call sits at position P + i and sees keys 0 ..= P + i.

use rayon::prelude::*;
use tract_nnef::internal::*;

use super::kernels::{self, Activation, Columns, RowFormat};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CachedAttention {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl Op for CachedAttention {
    fn name(&self) -> StaticName {
        "CachedAttention".into()
    }
    op_as_typed_op!();
}

impl EvalOp for CachedAttention {
    not_out_of_plan!();

    fn state(&self, _ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        Ok(Some(Box::new(KvCache {
            keys: vec![Vec::new(); self.n_kv_heads],
            values: vec![Vec::new(); self.n_kv_heads],
        })))
    }
}

impl TypedOp for CachedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3 && inputs.iter().all(|f| f.rank() == 4), "CachedAttention takes q, k, v of rank 4");
        Ok(tvec!(f32::fact(inputs[0].shape.to_tvec())))
    }

    as_op!();
}

/// The cache: for each KV head, `[P, d]` keys and values, row after row.
#[derive(Clone, Debug)]
struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl OpState for KvCache {
    fn eval(&mut self, _ctx: &EvalContext, op: &dyn Op, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let op = op.downcast_ref::<CachedAttention>().context("CachedAttention state on another op")?;
        let (nh, nkv, d) = (op.n_heads, op.n_kv_heads, op.head_dim);
        let (q, k, v) = args_3!(inputs);
        let s = q.shape()[2];
        ensure!(
            q.shape() == [1, nh, s, d] && k.shape() == [1, nkv, s, d] && v.shape() == [1, nkv, s, d],
            "CachedAttention: shapes {:?} {:?} {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        );
        let (q, k, v) = (q.try_as_plain_ram()?, k.try_as_plain_ram()?, v.try_as_plain_ram()?);
        let (q, k, v) = (q.as_slice::<f32>()?, k.as_slice::<f32>()?, v.as_slice::<f32>()?);
        let past = self.keys[0].len() / d;
        for h in 0..nkv {
            self.keys[h].extend_from_slice(&k[h * s * d..(h + 1) * s * d]);
            self.values[h].extend_from_slice(&v[h * s * d..(h + 1) * s * d]);
        }
        let total = past + s;
        let scale = 1.0 / (d as f32).sqrt();
        let group = nh / nkv.max(1);
        let mut out = Tensor::zero::<f32>(&[1, nh, s, d])?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            let (keys, values) = (&self.keys, &self.values);
            out.par_chunks_mut(s * d).enumerate().for_each(|(h, out)| {
                let kv = h / group;
                let queries = &q[h * s * d..(h + 1) * s * d];
                head(&keys[kv], &values[kv], queries, past, total, d, scale, out);
            });
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        self.keys.iter_mut().chain(self.values.iter_mut()).for_each(Vec::clear);
        Ok(())
    }
}

/// One head: scores = q·kᵀ·scale over the visible keys, softmax, then the
/// weighted sum of the values.
#[allow(clippy::too_many_arguments)]
fn head(
    keys: &[f32],
    values: &[f32],
    queries: &[f32],
    past: usize,
    total: usize,
    d: usize,
    scale: f32,
    out: &mut [f32],
) {
    let s = queries.len() / d;
    let mut scores = vec![0f32; s * total];
    // Keys as f32 "weight rows": the kernels read them as bytes.
    // SAFETY: reinterpreting initialised f32s as their bytes; u8 has no invalid values.
    let kb = unsafe { std::slice::from_raw_parts(keys.as_ptr() as *const u8, total * d * 4) };
    let acts: Vec<Activation> = queries.chunks_exact(d).map(Activation::F32).collect();
    // SAFETY: scores holds s rows of `total`; this call writes all of them.
    unsafe { kernels::matmul_rows(RowFormat::F32, kb, &acts, Columns { ptr: scores.as_mut_ptr(), stride: total }) };
    for (i, (row, o)) in scores.chunks_exact_mut(total).zip(out.chunks_exact_mut(d)).enumerate() {
        let visible = past + i + 1;
        let row = &mut row[..visible];
        let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v * scale));
        let mut sum = 0f32;
        for v in row.iter_mut() {
            *v = (*v * scale - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for (p, value) in row.iter().zip(values.chunks_exact(d)) {
            let w = p * inv;
            for (o, x) in o.iter_mut().zip(value) {
                *o += w * x;
            }
        }
    }
}
