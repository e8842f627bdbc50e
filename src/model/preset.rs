//! `sweep model init`: a randomly initialised model of a real architecture,
//! written as an HF directory (config.json, model.safetensors,
//! tokenizer.json) that `sweep` and PyTorch/transformers both load. For
//! checking a machine (GPU parity, speed: `scripts/gpu-check.sh`) where the
//! real weights are not at hand and nothing can be downloaded; the numbers
//! it gives are about the machine, not about the model.
//!
//! The tokenizer is word-level: `<s>` (0), `</s>` (1, EOS and pad), `<unk>`
//! (2), then the words `w3` … `w{V-1}`, and adds no special token (sweep
//! encodes without them, PyTorch's tokenizers with them by default), so any
//! text of those words tokenises the same in every program: one id a word.
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::config::{Arch, DecoderConfig};
use tokenizers::processors::template::TemplateProcessing;

use super::hf_writer::{word_tokenizer, write_hf_policy_dir};

/// The architectures `sweep model init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 2 layers, width 64, vocabulary 512: milliseconds anywhere.
    Tiny,
    /// SmolLM2-135M's shapes (HuggingFaceTB/SmolLM2-135M config.json): 30
    /// layers, width 576, 9 query / 3 KV heads, vocabulary 49152, tied head.
    #[value(name = "smollm2-135m")]
    #[serde(rename = "smollm2-135m")]
    Smollm2,
}

impl Preset {
    pub fn decoder_config(self) -> DecoderConfig {
        let smollm2 = DecoderConfig {
            arch: Arch::Llama,
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            max_position: 8192,
            rope_theta: 100_000.0,
            rope_scaling: None,
            norm_eps: 1e-5,
            qkv_bias: false,
            qk_norm: false,
            tie_embeddings: true,
            bos_id: Some(0),
            eos_id: 1,
            pad_id: 1,
        };
        match self {
            Self::Smollm2 => smollm2,
            Self::Tiny => DecoderConfig {
                vocab_size: 512,
                hidden_size: 64,
                intermediate_size: 256,
                num_layers: 2,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 16,
                max_position: 512,
                rope_theta: 10_000.0,
                ..smollm2
            },
        }
    }
}

/// Writes a seeded random `preset` model with its word-level tokenizer into `out`.
pub fn write_random_model(preset: Preset, seed: u64, out: &Path) -> Result<DecoderConfig> {
    let cfg = preset.decoder_config();
    let words: Vec<String> = (3..cfg.vocab_size).map(|i| format!("w{i}")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let plain = TemplateProcessing::builder()
        .try_single("$A")
        .map_err(|e| anyhow::anyhow!("tokenizer template: {e}"))?
        .build()?;
    let tokenizer = word_tokenizer(&["<s>", "</s>", "<unk>"], &words, "<unk>", plain);
    write_hf_policy_dir(out, &cfg, seed, &tokenizer)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::probe::model_logprob;
    use candle_core::Device;

    /// The tiny preset loads back through `sweep model logprob`'s path: the
    /// words tokenise one id each, and the model scores them.
    #[test]
    fn tiny_preset_writes_a_loadable_model() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let cfg = write_random_model(Preset::Tiny, 0, dir.path())?;
        assert_eq!(cfg.vocab_size, 512);
        let report = model_logprob(dir.path(), "w3 w100 w511", &Device::Cpu)?;
        assert_eq!(report.token_ids, [3, 100, 511]);
        assert_eq!(report.predicted_tokens, 2);
        // Random weights of std 0.02 give near-uniform predictions: ≈ −ln 512 per token.
        let uniform = -(512f32).ln();
        assert!((report.mean_logprob - uniform).abs() < 0.5, "{report}");
        Ok(())
    }
}
