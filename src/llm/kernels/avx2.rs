//! The AVX2+FMA+F16C kernels (x86_64): tiles of weight rows × activation
//! rows, with every accumulator in a register.

use std::arch::x86_64::*;

use super::*;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// How far ahead of the current block a Q8_0 decode row is prefetched into
/// L1, in bytes. A decode step streams ~145 MB of weights in small
/// matrices (0.3–1.9 MB), on which the hardware prefetcher falls short (the
/// old four-row tile without software prefetch read 5.5 GB/s here). One
/// prefetch per line at 2–9 KB gave this kernel 12.2–12.3 GB/s on a
/// SmolLM2-shaped stream; adding an L2 prefetch as well took it back to
/// 11.1–11.2 (the extra instructions cost more than they hide). Measured
/// later on whole int8 decode steps, which that stream did not model, an
/// L2 prefetch 4× as far ahead pays: with old and new binaries alternated
/// 16 times, 95.8 → 97.6 tok/s on average, the new faster in 14.
const PREFETCH: usize = 128 * Q8_0_BYTES;
/// The L1 distance in bytes for f32/f16 rows in prefill tiles; their L2
/// prefetch goes 8× as far.
const PREFETCH_BYTES: usize = 2048;
/// The same for an f32/f16 decode row, L1 only. On an fp16-shaped stream
/// (269 MB) this read 15.4–15.6 GB/s with 2 MB pages, against 14.5–14.6
/// for 2 KB plus an L2 prefetch 16 KB ahead (the choice with 4 KB pages,
/// where 1 KB alone is still 3 % ahead); 512 B read 13.7–13.9, none 13.0.
const ROW_PREFETCH_BYTES: usize = 1024;

/// llama.cpp's AVX2 `quantize_row_q8_0`: |x| max per block, scale 127/max,
/// round half to even, pack to bytes.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_q8_0(x: &[f32], out: &mut Vec<BlockQ8>) {
    out.clear();
    let sign = _mm256_set1_ps(-0.0);
    for chunk in x.chunks_exact(QK) {
        let p = chunk.as_ptr();
        let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        let m = v.iter().fold(_mm256_setzero_ps(), |m, v| _mm256_max_ps(m, _mm256_andnot_ps(sign, *v)));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let q = v.map(|v| {
            _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
        });
        // i32 → i16 → i8 packs interleave the 128-bit lanes; this permute undoes it.
        let q16 = [_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])];
        let q8 = _mm256_packs_epi16(q16[0], q16[1]);
        let q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut qs = [0i8; QK];
        _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, q8);
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(amax / 127.0), _MM_FROUND_TO_NEAREST_INT)));
        // Σ qs from the i32 lanes (|q| ≤ 127, so the packs above kept them
        // whole): the scalar sum over the bytes was a third of this function.
        let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        out.push(BlockQ8::with_sum(d, qs, _mm_cvtsi128_si32(s)));
    }
}

