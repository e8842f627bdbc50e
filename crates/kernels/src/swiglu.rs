//! SwiGLU's gate, h = silu(g) · u, and its backward (dg and du in one pass).
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{contiguous_slice, dispatch, owned};

/// h = silu(g) · u, element-wise.
struct SwiGlu;

/// Backward of [`SwiGlu`]: inputs (g, u, dh); output [2, ...] packing dg, du.
struct SwiGluBackward;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
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
            let (g, u) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
            );
            let mut h = vec![T::zero(); g.len()];
            h.par_chunks_mut(4096)
                .zip(g.par_chunks(4096))
                .zip(u.par_chunks(4096))
                .for_each(|((h, g), u)| {
                    for ((h, g), u) in h.iter_mut().zip(g).zip(u) {
                        let g = g.to_f64();
                        *h = T::from_f64(g * sigmoid(g) * u.to_f64());
                    }
                });
            Ok(owned(h, l1.shape()))
        }
        dispatch!(s1, run(s1, l1, s2, l2))
    }

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

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "fused-swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (g, u, dh) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let n = g.len();
            let mut out = vec![T::zero(); 2 * n];
            let (dg, du) = out.split_at_mut(n);
            let chunk = 4096;
            dg.par_chunks_mut(chunk)
                .zip(du.par_chunks_mut(chunk))
                .zip(
                    g.par_chunks(chunk)
                        .zip(u.par_chunks(chunk))
                        .zip(dh.par_chunks(chunk)),
                )
                .for_each(|((dg, du), ((g, u), dh))| {
                    for ((((dg, du), g), u), dh) in dg.iter_mut().zip(du).zip(g).zip(u).zip(dh) {
                        let (g, u, dh) = (g.to_f64(), u.to_f64(), dh.to_f64());
                        let s = sigmoid(g);
                        *dg = T::from_f64(dh * u * s * (1.0 + g * (1.0 - s)));
                        *du = T::from_f64(dh * g * s);
                    }
                });
            let mut dims = vec![2];
            dims.extend_from_slice(l1.dims());
            Ok(owned(out, &Shape::from(dims)))
        }
        dispatch!(s1, run(s1, l1, s2, l2, s3, l3))
    }
}

/// Fused silu(gate) · up (both made contiguous, same shape).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}
