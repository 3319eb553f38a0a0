//! Cutting a face out of a frame: an affine map from crop pixels to frame
//! pixels, and bilinear sampling through it.
//!
//! Every model input (detector letterbox, rotated mesh crop, emotion and gear
//! crops) is one such map, so the inverse map is what takes model outputs back
//! into frame coordinates.

use image::RgbImage;

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
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let raw = frame.as_raw();
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        let (x, y) = (x.clamp(0, fw - 1), y.clamp(0, fh - 1));
        let i = ((y * fw + x) * 3) as usize;
        [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
    };
    #[cfg(target_arch = "x86_64")]
    let (sse41, stride, last_x, last_y) =
        (is_x86_feature_detected!("sse4.1"), fw as usize * 3, (fw - 1) as f32, (fh - 1) as f32);
    let mut out = vec![[0.0; 3]; (w * h) as usize];
    for v in 0..h {
        for (u, rgb) in out[(v * w) as usize..][..w as usize].iter_mut().enumerate() {
            let (x, y) = map.apply(u as f32, v as f32);
            // All four neighbours inside the frame: no clamping, the floor of
            // a non-negative value is its truncation (no call to `floorf`),
            // and the three channels go in one register.
            #[cfg(target_arch = "x86_64")]
            if sse41 && x >= 0.0 && y >= 0.0 && x < last_x && y < last_y {
                let (xi, yi) = (x as i32 as usize, y as i32 as usize);
                let i = yi * stride + xi * 3;
                if i + stride + 8 <= raw.len() {
                    // SAFETY: SSE4.1 was detected, and both 8-byte loads end
                    // inside `raw` (checked just above).
                    *rgb = unsafe { bilinear_sse41(raw.as_ptr().add(i), stride, x - xi as f32, y - yi as f32) };
                    continue;
                }
            }
            if !(x > -1.0 && y > -1.0 && x < fw as f32 && y < fh as f32) {
                // Left black.
                continue;
            }
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10, p01, p11) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
            for k in 0..3 {
                let top = p00[k] + (p10[k] - p00[k]) * fx;
                let bottom = p01[k] + (p11[k] - p01[k]) * fx;
                rgb[k] = top + (bottom - top) * fy;
            }
        }
    }
    out
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
    fn samples_mix_their_four_neighbours_clamped_at_the_edges() {
        // A rotated crop that spans the frame's edges: every sample within a
        // pixel of the frame is the bilinear mix of its four neighbours, an
        // edge's missing ones taken from the edge; beyond that, black.
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([(x * 30) as u8, (y * 50) as u8, ((x * y) * 7) as u8]));
        let map = Affine::square(3.0, 2.0, 9.0, 0.5, 11);
        let px = sample_rgb(&img, &map, 11, 11);
        let at = |x: i64, y: i64, k: usize| img.get_pixel(x.clamp(0, 6) as u32, y.clamp(0, 4) as u32)[k] as f32;
        for (n, p) in px.iter().enumerate() {
            let (x, y) = map.apply((n % 11) as f32, (n / 11) as f32);
            if !(x > -1.0 && y > -1.0 && x < 7.0 && y < 5.0) {
                assert_eq!(*p, [0.0; 3]);
                continue;
            }
            let (x0, y0) = (x.floor() as i64, y.floor() as i64);
            let (fx, fy) = (x - x.floor(), y - y.floor());
            for (k, &v) in p.iter().enumerate() {
                let top = at(x0, y0, k) + (at(x0 + 1, y0, k) - at(x0, y0, k)) * fx;
                let bottom = at(x0, y0 + 1, k) + (at(x0 + 1, y0 + 1, k) - at(x0, y0 + 1, k)) * fx;
                assert_eq!(v, top + (bottom - top) * fy, "pixel {n}, channel {k}");
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
