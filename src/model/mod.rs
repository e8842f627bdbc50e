//! Models: one decoder family (Llama / Qwen2 / Qwen3 / SmolLM2 and OPT), LoRA,
//! a scalar reward head, masked response log-probs, sampling, checkpoints and
//! loaders. This module knows nothing of stages or manifests.
//!
//! The two traits below are the contract that `train` and `stage` program
//! against: a [`LanguageModel`] yields per-sequence log-probs of the target
//! (response) tokens, a [`ScalarScorer`] yields one score per sequence (the
//! Bradley–Terry weak annotator, a PairRM-style pairwise scorer, a gold RM).
pub mod attention;
pub mod backbone;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod fused;
pub mod gguf;
pub mod hf_config;
pub mod init;
pub mod linear;
pub mod lora;
pub mod mlp;
pub mod ops;
pub mod params;
pub mod policy;
pub mod probe;
pub mod reward;
pub mod rotary;
pub mod sample;

#[cfg(test)]
mod tests;

pub use attention::KvCache;
pub use batch::{PadSide, SeqBatch};
pub use checkpoint::{LoadedModel, ModelKind, load_checkpoint, load_hf_dir};
pub use config::{Arch, DecoderConfig};
pub use lora::LoraConfig;
pub use policy::Policy;
pub use reward::RewardModel;
pub use sample::{SamplingConfig, generate};

use candle_core::{Result, Tensor, Var};

/// Log-probabilities of the target tokens of each sequence in a batch.
#[derive(Debug, Clone)]
pub struct ResponseLogProbs {
    /// Sum of log π(y_t | x, y_<t) over target tokens. Shape [B], f32.
    pub sum: Tensor,
    /// Number of target tokens per sequence. Shape [B], f32.
    pub count: Tensor,
}

impl ResponseLogProbs {
    /// Mean log-prob per target token. Shape [B].
    pub fn mean(&self) -> Result<Tensor> {
        self.sum.div(&self.count.clamp(1f32, f32::MAX)?)
    }
}

/// A causal LM whose response log-probs can be differentiated.
pub trait LanguageModel: Send + Sync {
    /// Log-probs of the tokens marked in `batch.target_mask`.
    fn response_logprobs(&self, batch: &SeqBatch) -> Result<ResponseLogProbs>;
    /// The variables an optimiser should update (LoRA adapters only when LoRA is on).
    fn trainable_vars(&self) -> Vec<Var>;
}

/// A model that maps each sequence to one real number.
pub trait ScalarScorer: Send + Sync {
    /// One score per sequence, read at `batch.last_index`. Shape [B], f32.
    fn scores(&self, batch: &SeqBatch) -> Result<Tensor>;
    /// The variables an optimiser should update.
    fn trainable_vars(&self) -> Vec<Var>;
}
