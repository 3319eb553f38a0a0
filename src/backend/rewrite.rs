//! Graph rewrites tract's own declutter leaves undone on the face models,
//! run on the decluttered model before the CPU runtime optimises it.
//!
//! - **Per-channel affine into the conv.** A conv followed by `·s` or `+t`
//!   (one value per output channel, or one for all) is the same conv with
//!   its kernel rows scaled and its bias `b·s + t`. tract folds these only
//!   into ungrouped convs; the face models' depthwise convs (group = channels)
//!   carry them too, each a whole extra pass over the activation.
//! - **PReLU as one op.** ONNX `PRelu` reaches tract as `Iff(0 > x, x·α, x)`:
//!   a comparison, a product and a select, three passes and two temporaries.
//!   [`ChannelPrelu`] is one pass, in place.
//!
//! - **A residual separable block as one op.** depthwise conv → 1×1 conv →
//!   `+ x` → ReLU/PReLU, BlazeFace's and FaceMesh's block, becomes
//!   [`ResidualSeparableConv`], which makes one pass where tract makes four.
//!
//! - **The remaining depthwise convs, with their clamp, as one op**
//!   ([`depthwise::DepthwiseConv`]): FaceRes's MobileNet blocks and the
//!   strided ones in the other models.
//! - **Max pooling** as [`pool::MaxPool2d`], columns then rows.
//! - **The remaining 1×1 convs**, with their bias and clamp, as
//!   [`pointwise::PointwiseConv`].
//! - **Full convs of few input channels** (up to 32: each model's first,
//!   the emotion net's second), with the transpose before them and the
//!   activation after them, as [`stem::StemConv`].
//! - **A conv summed over its map** (the emotion net's last, before its
//!   global average pool) as [`summed::SummedConv`]: a sum over the taps
//!   instead of over the pixels.
//!
//! Quantised convs are left alone: their scales live in the q-params, not
//! the kernel.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::{
    binary::{BinMiniOp, TypedBinOp},
    cnn::{Conv, KernelFormat},
    einsum::EinSum,
    logic::{CompGT, CompLT, Iff},
    math::{Add, Max, Min, Mul},
    nn::DataFormat,
};

use super::separable::{Activation, ResidualSeparableConv};
use super::{depthwise, pointwise, pool, stem, summed};

type Rewrite = fn(&TypedModel, usize) -> TractResult<Option<TypedModelPatch>>;

/// Applies the rewrites until none matches, then drops the nodes they left
/// dead. In rounds: the separable blocks take their activation whole, so
/// PReLU must already be one op when they are matched, and the depthwise
/// convs they take must not have become [`depthwise::DepthwiseConv`] yet.
pub fn apply(model: &mut TypedModel) -> TractResult<()> {
    let rounds: [&[Rewrite]; 3] = [
        &[fold_channel_affine, prelu],
        &[residual_separable],
        &[summed::rewrite, depthwise::rewrite, pool::rewrite, stem::rewrite, pointwise::rewrite],
    ];
    for rewrites in rounds {
        'again: loop {
            for id in model.eval_order()? {
                for rewrite in rewrites {
                    if let Some(patch) = rewrite(model, id)? {
                        patch.apply(model)?;
                        continue 'again;
                    }
                }
            }
            break;
        }
    }
    model.compact()
}

/// The one node that reads `id`'s only output, when there is exactly one.
pub(super) fn sole_successor(model: &TypedModel, id: usize) -> Option<&TypedNode> {
    let node = model.node(id);
    match &*node.outputs {
        [out] if out.successors.len() == 1 && !model.outputs.contains(&OutletId::new(id, 0)) => {
            Some(model.node(out.successors[0].node))
        }
        _ => None,
    }
}

/// When `node` is the binary op `M` with one constant input: the other
/// input and the constant.
pub(super) fn binary_with_const<'m, M: BinMiniOp>(
    model: &'m TypedModel,
    node: &TypedNode,
) -> Option<(OutletId, &'m Tensor)> {
    let bin = node.op_as::<TypedBinOp>()?;
    if !bin.0.is::<M>() || node.inputs.len() != 2 {
        return None;
    }
    let konst = |o: OutletId| model.outlet_fact(o).ok().and_then(|f| f.konst.as_deref());
    match (konst(node.inputs[0]), konst(node.inputs[1])) {
        (None, Some(k)) => Some((node.inputs[0], k)),
        (Some(k), None) => Some((node.inputs[1], k)),
        _ => None,
    }
}

