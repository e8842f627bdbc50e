//! Parameter types shared by several stage kinds' `Params`: the concrete
//! model a profile slot binds to, and the knobs of a training loop.
use serde::{Deserialize, Serialize};

use crate::model::Arch;

/// A tiny decoder trained from scratch (tiny profile). The vocabulary size
/// comes from the tokenizer at run time, so it is not part of the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyModelSpec {
    pub arch: Arch,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Grouped-query attention; `None` = `num_heads` (multi-head attention).
    #[serde(default)]
    pub num_kv_heads: Option<usize>,
    pub max_position: usize,
}

/// The concrete model behind a profile slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// Trained from scratch by a `pretrain` stage.
    Tiny(TinyModelSpec),
    /// A local Hugging Face dir (config.json, tokenizer.json, *.safetensors).
    Hf { path: std::path::PathBuf },
}

/// Optimisation knobs of one training loop (weak annotator, SFT, alignment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    /// LoRA rank on the projections; `None` = full fine-tuning.
    #[serde(default)]
    pub lora_rank: Option<usize>,
}
