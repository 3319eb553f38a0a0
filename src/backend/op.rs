//! What our own tract ops share: the padding of the conv and pool windows,
//! the allocation of their output, an 8 × 8 transpose in registers (between
//! channels-first and channels-last), and their `Op`/`TypedOp` boilerplate.
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

/// `dst[j · dst_stride + i] = src[i · src_stride + j]` for `i, j < 8`.
///
/// # Safety
/// AVX2; both 8 × 8 blocks in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transpose_8x8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_stride)));
    // Rows 2i and 2i+1 interleaved: t[2i] holds their columns 0, 1 (and
    // 4, 5 in the high half), t[2i+1] columns 2, 3 (6, 7).
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // Four rows' column j (j + 4 in the high half): u[0] column 0, u[1]
    // column 2, u[2] column 1, u[3] column 3; u[4..] the same for rows 4-7.
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (t[(i / 4) * 4 + i % 2], t[(i / 4) * 4 + 2 + i % 2]);
        if (i / 2) % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    for (j, q) in [0, 2, 1, 3].into_iter().enumerate() {
        let (top, bottom) = (u[q], u[4 + q]);
        _mm256_storeu_ps(dst.add(j * dst_stride), _mm256_permute2f128_ps::<0x20>(top, bottom));
        _mm256_storeu_ps(dst.add((j + 4) * dst_stride), _mm256_permute2f128_ps::<0x31>(top, bottom));
    }
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