/// One value per channel from `values`, which hold that or one for all.
pub(super) fn each_channel(values: Vec<f32>, channels: usize) -> Option<Vec<f32>> {
    match values.len() {
        1 => Some(vec![values[0]; channels]),
        n if n == channels => Some(values),
        _ => None,
    }
}

/// A constant broadcast against a `rank`-d tensor that varies only along
/// `axis` (`channels` values) or not at all: one value per channel.
pub(super) fn per_channel(k: &Tensor, rank: usize, axis: usize, channels: usize) -> Option<Vec<f32>> {
    if k.datum_type() != f32::datum_type() || k.rank() > rank {
        return None;
    }
    // Right-aligned, as broadcasting aligns it.
    let offset = rank - k.rank();
    let varying: Vec<usize> = (0..k.rank()).filter(|&i| k.shape()[i] != 1).collect();
    let values = k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
    match varying[..] {
        [] => each_channel(values, channels),
        [i] if i + offset == axis && k.shape()[i] == channels => Some(values),
        _ => None,
    }
}

/// Conv → `·s` or `+t` (constant per output channel) becomes one conv.
fn fold_channel_affine(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else { return Ok(None) };
    if conv.q_params.is_some() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let Some(kernel) = model.outlet_fact(node.inputs[1])?.konst.clone() else { return Ok(None) };
    let Some(bias) = const_values(model, node.inputs[2]) else { return Ok(None) };
    if kernel.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let Some(succ) = sole_successor(model, id) else { return Ok(None) };
    let out = model.outlet_fact(OutletId::new(id, 0))?;
    // The successor must not broadcast the conv's output any larger.
    if model.outlet_fact(OutletId::new(succ.id, 0))?.shape != out.shape {
        return Ok(None);
    }
    let shape = out.shape.as_concrete().map(|s| s.to_vec());
    let Some(shape) = shape else { return Ok(None) };
    let c_axis = conv.pool_spec.data_format.shape(shape.clone())?.c_axis();
    let channels = conv.output_channels();
    let (scale, shift) = if let Some((_, k)) = binary_with_const::<Mul>(model, succ) {
        (per_channel(k, shape.len(), c_axis, channels), None)
    } else if let Some((_, k)) = binary_with_const::<Add>(model, succ) {
        (None, per_channel(k, shape.len(), c_axis, channels))
    } else {
        return Ok(None);
    };
    if scale.is_none() && shift.is_none() {
        return Ok(None);
    }
    let Some(mut new_bias) = each_channel(bias, channels) else { return Ok(None) };
    let mut new_kernel = kernel.into_tensor();
    if let Some(s) = &scale {
        let o_axis = conv.kernel_fmt.o_axis(new_kernel.shape());
        if new_kernel.shape()[o_axis] != channels {
            return Ok(None);
        }
        let mut view = new_kernel.to_plain_array_view_mut::<f32>()?;
        for (o, mut row) in view.axis_iter_mut(tract_ndarray::Axis(o_axis)).enumerate() {
            row.mapv_inplace(|w| w * s[o]);
        }
        new_bias.iter_mut().zip(s).for_each(|(b, s)| *b *= s);
    }
    if let Some(t) = &shift {
        new_bias.iter_mut().zip(t).for_each(|(b, t)| *b += t);
    }

    let mut patch = TypedModelPatch::new(format!("fold {} into {}", succ.name, node.name));
    let input = patch.tap_model(model, node.inputs[0])?;
    let kernel = patch.add_const(format!("{}.kernel", succ.name), new_kernel)?;
    let bias = patch.add_const(format!("{}.bias", succ.name), tensor1(&new_bias))?;
    let wire = patch.wire_node(&succ.name, conv.clone(), &[input, kernel, bias])?;
    patch.shunt_outside(model, OutletId::new(succ.id, 0), wire[0])?;
    Ok(Some(patch))
}

