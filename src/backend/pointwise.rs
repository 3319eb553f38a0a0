//! A 1×1 conv with its bias and clamp as one op: FaceRes's (MobileNet's)
//! pointwise layers, most of its time. The activations come channels first,
//! or, for FaceRes's second conv, channels last; the output goes channels
//! first, as tract's declutter leaves these convs.
//!
//! tract runs these as a matrix product that first packs the activations
//! into 16-pixel panels, then applies the bias and the ReLU6 in its
//! epilogue. Here too a block of pixels, as many as fit in L2, is packed
//! into 16-pixel panels (from either layout), then 6 output channels × 16
//! pixels are summed to a tile of 12 registers, the weights packed once, at
//! load, six to a channel, the bias and the clamp applied before the store.
//! Maps that 16-pixel strips fit badly (7 × 7) take the other tiling: the
//! activations packed into six-pixel panels, 16 output channels × 6 pixels
//! to a tile, the weights sixteen to a channel.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::{einsum::EinSum, math::Add, Downsample};

use super::op::write_f32;
use super::rewrite::{binary_with_const, clamp_after, const_values, per_channel, replace_chain, sole_successor};

/// Output channels per tile.
const TILE: usize = 6;
/// Pixels per strip: two registers.
const STRIP: usize = 16;
/// Output channels per tile where the tiles run along the channels.
const WIDE_TILE: usize = 16;
/// Pixels per tile there: six broadcasts, 6 × 2 registers of sums.
#[cfg(target_arch = "x86_64")]
const FEW: usize = 6;
/// Input channels per pass of the channel tiles.
#[cfg(target_arch = "x86_64")]
const CHUNK: usize = 512;
/// The tiles run along the channels where 16-pixel strips would compute
/// more than this share extra: 49 pixels in 16-pixel strips are 64 computed
/// (31 % extra), in 6-pixel ones 54. Below it the pixel tiles win although
/// they compute a little more: 196 pixels (14 × 14) took 5 % less time as
/// 208 in 16-pixel strips than as 198 in 6-pixel ones, whose sums go out
/// transposed, a value at a time.
const MOST_EXTRA: f32 = 0.125;
/// The activations a pixel block may hold, in bytes: half of Zen 2's L2.
#[cfg(target_arch = "x86_64")]
const BLOCK_BYTES: usize = 256 << 10;

/// `y[o][p] = clamp(bias[o] + Σ_c w[o][c] · x[c][p], lo, hi)` over
/// `[1,] C, H, W` (or `[1,] H, W, C`) into `[1,] O, H, W`.
#[derive(Debug, Clone, PartialEq)]
pub struct PointwiseConv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// The input is `[1,] H, W, C` (it still goes out channels first).
    pub channels_last: bool,
    /// The output's leading batch axis of 1, where it has one.
    pub out_batch: bool,
    /// Reads every other row and column, from 0 (a 1 × 1 conv of stride 2,
    /// whose input tract subsamples in two `Downsample` passes first).
    /// Channels first only.
    pub subsample: bool,
    /// Output channels per tile: [`TILE`] where tiles run along the pixels
    /// (6 channels × 16 pixels), [`WIDE_TILE`] where few pixels make them
    /// run along the channels (16 channels × 6 pixels).
    pub tile: usize,
    /// `[O rounded up to tile / tile][C][tile]`: a tile's weights for one
    /// input channel side by side, the extra rows zero.
    pub packed: Vec<f32>,
    /// Rounded up as `packed`.
    pub bias: Vec<f32>,
    pub lo: f32,
    pub hi: f32,
}

// The weights are a model's, never NaN.
impl Eq for PointwiseConv {}

