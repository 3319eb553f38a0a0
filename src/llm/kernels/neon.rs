//! The NEON kernels (AArch64: every Raspberry Pi 4/5 and Jetson core).
//!
//! A decode step streams each weight row once, so a row is dotted with every
//! activation row of the call while it sits in L1 (a prefill chunk), with
//! four independent accumulators to keep loads in flight.
//!
//! Q8_0 keeps llama.cpp's arithmetic: each block's integer sum is exact, then
//! scaled by `d_w · d_x`. With the ARMv8.2 dot-product extension (Pi 5's A76,
//! Orin's A78AE) a block is two SDOTs; without it (Pi 4's A72), widening
//! multiplies and pairwise adds. SDOT and the f16 → f32 widening (FCVTL) are
//! written as inline assembly: their intrinsics are not stable Rust yet.

use std::arch::{aarch64::*, asm};

use half::f16;

use super::{activation_len, Activation, BlockQ8, Columns, RowFormat, Q8_0_BYTES};

/// # Safety
/// As [`super::matmul_rows`]; `dot` only where the CPU has the dot-product extension.
pub unsafe fn matmul_rows(format: RowFormat, w: &[u8], xs: &[Activation], y: Columns, dot: bool) {
    let rb = format.row_bytes(activation_len(&xs[0]));
    for (i, row) in w.chunks_exact(rb.max(1)).enumerate() {
        for (c, x) in xs.iter().enumerate() {
            let v = match (format, x) {
                (RowFormat::Q8_0, Activation::Q8(x)) if dot => unsafe { q8_dot_sdot(row, x) },
                (RowFormat::Q8_0, Activation::Q8(x)) => unsafe { q8_dot(row, x) },
                (RowFormat::F16, Activation::F32(x)) => unsafe { f16_dot(row, x) },
                (RowFormat::F32, Activation::F32(x)) => unsafe { f32_dot(row, x) },
                _ => f32::NAN,
            };
            // SAFETY: in bounds by the caller's promise.
            unsafe { *y.ptr.add(c * y.stride + i) = v };
        }
    }
}

fn scale(block: &[u8], x: &BlockQ8) -> f32 {
    f16::from_le_bytes([block[0], block[1]]).to_f32() * x.d
}

/// Σ over blocks of d_w·d_x·Σ q_w q_x, widening i8 products to i16 and
/// adding pairs into i32 lanes (|q| ≤ 127, so nothing overflows).
unsafe fn q8_dot(w: &[u8], x: &[BlockQ8]) -> f32 {
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 2];
        for (n, (b, xb)) in w.chunks_exact(Q8_0_BYTES).zip(x).enumerate() {
            let wp = b.as_ptr().add(2) as *const i8;
            let (w0, w1) = (vld1q_s8(wp), vld1q_s8(wp.add(16)));
            let (x0, x1) = (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
            let mut s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
            s = vpadalq_s16(s, vmull_high_s8(w0, x0));
            s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));
            s = vpadalq_s16(s, vmull_high_s8(w1, x1));
            acc[n % 2] = vfmaq_n_f32(acc[n % 2], vcvtq_f32_s32(s), scale(b, xb));
        }
        vaddvq_f32(vaddq_f32(acc[0], acc[1]))
    }
}

/// `acc += Σ` of the four products of each group of four bytes (SDOT).
#[target_feature(enable = "dotprod")]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    unsafe {
        asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc, a = in(vreg) a, b = in(vreg) b,
             options(pure, nomem, nostack));
    }
    acc
}

#[target_feature(enable = "dotprod")]
unsafe fn q8_dot_sdot(w: &[u8], x: &[BlockQ8]) -> f32 {
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 2];
        for (n, (b, xb)) in w.chunks_exact(Q8_0_BYTES).zip(x).enumerate() {
            let wp = b.as_ptr().add(2) as *const i8;
            let s = sdot(vdupq_n_s32(0), vld1q_s8(wp), vld1q_s8(xb.qs.as_ptr()));
            let s = sdot(s, vld1q_s8(wp.add(16)), vld1q_s8(xb.qs.as_ptr().add(16)));
            acc[n % 2] = vfmaq_n_f32(acc[n % 2], vcvtq_f32_s32(s), scale(b, xb));
        }
        vaddvq_f32(vaddq_f32(acc[0], acc[1]))
    }
}

