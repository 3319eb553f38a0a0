//! A depthwise k×k conv (one filter per channel, stride 1 or 2) with its
//! bias and the clamp that follows it (ReLU, ReLU6) applied on the way out.
//!
//! FaceRes is a MobileNet: thirteen depthwise convs, each followed by a
//! ReLU6 that tract runs as a separate pass. tract's depthwise kernel walks
//! the output a pixel at a time through its padding zones, which for these
//! shapes ran at 3–4 GMAC/s here; with the clamp passes it was 30 % of
//! FaceRes's time. Here each channel's plane is copied once into a zero
//! padded buffer (split into even and odd columns for stride 2, so every
//! tap reads a contiguous run), and each output row is summed 8 pixels to a
//! register, the taps' weights broadcast, the clamp applied before the store.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};

use super::op::{write_f32, Padding};
use super::rewrite::{clamp_after, const_values, each_channel, replace_chain};

/// Where the channel axis is: `[N,] C, H, W` or `[N,] H, W, C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    ChannelsFirst,
    ChannelsLast,
}

impl Layout {
    /// The (channel, row, column) axes of a tensor in this layout, after a
    /// leading batch axis where `batch`.
    pub fn axes(self, batch: bool) -> (usize, usize, usize) {
        let b = batch as usize;
        match self {
            Layout::ChannelsFirst => (b, b + 1, b + 2),
            Layout::ChannelsLast => (b + 2, b, b + 1),
        }
    }
}

/// `y = clamp(bias + dw(x), lo, hi)` over `[1, C, H, W]`, `[C, H, W]`,
/// `[1, H, W, C]` or `[H, W, C]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv {
    pub layout: Layout,
    /// Whether the tensor has a leading batch axis of 1.
    pub batch: bool,
    pub channels: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: Padding,
    /// `[C][k][k]`.
    pub kernel: Vec<f32>,
    pub bias: Vec<f32>,
    /// The activation, as a clamp: `-∞, ∞` when there is none.
    pub lo: f32,
    pub hi: f32,
}

// The weights are a model's, never NaN.
impl Eq for DepthwiseConv {}

/// A zero-padded input plane as the kernels read it: for stride 2 as two
/// half-width planes, the even and the odd padded columns, so that every
/// tap of a strided window reads a contiguous run. `stride` phase planes of
/// `rows` rows of `len` values; stride 1 or 2 only.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct PhasePlanes {
    pub rows: usize,
    pub len: usize,
    pub stride: usize,
}

#[cfg(target_arch = "x86_64")]
impl PhasePlanes {
    /// For an input of `rows` × `cols` padded values, whose output rows
    /// are computed `wide` pixels at a time (the tail past the output's
    /// width included) by a k×k window: every strip's last tap stays inside
    /// a row.
    pub fn new(rows: usize, cols: usize, stride: usize, wide: usize, k: usize) -> PhasePlanes {
        debug_assert!(stride == 1 || stride == 2);
        PhasePlanes { rows, len: cols.div_ceil(stride).max(wide + k / stride), stride }
    }

    pub fn size(&self) -> usize {
        self.stride * self.rows * self.len
    }

    /// Where padded value (`r`, `col`) goes: phase `col % s`, index `col / s`
    /// (as a mask and a shift: this runs once per input value).
    #[inline]
    pub fn at(&self, r: usize, col: usize) -> usize {
        let shift = self.stride - 1;
        ((col & shift) * self.rows + r) * self.len + (col >> shift)
    }

    /// Copies the input row `src[i · step]`, `i < w`, into padded row `r` of
    /// `plane` from padded column `left`: per phase one contiguous run.
    /// Inlined, so that it takes its caller's AVX2.
    #[inline]
    pub fn put_row(&self, plane: &mut [f32], r: usize, left: usize, src: &[f32], step: usize, w: usize) {
        let s = self.stride;
        if s == 2 {
            // Padded column `col` goes to phase `col % 2`, at `col / 2`. An
            // odd left pad sends the row's first value to the odd phase; from
            // there on the values come in pairs of pixels, `2 · step` values
            // (an iterator stepping by 2 took 3 × as long on FaceRes's
            // strided depthwise convs, and one indexing by `(i0 + 2j) · step`
            // as long again on the stems' interleaved RGB).
            let (even, odd) = (self.at(r, 0), self.at(r, 1));
            let skip = left % 2;
            if skip == 1 {
                plane[odd + left / 2] = src[0];
            }
            let start = left.div_ceil(2);
            let (n, body) = ((w - skip) / 2, &src[skip * step..]);
            if (w - skip) % 2 == 1 {
                plane[even + start + n] = src[(w - 1) * step];
            }
            let (evens, odds) = plane.split_at_mut(odd);
            let (evens, odds) = (&mut evens[even + start..][..n], &mut odds[start..][..n]);
            // A constant step for the planar rows of the depthwise convs: a
            // chunk size known at compile time halves their copy.
            if step == 1 {
                split_pairs(body, 1, evens, odds);
            } else {
                split_pairs(body, step, evens, odds);
            }
            return;
        }
        for phase in 0..s {
            // The first input value whose padded column falls in this phase.
            let i0 = (phase + s - left % s) % s;
            if i0 >= w {
                continue;
            }
            let at = self.at(r, left + i0);
            for (j, d) in plane[at..at + (w - i0).div_ceil(s)].iter_mut().enumerate() {
                *d = src[(i0 + j * s) * step];
            }
        }
    }

