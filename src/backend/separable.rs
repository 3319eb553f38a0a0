//! BlazeFace's and FaceMesh's building block as one op: a depthwise k×k
//! conv, a pointwise (1×1) conv, the block's input added back, then ReLU or
//! PReLU, `y = act(x + P·D(x))`, NCHW.
//!
//! tract runs the block as four ops, each a full pass over a tensor that at
//! 24 channels × 128 × 128 (1.5 MB) no longer fits in L2: the depthwise
//! conv, packing its output for the matrix product, the product, and the
//! add-and-activate. Here the block goes one output row at a time: the
//! depthwise row of every channel stays in L1 and feeds the pointwise sums
//! at once, and the residual and activation are applied as each strip of the
//! output is stored. Each tensor is read once (the input rows `k` times,
//! from cache) and the output written once. Rows of whole 32-pixel strips
//! are read in place; others are first copied into a ring of zero-bordered
//! rows. Small maps whose rows are not whole 16-pixel strips (FaceMesh's
//! 24 × 24 to 3 × 3) keep the whole depthwise output instead, and take the
//! pointwise sums over it as one row.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Output pixels per pointwise strip, and output channels per tile: a
/// tile's sums (6 × 16 f32) take 12 of AVX2's 16 registers.
#[cfg(target_arch = "x86_64")]
const LANES: usize = 16;
const OUT_TILE: usize = 6;
/// Output pixels per depthwise strip (three sets of 4 registers of sums).
#[cfg(target_arch = "x86_64")]
const DW_LANES: usize = 32;
/// Up to this many values (C·H·W), a map whose rows 16-pixel strips fit
/// badly is summed as one long row: its depthwise output (as many values,
/// 256 KiB) stays in L2.
#[cfg(target_arch = "x86_64")]
const FLAT_VALUES: usize = 64 << 10;
/// Where a ring row's values start: its left zero border (K/2 ≤ 8) ends
/// on a 32-byte boundary.
#[cfg(target_arch = "x86_64")]
const LEAD: usize = 8;

/// What follows the residual sum.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    /// One slope per channel.
    Prelu(Vec<f32>),
}

impl Activation {
    #[inline(always)]
    fn apply(&self, channel: usize, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Prelu(a) => {
                if v < 0.0 {
                    v * a[channel]
                } else {
                    v
                }
            }
        }
    }
}

/// `y = act(x + pw · dw(x))` over `[1, C, H, W]`, with a k×k depthwise conv
/// (stride 1, zero padding k/2) and a C×C pointwise one, both with biases.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualSeparableConv {
    channels: usize,
    k: usize,
    /// `[C][k][k]`.
    dw_kernel: Vec<f32>,
    dw_bias: Vec<f32>,
    /// `[C rounded up to OUT_TILE][C]`, the extra rows zero.
    pw_kernel: Vec<f32>,
    pw_bias: Vec<f32>,
    activation: Activation,
}

// The weights are a model's, never NaN.
impl Eq for ResidualSeparableConv {}

impl ResidualSeparableConv {
    /// `dw_kernel` `[C][k][k]`, `pw_kernel` `[C out][C in]`, biases of C
    /// values; `k` 3 or 5.
    pub fn new(
        channels: usize,
        k: usize,
        dw_kernel: Vec<f32>,
        dw_bias: Vec<f32>,
        mut pw_kernel: Vec<f32>,
        mut pw_bias: Vec<f32>,
        activation: Activation,
    ) -> TractResult<ResidualSeparableConv> {
        ensure!(k == 3 || k == 5, "ResidualSeparableConv takes 3×3 and 5×5 kernels, not {k}×{k}");
        ensure!(
            dw_kernel.len() == channels * k * k && dw_bias.len() == channels,
            "depthwise weights of the wrong size"
        );
        ensure!(
            pw_kernel.len() == channels * channels && pw_bias.len() == channels,
            "pointwise weights of the wrong size"
        );
        if let Activation::Prelu(a) = &activation {
            ensure!(a.len() == channels, "{} PReLU slopes for {channels} channels", a.len());
        }
        let tiles = channels.div_ceil(OUT_TILE) * OUT_TILE;
        pw_kernel.resize(tiles * channels, 0.0);
        pw_bias.resize(tiles, 0.0);
        Ok(ResidualSeparableConv { channels, k, dw_kernel, dw_bias, pw_kernel, pw_bias, activation })
    }