/// Weight rows per group in prefill: a group stays in L1 while every
/// activation row passes it, so each weight byte comes from memory once and
/// each activation block from L2 once per group.
const G: usize = 8;

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matmul_rows(format: RowFormat, w: &[u8], xs: &[Activation], y: Columns, vnni: bool) {
    let s = xs.len();
    let k = activation_len(&xs[0]);
    let rb = format.row_bytes(k);
    let rows = w.len() / rb;
    // One tile of $r weight rows from row `$row` × $c activation rows from `$col`.
    macro_rules! tile {
        ($row:expr, $col:expr, $r:literal, $c:literal) => {{
            let (row, col) = ($row, $col);
            let wp = w.as_ptr().add(row * rb);
            let xs = &xs[col..col + $c];
            let res: [[f32; $c]; $r] = match format {
                RowFormat::Q8_0 => {
                    // Plain AVX2 Q8_0 never tiles: decode takes `q8_row`, prefill `q8_rows_x8`.
                    debug_assert!(vnni, "a Q8_0 tile without VNNI");
                    q8_tile_vnni::<$r, $c>(wp, rb, xs, k / QK)
                }
                _ => float_tile::<$r, $c>(format, wp, rb, xs, k),
            };
            for i in 0..$r {
                for j in 0..$c {
                    *y.ptr.add((col + j) * y.stride + row + i) = res[i][j];
                }
            }
        }};
    }
    if s == 1 {
        // Decode: a GEMV, bound by memory. The rows one after the other, so
        // the matrix is read as one ascending stream: four rows at a time
        // (four streams 0.6–1.6 KB apart) read 9.3–10 GB/s of a
        // SmolLM2-shaped stream here, one row at a time 12.2–13 (Q8_0;
        // f16: 11.4 against 13.2–13.8). VNNI keeps its four-row tile, as
        // measured on the machine that has it.
        if vnni && format == RowFormat::Q8_0 {
            let mut r = 0;
            while r + 4 <= rows {
                tile!(r, 0, 4, 1);
                r += 4;
            }
            for r in r..rows {
                tile!(r, 0, 1, 1);
            }
            return;
        }
        for r in 0..rows {
            let wp = w.as_ptr().add(r * rb);
            *y.ptr.add(r) = match &xs[0] {
                Activation::Q8(x) => q8_row(wp, x),
                Activation::F32(x) => float_row(format, wp, x),
            };
        }
        return;
    }
    // Prefill: bound by arithmetic. Plain AVX2 Q8_0 takes activation rows
    // eight at a time ([`q8_rows_x8`]), the last group padded with copies of
    // its first row, whose lanes are dropped: every prefill row then gets
    // the same arithmetic whatever the chunk's length, so a primed session
    // continued by a suffix computes what a fresh one computes for the whole
    // prompt. Other formats (and VNNI) take tiles of up to two weight rows ×
    // four activation rows, which share one arithmetic.
    let eights = if format == RowFormat::Q8_0 && !vnni { s.div_ceil(8) } else { 0 };
    let nb = k / QK;
    // Each group's eight rows (padded) as interleaved i16 pairs, and its
    // activation scales block by block, read by every weight row.
    let groups: Vec<(Vec<__m256i>, Vec<[f32; 8]>)> = (0..eights)
        .map(|e| {
            let padded: [&Activation; 8] = std::array::from_fn(|j| xs.get(8 * e + j).unwrap_or(&xs[8 * e]));
            let x: [&[BlockQ8]; 8] = padded.map(|a| match a {
                Activation::Q8(b) => *b,
                Activation::F32(_) => &[],
            });
            let mut pairs = vec![_mm256_setzero_si256(); nb * 16];
            for (b, out) in pairs.chunks_exact_mut(16).enumerate() {
                interleave_pairs(&x, b, out);
            }
            (pairs, (0..nb).map(|b| std::array::from_fn(|j| x[j][b].d)).collect())
        })
        .collect();
    // A weight-row group widened to i16 (row after row) with its scales as
    // f32, once for all activation groups.
    let mut wide = vec![0i16; if eights > 0 { G * k } else { 0 }];
    let mut dw = vec![0f32; if eights > 0 { G * nb } else { 0 }];
    let mut r0 = 0;
    while r0 < rows {
        let g = G.min(rows - r0);
        if eights > 0 {
            widen_q8_rows(w.as_ptr().add(r0 * rb), g, nb, &mut wide, &mut dw);
        }
        for (e, (pairs, dx)) in groups.iter().enumerate() {
            let live = (s - 8 * e).min(8);
            let put = |r: usize, v: __m256| {
                let out: [f32; 8] = std::mem::transmute(v);
                for (j, v) in out.iter().enumerate().take(live) {
                    *y.ptr.add((8 * e + j) * y.stride + r0 + r) = *v;
                }
            };
            let mut r = 0;
            while r + 4 <= g {
                let v = q8_rows_x8::<4>(wide.as_ptr().add(r * k), k, dw.as_ptr().add(r * nb), nb, pairs, dx);
                for (i, v) in v.into_iter().enumerate() {
                    put(r + i, v);
                }
                r += 4;
            }
            for r in r..g {
                let [v] = q8_rows_x8::<1>(wide.as_ptr().add(r * k), k, dw.as_ptr().add(r * nb), nb, pairs, dx);
                put(r, v);
            }
        }
        let mut c = if eights > 0 { s } else { 0 };
        while c < s {
            let width = match s - c {
                1 => 1,
                2 | 3 => 2,
                _ => 4,
            };
            // Two weight rows at a time for floats (and VNNI, as measured
            // before): a weight load then feeds two FMAs per activation row
            // (fp16 prefill: 35 GMAC/s, against 22 with one row).
            let mut r = r0;
            while r < r0 + g {
                let two = r + 2 <= r0 + g && (format != RowFormat::Q8_0 || vnni);
                match (two, width) {
                    (true, 4) => tile!(r, c, 2, 4),
                    (true, 2) => tile!(r, c, 2, 2),
                    (true, _) => tile!(r, c, 2, 1),
                    (false, 1) => tile!(r, c, 1, 1),
                    (false, 2) => tile!(r, c, 1, 2),
                    (false, _) => tile!(r, c, 1, 4),
                }
                r += if two { 2 } else { 1 };
            }
            c += width;
        }
        r0 += g;
    }
}

