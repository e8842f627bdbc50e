//! Test helpers of the library, in one home: tiny model configurations
//! (seconds on a CPU), random-weight HF model dirs in the real layout built
//! from them, and [`input_file`] for tests that read a real file. Compiled
//! for the crate's own tests and behind the `testing` feature, which the
//! integration tests and benches enable (Cargo.toml's self dev-dependency);
//! the release library does not ship it.
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use candle_core::Device;
use serde_json::{Value as Json, json};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::model::{Arch, DecoderConfig, Policy, RewardModel};

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

// ---------------------------------------------------------------------------
// HF model dirs in the real on-disk layout, with random weights: what the
// paper profile reads (config.json with HF field names, model.safetensors
// under HF tensor names, tokenizer.json), at a size that runs in
// milliseconds. Shared by the library's tests and the integration tests.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LoadedModel, ModelKind, load_hf_dir};

    fn tokenizer() -> Tokenizer {
        let bos = bos_template("<s>", 1);
        word_tokenizer(
            &["<pad>", "<s>", "</s>", "<unk>"],
            &["a", "b", "."],
            "<unk>",
            bos,
        )
    }

    /// What the writers write, `load_hf_dir` reads back: same config, same tensors.
    #[test]
    fn hf_dirs_load_back() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        for (i, cfg) in [tiny_llama(), tiny_qwen3()].into_iter().enumerate() {
            let dir = tmp.path().join(format!("lm{i}"));
            let policy = write_hf_policy_dir(&dir, &cfg, 3, &tokenizer())?;
            let loaded = load_hf_dir(&dir, candle_core::DType::F32, &Device::Cpu)?;
            let LoadedModel::Policy(loaded) = loaded else {
                panic!("{cfg:?}: not a policy");
            };
            assert_eq!(loaded.config(), &cfg);
            let (a, b) = (policy.backbone().params(), loaded.backbone().params());
            assert_eq!(a.tensors().len(), b.tensors().len());
            for (name, t) in a.tensors() {
                let u = b.get(&name).unwrap();
                assert_eq!(
                    t.flatten_all()?.to_vec1::<f32>()?,
                    u.flatten_all()?.to_vec1::<f32>()?
                );
            }

            let dir = tmp.path().join(format!("rm{i}"));
            write_hf_reward_dir(&dir, &cfg, 4, &tokenizer())?;
            let loaded = load_hf_dir(&dir, candle_core::DType::F32, &Device::Cpu)?;
            assert_eq!(loaded.kind(), ModelKind::Reward);
            let tok =
                Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| anyhow!("{e}"))?;
            assert_eq!(tok.encode("a b .", true).unwrap().get_ids(), [1, 4, 5, 6]);
        }
        Ok(())
    }
}

/// A real input file a test needs (a checkpoint, a dataset): `Some(path)`
/// when it exists. When it does not, a developer's run skips the test with a
/// note naming `how` to get it, but under CI (`CI=true`) the test fails:
/// a missing input must not pass as a green test there.
pub fn input_file(path: impl Into<PathBuf>, how: &str) -> Option<PathBuf> {
    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    input_file_or_skip(path.into(), how, under_ci)
}

fn input_file_or_skip(path: PathBuf, how: &str, under_ci: bool) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!("{} not found; {how}", path.display());
    assert!(
        !under_ci,
        "CI=true and this test's input is missing: {message}"
    );
    eprintln!("SKIPPED: {message}");
    None
}

#[cfg(test)]
mod input_file_tests {
    use super::*;

    #[test]
    fn a_missing_input_skips_locally_and_is_found_when_there() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(input_file_or_skip(here.clone(), "", true), Some(here));
        assert_eq!(
            input_file_or_skip("no/such.gguf".into(), "fetch it", false),
            None
        );
    }

    #[test]
    #[should_panic(
        expected = "CI=true and this test's input is missing: no/such.gguf not found; fetch it"
    )]
    fn a_missing_input_fails_under_ci() {
        input_file_or_skip("no/such.gguf".into(), "fetch it", true);
    }
}
