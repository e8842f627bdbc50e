//! The models a stage trains or reads: tokenizers of a profile slot's model,
//! pair tokenisation, loading a base policy or one of our checkpoints,
//! LoRA as the paper configures it, and saving a model with its tokenizer.
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::Device;

use super::StageContext;
use super::artifacts::MODEL_DIR;
use crate::data::{PreferencePair, Tokenizer};
use crate::model::lora::LORA_TARGETS;
use crate::model::{Arch, DecoderConfig, LoadedModel, LoraConfig, Policy, load_checkpoint};
use crate::spec::{DEFAULT_LORA_DROPOUT, ModelSpec, TinyModelSpec, TrainSettings};
use crate::train::{TokenizedExample, TokenizedPair};

/// The tokenizer of the model a slot binds: the synthetic world's word-level
/// tokenizer for tiny models, `tokenizer.json` for HF checkpoints, the
/// metadata of a GGUF file.
pub fn tokenizer_for(spec: &ModelSpec) -> Result<Box<dyn Tokenizer>> {
    match spec {
        ModelSpec::Tiny(_) => Ok(Box::new(crate::data::synthetic::tokenizer())),
        ModelSpec::Hf { path } if is_gguf(path) => Ok(Box::new(gguf_tokenizer(path)?)),
        ModelSpec::Hf { path } => {
            let cfg = crate::model::hf_config::read_hf_config(path)?;
            Ok(Box::new(crate::data::hf_tokenizer::HfTokenizer::from_file(
                &path.join("tokenizer.json"),
                cfg.eos_id,
                cfg.pad_id,
            )?))
        }
    }
}

/// A slot's `path` may be a GGUF file (llama.cpp's single-file format, as
/// SmolLM2-135M-Instruct ships in `scripts/fetch-smollm2.sh`) instead of an HF
/// dir: its weights are dequantised to f32 and its tokenizer rebuilt from the
/// metadata ([`crate::model::probe::load_lm`]).
fn is_gguf(path: &Path) -> bool {
    matches!(
        crate::model::probe::ModelSource::detect(path),
        Ok(crate::model::probe::ModelSource::Gguf)
    )
}

fn gguf_tokenizer(path: &Path) -> Result<crate::data::hf_tokenizer::HfTokenizer> {
    crate::data::gguf_tokenizer::tokenizer_from_gguf(&crate::model::gguf::GgufFile::open(path)?)
}

/// Prompt ids and response ids followed by EOS, so a model learns to stop.
pub struct PairTokenizer<'a> {
    pub tokenizer: &'a dyn Tokenizer,
}

impl PairTokenizer<'_> {
    pub fn response(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text)?;
        ids.push(self.tokenizer.eos_id());
        Ok(ids)
    }

    pub fn pair(&self, pair: &PreferencePair) -> Result<TokenizedPair> {
        Ok(TokenizedPair {
            prompt: self.tokenizer.encode_prompt(&pair.prompt)?,
            chosen: self.response(&pair.chosen)?,
            rejected: self.response(&pair.rejected)?,
        })
    }

    pub fn pairs(&self, pairs: &[PreferencePair]) -> Result<Vec<TokenizedPair>> {
        pairs.iter().map(|p| self.pair(p)).collect()
    }

    /// (prompt, chosen) examples for SFT.
    pub fn chosen_examples(&self, pairs: &[PreferencePair]) -> Result<Vec<TokenizedExample>> {
        pairs
            .iter()
            .map(|p| {
                Ok(TokenizedExample {
                    prompt: self.tokenizer.encode_prompt(&p.prompt)?,
                    response: self.response(&p.chosen)?,
                })
            })
            .collect()
    }
}

impl TinyModelSpec {
    /// The decoder a tiny spec describes, for a tokenizer's vocabulary.
    pub fn decoder_config(&self, tokenizer: &dyn Tokenizer) -> DecoderConfig {
        DecoderConfig {
            arch: self.arch,
            vocab_size: tokenizer.vocab_size(),
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_layers,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads.unwrap_or(self.num_heads),
            head_dim: self.hidden_size / self.num_heads,
            max_position: self.max_position,
            rope_theta: 10_000.0,
            rope_scaling: None,
            norm_eps: 1e-5,
            qkv_bias: self.arch == Arch::Opt,
            qk_norm: false,
            tie_embeddings: true,
            bos_id: None,
            eos_id: tokenizer.eos_id(),
            pad_id: tokenizer.pad_id(),
        }
    }
}

/// Longest sequence a model of `spec` is trained on.
pub fn max_len(spec: &ModelSpec, policy: &Policy) -> usize {
    match spec {
        ModelSpec::Tiny(t) => t.max_position,
        ModelSpec::Hf { .. } => policy.config().max_position.min(2048),
    }
}

/// The starting policy of a training stage: the `base` input (a `pretrain`
/// artifact) for tiny models, the checkpoint dir for HF ones.
pub fn load_base_policy(ctx: &StageContext, spec: &ModelSpec) -> Result<Policy> {
    match spec {
        ModelSpec::Tiny(_) => load_policy(&ctx.input("base")?.join(MODEL_DIR), ctx.device),
        ModelSpec::Hf { path } if is_gguf(path) => {
            Ok(crate::model::probe::load_lm(path, ctx.device)?.policy)
        }
        ModelSpec::Hf { path } => {
            crate::model::load_hf_dir(path, candle_core::DType::F32, ctx.device)?.into_policy()
        }
    }
}

/// A policy checkpoint written by one of our stages.
pub fn load_policy(dir: &Path, device: &Device) -> Result<Policy> {
    match load_checkpoint(dir, device)? {
        LoadedModel::Policy(p) => Ok(p),
        LoadedModel::Reward(_) => bail!("{} holds a reward model, not a policy", dir.display()),
    }
}