/// `Iff(0 > x, x·α, x)` (or `x < 0`), with α constant per channel, becomes [`ChannelPrelu`].
fn prelu(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    if !node.op_is::<Iff>() || node.inputs.len() != 3 {
        return Ok(None);
    }
    let [cond, scaled, x] = [node.inputs[0], node.inputs[1], node.inputs[2]];
    let fact = model.outlet_fact(x)?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    if fact.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let is_zero = |k: &Tensor| {
        k.try_as_plain_ram().ok().and_then(|v| v.as_slice::<f32>().ok().map(|s| s.iter().all(|&z| z == 0.0)))
            == Some(true)
    };
    let cond_node = model.node(cond.node);
    let negative_test = match binary_with_const::<CompGT>(model, cond_node) {
        // 0 > x: the constant must be the left operand.
        Some((y, k)) => y == x && cond_node.inputs[1] == x && is_zero(k),
        None => matches!(binary_with_const::<CompLT>(model, cond_node),
            Some((y, k)) if y == x && cond_node.inputs[0] == x && is_zero(k)),
    };
    if !negative_test {
        return Ok(None);
    }
    let Some((y, alpha)) = binary_with_const::<Mul>(model, model.node(scaled.node)) else { return Ok(None) };
    if y != x || model.outlet_fact(scaled)?.shape != fact.shape {
        return Ok(None);
    }
    // α's one varying axis is the channel axis.
    let axis = alpha.shape().iter().rposition(|&d| d != 1).map_or(0, |i| i + shape.len() - alpha.rank());
    let Some(alpha) = per_channel(alpha, shape.len(), axis, shape[axis]) else { return Ok(None) };
    let op = ChannelPrelu { axis, alpha };
    Ok(Some(TypedModelPatch::replace_single_op(model, node, &[x], op)?))
}

/// The chain of `max(·, a)` and `min(·, b)` (one constant for all values,
/// the shape kept) that follows `node`, as a clamp `[lo, hi]` (`-∞, ∞` when
/// there is none), and the chain's last node (`node` itself then). Each
/// step keeps `lo ≤ hi`, so the clamp composes exactly: ReLU6 reaches
/// tract as max 0, min 6, max 0.
pub(super) fn clamp_after<'m>(model: &'m TypedModel, node: &'m TypedNode) -> TractResult<(f32, f32, &'m TypedNode)> {
    let shape = &model.outlet_fact(OutletId::new(node.id, 0))?.shape;
    let scalar = |k: &Tensor| {
        let v = k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
        v.iter().all(|&x| x == v[0]).then(|| v.first().copied()).flatten()
    };
    let (mut lo, mut hi, mut last) = (f32::NEG_INFINITY, f32::INFINITY, node);
    while let Some(next) = sole_successor(model, last.id) {
        if model.outlet_fact(OutletId::new(next.id, 0))?.shape != *shape {
            break;
        }
        if let Some(a) = binary_with_const::<Max>(model, next).and_then(|(_, k)| scalar(k)) {
            (lo, hi) = (lo.max(a), hi.max(a));
        } else if let Some(b) = binary_with_const::<Min>(model, next).and_then(|(_, k)| scalar(k)) {
            (lo, hi) = (lo.min(b), hi.min(b));
        } else {
            break;
        }
        last = next;
    }
    Ok((lo, hi, last))
}

/// The patch that puts `op`, reading `x`, in place of the nodes from `first`
/// to `last` (one node when they are the same), or `None` where `op` would
/// not give `last`'s shape from `x`'s: a tensor with an empty axis, an input
/// smaller than the window, or any other shape tract computes differently.
/// Our ops then never see a shape their kernels were not written for, and a
/// model tract can run never fails to load because of a rewrite.
pub(super) fn replace_chain<O: TypedOp>(
    model: &TypedModel,
    x: OutletId,
    first: &TypedNode,
    last: &TypedNode,
    op: O,
    what: &str,
) -> TractResult<Option<TypedModelPatch>> {
    let fact = model.outlet_fact(x)?;
    let empty = fact.shape.as_concrete().is_none_or(|s| s.contains(&0));
    let ours = if empty { None } else { op.output_facts(&[fact]).ok() };
    let theirs = &model.outlet_fact(OutletId::new(last.id, 0))?.shape;
    if ours.is_none_or(|f| f[0].shape != *theirs) {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::new(format!("{} to {} as one {what}", first.name, last.name));
    let input = patch.tap_model(model, x)?;
    let wire = patch.wire_node(&last.name, op, &[input])?;
    patch.shunt_outside(model, OutletId::new(last.id, 0), wire[0])?;
    Ok(Some(patch))
}

/// Test values: `n` of them, spread over ±30/`scale`, no two neighbours
/// alike, different for each `seed`.
#[cfg(test)]
pub(super) fn test_values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (((i + seed) * 7919 % 61) as f32 - 30.0) / scale).collect()
}

