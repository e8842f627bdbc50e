//! The decoder's shape and its architectural switches.
//!
//! One struct covers Llama, Qwen2, Qwen3, SmolLM2 (all `Arch::Llama` with
//! flags) and OPT. It is what HF `config.json` files, GGUF metadata and our
//! own checkpoints deserialise into.
use serde::{Deserialize, Serialize};

pub use crate::spec::Arch;

/// HF's `rope_scaling = {"rope_type": "llama3", …}` (Llama-3.1 and the
/// models built on it, e.g. Skywork-Reward-V2-Llama-3.1-8B): frequencies
/// whose wavelength exceeds `original_max_position / low_freq_factor` are
/// divided by `factor`, those below `original_max_position /
/// high_freq_factor` are kept, and the band between is interpolated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position: usize,
}

impl RopeScaling {
    /// One inverse frequency, rescaled.
    pub fn rescale(&self, inv_freq: f64) -> f64 {
        let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
        let original = self.original_max_position as f64;
        let (low_wavelen, high_wavelen) = (
            original / self.low_freq_factor,
            original / self.high_freq_factor,
        );
        if wavelen < high_wavelen {
            inv_freq
        } else if wavelen > low_wavelen {
            inv_freq / self.factor
        } else {
            let smooth = (original / wavelen - self.low_freq_factor)
                / (self.high_freq_factor - self.low_freq_factor);
            (1.0 - smooth) * inv_freq / self.factor + smooth * inv_freq
        }
    }
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
    /// Llama 3.1's long-context rescaling of the RoPE frequencies (None =
    /// plain RoPE). Left out of our checkpoints' JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
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

impl DecoderConfig {
    /// Rejects shapes the decoder cannot build, naming the offending field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position", self.max_position),
        ];
        for (field, value) in nonzero {
            anyhow::ensure!(
                value > 0,
                "decoder config: `{field}` must be positive, got 0"
            );
        }
        anyhow::ensure!(
            self.num_heads.is_multiple_of(self.num_kv_heads),
            "decoder config: num_heads ({}) must be a multiple of num_kv_heads ({})",
            self.num_heads,
            self.num_kv_heads
        );
        match self.arch {
            Arch::Llama => anyhow::ensure!(
                self.head_dim.is_multiple_of(2),
                "decoder config: RoPE needs an even head_dim, got {}",
                self.head_dim
            ),
            Arch::Opt => {
                anyhow::ensure!(
                    self.num_heads == self.num_kv_heads && !self.qk_norm,
                    "decoder config: OPT has neither grouped-query attention nor q/k norm \
                     (num_kv_heads must equal num_heads, qk_norm must be false)"
                );
                anyhow::ensure!(
                    self.tie_embeddings,
                    "decoder config: OPT ties its LM head to the token embedding (tie_embeddings must be true)"
                );
            }
        }
        for (field, id) in [
            ("eos_id", Some(self.eos_id)),
            ("pad_id", Some(self.pad_id)),
            ("bos_id", self.bos_id),
        ] {
            if let Some(id) = id {
                anyhow::ensure!(
                    (id as usize) < self.vocab_size,
                    "decoder config: {field} {id} is outside the vocabulary (vocab_size {})",
                    self.vocab_size
                );
            }
        }
        Ok(())
    }

    /// Number of parameters of the base model (no LoRA, no reward head).
    pub fn num_params(&self) -> usize {
        let (d, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (q, kv) = (
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        );
        let per_layer = match self.arch {
            Arch::Llama => {
                let bias = if self.qkv_bias { q + 2 * kv } else { 0 };
                let qk_norm = if self.qk_norm { 2 * self.head_dim } else { 0 };
                d * q + 2 * d * kv + q * d + bias + qk_norm + 3 * d * i + 2 * d
            }
            Arch::Opt => {
                (d * q + q) + 2 * (d * kv + kv) + (q * d + d) + (d * i + i) + (i * d + d) + 4 * d
            }
        };
        let embeddings = match self.arch {
            Arch::Llama => v * d,
            Arch::Opt => v * d + (self.max_position + 2) * d,
        };
        let final_norm = if self.arch == Arch::Opt { 2 * d } else { d };
        let head = if self.tie_embeddings { 0 } else { v * d };
        embeddings + self.num_layers * per_layer + final_norm + head
    }
}
