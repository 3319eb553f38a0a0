//! RMSNorm with its learned gain, as the fused layer ops apply it to their
//! input before the first projection.

/// `y = x / sqrt(mean(x²) + eps) · gain` over each row of `gain.len()` values.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsNorm {
    pub gain: Vec<f32>,
    pub eps: f32,
}

/// Ops are compared to merge duplicates; a gain read from a file holds no NaN
/// that would make the comparison irreflexive.
impl Eq for RmsNorm {}

impl RmsNorm {
    /// The normalised rows of `x` (a whole number of rows long).
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let d = self.gain.len();
        let mut y = vec![0f32; x.len()];
        for (row, out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            // In f64, as ggml sums it: the row's scale then does not hang on
            // the summation order.
            let mean_square = (row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / d as f64) as f32;
            let inv = 1.0 / (mean_square + self.eps).sqrt();
            for ((o, v), g) in out.iter_mut().zip(row).zip(&self.gain) {
                *o = v * inv * g;
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_out_with_unit_rms_times_the_gain() {
        let norm = RmsNorm { gain: vec![1.0, 2.0, 1.0, 0.5], eps: 0.0 };
        let y = norm.apply(&[2.0, 2.0, 2.0, 2.0, 1.0, -1.0, 1.0, -1.0]);
        assert_eq!(y, vec![1.0, 2.0, 1.0, 0.5, 1.0, -2.0, 1.0, -0.5]);
    }
}
