//! The first conv of a face model: a few input channels (RGB or grey), a
//! k×k window, stride 1 or 2, with its activation, as one op. Any full conv
//! of up to 32 input channels takes the same path: the emotion net's second
//! (32 → 64, 3×3) went from tract's 0.49 ms, its ReLU pass included, to 0.45.
//!
//! tract runs these as an im2col product whose depth is only k²·C (27 or
//! 75): BlazeFace's 5×5 stem took 2.7 ms here, with a transpose of the NHWC
//! input before it, and FaceRes's 3×3 one 1.5 ms, with a padding pass
//! before and a ReLU6 pass after. Here the input is copied once into zero
//! padded planes (split into even and odd columns for stride 2, so each tap
//! reads a contiguous run), read from NHWC or NCHW, and each output row is
//! summed 6 channels × 16 pixels to a tile of registers, the activation
//! applied before the store, and the row written in the layout the next op
//! reads.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};

use super::depthwise::Layout;
#[cfg(target_arch = "x86_64")]
use super::depthwise::PhasePlanes;
#[cfg(target_arch = "x86_64")]
use super::op::transpose_8x8;
use super::op::{write_f32, Padding};
use super::rewrite::{clamp_after, const_values, each_channel, replace_chain, sole_successor, ChannelPrelu};

/// Output channels per tile: 6 × 2 registers of sums, 12 of AVX2's 16, so
/// that enough independent FMAs are in flight to hide their latency.
const TILE: usize = 6;
/// Output pixels per strip.
#[cfg(target_arch = "x86_64")]
const STRIP: usize = 16;
/// The most input channels this op takes: the k²·C taps of a strip are
/// all read from L1 (32 channels × 3 rows of ~34 values: 13 KiB).
const MAX_INPUT_CHANNELS: usize = 32;

/// `y = act(bias + conv(x))` from `[1, H, W, C]` or `[1, C, H, W]` into
/// either layout, `act` a clamp then, where there is one, a PReLU.
#[derive(Debug, Clone, PartialEq)]
pub struct StemConv {
    pub input: Layout,
    pub output: Layout,
    pub in_channels: usize,
    pub out_channels: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: Padding,
    /// `[out channels rounded up to TILE][in][k][k]`, the extra rows zero.
    pub kernel: Vec<f32>,
    /// Rounded up as `kernel`.
    pub bias: Vec<f32>,
    pub lo: f32,
    pub hi: f32,
    /// One slope per output channel.
    pub prelu: Option<Vec<f32>>,
}

// The weights are a model's, never NaN.
impl Eq for StemConv {}

