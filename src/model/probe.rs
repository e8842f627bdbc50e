//! `sweep model logprob` / `sweep model generate`: load any model PATH a user
//! has on disk (an HF directory, a GGUF file, or a checkpoint of ours) with
//! its tokenizer, and look at what it computes.
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{D, DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::checkpoint::{CHECKPOINT_FORMAT, load_checkpoint_in, load_hf_dir_in};
use super::gguf::{GgufFile, load_hf_tensors};
use super::precision::Precision;
use super::sample::{SamplingConfig, generate};
use super::{LanguageModel, PadSide, Policy, SeqBatch};
use crate::data::Tokenizer;
use crate::data::gguf_tokenizer::tokenizer_from_gguf;
use crate::data::hf_tokenizer::HfTokenizer;

/// How many next-token candidates a [`LogprobReport`] lists.
pub const TOP_K: usize = 10;

/// What kind of thing a model PATH is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelSource {
    /// A `*.gguf` file (llama.cpp).
    Gguf,
    /// A directory with `config.json` whose `format` is ours.
    Checkpoint,
    /// A Hugging Face directory: config.json, *.safetensors, tokenizer.json.
    HfDir,
}

impl ModelSource {
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_file() {
            if path.extension().is_some_and(|e| e == "gguf") {
                return Ok(Self::Gguf);
            }
            bail!(
                "model path {} is a file but not a .gguf; give a GGUF file, an HF model directory or a checkpoint directory",
                path.display()
            );
        }
        let config = path.join("config.json");
        let text = std::fs::read_to_string(&config).with_context(|| {
            format!(
                "model path {}: cannot read {} (expected a GGUF file or a model directory with config.json)",
                path.display(),
                config.display()
            )
        })?;
        let ours = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("format")?.as_str().map(|f| f == CHECKPOINT_FORMAT))
            .unwrap_or(false);
        Ok(if ours { Self::Checkpoint } else { Self::HfDir })
    }
}

/// A policy (LM head) and the tokenizer that goes with it.
pub struct LoadedLm {
    pub source: ModelSource,
    pub policy: Policy,
    pub tokenizer: Box<dyn Tokenizer>,
}

/// Loads the LM at `path` with its tokenizer (`tokenizer.json` for
/// directories, the GGUF metadata for GGUF files), with f32 parameters in
/// the device's default precision (see [`Precision::for_device`]).
pub fn load_lm(path: &Path, device: &Device) -> Result<LoadedLm> {
    load_lm_in(path, device, Precision::for_device(device, DType::F32))
}

/// [`load_lm`] in `precision`.
pub fn load_lm_in(path: &Path, device: &Device, precision: Precision) -> Result<LoadedLm> {
    let source = ModelSource::detect(path)?;
    let (policy, tokenizer) = match source {
        ModelSource::Gguf => {
            let gguf = GgufFile::open(path)?;
            let config = gguf.decoder_config()?;
            let tensors = load_hf_tensors(&gguf, &config, device)?;
            let vb = VarBuilder::from_tensors(tensors, precision.master, device);
            let policy = Policy::from_varbuilder_in(&config, vb, None, precision)
                .with_context(|| format!("building the decoder of {}", path.display()))?;
            let tokenizer: Box<dyn Tokenizer> = Box::new(tokenizer_from_gguf(&gguf)?);
            (policy, tokenizer)
        }
        ModelSource::HfDir | ModelSource::Checkpoint => {
            let loaded = match source {
                ModelSource::HfDir => load_hf_dir_in(path, precision, device)?,
                _ => load_checkpoint_in(path, device, Some(precision))?,
            };
            let policy = loaded
                .into_policy()
                .with_context(|| format!("model path {}", path.display()))?;
            let file: PathBuf = path.join("tokenizer.json");
            let cfg = policy.config();
            // A checkpoint of a tiny synthetic-world model has no
            // tokenizer.json: it speaks the world's word vocabulary.
            let tokenizer: Box<dyn Tokenizer> =
                if source == ModelSource::Checkpoint && !file.exists() {
                    Box::new(crate::data::synthetic::tokenizer())
                } else {
                    Box::new(HfTokenizer::from_file(&file, cfg.eos_id, cfg.pad_id)?)
                };
            (policy, tokenizer)
        }
    };
    Ok(LoadedLm {
        source,
        policy,
        tokenizer,
    })
}