    fn run(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::op::available() {
            // SAFETY: `available` checked the features.
            return unsafe { self.rows_avx2(x, h, w, out) };
        }
        self.rows_portable(x, h, w, out)
    }

    /// The reference: the same arithmetic, one value at a time.
    fn rows_portable(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let (c, k) = (self.channels, self.k);
        let p = k / 2;
        let mut d = vec![0f32; c * w];
        for y in 0..h {
            for ch in 0..c {
                for i in 0..w {
                    let mut acc = self.dw_bias[ch];
                    for ky in 0..k {
                        for kx in 0..k {
                            // Taps outside the input read the zero padding.
                            let (Some(sy), Some(sx)) = ((y + ky).checked_sub(p), (i + kx).checked_sub(p)) else {
                                continue;
                            };
                            if sy < h && sx < w {
                                acc += self.dw_kernel[(ch * k + ky) * k + kx] * x[(ch * h + sy) * w + sx];
                            }
                        }
                    }
                    d[ch * w + i] = acc;
                }
            }
            for o in 0..c {
                let at = (o * h + y) * w;
                for i in 0..w {
                    let mut acc = self.pw_bias[o];
                    for ch in 0..c {
                        acc += self.pw_kernel[o * c + ch] * d[ch * w + i];
                    }
                    out[at + i] = self.activation.apply(o, acc + x[at + i]);
                }
            }
        }
    }

    /// AVX2: per output row, the depthwise row of every channel in 16-pixel
    /// strips (two registers of sums, the k² taps loaded unaligned from the
    /// padded rows), then the pointwise sums for 4 output channels × 16
    /// pixels at a time (8 registers), each depthwise strip loaded once per
    /// 4 output channels, and the residual and activation on the way out.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (c, k) = (self.channels, self.k);
        let p = k / 2;
        let zero = _mm256_setzero_ps();
        let pointwise = |d: &[f32], rows: Rows| match &self.activation {
            Activation::None => self.pointwise_row(d, rows, |v, _| v),
            Activation::Relu => self.pointwise_row(d, rows, |v, _| _mm256_max_ps(v, zero)),
            Activation::Prelu(alpha) => self.pointwise_row(d, rows, |v, o| {
                // Where v's sign bit is set, v·α.
                _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(alpha[o])), v)
            }),
        };
        if w.is_multiple_of(LANES) {
            // Rows of whole strips (BlazeFace's 128, 64, 32 and 16) are read
            // where they are, their borders through masked loads: copying
            // each row into the ring took 1 % of a frame, and BlazeFace's
            // 128 × 128 blocks went from 0.47 to 0.44 ms. A 16-pixel row
            // takes strips of 16 (in the ring, a strip of 32, half of it
            // wasted: its 16 × 16 blocks went from 0.088 to 0.073 ms).
            let mut d = vec![0f32; c * w];
            for y in 0..h {
                match (k, w.is_multiple_of(DW_LANES)) {
                    (3, true) => self.depthwise_row_direct::<3, 4>(x, h, w, y, &mut d),
                    (3, false) => self.depthwise_row_direct::<3, 2>(x, h, w, y, &mut d),
                    (_, true) => self.depthwise_row_direct::<5, 4>(x, h, w, y, &mut d),
                    (_, false) => self.depthwise_row_direct::<5, 2>(x, h, w, y, &mut d),
                }
                pointwise(&d, Rows { x, out: &mut *out, y, h, w, wp: w });
            }
            return;
        }
        // Rows are computed in whole depthwise strips (32 pixels); the tail
        // past `w` is never stored.
        let wp = w.div_ceil(DW_LANES) * DW_LANES;
        // The k input rows the current output row reads, per channel, each
        // with its zero border: a ring, into which each input row is copied
        // once, as it comes into reach. Slot (sy + p) % k holds input row sy.
        // Each row's values start 8 in and its length is a multiple of 8,
        // from a 32-byte aligned start: the centre tap's loads are aligned,
        // and fewer of the others split across cache lines.
        let plen = (LEAD + wp + p).div_ceil(8) * 8;
        let mut storage = vec![0f32; c * k * plen + 8];
        let aligned = storage.as_ptr().align_offset(32).min(8);
        let ring = &mut storage[aligned..];
        let load = |ring: &mut [f32], sy: isize| {
            let slot = (sy + p as isize) as usize % k;
            for ch in 0..c {
                let row = &mut ring[(ch * k + slot) * plen + LEAD..][..w];
                match usize::try_from(sy).ok().filter(|&sy| sy < h) {
                    Some(sy) => row.copy_from_slice(&x[(ch * h + sy) * w..][..w]),
                    None => row.fill(0.0),
                }
            }
        };
        for sy in -(p as isize)..p as isize {
            load(ring, sy);
        }
        // Rows that 16-pixel strips fit badly, in a small map (FaceMesh's
        // 24 × 24 down to 3 × 3), go through the pointwise conv as one row
        // of h·w pixels: every depthwise row goes into `d` first, at y·w in
        // each channel's run of `stride` (a strip's tail past w is
        // overwritten by the next row). Row by row, a 12-pixel row took a
        // whole 16-pixel strip, and a 3-pixel one too: FaceMesh's blocks at
        // 12 × 12 went from 0.18 to 0.09 ms, the model from 2.4 to 2.0 ms.
        let flat = h > 0 && !w.is_multiple_of(LANES) && c * h * w <= FLAT_VALUES;
        let stride = if flat { ((h - 1) * w + wp).div_ceil(LANES) * LANES } else { wp };
        let mut d = vec![0f32; c * stride];
        for y in 0..h {
            load(ring, (y + p) as isize);
            let at = if flat { y * w } else { 0 };
            match k {
                3 => self.depthwise_row::<3>(ring, y, plen, wp, &mut d[at..], stride),
                _ => self.depthwise_row::<5>(ring, y, plen, wp, &mut d[at..], stride),
            }
            if !flat {
                pointwise(&d, Rows { x, out: &mut *out, y, h, w, wp });
            }
        }
        if flat {
            pointwise(&d, Rows { x, out, y: 0, h: 1, w: h * w, wp: stride });
        }
    }
}

