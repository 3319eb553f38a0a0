//! Dot products between an activation row and a weight row as it lies in the
//! model file: f32, f16, or Q8_0 blocks. These are the inner loops of
//! [`super::linear`]; everything else in the LLaMA graph is tract's.
//!
//! Why our own: tract 0.23.9 has no x86 kernel for an 8-bit block format, and
//! its f16 GEMV reads weights through a packing step. A decode step is a GEMV
//! per weight matrix, bound by memory: the fastest kernel is the one that
//! streams each weight byte once, straight from the mapping, with enough
//! independent accumulators to keep the loads in flight.
//!
//! Q8_0 follows llama.cpp's arithmetic: the activation row is quantised to
//! 32-value blocks with an f16-rounded scale (round half to even, as its AVX2
//! path), and each block pair contributes `d_w · d_x · Σ q_w q_x` with the
//! integer sum exact. So int8 here is llama.cpp's Q8_0, not an approximation
//! of it.
//!
//! Each kernel has an AVX2+FMA+F16C path (`avx2.rs`) and a NEON one, with or
//! without the dot-product extension (`neon.rs`), picked at run time, and a
//! portable one that is the reference in the unit tests.

use half::f16;

/// Values per quantisation block (ggml's QK8_0).
pub const QK: usize = 32;
/// Bytes per Q8_0 block in the file: an f16 scale, then 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

/// One quantised block of an activation row.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8 {
    pub d: f32,
    pub qs: [i8; QK],
    /// −16 · Σ qs: a kernel that offsets the weights by +128 (to make them
    /// unsigned for `vpdpbusd`) starts each of its 8 lane sums here, so
    /// that the lanes add up to the exact Σ q_w q_x again.
    pub offset: i32,
}

impl BlockQ8 {
    fn new(d: f32, qs: [i8; QK]) -> BlockQ8 {
        BlockQ8::with_sum(d, qs, qs.iter().map(|q| *q as i32).sum())
    }

    /// For a caller that has Σ qs already (the AVX2 quantiser sums in SIMD).
    fn with_sum(d: f32, qs: [i8; QK], sum: i32) -> BlockQ8 {
        BlockQ8 { d, qs, offset: -16 * sum }
    }
}

/// Which weight layout a row has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowFormat {
    F32,
    F16,
    Q8_0,
}

impl RowFormat {
    /// Bytes one row of `k` values takes (`k` a multiple of [`QK`]).
    pub fn row_bytes(self, k: usize) -> usize {
        match self {
            RowFormat::F32 => 4 * k,
            RowFormat::F16 => 2 * k,
            RowFormat::Q8_0 => k / QK * Q8_0_BYTES,
        }
    }
}

/// The kernels this CPU can run, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // each target builds only its own variants
enum Isa {
    /// x86_64 with AVX2, FMA and F16C; `vnni`: AVX-512 VNNI on 256-bit
    /// registers too (AVX512_VNNI with AVX512VL).
    Avx2 {
        vnni: bool,
    },
    /// AArch64's baseline SIMD; `dot`: the ARMv8.2 dot-product extension too.
    Neon {
        dot: bool,
    },
    Portable,
}

fn detect() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
            let vnni = is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl");
            return Isa::Avx2 { vnni: vnni && std::env::var_os("EMOEDGE_NO_VNNI").is_none() };
        }
        #[cfg(target_arch = "aarch64")]
        return Isa::Neon { dot: std::arch::is_aarch64_feature_detected!("dotprod") };
        #[allow(unreachable_code)]
        Isa::Portable
    })
}

/// The instruction set the kernels use on this CPU, for logs and `doctor`.
pub fn isa() -> &'static str {
    match detect() {
        Isa::Avx2 { vnni: true } => "avx2+fma+f16c+avx512vnni",
        Isa::Avx2 { vnni: false } => "avx2+fma+f16c",
        Isa::Neon { dot: true } => "neon+dotprod",
        Isa::Neon { dot: false } => "neon",
        Isa::Portable => "portable",
    }
}

/// Quantises `x` (a multiple of 32 long) as llama.cpp's `quantize_row_q8_0`.
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<BlockQ8>) {
    #[cfg(target_arch = "x86_64")]
    if let Isa::Avx2 { .. } = detect() {
        // SAFETY: AVX2, FMA and F16C are present (checked by `detect`).
        unsafe { avx2::quantize_q8_0(x, out) };
        return;
    }
    quantize_q8_0_portable(x, out)
}

fn quantize_q8_0_portable(x: &[f32], out: &mut Vec<BlockQ8>) {
    out.clear();
    for chunk in x.chunks_exact(QK) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; QK];
        for (q, v) in qs.iter_mut().zip(chunk) {
            *q = (v * id).round_ties_even() as i8;
        }
        out.push(BlockQ8::new(f16::from_f32(amax / 127.0).to_f32(), qs));
    }
}