    /// Each tap's offset from its output row's first read, tap `ky·k + kx`.
    pub fn taps(&self, k: usize) -> Vec<usize> {
        (0..k * k).map(|t| self.at(t / k, t % k)).collect()
    }
}

/// Pixel pair `j` of `body` (values `2j · step` and `(2j + 1) · step`)
/// into `evens[j]` and `odds[j]`. Whole chunks of `2 · step`, except where
/// an interleaved row's last pixel ends the slice before its chunk would:
/// that pair comes after.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn split_pairs(body: &[f32], step: usize, evens: &mut [f32], odds: &mut [f32]) {
    let done = (body.len() / (2 * step)).min(evens.len());
    let pairs = body[..done * 2 * step].chunks_exact(2 * step);
    for ((pair, e), o) in pairs.zip(&mut evens[..done]).zip(&mut odds[..done]) {
        (*e, *o) = (pair[0], pair[step]);
    }
    for j in done..evens.len() {
        (evens[j], odds[j]) = (body[2 * j * step], body[(2 * j + 1) * step]);
    }
}

/// One channel's geometry.
#[derive(Clone, Copy)]
struct Plane {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl DepthwiseConv {
    fn output_size(&self, input: usize, axis: usize) -> Option<usize> {
        self.pad.windows(axis, input, self.k, self.stride)
    }

    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        let (c, h, w) = self.layout.axes(self.batch);
        ensure!(shape.len() == w.max(c) + 1, "DepthwiseConv: a rank-{} input", shape.len());
        let mut out: TVec<D> = shape.into();
        for (axis, i) in [h, w].into_iter().enumerate() {
            let n = shape[i].to_usize()?;
            let o = self.output_size(n, axis).ok_or_else(|| format_err!("DepthwiseConv: input of {n} < kernel"))?;
            out[i] = D::from(o);
        }
        Ok(out)
    }

    fn run(&self, x: &[f32], plane: Plane, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::op::available() {
            // SAFETY: `available` checked the features.
            return unsafe {
                match self.layout {
                    Layout::ChannelsFirst => self.channels_first_avx2(x, plane, out),
                    Layout::ChannelsLast => self.channels_last_avx2(x, plane, out),
                }
            };
        }
        self.portable(x, plane, out)
    }

