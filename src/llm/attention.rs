//! The attention half of a decoder layer as one stateful tract op:
//!
//!   x + W_o · attention(rope(W_q h), rope(W_k h), W_v h),  h = rmsnorm(x)
//!
//! with causal grouped-query attention over its own KV cache.
//!
//! Why one op: a decode step runs one token through 30 layers, and in tract's
//! own ops each layer's attention half is some fifteen nodes (the norm and
//! its gain, the QKV slices, three reshapes per head split, RoPE on Q and K,
//! the merge, the residual add), each a few microseconds of plan overhead
//! and a fresh tensor. Fused (with [`super::ffn`]), decode runs 11 % (fp16)
//! and 9 % (int8) faster here. One op reads top to bottom as the formula
//! above, and allocates a few small buffers.
//!
//! tract's fused KV-cache attention also packs K and V for a general matrix
//! product on every call, which for a decode step (one query row per head)
//! costs more than the arithmetic. This op keeps each KV head's keys and
//! values as contiguous rows, one query row's scores a dot product per key.
//!
//!   inputs  x [S, d], cos [S, head_dim], sin [S, head_dim]  (RoPE tables at
//!           the S new positions, HF rotate-half layout)
//!   output    [S, d], or [1, d] (the last position) with `last_only`
//!   state   per KV head, the keys and values of the P positions seen so far
//! Query i of this call sits at position P + i and sees keys 0 ..= P + i.

use rayon::prelude::*;
use tract_nnef::internal::{
    tract_linalg::{reduce::MapReduce, routines::Func},
    *,
};