/// The horizontal sums of a tile of accumulators. A loop, not
/// `array::map`: a closure would not inherit the target features, and
/// `hsum` would become a call per element.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsums<const R: usize, const C: usize>(acc: &[[__m256; C]; R]) -> [[f32; C]; R] {
    let mut out = [[0f32; C]; R];
    for i in 0..R {
        for j in 0..C {
            out[i][j] = hsum(acc[i][j]);
        }
    }
    out
}

fn q8_blocks<'a, const C: usize>(xs: &[Activation<'a>]) -> [&'a [BlockQ8]; C] {
    std::array::from_fn(|i| match xs[i] {
        Activation::Q8(b) => b,
        Activation::F32(_) => &[],
    })
}

fn f32_rows<'a, const C: usize>(xs: &[Activation<'a>]) -> [&'a [f32]; C] {
    std::array::from_fn(|i| match xs[i] {
        Activation::F32(v) => v,
        Activation::Q8(_) => &[],
    })
}

/// A Q8_0 × Q8_0 tile over `nb` blocks for R weight rows and C activation
/// rows, with AVX-512 VNNI on 256-bit registers (its decode and prefill).
/// The weights are offset once per block to u8 (w + 128), then one
/// `vpdpbusd` per block pair gives 8 i32 lanes whose sum is the exact
/// Σ q_w q_x, its lanes starting from the activation block's `offset`
/// (−128 Σ q_x spread over 8 lanes); that sum is scaled by d_w · d_x. A
/// prefill tile (one weight block feeding two or four activation rows) is
/// mostly pairs, where VNNI takes three of plain AVX2's four integer
/// instructions out.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q8_tile_vnni<const R: usize, const C: usize>(
    w: *const u8,
    rb: usize,
    xs: &[Activation],
    nb: usize,
) -> [[f32; C]; R] {
    // Measured on the VNNI machine with these distances (L1, then 4× as far into L2).
    const AHEAD: usize = 64 * Q8_0_BYTES;
    let x = q8_blocks::<C>(xs);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    for b in 0..nb {
        for (r, acc) in acc.iter_mut().enumerate() {
            let wb = w.add(r * rb + b * Q8_0_BYTES);
            prefetch_line::<_MM_HINT_T0>(wb.wrapping_add(AHEAD));
            prefetch_line::<_MM_HINT_T1>(wb.wrapping_add(4 * AHEAD));
            // d_w broadcast once per block; d_x broadcast straight from
            // memory (a load, not a shuffle) per pair.
            let dw = block_scale(wb);
            let uw = _mm256_xor_si256(_mm256_loadu_si256(wb.add(2) as *const __m256i), _mm256_set1_epi8(-128));
            for (a, x) in acc.iter_mut().zip(&x) {
                let xb = x.get_unchecked(b);
                let dot = _mm256_dpbusd_epi32(_mm256_set1_epi32(xb.offset), uw, x_qs(xb));
                let scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb.d));
                *a = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *a);
            }
        }
    }
    hsums(&acc)
}