impl PointwiseConv {
    /// `weights` `[O][C]`, `bias` of O values, for inputs of `pixels`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c: usize,
        o: usize,
        pixels: usize,
        channels_last: bool,
        out_batch: bool,
        subsample: bool,
        weights: &[f32],
        bias: &[f32],
        lo: f32,
        hi: f32,
    ) -> PointwiseConv {
        // The channel tiles pack their pixels one at a time, from anywhere.
        let extra = (pixels.div_ceil(STRIP) * STRIP - pixels) as f32 / pixels.max(1) as f32;
        let tile = if extra > MOST_EXTRA || subsample { WIDE_TILE } else { TILE };
        let tiles = o.div_ceil(tile);
        let mut packed = vec![0f32; tiles * c * tile];
        for (row, w) in weights.chunks_exact(c).enumerate() {
            for (ch, &v) in w.iter().enumerate() {
                packed[((row / tile) * c + ch) * tile + row % tile] = v;
            }
        }
        let mut bias = bias.to_vec();
        bias.resize(tiles * tile, 0.0);
        PointwiseConv {
            in_channels: c,
            out_channels: o,
            channels_last,
            out_batch,
            subsample,
            tile,
            packed,
            bias,
            lo,
            hi,
        }
    }

    fn weight(&self, o: usize, c: usize) -> f32 {
        self.packed[((o / self.tile) * self.in_channels + c) * self.tile + o % self.tile]
    }

    fn output_shape<D: DimLike>(&self, shape: &[D]) -> TractResult<TVec<D>> {
        ensure!(shape.len() == 3 || (shape.len() == 4 && shape[0].to_usize()? == 1), "PointwiseConv: {shape:?}");
        let r = shape.len();
        let (c, hw) = if self.channels_last { (r - 1, &shape[r - 3..r - 1]) } else { (r - 3, &shape[r - 2..]) };
        ensure!(shape[c].to_usize()? == self.in_channels, "PointwiseConv: channels of {shape:?}");
        let mut out: TVec<D> = if self.out_batch { tvec![D::from(1)] } else { tvec![] };
        out.push(D::from(self.out_channels));
        if self.subsample {
            ensure!(!self.channels_last, "PointwiseConv: subsampling a channels-last input");
            for n in hw {
                out.push(D::from(n.to_usize()?.div_ceil(2)));
            }
        } else {
            out.extend(hw.iter().cloned());
        }
        Ok(out)
    }

    /// Where each output pixel reads in its input plane of `h × w`: `None`
    /// for the same pixel.
    fn sources(&self, h: usize, w: usize) -> Option<Vec<usize>> {
        let ow = w.div_ceil(2);
        self.subsample.then(|| (0..h.div_ceil(2) * ow).map(|i| (i / ow) * 2 * w + (i % ow) * 2).collect())
    }

    /// The reference: `p` output pixels from input planes of `plane` values,
    /// output pixel i reading `sources[i]` (else i).
    fn portable(&self, x: &[f32], plane: usize, p: usize, sources: Option<&[usize]>, out: &mut [f32]) {
        for o in 0..self.out_channels {
            for i in 0..p {
                let mut acc = self.bias[o];
                let from = sources.map_or(i, |s| s[i]);
                for c in 0..self.in_channels {
                    let at = if self.channels_last { i * self.in_channels + c } else { c * plane + from };
                    acc += self.weight(o, c) * x[at];
                }
                out[o * p + i] = acc.max(self.lo).min(self.hi);
            }
        }
    }

    fn run(&self, x: &[f32], plane: usize, p: usize, sources: Option<&[usize]>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::op::available() {
            // SAFETY: `available` checked the features.
            return unsafe {
                if self.tile == WIDE_TILE {
                    self.channel_tiles_avx2(x, plane, p, sources, out)
                } else {
                    self.tiles_avx2(x, p, out)
                }
            };
        }
        self.portable(x, plane, p, sources, out)
    }

    /// Many pixels: a block of them at a time, whose activations fit in L2,
    /// is first packed into 16-pixel panels, `[strip][C][16]` (the last
    /// zero-padded), then every tile of 6 output channels × 16 pixels reads
    /// one contiguous panel. Read in place instead, a strip's 16 pixels
    /// were C rows `P` values apart, which at 56 × 56 maps (a 12.5 KiB
    /// stride) fell into a few L1 sets and evicted one another.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tiles_avx2(&self, x: &[f32], p: usize, out: &mut [f32]) {
        use std::arch::x86_64::*;
        debug_assert_eq!(self.tile, TILE);
        let c = self.in_channels;
        let (lo, hi) = (_mm256_set1_ps(self.lo), _mm256_set1_ps(self.hi));
        let block = (BLOCK_BYTES / 4 / c / STRIP).max(1) * STRIP;
        let mut panels = vec![0f32; block.min(p.div_ceil(STRIP) * STRIP) * c];
        // Lanes `< n` of a strip's two registers: for the last, partial strip,
        // whose stores must stay inside the rows.
        let mask = |n: usize| {
            let lanes: [i32; 16] = std::array::from_fn(|i| if i < n { -1 } else { 0 });
            [
                _mm256_loadu_si256(lanes.as_ptr() as *const __m256i),
                _mm256_loadu_si256(lanes.as_ptr().add(8) as *const __m256i),
            ]
        };
        for b0 in (0..p).step_by(block) {
            let b1 = (b0 + block).min(p);
            self.pack_strips(x, p, b0, b1, &mut panels);
            let (tiles, strips) = (self.out_channels.div_ceil(TILE), (b1 - b0).div_ceil(STRIP));
            for t in 0..tiles {
                let w = self.packed.as_ptr().add(t * c * TILE);
                let o0 = t * TILE;
                for (s, p0) in (b0..b1).step_by(STRIP).enumerate() {
                    let mut acc = [[_mm256_setzero_ps(); 2]; TILE];
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = [_mm256_set1_ps(self.bias[o0 + j]); 2];
                    }
                    let src = panels.as_ptr().add(s * c * STRIP);
                    let mut ahead = match t + 1 < tiles {
                        true => Ahead::new(w.add(c * TILE), c * TILE, s, strips, c),
                        false => Ahead::NONE,
                    };
                    for ch in 0..c {
                        ahead.tick();
                        let row = src.add(ch * STRIP);
                        let (x0, x1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                        let wc = w.add(ch * TILE);
                        for (j, a) in acc.iter_mut().enumerate() {
                            let wv = _mm256_broadcast_ss(&*wc.add(j));
                            a[0] = _mm256_fmadd_ps(wv, x0, a[0]);
                            a[1] = _mm256_fmadd_ps(wv, x1, a[1]);
                        }
                    }
                    let n = STRIP.min(b1 - p0);
                    let m = mask(n);
                    for (j, a) in acc.iter().enumerate().take(self.out_channels - o0) {
                        let dst = out.as_mut_ptr().add((o0 + j) * p + p0);
                        let v0 = _mm256_min_ps(_mm256_max_ps(a[0], lo), hi);
                        let v1 = _mm256_min_ps(_mm256_max_ps(a[1], lo), hi);
                        if n == STRIP {
                            _mm256_storeu_ps(dst, v0);
                            _mm256_storeu_ps(dst.add(8), v1);
                        } else {
                            // `wrapping_add`: past the row's end when n ≤ 8, where
                            // the mask writes nothing.
                            _mm256_maskstore_ps(dst, m[0], v0);
                            _mm256_maskstore_ps(dst.wrapping_add(8), m[1], v1);
                        }
                    }
                }
            }
        }
    }

    /// Pixels `b0..b1` of the activations into `panels`, `[strip][C][16]`,
    /// the last strip's missing pixels zero.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_strips(&self, x: &[f32], p: usize, b0: usize, b1: usize, panels: &mut [f32]) {
        use std::arch::x86_64::*;
        let c = self.in_channels;
        for (s, p0) in (b0..b1).step_by(STRIP).enumerate() {
            let n = STRIP.min(b1 - p0);
            let panel = &mut panels[s * c * STRIP..][..c * STRIP];
            if self.channels_last && n == STRIP && c.is_multiple_of(8) {
                // 8 channels × 8 pixels at a time through registers.
                for g in (0..c).step_by(8) {
                    for h in [0, 8] {
                        super::op::transpose_8x8(
                            x.as_ptr().add((p0 + h) * c + g),
                            c,
                            panel.as_mut_ptr().add(g * STRIP + h),
                            STRIP,
                        );
                    }
                }
            } else if n == STRIP && !self.channels_last {
                for (ch, row) in panel.chunks_exact_mut(STRIP).enumerate() {
                    let src = x.as_ptr().add(ch * p + p0);
                    _mm256_storeu_ps(row.as_mut_ptr(), _mm256_loadu_ps(src));
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), _mm256_loadu_ps(src.add(8)));
                }
            } else {
                // A value at a time: channels last of other widths, or the
                // last, partial strip.
                for (ch, row) in panel.chunks_exact_mut(STRIP).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        let at = if self.channels_last { (p0 + j) * c + ch } else { ch * p + p0 + j };
                        *v = if j < n { x[at] } else { 0.0 };
                    }
                }
            }
        }
    }
}

