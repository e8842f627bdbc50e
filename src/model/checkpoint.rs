//! Saving and loading models.
//!
//! Our checkpoints: a directory with `model.safetensors` (every parameter by
//! HF name, LoRA adapters unmerged) and `config.json` ([`CheckpointConfig`]:
//! decoder config, LoRA config, model kind). Loading gives back a model whose
//! tensors are bit-identical to the saved ones.
//!
//! HF model directories ([`load_hf_dir`]): `config.json` (see
//! [`super::hf_config`]) and `model.safetensors` or a sharded
//! `model.safetensors.index.json`; weights in bf16/f16/f32 are converted to the
//! requested compute dtype. A `score.weight` tensor makes it a reward model.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::backbone::Backbone;
use super::config::DecoderConfig;
use super::hf_config::read_hf_config;
use super::lora::LoraConfig;
use super::reward::SCORE_HEAD;
use super::{Policy, RewardModel};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const CONFIG_FILE: &str = "config.json";
/// Value of `format` in our config.json (tells it apart from an HF config).
pub const CHECKPOINT_FORMAT: &str = "cwpo-checkpoint-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Policy,
    Reward,
}

/// Our `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub format: String,
    pub kind: ModelKind,
    pub decoder: DecoderConfig,
    pub lora: Option<LoraConfig>,
}

/// A model read from disk: which kind depends on the files.
#[derive(Debug)]
pub enum LoadedModel {
    Policy(Policy),
    Reward(RewardModel),
}

impl LoadedModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            LoadedModel::Policy(_) => ModelKind::Policy,
            LoadedModel::Reward(_) => ModelKind::Reward,
        }
    }

    /// The policy, or an error naming `what` was expected.
    pub fn into_policy(self) -> anyhow::Result<Policy> {
        match self {
            LoadedModel::Policy(p) => Ok(p),
            LoadedModel::Reward(_) => {
                bail!("expected a policy (LM head), found a reward model (score head)")
            }
        }
    }

    pub fn into_reward(self) -> anyhow::Result<RewardModel> {
        match self {
            LoadedModel::Reward(r) => Ok(r),
            LoadedModel::Policy(_) => {
                bail!("expected a reward model (score.weight), found a policy")
            }
        }
    }
}

fn save(dir: &Path, kind: ModelKind, backbone: &Backbone) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = CheckpointConfig {
        format: CHECKPOINT_FORMAT.to_string(),
        kind,
        decoder: backbone.config().clone(),
        lora: backbone.lora_config().cloned(),
    };
    let config_path = dir.join(CONFIG_FILE);
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&backbone.params().tensors(), &weights_path)
        .with_context(|| format!("writing {}", weights_path.display()))
}

impl Policy {
    /// Writes `dir/model.safetensors` and `dir/config.json`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        save(dir, ModelKind::Policy, self.backbone())
    }
}

impl RewardModel {
    /// Writes `dir/model.safetensors` and `dir/config.json`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        save(dir, ModelKind::Reward, self.backbone())
    }
}

/// The `config.json` of a checkpoint written by `Policy::save` /
/// `RewardModel::save` (format checked), without loading its weights.
pub fn read_checkpoint_config(dir: &Path) -> anyhow::Result<CheckpointConfig> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "reading {} (is {} a checkpoint dir?)",
            config_path.display(),
            dir.display()
        )
    })?;
    let config: CheckpointConfig = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing {} (for an HF model dir use load_hf_dir)",
            config_path.display()
        )
    })?;
    ensure!(
        config.format == CHECKPOINT_FORMAT,
        "{}: format `{}`, this build reads `{CHECKPOINT_FORMAT}`",
        config_path.display(),
        config.format
    );
    Ok(config)
}

/// Loads a checkpoint written by `Policy::save` / `RewardModel::save`, in
/// the dtype it was saved in.
pub fn load_checkpoint(dir: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let config = read_checkpoint_config(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&weights_path, device)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let dtype = tensors
        .values()
        .next()
        .with_context(|| format!("{} holds no tensors", weights_path.display()))?
        .dtype();
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let context = || format!("loading {}", weights_path.display());
    let lora = config.lora.as_ref();
    Ok(match config.kind {
        ModelKind::Policy => LoadedModel::Policy(
            Policy::from_varbuilder(&config.decoder, vb, lora).with_context(context)?,
        ),
        ModelKind::Reward => LoadedModel::Reward(
            RewardModel::from_varbuilder(&config.decoder, vb, lora).with_context(context)?,
        ),
    })
}

/// The safetensors files of an HF dir: `model.safetensors`, or the shards
/// listed in `model.safetensors.index.json`.
pub fn hf_weight_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    let text = std::fs::read_to_string(&index_path).with_context(|| {
        format!(
            "{} has neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE}: download the model's \
             safetensors weights into it",
            dir.display()
        )
    })?;
    let index: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", index_path.display()))?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: missing object `weight_map`", index_path.display()))?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    ensure!(
        !files.is_empty(),
        "{}: `weight_map` lists no files",
        index_path.display()
    );
    files
        .into_iter()
        .map(|f| {
            let path = dir.join(f);
            ensure!(
                path.is_file(),
                "{} lists shard {}, which is missing",
                index_path.display(),
                path.display()
            );
            Ok(path)
        })
        .collect()
}

