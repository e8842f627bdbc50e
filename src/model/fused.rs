//! Fused CPU kernels for the element-wise hot spots of training: RMSNorm,
//! softmax (plain and masked), SwiGLU, RoPE and token log-probs.
//!
//! The kernels themselves live in the `cwpo-kernels` crate
//! (`crates/kernels`, one module per kernel; its crate doc says what each
//! replaces), which is compiled optimised even in debug builds. This module
//! decides when they run: [`usable`] is true for f32/f64 CPU tensors, and
//! [`super::ops`] falls back to the composed candle ops elsewhere (CUDA,
//! half types). The tests in `ops`, `rotary` and `model::tests` check both
//! paths agree, values and gradients; [`with_fused`] forces either path.
use std::cell::Cell;

use candle_core::{DType, Tensor};

pub use cwpo_kernels::rms_norm::rms_norm;
pub use cwpo_kernels::rope::rope;
pub use cwpo_kernels::softmax::{biased_softmax, softmax_last_dim};
pub use cwpo_kernels::swiglu::swiglu;
pub use cwpo_kernels::token_logprobs::token_logprobs;

thread_local! {
    static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Runs `f` with the fused kernels forced on or off for calls made on this
/// thread (tests compare both paths; the bench times both).
pub fn with_fused<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let previous = FORCED.with(|c| c.replace(Some(enabled)));
    let out = f();
    FORCED.with(|c| c.set(previous));
    out
}

/// Whether the fused kernels run on `x`: on by default for f32/f64 CPU
/// tensors, in every build.
pub fn usable(x: &Tensor) -> bool {
    let enabled = FORCED.with(|c| c.get()).unwrap_or(true);
    enabled && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LanguageModel, PadSide, Policy, SeqBatch};
    use crate::testing::tiny_llama;
    use crate::train::TrainConfig;
    use crate::train::optim::run_training;
    use candle_core::Device;

    /// Debug builds now train on the fused path too (the kernels' crate is
    /// optimised there): the loss trace of 6 AdamW steps of the real tiny
    /// decoder stays within 1e-4 relative of the composed ops' at every
    /// step (f32 rounding in another order; the kernels accumulate in f64).
    #[test]
    fn fused_and_composed_loss_traces_agree() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let seqs: Vec<(Vec<u32>, usize)> = (0..12u32)
            .map(|i| ((0..10).map(|t| 1 + (i * 5 + t * 7) % 36).collect(), 3))
            .collect();
        let config = TrainConfig {
            epochs: 2,
            batch_size: 4,
            lr: 1e-2,
            ..TrainConfig::default()
        };
        let trace = |fused: bool| -> anyhow::Result<Vec<f64>> {
            with_fused(fused, || {
                let policy = Policy::new_random(&tiny_llama(), None, 5, &dev)?;
                let mut loss = |idx: &[usize]| -> anyhow::Result<Tensor> {
                    let rows: Vec<_> = idx.iter().map(|&i| seqs[i].clone()).collect();
                    let batch = SeqBatch::from_sequences(&rows, 0, PadSide::Right, &dev)?;
                    let lp = policy.response_logprobs(&batch)?;
                    let count = lp.count.sum_all()?.to_scalar::<f32>()? as f64;
                    Ok((lp.sum.sum_all()? / count)?.neg()?)
                };
                let vars = policy.trainable_vars();
                Ok(run_training(vars, seqs.len(), &config, &mut loss, &mut |_| {}, None)?.losses)
            })
        };
        let (fused, composed) = (trace(true)?, trace(false)?);
        assert_eq!(fused.len(), 6);
        for (step, (a, b)) in fused.iter().zip(&composed).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs(),
                "step {step}: fused {a} vs composed {b}\n{fused:?}\n{composed:?}"
            );
        }
        assert!(fused[5] < fused[0], "it trains: {fused:?}");
        Ok(())
    }
}