impl PointwiseConv {
    /// Few pixels: tiles of 16 output channels (two registers of weights
    /// per input channel) × 6 pixels (each broadcast), 12 registers of
    /// sums, written out through a small transpose.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn channel_tiles_avx2(&self, x: &[f32], plane: usize, p: usize, sources: Option<&[usize]>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        debug_assert_eq!(self.tile, WIDE_TILE);
        let (c, o) = (self.in_channels, self.out_channels);
        let (lo, hi) = (_mm256_set1_ps(self.lo), _mm256_set1_ps(self.hi));
        // The activations as panels of six pixels, `[P / 6][C][6]` (the last
        // zero-padded): each input channel's six values one contiguous read.
        let strips = p.div_ceil(FEW);
        let mut panels = vec![0f32; strips * c * FEW];
        if self.channels_last {
            for (s, six) in x.chunks(FEW * c).enumerate() {
                for (j, pixel) in six.chunks_exact(c).enumerate() {
                    for (ch, &v) in pixel.iter().enumerate() {
                        panels[(s * c + ch) * FEW + j] = v;
                    }
                }
            }
        } else if let Some(sources) = sources {
            for (ch, row) in x.chunks_exact(plane).enumerate() {
                for (i, &at) in sources.iter().enumerate() {
                    panels[(i / FEW * c + ch) * FEW + i % FEW] = row[at];
                }
            }
        } else {
            for (ch, row) in x.chunks_exact(p).enumerate() {
                for (s, six) in row.chunks(FEW).enumerate() {
                    panels[(s * c + ch) * FEW..][..six.len()].copy_from_slice(six);
                }
            }
        }
        // The input channels in chunks whose weights (16 × 512 × 4 bytes,
        // L1's size) stay in L1 while every strip passes over them; the sums carry
        // from chunk to chunk in `partial`. Whole, a 1024-channel tile's
        // weights came from L2 for every strip (7 × 7 maps ran at 31 GMAC/s).
        let b0 = std::array::from_fn::<_, FEW, _>(|_| [_mm256_setzero_ps(); 2]);
        let mut partial = vec![b0; strips];
        let tiles = o.div_ceil(WIDE_TILE);
        for t in 0..tiles {
            let w = self.packed.as_ptr().add(t * c * WIDE_TILE);
            let o0 = t * WIDE_TILE;
            let b = [_mm256_loadu_ps(self.bias.as_ptr().add(o0)), _mm256_loadu_ps(self.bias.as_ptr().add(o0 + 8))];
            for k0 in (0..c).step_by(CHUNK) {
                let k1 = (k0 + CHUNK).min(c);
                for (s, carried) in partial.iter_mut().enumerate() {
                    let src = panels.as_ptr().add(s * c * FEW);
                    let mut acc = if k0 == 0 { [b; FEW] } else { *carried };
                    // The next tile's weights for these channels, on their
                    // way to L2 while this tile's later strips read their own.
                    let mut ahead = match t + 1 < tiles {
                        true => Ahead::new(w.add((c + k0) * WIDE_TILE), (k1 - k0) * WIDE_TILE, s, strips, k1 - k0),
                        false => Ahead::NONE,
                    };
                    for ch in k0..k1 {
                        ahead.tick();
                        let wc = w.add(ch * WIDE_TILE);
                        let (w0, w1) = (_mm256_loadu_ps(wc), _mm256_loadu_ps(wc.add(8)));
                        let row = src.add(ch * FEW);
                        for (j, a) in acc.iter_mut().enumerate() {
                            let xv = _mm256_broadcast_ss(&*row.add(j));
                            a[0] = _mm256_fmadd_ps(w0, xv, a[0]);
                            a[1] = _mm256_fmadd_ps(w1, xv, a[1]);
                        }
                    }
                    if k1 < c {
                        *carried = acc;
                        continue;
                    }
                    // acc[j] holds pixel p0 + j for the tile's 16 channels.
                    let (p0, n) = (s * FEW, FEW.min(p - s * FEW));
                    let mut sums = [[0f32; WIDE_TILE]; FEW];
                    for (a, s) in acc.iter().zip(&mut sums) {
                        _mm256_storeu_ps(s.as_mut_ptr(), _mm256_min_ps(_mm256_max_ps(a[0], lo), hi));
                        _mm256_storeu_ps(s.as_mut_ptr().add(8), _mm256_min_ps(_mm256_max_ps(a[1], lo), hi));
                    }
                    for i in 0..WIDE_TILE.min(o - o0) {
                        let dst = &mut out[(o0 + i) * p + p0..][..n];
                        for (j, v) in dst.iter_mut().enumerate() {
                            *v = sums[j][i];
                        }
                    }
                }
            }
        }
    }
}

