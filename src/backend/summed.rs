//! A conv whose output is only summed over its map: the emotion net's last
//! conv (256 → 7 channels, 3 × 3, on 8 × 8) before its global average pool.
//!
//! The sum over the output pixels of a conv is a sum over its taps: each
//! tap's weight times the sum of the input values that tap reads across
//! the map, a window of the input plane (the whole plane shifted by the
//! tap's offset, cut at the edges, where the zero padding adds nothing). So
//! the op sums the C·k² windows (from per-row sums, a pass over the input)
//! and takes one product of the kernel with them: O·C·k² multiplications
//! where the conv made O·C·k² per output pixel, 64 times as many here.
//! tract's im2col product, with a padding pass before it and the sum after
//! it, took 0.11 ms of the emotion net's 2.0; this takes 0.03, and the net
//! 1.9. The sums come in another order than the conv's: the result differs
//! in the last bits.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::op::Padding;
use super::rewrite::{const_values, each_channel, replace_chain, sole_successor};

/// `y[o] = Σ_{oy, ox} (bias[o] + conv(x)[o, oy, ox])` over `[1, C, H, W]`
/// into `[1, O, 1, 1]`: a k×k conv of stride 1, then the sum over the map.
#[derive(Debug, Clone, PartialEq)]
pub struct SummedConv {
    in_channels: usize,
    out_channels: usize,
    k: usize,
    pad: Padding,
    /// `[O][C][k][k]`.
    kernel: Vec<f32>,
    bias: Vec<f32>,
}

// The weights are a model's, never NaN.
impl Eq for SummedConv {}

impl SummedConv {
    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        ensure!(
            shape.len() == 4 && shape[0].to_usize()? == 1 && shape[1].to_usize()? == self.in_channels,
            "SummedConv takes [1, {}, H, W], not {shape:?}",
            self.in_channels
        );
        Ok(tvec![D::from(1), D::from(self.out_channels), D::from(1), D::from(1)])
    }

    /// The rows (or columns, `axis` 1) of an input side of `n` values that
    /// tap `t` reads across the output: the output's `windows` positions,
    /// shifted by the tap, inside the input.
    fn reach(&self, axis: usize, n: usize, windows: usize, t: usize) -> std::ops::Range<usize> {
        let first = t as isize - self.pad.before[axis] as isize;
        let start = first.max(0) as usize;
        let end = (first + windows as isize).clamp(0, n as isize) as usize;
        start.min(end)..end
    }

    fn run(&self, x: &[f32], h: usize, w: usize, out: &mut [f32]) -> TractResult<()> {
        let (c, k) = (self.in_channels, self.k);
        let windows = |axis: usize, n: usize| {
            self.pad
                .windows(axis, n, k, 1)
                .ok_or_else(|| format_err!("SummedConv: a {h}×{w} map is smaller than its {k}×{k} window"))
        };
        let (oh, ow) = (windows(0, h)?, windows(1, w)?);
        let columns: Vec<_> = (0..k).map(|kx| self.reach(1, w, ow, kx)).collect();
        let rows: Vec<_> = (0..k).map(|ky| self.reach(0, h, oh, ky)).collect();
        // sums[(ch·k + ky)·k + kx]: the input values tap (ky, kx) of
        // channel ch reads over the whole output. First, per kernel row, the
        // column sums of its rows (whole rows added: the compiler makes them
        // vector adds), then each kernel column's share of those.
        let mut sums = vec![0f32; c * k * k];
        let mut columns_of = vec![0f32; w];
        for (ch, plane) in x.chunks_exact(h * w).enumerate().take(c) {
            for (ky, rows) in rows.iter().enumerate() {
                columns_of.fill(0.0);
                for row in plane.chunks_exact(w).skip(rows.start).take(rows.len()) {
                    columns_of.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                for (kx, cols) in columns.iter().enumerate() {
                    sums[(ch * k + ky) * k + kx] = columns_of[cols.clone()].iter().sum();
                }
            }
        }
        let pixels = (oh * ow) as f32;
        for ((y, weights), bias) in out.iter_mut().zip(self.kernel.chunks_exact(c * k * k)).zip(&self.bias) {
            *y = bias * pixels + dot(weights, &sums);
        }
        Ok(())
    }
}