/// Test: `y` of `model` through ReLU6 as tract meets it (max 0, min 6, max
/// 0 again), made the output; the rewritten model must give tract's own
/// values on `input` within `tol` (relative), with both ends of the clamp
/// reached. Returns the rewritten model's op names. Only the AVX2 kernels'
/// rewrites have a clamp to take.
#[cfg(all(test, target_arch = "x86_64"))]
pub(super) fn check_relu6_rewrite(mut model: TypedModel, y: OutletId, input: &Tensor, tol: f32) -> Vec<String> {
    use tract_onnx::tract_core::ops::math::{max, min};
    let rank = model.outlet_fact(y).unwrap().rank();
    let scalar = |v: f32| Tensor::from_shape(&vec![1; rank], &[v]).unwrap();
    let zero = model.add_const("zero", scalar(0.0)).unwrap();
    let six = model.add_const("six", scalar(6.0)).unwrap();
    let y = model.wire_node("relu", max(), &[y, zero]).unwrap()[0];
    let y = model.wire_node("relu6", min(), &[y, six]).unwrap()[0];
    let y = model.wire_node("again", max(), &[y, zero]).unwrap()[0];
    model.select_output_outlets(&[y]).unwrap();

    let rewritten = super::cpu_passes(model.clone()).unwrap();
    let ops = rewritten.nodes().iter().map(|n| n.op().name().to_string()).collect();
    let run = |m: TypedModel| -> Vec<f32> {
        let out = m.into_runnable().unwrap().run(tvec!(input.clone().into_tvalue())).unwrap();
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    };
    let (ours, theirs) = (run(rewritten), run(model.into_optimized().unwrap()));
    assert_eq!(ours.len(), theirs.len());
    assert!(theirs.contains(&6.0) && theirs.contains(&0.0), "the clamp is exercised");
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{ops:?}: {a} vs {b}");
    }
    ops
}

/// The values of a constant f32 outlet.
pub(super) fn const_values(model: &TypedModel, outlet: OutletId) -> Option<Vec<f32>> {
    let k = model.outlet_fact(outlet).ok()?.konst.clone()?;
    if k.datum_type() != f32::datum_type() {
        return None;
    }
    Some(k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec())
}

