//! The feed-forward half of a decoder layer as one tract op:
//!
//!   x + W_down · (silu(W_gate h) ⊙ W_up h),  h = rmsnorm(x)
//!
//! In tract's own ops this is eight nodes (norm, gain, the two slices of the
//! stacked gate/up product, silu, the product, down, the residual add); as
//! one op the plan steps once per layer instead, for the reason given in
//! [`super::attention`].
//!
//!   input  x [S, d]
//!   output   [S, d]

use tract_nnef::internal::{tract_linalg::routines::Func, *};

use super::{
    linear::{MappedMatrix, Projection},
    norm::RmsNorm,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedForwardBlock {
    pub norm: RmsNorm,
    /// W_gate, W_up: [ffn, d] each.
    pub gate_up: Projection,
    /// W_down: [d, ffn].
    pub down: MappedMatrix,
}

impl Op for FeedForwardBlock {
    fn name(&self) -> StaticName {
        "FeedForwardBlock".into()
    }
    op_as_typed_op!();
}

impl EvalOp for FeedForwardBlock {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let d = self.gate_up.cols();
        ensure!(x.rank() == 2 && x.shape()[1] == d, "FeedForwardBlock: input {:?} is not [S, {d}]", x.shape());
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let h = self.norm.apply(x);
        let [mut gate, up]: [Vec<f32>; 2] =
            self.gate_up.apply(&h).try_into().map_err(|_| format_err!("FeedForwardBlock needs W_gate and W_up"))?;
        // tract's vectorised silu, the kernel its own silu op runs.
        Func::Silu.ew_f32()?.run(&mut gate)?;
        gate.iter_mut().zip(&up).for_each(|(g, u)| *g *= u);
        Ok(tvec!(self.down.matmul_onto(&gate, x)?.into_tvalue()))
    }
}

impl TypedOp for FeedForwardBlock {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].rank() == 2, "FeedForwardBlock takes x [S, d]");
        Ok(tvec!(f32::fact(inputs[0].shape.to_tvec())))
    }

    as_op!();
}
