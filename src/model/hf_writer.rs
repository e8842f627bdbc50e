//! Random-weight HF model dirs in the real on-disk layout: what the paper
//! profile reads (config.json with HF field names, model.safetensors under
//! HF tensor names, tokenizer.json). `sweep model init` writes machine-check
//! models with them (`model::preset`), and the tests build their small HF
//! dirs with them (re-exported from `crate::testing`).
use std::path::Path;

use anyhow::anyhow;
use candle_core::Device;
use serde_json::{Value as Json, json};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::model::{Arch, DecoderConfig, Policy, RewardModel};

/// A post-processor that puts `token` (id `id`) before every sequence, as
/// Llama's and OPT's tokenizer.json files put their BOS.
pub fn bos_template(token: &str, id: u32) -> TemplateProcessing {
    TemplateProcessing::builder()
        .try_single(format!("{token} $A"))
        .unwrap()
        .special_tokens(vec![(token, id)])
        .build()
        .unwrap()
}

/// A word-level tokenizer: `specials` get ids 0.., then `words`; text is
/// split on whitespace and punctuation (`\w+|[^\w\s]+`), and special tokens
/// written in the text are matched whole (as chat markers are in real
/// tokenizers). `post` adds BOS / EOS / pair separators when a caller
/// encodes with special tokens.
pub fn word_tokenizer(
    specials: &[&str],
    words: &[&str],
    unk: &str,
    post: TemplateProcessing,
) -> Tokenizer {
    let vocab: serde_json::Map<String, Json> = specials
        .iter()
        .chain(words)
        .enumerate()
        .map(|(i, w)| (w.to_string(), json!(i)))
        .collect();
    assert_eq!(vocab.len(), specials.len() + words.len(), "duplicate words");
    let model: WordLevel =
        serde_json::from_value(json!({"vocab": vocab, "unk_token": unk})).unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace));
    tokenizer.with_post_processor(Some(post));
    let added: Vec<AddedToken> = specials
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    tokenizer
        .add_special_tokens(added)
        .expect("special tokens are in the vocab");
    tokenizer
}

/// The HF `config.json` of a Llama-family decoder (`model_type` `qwen3`
/// when `cfg.qk_norm`, else `llama`) whose `architectures` is
/// `<Llama|Qwen3><head>` (`ForCausalLM`, `ForSequenceClassification`).
/// [`super::hf_config::read_hf_config`] maps it back to `cfg`.
pub fn hf_config_json(cfg: &DecoderConfig, head: &str) -> Json {
    assert_eq!(cfg.arch, Arch::Llama, "only Llama-family HF configs");
    let (model_type, family) = match cfg.qk_norm {
        true => ("qwen3", "Qwen3"),
        false => ("llama", "Llama"),
    };
    assert!(
        !cfg.qkv_bias || cfg.qk_norm,
        "llama's attention_bias also biases o_proj; use a qwen3 config for q/k/v bias"
    );
    assert!(cfg.rope_scaling.is_none(), "rope_scaling is not written");
    json!({
        "architectures": [format!("{family}{head}")],
        "model_type": model_type, "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim, "max_position_embeddings": cfg.max_position,
        "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": cfg.qkv_bias,
        "bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "pad_token_id": cfg.pad_id,
        "torch_dtype": "float32"
    })
}

/// Writes config.json, model.safetensors and tokenizer.json into `dir`.
fn write_hf_files(
    dir: &Path,
    config: &Json,
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    tokenizer: &Tokenizer,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    candle_core::safetensors::save(tensors, dir.join("model.safetensors"))?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow!("writing {}/tokenizer.json: {e}", dir.display()))
}

/// An HF dir holding a random `*ForCausalLM` of `cfg` (seeded) and
/// `tokenizer`; returns the model as written.
pub fn write_hf_policy_dir(
    dir: &Path,
    cfg: &DecoderConfig,
    seed: u64,
    tokenizer: &Tokenizer,
) -> anyhow::Result<Policy> {
    let policy = Policy::new_random(cfg, None, seed, &Device::Cpu)?;
    let config = hf_config_json(cfg, "ForCausalLM");
    write_hf_files(
        dir,
        &config,
        &policy.backbone().params().tensors(),
        tokenizer,
    )?;
    Ok(policy)
}

/// An HF dir holding a random `*ForSequenceClassification` reward model of
/// `cfg` (one label, `score.weight` head; seeded) and `tokenizer`; returns
/// the model as written.
pub fn write_hf_reward_dir(
    dir: &Path,
    cfg: &DecoderConfig,
    seed: u64,
    tokenizer: &Tokenizer,
) -> anyhow::Result<RewardModel> {
    let rm = RewardModel::new_random(cfg, None, seed, &Device::Cpu)?;
    let mut config = hf_config_json(cfg, "ForSequenceClassification");
    config["id2label"] = json!({"0": "LABEL_0"});
    write_hf_files(dir, &config, &rm.backbone().params().tensors(), tokenizer)?;
    Ok(rm)
}
