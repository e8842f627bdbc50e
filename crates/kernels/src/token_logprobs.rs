//! The log-probability of each row's target token, log softmax(logits)[t],
//! without materialising the [N, V] log-softmax; backward
//! dlogits = dy · (onehot(t) − softmax(logits)).
use candle_core::{CustomOp2, CustomOp3, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// log softmax(logits)[target] per row; logits: [N, V], targets: [N] u32 → [N].
struct TokenLogProbs;

/// Backward of [`TokenLogProbs`]: inputs (logits, targets, dy [N]);
/// dlogits = dy · (onehot(target) − softmax(logits)).
struct TokenLogProbsBackward;

fn row_logsumexp<T: WithDType>(x: &[T]) -> f64 {
    let max = x
        .iter()
        .map(|v| v.to_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    max + x.iter().map(|v| (v.to_f64() - max).exp()).sum::<f64>().ln()
}

impl Kernel for TokenLogProbs {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let (x, targets) = (inputs.slice::<T>(0)?, inputs.slice::<u32>(1)?);
        let (n, v) = inputs.shape(0).dims2()?;
        let mut out = vec![T::zero(); n];
        out.par_iter_mut()
            .zip(x.par_chunks(v))
            .zip(targets.par_iter())
            .for_each(|((o, x), &t)| {
                *o = T::from_f64(x[t as usize].to_f64() - row_logsumexp(x));
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
            .for_each(|((dx, x), (&t, dy))| {
                let (lse, dy) = (row_logsumexp(x), dy.to_f64());
                for (i, (dx, x)) in dx.iter_mut().zip(x).enumerate() {
                    let onehot = if i == t as usize { 1.0 } else { 0.0 };
                    *dx = T::from_f64(dy * (onehot - (x.to_f64() - lse).exp()));
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
