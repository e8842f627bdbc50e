//! The concrete model a profile slot binds to: a tiny decoder trained from
//! scratch, or a local Hugging Face checkpoint.
use serde::{Deserialize, Serialize};

/// Architecture family: which norm, positions and MLP a block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// RMSNorm, RoPE, SwiGLU, grouped-query attention (Llama, Qwen2/3, SmolLM2).
    Llama,
    /// LayerNorm, learned positions (offset 2), ReLU MLP (OPT).
    Opt,
}

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
