//! Tiny configurations for tests and benches (seconds on a CPU).
use super::config::{Arch, DecoderConfig};

/// A 2-layer Llama-family decoder with grouped-query attention.
pub fn tiny_llama() -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Llama,
        vocab_size: 37,
        hidden_size: 16,
        intermediate_size: 24,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 4,
        max_position: 64,
        rope_theta: 10_000.0,
        rope_scaling: None,
        norm_eps: 1e-6,
        qkv_bias: false,
        qk_norm: false,
        tie_embeddings: true,
        bos_id: Some(1),
        eos_id: 2,
        pad_id: 0,
    }
}

/// Qwen3-style: q/k norm, q/k/v bias, head_dim ≠ hidden/heads, GQA, untied head.
pub fn tiny_qwen3() -> DecoderConfig {
    DecoderConfig {
        head_dim: 6,
        num_heads: 4,
        num_kv_heads: 1,
        qk_norm: true,
        qkv_bias: true,
        tie_embeddings: false,
        rope_theta: 1_000_000.0,
        rope_scaling: None,
        ..tiny_llama()
    }
}

/// A 2-layer OPT decoder.
pub fn tiny_opt() -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Opt,
        num_kv_heads: 4,
        norm_eps: 1e-5,
        ..tiny_llama()
    }
}