/// Depthwise conv (k×k, stride 1, same zero padding) → `NIHW,OI->NOHW` 1×1
/// conv (→ `+ bias`) → `+ x` (→ ReLU or PReLU), on `[1, C, H, W]`, matched
/// at the depthwise conv, becomes one [`ResidualSeparableConv`].
fn residual_separable(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let dw = model.node(id);
    let Some(conv) = dw.op_as::<Conv>() else { return Ok(None) };
    if !super::op::available() {
        return Ok(None);
    }
    let x = dw.inputs[0];
    let Some(shape) = model.outlet_fact(x)?.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    let spec = &conv.pool_spec;
    let c = conv.input_channels();
    let k = spec.kernel_shape.first().copied().unwrap_or(0);
    let plain = conv.q_params.is_none()
        && dw.inputs.len() == 3
        && model.outlet_fact(x)?.datum_type == f32::datum_type()
        && spec.data_format == DataFormat::NCHW
        && conv.kernel_fmt == KernelFormat::OIHW
        && shape.len() == 4
        && shape[0] == 1
        && shape[1] == c
        && conv.group == c
        && conv.output_channels() == c
        && *spec.kernel_shape == [k, k]
        && (k == 3 || k == 5)
        && spec.strides().iter().all(|&s| s == 1)
        && spec.dilations().iter().all(|&d| d == 1)
        && spec.computed_padding(&shape[2..]).iter().all(|d| d.pad_before == k / 2 && d.pad_after == k / 2);
    if !plain {
        return Ok(None);
    }
    let (Some(dw_kernel), Some(dw_bias)) = (const_values(model, dw.inputs[1]), const_values(model, dw.inputs[2]))
    else {
        return Ok(None);
    };
    let Some(dw_bias) = each_channel(dw_bias, c) else { return Ok(None) };
    if dw_kernel.len() != c * k * k {
        return Ok(None);
    }

    // The pointwise conv, as tract's declutter leaves a 1×1 conv.
    let Some(pw) = sole_successor(model, id) else { return Ok(None) };
    let Some(einsum) = pw.op_as::<EinSum>() else { return Ok(None) };
    if einsum.q_params.is_some() || einsum.axes.to_string() != "NIHW,OI->NOHW" || pw.inputs.len() != 2 {
        return Ok(None);
    }
    let Some(pw_kernel) = const_values(model, pw.inputs[1]).filter(|w| w.len() == c * c) else { return Ok(None) };
    let mut last = pw;
    let mut pw_bias = vec![0f32; c];
    let mut next = sole_successor(model, last.id);
    if let Some((_, b)) = next.and_then(|n| binary_with_const::<Add>(model, n)) {
        let Some(b) = per_channel(b, 4, 1, c) else { return Ok(None) };
        pw_bias = b;
        last = next.unwrap_or(last);
        next = sole_successor(model, last.id);
    }

    // The residual: the block's input added back.
    let Some(sum) = next else { return Ok(None) };
    let residual = sum.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>())
        && sum.inputs.len() == 2
        && sum.inputs.contains(&x)
        && sum.inputs.contains(&OutletId::new(last.id, 0))
        && model.outlet_fact(OutletId::new(sum.id, 0))?.shape == model.outlet_fact(x)?.shape;
    if !residual {
        return Ok(None);
    }
    last = sum;

    let mut activation = Activation::None;
    if let Some(act) = sole_successor(model, last.id) {
        if let Some(prelu) = act.op_as::<ChannelPrelu>().filter(|p| p.axis == 1) {
            activation = Activation::Prelu(prelu.alpha.clone());
            last = act;
        } else if let Some((_, zero)) = binary_with_const::<Max>(model, act) {
            if per_channel(zero, 4, 1, c).is_some_and(|z| z.iter().all(|&v| v == 0.0)) {
                activation = Activation::Relu;
                last = act;
            }
        }
    }

    let op = ResidualSeparableConv::new(c, k, dw_kernel, dw_bias, pw_kernel, pw_bias, activation)?;
    replace_chain(model, x, dw, last, op, "block")
}

/// `y = x < 0 ? α[c]·x : x`, where `c` is `x`'s index along `axis` (α holds
/// one value per channel). One pass over `x`, in place.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPrelu {
    pub axis: usize,
    pub alpha: Vec<f32>,
}

// α is a set of model weights, never NaN.
impl Eq for ChannelPrelu {}

impl Op for ChannelPrelu {
    fn name(&self) -> StaticName {
        "ChannelPrelu".into()
    }
    op_as_typed_op!();
}

