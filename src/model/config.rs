//! The decoder's shape and its architectural switches.
//!
//! One struct covers Llama, Qwen2, Qwen3, SmolLM2 (all `Arch::Llama` with
//! flags) and OPT. It is what HF `config.json` files, GGUF metadata and our
//! own checkpoints deserialise into.
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention); equals `num_heads` for MHA.
    pub num_kv_heads: usize,
    /// Per-head width; `hidden_size / num_heads` unless the checkpoint says otherwise (Qwen3).
    pub head_dim: usize,
    pub max_position: usize,
    /// RoPE base (Llama family only).
    pub rope_theta: f64,
    /// Epsilon of RMSNorm / LayerNorm.
    pub norm_eps: f64,
    /// Bias on the q/k/v projections (Qwen2; OPT has biases everywhere).
    pub qkv_bias: bool,
    /// RMSNorm on q and k per head before RoPE (Qwen3).
    pub qk_norm: bool,
    /// LM head shares the token embedding matrix.
    pub tie_embeddings: bool,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    pub pad_id: u32,
}