/// The sizes one evaluation works with.
#[derive(Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl StemConv {
    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        ensure!(shape.len() == 4, "StemConv: a rank-{} input", shape.len());
        let (c, h, w) = self.input.axes(true);
        ensure!(shape[c].to_usize()? == self.in_channels, "StemConv: {} input channels", shape[c]);
        let mut size = [0; 2];
        for (axis, i) in [h, w].into_iter().enumerate() {
            let n = shape[i].to_usize()?;
            size[axis] = self
                .pad
                .windows(axis, n, self.k, self.stride)
                .ok_or_else(|| format_err!("StemConv: input smaller than the kernel"))?;
        }
        let (c, h, w) = self.output.axes(true);
        let mut out: TVec<D> = tvec![D::from(1); 4];
        out[c] = D::from(self.out_channels);
        out[h] = D::from(size[0]);
        out[w] = D::from(size[1]);
        Ok(out)
    }

    fn activate(&self, channel: usize, v: f32) -> f32 {
        let v = v.max(self.lo).min(self.hi);
        match &self.prelu {
            Some(a) if v < 0.0 => v * a[channel],
            _ => v,
        }
    }

    fn input_index(&self, g: Geometry, c: usize, y: usize, x: usize) -> usize {
        match self.input {
            Layout::ChannelsFirst => (c * g.h + y) * g.w + x,
            Layout::ChannelsLast => (y * g.w + x) * self.in_channels + c,
        }
    }

    fn output_index(&self, g: Geometry, c: usize, y: usize, x: usize) -> usize {
        match self.output {
            Layout::ChannelsFirst => (c * g.oh + y) * g.ow + x,
            Layout::ChannelsLast => (y * g.ow + x) * self.out_channels + c,
        }
    }

    /// The reference: one value at a time.
    fn portable(&self, x: &[f32], g: Geometry, out: &mut [f32]) {
        let (k, s, cin) = (self.k, self.stride, self.in_channels);
        for o in 0..self.out_channels {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = self.bias[o];
                    for c in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (Some(iy), Some(ix)) = (
                                    (oy * s + ky).checked_sub(self.pad.before[0]),
                                    (ox * s + kx).checked_sub(self.pad.before[1]),
                                ) else {
                                    continue;
                                };
                                if iy < g.h && ix < g.w {
                                    acc += self.kernel[((o * cin + c) * k + ky) * k + kx]
                                        * x[self.input_index(g, c, iy, ix)];
                                }
                            }
                        }
                    }
                    out[self.output_index(g, o, oy, ox)] = self.activate(o, acc);
                }
            }
        }
    }

    fn run(&self, x: &[f32], g: Geometry, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::op::available() {
            // SAFETY: `available` checked the features.
            return unsafe { self.rows_avx2(x, g, out) };
        }
        self.portable(x, g, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, x: &[f32], g: Geometry, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (k, s, cin, cout) = (self.k, self.stride, self.in_channels, self.out_channels);
        // The padded input, channel after channel.
        let (rows, cols) = (self.pad.padded(0, g.h), self.pad.padded(1, g.w));
        let wide = g.ow.div_ceil(STRIP) * STRIP;
        let planes = PhasePlanes::new(rows, cols, s, wide, k);
        let (len, plane) = (planes.len, planes.size());
        let mut buf = vec![0f32; cin * plane];
        for (c, dst) in buf.chunks_exact_mut(plane).enumerate() {
            for iy in 0..g.h {
                let (src, step) = match self.input {
                    Layout::ChannelsFirst => (&x[(c * g.h + iy) * g.w..], 1),
                    Layout::ChannelsLast => (&x[iy * g.w * cin + c..], cin),
                };
                planes.put_row(dst, iy + self.pad.before[0], self.pad.before[1], src, step, g.w);
            }
        }
        // Tap (c, ky, kx) reads at `offsets[·] + oy·s·len + x0`.
        let taps = cin * k * k;
        let offsets: Vec<usize> =
            (0..cin).flat_map(|c| planes.taps(k).into_iter().map(move |t| c * plane + t)).collect();
        let (lo, hi, zero) = (_mm256_set1_ps(self.lo), _mm256_set1_ps(self.hi), _mm256_setzero_ps());
        // One output row, all channels, channels first.
        let mut row = vec![0f32; cout.div_ceil(TILE) * TILE * wide];
        for oy in 0..g.oh {
            let base = buf.as_ptr().add(oy * s * len);
            for o0 in (0..cout).step_by(TILE) {
                let weights = self.kernel.as_ptr().add(o0 * taps);
                for x0 in (0..g.ow).step_by(STRIP) {
                    let mut acc = [[zero; 2]; TILE];
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = [_mm256_set1_ps(self.bias[o0 + j]); 2];
                    }
                    for (t, &offset) in offsets.iter().enumerate() {
                        // In bounds: x0 + 16 + kx/s ≤ len (see `len`).
                        let src = base.add(offset + x0);
                        let (d0, d1) = (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)));
                        for (j, a) in acc.iter_mut().enumerate() {
                            let wv = _mm256_broadcast_ss(&*weights.add(j * taps + t));
                            a[0] = _mm256_fmadd_ps(wv, d0, a[0]);
                            a[1] = _mm256_fmadd_ps(wv, d1, a[1]);
                        }
                    }
                    for (j, a) in acc.iter().enumerate() {
                        let dst = row.as_mut_ptr().add((o0 + j) * wide + x0);
                        for (half, sum) in a.iter().enumerate() {
                            let mut v = _mm256_min_ps(_mm256_max_ps(*sum, lo), hi);
                            if let Some(alpha) = &self.prelu {
                                // Where v's sign bit is set, v·α.
                                let slope = _mm256_set1_ps(alpha.get(o0 + j).copied().unwrap_or(0.0));
                                v = _mm256_blendv_ps(v, _mm256_mul_ps(v, slope), v);
                            }
                            _mm256_storeu_ps(dst.add(8 * half), v);
                        }
                    }
                }
            }
            match self.output {
                Layout::ChannelsFirst => {
                    for o in 0..cout {
                        out[(o * g.oh + oy) * g.ow..][..g.ow].copy_from_slice(&row[o * wide..][..g.ow]);
                    }
                }
                Layout::ChannelsLast => {
                    let dst = &mut out[oy * g.ow * cout..][..g.ow * cout];
                    // Whole 8 × 8 blocks through registers, the rest a value
                    // at a time.
                    let blocks = if cout.is_multiple_of(8) { g.ow / 8 } else { 0 };
                    for bx in 0..blocks {
                        for bo in 0..cout / 8 {
                            transpose_8x8(
                                row.as_ptr().add(bo * 8 * wide + bx * 8),
                                wide,
                                dst.as_mut_ptr().add(bx * 8 * cout + bo * 8),
                                cout,
                            );
                        }
                    }
                    for (ox, pixel) in dst.chunks_exact_mut(cout).enumerate().skip(blocks * 8) {
                        for (o, v) in pixel.iter_mut().enumerate() {
                            *v = row[o * wide + ox];
                        }
                    }
                }
            }
        }
    }
}

