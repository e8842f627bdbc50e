//! Whole-gradient passes of the optimiser loop, without temporaries:
//! the squared L2 norm (for clipping) and scaling in place.
//!
//! Both reproduce candle's composed versions bit for bit:
//! `g.to_dtype(F64).sqr().sum_all()` sums x² in f64 from the first element
//! to the last, and `g.affine(s, 0.0)` computes `x·(s as f32) + 0`.
use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::plumbing::{InPlace, contiguous_slice, contiguous_slice_mut, dispatch};

/// Σ x² in f64 over a CPU f32/f64 tensor, summed in element order (so the
/// result does not depend on the thread count).
pub fn sum_of_squares(t: &Tensor) -> Result<f64> {
    fn run<T: candle_core::WithDType>(s: &CpuStorage, l: &Layout) -> Result<f64> {
        let x = contiguous_slice::<T>(s, l)?;
        Ok(x.iter().fold(0f64, |acc, v| acc + v.to_f64() * v.to_f64()))
    }
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => dispatch!(s, run(s, layout)),
        _ => candle_core::bail!("sum_of_squares: CPU tensors only"),
    }
}

/// Σ over `tensors` of [`sum_of_squares`], the tensors in parallel and
/// their sums added in order.
pub fn total_sum_of_squares(tensors: &[&Tensor]) -> Result<f64> {
    let sums: Vec<f64> = tensors
        .par_iter()
        .map(|t| sum_of_squares(t))
        .collect::<Result<_>>()?;
    Ok(sums.into_iter().fold(0f64, |acc, s| acc + s))
}

struct Scale(f64);

impl InplaceOp1 for Scale {
    fn name(&self) -> &'static str {
        "fused-scale"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        fn run<T: InPlace>(scale: f64, s: &mut CpuStorage, l: &Layout) -> Result<()> {
            let scale = T::from_f64(scale);
            let zero = T::from_f64(0.0);
            contiguous_slice_mut::<T>(s, l)?
                .par_chunks_mut(1 << 14)
                .for_each(|x| x.iter_mut().for_each(|x| *x = *x * scale + zero));
            Ok(())
        }
        match s {
            CpuStorage::F32(_) => run::<f32>(self.0, s, l),
            CpuStorage::F64(_) => run::<f64>(self.0, s, l),
            _ => candle_core::bail!("fused-scale: only f32 and f64 are supported"),
        }
    }
}

/// x ← x·s in place (a contiguous f32/f64 CPU tensor).
pub fn scale_in_place(t: &Tensor, s: f64) -> Result<()> {
    t.inplace_op1(&Scale(s))
}