    /// The reference: one value at a time, either layout.
    fn portable(&self, x: &[f32], p: Plane, out: &mut [f32]) {
        let (c, k, s) = (self.channels, self.k, self.stride);
        let index = |ch: usize, y: usize, x: usize, w: usize, h: usize| match self.layout {
            Layout::ChannelsFirst => (ch * h + y) * w + x,
            Layout::ChannelsLast => (y * w + x) * c + ch,
        };
        for ch in 0..c {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut acc = self.bias[ch];
                    for ky in 0..k {
                        for kx in 0..k {
                            let (Some(iy), Some(ix)) = (
                                (oy * s + ky).checked_sub(self.pad.before[0]),
                                (ox * s + kx).checked_sub(self.pad.before[1]),
                            ) else {
                                continue;
                            };
                            if iy < p.h && ix < p.w {
                                acc += self.kernel[(ch * k + ky) * k + kx] * x[index(ch, iy, ix, p.w, p.h)];
                            }
                        }
                    }
                    out[index(ch, oy, ox, p.ow, p.oh)] = acc.max(self.lo).min(self.hi);
                }
            }
        }
    }

    /// Per channel: the plane, zero padded, into `buf` (for stride 2 as two
    /// half-width planes of the even and odd padded columns), then each
    /// output row in strips of 8·N pixels, N registers of sums.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn channels_first_avx2(&self, x: &[f32], p: Plane, out: &mut [f32]) {
        let (k, s) = (self.k, self.stride);
        let strips = if p.ow <= 8 {
            8
        } else if p.ow <= 16 {
            16
        } else {
            32
        };
        let (rows, cols) = (self.pad.padded(0, p.h), self.pad.padded(1, p.w));
        let planes = PhasePlanes::new(rows, cols, s, p.ow.div_ceil(strips) * strips, k);
        let len = planes.len;
        let mut buf = vec![0f32; planes.size()];
        // Computed once: no division by the stride in the loops.
        let offsets = planes.taps(k);
        for ch in 0..self.channels {
            let plane = &x[ch * p.h * p.w..][..p.h * p.w];
            for (iy, row) in plane.chunks_exact(p.w).enumerate() {
                let r = iy + self.pad.before[0];
                let left = self.pad.before[1];
                if s == 1 {
                    // Rows are short (7 to 112 values): a call to memcpy per
                    // row cost more than the copy.
                    let dst = buf.as_mut_ptr().add(r * len + left);
                    let mut i = 0;
                    while i + 8 <= p.w {
                        std::arch::x86_64::_mm256_storeu_ps(
                            dst.add(i),
                            std::arch::x86_64::_mm256_loadu_ps(row.as_ptr().add(i)),
                        );
                        i += 8;
                    }
                    for (j, &v) in row.iter().enumerate().skip(i) {
                        *dst.add(j) = v;
                    }
                    continue;
                }
                planes.put_row(&mut buf, r, left, row, 1, p.w);
            }
            let kernel = &self.kernel[ch * k * k..][..k * k];
            // The rest of the output, not just this channel's: see `rows_avx2`.
            let dst = &mut out[ch * p.oh * p.ow..];
            match strips {
                8 => self.rows_avx2::<1>(&buf, &offsets, len, kernel, self.bias[ch], p, dst),
                16 => self.rows_avx2::<2>(&buf, &offsets, len, kernel, self.bias[ch], p, dst),
                _ => self.rows_avx2::<4>(&buf, &offsets, len, kernel, self.bias[ch], p, dst),
            }
        }
    }

    /// One channel's output rows from its padded (phase) planes in `buf`,
    /// whose rows are `len` long; `offsets[t]` is where tap `t` reads.
    /// `out` starts at the channel's first row and runs to the end of the
    /// output: a strip past a row's end is stored whole over the values
    /// after it, which come later in the output and are written after it
    /// (a copy of the partial strip per row, a call to memcpy, cost more
    /// than the sums on FaceRes's 14 × 14 and 7 × 7 maps).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows_avx2<const N: usize>(
        &self,
        buf: &[f32],
        offsets: &[usize],
        len: usize,
        kernel: &[f32],
        bias: f32,
        p: Plane,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let s = self.stride;
        let (lo, hi) = (_mm256_set1_ps(self.lo), _mm256_set1_ps(self.hi));
        for oy in 0..p.oh {
            let row = buf.as_ptr().add(oy * s * len);
            for x0 in (0..p.ow).step_by(8 * N) {
                let mut acc = [_mm256_set1_ps(bias); N];
                for (&offset, &weight) in offsets.iter().zip(kernel) {
                    // In bounds: x0 + 8N + kx/s ≤ len (see `len`).
                    let src = row.add(offset + x0);
                    let wv = _mm256_set1_ps(weight);
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src.add(8 * q)), *a);
                    }
                }
                let n = (8 * N).min(p.ow - x0);
                let dst = &mut out[oy * p.ow + x0..];
                if dst.len() >= 8 * N {
                    for (q, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(dst.as_mut_ptr().add(8 * q), _mm256_min_ps(_mm256_max_ps(*a, lo), hi));
                    }
                } else {
                    let mut sums = [0f32; 32];
                    for (q, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(sums.as_mut_ptr().add(8 * q), _mm256_min_ps(_mm256_max_ps(*a, lo), hi));
                    }
                    dst[..n].copy_from_slice(&sums[..n]);
                }
            }
        }
    }

    /// Channels last: 8 channels to a register, the taps that fall inside
    /// the input only. Needs C a multiple of 8 (the rewrite checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn channels_last_avx2(&self, x: &[f32], p: Plane, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (c, k, s) = (self.channels, self.k, self.stride);
        // The kernel as [k·k][C], so that a tap's 8 channels are one load.
        let mut taps = vec![0f32; k * k * c];
        for ch in 0..c {
            for t in 0..k * k {
                taps[t * c + ch] = self.kernel[ch * k * k + t];
            }
        }
        let (lo, hi) = (_mm256_set1_ps(self.lo), _mm256_set1_ps(self.hi));
        let inside = |o: usize, pad: usize, n: usize| {
            // The taps of output `o` that land inside an input of `n`.
            let first = pad.saturating_sub(o * s);
            let last = (n + pad).saturating_sub(o * s).min(k);
            (first, last.max(first))
        };
        for oy in 0..p.oh {
            let (ky0, ky1) = inside(oy, self.pad.before[0], p.h);
            for ox in 0..p.ow {
                let (kx0, kx1) = inside(ox, self.pad.before[1], p.w);
                let dst = out.as_mut_ptr().add((oy * p.ow + ox) * c);
                // The input pixel under tap (0, 0), which may lie in the
                // padding: only taps inside are read.
                let at = |ky: usize, kx: usize| {
                    ((oy * s + ky - self.pad.before[0]) * p.w + ox * s + kx - self.pad.before[1]) * c
                };
                let mut c0 = 0;
                // 32 channels at a time: four independent chains.
                while c0 + 32 <= c {
                    let mut acc = [0, 1, 2, 3].map(|q| _mm256_loadu_ps(self.bias.as_ptr().add(c0 + 8 * q)));
                    for ky in ky0..ky1 {
                        for kx in kx0..kx1 {
                            let (v, wv) = (x.as_ptr().add(at(ky, kx) + c0), taps.as_ptr().add((ky * k + kx) * c + c0));
                            for (q, a) in acc.iter_mut().enumerate() {
                                *a = _mm256_fmadd_ps(_mm256_loadu_ps(wv.add(8 * q)), _mm256_loadu_ps(v.add(8 * q)), *a);
                            }
                        }
                    }
                    for (q, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(dst.add(c0 + 8 * q), _mm256_min_ps(_mm256_max_ps(*a, lo), hi));
                    }
                    c0 += 32;
                }
                while c0 < c {
                    let mut acc = _mm256_loadu_ps(self.bias.as_ptr().add(c0));
                    for ky in ky0..ky1 {
                        for kx in kx0..kx1 {
                            let v = _mm256_loadu_ps(x.as_ptr().add(at(ky, kx) + c0));
                            let wv = _mm256_loadu_ps(taps.as_ptr().add((ky * k + kx) * c + c0));
                            acc = _mm256_fmadd_ps(wv, v, acc);
                        }
                    }
                    _mm256_storeu_ps(dst.add(c0), _mm256_min_ps(_mm256_max_ps(acc, lo), hi));
                    c0 += 8;
                }
            }
        }
    }
}

