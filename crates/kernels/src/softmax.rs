//! Softmax over the last dim, plain and with an additive mask shared by the
//! attention heads; both share one backward, dx = y · (dy − Σ dy·y).
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{contiguous_slice, dispatch, owned};

/// Softmax over the last dim.
struct Softmax;

/// Backward of [`Softmax`]: inputs (y, dy); dx = y · (dy − Σ dy·y).
struct SoftmaxBackward;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = contiguous_slice::<T>(s, l)?;
            let d = l.dims()[l.dims().len() - 1];
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
                let max = x
                    .iter()
                    .map(|v| v.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0f64;
                for (y, x) in y.iter_mut().zip(x) {
                    let e = (x.to_f64() - max).exp();
                    sum += e;
                    *y = T::from_f64(e);
                }
                for y in y.iter_mut() {
                    *y = T::from_f64(y.to_f64() / sum);
                }
            });
            Ok(owned(y, l.shape()))
        }
        dispatch!(s, run(s, l))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (y, dy) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let d = l1.dims()[l1.dims().len() - 1];
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
            Ok(owned(dx, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }
}

/// Fused softmax over the last dim (x made contiguous).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// softmax(scores + bias) over the last dim; scores: [B, H, S, T], bias:
/// [B, 1, S, T] shared by the heads (0 or −inf). No gradient to the bias.
struct BiasedSoftmax;

impl CustomOp2 for BiasedSoftmax {
    fn name(&self) -> &'static str {
        "fused-biased-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, bias) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let (_, h, s, t) = l1.shape().dims4()?;
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(t)
                .zip(x.par_chunks(t))
                .enumerate()
                .for_each(|(row, (y, x))| {
                    let (b, q) = (row / (h * s), row % s);
                    let bias = &bias[(b * s + q) * t..(b * s + q + 1) * t];
                    let mut max = f64::NEG_INFINITY;
                    for (x, m) in x.iter().zip(bias) {
                        max = max.max(x.to_f64() + m.to_f64());
                    }
                    let mut sum = 0f64;
                    for ((y, x), m) in y.iter_mut().zip(x).zip(bias) {
                        let e = (x.to_f64() + m.to_f64() - max).exp();
                        sum += e;
                        *y = T::from_f64(e);
                    }
                    for y in y.iter_mut() {
                        *y = T::from_f64(y.to_f64() / sum);
                    }
                });
            Ok(owned(y, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }

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