/// Where the pointwise sums of output row `y` go: the block's input (for
/// the residual) and output, `[C][h][w]`, and the depthwise rows' length.
#[cfg(target_arch = "x86_64")]
struct Rows<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    y: usize,
    h: usize,
    w: usize,
    wp: usize,
}

impl ResidualSeparableConv {
    /// The pointwise sums of output row `y` from the depthwise rows `d`, 6
    /// output channels × 16 pixels at a time (12 registers), each depthwise
    /// strip loaded once per tile, then the residual and `act` (monomorphised
    /// per activation, so the strip's epilogue has no branch) on the way out.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pointwise_row(
        &self,
        d: &[f32],
        rows: Rows,
        act: impl Fn(std::arch::x86_64::__m256, usize) -> std::arch::x86_64::__m256,
    ) {
        use std::arch::x86_64::*;
        let c = self.channels;
        let Rows { x, out, y, h, w, wp } = rows;
        for o0 in (0..c).step_by(OUT_TILE) {
            // pw_kernel has whole tiles of rows: o0 + OUT_TILE - 1 is in bounds.
            let wrow = self.pw_kernel.as_ptr().add(o0 * c);
            // x0 < w keeps x0 + 16 ≤ wp: d holds whole strips.
            for x0 in (0..w).step_by(LANES) {
                let mut acc: [[__m256; 2]; OUT_TILE] =
                    std::array::from_fn(|j| [_mm256_set1_ps(self.pw_bias[o0 + j]); 2]);
                for ch in 0..c {
                    let src = d.as_ptr().add(ch * wp + x0);
                    let (d0, d1) = (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)));
                    for (j, a) in acc.iter_mut().enumerate() {
                        let wv = _mm256_broadcast_ss(&*wrow.add(j * c + ch));
                        a[0] = _mm256_fmadd_ps(wv, d0, a[0]);
                        a[1] = _mm256_fmadd_ps(wv, d1, a[1]);
                    }
                }
                let n = LANES.min(w - x0);
                let tile = OUT_TILE.min(c - o0);
                if n == LANES {
                    for (j, a) in acc.iter().enumerate().take(tile) {
                        let at = ((o0 + j) * h + y) * w + x0;
                        for (half, sum) in a.iter().enumerate() {
                            let res = _mm256_loadu_ps(x.as_ptr().add(at + 8 * half));
                            _mm256_storeu_ps(
                                out.as_mut_ptr().add(at + 8 * half),
                                act(_mm256_add_ps(*sum, res), o0 + j),
                            );
                        }
                    }
                    continue;
                }
                for (j, a) in acc.iter().enumerate().take(tile) {
                    let o = o0 + j;
                    let at = (o * h + y) * w + x0;
                    let mut sums = [0f32; LANES];
                    _mm256_storeu_ps(sums.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(sums.as_mut_ptr().add(8), a[1]);
                    for i in 0..n {
                        out[at + i] = self.activation.apply(o, sums[i] + x[at + i]);
                    }
                }
            }
        }
    }

    /// Output row `y` of the depthwise conv, every channel, into `d`
    /// (channel `ch`'s `wp` values at `ch · stride`), from the ring of input
    /// rows, whose zero borders the edge taps read.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn depthwise_row<const K: usize>(
        &self,
        ring: &[f32],
        y: usize,
        plen: usize,
        wp: usize,
        d: &mut [f32],
        stride: usize,
    ) {
        // Where each kernel row's input row sits in a channel's ring slots;
        // its values start LEAD in. In bounds: LEAD + x0 + 32 + K/2 ≤ plen.
        let rows: [usize; K] = std::array::from_fn(|ky| ((y + ky) % K) * plen + LEAD);
        let ring = ring.as_ptr();
        self.depthwise_strips::<K, false, 4>(|ch, ky| Some(ring.add(ch * K * plen + rows[ky])), wp, d, stride)
    }

    /// [`Self::depthwise_row`] for rows of whole strips of `8 · Q` pixels,
    /// read in place from `x` (`[C][h][w]`) into `d` (`[C][w]`): a kernel
    /// row outside the map adds nothing, and the taps past a row's ends are
    /// masked.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn depthwise_row_direct<const K: usize, const Q: usize>(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        y: usize,
        d: &mut [f32],
    ) {
        debug_assert!(w.is_multiple_of(8 * Q) && x.len() >= self.channels * h * w);
        let x = x.as_ptr();
        let row = |ch: usize, ky: usize| {
            let sy = (y + ky).checked_sub(K / 2).filter(|&sy| sy < h)?;
            Some(x.add((ch * h + sy) * w))
        };
        self.depthwise_strips::<K, true, Q>(row, w, d, w)
    }

    /// The depthwise sums of one output row in strips of `8 · Q` pixels
    /// (`Q` registers; 32 pixels in the ring), the K² taps
    /// unrolled. `row(ch, ky)` is where channel `ch`'s input row for kernel
    /// row `ky` has its first pixel, `None` for a row outside the map (it
    /// adds nothing). Tap kx of pixel i reads i + kx - K/2: with `EDGES`
    /// the taps left of a row's first pixel and right of its last (row
    /// length `wp`) are masked loads, whose masked lanes read nothing and
    /// give zero; without, the row has zero borders to read.
    ///
    /// Kernel row `ky` sums into set `ky % 3` of `Q` registers: three
    /// independent chains per register, so that the FMA's latency (5
    /// cycles, 2 in flight per cycle) does not bound the loop, as one or two
    /// chains did (BlazeFace's 3 × 3 rows took 3 × the FMA time).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn depthwise_strips<const K: usize, const EDGES: bool, const Q: usize>(
        &self,
        row: impl Fn(usize, usize) -> Option<*const f32>,
        wp: usize,
        d: &mut [f32],
        stride: usize,
    ) {
        use std::arch::x86_64::*;
        let p = K / 2;
        // Lane i of tap kx's first register reads pixel i + kx - p of the
        // strip: left of the row where that is negative, right of it (in
        // the last register) where it is 8 or more.
        let lanes = |keep: &dyn Fn(isize) -> bool| {
            let m: [i32; 8] = std::array::from_fn(|i| if keep(i as isize) { -1 } else { 0 });
            _mm256_loadu_si256(m.as_ptr() as *const __m256i)
        };
        let left: [__m256i; K] = std::array::from_fn(|kx| lanes(&|i| i + kx as isize - p as isize >= 0));
        let right: [__m256i; K] = std::array::from_fn(|kx| lanes(&|i| i + (kx as isize - p as isize) < 8));
        let zero = _mm256_setzero_ps();
        for ch in 0..self.channels {
            let out = &mut d[ch * stride..][..wp];
            let kernel = &self.dw_kernel[ch * K * K..][..K * K];
            // Null for a row outside the map.
            let rows: [*const f32; K] = std::array::from_fn(|ky| row(ch, ky).unwrap_or(std::ptr::null()));
            for x0 in (0..wp).step_by(8 * Q) {
                let (first, last) = (EDGES && x0 == 0, EDGES && x0 + 8 * Q == wp);
                let mut sums = [[zero; Q]; 3];
                sums[0] = [_mm256_set1_ps(self.dw_bias[ch]); Q];
                for (ky, &start) in rows.iter().enumerate() {
                    if start.is_null() {
                        continue;
                    }
                    // Wrapping: at a row's edges, outside it (only where
                    // masked, or in the ring's zero border).
                    let src = start.add(x0).wrapping_sub(p);
                    for kx in 0..K {
                        let wv = _mm256_set1_ps(kernel[ky * K + kx]);
                        for (q, sum) in sums[ky % 3].iter_mut().enumerate() {
                            let at = src.wrapping_add(kx + 8 * q);
                            let v = if first && q == 0 && kx < p {
                                _mm256_maskload_ps(at, left[kx])
                            } else if last && q == Q - 1 && kx > p {
                                _mm256_maskload_ps(at, right[kx])
                            } else {
                                _mm256_loadu_ps(at)
                            };
                            *sum = _mm256_fmadd_ps(wv, v, *sum);
                        }
                    }
                }
                let [a, b, c] = sums;
                for (q, ((a, b), c)) in a.into_iter().zip(b).zip(c).enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(x0 + 8 * q), _mm256_add_ps(_mm256_add_ps(a, b), c));
                }
            }
        }
    }
}

