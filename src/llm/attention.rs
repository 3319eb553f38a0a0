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
    kernels::RowFormat,
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
        let n = self.n_kv_heads;
        Ok(Some(Box::new(if cache_in_f16(self.o.format) {
            KvCache::F16(Rows::new(n))
        } else {
            KvCache::F32(Rows::new(n))
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

/// Whether the KV cache beside weights of this format holds f16: where the
/// weights are narrower than f32 (llama.cpp's default cache is f16 too).
/// It halves the bytes a decode step reads from the cache, which at a few
/// hundred positions are a tenth of the weights' bytes and are read from
/// memory, as the streaming weights push the cache out of L3. Beside f32
/// weights, the reference precision, it stays f32. The tensor graph
/// (tract's ops, for a GPU) keeps an f32 cache whatever the weights.
pub fn cache_in_f16(weights: RowFormat) -> bool {
    weights != RowFormat::F32
}

/// The cache: for each KV head, `[P, d_h]` keys and values, row after row.
#[derive(Clone, Debug)]
struct Rows<T> {
    keys: Vec<Vec<T>>,
    values: Vec<Vec<T>>,
}

/// See [`cache_in_f16`].
#[derive(Clone, Debug)]
enum KvCache {
    F32(Rows<f32>),
    F16(Rows<f16>),
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

        // The queries that attend (and rows that leave this op): all, or the last.
        let first = if op.last_only { s - 1 } else { 0 };
        let n = s - first;
        let heads = match self {
            KvCache::F32(rows) => rows.attend(op, &q, &k, &v, first),
            KvCache::F16(rows) => rows.attend(op, &q, &k, &v, first),
        };
        let mut merged = vec![0f32; n * nh * hd]; // [n, nh·hd]
        for (h, rows) in heads.chunks_exact(n * hd).enumerate() {
            for (i, row) in rows.chunks_exact(hd).enumerate() {
                merged[(i * nh + h) * hd..][..hd].copy_from_slice(row);
            }
        }
        Ok(tvec!(op.o.matmul_onto(&merged, &x[first * d..])?.into_tvalue()))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        match self {
            KvCache::F32(rows) => rows.clear(),
            KvCache::F16(rows) => rows.clear(),
        }
        Ok(())
    }
}

impl<T: CacheValue> Rows<T> {
    /// An empty cache for `n` KV heads.
    fn new(n: usize) -> Rows<T> {
        Rows { keys: vec![Vec::new(); n], values: vec![Vec::new(); n] }
    }

    fn clear(&mut self) {
        self.keys.iter_mut().chain(self.values.iter_mut()).for_each(Vec::clear);
    }

    /// Appends the new positions' keys and values (`k`, `v`: [S, n_kv·d_h],
    /// `k` after RoPE), then attends the queries from row `first` of `q`
    /// ([S, n_heads·d_h]): each head's output rows, `[n_heads, S − first,
    /// d_h]`.
    fn attend(&mut self, op: &AttentionBlock, q: &[f32], k: &[f32], v: &[f32], first: usize) -> Vec<f32> {
        let (nh, nkv, hd) = (op.n_heads, op.n_kv_heads, op.head_dim);
        let s = k.len() / (nkv * hd);
        // Head-major from here: the cache and the score products want each
        // head's rows contiguous.
        let past = self.keys[0].len() / hd;
        for kv in 0..nkv {
            for i in 0..s {
                let at = i * nkv * hd + kv * hd;
                T::append(&mut self.keys[kv], &k[at..at + hd]);
                T::append(&mut self.values[kv], &v[at..at + hd]);
            }
        }
        let total = past + s;
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
        heads
    }
}

/// What the cache holds a key or value as.
trait CacheValue: Copy + Send + Sync + 'static {
    #[cfg(all(test, target_arch = "x86_64"))]
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// `xs` onto the end of `dst`, rounded to the nearest.
    fn append(dst: &mut Vec<Self>, xs: &[f32]);
    /// Eight values from `p`, as f32.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C, and `p` point at eight values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl CacheValue for f32 {
    #[cfg(all(test, target_arch = "x86_64"))]
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn append(dst: &mut Vec<f32>, xs: &[f32]) {
        dst.extend_from_slice(xs);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller's.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
}

impl CacheValue for f16 {
    #[cfg(all(test, target_arch = "x86_64"))]
    fn from_f32(x: f32) -> f16 {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    /// Through `half`'s slice conversion, vectorised where the CPU allows.
    fn append(dst: &mut Vec<f16>, xs: &[f32]) {
        use half::slice::HalfFloatSliceExt;
        let at = dst.len();
        dst.resize(at + xs.len(), f16::ZERO);
        dst[at..].convert_from_f32_slice(xs);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
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
struct Head<'a, T> {
    keys: &'a [T],
    values: &'a [T],
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

impl<T: CacheValue> Head<'_, T> {
    /// [`Head::compute`] with AVX2 kernels where the CPU has them (and
    /// F16C, for an f16 cache): its softmax is a plain loop, which the
    /// baseline x86_64 target vectorises only 4 wide (SSE).
    fn attend(&self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn avx2<T: CacheValue>(head: &Head<T>, out: &mut [f32]) {
                // SAFETY (of both kernels): this function runs with AVX2, FMA and F16C.
                head.compute(
                    out,
                    |q, key| unsafe { dot_avx2(q, key) },
                    |row, inv, values, o| unsafe { weighted_sum_avx2(row, inv, values, o) },
                )
            }
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
            return unsafe { avx2(self, out) };
        }
        self.compute(out, dot, weighted_sum)
    }

    /// Scores = q·kᵀ over the visible keys, softmax, then the weighted sum of
    /// the values, into `out` ([S, d]). Each query row by itself, with the
    /// same arithmetic whatever the chunk it came in: a primed session
    /// continued computes what a fresh one does.
    #[inline(always)]
    fn compute(
        &self,
        out: &mut [f32],
        dot: impl Fn(&[f32], &[T]) -> f32,
        weighted_sum: impl Fn(&[f32], f32, &[T], &mut [f32]),
    ) {
        let Head { keys, values, queries, past, total, d } = *self;
        let mut row = vec![0f32; total];
        for (i, (q, o)) in queries.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
            let row = &mut row[..past + i + 1];
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
            weighted_sum(row, inv, values, o);
        }
    }
}

/// `q · k` in eight lanes (product j into lane j mod 8), the lanes then
/// summed as a tree; the values past the last whole eight after.
fn dot<T: CacheValue>(q: &[f32], k: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let ((qs, q_tail), (ks, k_tail)) = (q.as_chunks::<8>(), k.as_chunks::<8>());
    for (a, b) in qs.iter().zip(ks) {
        for l in 0..8 {
            acc[l] = a[l].mul_add(b[l].to_f32(), acc[l]);
        }
    }
    let h = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    let tail: f32 = q_tail.iter().zip(k_tail).map(|(a, b)| a * b.to_f32()).sum();
    ((h[0] + h[2]) + (h[1] + h[3])) + tail
}

/// [`dot`]'s arithmetic in its order, in one AVX2 register: for a 64-value
/// head eight fused multiply-adds and a three-step reduction. LLVM split
/// `dot`'s eight lanes into four pairs of 128-bit halves, and the scores
/// took most of the attention's time in decode.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_avx2<T: CacheValue>(q: &[f32], k: &[T]) -> f32 {
    use std::arch::x86_64::*;
    let ((qs, q_tail), (ks, k_tail)) = (q.as_chunks::<8>(), k.as_chunks::<8>());
    let mut acc = _mm256_setzero_ps();
    for (a, b) in qs.iter().zip(ks) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr()), T::load8(b.as_ptr()), acc);
    }
    // Lanes l + (l + 4), then (0 + 2) and (1 + 3), then the two.
    let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let tail: f32 = q_tail.iter().zip(k_tail).map(|(a, b)| a * b.to_f32()).sum();
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h))) + tail
}