use super::{
    linear::{MappedMatrix, Projection},
    norm::RmsNorm,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionBlock {
    pub norm: RmsNorm,
    /// W_q, W_k, W_v: [n_heads·d_h, d], [n_kv·d_h, d], [n_kv·d_h, d].
    pub qkv: Projection,
    /// W_o: [d, n_heads·d_h].
    pub o: MappedMatrix,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// The graph's last layer: only its last position's output is read (the
    /// head sees one row), so every position's keys and values go into the
    /// cache, but only the last query attends, and W_o and the feed-forward
    /// half after this op run on one row. In a 47-token prefill that skips
    /// 3 % of the work.
    pub last_only: bool,
}

impl Op for AttentionBlock {
    fn name(&self) -> StaticName {
        "AttentionBlock".into()
    }
    op_as_typed_op!();
}

impl EvalOp for AttentionBlock {
    not_out_of_plan!();

    fn state(&self, _ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        Ok(Some(Box::new(KvCache {
            keys: vec![Vec::new(); self.n_kv_heads],
            values: vec![Vec::new(); self.n_kv_heads],
        })))
    }
}

impl TypedOp for AttentionBlock {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 3 && inputs.iter().all(|f| f.rank() == 2),
            "AttentionBlock takes x [S, d], cos and sin [S, head_dim]"
        );
        let mut shape = inputs[0].shape.to_tvec();
        if self.last_only {
            shape[0] = 1.into();
        }
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// The cache: for each KV head, `[P, d_h]` keys and values, row after row.
#[derive(Clone, Debug)]
struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl OpState for KvCache {
    fn eval(&mut self, _ctx: &EvalContext, op: &dyn Op, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let op = op.downcast_ref::<AttentionBlock>().context("AttentionBlock state on another op")?;
        let (nh, nkv, hd) = (op.n_heads, op.n_kv_heads, op.head_dim);
        let (x, cos, sin) = args_3!(inputs);
        let d = op.qkv.cols();
        let s = x.shape()[0];
        ensure!(
            x.shape() == [s, d] && cos.shape() == [s, hd] && sin.shape() == [s, hd],
            "AttentionBlock: shapes {:?} {:?} {:?}",
            x.shape(),
            cos.shape(),
            sin.shape()
        );
        ensure!(s > 0 || !op.last_only, "the last layer needs at least one new token");
        if s == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&[0, d])?.into_tvalue())); // no new token, nothing to attend
        }
        let (x, cos, sin) = (x.try_as_plain_ram()?, cos.try_as_plain_ram()?, sin.try_as_plain_ram()?);
        let (x, cos, sin) = (x.as_slice::<f32>()?, cos.as_slice::<f32>()?, sin.as_slice::<f32>()?);

        let h = op.norm.apply(x);
        let [mut q, mut k, v]: [Vec<f32>; 3] =
            op.qkv.apply(&h).try_into().map_err(|_| format_err!("AttentionBlock needs W_q, W_k and W_v"))?;
        rope(&mut q, nh * hd, cos, sin, hd);
        rope(&mut k, nkv * hd, cos, sin, hd);

        // Head-major from here: the cache and the score products want each
        // head's rows contiguous.
        let past = self.keys[0].len() / hd;
        for kv in 0..nkv {
            for i in 0..s {
                let at = i * nkv * hd + kv * hd;
                self.keys[kv].extend_from_slice(&k[at..at + hd]);
                self.values[kv].extend_from_slice(&v[at..at + hd]);
            }
        }
        let total = past + s;
        // The queries that attend (and rows that leave this op): all, or the last.
        let first = if op.last_only { s - 1 } else { 0 };
        let n = s - first;
        let scale = 1.0 / (hd as f32).sqrt();
        let group = nh / nkv.max(1);
        let mut heads = vec![0f32; nh * n * hd]; // [nh, n, hd]
        let (keys, values) = (&self.keys, &self.values);
        heads.par_chunks_mut(n * hd).enumerate().for_each(|(h, out)| {
            // Scaled here rather than each score: exact where the scale is a
            // power of two (d_h = 64: 1/8).
            let mut queries = Vec::with_capacity(n * hd);
            for i in first..s {
                queries.extend(q[i * nh * hd + h * hd..][..hd].iter().map(|v| v * scale));
            }
            let one = Head {
                keys: &keys[h / group],
                values: &values[h / group],
                queries: &queries,
                past: past + first,
                total,
                d: hd,
            };
            one.attend(out);
        });
        let mut merged = vec![0f32; n * nh * hd]; // [n, nh·hd]
        for (h, rows) in heads.chunks_exact(n * hd).enumerate() {
            for (i, row) in rows.chunks_exact(hd).enumerate() {
                merged[(i * nh + h) * hd..][..hd].copy_from_slice(row);
            }
        }
        Ok(tvec!(op.o.matmul_onto(&merged, &x[first * d..])?.into_tvalue()))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        self.keys.iter_mut().chain(self.values.iter_mut()).for_each(Vec::clear);
        Ok(())
    }
}

/// Rotary embedding in place, HF rotate-half layout: each head's vector
/// `[a, b]` (two halves) becomes `[a·cos − b·sin, b·cos + a·sin]`, with row i
/// of the tables ([S, hd]) for row i of `x` ([S, n·hd], rows `width` long).
fn rope(x: &mut [f32], width: usize, cos: &[f32], sin: &[f32], hd: usize) {
    let half = hd / 2;
    for ((row, cos), sin) in x.chunks_exact_mut(width).zip(cos.chunks_exact(hd)).zip(sin.chunks_exact(hd)) {
        for v in row.chunks_exact_mut(hd) {
            for j in 0..half {
                let (a, b) = (v[j], v[j + half]);
                v[j] = a * cos[j] - b * sin[j];
                v[j + half] = b * cos[j + half] + a * sin[j + half];
            }
        }
    }
}

/// One head's attention for a chunk of `queries` ([S, d], already scaled by
/// 1/√d) over `total` cached keys and values, `past` of them from before the
/// chunk.
struct Head<'a> {
    keys: &'a [f32],
    values: &'a [f32],
    queries: &'a [f32],
    past: usize,
    total: usize,
    d: usize,
}

