//! Max pooling over `[1, C, H, W]` or `[C, H, W]`, as BlazeFace, FaceMesh
//! and the emotion net use it (2×2 stride 2, 3×3 stride 2 SAME).
//!
//! tract's MaxPool visits each output through a generic patch iterator:
//! BlazeFace's 24×128×128 pool took 0.95 ms here, as long as a conv. Here a
//! row of window maxima is taken down the columns first (a plain
//! element-wise max the compiler vectorises), then across, once per output
//! row.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool;

use super::op::{write_f32, Padding};
use super::rewrite::replace_chain;

/// `y[c][oy][ox]` = the largest `x[c][iy][ix]` in the window at
/// `(oy·s − top, ox·s − left)`, `k` on each side; the padding never wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    pub batch: bool,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: Padding,
}

impl MaxPool2d {
    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        let b = self.batch as usize;
        ensure!(shape.len() == b + 3, "MaxPool2d: a rank-{} input", shape.len());
        let mut out: TVec<D> = shape.into();
        for axis in 0..2 {
            let (n, k, s) = (shape[b + 1 + axis].to_usize()?, self.kernel[axis], self.stride[axis]);
            let o = self
                .pad
                .windows(axis, n, k, s)
                .ok_or_else(|| format_err!("MaxPool2d: input smaller than the window"))?;
            out[b + 1 + axis] = D::from(o);
        }
        Ok(out)
    }

    /// One channel: `x` is `h`×`w`, `out` is `oh`×`ow`.
    /// `columns` is the padded row and two more, −∞ throughout.
    fn plane(&self, x: &[f32], w: usize, out: &mut [f32], ow: usize, columns: &mut [f32]) {
        let h = x.len() / w;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let left = self.pad.before[1];
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            let top = (oy * sh).saturating_sub(self.pad.before[0]);
            let bottom = (oy * sh + kh).saturating_sub(self.pad.before[0]).min(h);
            // Down the window's rows, into the padded row `columns`, whose
            // borders stay −∞.
            let inner = &mut columns[left..][..w];
            inner.copy_from_slice(&x[top * w..][..w]);
            for row in x[(top + 1) * w..bottom * w].chunks_exact(w) {
                inner.iter_mut().zip(row).for_each(|(m, &v)| *m = larger(*m, v));
            }
            // Across. The models' two windows get loops the compiler
            // vectorises; `columns` has two spare −∞ at its end for them.
            let pairs = columns.chunks_exact(2);
            match (kw, sw) {
                (2, 2) => out_row.iter_mut().zip(pairs).for_each(|(o, p)| *o = larger(p[0], p[1])),
                (3, 2) => out_row
                    .iter_mut()
                    .zip(pairs.clone().zip(pairs.skip(1)))
                    .for_each(|(o, (p, q))| *o = larger(larger(p[0], p[1]), q[0])),
                _ => {
                    for (ox, o) in out_row.iter_mut().enumerate() {
                        *o = columns[ox * sw..][..kw].iter().fold(f32::NEG_INFINITY, |m, &v| larger(m, v));
                    }
                }
            }
        }
    }
}

/// `f32::max` without its NaN handling, which keeps the loops above from
/// vectorising: a model's activations hold no NaN.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// tract's MaxPool on a channels-first f32 tensor, without index outputs or
/// dilation, becomes a [`MaxPool2d`].
pub(super) fn rewrite(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(pool) = node.op_as::<MaxPool>() else { return Ok(None) };
    let spec = &pool.pool_spec;
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let format = spec.data_format;
    let fits = pool.with_index_outputs.is_none()
        && fact.datum_type == f32::datum_type()
        && !format.c_is_last()
        && shape.len() == 3 + format.has_n() as usize
        && (!format.has_n() || shape[0] == 1)
        && spec.kernel_shape.len() == 2
        && spec.dilations().iter().all(|&d| d == 1);
    if !fits {
        return Ok(None);
    }
    let data = format.shape(shape.clone())?;
    let strides = spec.strides();
    let op = MaxPool2d {
        batch: format.has_n(),
        kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
        stride: [strides[0], strides[1]],
        pad: Padding::of(spec, data.hw_dims()),
    };
    // Every window must hold at least one input value.
    let pad = op.pad;
    if pad.before.iter().chain(&pad.after).zip(op.kernel.iter().chain(&op.kernel)).any(|(p, k)| p >= k) {
        return Ok(None);
    }
    replace_chain(model, node.inputs[0], node, node, op, "max pool")
}

super::op::f32_op!(MaxPool2d, "MaxPool2d");

impl EvalOp for MaxPool2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let out_shape = self.output_shape(&shape)?;
        let b = self.batch as usize;
        let (h, w, oh, ow) = (shape[b + 1], shape[b + 2], out_shape[b + 1], out_shape[b + 2]);
        // The rewrite only takes tensors without an empty axis: every plane
        // below is written.
        ensure!(h * w > 0 && oh * ow > 0, "MaxPool2d: an empty {shape:?} tensor");
        write_f32(&x, &out_shape, |x, y| {
            let mut columns = vec![f32::NEG_INFINITY; self.pad.padded(1, w) + 2];
            for (plane, out) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
                self.plane(plane, w, out, ow, &mut columns);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    #[test]
    fn max_pooling_becomes_one_op_with_the_same_values() {
        for (format, c, h, w, k, s, padding) in [
            (DataFormat::NCHW, 3, 8, 10, 2, 2, PaddingSpec::Valid),
            (DataFormat::NCHW, 2, 29, 29, 3, 2, PaddingSpec::SameUpper),
            (DataFormat::CHW, 4, 15, 9, 3, 2, PaddingSpec::SameUpper),
            (DataFormat::NCHW, 2, 7, 7, 3, 1, PaddingSpec::SameUpper),
        ] {
            let shape: TVec<usize> = if format.has_n() { tvec!(1, c, h, w) } else { tvec!(c, h, w) };
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&shape)).unwrap();
            let spec = PoolSpec::new(format, tvec!(k, k), padding, None, Some(tvec!(s, s)), c, c);
            let y = model.wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[x]).unwrap();
            model.select_output_outlets(&y).unwrap();

            let rewritten = super::super::cpu_passes(model.clone()).unwrap();
            let ops: Vec<String> = rewritten.nodes().iter().map(|n| n.op().name().to_string()).collect();
            assert_eq!(ops, ["Source", "MaxPool2d"], "{format:?} {h}×{w} k {k} s {s}");
            // Negative values too: a −∞ border must never win, nor a 0.
            let values: Vec<f32> =
                (0..shape.iter().product::<usize>()).map(|i| ((i * 7919 % 97) as f32 - 60.0) / 7.0).collect();
            let input = Tensor::from_shape(&shape, &values).unwrap();
            let run = |m: TypedModel| -> Vec<f32> {
                let out = m.into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
                out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
            };
            assert_eq!(run(rewritten), run(model.into_optimized().unwrap()), "{format:?} {h}×{w} k {k} s {s}");
        }
    }
}
