//! Cutting a face out of a frame: an affine map from crop pixels to frame
//! pixels, and bilinear sampling through it.
//!
//! Every model input (detector letterbox, rotated mesh crop, emotion and gear
//! crops) is one such map, so the inverse map is what takes model outputs back
//! into frame coordinates.

use image::RgbImage;
use tract_onnx::prelude::{Tensor, TractResult};

/// Maps a crop pixel `(u, v)` to a frame position `(x, y)`:
/// `x = a·u + b·v + tx`, `y = c·u + d·v + ty`. Both sides count in pixel
/// indices (pixel `i`'s centre is at `i`), as TF's resize and crop kernels
/// that the models were trained behind do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub d: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Affine {
    /// A square region of `side` frame pixels centred on `(cx, cy)`, seen as an
    /// `out`×`out` crop whose x axis points along `axis` radians in the frame
    /// (`atan2(dy, dx)` with y pointing down). Pointing the axis along a
    /// face's eye line makes that face upright in the crop.
    pub fn square(cx: f32, cy: f32, side: f32, axis: f32, out: u32) -> Affine {
        let s = side / out as f32;
        let (sin, cos) = axis.sin_cos();
        let half = out as f32 / 2.0;
        let (a, b, c, d) = (s * cos, -s * sin, s * sin, s * cos);
        Affine { a, b, c, d, tx: cx - a * half - b * half, ty: cy - c * half - d * half }
    }

    /// An axis-aligned rectangle `[x0, x1) × [y0, y1)` seen as a `w`×`h` crop
    /// (for the whole frame, this is TF's `resizeBilinear` without half-pixel centres).
    pub fn rect(x0: f32, y0: f32, x1: f32, y1: f32, w: u32, h: u32) -> Affine {
        let (sx, sy) = ((x1 - x0) / w as f32, (y1 - y0) / h as f32);
        Affine { a: sx, b: 0.0, c: 0.0, d: sy, tx: x0, ty: y0 }
    }

    pub fn apply(&self, u: f32, v: f32) -> (f32, f32) {
        (self.a * u + self.b * v + self.tx, self.c * u + self.d * v + self.ty)
    }

    /// The scale from crop pixels to frame pixels (the length of a crop pixel).
    pub fn scale(&self) -> f32 {
        (self.a * self.d - self.b * self.c).abs().sqrt()
    }

    /// This map after `inner`: crop-of-a-crop pixels straight to frame pixels,
    /// so a sub-crop samples the frame once rather than resampling a resample.
    pub fn then(&self, inner: &Affine) -> Affine {
        Affine {
            a: self.a * inner.a + self.b * inner.c,
            b: self.a * inner.b + self.b * inner.d,
            c: self.c * inner.a + self.d * inner.c,
            d: self.c * inner.b + self.d * inner.d,
            tx: self.a * inner.tx + self.b * inner.ty + self.tx,
            ty: self.c * inner.tx + self.d * inner.ty + self.ty,
        }
    }
}

/// Samples `w`×`h` RGB pixels (0–255 as f32) through `map`, bilinearly, in
/// row-major order. Positions more than a pixel outside the frame read as
/// black, as TF's crop-and-resize extrapolates; nearer ones take the edge.
pub fn sample_rgb(frame: &RgbImage, map: &Affine, w: u32, h: u32) -> Vec<[f32; 3]> {
    let mut out = vec![[0.0; 3]; (w * h) as usize];
    sample_into(frame, map, w, &mut out);
    out
}

/// A model's input straight from the frame: [`sample_rgb`]'s pixels as
/// `value · scale + offset`, in a `[1, h, w, 3]` tensor written in place
/// (built from a `Vec`, tract copied it into its own aligned buffer).
pub fn rgb_tensor(frame: &RgbImage, map: &Affine, w: u32, h: u32, scale: f32, offset: f32) -> TractResult<Tensor> {
    // SAFETY: `sample_into` writes every pixel before anything reads one.
    let mut tensor = unsafe { Tensor::uninitialized::<f32>(&[1, h as usize, w as usize, 3])? };
    {
        let mut plain = tensor.try_as_plain_ram_mut()?;
        let values = plain.as_slice_mut::<f32>()?;
        sample_into(frame, map, w, values.as_chunks_mut::<3>().0);
        if (scale, offset) != (1.0, 0.0) {
            values.iter_mut().for_each(|v| *v = *v * scale + offset);
        }
    }
    Ok(tensor)
}