/// tract's vectorised exp(x − max) with its sum, the kernel its own softmax
/// runs (libm's scalar expf was a quarter of the attention's own time).
fn softmax_kernel() -> Option<&'static dyn MapReduce<f32, f32>> {
    static KERNEL: std::sync::OnceLock<Option<Box<dyn MapReduce<f32, f32>>>> = std::sync::OnceLock::new();
    KERNEL.get_or_init(|| Func::Softmax2.map_reduce_f32().ok()).as_deref()
}

impl Head<'_> {
    /// [`Head::compute`], compiled for AVX2 where the CPU has it: its softmax
    /// and weighted sum of values are plain loops, which the baseline x86_64
    /// target vectorises only 4 wide (SSE). In prefill they are ~5 % of the time.
    fn attend(&self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(head: &Head, out: &mut [f32]) {
                // SAFETY (of `dot_avx2`): this function runs with AVX2 and FMA.
                head.compute(out, |q, k| unsafe { dot_avx2(q, k) })
            }
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { avx2(self, out) };
        }
        self.compute(out, dot)
    }

    /// Scores = q·kᵀ over the visible keys, softmax, then the weighted sum of
    /// the values, into `out` ([S, d]). Each query row by itself, with the
    /// same arithmetic whatever the chunk it came in: a primed session
    /// continued computes what a fresh one does.
    #[inline(always)]
    fn compute(&self, out: &mut [f32], dot: impl Fn(&[f32], &[f32]) -> f32) {
        let Head { keys, values, queries, past, total, d } = *self;
        let mut scores = vec![0f32; total];
        for (i, (q, o)) in queries.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            let row = &mut scores[..past + i + 1];
            for (score, key) in row.iter_mut().zip(keys.chunks_exact(d)) {
                *score = dot(q, key);
            }
            let max = lanes(row, f32::NEG_INFINITY, f32::max);
            // The kernel's own sum is not used: its order follows the row's
            // alignment in memory, and a primed session must compute what a
            // fresh one does (each exp does not depend on it).
            if !matches!(softmax_kernel().map(|k| k.run_with_params(row, max)), Some(Ok(_))) {
                row.iter_mut().for_each(|v| *v = (*v - max).exp());
            }
            let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
            if d == 64 {
                weighted_sum::<64>(row, inv, values, o);
            } else {
                for (p, value) in row.iter().zip(values.chunks_exact(d)) {
                    let w = p * inv;
                    for (o, x) in o.iter_mut().zip(value) {
                        *o = w.mul_add(*x, *o);
                    }
                }
            }
        }
    }
}

/// `q · k` in eight lanes (product j into lane j mod 8), the lanes then
/// summed as a tree; the values past the last whole eight after.
#[inline(always)]
fn dot(q: &[f32], k: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ((qs, q_tail), (ks, k_tail)) = (q.as_chunks::<8>(), k.as_chunks::<8>());
    for (a, b) in qs.iter().zip(ks) {
        for l in 0..8 {
            acc[l] = a[l].mul_add(b[l], acc[l]);
        }
    }
    let h = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    let tail: f32 = q_tail.iter().zip(k_tail).map(|(a, b)| a * b).sum();
    ((h[0] + h[2]) + (h[1] + h[3])) + tail
}

/// [`dot`]'s arithmetic in its order, in one AVX2 register: for a 64-value
/// head eight fused multiply-adds and a three-step reduction. LLVM split
/// `dot`'s eight lanes into four pairs of 128-bit halves, and the scores
/// took most of the attention's time in decode.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_avx2(q: &[f32], k: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let ((qs, q_tail), (ks, k_tail)) = (q.as_chunks::<8>(), k.as_chunks::<8>());
    let mut acc = _mm256_setzero_ps();
    for (a, b) in qs.iter().zip(ks) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(b.as_ptr()), acc);
    }
    // Lanes l + (l + 4), then (0 + 2) and (1 + 3), then the two.
    let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let tail: f32 = q_tail.iter().zip(k_tail).map(|(a, b)| a * b).sum();
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h))) + tail
}

