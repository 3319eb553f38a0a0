//! What our own tract ops share: the padding of the conv and pool windows,
//! the allocation of their output, and their `Op`/`TypedOp` boilerplate.
//! The ops themselves and the rewrites that put them in are elsewhere.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;

/// Whether this CPU runs our ops' kernels (AVX2 and FMA). Elsewhere the
/// rewrites leave those nodes to tract, whose NEON kernels beat a portable
/// loop; the portable paths are the references the kernels are tested
/// against.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Zero rows and columns around a 2-D input, `[top, left]` and
/// `[bottom, right]`, as tract computes them for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding {
    pub before: [usize; 2],
    pub after: [usize; 2],
}

impl Padding {
    /// `spec`'s padding on an input whose spatial sizes are `hw`.
    pub fn of(spec: &PoolSpec, hw: &[usize]) -> Padding {
        let p = spec.computed_padding(hw);
        Padding { before: [p[0].pad_before, p[1].pad_before], after: [p[0].pad_after, p[1].pad_after] }
    }

    /// The padded length of `axis` (0: rows, 1: columns) of `n` values.
    pub fn padded(&self, axis: usize, n: usize) -> usize {
        n + self.before[axis] + self.after[axis]
    }

    /// How many windows of `k` fit, `stride` apart, along `axis` of `n`
    /// values padded; `None` when not even one does.
    pub fn windows(&self, axis: usize, n: usize, k: usize, stride: usize) -> Option<usize> {
        self.padded(axis, n).checked_sub(k).map(|d| d / stride + 1)
    }
}

/// The output of one of our f32 ops: a `shape` tensor that `fill` writes
/// from the input's values. `fill` must write every element (each kernel
/// covers its whole output); the tensor is allocated without zeroing.
pub fn write_f32(
    x: &TValue,
    shape: &[usize],
    fill: impl FnOnce(&[f32], &mut [f32]) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    // SAFETY: `fill` writes every element before anything reads it.
    let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
    {
        let x = x.try_as_plain_ram()?;
        let mut y = out.try_as_plain_ram_mut()?;
        fill(x.as_slice::<f32>()?, y.as_slice_mut::<f32>()?)?;
    }
    Ok(tvec!(out.into_tvalue()))
}

/// tract's `Op` and `TypedOp` for one of our ops that takes one f32 tensor
/// and gives one, `self.output_shape(input shape)`; its `EvalOp` is its own.
macro_rules! f32_op {
    ($op:ty, $name:literal) => {
        impl Op for $op {
            fn name(&self) -> StaticName {
                $name.into()
            }
            op_as_typed_op!();
        }

        impl TypedOp for $op {
            fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
                ensure!(
                    inputs.len() == 1 && inputs[0].datum_type == f32::datum_type(),
                    concat!($name, " takes one f32 tensor")
                );
                Ok(tvec!(f32::fact(self.output_shape(&inputs[0].shape)?)))
            }
            as_op!();
        }
    };
}
pub(super) use f32_op;
