//! Softmax over the last dim, plain and with an additive mask shared by the
//! attention heads; both share one backward, dx = y · (dy − Σ dy·y).
use candle_core::{CustomOp1, CustomOp2, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::exp::exp_in_place;
use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// One softmax row from its shifted inputs: `e` holds x − max (f64) and is
/// exponentiated in place, then y = e / Σ e, the sum in f64 in element
/// order. Each exponential is rounded to `T` before the division, as this
/// kernel has always computed it, so that trained numbers stay what they were.
fn normalise_exp<T: WithDType>(e: &mut [f64], y: &mut [T]) {
    exp_in_place(e);
    let sum = e.iter().fold(0f64, |sum, e| sum + e);
    for (y, e) in y.iter_mut().zip(e.iter()) {
        *y = T::from_f64(T::from_f64(*e).to_f64() / sum);
    }
}

/// Softmax over the last dim.
struct Softmax;

/// Backward of [`Softmax`]: inputs (y, dy); dx = y · (dy − Σ dy·y).
struct SoftmaxBackward;

impl Kernel for Softmax {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [x] = inputs.slices::<T, 1>()?;
        let d = inputs.shape(0).dims().last().copied().unwrap_or(1);
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each_init(Vec::new, |e, (y, x)| {
                let max = x
                    .iter()
                    .map(|v| v.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                e.clear();
                e.extend(x.iter().map(|x| x.to_f64() - max));
                normalise_exp(e, y);
            });
        Ok((y, inputs.shape(0).clone()))
    }
}

impl CustomOp1 for Softmax {
    cpu_forward!(1, "fused-softmax");

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

impl Kernel for SoftmaxBackward {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [y, dy] = inputs.slices::<T, 2>()?;
        let d = inputs.shape(0).dims().last().copied().unwrap_or(1);
        let mut dx = vec![T::zero(); y.len()];
        dx.par_chunks_mut(d)
            .zip(y.par_chunks(d))
            .zip(dy.par_chunks(d))
            .for_each(|((dx, y), dy)| {
                let dot: f64 = y
                    .iter()
                    .zip(dy)
                    .map(|(y, dy)| y.to_f64() * dy.to_f64())
                    .sum();
                for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = T::from_f64(y.to_f64() * (dy.to_f64() - dot));
                }
            });
        Ok((dx, inputs.shape(0).clone()))
    }
}

impl CustomOp2 for SoftmaxBackward {
    cpu_forward!(2, "fused-softmax-backward");
}

/// Fused softmax over the last dim (x made contiguous).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// softmax(scores + bias) over the last dim; scores: [B, H, S, T], bias:
/// [B, 1, S, T] shared by the heads (0 or −inf). No gradient to the bias.
struct BiasedSoftmax;

impl Kernel for BiasedSoftmax {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [x, bias] = inputs.slices::<T, 2>()?;
        let (_, h, s, t) = inputs.shape(0).dims4()?;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(t)
            .zip(x.par_chunks(t))
            .enumerate()
            .for_each_init(Vec::new, |e, (row, (y, x))| {
                let (b, q) = (row / (h * s), row % s);
                let bias = &bias[(b * s + q) * t..(b * s + q + 1) * t];
                let mut max = f64::NEG_INFINITY;
                for (x, m) in x.iter().zip(bias) {
                    max = max.max(x.to_f64() + m.to_f64());
                }
                e.clear();
                e.extend(
                    x.iter()
                        .zip(bias)
                        .map(|(x, m)| x.to_f64() + m.to_f64() - max),
                );
                normalise_exp(e, y);
            });
        Ok((y, inputs.shape(0).clone()))
    }
}

impl CustomOp2 for BiasedSoftmax {
    cpu_forward!(2, "fused-biased-softmax");

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((
            Some(y.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?),
            None,
        ))
    }
}

/// Fused softmax(scores + bias); scores [B, H, S, T], bias [B, 1, S, T].
pub fn biased_softmax(scores: &Tensor, bias: &Tensor) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op2(&bias.detach().contiguous()?, BiasedSoftmax)
}