/// A float depthwise conv (group = channels, one filter each, k×k with k
/// odd, stride 1 or 2, no dilation), and the scalar `max`/`min` chain after
/// it, becomes one [`DepthwiseConv`]. Left to tract where the AVX2 kernels
/// are missing, or channels last with C not a multiple of 8.
pub(super) fn rewrite(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    if !super::op::available() || conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let x = node.inputs[0];
    let fact = model.outlet_fact(x)?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let spec = &conv.pool_spec;
    let format = spec.data_format;
    let layout = if format.c_is_last() { Layout::ChannelsLast } else { Layout::ChannelsFirst };
    let c = conv.input_channels();
    let k = spec.kernel_shape.first().copied().unwrap_or(0);
    let stride = spec.strides().first().copied().unwrap_or(0);
    let data = format.shape(shape.clone())?;
    let fits = fact.datum_type == f32::datum_type()
        && conv.kernel_fmt == KernelFormat::OIHW
        && shape.len() == 3 + format.has_n() as usize
        && (!format.has_n() || shape[0] == 1)
        && *data.c() == c
        && conv.group == c
        && conv.output_channels() == c
        && *spec.kernel_shape == [k, k]
        && k % 2 == 1
        && (stride == 1 || stride == 2)
        && spec.strides().iter().all(|&s| s == stride)
        && spec.dilations().iter().all(|&d| d == 1)
        && (layout == Layout::ChannelsFirst || c % 8 == 0);
    if !fits {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (const_values(model, node.inputs[1]), const_values(model, node.inputs[2])) else {
        return Ok(None);
    };
    let Some(bias) = each_channel(bias, c) else { return Ok(None) };
    if kernel.len() != c * k * k {
        return Ok(None);
    }
    let mut op = DepthwiseConv {
        layout,
        batch: format.has_n(),
        channels: c,
        k,
        stride,
        pad: Padding::of(spec, data.hw_dims()),
        kernel,
        bias,
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
    };
    let (lo, hi, last) = clamp_after(model, node)?;
    (op.lo, op.hi) = (lo, hi);
    replace_chain(model, x, node, last, op, "depthwise conv")
}

super::op::f32_op!(DepthwiseConv, "DepthwiseConv");

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let out_shape = self.output_shape(&shape)?;
        let (c, h, w) = self.layout.axes(self.batch);
        ensure!(shape[c] == self.channels, "DepthwiseConv: {} channels, not {}", shape[c], self.channels);
        let plane = Plane { h: shape[h], w: shape[w], oh: out_shape[h], ow: out_shape[w] };
        write_f32(&x, &out_shape, |x, y| {
            self.run(x, plane, y);
            Ok(())
        })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_avx2_kernels_equal_the_portable_one() {
        if !super::super::op::available() {
            return;
        }
        let values = |n, seed| super::super::rewrite::test_values(n, seed, 40.0);
        // Widths below, across and past each strip; both strides; SAME
        // padding that is symmetric and TF's that pads only after.
        for (layout, c, h, w, k, stride, before, after) in [
            (Layout::ChannelsFirst, 3, 7, 37, 3, 1, 1, 1),
            (Layout::ChannelsFirst, 5, 9, 9, 3, 2, 0, 1),
            (Layout::ChannelsFirst, 2, 14, 14, 3, 2, 1, 1),
            (Layout::ChannelsFirst, 4, 15, 15, 5, 1, 2, 2),
            (Layout::ChannelsFirst, 2, 3, 70, 3, 2, 0, 1),
            (Layout::ChannelsLast, 16, 6, 5, 3, 1, 1, 1),
            (Layout::ChannelsLast, 40, 5, 6, 3, 1, 1, 1),
            (Layout::ChannelsLast, 8, 7, 8, 3, 2, 0, 1),
        ] {
            let op = DepthwiseConv {
                layout,
                batch: true,
                channels: c,
                k,
                stride,
                pad: Padding { before: [before; 2], after: [after; 2] },
                kernel: values(c * k * k, 1),
                bias: values(c, 2),
                lo: -0.5,
                hi: 6.0,
            };
            let x = values(c * h * w, 5);
            let (oh, ow) = (op.output_size(h, 0).unwrap(), op.output_size(w, 1).unwrap());
            let plane = Plane { h, w, oh, ow };
            let (mut fast, mut slow) = (vec![f32::NAN; c * oh * ow], vec![f32::NAN; c * oh * ow]);
            op.run(&x, plane, &mut fast);
            op.portable(&x, plane, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{layout:?} {c}×{h}×{w} k {k} s {stride}: {a} vs {b}");
            }
        }
    }

    /// x → depthwise conv → max(0) → min(6) → max(0), tract's own against
    /// the rewritten graph.
    #[test]
    fn a_depthwise_conv_and_its_clamp_become_one_op_with_the_same_values() {
        use super::super::rewrite::check_relu6_rewrite;
        use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
        use tract_onnx::tract_core::ops::nn::DataFormat;
        if !super::super::op::available() {
            return;
        }
        let values = |n, seed| super::super::rewrite::test_values(n, seed, 9.0);
        for (format, c, hw, stride, padding) in [
            (DataFormat::NCHW, 6, 13, 2, PaddingSpec::SameUpper),
            (DataFormat::NCHW, 5, 20, 1, PaddingSpec::SameUpper),
            (DataFormat::NHWC, 40, 9, 1, PaddingSpec::SameUpper),
            (DataFormat::NHWC, 8, 10, 2, PaddingSpec::ExplicitOnnxPool(tvec!(0, 0), tvec!(1, 1), false)),
        ] {
            let shape: TVec<usize> = if format.c_is_last() { tvec!(1, hw, hw, c) } else { tvec!(1, c, hw, hw) };
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&shape)).unwrap();
            let kernel = Tensor::from_shape(&[c, 1, 3, 3], &values(c * 9, 1)).unwrap();
            let kernel = model.add_const("k", kernel).unwrap();
            let bias = model.add_const("b", tensor1(&values(c, 2))).unwrap();
            let strides = Some(tvec!(stride, stride));
            let pool = PoolSpec::new(format, tvec!(3, 3), padding, None, strides, c, c);
            let conv = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: c, q_params: None };
            let y = model.wire_node("dw", conv, &[x, kernel, bias]).unwrap()[0];
            let input = Tensor::from_shape(&shape, &values(shape.iter().product(), 5)).unwrap();
            let ops = check_relu6_rewrite(model, y, &input, 1e-5);
            assert_eq!(ops, ["Source", "DepthwiseConv"], "{format:?} c {c} stride {stride}");
        }
    }
}