/// LoRA when the training block asks for a rank, with the block's α,
/// dropout and target projections; unset, they are the paper's (α = 2r,
/// dropout 0.05) on every projection.
pub fn lora_of(train: &TrainSettings) -> Option<LoraConfig> {
    train.lora_rank.map(|rank| LoraConfig {
        rank,
        alpha: train.lora_alpha.unwrap_or(2.0 * rank as f64),
        dropout: train.lora_dropout.unwrap_or(DEFAULT_LORA_DROPOUT),
        targets: match &train.lora_targets {
            Some(targets) => targets.clone(),
            None => LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
        },
    })
}

/// The policy a training stage updates: a copy of `base`, with fresh LoRA
/// adapters when asked for.
pub fn trainable_copy(base: &Policy, train: &TrainSettings, seed: u64) -> Result<Policy> {
    let policy = match lora_of(train) {
        Some(lora) => base.with_lora(&lora, seed)?,
        None => base.deep_clone()?,
    };
    // LoRA dropout is on while training; checkpoints load in eval mode.
    policy.backbone().set_training(true);
    Ok(policy)
}

/// The tokenizer of a checkpoint one of our stages wrote: HF-based models
/// carry their `tokenizer.json`; tiny ones speak the synthetic world's words.
pub fn tokenizer_of_checkpoint(dir: &Path) -> Result<Box<dyn Tokenizer>> {
    let hf = dir.join("tokenizer.json");
    if hf.exists() {
        // EOS / pad from our checkpoint's config.json: it is not an HF config
        // (no `model_type`), so `tokenizer_for` cannot read it.
        let cfg = crate::model::checkpoint::read_checkpoint_config(dir)?.decoder;
        return Ok(Box::new(crate::data::hf_tokenizer::HfTokenizer::from_file(
            &hf, cfg.eos_id, cfg.pad_id,
        )?));
    }
    Ok(Box::new(crate::data::synthetic::tokenizer()))
}

/// Saves `policy` as the stage's model and keeps the tokenizer with it: a
/// checkpoint of an HF model carries the `tokenizer.json` of `origin` (the HF
/// dir or the checkpoint it was trained from), so later stages read it back.
pub fn save_model(policy: &Policy, origin: Option<&Path>, out: &Path) -> Result<()> {
    let dir = out.join(MODEL_DIR);
    policy.save(&dir)?;
    keep_tokenizer(origin, &dir)
}

/// Copies `origin`'s tokenizer into checkpoint `dir` as `tokenizer.json`: the
/// file of an HF dir or checkpoint, the one rebuilt from a GGUF file's
/// metadata (without it, [`tokenizer_of_checkpoint`] would read the
/// checkpoint as a synthetic-world model).
pub fn keep_tokenizer(origin: Option<&Path>, dir: &Path) -> Result<()> {
    if let Some(origin) = origin.filter(|o| is_gguf(o)) {
        let file = dir.join("tokenizer.json");
        return gguf_tokenizer(origin)?
            .inner()
            .save(&file, false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()));
    }
    if let Some(origin) = origin {
        let tokenizer = origin.join("tokenizer.json");
        if tokenizer.exists() {
            std::fs::copy(&tokenizer, dir.join("tokenizer.json"))
                .with_context(|| format!("copying {}", tokenizer.display()))?;
        }
    }
    Ok(())
}

/// Where an HF model spec's files live (its tokenizer travels with checkpoints).
pub fn origin_of(spec: &ModelSpec) -> Option<&Path> {
    match spec {
        ModelSpec::Hf { path } => Some(path),
        ModelSpec::Tiny(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tiny_llama, word_tokenizer, write_hf_policy_dir};
    use tokenizers::processors::template::TemplateProcessing;

    /// A stage's checkpoint of an HF model (our config.json, the HF dir's
    /// tokenizer.json copied beside it) reads back as that tokenizer with
    /// the model's EOS and pad ids.
    #[test]
    fn checkpoints_of_hf_models_keep_their_tokenizer() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let hf = tmp.path().join("hf");
        let cfg = DecoderConfig {
            eos_id: 3,
            pad_id: 2,
            ..tiny_llama()
        };
        let plain = TemplateProcessing::builder()
            .try_single("$A")
            .unwrap()
            .build()?;
        let words = word_tokenizer(
            &["<pad>", "<s>", "</s>", "<unk>"],
            &["a", "b"],
            "<unk>",
            plain,
        );
        let policy = write_hf_policy_dir(&hf, &cfg, 1, &words)?;
        save_model(&policy, Some(&hf), tmp.path())?;
        let tokenizer = tokenizer_of_checkpoint(&tmp.path().join(MODEL_DIR))?;
        assert_eq!((tokenizer.eos_id(), tokenizer.pad_id()), (3, 2));
        assert_eq!(tokenizer.encode("b a")?, [5, 4]);
        Ok(())
    }

    /// A block's `lora_targets` reach the adapters; unset, every projection.
    #[test]
    fn lora_targets_of_a_block_reach_the_adapters() {
        let block = |extra: &str| -> crate::spec::TrainBlock {
            toml::from_str(&format!("lora_rank = 4\n{extra}")).unwrap()
        };
        let lora = lora_of(&block("lora_targets = [\"q_proj\", \"v_proj\"]").train()).unwrap();
        assert_eq!(lora.targets, ["q_proj", "v_proj"]);
        let lora = lora_of(&block("").train()).unwrap();
        assert_eq!(lora.targets, LORA_TARGETS);
        // Unset, the new knobs stay out of a stage's params (its cache key).
        let json = serde_json::to_value(block("").train()).unwrap();
        assert!(json.get("lora_targets").is_none() && json.get("warmup_ratio").is_none());
    }
}