/// `o += Σ_p (row[p] · inv) · values[p]` for a head of `D` values, the sums
/// held in registers across the positions (a slice of unknown length was
/// loaded and stored again for every position).
#[inline(always)]
fn weighted_sum<const D: usize>(row: &[f32], inv: f32, values: &[f32], o: &mut [f32]) {
    let mut acc = [0f32; D];
    acc.copy_from_slice(&o[..D]);
    for (p, value) in row.iter().zip(values.chunks_exact(D)) {
        let w = p * inv;
        for (a, x) in acc.iter_mut().zip(value) {
            *a = w.mul_add(*x, *a);
        }
    }
    o[..D].copy_from_slice(&acc);
}

/// `row` folded by `f` in eight lanes (value i into lane i mod 8), then the
/// lanes in order: eight independent chains where one fold waited on each
/// step in turn (a row of a few hundred scores took as many latencies),
/// and the same order whatever the row's place in memory.
#[inline(always)]
fn lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, *v);
        }
    }
    for (a, v) in acc.iter_mut().zip(tail) {
        *a = f(*a, *v);
    }
    acc.into_iter().fold(init, f)
}

#[cfg(test)]
mod tests {
    use super::{lanes, rope};

    /// The AVX2 dot product gives the portable one's bits, for heads of
    /// whole and partial eights.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_dot_product_equals_the_portable_one() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for d in [64usize, 128, 16, 12, 3] {
            // Products of many magnitudes: their sums in another order
            // round otherwise.
            let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.731).sin() * 10f32.powi((i % 7) as i32 - 3)).collect();
            let k: Vec<f32> = (0..d).map(|i| (i as f32 * 1.37 + 0.5).cos() * 1e3).collect();
            // SAFETY: the features were checked above.
            let fast = unsafe { super::dot_avx2(&q, &k) };
            assert_eq!(fast.to_bits(), super::dot(&q, &k).to_bits(), "d {d}");
        }
    }

    /// The eight-lane fold takes the largest value whatever its place (a
    /// NaN skipped, as `f32::max` skips it) and sums what one chain sums.
    #[test]
    fn lanes_fold_the_whole_row() {
        for n in [0usize, 1, 7, 8, 9, 17, 300] {
            let row: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32) - 50.0).collect();
            let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            assert_eq!(lanes(&row, f32::NEG_INFINITY, f32::max), max, "{n} values");
            // Integers: every order sums them exactly.
            assert_eq!(lanes(&row, 0.0, |a, b| a + b), row.iter().sum::<f32>(), "{n} values");
        }
        assert_eq!(lanes(&[1.0, f32::NAN, 3.0], f32::NEG_INFINITY, f32::max), 3.0);
    }

    /// Position 0 leaves a vector as it is; at angle θ each pair (x_j,
    /// x_{j+d/2}) turns by θ, as HF's rotate-half RoPE turns it.
    #[test]
    fn rope_turns_each_half_pair_by_its_angle() {
        let hd = 4;
        let (c, s) = (0.6f32, 0.8f32); // cos, sin of one angle
        let cos = [1.0, 1.0, 1.0, 1.0, c, 1.0, c, 1.0];
        let sin = [0.0, 0.0, 0.0, 0.0, s, 0.0, s, 0.0];
        // two tokens of two heads each
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0];
        rope(&mut x, 2 * hd, &cos, &sin, hd);
        assert_eq!(x[..8], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        // token 1, head 0: pair (x0, x2) = (1, 0) turns to (c, s); pair (x1, x3) = (0, 1) stays (angle 0).
        assert_eq!(x[8..12], [c, 0.0, s, 1.0]);
        // head 1: (2, 0) -> (2c, 2s).
        assert_eq!(x[12..16], [2.0 * c, 0.0, 2.0 * s, 0.0]);
    }
}