/// `out`'s rows of `w` pixels, row `v` sampled along crop row `v`.
fn sample_into(frame: &RgbImage, map: &Affine, w: u32, out: &mut [[f32; 3]]) {
    if w == 0 {
        return;
    }
    let sampler = Sampler::new(frame);
    for (v, row) in out.chunks_exact_mut(w as usize).enumerate() {
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if sampler.avx2 {
            // SAFETY: AVX2 was detected.
            done = unsafe { sampler.eights_avx2(map, v as f32, row) };
        }
        for (u, rgb) in row.iter_mut().enumerate().skip(done) {
            let (x, y) = map.apply(u as f32, v as f32);
            *rgb = sampler.at(x, y);
        }
    }
}

/// One frame's pixels, and what this CPU has to sample them with.
struct Sampler<'a> {
    raw: &'a [u8],
    width: usize,
    height: usize,
    #[cfg(target_arch = "x86_64")]
    sse41: bool,
    /// Also that the frame's byte offsets fit the i32 lanes they are
    /// computed in.
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl<'a> Sampler<'a> {
    fn new(frame: &'a RgbImage) -> Sampler<'a> {
        let raw = frame.as_raw().as_slice();
        Sampler {
            raw,
            width: frame.width() as usize,
            height: frame.height() as usize,
            #[cfg(target_arch = "x86_64")]
            sse41: is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            avx2: is_x86_feature_detected!("avx2") && raw.len() < i32::MAX as usize / 2,
        }
    }

    /// The bilinear sample at frame position `(x, y)`.
    fn at(&self, x: f32, y: f32) -> [f32; 3] {
        let (fw, fh) = (self.width as i64, self.height as i64);
        // All four neighbours inside the frame: no clamping, the floor of a
        // non-negative value is its truncation (no call to `floorf`), and
        // the three channels go in one register.
        #[cfg(target_arch = "x86_64")]
        if self.sse41 && x >= 0.0 && y >= 0.0 && x < (fw - 1) as f32 && y < (fh - 1) as f32 {
            let (xi, yi) = (x as i32 as usize, y as i32 as usize);
            let stride = self.width * 3;
            let i = yi * stride + xi * 3;
            if i + stride + 8 <= self.raw.len() {
                // SAFETY: SSE4.1 was detected, and both 8-byte loads end
                // inside `raw` (checked just above).
                return unsafe { bilinear_sse41(self.raw.as_ptr().add(i), stride, x - xi as f32, y - yi as f32) };
            }
        }
        if !(x > -1.0 && y > -1.0 && x < fw as f32 && y < fh as f32) {
            return [0.0; 3];
        }
        let pixel = |x: i64, y: i64| -> [f32; 3] {
            let (x, y) = (x.clamp(0, fw - 1), y.clamp(0, fh - 1));
            let i = ((y * fw + x) * 3) as usize;
            [self.raw[i] as f32, self.raw[i + 1] as f32, self.raw[i + 2] as f32]
        };
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10, p01, p11) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
        std::array::from_fn(|k| {
            let top = p00[k] + (p10[k] - p00[k]) * fx;
            let bottom = p01[k] + (p11[k] - p01[k]) * fx;
            top + (bottom - top) * fy
        })
    }

    /// Row `v` of the crop, eight pixels at a time while eight remain; returns
    /// how many it sampled. The eight positions, their integer parts,
    /// fractions and byte offsets are computed in registers, with
    /// [`Affine::apply`]'s arithmetic in its order (products, then sums: no
    /// fused multiply-add), so they are the same bits. Where all eight sit
    /// inside the frame, away from its last column and last two rows, they
    /// are sampled two to a register, with `bilinear_sse41`'s arithmetic;
    /// otherwise each goes through `at`. The 157 000 samples of a frame's
    /// four crops took 1.6 ms one at a time through `at`, 1.35 ms with AVX2
    /// gathers of the neighbours (about 37 cycles a gather on this Zen 2),
    /// ~0.95 ms one at a time from the vector offsets, ~0.65 ms two at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn eights_avx2(&self, map: &Affine, v: f32, row: &mut [[f32; 3]]) -> usize {
        use std::arch::x86_64::*;
        let stride = (self.width * 3) as i32;
        let (a, b, tx) = (_mm256_set1_ps(map.a), _mm256_set1_ps(map.b), _mm256_set1_ps(map.tx));
        let (c, d, ty) = (_mm256_set1_ps(map.c), _mm256_set1_ps(map.d), _mm256_set1_ps(map.ty));
        let vv = _mm256_set1_ps(v);
        let zero = _mm256_setzero_ps();
        let (last_x, last_y) = (_mm256_set1_ps(self.width as f32 - 1.0), _mm256_set1_ps(self.height as f32 - 2.0));
        // Two samples to a register, one in each 128-bit half, each as
        // `bilinear_sse41` computes it: its row's 8 bytes spread to
        // [r g b 0] for the left and the right neighbour.
        let left = _mm256_setr_epi8(
            0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1,
            -1, -1, -1, -1,
        );
        let right = _mm256_setr_epi8(
            3, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, -1, -1, -1, -1, 3, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1,
            -1, -1, -1, -1,
        );
        let lerp = |p: __m256, q: __m256, f: __m256| _mm256_add_ps(p, _mm256_mul_ps(_mm256_sub_ps(q, p), f));
        let both = |first: *const u8, second: *const u8| {
            let bytes = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadl_epi64(first as *const __m128i)),
                _mm_loadl_epi64(second as *const __m128i),
            );
            (
                _mm256_cvtepi32_ps(_mm256_shuffle_epi8(bytes, left)),
                _mm256_cvtepi32_ps(_mm256_shuffle_epi8(bytes, right)),
            )
        };
        let mut u0 = 0;
        while u0 + 8 <= row.len() {
            let u = _mm256_add_ps(_mm256_set1_ps(u0 as f32), _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0));
            let x = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(a, u), _mm256_mul_ps(b, vv)), tx);
            let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(c, u), _mm256_mul_ps(d, vv)), ty);
            let inside = _mm256_and_ps(
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(x, zero), _mm256_cmp_ps::<_CMP_GE_OQ>(y, zero)),
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, last_x), _mm256_cmp_ps::<_CMP_LT_OQ>(y, last_y)),
            );
            let out = &mut row[u0..u0 + 8];
            if _mm256_movemask_ps(inside) != 0xFF {
                let (mut xs, mut ys) = ([0f32; 8], [0f32; 8]);
                _mm256_storeu_ps(xs.as_mut_ptr(), x);
                _mm256_storeu_ps(ys.as_mut_ptr(), y);
                for ((rgb, x), y) in out.iter_mut().zip(xs).zip(ys) {
                    *rgb = self.at(x, y);
                }
                u0 += 8;
                continue;
            }
            let (xi, yi) = (_mm256_cvttps_epi32(x), _mm256_cvttps_epi32(y));
            let (fx, fy) = (_mm256_sub_ps(x, _mm256_cvtepi32_ps(xi)), _mm256_sub_ps(y, _mm256_cvtepi32_ps(yi)));
            let at = _mm256_add_epi32(
                _mm256_mullo_epi32(yi, _mm256_set1_epi32(stride)),
                _mm256_mullo_epi32(xi, _mm256_set1_epi32(3)),
            );
            let (mut ats, mut fxs, mut fys) = ([0i32; 8], [0f32; 8], [0f32; 8]);
            _mm256_storeu_si256(ats.as_mut_ptr() as *mut __m256i, at);
            _mm256_storeu_ps(fxs.as_mut_ptr(), fx);
            _mm256_storeu_ps(fys.as_mut_ptr(), fy);
            // The row from this group on: each pair's second sample is
            // stored as 4 values, the 4th over the next sample, which is
            // written after it; past the row's end only in the last group.
            let dst = row.as_mut_ptr().add(u0) as *mut f32;
            let more = u0 + 8 < row.len();
            for pair in 0..4 {
                let (i, j) = (2 * pair, 2 * pair + 1);
                // In bounds: each lane is inside (above), so its two 8-byte
                // reads end on the row below its bottom neighbours'.
                let (pa, pb) = (self.raw.as_ptr().add(ats[i] as usize), self.raw.as_ptr().add(ats[j] as usize));
                let (tl, tr) = both(pa, pb);
                let (bl, br) = both(pa.add(stride as usize), pb.add(stride as usize));
                let fx = _mm256_setr_m128(_mm_set1_ps(fxs[i]), _mm_set1_ps(fxs[j]));
                let fy = _mm256_setr_m128(_mm_set1_ps(fys[i]), _mm_set1_ps(fys[j]));
                let v = lerp(lerp(tl, tr, fx), lerp(bl, br, fx), fy);
                _mm_storeu_ps(dst.add(3 * i), _mm256_castps256_ps128(v));
                if pair < 3 || more {
                    _mm_storeu_ps(dst.add(3 * j), _mm256_extractf128_ps::<1>(v));
                } else {
                    let mut last = [0f32; 4];
                    _mm_storeu_ps(last.as_mut_ptr(), _mm256_extractf128_ps::<1>(v));
                    row[u0 + j] = [last[0], last[1], last[2]];
                }
            }
            u0 += 8;
        }
        u0
    }
}

