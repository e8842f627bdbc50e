//! The log-probability of each row's target token, log softmax(logits)[t],
//! without materialising the [N, V] log-softmax; backward
//! dlogits = dy · (onehot(t) − softmax(logits)).
use candle_core::{CustomOp2, CustomOp3, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::exp::exp_in_place;
use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// log softmax(logits)[target] per row; logits: [N, V], targets: [N] u32 → [N].
struct TokenLogProbs;

/// Backward of [`TokenLogProbs`]: inputs (logits, targets, dy [N]);
/// dlogits = dy · (onehot(target) − softmax(logits)).
struct TokenLogProbsBackward;

/// ln Σ eˣ over one row, computed as max + ln Σ e^(x − max) so that no
/// term overflows; `scratch` holds the e^(x − max) afterwards.
fn row_logsumexp<T: WithDType>(x: &[T], scratch: &mut Vec<f64>) -> f64 {
    let max = x
        .iter()
        .map(|v| v.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    shifted_exp(x, max, scratch);
    max + scratch.iter().sum::<f64>().ln()
}

/// `scratch` ← e^(x − shift), in f64.
fn shifted_exp<T: WithDType>(x: &[T], shift: f64, scratch: &mut Vec<f64>) {
    scratch.clear();
    scratch.extend(x.iter().map(|v| v.to_f64() - shift));
    exp_in_place(scratch);
}

impl Kernel for TokenLogProbs {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let (x, targets) = (inputs.slice::<T>(0)?, inputs.slice::<u32>(1)?);
        let (n, v) = inputs.shape(0).dims2()?;
        let mut out = vec![T::zero(); n];
        out.par_iter_mut()
            .zip(x.par_chunks(v))
            .zip(targets.par_iter())
            .for_each_init(Vec::new, |scratch, ((o, x), &t)| {
                *o = T::from_f64(x[t as usize].to_f64() - row_logsumexp(x, scratch));
            });
        Ok((out, Shape::from(n)))
    }
}

impl CustomOp2 for TokenLogProbs {
    cpu_forward!(2, "fused-token-logprobs");

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = logits.apply_op3_no_bwd(targets, &dy.contiguous()?, &TokenLogProbsBackward)?;
        Ok((Some(dx), None))
    }
}

impl Kernel for TokenLogProbsBackward {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let (x, targets, dy) = (
            inputs.slice::<T>(0)?,
            inputs.slice::<u32>(1)?,
            inputs.slice::<T>(2)?,
        );
        let (_, v) = inputs.shape(0).dims2()?;
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .zip(targets.par_iter().zip(dy.par_iter()))
            .for_each_init(Vec::new, |scratch, ((dx, x), (&t, dy))| {
                let (lse, dy) = (row_logsumexp(x, scratch), dy.to_f64());
                shifted_exp(x, lse, scratch);
                for (i, (dx, p)) in dx.iter_mut().zip(scratch.iter()).enumerate() {
                    let onehot = if i == t as usize { 1.0 } else { 0.0 };
                    *dx = T::from_f64(dy * (onehot - p));
                }
            });
        Ok((dx, inputs.shape(0).clone()))
    }
}

impl CustomOp3 for TokenLogProbsBackward {
    cpu_forward!(3, "fused-token-logprobs-backward");
}

/// Fused log-prob of each row's target; logits [N, V], targets [N] u32 → [N].
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, TokenLogProbs)
}