/// Quantises one weight row into Q8_0 file blocks (llama.cpp's reference
/// quantiser: round half away from zero), appending to `out`.
pub fn quantize_q8_0_row(x: &[f32], out: &mut Vec<u8>) {
    for chunk in x.chunks_exact(QK) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(chunk.iter().map(|v| (v * id).round() as i8 as u8));
    }
}

/// The activation a dot product takes: f32 values, or Q8_0 blocks for Q8_0 weights.
pub enum Activation<'a> {
    F32(&'a [f32]),
    Q8(&'a [BlockQ8]),
}

/// Where a [`matmul_rows`] call writes: `y[c * stride + i]` for activation
/// row `c` and weight row `i` of the call, that is a block of columns of the
/// row-major `[s, n]` result (`stride` = n).
#[derive(Clone, Copy)]
pub struct Columns {
    pub ptr: *mut f32,
    pub stride: usize,
}

impl Columns {
    /// The same view, starting `first` columns further.
    ///
    /// # Safety
    /// `first` must stay within the allocation `ptr` points into.
    pub unsafe fn skip(self, first: usize) -> Columns {
        Columns { ptr: unsafe { self.ptr.add(first) }, stride: self.stride }
    }
}

// SAFETY: a `Columns` is only written through by the one call it is handed
// to, and the callers hand disjoint column blocks to concurrent calls.
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

/// `y[c][i] = w_i · x_c` for every row `w_i` of `w` (rows of
/// `format.row_bytes(k)` bytes, back to back) and every activation row `x_c`.
///
/// # Safety
/// `y` must be valid for writes at `c * y.stride + i` for every `c < xs.len()`
/// and every row `i` of `w`, and nothing else may access those elements
/// during the call.
pub unsafe fn matmul_rows(format: RowFormat, w: &[u8], xs: &[Activation], y: Columns) {
    let rb = format.row_bytes(activation_len(&xs[0]));
    match detect() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked by `detect`); `y`
        // is the caller's promise.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 { vnni } => return unsafe { avx2::matmul_rows(format, w, xs, y, vnni) },
        // SAFETY: NEON is in every AArch64 CPU, and `dot` says whether SDOT is.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { dot } => return unsafe { neon::matmul_rows(format, w, xs, y, dot) },
        _ => {}
    }
    for (i, wr) in w.chunks_exact(rb.max(1)).enumerate() {
        for (c, x) in xs.iter().enumerate() {
            // SAFETY: in bounds by the caller's promise.
            unsafe { *y.ptr.add(c * y.stride + i) = portable::dot(format, wr, x) };
        }
    }
}

fn activation_len(x: &Activation) -> usize {
    match x {
        Activation::F32(v) => v.len(),
        Activation::Q8(b) => b.len() * QK,
    }
}