/// `Σ a·b` in eight lanes, which the compiler keeps in one register: one
/// running sum would wait on each addition in turn.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A float conv (group 1, stride 1, no dilation, `[1, C, H, W]`) whose only
/// reader sums its output over both spatial axes becomes a [`SummedConv`].
/// Plain arithmetic: it applies on every CPU.
pub(super) fn rewrite(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    let Some(sum) = sole_successor(model, id) else { return Ok(None) };
    let Some(reduce) = sum.op_as::<Reduce>() else { return Ok(None) };
    if reduce.reducer != Reducer::Sum || *reduce.axes != [2, 3] || conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let spec = &conv.pool_spec;
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let k = spec.kernel_shape.first().copied().unwrap_or(0);
    let fits = fact.datum_type == f32::datum_type()
        && spec.data_format == tract_onnx::tract_core::ops::nn::DataFormat::NCHW
        && shape.len() == 4
        && shape[0] == 1
        && conv.group == 1
        && conv.kernel_fmt == KernelFormat::OIHW
        && k > 0
        && *spec.kernel_shape == [k, k]
        && spec.strides().iter().all(|&s| s == 1)
        && spec.dilations().iter().all(|&d| d == 1);
    if !fits {
        return Ok(None);
    }
    let (c, o) = (conv.input_channels(), conv.output_channels());
    let (Some(kernel), Some(bias)) = (const_values(model, node.inputs[1]), const_values(model, node.inputs[2])) else {
        return Ok(None);
    };
    let Some(bias) = each_channel(bias, o) else { return Ok(None) };
    if kernel.len() != o * c * k * k || shape[1] != c {
        return Ok(None);
    }
    let pad = Padding::of(spec, &shape[2..]);
    let op = SummedConv { in_channels: c, out_channels: o, k, pad, kernel, bias };
    replace_chain(model, node.inputs[0], node, sum, op, "conv summed over its map")
}

super::op::f32_op!(SummedConv, "SummedConv");

impl EvalOp for SummedConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let out_shape = self.output_shape(&shape)?;
        super::op::write_f32(&x, &out_shape, |x, y| self.run(x, shape[2], shape[3], y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A conv → sum over H and W, as the emotion net's ONNX GlobalAveragePool
    /// reaches tract, against tract's own, for padded and unpadded windows
    /// and maps wider than tall.
    #[test]
    fn a_conv_summed_over_its_map_becomes_one_op_with_the_same_values() {
        let values = |n, seed| super::super::rewrite::test_values(n, seed, 20.0);
        for (c, o, h, w, k, pad) in [(16, 7, 8, 8, 3, 1), (5, 3, 6, 9, 3, 0), (4, 2, 7, 5, 5, 2), (3, 4, 4, 6, 3, 2)] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
            let kernel = model.add_const("k", Tensor::from_shape(&[o, c, k, k], &values(o * c * k * k, 1)).unwrap());
            let bias = model.add_const("b", tensor1(&values(o, 2))).unwrap();
            let padding = PaddingSpec::Explicit(tvec!(pad, pad), tvec!(pad, pad));
            let pool = PoolSpec::new(DataFormat::NCHW, tvec!(k, k), padding, None, None, c, o);
            let conv = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: 1, q_params: None };
            let y = model.wire_node("conv", conv, &[x, kernel.unwrap(), bias]).unwrap()[0];
            let reduce = Reduce::new(tvec!(2, 3), Reducer::Sum);
            let y = model.wire_node("sum", reduce, &[y]).unwrap();
            model.select_output_outlets(&y).unwrap();

            let rewritten = super::super::cpu_passes(model.clone()).unwrap();
            let ops: Vec<String> = rewritten.nodes().iter().map(|n| n.op().name().to_string()).collect();
            assert!(ops.contains(&"SummedConv".to_string()) && !ops.contains(&"Conv".to_string()), "{ops:?}");
            let input = Tensor::from_shape(&[1, c, h, w], &values(c * h * w, 5)).unwrap();
            let run = |m: TypedModel| -> Vec<f32> {
                let out = m.into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
                assert_eq!(out[0].shape(), [1, o, 1, 1]);
                out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
            };
            let (ours, theirs) = (run(rewritten), run(model.into_optimized().unwrap()));
            // Sums of a few hundred terms of either order: a few ulps of the
            // largest term apart.
            let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * scale, "{c}→{o} {h}×{w} k {k} pad {pad}: {a} vs {b}");
            }
        }
    }
}