/// `o += Σ_p (row[p] · inv) · values[p]`, each output value one chain of
/// fused multiply-adds in position order.
fn weighted_sum<T: CacheValue>(row: &[f32], inv: f32, values: &[T], o: &mut [f32]) {
    for (p, value) in row.iter().zip(values.chunks_exact(o.len())) {
        let w = p * inv;
        for (o, x) in o.iter_mut().zip(value) {
            *o = w.mul_add(x.to_f32(), *o);
        }
    }
}

/// [`weighted_sum`]'s arithmetic, with 64 output values at a time held in
/// eight registers across the positions (the slice's values were loaded
/// and stored again for every position), the rest eight at a time.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn weighted_sum_avx2<T: CacheValue>(row: &[f32], inv: f32, values: &[T], o: &mut [f32]) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn columns<T: CacheValue, const R: usize>(row: &[f32], inv: f32, values: &[T], o: &mut [f32], c0: usize) {
        let d = o.len();
        let mut acc: [__m256; R] = std::array::from_fn(|j| _mm256_loadu_ps(o.as_ptr().add(c0 + 8 * j)));
        for (p, value) in row.iter().zip(values.chunks_exact(d)) {
            let w = _mm256_set1_ps(p * inv);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(w, T::load8(value.as_ptr().add(c0 + 8 * j)), *a);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.as_mut_ptr().add(c0 + 8 * j), *a);
        }
    }
    let d = o.len();
    if !d.is_multiple_of(8) {
        return weighted_sum(row, inv, values, o);
    }
    let mut c0 = 0;
    while c0 + 64 <= d {
        columns::<T, 8>(row, inv, values, o, c0);
        c0 += 64;
    }
    while c0 < d {
        columns::<T, 1>(row, inv, values, o, c0);
        c0 += 8;
    }
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
    #[cfg(target_arch = "x86_64")]
    use super::{dot, weighted_sum, CacheValue};
    use super::{lanes, rope};
    #[cfg(target_arch = "x86_64")]
    use tract_nnef::internal::f16;

    /// The AVX2 dot product and value kernel give the portable ones' bits, for
    /// an f32 and an f16 cache, heads of whole and partial eights, and rows
    /// of one key and of many. (The values span magnitudes, so that sums in
    /// another order round otherwise: a reordered tree fails this.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_attention_kernels_equal_the_portable_ones() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")) {
            return;
        }
        fn bits(v: &[f32]) -> Vec<u32> {
            v.iter().map(|v| v.to_bits()).collect()
        }
        fn check<T: CacheValue>() {
            for (d, n) in [(64usize, 1usize), (64, 37), (16, 5), (12, 9), (128, 20)] {
                let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.731).sin() * 10f32.powi((i % 7) as i32 - 3)).collect();
                let kv: Vec<T> = (0..n * d).map(|i| T::from_f32((i as f32 * 1.37 + 0.5).cos() * 1e3)).collect();
                // SAFETY: the caller checked the features.
                let fast: Vec<f32> = kv.chunks_exact(d).map(|key| unsafe { super::dot_avx2(&q, key) }).collect();
                let slow: Vec<f32> = kv.chunks_exact(d).map(|key| dot(&q, key)).collect();
                assert_eq!(bits(&fast), bits(&slow), "scores, d {d}, {n} keys");
                let weights: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin().abs()).collect();
                let (mut fast, mut slow) = (q.clone(), q.clone());
                // SAFETY: the caller checked the features.
                unsafe { super::weighted_sum_avx2(&weights, 0.3, &kv, &mut fast) };
                weighted_sum(&weights, 0.3, &kv, &mut slow);
                assert_eq!(bits(&fast), bits(&slow), "values, d {d}, {n} keys");
            }
        }
        check::<f32>();
        check::<f16>();
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