impl EvalOp for ChannelPrelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut x = args_1!(inputs).into_tensor();
        let shape = x.shape().to_vec();
        ensure!(self.axis < shape.len(), "ChannelPrelu: axis {} of a {:?} tensor", self.axis, shape);
        let channels = shape[self.axis];
        ensure!(self.alpha.len() == channels, "ChannelPrelu: {} slopes for {channels} channels", self.alpha.len());
        // Each run of `inner` values shares one channel.
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut view = x.try_as_plain_ram_mut()?;
        let values = view.as_slice_mut::<f32>()?;
        if inner > 0 {
            for (run, chunk) in values.chunks_mut(inner).enumerate() {
                let a = self.alpha[run % channels];
                // A select the compiler vectorises: no branch per value.
                chunk.iter_mut().for_each(|v| *v = if *v < 0.0 { *v * a } else { *v });
            }
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

impl TypedOp for ChannelPrelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type(), "ChannelPrelu takes one f32 tensor");
        Ok(tvec!(f32::fact(inputs[0].shape.to_tvec())))
    }
    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::logic::comp_gt;
    use tract_onnx::tract_core::ops::math::{add, mul};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn run(model: &TypedModel, x: &Tensor) -> Vec<f32> {
        let plan = model.clone().into_runnable().unwrap();
        let out = plan.run(tvec!(x.clone().into_tvalue())).unwrap();
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    fn input() -> Tensor {
        let values: Vec<f32> = (0..3 * 5 * 5).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        Tensor::from_shape(&[1, 3, 5, 5], &values).unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn a_depthwise_conv_absorbs_its_scale_and_shift() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3, 5, 5])).unwrap();
        let kernel: Vec<f32> = (0..27).map(|i| (i as f32 - 13.0) / 9.0).collect();
        let kernel = model.add_const("k", Tensor::from_shape(&[3, 1, 3, 3], &kernel).unwrap()).unwrap();
        let bias = model.add_const("b", tensor1(&[0.5f32, -0.25, 1.0])).unwrap();
        let pool = PoolSpec::new(DataFormat::NCHW, tvec!(3, 3), PaddingSpec::SameUpper, None, None, 3, 3);
        let conv = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: 3, q_params: None };
        let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        let s = model.add_const("s", Tensor::from_shape(&[1, 3, 1, 1], &[2.0f32, -1.0, 0.5]).unwrap()).unwrap();
        let y = model.wire_node("scale", mul(), &[y[0], s]).unwrap();
        let t = model.add_const("t", Tensor::from_shape(&[1, 3, 1, 1], &[1.0f32, 2.0, 3.0]).unwrap()).unwrap();
        let y = model.wire_node("shift", add(), &[t, y[0]]).unwrap();
        model.select_output_outlets(&y).unwrap();

        let mut rewritten = model.clone();
        apply(&mut rewritten).unwrap();
        // Where the AVX2 kernels are, the folded conv goes on to be a DepthwiseConv.
        let convs =
            rewritten.nodes().iter().filter(|n| n.op_is::<Conv>() || n.op_is::<depthwise::DepthwiseConv>()).count();
        assert_eq!((convs, rewritten.nodes().iter().filter(|n| n.op_is::<TypedBinOp>()).count()), (1, 0));
        assert_close(&run(&rewritten, &input()), &run(&model, &input()));
    }

    /// x → depthwise k×k → 1×1 conv → + x → activation, on [1, c, h, w].
    fn separable_block(c: usize, h: usize, w: usize, k: usize, prelu: bool) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
        let values = |n, seed| test_values(n, seed, 40.0);
        let dk = model.add_const("dk", Tensor::from_shape(&[c, 1, k, k], &values(c * k * k, 1)).unwrap()).unwrap();
        let db = model.add_const("db", tensor1(&values(c, 2))).unwrap();
        let pool = PoolSpec::new(DataFormat::NCHW, tvec!(k, k), PaddingSpec::SameUpper, None, None, c, c);
        let dw = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: c, q_params: None };
        let y = model.wire_node("dw", dw, &[x, dk, db]).unwrap()[0];
        let pk = model.add_const("pk", Tensor::from_shape(&[c, c, 1, 1], &values(c * c, 3)).unwrap()).unwrap();
        let pb = model.add_const("pb", tensor1(&values(c, 4))).unwrap();
        let pool = PoolSpec::new(DataFormat::NCHW, tvec!(1, 1), PaddingSpec::Valid, None, None, c, c);
        let pw = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: 1, q_params: None };
        let y = model.wire_node("pw", pw, &[y, pk, pb]).unwrap()[0];
        let y = model.wire_node("sum", add(), &[x, y]).unwrap()[0];
        let y = if prelu {
            let alpha = model.add_const("a", Tensor::from_shape(&[1, c, 1, 1], &values(c, 5)).unwrap()).unwrap();
            let zero = model.add_const("zero", Tensor::from_shape(&[1, 1, 1, 1], &[0f32]).unwrap()).unwrap();
            let scaled = model.wire_node("mul", mul(), &[y, alpha]).unwrap()[0];
            let test = model.wire_node("test", TypedBinOp(comp_gt(), None), &[zero, y]).unwrap()[0];
            model.wire_node("iff", Iff, &[test, scaled, y]).unwrap()[0]
        } else {
            let zero = model.add_const("zero", Tensor::from_shape(&[1, 1, 1, 1], &[0f32]).unwrap()).unwrap();
            model.wire_node("relu", tract_onnx::tract_core::ops::math::max(), &[y, zero]).unwrap()[0]
        };
        model.select_output_outlets(&[y]).unwrap();
        model
    }

    #[test]
    fn a_residual_separable_block_becomes_one_op_with_the_same_values() {
        // Widths below, across and at a strip; channel counts that do and do
        // not fill the output tiles; both kernel sizes the models use.
        for (c, h, w, k, prelu) in [(5, 7, 37, 3, false), (4, 6, 16, 5, true), (24, 9, 9, 3, false), (3, 1, 2, 3, true)]
        {
            let model = separable_block(c, h, w, k, prelu);
            let rewritten = super::super::cpu_passes(model.clone()).unwrap();
            let ops: Vec<String> = rewritten.nodes().iter().map(|n| n.op().name().to_string()).collect();
            // Without the AVX2 kernel the block stays tract's.
            if super::super::op::available() {
                assert_eq!(ops, ["Source", "ResidualSeparableConv"], "{c}×{h}×{w}, k {k}");
            }
            let values: Vec<f32> = (0..c * h * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
            let x = Tensor::from_shape(&[1, c, h, w], &values).unwrap();
            let plain = model.into_optimized().unwrap();
            assert_close(&run(&rewritten, &x), &run(&plain, &x));
        }
    }

    /// Where a window is larger than its padded input (tract then gives an
    /// empty axis), the rewrites step aside rather than fail the load.
    #[test]
    fn windows_larger_than_their_input_are_left_to_tract() {
        use tract_onnx::tract_core::ops::cnn::MaxPool;
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 8, 2, 2])).unwrap();
        let k = model.add_const("k", Tensor::from_shape(&[8, 1, 3, 3], &[0.5f32; 72]).unwrap()).unwrap();
        let b = model.add_const("b", tensor1(&[0f32; 8])).unwrap();
        let pool = PoolSpec::new(DataFormat::NCHW, tvec!(3, 3), PaddingSpec::Valid, None, None, 8, 8);
        let dw = Conv { pool_spec: pool.clone(), kernel_fmt: KernelFormat::OIHW, group: 8, q_params: None };
        let y = model.wire_node("dw", dw, &[x, k, b]).unwrap()[0];
        let p = model.wire_node("pool", MaxPool { pool_spec: pool, with_index_outputs: None }, &[x]).unwrap()[0];
        model.select_output_outlets(&[y, p]).unwrap();
        let rewritten = super::super::cpu_passes(model).unwrap();
        let ops: Vec<String> = rewritten.nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(!ops.iter().any(|o| o == "DepthwiseConv" || o == "MaxPool2d"), "{ops:?}");
    }

    #[test]
    fn prelu_becomes_one_op_with_the_same_values() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3, 5, 5])).unwrap();
        let alpha = model.add_const("a", Tensor::from_shape(&[1, 3, 1, 1], &[0.1f32, 0.5, -2.0]).unwrap()).unwrap();
        let zero = model.add_const("zero", Tensor::from_shape(&[1, 1, 1, 1], &[0f32]).unwrap()).unwrap();
        let scaled = model.wire_node("mul", mul(), &[x, alpha]).unwrap()[0];
        let test = model.wire_node("test", TypedBinOp(comp_gt(), None), &[zero, x]).unwrap()[0];
        let y = model.wire_node("iff", Iff, &[test, scaled, x]).unwrap();
        model.select_output_outlets(&y).unwrap();

        let mut rewritten = model.clone();
        apply(&mut rewritten).unwrap();
        assert!(rewritten.nodes().iter().any(|n| n.op_is::<ChannelPrelu>()));
        assert!(!rewritten.nodes().iter().any(|n| n.op_is::<Iff>()));
        assert_close(&run(&rewritten, &input()), &run(&model, &input()));
    }
}
