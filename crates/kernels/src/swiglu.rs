//! SwiGLU's gate, h = silu(g) · u, and its backward (dg and du in one pass).
use candle_core::{CustomOp2, CustomOp3, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::exp::exp_in_place;
use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// h = silu(g) · u, element-wise.
struct SwiGlu;

/// Backward of [`SwiGlu`]: inputs (g, u, dh); output [2, ...] packing dg, du.
struct SwiGluBackward;

/// Elements per rayon task: the kernels are element-wise, rows do not matter.
const CHUNK: usize = 4096;

/// `s` ← σ(g) = 1 / (1 + e⁻ᵍ) for each value of `g`, in f64.
fn sigmoids<T: WithDType>(g: &[T], s: &mut Vec<f64>) {
    s.clear();
    s.extend(g.iter().map(|g| -g.to_f64()));
    exp_in_place(s);
    for s in s.iter_mut() {
        *s = 1.0 / (1.0 + *s);
    }
}

impl Kernel for SwiGlu {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [g, u] = inputs.slices::<T, 2>()?;
        let mut h = vec![T::zero(); g.len()];
        h.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(u.par_chunks(CHUNK))
            .for_each_init(Vec::new, |sig, ((h, g), u)| {
                sigmoids(g, sig);
                for (((h, g), u), s) in h.iter_mut().zip(g).zip(u).zip(sig.iter()) {
                    *h = T::from_f64(g.to_f64() * s * u.to_f64());
                }
            });
        Ok((h, inputs.shape(0).clone()))
    }
}

impl CustomOp2 for SwiGlu {
    cpu_forward!(2, "fused-swiglu");

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _h: &Tensor,
        dh: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = g.apply_op3_no_bwd(u, &dh.contiguous()?, &SwiGluBackward)?;
        Ok((Some(packed.get(0)?), Some(packed.get(1)?)))
    }
}

impl Kernel for SwiGluBackward {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [g, u, dh] = inputs.slices::<T, 3>()?;
        let n = g.len();
        let mut out = vec![T::zero(); 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(
                g.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK))
                    .zip(dh.par_chunks(CHUNK)),
            )
            .for_each_init(Vec::new, |sig, ((dg, du), ((g, u), dh))| {
                sigmoids(g, sig);
                let values = g.iter().zip(u).zip(dh).zip(sig.iter());
                for ((dg, du), (((g, u), dh), &s)) in dg.iter_mut().zip(du).zip(values) {
                    let (g, u, dh) = (g.to_f64(), u.to_f64(), dh.to_f64());
                    *dg = T::from_f64(dh * u * s * (1.0 + g * (1.0 - s)));
                    *du = T::from_f64(dh * g * s);
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(inputs.shape(0).dims());
        Ok((out, Shape::from(dims)))
    }
}

impl CustomOp3 for SwiGluBackward {
    cpu_forward!(3, "fused-swiglu-backward");
}

/// Fused silu(gate) · up (both made contiguous, same shape).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}