/// A float conv of up to 32 input channels (group 1, k×k, stride 1 or 2,
/// no dilation, batch 1), with a transpose from NHWC before it and its
/// clamp or PReLU after it where the graph has them, becomes a
/// [`StemConv`]. Left to tract where the AVX2 kernel is missing.
pub(super) fn rewrite(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    if !super::op::available() || conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let spec = &conv.pool_spec;
    let format = spec.data_format;
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let (cin, cout) = (conv.input_channels(), conv.output_channels());
    let k = spec.kernel_shape.first().copied().unwrap_or(0);
    let stride = spec.strides().first().copied().unwrap_or(0);
    let fits = fact.datum_type == f32::datum_type()
        && format.has_n()
        && shape.len() == 4
        && shape[0] == 1
        && conv.group == 1
        && conv.kernel_fmt == KernelFormat::OIHW
        && (1..=MAX_INPUT_CHANNELS).contains(&cin)
        && *spec.kernel_shape == [k, k]
        && (stride == 1 || stride == 2)
        && spec.strides().iter().all(|&s| s == stride)
        && spec.dilations().iter().all(|&d| d == 1);
    if !fits {
        return Ok(None);
    }
    let (Some(mut kernel), Some(bias)) = (const_values(model, node.inputs[1]), const_values(model, node.inputs[2]))
    else {
        return Ok(None);
    };
    let Some(mut bias) = each_channel(bias, cout) else { return Ok(None) };
    if kernel.len() != cout * cin * k * k {
        return Ok(None);
    }
    let tiles = cout.div_ceil(TILE) * TILE;
    kernel.resize(tiles * cin * k * k, 0.0);
    bias.resize(tiles, 0.0);
    let layout = if format.c_is_last() { Layout::ChannelsLast } else { Layout::ChannelsFirst };

    // An NHWC input moved to NCHW just for this conv is read as it is.
    let mut x = node.inputs[0];
    let mut input = layout;
    let mover = model.node(x.node);
    if let Some(AxisOp::Move(3, 1)) = mover.op_as::<AxisOp>() {
        if layout == Layout::ChannelsFirst && sole_successor(model, mover.id).is_some_and(|n| n.id == id) {
            x = mover.inputs[0];
            input = Layout::ChannelsLast;
        }
    }

    let (lo, hi, mut last) = clamp_after(model, node)?;
    let mut prelu = None;
    if last.id == id {
        let channel_axis = if layout == Layout::ChannelsFirst { 1 } else { 3 };
        if let Some(p) = sole_successor(model, id).and_then(|n| n.op_as::<ChannelPrelu>().map(|p| (n, p))) {
            if p.1.axis == channel_axis && p.1.alpha.len() == cout {
                prelu = Some(p.1.alpha.clone());
                last = p.0;
            }
        }
    }
    let op = StemConv {
        input,
        output: layout,
        in_channels: cin,
        out_channels: cout,
        k,
        stride,
        pad: Padding::of(spec, format.shape(shape.clone())?.hw_dims()),
        kernel,
        bias,
        lo,
        hi,
        prelu,
    };
    replace_chain(model, x, node, last, op, "stem conv")
}

super::op::f32_op!(StemConv, "StemConv");