/// One Q8_0 weight row against one activation row (decode): per block,
/// |w| · sign(x, w) with `maddubs` (u8 × i8 → i16 pairs, no overflow as
/// |q| ≤ 127), `madd` by ones to i32 lanes whose sum is the exact
/// Σ q_w q_x, scaled by d_w · d_x into one accumulator. One accumulator is
/// enough: the integer work of the blocks is independent and the FMA chain
/// is not the limit (with two, the row read 10.6–10.8 GB/s, not 12.2).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_row(w: *const u8, x: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, xb) in x.iter().enumerate() {
        let wb = w.add(b * Q8_0_BYTES);
        prefetch_line::<_MM_HINT_T0>(wb.wrapping_add(PREFETCH));
        prefetch_line::<_MM_HINT_T1>(wb.wrapping_add(4 * PREFETCH));
        let qw = _mm256_loadu_si256(wb.add(2) as *const __m256i);
        let sx = _mm256_sign_epi8(x_qs(xb), qw);
        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), sx), _mm256_set1_epi16(1));
        let scale = _mm256_mul_ps(block_scale(wb), _mm256_broadcast_ss(&xb.d));
        acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc);
    }
    hsum(acc)
}

/// Prefetches the cache line that starts inside the 34-byte block at `ahead`,
/// if one does: each line of a run of blocks is then asked for once (its
/// start lies in exactly one block), not twice. A prefetch never faults,
/// so `ahead` may lie past the matrix.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn prefetch_line<const HINT: i32>(ahead: *const u8) {
    let last = ahead.wrapping_add(Q8_0_BYTES - 1);
    if (last as usize) % 64 < Q8_0_BYTES {
        _mm_prefetch::<HINT>(last as *const i8);
    }
}

/// Block `b` of eight activation rows as 16 vectors of i16 pairs: vector
/// p holds, in lane j, row j's values 2p and 2p + 1 (one i32 lane, the
/// layout `madd` multiplies pairwise). Widening, then an 8 × 8 transpose
/// of i32 lanes per half block.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn interleave_pairs(x: &[&[BlockQ8]; 8], b: usize, out: &mut [__m256i]) {
    for half in 0..2 {
        let mut m = [_mm256_setzero_si256(); 8];
        for j in 0..8 {
            let qs = x[j].get_unchecked(b).qs.as_ptr().add(16 * half);
            m[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(qs as *const __m128i));
        }
        // Rows (a .. h) × pairs (0 .. 7): 32-bit, then 64-bit unpacks give
        // [a0 b0 c0 d0 | a4 b4 c4 d4] and the like, then the 128-bit halves.
        let mut t = [_mm256_setzero_si256(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_epi32(m[2 * i], m[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_epi32(m[2 * i], m[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_si256(); 8];
        for i in 0..2 {
            let (p, q) = (4 * i, 4 * i + 2);
            u[4 * i] = _mm256_unpacklo_epi64(t[p], t[q]);
            u[4 * i + 1] = _mm256_unpackhi_epi64(t[p], t[q]);
            u[4 * i + 2] = _mm256_unpacklo_epi64(t[p + 1], t[q + 1]);
            u[4 * i + 3] = _mm256_unpackhi_epi64(t[p + 1], t[q + 1]);
        }
        let out = &mut out[8 * half..8 * half + 8];
        for p in 0..4 {
            out[p] = _mm256_permute2x128_si256(u[p], u[p + 4], 0x20);
            out[p + 4] = _mm256_permute2x128_si256(u[p], u[p + 4], 0x31);
        }
    }
}

/// `g` Q8_0 rows from `w` as i16 values, `k = 32 nb` per row, and their
/// block scales as f32 (`nb` per row).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_q8_rows(w: *const u8, g: usize, nb: usize, wide: &mut [i16], dw: &mut [f32]) {
    for r in 0..g {
        for b in 0..nb {
            let wb = w.add((r * nb + b) * Q8_0_BYTES);
            dw[r * nb + b] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const u16).read_unaligned() as i32)));
            let out = wide.as_mut_ptr().add((r * nb + b) * QK) as *mut __m256i;
            _mm256_storeu_si256(out, _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(2) as *const __m128i)));
            _mm256_storeu_si256(out.add(1), _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(18) as *const __m128i)));
        }
    }
}

