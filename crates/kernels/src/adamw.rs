//! The AdamW update in place, one pass over θ, m, v and the gradient.
//!
//! candle-nn's `AdamW::step` composes the update from ~15 tensor ops per
//! parameter, each a fresh full-size tensor. This kernel does the same
//! arithmetic element by element, in the same order and in the same
//! precision (f32, with every constant rounded to f32 as candle's `affine`
//! does), so θ, m and v come out bit-identical to candle-nn's:
//!
//! ```text
//! m ← β₁·m + (1 − β₁)·g
//! v ← β₂·v + (1 − β₂)·g²
//! θ ← (1 − lr·λ)·θ − lr · (m·s_m) / (√(v·s_v) + ε)
//! s_m = 1 / (1 − β₁ᵗ), s_v = 1 / (1 − β₂ᵗ)
//! ```
//!
//! (The `+ 0.0` terms below are candle's `affine(mul, 0.0)`: kept so a
//! −0.0 rounds exactly as it does there.)
use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::plumbing::{contiguous_slice, contiguous_slice_mut};

/// One step's constants, as f64 (rounded to f32 inside, as candle does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// 1-based step count, for the bias corrections.
    pub t: usize,
}

/// The update with its moment buffers borrowed: candle's in-place ops hand
/// out one mutable storage (θ's), so m and v travel in the op itself.
struct Update<'a> {
    step: AdamWStep,
    moments: Mutex<(&'a mut [f32], &'a mut [f32])>,
}

/// Elements per rayon task: large enough that scheduling is noise.
const CHUNK: usize = 1 << 14;

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let theta = contiguous_slice_mut::<f32>(s1, l1)?;
        let grad = contiguous_slice::<f32>(s2, l2)?;
        let mut moments = self.moments.lock().expect("moments lock poisoned");
        let (m, v) = &mut *moments;
        if grad.len() != theta.len() || m.len() != theta.len() || v.len() != theta.len() {
            candle_core::bail!(
                "fused-adamw: θ has {} elements, gradient {}, moments {} and {}",
                theta.len(),
                grad.len(),
                m.len(),
                v.len()
            );
        }
        let p = self.step;
        let (b1, b2) = (p.beta1 as f32, p.beta2 as f32);
        let (c1, c2) = ((1.0 - p.beta1) as f32, (1.0 - p.beta2) as f32);
        let scale_m = (1.0 / (1.0 - p.beta1.powi(p.t as i32))) as f32;
        let scale_v = (1.0 / (1.0 - p.beta2.powi(p.t as i32))) as f32;
        let decay = (1.0 - p.lr * p.weight_decay) as f32;
        let (lr, eps) = (p.lr as f32, p.eps as f32);
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((theta, grad), (m, v))| {
                for (((theta, &g), m), v) in theta.iter_mut().zip(grad).zip(m).zip(v) {
                    *m = (*m * b1 + 0.0) + (g * c1 + 0.0);
                    *v = (*v * b2 + 0.0) + ((g * g) * c2 + 0.0);
                    let m_hat = *m * scale_m + 0.0;
                    let v_hat = *v * scale_v + 0.0;
                    let adjusted = m_hat / (v_hat.sqrt() * 1.0 + eps);
                    *theta = (*theta * decay + 0.0) - (adjusted * lr + 0.0);
                }
            });
        Ok(())
    }
}

/// One AdamW step on `theta` (a contiguous f32 CPU tensor, updated in
/// place) with gradient `grad` (made contiguous) and moments `m`, `v` (one
/// element per parameter, updated in place).
pub fn adamw_step(
    theta: &Tensor,
    grad: &Tensor,
    m: &mut [f32],
    v: &mut [f32],
    step: AdamWStep,
) -> Result<()> {
    let update = Update {
        step,
        moments: Mutex::new((m, v)),
    };
    theta.inplace_op2(&grad.contiguous()?, &update)
}