impl EvalOp for StemConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let out_shape = self.output_shape(&shape)?;
        let (_, h, w) = self.input.axes(true);
        let (_, oh, ow) = self.output.axes(true);
        let g = Geometry { h: shape[h], w: shape[w], oh: out_shape[oh], ow: out_shape[ow] };
        write_f32(&x, &out_shape, |x, y| {
            self.run(x, g, y);
            Ok(())
        })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::rewrite::check_relu6_rewrite;
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        super::super::rewrite::test_values(n, seed, 20.0)
    }

    #[test]
    fn the_avx2_kernel_equals_the_portable_one() {
        if !super::super::op::available() {
            return;
        }
        // Widths across a strip, odd and even (an interleaved row's last
        // pixel pairs), output channels that do and do not fill a tile,
        // both strides, both layouts each way (channels-last output in
        // whole 8 × 8 blocks and a tail), a clamp and a PReLU.
        for (input, output, cin, cout, h, w, k, stride, before, after, prelu) in [
            (Layout::ChannelsLast, Layout::ChannelsFirst, 3, 24usize, 12, 21, 5, 2, 1, 2, true),
            (Layout::ChannelsLast, Layout::ChannelsLast, 3, 32, 9, 40, 3, 2, 0, 1, false),
            (Layout::ChannelsLast, Layout::ChannelsFirst, 3, 8, 7, 23, 3, 2, 0, 1, false),
            (Layout::ChannelsFirst, Layout::ChannelsFirst, 1, 6, 7, 40, 3, 1, 1, 1, false),
            (Layout::ChannelsFirst, Layout::ChannelsLast, 2, 5, 6, 5, 3, 1, 0, 0, true),
            (Layout::ChannelsFirst, Layout::ChannelsFirst, 12, 10, 9, 20, 3, 1, 0, 0, false),
        ] {
            let tiles = cout.div_ceil(TILE) * TILE;
            let mut kernel = values(cout * cin * k * k, 1);
            kernel.resize(tiles * cin * k * k, 0.0);
            let mut bias = values(cout, 2);
            bias.resize(tiles, 0.0);
            let op = StemConv {
                input,
                output,
                in_channels: cin,
                out_channels: cout,
                k,
                stride,
                pad: Padding { before: [before; 2], after: [after; 2] },
                kernel,
                bias,
                lo: if prelu { f32::NEG_INFINITY } else { 0.0 },
                hi: if prelu { f32::INFINITY } else { 6.0 },
                prelu: prelu.then(|| values(cout, 3)),
            };
            let shape = match input {
                Layout::ChannelsFirst => [1, cin, h, w],
                Layout::ChannelsLast => [1, h, w, cin],
            };
            let out_shape = op.output_shape(&shape).unwrap();
            let (_, oh, ow) = output.axes(true);
            let g = Geometry { h, w, oh: out_shape[oh], ow: out_shape[ow] };
            let x = values(cin * h * w, 5);
            let n = cout * g.oh * g.ow;
            let (mut fast, mut slow) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            op.run(&x, g, &mut fast);
            op.portable(&x, g, &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{input:?}→{output:?} {cin}→{cout} k {k} s {stride}: {a} vs {b}"
                );
            }
        }
    }

    /// NHWC input → move to NCHW → conv → ReLU6, and an NHWC conv → ReLU,
    /// tract's own against the rewritten graph.
    #[test]
    fn a_stem_with_its_transpose_and_clamp_becomes_one_op_with_the_same_values() {
        if !super::super::op::available() {
            return;
        }
        for (format, cin, cout, hw, k, move_first) in [
            (DataFormat::NCHW, 3, 24, 20, 5, true),
            (DataFormat::NHWC, 3, 16, 17, 3, false),
            (DataFormat::NCHW, 1, 8, 11, 3, false),
        ] {
            let shape: TVec<usize> =
                if format.c_is_last() || move_first { tvec!(1, hw, hw, cin) } else { tvec!(1, cin, hw, hw) };
            let mut model = TypedModel::default();
            let mut x = model.add_source("x", f32::fact(&shape)).unwrap();
            if move_first {
                x = model.wire_node("nchw", AxisOp::Move(3, 1), &[x]).unwrap()[0];
            }
            let kernel = Tensor::from_shape(&[cout, cin, k, k], &values(cout * cin * k * k, 1)).unwrap();
            let kernel = model.add_const("k", kernel).unwrap();
            let bias = model.add_const("b", tensor1(&values(cout, 2))).unwrap();
            let pool = PoolSpec::new(format, tvec!(k, k), PaddingSpec::SameUpper, None, Some(tvec!(2, 2)), cin, cout);
            let conv = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: 1, q_params: None };
            let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap()[0];
            let input = Tensor::from_shape(&shape, &values(shape.iter().product(), 5)).unwrap();
            let ops = check_relu6_rewrite(model, y, &input, 1e-4);
            assert_eq!(ops, ["Source", "StemConv"], "{format:?} {cin}→{cout}");
        }
    }
}