/// Prefetches of the next tile's weights, a cache line every few input
/// channels, spread over the current tile's strips after its first (which
/// brings its own weights into L1). Without them, the first strip of each
/// tile waited on its weights from memory. A 1024 → 1024 layer on a 7 × 7
/// map (4 MB of weights) took 1.46 ms where its weights were not cached (as
/// in FaceRes, which runs through 13 MB of them) against 1.18 ms where they
/// were; with these, 1.23 ms. FaceRes went from 15.1 to 14.6 ms.
#[cfg(target_arch = "x86_64")]
struct Ahead {
    at: *const i8,
    end: *const i8,
    /// Input channels between two prefetches, and until the next.
    every: usize,
    countdown: usize,
}

#[cfg(target_arch = "x86_64")]
impl Ahead {
    const NONE: Ahead = Ahead { at: std::ptr::null(), end: std::ptr::null(), every: usize::MAX, countdown: usize::MAX };

    /// Strip `strip` of `strips`'s share of the `floats` weights at `next`,
    /// a prefetch every so many of its `iterations`.
    fn new(next: *const f32, floats: usize, strip: usize, strips: usize, iterations: usize) -> Ahead {
        // Over at most 8 strips: the weights arrive well before they are
        // needed, and a small map's few strips are not left without.
        let spread = strips.saturating_sub(1).min(8);
        if strip == 0 || strip > spread {
            return Ahead::NONE;
        }
        let lines = (floats * 4).div_ceil(64);
        let (lo, hi) = ((strip - 1) * lines / spread, strip * lines / spread);
        let every = (iterations / (hi - lo).max(1)).max(1);
        let base = next as *const i8;
        Ahead { at: base.wrapping_add(lo * 64), end: base.wrapping_add(hi * 64), every, countdown: 0 }
    }

