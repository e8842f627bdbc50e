//! RMSNorm over the last dim, y = x · rsqrt(mean(x²) + ε) · w, and its
//! backward (dx and dw in one pass).
use candle_core::{CustomOp2, CustomOp3, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// y = x · rsqrt(mean(x²) + eps) · w over the last dim. x: [..., D], w: [D].
struct RmsNorm {
    eps: f64,
}

/// Backward of [`RmsNorm`]: inputs (x, w, dy); output [rows + 1, D] packing
/// dx (first rows) and dw (last row).
struct RmsNormBackward {
    eps: f64,
}

fn inv_rms<T: WithDType>(row: &[T], eps: f64) -> f64 {
    let ms = row.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>() / row.len() as f64;
    1.0 / (ms + eps).sqrt()
}

impl Kernel for RmsNorm {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [x, w] = inputs.slices::<T, 2>()?;
        let d = w.len();
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
            let r = inv_rms(x, self.eps);
            for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                *y = T::from_f64(x.to_f64() * r * w.to_f64());
            }
        });
        Ok((y, inputs.shape(0).clone()))
    }
}

impl CustomOp2 for RmsNorm {
    cpu_forward!(2, "fused-rms-norm");

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let rows = x.elem_count() / d;
        let packed =
            x.apply_op3_no_bwd(w, &dy.contiguous()?, &RmsNormBackward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.get(rows)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl Kernel for RmsNormBackward {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [x, w, dy] = inputs.slices::<T, 3>()?;
        let eps = self.eps;
        let d = w.len();
        let rows = x.len() / d;
        let mut out = vec![T::zero(); x.len() + d];
        let (dx, dw) = out.split_at_mut(x.len());
        // r = rsqrt(mean(x²) + ε), one per row: both passes below need it.
        let r: Vec<f64> = x.par_chunks(d).map(|x| inv_rms(x, eps)).collect();
        // dx = r · (dy·w − x̂ · mean(dy·w·x̂)), x̂ = x·r
        dx.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .zip(dy.par_chunks(d))
            .zip(&r)
            .for_each(|(((dx, x), dy), &r)| {
                let dot = x
                    .iter()
                    .zip(dy)
                    .zip(w)
                    .map(|((x, dy), w)| dy.to_f64() * w.to_f64() * x.to_f64() * r)
                    .sum::<f64>()
                    / d as f64;
                for (((dx, x), dy), w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                    *dx = T::from_f64(r * (dy.to_f64() * w.to_f64() - x.to_f64() * r * dot));
                }
            });
        // dw = Σ_rows dy · x̂, split into blocks of columns across threads;
        // each column sums its rows in row order whatever the thread count.
        const COLUMNS_PER_TASK: usize = 32;
        dw.par_chunks_mut(COLUMNS_PER_TASK)
            .enumerate()
            .for_each(|(block, dw)| {
                let first = block * COLUMNS_PER_TASK;
                let mut acc = [0f64; COLUMNS_PER_TASK];
                let acc = &mut acc[..dw.len()];
                for ((x, dy), r) in x.chunks(d).zip(dy.chunks(d)).zip(&r) {
                    let columns = first..first + acc.len();
                    for ((acc, x), dy) in acc.iter_mut().zip(&x[columns.clone()]).zip(&dy[columns])
                    {
                        *acc += dy.to_f64() * x.to_f64() * r;
                    }
                }
                for (o, v) in dw.iter_mut().zip(acc) {
                    *o = T::from_f64(*v);
                }
            });
        Ok((out, Shape::from((rows + 1, d))))
    }
}

impl CustomOp3 for RmsNormBackward {
    cpu_forward!(3, "fused-rms-norm-backward");
}

/// Fused RMSNorm; x: [..., D] (made contiguous), weight: [D].
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps })
}