/// Eight halves widened to two vectors of f32 (FCVTL, FCVTL2: baseline AArch64).
unsafe fn widen(p: *const u8) -> (float32x4_t, float32x4_t) {
    unsafe {
        let h = vld1q_u16(p as *const u16);
        let (lo, hi): (float32x4_t, float32x4_t);
        asm!("fcvtl {lo:v}.4s, {h:v}.4h", "fcvtl2 {hi:v}.4s, {h:v}.8h", h = in(vreg) h, lo = out(vreg) lo,
             hi = out(vreg) hi, options(pure, nomem, nostack));
        (lo, hi)
    }
}

unsafe fn f16_dot(w: &[u8], x: &[f32]) -> f32 {
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let full = x.len() / 16 * 16;
        for j in (0..full).step_by(16) {
            let (a, b) = widen(w.as_ptr().add(2 * j));
            let (c, d) = widen(w.as_ptr().add(2 * j + 16));
            let xp = x.as_ptr().add(j);
            acc[0] = vfmaq_f32(acc[0], a, vld1q_f32(xp));
            acc[1] = vfmaq_f32(acc[1], b, vld1q_f32(xp.add(4)));
            acc[2] = vfmaq_f32(acc[2], c, vld1q_f32(xp.add(8)));
            acc[3] = vfmaq_f32(acc[3], d, vld1q_f32(xp.add(12)));
        }
        let tail: f32 = (full..x.len()).map(|j| f16::from_le_bytes([w[2 * j], w[2 * j + 1]]).to_f32() * x[j]).sum();
        vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]))) + tail
    }
}

unsafe fn f32_dot(w: &[u8], x: &[f32]) -> f32 {
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let full = x.len() / 16 * 16;
        let wp = w.as_ptr() as *const f32; // unaligned loads: vld1q_f32 needs none
        for j in (0..full).step_by(16) {
            for (l, a) in acc.iter_mut().enumerate() {
                *a = vfmaq_f32(*a, vld1q_f32(wp.add(j + 4 * l)), vld1q_f32(x.as_ptr().add(j + 4 * l)));
            }
        }
        let tail: f32 = (full..x.len())
            .map(|j| f32::from_le_bytes([w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]]) * x[j])
            .sum();
        vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]))) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::{super::*, *};

    /// Both Q8_0 paths (qemu's CPU and the boards from the Pi 5 on have SDOT;
    /// the Pi 4 has not) equal the portable reference, over blocks that use
    /// the whole ±127 range.
    #[test]
    fn both_q8_paths_equal_the_portable_one() {
        let k = 576;
        let w: Vec<f32> = (0..k).map(|i| ((i * 37 % 255) as f32 - 127.0) / 127.0).collect();
        let x: Vec<f32> = (0..k).map(|i| ((i * 91 % 255) as f32 - 127.0) / 64.0).collect();
        let mut wb = Vec::new();
        quantize_q8_0_row(&w, &mut wb);
        let mut xq = Vec::new();
        quantize_q8_0(&x, &mut xq);
        let reference = portable::dot(RowFormat::Q8_0, &wb, &Activation::Q8(&xq));
        // SAFETY: q8_dot is baseline NEON.
        let plain = unsafe { q8_dot(&wb, &xq) };
        assert!((plain - reference).abs() <= 1e-4 * reference.abs().max(1.0), "{plain} vs {reference}");
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            // SAFETY: the CPU has the dot-product extension.
            let dot = unsafe { q8_dot_sdot(&wb, &xq) };
            assert!((dot - reference).abs() <= 1e-4 * reference.abs().max(1.0), "{dot} vs {reference}");
        }
    }
}