/// One bilinear sample of an RGB8 image: `p` is the top-left neighbour,
/// `stride` the row length in bytes. The arithmetic is the scalar path's,
/// in the same order (a product, then a sum: no fused multiply-add), so the
/// two give the same bits; the three channels go in one register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn bilinear_sse41(p: *const u8, stride: usize, fx: f32, fy: f32) -> [f32; 3] {
    use std::arch::x86_64::*;
    // [r0 g0 b0 r1 g1 b1 · ·] as [r0 g0 b0 ·] and [r1 g1 b1 ·].
    let row = |p: *const u8| {
        let bytes = _mm_loadl_epi64(p as *const __m128i);
        (_mm_cvtepi32_ps(_mm_cvtepu8_epi32(bytes)), _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_srli_si128::<3>(bytes))))
    };
    let lerp = |a: __m128, b: __m128, f: __m128| _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), f));
    let (fx, fy) = (_mm_set1_ps(fx), _mm_set1_ps(fy));
    let (t0, t1) = row(p);
    let (b0, b1) = row(p.add(stride));
    let (top, bottom) = (lerp(t0, t1, fx), lerp(b0, b1, fx));
    let mut v = [0f32; 4];
    _mm_storeu_ps(v.as_mut_ptr(), lerp(top, bottom, fy));
    [v[0], v[1], v[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_crop_centre_maps_to_centre() {
        let m = Affine::square(100.0, 50.0, 40.0, 0.3, 192);
        let (x, y) = m.apply(96.0, 96.0);
        assert!((x - 100.0).abs() < 1e-4 && (y - 50.0).abs() < 1e-4);
        assert!((m.scale() - 40.0 / 192.0).abs() < 1e-6);
    }

    #[test]
    fn square_crop_axis_follows_the_given_direction() {
        // Axis at 90°: moving right in the crop moves down in the frame.
        let m = Affine::square(0.0, 0.0, 10.0, std::f32::consts::FRAC_PI_2, 10);
        let (x0, y0) = m.apply(5.0, 5.0);
        let (x1, y1) = m.apply(6.0, 5.0);
        assert!((x1 - x0).abs() < 1e-5 && (y1 - y0 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn identity_rect_samples_pixels_exactly() {
        let mut img = RgbImage::new(4, 3);
        img.put_pixel(2, 1, image::Rgb([200, 100, 50]));
        let px = sample_rgb(&img, &Affine::rect(0.0, 0.0, 4.0, 3.0, 4, 3), 4, 3);
        assert_eq!(px[4 + 2], [200.0, 100.0, 50.0]);
        assert_eq!(px[0], [0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_model_input_is_the_samples_scaled_in_nhwc() {
        let img = RgbImage::from_fn(37, 23, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8]));
        let map = Affine::square(18.0, 11.0, 30.0, 0.4, 19);
        let t = rgb_tensor(&img, &map, 19, 17, 1.0 / 127.5, -1.0).expect("a tensor");
        assert_eq!(t.shape(), [1, 17, 19, 3]);
        let want: Vec<f32> =
            sample_rgb(&img, &map, 19, 17).into_flattened().iter().map(|v| v * (1.0 / 127.5) - 1.0).collect();
        let plain = t.try_as_plain_ram().expect("values in memory");
        assert_eq!(plain.as_slice::<f32>().expect("f32 values"), want.as_slice());
        assert!(sample_rgb(&img, &map, 0, 5).is_empty());
    }

    #[test]
    fn samples_mix_their_four_neighbours_clamped_at_the_edges() {
        // Rotated crops that span the frame's edges: every sample within a
        // pixel of the frame is the bilinear mix of its four neighbours, an
        // edge's missing ones taken from the edge; beyond that, black. The
        // larger ones have runs of eight samples inside the frame (the
        // vector path), runs across its edges, and a tail or none.
        for (fw, fh, map, n) in [
            (7u32, 5u32, Affine::square(3.0, 2.0, 9.0, 0.5, 11), 11u32),
            (60, 45, Affine::square(30.0, 20.0, 56.0, 0.3, 37), 37),
            (60, 45, Affine::square(30.0, 22.0, 30.0, -0.2, 32), 32),
        ] {
            check_bilinear(fw, fh, map, n);
        }
    }

    fn check_bilinear(fw: u32, fh: u32, map: Affine, n: u32) {
        let img = RgbImage::from_fn(fw, fh, |x, y| {
            image::Rgb([(x * 30 % 256) as u8, (y * 50 % 256) as u8, ((x * y * 7 + x) % 256) as u8])
        });
        let px = sample_rgb(&img, &map, n, n);
        let (w, h) = (fw as i64, fh as i64);
        let at = |x: i64, y: i64, k: usize| img.get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32)[k] as f32;
        for (i, p) in px.iter().enumerate() {
            let (x, y) = map.apply((i as u32 % n) as f32, (i as u32 / n) as f32);
            if !(x > -1.0 && y > -1.0 && x < fw as f32 && y < fh as f32) {
                assert_eq!(*p, [0.0; 3]);
                continue;
            }
            let (x0, y0) = (x.floor() as i64, y.floor() as i64);
            let (fx, fy) = (x - x.floor(), y - y.floor());
            for (k, &v) in p.iter().enumerate() {
                let top = at(x0, y0, k) + (at(x0 + 1, y0, k) - at(x0, y0, k)) * fx;
                let bottom = at(x0, y0 + 1, k) + (at(x0 + 1, y0 + 1, k) - at(x0, y0 + 1, k)) * fx;
                assert_eq!(v, top + (bottom - top) * fy, "pixel {i}, channel {k}");
            }
        }
    }

    #[test]
    fn outside_the_frame_is_black() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255]));
        let px = sample_rgb(&img, &Affine::rect(10.0, 10.0, 12.0, 12.0, 2, 2), 2, 2);
        assert!(px.iter().all(|p| *p == [0.0; 3]));
    }

    #[test]
    fn composing_maps_equals_applying_both() {
        let outer = Affine::square(50.0, 40.0, 30.0, 0.4, 192);
        let inner = Affine::rect(19.2, 0.0, 172.8, 172.8, 198, 198);
        let (u, v) = (37.0, 101.0);
        let (x1, y1) = inner.apply(u, v);
        let direct = outer.apply(x1, y1);
        let composed = outer.then(&inner).apply(u, v);
        assert!((direct.0 - composed.0).abs() < 1e-4 && (direct.1 - composed.1).abs() < 1e-4);
    }
}