impl Op for ResidualSeparableConv {
    fn name(&self) -> StaticName {
        "ResidualSeparableConv".into()
    }
    op_as_typed_op!();
}

impl EvalOp for ResidualSeparableConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        ensure!(
            shape.len() == 4 && shape[0] == 1 && shape[1] == self.channels,
            "ResidualSeparableConv takes [1, {}, H, W], not {shape:?}",
            self.channels
        );
        super::op::write_f32(&x, &shape, |x, y| {
            self.run(x, shape[2], shape[3], y);
            Ok(())
        })
    }
}

impl TypedOp for ResidualSeparableConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 1 && inputs[0].datum_type == f32::datum_type() && inputs[0].rank() == 4,
            "ResidualSeparableConv takes one f32 [1, C, H, W] tensor"
        );
        Ok(tvec!(f32::fact(inputs[0].shape.to_tvec())))
    }
    as_op!();
}

// The AVX2 kernel against the reference; on AArch64 the block stays tract's.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_avx2_kernel_equals_the_portable_one() {
        if !super::super::op::available() {
            return;
        }
        let values = |n, seed| super::super::rewrite::test_values(n, seed, 40.0);
        for (c, h, w, k, activation) in [
            (5, 7, 37, 3, Activation::Relu),
            (24, 4, 128, 3, Activation::Prelu(values(24, 9))),
            (3, 3, 33, 5, Activation::None),
            (8, 2, 1, 3, Activation::Prelu(vec![0.25; 8])),
            // Rows of partial strips too big to be summed as one row.
            (4, 130, 130, 3, Activation::Relu),
            // Rows of whole strips, read in place: one strip, and several.
            (6, 5, 32, 5, Activation::Relu),
            (24, 9, 128, 3, Activation::None),
            (7, 1, 64, 5, Activation::Prelu(values(7, 6))),
            // Rows of whole 16-pixel strips: one, and three.
            (12, 6, 16, 3, Activation::Relu),
            (5, 4, 48, 5, Activation::None),
        ] {
            let op = ResidualSeparableConv::new(
                c,
                k,
                values(c * k * k, 1),
                values(c, 2),
                values(c * c, 3),
                values(c, 4),
                activation,
            )
            .unwrap();
            let x = values(c * h * w, 5);
            let (mut fast, mut slow) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            unsafe { op.rows_avx2(&x, h, w, &mut fast) };
            op.rows_portable(&x, h, w, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{c}×{h}×{w} k {k}: {a} vs {b}");
            }
        }
    }
}