    /// Called once an input channel: now and then, the next line.
    #[inline(always)]
    unsafe fn tick(&mut self) {
        use std::arch::x86_64::*;
        if self.countdown == 0 {
            self.countdown = self.every;
            if self.at < self.end {
                // A prefetch never faults, and `at` stays inside the packed
                // weights (the next tile's lines).
                _mm_prefetch::<_MM_HINT_T1>(self.at);
                self.at = self.at.wrapping_add(64);
            }
        }
        self.countdown -= 1;
    }
}

/// A 1×1 conv as tract's declutter leaves it, `[N]IHW,OI->[N]OHW` with
/// constant float weights, and the `+ bias` and clamp after it, becomes a
/// [`PointwiseConv`]. Left to tract where the AVX2 kernel is missing.
pub(super) fn rewrite(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(einsum) = node.op_as::<EinSum>() else { return Ok(None) };
    if !super::op::available() || einsum.q_params.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let axes = einsum.axes.to_string();
    let (channels_last, out_batch) = match axes.as_str() {
        "IHW,OI->OHW" | "NIHW,OI->OHW" => (false, false),
        "IHW,OI->NOHW" | "NIHW,OI->NOHW" => (false, true),
        "HWI,OI->OHW" | "NHWI,OI->OHW" => (true, false),
        "HWI,OI->NOHW" | "NHWI,OI->NOHW" => (true, true),
        _ => return Ok(None),
    };
    // A stride-2 conv's input, subsampled by two Downsample ops, is read
    // where it is.
    let subsampled = (!channels_last).then(|| downsampled(model, node)).flatten();
    let fact = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { return Ok(None) };
    if fact.datum_type != f32::datum_type() || (shape.len() == 4 && shape[0] != 1) {
        return Ok(None);
    }
    let r = shape.len();
    let (c, pixels) = if channels_last {
        (shape[r - 1], shape[r - 3] * shape[r - 2])
    } else {
        (shape[r - 3], shape[r - 2] * shape[r - 1])
    };
    let Some(weights) = const_values(model, node.inputs[1]) else { return Ok(None) };
    let o = weights.len() / c.max(1);
    if c == 0 || weights.len() != o * c || model.outlet_fact(node.inputs[1])?.shape.as_concrete() != Some(&[o, c][..]) {
        return Ok(None);
    }
    let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
    let rank = out_fact.rank();
    let mut bias = vec![0f32; o];
    let mut last = node;
    if let Some(next) = sole_successor(model, id) {
        let same = model.outlet_fact(OutletId::new(next.id, 0))?.shape == out_fact.shape;
        if let Some((_, b)) = binary_with_const::<Add>(model, next).filter(|_| same) {
            let Some(b) = per_channel(b, rank, rank - 3, o) else { return Ok(None) };
            bias = b;
            last = next;
        }
    }
    let (lo, hi, end) = clamp_after(model, last)?;
    let op = PointwiseConv::new(c, o, pixels, channels_last, out_batch, subsampled.is_some(), &weights, &bias, lo, hi);
    match subsampled {
        Some((x, first)) => replace_chain(model, x, first, end, op, "strided pointwise conv"),
        None => replace_chain(model, node.inputs[0], node, end, op, "pointwise conv"),
    }
}