/// Loads an HF model dir, converting weights to `dtype` on `device`.
pub fn load_hf_dir(dir: &Path, dtype: DType, device: &Device) -> anyhow::Result<LoadedModel> {
    let cfg = read_hf_config(dir)?;
    let files = hf_weight_files(dir)?;
    let context = || format!("loading weights of {} from {files:?}", dir.display());
    // SAFETY: the files are memory-mapped read-only; they must not be modified while loading.
    let tensors = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }
        .with_context(context)?;
    let has_score = tensors.get(SCORE_HEAD).is_ok();
    let vb = VarBuilder::from_backend(Box::new(tensors), dtype, device.clone());
    Ok(match has_score {
        false => {
            LoadedModel::Policy(Policy::from_varbuilder(&cfg, vb, None).with_context(context)?)
        }
        true => {
            LoadedModel::Reward(RewardModel::from_varbuilder(&cfg, vb, None).with_context(context)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LanguageModel, PadSide, ScalarScorer, SeqBatch};
    use crate::testing::{hf_config_json, tiny_opt, tiny_qwen3};
    use std::collections::HashMap;

    fn assert_bit_identical(a: &Backbone, b: &Backbone) -> anyhow::Result<()> {
        let (ta, tb) = (a.params().tensors(), b.params().tensors());
        assert_eq!(
            ta.keys().collect::<BTreeSet<_>>(),
            tb.keys().collect::<BTreeSet<_>>()
        );
        for (name, t) in &ta {
            let (x, y) = (
                t.flatten_all()?.to_vec1::<f32>()?,
                tb[name].flatten_all()?.to_vec1::<f32>()?,
            );
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name} differs"
            );
        }
        assert_eq!(a.config(), b.config());
        assert_eq!(a.lora_config(), b.lora_config());
        for (name, _) in a.params().iter() {
            assert_eq!(
                a.params().is_trainable(name),
                b.params().is_trainable(name),
                "{name}"
            );
        }
        Ok(())
    }

    fn batch(dev: &Device) -> anyhow::Result<SeqBatch> {
        let rows: Vec<(&[u32], &[u32])> = vec![(&[1, 4, 5], &[6, 7, 2]), (&[1, 9], &[3, 2])];
        Ok(SeqBatch::from_prompt_response(
            &rows,
            0,
            PadSide::Right,
            32,
            dev,
        )?)
    }

    #[test]
    fn checkpoint_round_trip_is_bit_identical() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir()?;
        let lora = LoraConfig {
            rank: 2,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec!["v_proj".into()],
        };
        let policy = Policy::new_random(&tiny_qwen3(), Some(&lora), 1, &dev)?;
        // Non-zero B so the adapters matter.
        for v in policy.trainable_vars() {
            v.set(&(v.as_tensor() + 0.25)?)?;
        }
        policy.save(&dir.path().join("p"))?;
        let loaded = load_checkpoint(&dir.path().join("p"), &dev)?.into_policy()?;
        assert_bit_identical(policy.backbone(), loaded.backbone())?;
        let b = batch(&dev)?;
        let (x, y) = (
            policy.response_logprobs(&b)?.sum,
            loaded.response_logprobs(&b)?.sum,
        );
        assert_eq!(x.to_vec1::<f32>()?, y.to_vec1::<f32>()?);

        let rm = RewardModel::new_random(&tiny_opt(), None, 2, &dev)?;
        rm.save(&dir.path().join("r"))?;
        let loaded = load_checkpoint(&dir.path().join("r"), &dev)?;
        assert_eq!(loaded.kind(), ModelKind::Reward);
        let loaded = loaded.into_reward()?;
        assert_bit_identical(rm.backbone(), loaded.backbone())?;
        assert_eq!(
            rm.scores(&b)?.to_vec1::<f32>()?,
            loaded.scores(&b)?.to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn adapters_save_and_load_alone() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir()?;
        let lora = LoraConfig {
            rank: 3,
            alpha: 3.0,
            dropout: 0.0,
            targets: vec!["q_proj".into(), "up_proj".into()],
        };
        let trained = Policy::new_random(&tiny_qwen3(), Some(&lora), 5, &dev)?;
        for v in trained.trainable_vars() {
            v.set(&(v.as_tensor() - 0.5)?)?;
        }
        trained.backbone().save_adapters(dir.path())?;
        let saved = candle_core::safetensors::load(dir.path().join("adapters.safetensors"), &dev)?;
        assert!(
            saved.keys().all(|k| k.contains(".lora_")),
            "only adapters are saved"
        );
        assert_eq!(saved.len(), trained.trainable_vars().len());
        let fresh = Policy::new_random(&tiny_qwen3(), Some(&lora), 5, &dev)?;
        fresh.backbone().load_adapters(dir.path())?;
        assert_bit_identical(trained.backbone(), fresh.backbone())?;
        let other = LoraConfig { rank: 2, ..lora };
        let wrong = Policy::new_random(&tiny_qwen3(), Some(&other), 5, &dev)?;
        let err = format!(
            "{:#}",
            wrong.backbone().load_adapters(dir.path()).unwrap_err()
        );
        assert!(err.contains("different LoRA rank"), "{err}");
        Ok(())
    }

    /// An HF-layout dir (config.json with HF field names + safetensors under
    /// HF tensor names, bf16 on disk, sharded) loads into the same model.
    #[test]
    fn hf_dir_round_trip() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir()?;
        let cfg = tiny_qwen3();
        let policy = Policy::new_random(&cfg, None, 9, &dev)?;
        let mut hf_config = hf_config_json(&cfg, "ForCausalLM");
        hf_config["torch_dtype"] = "bfloat16".into();
        std::fs::write(dir.path().join("config.json"), hf_config.to_string())?;
        // Two bf16 shards and an index, as `save_pretrained` writes them.
        let tensors = policy.backbone().params().tensors();
        let mut shards = [HashMap::new(), HashMap::new()];
        let mut weight_map = serde_json::Map::new();
        for (i, (name, t)) in tensors.iter().enumerate() {
            shards[i % 2].insert(name.clone(), t.to_dtype(DType::BF16)?);
            weight_map.insert(
                name.clone(),
                format!("model-0000{}-of-00002.safetensors", i % 2 + 1).into(),
            );
        }
        for (i, shard) in shards.iter().enumerate() {
            candle_core::safetensors::save(
                shard,
                dir.path()
                    .join(format!("model-0000{}-of-00002.safetensors", i + 1)),
            )?;
        }
        std::fs::write(
            dir.path().join(WEIGHTS_INDEX_FILE),
            serde_json::json!({ "metadata": {}, "weight_map": weight_map }).to_string(),
        )?;
        let loaded = load_hf_dir(dir.path(), DType::F32, &dev)?.into_policy()?;
        assert_eq!(loaded.config(), &cfg);
        // Values equal the bf16-rounded originals.
        for (name, t) in &tensors {
            let expected = t
                .to_dtype(DType::BF16)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let got = loaded
                .backbone()
                .params()
                .get(name)
                .unwrap()
                .flatten_all()?
                .to_vec1::<f32>()?;
            assert_eq!(expected, got, "{name}");
        }
        // All trainable (no LoRA) and usable.
        assert_eq!(loaded.trainable_vars().len(), tensors.len());
        let lp = loaded
            .response_logprobs(&batch(&dev)?)?
            .sum
            .to_vec1::<f32>()?;
        assert!(lp.iter().all(|x| x.is_finite() && *x < 0.0));

        // A score.weight makes it a reward model.
        let rm = RewardModel::from_policy(&policy, None, 3)?;
        let mut rm_tensors = rm.backbone().params().tensors();
        rm_tensors.retain(|k, _| k != "lm_head.weight");
        std::fs::remove_file(dir.path().join(WEIGHTS_INDEX_FILE))?;
        candle_core::safetensors::save(&rm_tensors, dir.path().join(WEIGHTS_FILE))?;
        let loaded = load_hf_dir(dir.path(), DType::F32, &dev)?;
        assert_eq!(loaded.kind(), ModelKind::Reward);
        let b = batch(&dev)?;
        assert_eq!(
            loaded.into_reward()?.scores(&b)?.to_vec1::<f32>()?,
            rm.scores(&b)?.to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn missing_files_and_tensors_are_named() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let dir = tempfile::tempdir()?;
        let err = format!(
            "{:#}",
            load_hf_dir(dir.path(), DType::F32, &dev).unwrap_err()
        );
        assert!(err.contains("config.json"), "{err}");
        let hf = serde_json::json!({
            "model_type": "opt", "vocab_size": 37, "hidden_size": 16, "ffn_dim": 24,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
            "eos_token_id": 2, "pad_token_id": 1
        });
        std::fs::write(dir.path().join("config.json"), hf.to_string())?;
        let err = format!(
            "{:#}",
            load_hf_dir(dir.path(), DType::F32, &dev).unwrap_err()
        );
        assert!(
            err.contains(WEIGHTS_FILE) && err.contains(WEIGHTS_INDEX_FILE),
            "{err}"
        );
        // A weights file that lacks one layer's tensor.
        let policy = Policy::new_random(&tiny_opt(), None, 1, &dev)?;
        let mut tensors = policy.backbone().params().tensors();
        tensors.remove("model.decoder.layers.1.fc2.bias");
        candle_core::safetensors::save(&tensors, dir.path().join(WEIGHTS_FILE))?;
        let err = format!(
            "{:#}",
            load_hf_dir(dir.path(), DType::F32, &dev).unwrap_err()
        );
        assert!(err.contains("model.decoder.layers.1.fc2.bias"), "{err}");
        Ok(())
    }
}