/// R weight rows (widened, [`widen_q8_rows`]) against eight activation rows
/// (interleaved, [`interleave_pairs`]), Q8_0 × Q8_0, plain AVX2 (prefill).
/// Lane j is activation row j throughout: each weight pair is broadcast (a
/// load, not a shuffle) and `madd` multiplies it with the eight rows' pairs
/// at once, so a block costs 16 multiplies per weight row and no
/// horizontal sums; the row tile above spends three integer instructions
/// per 32 values and pair of rows, and four more on scales and sums. The
/// block's exact i32 sums are then scaled by d_w · d_x and added in one
/// FMA, as everywhere.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_rows_x8<const R: usize>(
    wide: *const i16,
    k: usize,
    dw: *const f32,
    nb: usize,
    pairs: &[__m256i],
    dx: &[[f32; 8]],
) -> [__m256; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for b in 0..nb {
        let xb = pairs.as_ptr().add(16 * b);
        let mut sums = [_mm256_setzero_si256(); R];
        for p in 0..16 {
            let x = _mm256_loadu_si256(xb.add(p));
            for (r, sum) in sums.iter_mut().enumerate() {
                let pair = (wide.add(r * k + b * QK + 2 * p) as *const i32).read_unaligned();
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(_mm256_set1_epi32(pair), x));
            }
        }
        let dx = _mm256_loadu_ps(dx.get_unchecked(b).as_ptr());
        for (r, (acc, sum)) in acc.iter_mut().zip(sums).enumerate() {
            let scale = _mm256_mul_ps(_mm256_set1_ps(*dw.add(r * nb + b)), dx);
            *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sum), *acc);
        }
    }
    acc
}

/// The f16 scale at the start of the Q8_0 file block `wb`, in every lane.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn block_scale(wb: *const u8) -> __m256 {
    _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const u16).read_unaligned() as i32)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn x_qs(xb: &BlockQ8) -> __m256i {
    _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i)
}

/// Eight weights at `p`, as f32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(format: RowFormat, p: *const u8) -> __m256 {
    match format {
        RowFormat::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
        _ => _mm256_loadu_ps(p as *const f32),
    }
}

/// f32/f16 weights, 8 values per step, for R weight rows and C activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_tile<const R: usize, const C: usize>(
    format: RowFormat,
    w: *const u8,
    rb: usize,
    xs: &[Activation],
    k: usize,
) -> [[f32; C]; R] {
    let x = f32_rows::<C>(xs);
    let width = if format == RowFormat::F16 { 2 } else { 4 };
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut i = 0;
    while i + 8 <= k {
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = w.add(r * rb + i * width);
            if (i * width) % 64 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(p.add(PREFETCH_BYTES) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(p.add(8 * PREFETCH_BYTES) as *const i8);
            }
            let wv = load8(format, p);
            for (a, x) in acc.iter_mut().zip(&x) {
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.as_ptr().add(i)), *a);
            }
        }
        i += 8;
    }
    // k is a multiple of 32 (checked when the matrix is mapped): no tail.
    debug_assert_eq!(i, k);
    hsums(&acc)
}

/// One f32/f16 weight row against one activation row (decode): 32 values
/// per step into four accumulators, each line prefetched once into L1.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_row(format: RowFormat, w: *const u8, x: &[f32]) -> f32 {
    let width = if format == RowFormat::F16 { 2 } else { 4 };
    let mut acc = [_mm256_setzero_ps(); 4];
    // k is a multiple of 32 (checked when the matrix is mapped): no tail.
    for (i, x) in x.chunks_exact(32).enumerate() {
        let p = w.add(32 * i * width);
        for line in (0..32 * width).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line + ROW_PREFETCH_BYTES) as *const i8);
        }
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(load8(format, p.add(8 * j * width)), _mm256_loadu_ps(x.as_ptr().add(8 * j)), *a);
        }
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}