/// The input and the first node of two `Downsample`s before `node` that
/// keep every other row, then every other column, from 0.
fn downsampled<'a>(model: &'a TypedModel, node: &TypedNode) -> Option<(OutletId, &'a TypedNode)> {
    let columns = model.node(node.inputs[0].node);
    let rows = model.node(columns.inputs.first()?.node);
    let rank = model.outlet_fact(node.inputs[0]).ok()?.rank();
    let halves = |n: &TypedNode, axis: usize| {
        n.op_as::<Downsample>().is_some_and(|d| d.axis == axis && d.stride == 2 && d.modulo == 0)
    };
    let x = *rows.inputs.first()?;
    (rank >= 3 && halves(columns, rank - 1) && halves(rows, rank - 2)).then_some((x, rows))
}

super::op::f32_op!(PointwiseConv, "PointwiseConv");

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let shape = x.shape().to_vec();
        let out_shape = self.output_shape(&shape)?;
        let plane = shape.iter().product::<usize>() / self.in_channels.max(1);
        let p = out_shape.iter().product::<usize>() / self.out_channels.max(1);
        let r = shape.len();
        let sources = self.sources(shape[r - 2], shape[r - 1]);
        write_f32(&x, &out_shape, |x, y| {
            self.run(x, plane, p, sources.as_deref(), y);
            Ok(())
        })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::rewrite::check_relu6_rewrite;
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        super::super::rewrite::test_values(n, seed, 20.0)
    }

    #[test]
    fn the_avx2_kernels_equal_the_portable_one() {
        if !super::super::op::available() {
            return;
        }
        // Both tilings (few pixels and many), pixel counts across strips and
        // panels, output channels that do and do not fill a tile, both
        // layouts, and subsampled inputs of odd and even sides.
        for (c, o, h, w, channels_last, subsample) in [
            (8, 13, 7, 7, false, false),
            (600, 20, 7, 7, false, false),
            (5, 16, 15, 20, false, false),
            (32, 7, 9, 29, false, false),
            (16, 20, 5, 9, true, false),
            (16, 20, 7, 7, true, false),
            (24, 10, 14, 14, false, false),
            (16, 20, 15, 20, true, false),
            (3, 6, 20, 20, true, false),
            (64, 20, 29, 29, false, true),
            (12, 9, 8, 15, false, true),
        ] {
            let plane = h * w;
            let op = PointwiseConv::new(
                c,
                o,
                plane,
                channels_last,
                false,
                subsample,
                &values(o * c, 1),
                &values(o, 2),
                -1.0,
                1.5,
            );
            let sources = op.sources(h, w);
            let p = sources.as_ref().map_or(plane, |s| s.len());
            let x = values(c * plane, 3);
            let (mut fast, mut slow) = (vec![f32::NAN; o * p], vec![f32::NAN; o * p]);
            op.run(&x, plane, p, sources.as_deref(), &mut fast);
            op.portable(&x, plane, p, sources.as_deref(), &mut slow);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{c}→{o} × {h}×{w}: {a} vs {b}");
            }
        }
        // The subsampled reference against the plain one on the kept pixels.
        let (c, o, h, w) = (4, 5, 5, 7);
        let x = values(c * h * w, 3);
        let plain = PointwiseConv::new(c, o, h * w, false, false, false, &values(o * c, 1), &values(o, 2), -1.0, 1.5);
        let strided = PointwiseConv::new(c, o, h * w, false, false, true, &values(o * c, 1), &values(o, 2), -1.0, 1.5);
        let mut all = vec![0f32; o * h * w];
        plain.portable(&x, h * w, h * w, None, &mut all);
        let sources = strided.sources(h, w).unwrap_or_default();
        let mut kept = vec![0f32; o * sources.len()];
        strided.portable(&x, h * w, sources.len(), Some(&sources), &mut kept);
        assert_eq!(sources.len(), 3 * 4);
        for (i, v) in kept.iter().enumerate() {
            let (ch, px) = (i / 12, i % 12);
            assert_eq!(*v, all[ch * h * w + (px / 4) * 2 * w + (px % 4) * 2]);
        }
    }

    /// A 1×1 conv → ReLU6 (tract's declutter turns the conv into the EinSum
    /// the rewrite matches), and the channels-last EinSum tract leaves after
    /// a channels-last op (FaceRes's second conv) → bias → ReLU6: tract's
    /// own against the rewritten graph.
    #[test]
    fn a_1x1_conv_and_its_clamp_become_one_op_with_the_same_values() {
        if !super::super::op::available() {
            return;
        }
        // The last two: a stride-2 conv (the emotion net's shortcuts), whose
        // input tract subsamples with two Downsample ops the rewrite folds in.
        for (c, o, hw, channels_last, stride) in [
            (24, 40, 7, false, 1),
            (16, 32, 20, false, 1),
            (8, 12, 9, true, 1),
            (24, 40, 15, false, 2),
            (16, 32, 20, false, 2),
        ] {
            let shape: TVec<usize> = if channels_last { tvec!(1, hw, hw, c) } else { tvec!(1, c, hw, hw) };
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&shape)).unwrap();
            let y = if channels_last {
                let w = model.add_const("w", Tensor::from_shape(&[o, c], &values(o * c, 1)).unwrap()).unwrap();
                let axes = "NHWI,OI->OHW".parse().unwrap();
                let y = model.wire_node("pw", EinSum::new(axes, f32::datum_type()), &[x, w]).unwrap()[0];
                let b = model.add_const("b", Tensor::from_shape(&[o, 1, 1], &values(o, 2)).unwrap()).unwrap();
                model.wire_node("bias", tract_onnx::tract_core::ops::math::add(), &[y, b]).unwrap()[0]
            } else {
                let k = model.add_const("k", Tensor::from_shape(&[o, c, 1, 1], &values(o * c, 1)).unwrap()).unwrap();
                let b = model.add_const("b", tensor1(&values(o, 2))).unwrap();
                let strides = (stride > 1).then(|| tvec!(stride, stride));
                let pool = PoolSpec::new(DataFormat::NCHW, tvec!(1, 1), PaddingSpec::Valid, None, strides, c, o);
                let conv = Conv { pool_spec: pool, kernel_fmt: KernelFormat::OIHW, group: 1, q_params: None };
                model.wire_node("conv", conv, &[x, k, b]).unwrap()[0]
            };
            let input = Tensor::from_shape(&shape, &values(shape.iter().product(), 5)).unwrap();
            let ops = check_relu6_rewrite(model, y, &input, 1e-4);
            assert!(ops.contains(&"PointwiseConv".to_string()) && ops.len() <= 3, "{c}→{o}: {ops:?}");
            assert!(!ops.contains(&"Downsample".to_string()), "{c}→{o} stride {stride}: {ops:?}");
        }
    }
}