/// One candidate next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextToken {
    pub id: u32,
    /// The vocabulary form (byte-level BPE shows a leading space as `Ġ`).
    pub token: String,
    pub logit: f32,
    pub logprob: f32,
}

/// `sweep model logprob`: how likely the model finds a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogprobReport {
    pub model: PathBuf,
    pub source: ModelSource,
    /// Where and in what precision it was computed (`cpu`, `cuda:0`; `f32`, `bf16`).
    pub device: String,
    pub dtype: String,
    pub token_ids: Vec<u32>,
    /// Tokens whose log-prob is summed: all but the first.
    pub predicted_tokens: usize,
    /// Σ log p(t_i | t_<i) over i ≥ 1 (the first token has no context; no BOS is added).
    pub sum_logprob: f32,
    /// `sum_logprob` / (number of tokens − 1).
    pub mean_logprob: f32,
    /// The most likely tokens after the whole text, best first.
    pub top_next: Vec<NextToken>,
}

impl LoadedLm {
    /// Log-probs of `text`'s tokens and the top next tokens after it.
    pub fn logprob(&self, text: &str) -> Result<(Vec<u32>, f32, f32, Vec<NextToken>)> {
        let ids = self.tokenizer.encode(text)?;
        if ids.len() < 2 {
            bail!(
                "text {text:?} has {} token(s); need at least 2 to score",
                ids.len()
            );
        }
        let batch = self.batch_of(&ids)?;
        let lp = self.policy.response_logprobs(&batch)?;
        let sum = lp.sum.to_vec1::<f32>()?[0];
        let mean = lp.mean()?.to_vec1::<f32>()?[0];
        let (logits, logprobs) = self.next_token(&batch, ids.len())?;
        if !sum.is_finite() || logits.iter().any(|v| !v.is_finite()) {
            bail!("model produced a non-finite log-prob for {text:?}");
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        // Best first; ties by lower id (stable sort keeps id order).
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let top = order
            .into_iter()
            .take(TOP_K)
            .map(|i| NextToken {
                id: i as u32,
                token: self.tokenizer.id_to_token(i as u32).unwrap_or_default(),
                logit: logits[i],
                logprob: logprobs[i],
            })
            .collect();
        Ok((ids, sum, mean, top))
    }
}

impl LoadedLm {
    fn batch_of(&self, ids: &[u32]) -> Result<SeqBatch> {
        let device = self.policy.backbone().device().clone();
        Ok(SeqBatch::from_sequences(
            &[(ids.to_vec(), 1)],
            self.tokenizer.pad_id(),
            PadSide::Right,
            &device,
        )?)
    }

    /// Logits and log-probs `[V]` of the token after the first `len` of `batch`'s one sequence.
    fn next_token(&self, batch: &SeqBatch, len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let last = self
            .policy
            .logits(batch)?
            .narrow(1, len - 1, 1)?
            .flatten_all()?; // [V]
        let logprobs = candle_nn::ops::log_softmax(&last, D::Minus1)?.to_vec1::<f32>()?;
        Ok((last.to_vec1::<f32>()?, logprobs))
    }

    /// log p(next token | `ids`) over the vocabulary, `[V]` (one forward pass).
    pub fn next_token_logprobs(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            bail!("no tokens to predict the next one from");
        }
        let (_, logprobs) = self.next_token(&self.batch_of(ids)?, ids.len())?;
        if logprobs.iter().any(|v| !v.is_finite()) {
            bail!("model produced a non-finite next-token log-prob");
        }
        Ok(logprobs)
    }
}