/// Row `w` (in `format`) widened to f32 into `out`.
pub fn dequantize_row(format: RowFormat, w: &[u8], out: &mut [f32]) {
    match format {
        RowFormat::F32 => {
            for (o, b) in out.iter_mut().zip(w.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        RowFormat::F16 => {
            for (o, b) in out.iter_mut().zip(w.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        RowFormat::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(w.chunks_exact(Q8_0_BYTES)) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                for (v, q) in o.iter_mut().zip(&b[2..]) {
                    *v = d * (*q as i8) as f32;
                }
            }
        }
    }
}

mod portable {
    use super::*;

    pub fn dot(format: RowFormat, w: &[u8], x: &Activation) -> f32 {
        match (format, x) {
            (RowFormat::Q8_0, Activation::Q8(x)) => w
                .chunks_exact(Q8_0_BYTES)
                .zip(x.iter())
                .map(|(b, xb)| {
                    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    let isum: i32 = b[2..].iter().zip(&xb.qs).map(|(q, r)| (*q as i8) as i32 * *r as i32).sum();
                    d * xb.d * isum as f32
                })
                .sum(),
            (_, Activation::F32(x)) => {
                let mut row = vec![0f32; x.len()];
                dequantize_row(format, w, &mut row);
                row.iter().zip(x.iter()).map(|(a, b)| a * b).sum()
            }
            (_, Activation::Q8(_)) => f32::NAN,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: usize, seed: u32) -> Vec<f32> {
        (0..k).map(|i| (((i as u32 * 2654435761).wrapping_add(seed * 97)) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    fn encode(format: RowFormat, w: &[f32]) -> Vec<u8> {
        match format {
            RowFormat::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            RowFormat::F16 => w.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            RowFormat::Q8_0 => {
                let mut out = Vec::new();
                quantize_q8_0_row(w, &mut out);
                out
            }
        }
    }

    /// The SIMD path equals the portable one for every tiling it uses:
    /// decode (one activation row) and prefill (1 to 19 rows: groups of
    /// eight, fours, pairs and a single row), over distinct weight rows
    /// (a 4-row tile and a single one); and the dot itself is right within
    /// the format's precision.
    #[test]
    fn kernels_agree_with_the_portable_reference() {
        const ROWS: usize = 5;
        const MAX_S: usize = 19;
        let k = 576 + 32; // not a multiple of 16 blocks: exercises the tails
        let ws: Vec<Vec<f32>> = (0..ROWS).map(|i| row(k, 50 + i as u32)).collect();
        let xs: Vec<Vec<f32>> = (0..MAX_S).map(|s| row(k, s as u32 + 2)).collect();
        // The dispatched kernels; on a CPU with VNNI, the plain AVX2 tiles too.
        type Matmul = fn(RowFormat, &[u8], &[Activation], Columns);
        // SAFETY (both): the callers' `y` holds every element written, and
        // nothing else touches it.
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut paths: Vec<(&str, Matmul)> = vec![("dispatched", |f, w, x, y| unsafe { matmul_rows(f, w, x, y) })];
        #[cfg(target_arch = "x86_64")]
        if detect() == (Isa::Avx2 { vnni: true }) {
            // SAFETY: as above, and the CPU has AVX2 (checked by `detect`).
            paths.push(("avx2 without vnni", |f, w, x, y| unsafe { avx2::matmul_rows(f, w, x, y, false) }));
        }
        for format in [RowFormat::F32, RowFormat::F16, RowFormat::Q8_0] {
            let rows: Vec<Vec<u8>> = ws.iter().map(|w| encode(format, w)).collect();
            assert_eq!(rows[0].len(), format.row_bytes(k));
            let wb: Vec<u8> = rows.concat();
            let q: Vec<Vec<BlockQ8>> = xs
                .iter()
                .map(|x| {
                    let mut b = Vec::new();
                    quantize_q8_0(x, &mut b);
                    b
                })
                .collect();
            let acts: Vec<Activation> = (0..MAX_S)
                .map(|s| if format == RowFormat::Q8_0 { Activation::Q8(&q[s]) } else { Activation::F32(&xs[s]) })
                .collect();
            for (path, matmul) in &paths {
                // Prefill's result for a row does not depend on how many rows
                // came with it (a primed session continued equals a fresh one).
                let mut all = vec![f32::NAN; ROWS * MAX_S];
                matmul(format, &wb, &acts, Columns { ptr: all.as_mut_ptr(), stride: ROWS });
                for n in 1..=MAX_S {
                    // y is [n, ROWS]: activation row s, weight row i at s * ROWS + i.
                    let mut y = vec![f32::NAN; ROWS * n];
                    matmul(format, &wb, &acts[..n], Columns { ptr: y.as_mut_ptr(), stride: ROWS });
                    if n > 1 {
                        let same = y.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{path} {format:?}: {n} activation rows give other bits than {MAX_S}");
                    }
                    for s in 0..n {
                        for i in 0..ROWS {
                            let out = y[s * ROWS + i];
                            let reference = portable::dot(format, &rows[i], &acts[s]);
                            let exact: f32 = ws[i].iter().zip(&xs[s]).map(|(a, b)| a * b).sum();
                            let at = format!("{path} {format:?}, {n} activation rows: y[{s}][{i}] = {out}");
                            assert!((out - reference).abs() <= 1e-4 * reference.abs().max(1.0), "{at} vs {reference}");
                            // Relative to Σ|w·x|, which bounds what the rounding can move.
                            let magnitude: f32 = ws[i].iter().zip(&xs[s]).map(|(a, b)| (a * b).abs()).sum();
                            let tol = match format {
                                RowFormat::F32 => 1e-5,
                                RowFormat::F16 => 1e-3,
                                RowFormat::Q8_0 => 2e-2,
                            } * magnitude;
                            assert!((out - exact).abs() <= tol, "{at} vs exact {exact} (tolerance {tol})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn activation_quantisation_equals_the_portable_one() {
        let x: Vec<f32> = row(576, 3).iter().enumerate().map(|(i, v)| v * (1 + i % 7) as f32).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        quantize_q8_0(&x, &mut a);
        quantize_q8_0_portable(&x, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert_eq!(p.d, q.d);
            assert_eq!(p.qs, q.qs);
            assert_eq!(p.offset, q.offset);
        }
        quantize_q8_0(&[0.0; 32], &mut a);
        assert_eq!((a[0].d, a[0].qs), (0.0, [0; 32]));
    }

    #[test]
    fn q8_0_roundtrip_is_within_half_a_step() {
        let w = row(64, 7);
        let mut b = Vec::new();
        quantize_q8_0_row(&w, &mut b);
        let mut back = vec![0f32; 64];
        dequantize_row(RowFormat::Q8_0, &b, &mut back);
        for (blk, (a, r)) in w.chunks(32).zip(back.chunks(32)).enumerate() {
            // Half a step, plus the f16 rounding of the scale times |q| ≤ 127.
            let step = a.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (x, y) in a.iter().zip(r) {
                assert!((x - y).abs() <= step * (0.5 + 127.0 / 2048.0) + 1e-6, "block {blk}: {x} vs {y}");
            }
        }
    }
}
