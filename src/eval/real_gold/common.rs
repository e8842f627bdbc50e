//! Helpers every gold RM loader shares: reading an HF model dir's
//! `config.json`, `tokenizer.json` and weights, and batching by length.
use std::path::Path;

use anyhow::{Context, anyhow, ensure};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::Init;
use candle_nn::var_builder::SimpleBackend;
use serde_json::Value as Json;

use crate::model::checkpoint::hf_weight_files;

pub(super) const CONFIG_FILE: &str = "config.json";
pub(super) const TOKENIZER_FILE: &str = "tokenizer.json";
pub(super) const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub(super) const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
pub(super) const PYTORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";

pub(super) fn read_json(path: &Path, what_to_do: &str) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read it ({what_to_do})", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// `config.json`, after checking its `model_type` is `expected`.
pub(super) fn read_config(dir: &Path, expected: &str, family: &str) -> anyhow::Result<Json> {
    let path = dir.join(CONFIG_FILE);
    let config = read_json(
        &path,
        "an HF model dir needs the config.json the model ships",
    )?;
    let model_type = config
        .get("model_type")
        .and_then(Json::as_str)
        .with_context(|| format!("{}: missing string key `model_type`", path.display()))?;
    ensure!(
        model_type == expected,
        "{}: model_type `{model_type}` is not a {family} (expected `{expected}`): is this the \
         right model dir?",
        path.display()
    );
    Ok(config)
}

/// A candle-transformers config struct parsed from `config.json`.
pub(super) fn parse_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    config: &Json,
) -> anyhow::Result<T> {
    serde_json::from_value(config.clone()).with_context(|| {
        format!(
            "{}: does not have the fields candle-transformers needs",
            dir.join(CONFIG_FILE).display()
        )
    })
}

/// `tokenizer.json` with padding and truncation off: we pad ourselves and
/// truncate where each model's layout says.
pub(super) fn load_tokenizer(dir: &Path) -> anyhow::Result<tokenizers::Tokenizer> {
    let path = dir.join(TOKENIZER_FILE);
    let mut tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(|e| {
        anyhow!(
            "{}: cannot read the tokenizer ({e}); if the model ships only a slow tokenizer, \
             write tokenizer.json with `AutoTokenizer.from_pretrained(dir).save_pretrained(dir)`",
            path.display()
        )
    })?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

pub(super) fn encode<'s>(
    tokenizer: &tokenizers::Tokenizer,
    input: impl Into<tokenizers::EncodeInput<'s>>,
    add_special_tokens: bool,
) -> anyhow::Result<tokenizers::Encoding> {
    tokenizer
        .encode(input, add_special_tokens)
        .map_err(|e| anyhow!("tokenizer failed: {e}"))
}

pub(super) fn check_lengths(prompts: &[String], responses: &[String]) -> anyhow::Result<()> {
    ensure!(
        prompts.len() == responses.len(),
        "gold scorer got {} prompts but {} responses",
        prompts.len(),
        responses.len()
    );
    Ok(())
}

/// Indices of `lens` in batches of at most `batch`, shortest first, so that
/// each batch pads little.
pub(super) fn length_sorted_batches(lens: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// Where a [`MappedTensors`] takes the tensor the model asks for by name.
pub(super) enum TensorSource<'n> {
    /// This tensor of the checkpoint: the name asked, or another.
    Named(std::borrow::Cow<'n, str>),
    /// Zeros of the asked shape: no checkpoint holds the tensor.
    Zeros,
}

/// A checkpoint whose names are not all the ones the model asks for:
/// `source` says, for each name asked, where its tensor comes from (it may
/// ask `inner` what it holds). One backend for every such gap, so each
/// model states only its rule.
pub(super) struct MappedTensors {
    pub inner: Box<dyn SimpleBackend>,
    pub source: for<'n> fn(&dyn SimpleBackend, &'n str) -> TensorSource<'n>,
}

impl SimpleBackend for MappedTensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match (self.source)(self.inner.as_ref(), name) {
            TensorSource::Named(name) => self.inner.get(s, &name, h, dtype, dev),
            TensorSource::Zeros => Tensor::zeros(s, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match (self.source)(self.inner.as_ref(), name) {
            TensorSource::Named(name) => self.inner.get_unchecked(&name, dtype, dev),
            // No shape to make zeros of: the checkpoint's own answer.
            TensorSource::Zeros => self.inner.get_unchecked(name, dtype, dev),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match (self.source)(self.inner.as_ref(), name) {
            TensorSource::Named(name) => self.inner.contains_tensor(&name),
            TensorSource::Zeros => true,
        }
    }
}

/// A weights backend for a model dir: safetensors (single or sharded) or,
/// when only `pytorch_model.bin` is there, candle's reader of PyTorch zip
/// pickles (the OpenAssistant and SteamSHP repos ship that format).
/// `auto_class` is the transformers class that can convert the weights.
pub(super) fn weights_backend(
    dir: &Path,
    auto_class: &str,
) -> anyhow::Result<Box<dyn SimpleBackend>> {
    match hf_weight_files(dir) {
        Ok(files) => {
            // SAFETY: the files are memory-mapped read-only; they must not be
            // modified while the scorer lives.
            let tensors = unsafe { MmapedSafetensors::multi(&files) }
                .with_context(|| format!("reading weights {files:?}"))?;
            Ok(Box::new(tensors))
        }
        Err(err) => {
            let bin = dir.join(PYTORCH_WEIGHTS_FILE);
            if !bin.is_file() {
                return Err(err.context(format!(
                    "{} has no weights (nor {PYTORCH_WEIGHTS_FILE})",
                    dir.display()
                )));
            }
            let tensors = candle_core::pickle::PthTensors::new(&bin, None).with_context(|| {
                format!(
                    "{}: cannot read this PyTorch checkpoint; convert it to model.safetensors \
                     (`{auto_class}.from_pretrained(dir).save_pretrained(dir, \
                     safe_serialization=True)`)",
                    bin.display()
                )
            })?;
            Ok(Box::new(tensors))
        }
    }
}