/// `sweep model logprob --model PATH --text TEXT [--device D]`.
pub fn model_logprob(path: &Path, text: &str, device: &Device) -> Result<LogprobReport> {
    let precision = Precision::for_device(device, DType::F32);
    let mut reports = model_logprobs(path, &[text], device, precision)?;
    Ok(reports.remove(0))
}

/// `sweep model logprob --model PATH --text T [--text T ...] --device D --dtype P`:
/// one report per text, from one load of the model.
pub fn model_logprobs(
    path: &Path,
    texts: &[&str],
    device: &Device,
    precision: Precision,
) -> Result<Vec<LogprobReport>> {
    let lm = load_lm_in(path, device, precision)?;
    let device_name = crate::device::DeviceSpec::of(device).to_string();
    texts
        .iter()
        .map(|text| {
            let (token_ids, sum_logprob, mean_logprob, top_next) = lm.logprob(text)?;
            Ok(LogprobReport {
                model: path.to_path_buf(),
                source: lm.source,
                device: device_name.clone(),
                dtype: precision.to_string(),
                predicted_tokens: token_ids.len() - 1,
                token_ids,
                sum_logprob,
                mean_logprob,
                top_next,
            })
        })
        .collect()
}

/// `sweep model generate --model PATH --prompt TEXT [--device D]`: the prompt's
/// continuation (EOS not included). The model's BOS, if it has one, is not
/// added: SmolLM2-Instruct's BOS is `<|im_start|>`, which a chat prompt
/// already spells out.
pub fn model_generate(
    path: &Path,
    prompt: &str,
    sampling: &SamplingConfig,
    device: &Device,
) -> Result<String> {
    let lm = load_lm(path, device)?;
    let ids = lm.tokenizer.encode_prompt(prompt)?;
    if ids.is_empty() {
        bail!("prompt is empty after tokenisation; give at least one token");
    }
    let new = generate(&lm.policy, &[ids], sampling)?;
    lm.tokenizer.decode(&new[0])
}

impl fmt::Display for LogprobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model {} ({:?}) on {} in {}",
            self.model.display(),
            self.source,
            self.device,
            self.dtype
        )?;
        writeln!(
            f,
            "token ids ({}): {:?}",
            self.token_ids.len(),
            self.token_ids
        )?;
        writeln!(
            f,
            "log-prob: sum {:.4}, mean {:.4} per token",
            self.sum_logprob, self.mean_logprob
        )?;
        writeln!(f, "top {} next tokens:", self.top_next.len())?;
        for t in &self.top_next {
            writeln!(
                f,
                "  {:>6}  {:<20} logit {:>8.3}  log-prob {:>8.3}",
                t.id,
                format!("{:?}", t.token),
                t.logit,
                t.logprob
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DecoderConfig;
    use crate::testing::tiny_llama;

    /// A checkpoint of a tiny synthetic-world model (what `pretrain`, `sft`
    /// and `align` write) has no tokenizer.json: `load_lm` gives it the
    /// world's word tokenizer, so `sweep model logprob/generate` work on it.
    #[test]
    fn a_synthetic_checkpoint_loads_with_the_word_tokenizer() {
        let words = crate::data::synthetic::tokenizer();
        let config = DecoderConfig {
            vocab_size: words.vocab_size(),
            bos_id: None,
            eos_id: words.eos_id(),
            pad_id: words.pad_id(),
            ..tiny_llama()
        };
        let dir = tempfile::tempdir().unwrap();
        Policy::new_random(&config, None, 7, &Device::Cpu)
            .unwrap()
            .save(dir.path())
            .unwrap();
        let lm = load_lm(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(lm.source, ModelSource::Checkpoint);
        let (ids, sum, _, top) = lm.logprob("what is 3 plus 5 ?").unwrap();
        assert_eq!(ids, words.encode("what is 3 plus 5 ?").unwrap());
        assert!(sum.is_finite() && sum < 0.0);
        // Every top token is named by the world's vocabulary.
        for next in &top {
            assert_eq!(Some(next.token.clone()), words.id_to_token(next.id));
        }
    }
}
