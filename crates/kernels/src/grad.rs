//! Whole-gradient passes of the optimiser loop, without temporaries: the
//! squared L2 norm (for clipping).
//!
//! It reproduces candle's composed version bit for bit:
//! `g.to_dtype(F64).sqr().sum_all()` sums x² in f64 from the first element
//! to the last.
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::plumbing::{contiguous_slice, dispatch};

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
