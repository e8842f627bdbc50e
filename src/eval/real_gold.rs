//! The paper profile's gold reward models: the judges whose scores of the
//! aligned policies' test generations are the paper's "gold reward".
//!
//! | kind | checkpoint | datasets | architecture |
//! |---|---|---|---|
//! | [`RealGoldKind::SeqCls`] | Skywork-Reward-V2 (`*ForSequenceClassification`) | HH-RLHF, UltraFeedback | our decoder + score head |
//! | [`RealGoldKind::Deberta`] | OpenAssistant `reward-model-deberta-v3-large-v2` | TL;DR | candle-transformers DeBERTa-v2 |
//! | [`RealGoldKind::SteamShp`] | `stanfordnlp/SteamSHP-flan-t5-large` | SHP | candle-transformers T5 |
//!
//! Each loads from an HF model dir as downloaded (`config.json`, weights,
//! `tokenizer.json`, optionally `tokenizer_config.json`) and formats the
//! (prompt, response) the way the model was trained to read it: a gold RM
//! fed the wrong layout still returns numbers, just meaningless ones, so the
//! formatting is the part that matters and the part the tests pin down.
//!
//! All three compute in f32, on whatever device they are given: gold scores
//! are the experiment's ground truth and should not depend on the device's
//! preferred half-precision type. Every scorer batches at most
//! [`BATCH_SIZE`] items at a time, grouped by length to limit padding;
//! batching never changes a score beyond float rounding (the tests check it).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow, bail, ensure};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::{debertav2, t5};
use minijinja::value::{Value, ValueKind, from_args};
use minijinja::{Error as JinjaError, ErrorKind as JinjaErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::GoldScorer;
use crate::data::real::{hh_rlhf, shp};
use crate::model::checkpoint::hf_weight_files;
use crate::model::hf_config::read_hf_config;
use crate::model::reward::SCORE_HEAD;
use crate::model::{LoraConfig, RewardModel, ScalarScorer};
use crate::train::{Batching, TokenizedExample};

/// Items per forward pass. Scores do not depend on it.
pub const BATCH_SIZE: usize = 8;

/// Longest sequence the decoder RM scores, in tokens (see [`SeqClsGold`]'s
/// truncation). Skywork-Reward-V2 accepts far more, but HH-RLHF and
/// UltraFeedback prompt + generation fit well within this.
pub const SEQCLS_MAX_TOKENS: usize = 8192;

/// The SteamSHP input length when `config.json` has no `n_positions`: the
/// 512 tokens FLAN-T5 was trained on and the model card budgets for.
pub const STEAMSHP_DEFAULT_MAX_TOKENS: usize = 512;

/// The three gold RM families of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RealGoldKind {
    /// A decoder `*ForSequenceClassification` RM with a chat template
    /// (Skywork-Reward-V2): HH-RLHF and UltraFeedback.
    #[serde(rename = "reward_model")]
    SeqCls,
    /// OpenAssistant's DeBERTa-v3 reward model: TL;DR.
    #[serde(rename = "deberta_reward")]
    Deberta,
    /// SteamSHP (FLAN-T5 preference model) scoring one response: SHP.
    #[serde(rename = "steamshp")]
    SteamShp,
}

impl RealGoldKind {
    /// Every kind, in the order of [`Self::NAMES`].
    pub const ALL: [RealGoldKind; 3] = [Self::SeqCls, Self::Deberta, Self::SteamShp];
    /// The names a manifest uses (the serde names).
    pub const NAMES: [&'static str; 3] = ["reward_model", "deberta_reward", "steamshp"];

    pub fn name(self) -> &'static str {
        match self {
            Self::SeqCls => Self::NAMES[0],
            Self::Deberta => Self::NAMES[1],
            Self::SteamShp => Self::NAMES[2],
        }
    }

    /// The kind called `name`, or an error listing the names there are.
    pub fn from_name(name: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .with_context(|| {
                format!(
                    "unknown gold reward model kind `{name}`; the kinds are {}",
                    Self::NAMES.join(", ")
                )
            })
    }
}

impl std::fmt::Display for RealGoldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Loads the gold RM of `kind` from the HF model dir `dir`, to run on `device`.
pub fn load_real_gold(
    kind: RealGoldKind,
    dir: &Path,
    device: &Device,
) -> anyhow::Result<Box<dyn GoldScorer>> {
    ensure!(
        dir.is_dir(),
        "{}: no such directory: download the {kind} gold model's HF files (config.json, \
         weights, tokenizer.json) into it",
        dir.display()
    );
    let context = || {
        format!(
            "loading the {kind} gold reward model from {}",
            dir.display()
        )
    };
    Ok(match kind {
        RealGoldKind::SeqCls => Box::new(SeqClsGold::load(dir, device).with_context(context)?),
        RealGoldKind::Deberta => Box::new(DebertaGold::load(dir, device).with_context(context)?),
        RealGoldKind::SteamShp => Box::new(SteamShpGold::load(dir, device).with_context(context)?),
    })
}

// ---------------------------------------------------------------------------
// Shared helpers

const CONFIG_FILE: &str = "config.json";
const TOKENIZER_FILE: &str = "tokenizer.json";
const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
const PYTORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";

fn read_json(path: &Path, what_to_do: &str) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read it ({what_to_do})", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// `config.json`, after checking its `model_type` is `expected`.
fn read_config(dir: &Path, expected: &str, family: &str) -> anyhow::Result<Json> {
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
fn parse_config<T: serde::de::DeserializeOwned>(dir: &Path, config: &Json) -> anyhow::Result<T> {
    serde_json::from_value(config.clone()).with_context(|| {
        format!(
            "{}: does not have the fields candle-transformers needs",
            dir.join(CONFIG_FILE).display()
        )
    })
}

/// `tokenizer.json` with padding and truncation off: we pad ourselves and
/// truncate where each model's layout says.
fn load_tokenizer(dir: &Path) -> anyhow::Result<tokenizers::Tokenizer> {
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

fn encode<'s>(
    tokenizer: &tokenizers::Tokenizer,
    input: impl Into<tokenizers::EncodeInput<'s>>,
    add_special_tokens: bool,
) -> anyhow::Result<tokenizers::Encoding> {
    tokenizer
        .encode(input, add_special_tokens)
        .map_err(|e| anyhow!("tokenizer failed: {e}"))
}

fn check_lengths(prompts: &[String], responses: &[String]) -> anyhow::Result<()> {
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
fn length_sorted_batches(lens: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// A weights backend for a model dir: safetensors (single or sharded) or,
/// when only `pytorch_model.bin` is there, candle's reader of PyTorch zip
/// pickles (the OpenAssistant and SteamSHP repos ship that format).
/// `auto_class` is the transformers class that can convert the weights.
fn weights_backend(dir: &Path, auto_class: &str) -> anyhow::Result<Box<dyn SimpleBackend>> {
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

// ---------------------------------------------------------------------------
// SeqCls: a decoder reward model (Skywork-Reward-V2)

/// A decoder `*ForSequenceClassification` RM: the score head's scalar read at
/// the last token of the chat-formatted conversation.
///
/// Input: the dir's chat template (`tokenizer_config.json`'s `chat_template`,
/// or `chat_template.jinja`) rendered over [`conversation`]`(prompt, response)`
/// with `add_generation_prompt = false`, then tokenised with the tokenizer's
/// special tokens (its BOS), dropping a BOS the template already wrote — the
/// recipe of the Skywork-Reward model cards. Without a template, `prompt +
/// response` as plain text, tokenised the same way.
///
/// Truncation: a sequence longer than `min(max_position_embeddings,
/// SEQCLS_MAX_TOKENS)` keeps its leading BOS and its last tokens. The score
/// is read at the last token, which must be the response's end, so it is the
/// start of the conversation that goes.
pub struct SeqClsGold {
    model: RewardModel,
    tokenizer: tokenizers::Tokenizer,
    template: Option<ChatTemplate>,
    bos_id: Option<u32>,
    pad_id: u32,
    max_len: usize,
    device: Device,
}

impl SeqClsGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let model = load_frozen_reward(dir, device)?;
        let tokenizer = load_tokenizer(dir)?;
        let template = ChatTemplate::from_dir(dir)?;
        let cfg = model.config();
        let bos_id = template
            .as_ref()
            .and_then(|t| t.special_tokens.get("bos_token"))
            .and_then(|bos| tokenizer.token_to_id(bos))
            .or(cfg.bos_id);
        Ok(Self {
            pad_id: cfg.pad_id,
            max_len: cfg.max_position.min(SEQCLS_MAX_TOKENS),
            model,
            tokenizer,
            template,
            bos_id,
            device: device.clone(),
        })
    }

    /// The text the RM reads for one (prompt, response).
    pub fn format(&self, prompt: &str, response: &str) -> anyhow::Result<String> {
        match &self.template {
            Some(t) => t.render(&conversation(prompt, response)),
            None => Ok(format!("{prompt}{response}")),
        }
    }

    /// The token ids the RM reads for one (prompt, response).
    pub fn sequence_ids(&self, prompt: &str, response: &str) -> anyhow::Result<Vec<u32>> {
        let text = self.format(prompt, response)?;
        let mut ids = encode(&self.tokenizer, text.as_str(), true)?
            .get_ids()
            .to_vec();
        // A template that writes `{{ bos_token }}` and a tokenizer that adds BOS
        // would give two; the RM was trained on one.
        if let Some(bos) = self.bos_id
            && ids.len() >= 2
            && ids[0] == bos
            && ids[1] == bos
        {
            ids.remove(0);
        }
        Ok(keep_tail(ids, self.max_len, self.bos_id))
    }
}

/// `ids` cut to `max_len` by dropping tokens after a leading `bos`: the end,
/// where a reward model reads its score, survives.
fn keep_tail(ids: Vec<u32>, max_len: usize, bos: Option<u32>) -> Vec<u32> {
    if ids.len() <= max_len {
        return ids;
    }
    let head = usize::from(bos.is_some() && ids.first() == bos.as_ref());
    let tail = max_len.saturating_sub(head);
    ids[..head]
        .iter()
        .chain(&ids[ids.len() - tail..])
        .copied()
        .collect()
}

impl GoldScorer for SeqClsGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let examples: Vec<TokenizedExample> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| {
                Ok(TokenizedExample {
                    // The whole sequence as "prompt" and no response: the RM
                    // reads the last token, there is nothing to predict.
                    prompt: self.sequence_ids(p, r)?,
                    response: Vec::new(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let batching = Batching {
            pad_id: self.pad_id,
            max_len: self.max_len,
            device: self.device.clone(),
        };
        let lens: Vec<usize> = examples.iter().map(|e| e.prompt.len()).collect();
        let mut scores = vec![0f32; examples.len()];
        for batch in length_sorted_batches(&lens, BATCH_SIZE) {
            let rows: Vec<&TokenizedExample> = batch.iter().map(|&i| &examples[i]).collect();
            let values = self
                .model
                .scores(&batching.examples(&rows)?)?
                .to_vec1::<f32>()?; // [B]
            for (&i, v) in batch.iter().zip(values) {
                scores[i] = v;
            }
        }
        Ok(scores)
    }
}

/// The RM with every weight frozen.
///
/// [`crate::model::load_hf_dir`] builds a trainable model: its weights are
/// candle `Var`s, so each forward op records its inputs for backprop and
/// every activation of the pass stays alive until the scores are dropped —
/// tens of GB for an 8B model at batch 8. Built with a LoRA config, our
/// decoder holds detached weights instead; the adapters (rank 1 on `q_proj`)
/// are answered with zeros and merged away at once (W + 0 = W), leaving the
/// checkpoint's function with nothing recorded but the score head's matmul.
/// Config and weight files are read by the same functions `load_hf_dir` uses.
fn load_frozen_reward(dir: &Path, device: &Device) -> anyhow::Result<RewardModel> {
    let cfg = read_hf_config(dir)?;
    let files = hf_weight_files(dir)?;
    // SAFETY: the files are memory-mapped read-only; they must not be
    // modified while loading.
    let tensors = unsafe { MmapedSafetensors::multi(&files) }
        .with_context(|| format!("reading weights {files:?}"))?;
    ensure!(
        tensors.get(SCORE_HEAD).is_ok(),
        "{}: the weights {files:?} have no `{SCORE_HEAD}`: not a *ForSequenceClassification \
         reward model (a causal LM has lm_head.weight instead)",
        dir.display()
    );
    let vb = VarBuilder::from_backend(Box::new(ZeroAdapters(tensors)), DType::F32, device.clone());
    let freeze = LoraConfig {
        rank: 1,
        alpha: 1.0,
        dropout: 0.0,
        targets: vec!["q_proj".into()],
    };
    let mut model = RewardModel::from_varbuilder(&cfg, vb, Some(&freeze))
        .with_context(|| format!("loading weights of {} from {files:?}", dir.display()))?;
    model.backbone_mut().merge_lora()?;
    Ok(model)
}

/// Checkpoint tensors, plus zeros for LoRA adapter names (which no
/// checkpoint holds). Any other missing tensor stays an error.
struct ZeroAdapters(MmapedSafetensors);

fn is_adapter(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

impl SimpleBackend for ZeroAdapters {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if is_adapter(name) {
            return Tensor::zeros(s, dtype, dev);
        }
        SimpleBackend::get(&self.0, s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        SimpleBackend::get_unchecked(&self.0, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        is_adapter(name) || SimpleBackend::contains_tensor(&self.0, name)
    }
}

/// One chat message as HF chat templates read it (`message.role`,
/// `message['content']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

const HUMAN_MARKER: &str = "\n\nHuman:";

/// The conversation a chat RM judges: `prompt`'s turns, then `response` as
/// the final assistant turn.
///
/// An HH-RLHF transcript (`"\n\nHuman: …\n\nAssistant: …\n\nHuman: …\n\nAssistant:"`)
/// becomes alternating user/assistant messages; its trailing empty
/// `Assistant:` is the slot the response fills. Any other prompt
/// (UltraFeedback, TL;DR, SHP) is one user message. Contents are trimmed:
/// the transcript's spacing around the markers is layout, not content.
/// Consecutive turns of one role are merged, since many templates reject
/// two user turns in a row.
pub fn conversation(prompt: &str, response: &str) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    let mut push = |role: &'static str, content: &str| {
        let content = content.trim();
        match messages.last_mut() {
            Some(ChatMessage {
                role: last,
                content: text,
            }) if *last == role => {
                text.push_str("\n\n");
                text.push_str(content);
            }
            _ => messages.push(ChatMessage {
                role,
                content: content.to_string(),
            }),
        }
    };
    let stripped = prompt.trim_start();
    if stripped.starts_with(HUMAN_MARKER.trim_start()) && prompt.contains(hh_rlhf::ASSISTANT_MARKER)
    {
        let transcript = format!("\n\n{stripped}");
        let mut turns: Vec<(&'static str, &str)> = Vec::new();
        let mut rest = transcript.as_str();
        while !rest.is_empty() {
            let (role, marker) = if rest.starts_with(HUMAN_MARKER) {
                ("user", HUMAN_MARKER)
            } else {
                ("assistant", hh_rlhf::ASSISTANT_MARKER)
            };
            rest = &rest[marker.len()..];
            let end = [
                rest.find(HUMAN_MARKER),
                rest.find(hh_rlhf::ASSISTANT_MARKER),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
            turns.push((role, &rest[..end]));
            rest = &rest[end..];
        }
        if let Some(&("assistant", last)) = turns.last()
            && last.trim().is_empty()
        {
            turns.pop();
        }
        for (role, content) in turns {
            push(role, content);
        }
    } else {
        push("user", prompt);
    }
    push("assistant", response);
    messages
}

/// An HF chat template and the special-token strings it may refer to.
struct ChatTemplate {
    source: String,
    /// `bos_token`, `eos_token`, … as strings, from `tokenizer_config.json`.
    special_tokens: BTreeMap<String, String>,
    /// Where the template came from, for errors.
    origin: PathBuf,
}

impl ChatTemplate {
    /// The dir's chat template: `tokenizer_config.json`'s `chat_template` (a
    /// string, or the entry named `default` of a list), else
    /// `chat_template.jinja`; `None` when the dir has neither.
    fn from_dir(dir: &Path) -> anyhow::Result<Option<Self>> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config = match config_path.is_file() {
            true => read_json(&config_path, "the tokenizer's config")?,
            false => Json::Null,
        };
        let mut special_tokens = BTreeMap::new();
        for key in [
            "bos_token",
            "eos_token",
            "unk_token",
            "pad_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ] {
            // A token is a string or an AddedToken object `{"content": …}`.
            let token = match config.get(key) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(String::from),
                _ => None,
            };
            if let Some(token) = token {
                special_tokens.insert(key.to_string(), token);
            }
        }
        let (source, origin) = match config.get("chat_template") {
            Some(Json::String(s)) => (s.clone(), config_path),
            Some(Json::Array(templates)) => {
                let default = templates
                    .iter()
                    .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Json::as_str)
                    .with_context(|| {
                        format!(
                            "{}: `chat_template` is a list without an entry named `default`",
                            config_path.display()
                        )
                    })?;
                (default.to_string(), config_path)
            }
            Some(Json::Null) | None => {
                let file = dir.join(CHAT_TEMPLATE_FILE);
                if !file.is_file() {
                    return Ok(None);
                }
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}: cannot read it", file.display()))?;
                (source, file)
            }
            Some(other) => bail!(
                "{}: `chat_template` is neither a string nor a list: {other}",
                config_path.display()
            ),
        };
        let template = Self {
            source,
            special_tokens,
            origin,
        };
        // Fail at load, not on the first score, if the template does not parse.
        template
            .environment()
            .template_from_str(&template.source)
            .map_err(|e| {
                anyhow!(
                    "{}: the chat template does not parse: {e:#}",
                    template.origin.display()
                )
            })?;
        Ok(Some(template))
    }

    /// A Jinja environment that behaves like transformers' chat-template
    /// one: trimmed blocks, `raise_exception`, and the Python string methods
    /// templates call (`.strip()`, `.split()`, `.startswith()`, …).
    /// Deliberately absent: `strftime_now` (templates then fall back to a
    /// fixed date, so a score does not depend on the day it was computed)
    /// and `tojson` (only tool-calling branches use it; minijinja's would
    /// not match Python's separators byte for byte).
    fn environment(&self) -> minijinja::Environment<'_> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, JinjaError> {
                Err(JinjaError::new(JinjaErrorKind::InvalidOperation, message))
            },
        );
        env.set_unknown_method_callback(python_method);
        env
    }

    fn render(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
        let env = self.environment();
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| anyhow!("{}: {e:#}", self.origin.display()))?;
        let mut context: BTreeMap<&str, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
            .collect();
        context.insert("messages", Value::from_serialize(messages));
        context.insert("add_generation_prompt", Value::from(false));
        context.insert("tools", Value::from(()));
        context.insert("documents", Value::from(()));
        template.render(context).map_err(|e| {
            anyhow!(
                "{}: rendering the chat template failed: {e:#}",
                self.origin.display()
            )
        })
    }
}

/// The Python `str` / `dict` methods HF chat templates use, which
/// minijinja does not have: `strip`/`lstrip`/`rstrip`, `split`,
/// `startswith`/`endswith`, `replace`, `upper`/`lower`, and `items`,
/// `keys`, `values`, `get` on maps. Anything else stays an unknown-method
/// error, so an unsupported template fails loudly.
fn python_method(
    state: &minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, JinjaError> {
    if value.kind() == ValueKind::Map {
        return match method {
            "items" => {
                let () = from_args(args)?;
                state.apply_filter("items", std::slice::from_ref(value))
            }
            "keys" => {
                let () = from_args(args)?;
                Ok(Value::from(value.try_iter()?.collect::<Vec<_>>()))
            }
            "values" => {
                let () = from_args(args)?;
                let values = value
                    .try_iter()?
                    .map(|k| value.get_item(&k))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::from(values))
            }
            "get" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                let item = value.get_item(&key)?;
                Ok(match item.is_undefined() {
                    true => default.unwrap_or(Value::from(())),
                    false => item,
                })
            }
            _ => Err(JinjaError::from(JinjaErrorKind::UnknownMethod)),
        };
    }
    let Some(s) = value.as_str() else {
        return Err(JinjaError::from(JinjaErrorKind::UnknownMethod));
    };
    let strip = |chars: Option<&str>, left: bool, right: bool| -> String {
        let is_stripped = |c: char| match chars {
            Some(set) => set.contains(c),
            None => c.is_whitespace(),
        };
        let mut out = s;
        if left {
            out = out.trim_start_matches(is_stripped);
        }
        if right {
            out = out.trim_end_matches(is_stripped);
        }
        out.to_string()
    };
    Ok(match method {
        "strip" | "lstrip" | "rstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Value::from(strip(chars, method != "rstrip", method != "lstrip"))
        }
        "startswith" | "endswith" => {
            let (affix,): (&str,) = from_args(args)?;
            Value::from(match method {
                "startswith" => s.starts_with(affix),
                _ => s.ends_with(affix),
            })
        }
        "split" => {
            let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
            let parts: Vec<String> = match (sep, maxsplit) {
                (None, None | Some(-1)) => s.split_whitespace().map(String::from).collect(),
                (None, Some(_)) => {
                    return Err(JinjaError::new(
                        JinjaErrorKind::InvalidOperation,
                        "str.split(None, maxsplit) is not supported",
                    ));
                }
                (Some(sep), Some(n)) if n >= 0 => {
                    s.splitn(n as usize + 1, sep).map(String::from).collect()
                }
                (Some(sep), _) => s.split(sep).map(String::from).collect(),
            };
            Value::from(parts)
        }
        "replace" => {
            let (old, new): (&str, &str) = from_args(args)?;
            Value::from(s.replace(old, new))
        }
        "upper" | "lower" => {
            let () = from_args(args)?;
            Value::from(match method {
                "upper" => s.to_uppercase(),
                _ => s.to_lowercase(),
            })
        }
        _ => return Err(JinjaError::from(JinjaErrorKind::UnknownMethod)),
    })
}

// ---------------------------------------------------------------------------
// Deberta: OpenAssistant reward-model-deberta-v3-large-v2

/// OpenAssistant's DeBERTa-v3 RM: `logits[0]` of the tokenizer's pair
/// encoding `[CLS] prompt [SEP] response [SEP]`, as its model card calls it
/// (`tokenizer(question, answer)`).
///
/// Prompt and response are trimmed (a leading space would become a token of
/// its own in SentencePiece). A pair longer than `max_position_embeddings`
/// (512) is truncated longest-first from the right, as `truncation=True`
/// does in transformers: candle's DeBERTa cannot run longer inputs, and the
/// model never saw them.
pub struct DebertaGold {
    model: debertav2::DebertaV2SeqClassificationModel,
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    use_token_types: bool,
    device: Device,
}

impl DebertaGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let config = read_config(dir, "deberta-v2", "DeBERTa-v2 reward model")?;
        let cfg: debertav2::Config = parse_config(dir, &config)?;
        let config_path = dir.join(CONFIG_FILE);
        let labels = cfg.id2label.as_ref().map_or(1, |m| m.len());
        ensure!(
            labels == 1,
            "{}: {labels} labels in `id2label`; a reward model has one (is this a classifier?)",
            config_path.display()
        );
        // candle's ConvLayer::forward is a `todo!()`: refuse instead of panicking.
        ensure!(
            cfg.conv_kernel_size.unwrap_or(0) == 0,
            "{}: conv_kernel_size > 0 (DeBERTa-v2 xlarge/xxlarge conv layer) is not supported \
             by candle-transformers",
            config_path.display()
        );
        let id2label = cfg
            .id2label
            .is_none()
            .then(|| [(0u32, "LABEL_0".to_string())].into());
        let vb = VarBuilder::from_backend(
            Box::new(LegacyLayerNormNames(weights_backend(
                dir,
                "AutoModelForSequenceClassification",
            )?)),
            DType::F32,
            device.clone(),
        );
        let model =
            debertav2::DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &cfg, id2label)
                .with_context(|| format!("loading DeBERTa weights from {}", dir.display()))?;
        let mut tokenizer = load_tokenizer(dir)?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: cfg.max_position_embeddings,
                strategy: tokenizers::TruncationStrategy::LongestFirst,
                stride: 0,
                direction: tokenizers::TruncationDirection::Right,
            }))
            .map_err(|e| anyhow!("{}: {e}", dir.join(TOKENIZER_FILE).display()))?;
        Ok(Self {
            model,
            tokenizer,
            pad_id: cfg.pad_token_id.unwrap_or(0) as u32,
            use_token_types: cfg.type_vocab_size > 0,
            device: device.clone(),
        })
    }

    /// Token ids and token type ids of one (prompt, response) pair.
    pub fn pair_ids(&self, prompt: &str, response: &str) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
        let encoding = encode(&self.tokenizer, (prompt.trim(), response.trim()), true)?;
        Ok((
            encoding.get_ids().to_vec(),
            encoding.get_type_ids().to_vec(),
        ))
    }
}

impl GoldScorer for DebertaGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| self.pair_ids(p, r))
            .collect::<anyhow::Result<_>>()?;
        let lens: Vec<usize> = pairs.iter().map(|(ids, _)| ids.len()).collect();
        let mut scores = vec![0f32; pairs.len()];
        for batch in length_sorted_batches(&lens, BATCH_SIZE) {
            let (b, t) = (
                batch.len(),
                batch.iter().map(|&i| lens[i]).max().unwrap_or(1),
            );
            // Right padding; the mask keeps pads out of every attention row
            // and the score is read at [CLS], column 0.
            let mut ids = vec![self.pad_id; b * t];
            let mut types = vec![0u32; b * t];
            let mut mask = vec![0i64; b * t];
            for (row, &i) in batch.iter().enumerate() {
                let (seq, seq_types) = &pairs[i];
                ids[row * t..row * t + seq.len()].copy_from_slice(seq);
                types[row * t..row * t + seq.len()].copy_from_slice(seq_types);
                mask[row * t..row * t + seq.len()].fill(1);
            }
            let ids = Tensor::from_vec(ids, (b, t), &self.device)?; // [B, T]
            let types = self
                .use_token_types
                .then(|| Tensor::from_vec(types, (b, t), &self.device))
                .transpose()?; // [B, T]
            let mask = Tensor::from_vec(mask, (b, t), &self.device)?; // [B, T]
            let logits = self.model.forward(&ids, types, Some(mask))?; // [B, 1]
            let values = logits.squeeze(1)?.to_vec1::<f32>()?; // [B]
            for (&i, v) in batch.iter().zip(values) {
                scores[i] = v;
            }
        }
        Ok(scores)
    }
}

/// Older PyTorch DeBERTa checkpoints name LayerNorm parameters `gamma` /
/// `beta`; transformers renames them on load, candle asks for `weight` /
/// `bias`. This backend answers the new names from the old ones.
struct LegacyLayerNormNames(Box<dyn SimpleBackend>);

impl LegacyLayerNormNames {
    /// The name to read `name` from: itself if present, else its legacy form.
    fn resolve<'n>(&self, name: &'n str) -> std::borrow::Cow<'n, str> {
        if self.0.contains_tensor(name) {
            return name.into();
        }
        let legacy = name
            .strip_suffix(".weight")
            .map(|base| format!("{base}.gamma"))
            .or_else(|| {
                name.strip_suffix(".bias")
                    .map(|base| format!("{base}.beta"))
            });
        match legacy {
            Some(l) if l.contains("LayerNorm") && self.0.contains_tensor(&l) => l.into(),
            _ => name.into(),
        }
    }
}

impl SimpleBackend for LegacyLayerNormNames {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, &self.resolve(name), h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(&self.resolve(name), dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(&self.resolve(name))
    }
}

// ---------------------------------------------------------------------------
// SteamShp: stanfordnlp/SteamSHP-flan-t5-large

/// The input SteamSHP reads to score `response` alone: the model card's
/// single-response layout, the response as A and a dummy `.` as B.
pub fn steamshp_input(post: &str, response: &str) -> String {
    format!(
        "POST: {post}\n\n RESPONSE A: {response}\n\n RESPONSE B: .\n\n Which response is better? \
         RESPONSE"
    )
}

/// The post inside a prompt built by [`shp::prompt_of`] (the prompt itself,
/// trimmed, for any other prompt). Derived from `prompt_of` so the two
/// cannot drift apart.
pub fn steamshp_post(prompt: &str) -> &str {
    const HOLE: &str = "\u{0}";
    let layout = shp::prompt_of(HOLE);
    let (prefix, suffix) = layout
        .split_once(HOLE)
        .expect("prompt_of embeds its argument");
    prompt
        .strip_prefix(prefix)
        .and_then(|p| p.strip_suffix(suffix))
        .unwrap_or(prompt)
        .trim()
}

/// SteamSHP as a single-response reward model.
///
/// Input: [`steamshp_input`]`(`[`steamshp_post`]`(prompt), response.trim())`,
/// tokenised with T5's trailing `</s>`. The decoder runs one step from the
/// decoder start token; the score is P(A | A or B) = σ(logit_A − logit_B),
/// the probability that the response beats the dummy, among the two answers
/// the model was trained to give. (The model card divides by the whole
/// vocabulary instead; the two differ only by the mass on other tokens.)
/// A probability rather than log-odds: the score stage averages scores, and
/// a bounded score keeps one confident item from dominating the mean.
///
/// Truncation: an input over `n_positions` (512) tokens loses the end of the
/// post first, then the end of the response; the layout's fixed text, the
/// question included, always survives. This follows the model card, which
/// says to truncate the context and keep the comments.
///
/// candle's T5 has no encoder padding mask, so only inputs of equal token
/// length share a batch: padding would change the scores.
pub struct SteamShpGold {
    /// T5's forward takes `&mut self` (its KV cache); scoring is `&self`.
    model: Mutex<t5::T5ForConditionalGeneration>,
    tokenizer: tokenizers::Tokenizer,
    a_id: u32,
    b_id: u32,
    decoder_start: u32,
    max_tokens: usize,
    device: Device,
}

impl SteamShpGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let config = read_config(dir, "t5", "T5 (SteamSHP) model")?;
        let mut cfg: t5::Config = parse_config(dir, &config)?;
        ensure!(
            cfg.is_encoder_decoder,
            "{}: is_encoder_decoder = false; SteamSHP is an encoder-decoder T5",
            dir.join(CONFIG_FILE).display()
        );
        // One decoder step per forward: a cache would only leak state between calls.
        cfg.use_cache = false;
        let max_tokens = config
            .get("n_positions")
            .and_then(Json::as_u64)
            .map_or(STEAMSHP_DEFAULT_MAX_TOKENS, |n| n as usize);
        let weights = weights_backend(dir, "AutoModelForSeq2SeqLM")?;
        let vb = VarBuilder::from_backend(weights, DType::F32, device.clone());
        let model = t5::T5ForConditionalGeneration::load(vb, &cfg)
            .with_context(|| format!("loading T5 weights from {}", dir.display()))?;
        let tokenizer = load_tokenizer(dir)?;
        let answer_id = |answer: &str| -> anyhow::Result<u32> {
            let ids = encode(&tokenizer, answer, false)?.get_ids().to_vec();
            match ids.as_slice() {
                &[id] => Ok(id),
                _ => bail!(
                    "{}: `{answer}` encodes to {} tokens {ids:?}, but SteamSHP answers with one \
                     token: is this the SteamSHP tokenizer?",
                    dir.join(TOKENIZER_FILE).display(),
                    ids.len()
                ),
            }
        };
        let (a_id, b_id) = (answer_id("A")?, answer_id("B")?);
        ensure!(
            a_id != b_id && (a_id as usize) < cfg.vocab_size && (b_id as usize) < cfg.vocab_size,
            "{}: answer ids A = {a_id}, B = {b_id} must be two distinct ids below vocab_size {} \
             (both unknown words?): is this the SteamSHP tokenizer?",
            dir.join(TOKENIZER_FILE).display(),
            cfg.vocab_size
        );
        Ok(Self {
            model: Mutex::new(model),
            tokenizer,
            a_id,
            b_id,
            decoder_start: cfg.decoder_start_token_id.unwrap_or(cfg.pad_token_id) as u32,
            max_tokens,
            device: device.clone(),
        })
    }

    /// The input text and its token ids for one (prompt, response), after
    /// truncation.
    pub fn input(&self, prompt: &str, response: &str) -> anyhow::Result<(String, Vec<u32>)> {
        let post = steamshp_post(prompt);
        let response = response.trim();
        let (mut post_end, mut response_end) = (post.len(), response.len());
        loop {
            let text = steamshp_input(&post[..post_end], &response[..response_end]);
            let ids = encode(&self.tokenizer, text.as_str(), true)?
                .get_ids()
                .to_vec();
            let Some(excess) = ids.len().checked_sub(self.max_tokens).filter(|&e| e > 0) else {
                return Ok((text, ids));
            };
            if post_end > 0 {
                post_end = self.cut_tokens(&post[..post_end], excess)?;
            } else if response_end > 0 {
                response_end = self.cut_tokens(&response[..response_end], excess)?;
            } else {
                bail!(
                    "the SteamSHP layout alone is {} tokens, over the {} the model reads",
                    ids.len(),
                    self.max_tokens
                );
            }
        }
    }

    /// The byte length of `text` with about `n` tokens cut off its end
    /// (always shorter than `text`, trailing whitespace dropped).
    fn cut_tokens(&self, text: &str, n: usize) -> anyhow::Result<usize> {
        let encoding = encode(&self.tokenizer, text, false)?;
        let offsets = encoding.get_offsets(); // byte spans in `text`
        let keep = offsets.len().saturating_sub(n);
        let mut end = match keep {
            0 => 0,
            k => offsets[k].0.min(text.len() - 1),
        };
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(text[..end].trim_end().len())
    }
}

impl GoldScorer for SteamShpGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let inputs: Vec<Vec<u32>> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| Ok(self.input(p, r)?.1))
            .collect::<anyhow::Result<_>>()?;
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, ids) in inputs.iter().enumerate() {
            by_len.entry(ids.len()).or_default().push(i);
        }
        let mut model = self.model.lock().map_err(|_| {
            anyhow!("the SteamSHP model was poisoned by a panic in another scorer call")
        })?;
        let mut scores = vec![0f32; inputs.len()];
        let answers = Tensor::new(&[self.a_id, self.b_id], &self.device)?; // [2]
        for (&t, same_len) in &by_len {
            for batch in same_len.chunks(BATCH_SIZE) {
                let b = batch.len();
                let ids: Vec<u32> = batch
                    .iter()
                    .flat_map(|&i| inputs[i].iter().copied())
                    .collect();
                let ids = Tensor::from_vec(ids, (b, t), &self.device)?; // [B, T]
                let start = Tensor::full(self.decoder_start, (b, 1), &self.device)?; // [B, 1]
                model.clear_kv_cache();
                let logits = model.forward(&ids, &start)?; // [B, V], next-token logits
                let ab = logits.index_select(&answers, 1)?.to_vec2::<f32>()?; // [B, 2]
                for (&i, row) in batch.iter().zip(ab) {
                    let log_odds = f64::from(row[0]) - f64::from(row[1]);
                    scores[i] = (1.0 / (1.0 + (-log_odds).exp())) as f32;
                }
            }
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    //! Each kind is checked on a tiny random model of the real architecture,
    //! written as a real HF dir (config.json with HF field names,
    //! model.safetensors under HF tensor names, a tokenizer.json built with
    //! the `tokenizers` crate) and loaded through [`load_real_gold`].
    use super::*;
    use crate::model::init::init_values;
    use crate::model::testing::tiny_qwen3;
    use crate::model::{DecoderConfig, PadSide, Policy, SeqBatch};
    use candle_nn::VarMap;
    use serde_json::json;
    use std::collections::HashMap;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, Tokenizer};

    type Result<T = ()> = anyhow::Result<T>;

    /// A word-level tokenizer: `specials` get ids 0.., then `words`; text is
    /// split on whitespace and punctuation, and special tokens written in
    /// the text are matched whole (as chat markers are in real tokenizers).
    fn word_tokenizer(
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

    fn ids(tokenizer: &Tokenizer, words: &str) -> Vec<u32> {
        words
            .split(' ')
            .map(|w| {
                tokenizer
                    .token_to_id(w)
                    .unwrap_or_else(|| panic!("`{w}` not in vocab"))
            })
            .collect()
    }

    fn write_json(path: &Path, value: &Json) -> Result {
        Ok(std::fs::write(path, serde_json::to_string_pretty(value)?)?)
    }

    fn err_text<T>(result: anyhow::Result<T>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{e:#}"),
        }
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "item {i}: {x} vs {y}");
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Scores of every item scored alone.
    fn one_by_one(gold: &dyn GoldScorer, prompts: &[String], responses: &[String]) -> Vec<f32> {
        prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| {
                gold.score(std::slice::from_ref(p), std::slice::from_ref(r))
                    .unwrap()[0]
            })
            .collect()
    }

    /// Every var of `varmap` overwritten with seeded N(0, std²) values (candle's
    /// own initialisers are unseeded, and zero T5 layer norms would make
    /// every score equal).
    fn randomize(varmap: &VarMap, std: f64) -> Result {
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let init = Init::Randn {
                mean: 0.0,
                stdev: std,
            };
            let values = init_values(11, name, var.shape(), init)?;
            var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    fn varmap_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
        let data = varmap.data().lock().unwrap();
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect()
    }

    // -- SeqCls --------------------------------------------------------------

    const CHAT_SPECIALS: &[&str] = &[
        "<pad>",
        "<s>",
        "</s>",
        "<unk>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ];
    const CHAT_WORDS: &[&str] = &[
        "hello", "there", "how", "are", "you", "fine", "thanks", "a", "dog", "cat", "is", "good",
        "bad", "what", "?", ".", "it", "tell", "me", "about", "sure", "no", "yes", "the", "sun",
        "hot",
    ];

    /// A small chat template in the style of HF ones: BOS from
    /// `bos_token`, role markers, Python string methods, `raise_exception`.
    const CHAT_TEMPLATE: &str = "{{ bos_token }}
{% for message in messages %}
{% if message['role'] == 'user' %}<|user|>{% elif message.role == 'assistant' %}<|assistant|>{% else %}{{ raise_exception('unexpected role ' + message.role) }}{% endif %}
 {{ message.content.strip() }} <|end|>
{% endfor %}
{% if add_generation_prompt %}<|assistant|>{% endif %}";

    fn chat_tokenizer() -> Tokenizer {
        let bos = TemplateProcessing::builder()
            .try_single("<s> $A")
            .unwrap()
            .special_tokens(vec![("<s>", 1)])
            .build()
            .unwrap();
        word_tokenizer(CHAT_SPECIALS, CHAT_WORDS, "<unk>", bos)
    }

    fn hf_decoder_config(cfg: &DecoderConfig) -> Json {
        json!({
            "architectures": ["Qwen3ForSequenceClassification"],
            "model_type": "qwen3", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
            "head_dim": cfg.head_dim, "max_position_embeddings": cfg.max_position,
            "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.norm_eps,
            "tie_word_embeddings": false, "attention_bias": true,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "torch_dtype": "float32",
            "id2label": {"0": "LABEL_0"}
        })
    }

    /// An HF dir holding a random Qwen3ForSequenceClassification, its
    /// tokenizer and (if given) a tokenizer_config.json with `template`.
    fn seqcls_dir(template: Option<&str>) -> Result<(tempfile::TempDir, RewardModel, Tokenizer)> {
        let dir = tempfile::tempdir()?;
        let cfg = tiny_qwen3();
        let rm = RewardModel::new_random(&cfg, None, 5, &Device::Cpu)?;
        write_json(&dir.path().join(CONFIG_FILE), &hf_decoder_config(&cfg))?;
        candle_core::safetensors::save(
            &rm.backbone().params().tensors(),
            dir.path().join("model.safetensors"),
        )?;
        let tokenizer = chat_tokenizer();
        tokenizer
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(template) = template {
            write_json(
                &dir.path().join(TOKENIZER_CONFIG_FILE),
                &json!({
                    "bos_token": "<s>",
                    "eos_token": {"content": "</s>", "special": true},
                    "pad_token": "<pad>",
                    "chat_template": template,
                }),
            )?;
        }
        Ok((dir, rm, tokenizer))
    }

    /// The RM's score of one id sequence, straight from the model.
    fn direct_score(rm: &RewardModel, ids: &[u32]) -> Result<f32> {
        let batch = SeqBatch::from_sequences(
            &[(ids.to_vec(), ids.len())],
            0,
            PadSide::Right,
            &Device::Cpu,
        )?;
        Ok(rm.scores(&batch)?.to_vec1::<f32>()?[0])
    }

    const HH_PROMPT: &str = "\n\nHuman: hello there\n\nAssistant: how are you ?\n\nHuman: tell me about a dog\n\nAssistant:";

    #[test]
    fn seqcls_scores_the_chat_formatted_conversation() -> Result {
        let (dir, rm, tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        let gold = SeqClsGold::load(dir.path(), &Device::Cpu)?;
        let response = " a dog is good .";
        // One BOS although the template writes one and the tokenizer adds one;
        // the HH transcript became user / assistant / user turns, the response
        // the final assistant turn.
        let expected = ids(
            &tok,
            "<s> <|user|> hello there <|end|> <|assistant|> how are you ? <|end|> \
             <|user|> tell me about a dog <|end|> <|assistant|> a dog is good . <|end|>",
        );
        assert_eq!(gold.sequence_ids(HH_PROMPT, response)?, expected);
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let got = scorer.score(&strings(&[HH_PROMPT]), &strings(&[response]))?;
        assert_close(&got, &[direct_score(&rm, &expected)?], 1e-5);
        // Loaded frozen: only the score head is a tracked variable, no adapters left.
        assert_eq!(gold.model.trainable_vars().len(), 1);
        assert!(gold.model.lora_config().is_none());
        assert!(
            gold.model
                .backbone()
                .params()
                .iter()
                .all(|(name, _)| !is_adapter(name))
        );
        Ok(())
    }

    #[test]
    fn seqcls_batching_matches_one_by_one_and_responses_differ() -> Result {
        let (dir, _rm, _tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let prompts: Vec<String> = (0..11)
            .map(|i| match i % 3 {
                0 => HH_PROMPT.to_string(),
                1 => "what is the sun ?".to_string(),
                _ => "tell me about a cat ".repeat(1 + i % 4),
            })
            .collect();
        let responses: Vec<String> = (0..11)
            .map(|i| {
                [" sure", " the sun is hot .", " no", " a cat is good . yes"][i % 4]
                    .repeat(1 + i % 3)
            })
            .collect();
        let batched = scorer.score(&prompts, &responses)?;
        assert_close(
            &batched,
            &one_by_one(scorer.as_ref(), &prompts, &responses),
            1e-5,
        );
        let pair = scorer.score(
            &strings(&[HH_PROMPT, HH_PROMPT]),
            &strings(&[" a dog is good .", " a dog is bad ."]),
        )?;
        assert!((pair[0] - pair[1]).abs() > 1e-6, "{pair:?}");
        Ok(())
    }

    #[test]
    fn seqcls_without_a_template_reads_plain_text() -> Result {
        let (dir, rm, tok) = seqcls_dir(None)?;
        let gold = SeqClsGold::load(dir.path(), &Device::Cpu)?;
        let expected = ids(&tok, "<s> what is it ? a dog .");
        assert_eq!(gold.sequence_ids("what is it ?", " a dog .")?, expected);
        let got = gold.score(&strings(&["what is it ?"]), &strings(&[" a dog ."]))?;
        assert_close(&got, &[direct_score(&rm, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn conversation_splits_hh_transcripts() {
        let msg = |role, content: &str| ChatMessage {
            role,
            content: content.to_string(),
        };
        assert_eq!(
            conversation(HH_PROMPT, " a dog ."),
            vec![
                msg("user", "hello there"),
                msg("assistant", "how are you ?"),
                msg("user", "tell me about a dog"),
                msg("assistant", "a dog ."),
            ]
        );
        // A non-transcript prompt is one user turn, kept whole.
        let tldr = crate::data::real::tldr::prompt_of("cats", "Title", "Post\n\nmore");
        assert_eq!(
            conversation(&tldr, " summary"),
            vec![msg("user", tldr.trim()), msg("assistant", "summary")]
        );
        // Two human turns in a row merge; the prompt's empty final turn is dropped.
        assert_eq!(
            conversation("\n\nHuman: a\n\nHuman: b\n\nAssistant:", " c"),
            vec![msg("user", "a\n\nb"), msg("assistant", "c")]
        );
    }

    #[test]
    fn chat_templates_get_python_methods_and_raise_exception() -> Result {
        let template = |source: &str| ChatTemplate {
            source: source.to_string(),
            special_tokens: BTreeMap::new(),
            origin: PathBuf::from("tokenizer_config.json"),
        };
        let messages = conversation("hi", " there");
        let source = "{{ 'a,b,c'.split(',')|join('|') }};{{ '  x '.strip() }};{{ 'xxhixx'.rstrip('x') }};\
                      {{ 'ab'.startswith('a') }};{{ 'r</think>\\nc'.split('</think>')[-1].lstrip('\\n') }};\
                      {{ {'k': 1}.get('k') }};{{ {'k': 1}.get('z', 2) }};{{ messages[1].content.upper() }}";
        assert_eq!(
            template(source).render(&messages)?,
            "a|b|c;x;xxhi;True;c;1;2;THERE"
        );
        let err =
            err_text(template("{{ raise_exception('roles must alternate') }}").render(&messages));
        assert!(
            err.contains("roles must alternate") && err.contains("tokenizer_config.json"),
            "{err}"
        );
        let err = err_text(template("{{ messages.pop() }}").render(&messages));
        assert!(err.contains("unknown method"), "{err}");

        // A template that raises fails the score with the message; one that
        // does not parse fails the load, naming the file.
        let (dir, _rm, _tok) = seqcls_dir(Some("{{ raise_exception('no system prompt') }}"))?;
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let err = err_text(scorer.score(&strings(&["hi"]), &strings(&[" yo"])));
        assert!(err.contains("no system prompt"), "{err}");
        let (dir, _rm, _tok) = seqcls_dir(Some("{% for m in messages %}"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(TOKENIZER_CONFIG_FILE) && err.contains("does not parse"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn seqcls_errors_name_the_dir_and_file() -> Result {
        let missing = Path::new("/nonexistent/skywork");
        let err = err_text(load_real_gold(RealGoldKind::SeqCls, missing, &Device::Cpu));
        assert!(
            err.contains("/nonexistent/skywork") && err.contains("download"),
            "{err}"
        );

        let (dir, _rm, _tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        std::fs::remove_file(dir.path().join(TOKENIZER_FILE))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&dir.path().join(TOKENIZER_FILE).display().to_string()),
            "{err}"
        );

        // A causal LM (lm_head, no score head) is not a reward model.
        let policy = Policy::new_random(&tiny_qwen3(), None, 1, &Device::Cpu)?;
        candle_core::safetensors::save(
            &policy.backbone().params().tensors(),
            dir.path().join("model.safetensors"),
        )?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(SCORE_HEAD) && err.contains(&dir.path().display().to_string()),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("model.safetensors"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(err.contains("model.safetensors"), "{err}");
        Ok(())
    }

    #[test]
    fn truncation_keeps_bos_and_the_end() {
        assert_eq!(keep_tail(vec![1, 5, 6, 7, 8], 3, Some(1)), vec![1, 7, 8]);
        assert_eq!(keep_tail(vec![5, 6, 7, 8], 3, Some(1)), vec![6, 7, 8]);
        assert_eq!(keep_tail(vec![5, 6], 3, None), vec![5, 6]);
    }

    #[test]
    fn kinds_parse_by_name() -> Result {
        for kind in RealGoldKind::ALL {
            assert_eq!(RealGoldKind::from_name(kind.name())?, kind);
            assert_eq!(serde_json::to_value(kind)?, json!(kind.name()));
        }
        let err = err_text(RealGoldKind::from_name("skywork"));
        assert!(
            err.contains("`skywork`") && err.contains("reward_model, deberta_reward, steamshp"),
            "{err}"
        );
        Ok(())
    }

    // -- DeBERTa -------------------------------------------------------------

    const DEBERTA_SPECIALS: &[&str] = &["[PAD]", "[CLS]", "[SEP]", "[UNK]"];
    const DEBERTA_WORDS: &[&str] = &[
        "what",
        "is",
        "the",
        "sun",
        "?",
        "it",
        "hot",
        ".",
        "a",
        "star",
        "cold",
        "my",
        "cat",
        "summary",
        "TL",
        ";",
        "DR",
        ":",
        "post",
        "long",
        "SUBREDDIT",
        "r",
        "/",
        "TITLE",
        "POST",
    ];
    const DEBERTA_MAX_POSITIONS: usize = 24;

    fn deberta_config_json() -> Json {
        json!({
            "architectures": ["DebertaV2ForSequenceClassification"],
            "model_type": "deberta-v2",
            "vocab_size": DEBERTA_SPECIALS.len() + DEBERTA_WORDS.len(),
            "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": DEBERTA_MAX_POSITIONS, "type_vocab_size": 0,
            "initializer_range": 0.02, "layer_norm_eps": 1e-7,
            "relative_attention": true, "max_relative_positions": -1, "position_buckets": 8,
            "pad_token_id": 0, "position_biased_input": false, "pos_att_type": ["p2c", "c2p"],
            "share_att_key": true, "norm_rel_ebd": "layer_norm",
            "pooler_dropout": 0, "pooler_hidden_act": "gelu", "pooler_hidden_size": 16,
            "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "torch_dtype": "float32"
        })
    }

    fn deberta_tokenizer() -> Tokenizer {
        let pair = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
            .unwrap()
            .special_tokens(vec![("[CLS]", 1), ("[SEP]", 2)])
            .build()
            .unwrap();
        word_tokenizer(DEBERTA_SPECIALS, DEBERTA_WORDS, "[UNK]", pair)
    }

    /// An HF dir with a random DeBERTa-v2 reward model; also returns the
    /// in-memory model and its tensors by name.
    fn deberta_dir() -> Result<(
        tempfile::TempDir,
        debertav2::DebertaV2SeqClassificationModel,
        HashMap<String, Tensor>,
    )> {
        let dir = tempfile::tempdir()?;
        let config = deberta_config_json();
        let cfg: debertav2::Config = serde_json::from_value(config.clone())?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = debertav2::DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &cfg, None)?;
        randomize(&varmap, 0.5)?;
        let tensors = varmap_tensors(&varmap);
        assert!(tensors.contains_key("deberta.encoder.rel_embeddings.weight"));
        assert!(
            tensors.contains_key("pooler.dense.weight") && tensors.contains_key("classifier.bias")
        );
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors"))?;
        write_json(&dir.path().join(CONFIG_FILE), &config)?;
        deberta_tokenizer()
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((dir, model, tensors))
    }

    fn deberta_direct(
        model: &debertav2::DebertaV2SeqClassificationModel,
        ids: &[u32],
    ) -> Result<f32> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?; // [1, T]
        Ok(model
            .forward(&input, None, None)?
            .flatten_all()?
            .to_vec1::<f32>()?[0])
    }

    #[test]
    fn deberta_scores_the_pair_encoding() -> Result {
        let (dir, model, _) = deberta_dir()?;
        let gold = DebertaGold::load(dir.path(), &Device::Cpu)?;
        let tok = deberta_tokenizer();
        let expected = ids(&tok, "[CLS] what is the sun ? [SEP] it is a star . [SEP]");
        let (got_ids, types) = gold.pair_ids("what is the sun ?", " it is a star .")?;
        assert_eq!(got_ids, expected);
        assert_eq!(types, [vec![0; 7], vec![1; 6]].concat());
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let got = scorer.score(
            &strings(&["what is the sun ?"]),
            &strings(&[" it is a star ."]),
        )?;
        assert_close(&got, &[deberta_direct(&model, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_batching_matches_one_by_one_and_truncates() -> Result {
        let (dir, model, _) = deberta_dir()?;
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let prompts: Vec<String> = (0..10)
            .map(|i| "what is the sun ? ".repeat(1 + i % 3))
            .collect();
        let responses: Vec<String> = (0..10)
            .map(|i| [" it is hot .", " a star", " cold"][i % 3].repeat(1 + i % 4))
            .collect();
        let batched = scorer.score(&prompts, &responses)?;
        assert_close(
            &batched,
            &one_by_one(scorer.as_ref(), &prompts, &responses),
            1e-5,
        );
        assert!((batched[0] - batched[1]).abs() > 1e-6, "{batched:?}");

        // Too long for the model: cut longest-first to max_position_embeddings.
        let gold = DebertaGold::load(dir.path(), &Device::Cpu)?;
        let long_response = " it is hot .".repeat(10);
        let (truncated, _) = gold.pair_ids("what is the sun ?", &long_response)?;
        assert_eq!(truncated.len(), DEBERTA_MAX_POSITIONS);
        let tok = deberta_tokenizer();
        assert_eq!(truncated[..7], ids(&tok, "[CLS] what is the sun ? [SEP]"));
        assert_eq!(truncated.last(), tok.token_to_id("[SEP]").as_ref());
        let got = gold.score(&strings(&["what is the sun ?"]), &[long_response])?;
        assert_close(&got, &[deberta_direct(&model, &truncated)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_reads_legacy_layer_norm_names() -> Result {
        let (dir, model, tensors) = deberta_dir()?;
        let legacy: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, t)| {
                let k = match k.contains("LayerNorm") {
                    true => k.replace(".weight", ".gamma").replace(".bias", ".beta"),
                    false => k,
                };
                (k, t)
            })
            .collect();
        assert!(legacy.contains_key("deberta.embeddings.LayerNorm.gamma"));
        candle_core::safetensors::save(&legacy, dir.path().join("model.safetensors"))?;
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let got = scorer.score(
            &strings(&["what is the sun ?"]),
            &strings(&[" it is hot ."]),
        )?;
        let expected = ids(
            &deberta_tokenizer(),
            "[CLS] what is the sun ? [SEP] it is hot . [SEP]",
        );
        assert_close(&got, &[deberta_direct(&model, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_errors_name_the_file() -> Result {
        let (dir, _, _) = deberta_dir()?;
        let config_path = dir.path().join(CONFIG_FILE);
        let mut bert = deberta_config_json();
        bert["model_type"] = json!("bert");
        write_json(&config_path, &bert)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&config_path.display().to_string())
                && err.contains("model_type `bert` is not a DeBERTa-v2 reward model"),
            "{err}"
        );
        let mut two_labels = deberta_config_json();
        two_labels["id2label"] = json!({"0": "NEG", "1": "POS"});
        write_json(&config_path, &two_labels)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(err.contains("2 labels"), "{err}");
        let mut incomplete = deberta_config_json();
        incomplete.as_object_mut().unwrap().remove("hidden_size");
        write_json(&config_path, &incomplete)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("hidden_size") && err.contains(&config_path.display().to_string()),
            "{err}"
        );

        write_json(&config_path, &deberta_config_json())?;
        std::fs::remove_file(dir.path().join("model.safetensors"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("model.safetensors") && err.contains(PYTORCH_WEIGHTS_FILE),
            "{err}"
        );
        // Only a PyTorch checkpoint, and an unreadable one: say how to convert it.
        let bin = dir.path().join(PYTORCH_WEIGHTS_FILE);
        std::fs::write(&bin, b"not a zip pickle")?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&bin.display().to_string())
                && err.contains("AutoModelForSequenceClassification"),
            "{err}"
        );
        Ok(())
    }

    // -- SteamSHP ------------------------------------------------------------

    const T5_SPECIALS: &[&str] = &["<pad>", "</s>", "<unk>"];
    const T5_WORDS: &[&str] = &[
        "POST", ":", "RESPONSE", "A", "B", ".", "Which", "response", "is", "better", "?", "my",
        "cat", "ate", "the", "plant", "what", "now", "call", "a", "vet", "buy", "new", "one",
        "lol",
    ];

    fn t5_config_json(n_positions: usize) -> Json {
        json!({
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5", "vocab_size": T5_SPECIALS.len() + T5_WORDS.len(),
            "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_decoder_layers": 2,
            "num_heads": 4, "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16, "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
            "is_encoder_decoder": true, "pad_token_id": 0, "eos_token_id": 1,
            "decoder_start_token_id": 0, "n_positions": n_positions, "use_cache": true
        })
    }

    fn t5_tokenizer(words: &[&str]) -> Tokenizer {
        let eos = TemplateProcessing::builder()
            .try_single("$A </s>")
            .unwrap()
            .special_tokens(vec![("</s>", 1)])
            .build()
            .unwrap();
        word_tokenizer(T5_SPECIALS, words, "<unk>", eos)
    }

    /// An HF dir with a random FLAN-T5-style model (gated-gelu, untied head,
    /// embeddings saved as `shared.weight` as transformers does), and the
    /// in-memory model.
    fn steamshp_dir(
        n_positions: usize,
    ) -> Result<(tempfile::TempDir, t5::T5ForConditionalGeneration)> {
        let dir = tempfile::tempdir()?;
        let config = t5_config_json(n_positions);
        let cfg: t5::Config = serde_json::from_value(config.clone())?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = t5::T5ForConditionalGeneration::load(vb, &cfg)?;
        randomize(&varmap, 0.3)?;
        let mut tensors = varmap_tensors(&varmap);
        let shared = tensors
            .remove("decoder.embed_tokens.weight")
            .expect("T5 embeddings");
        tensors.insert("shared.weight".into(), shared);
        assert!(tensors.contains_key("lm_head.weight"));
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors"))?;
        write_json(&dir.path().join(CONFIG_FILE), &config)?;
        t5_tokenizer(T5_WORDS)
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((dir, model))
    }

    /// P(A | A or B) straight from the model, for one input.
    fn steamshp_direct(model: &mut t5::T5ForConditionalGeneration, ids: &[u32]) -> Result<f32> {
        let tok = t5_tokenizer(T5_WORDS);
        let (a, b) = (tok.token_to_id("A").unwrap(), tok.token_to_id("B").unwrap());
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?; // [1, T]
        let start = Tensor::new(&[[0u32]], &Device::Cpu)?; // [1, 1]
        model.clear_kv_cache();
        let logits = model
            .forward(&input, &start)?
            .squeeze(0)?
            .to_vec1::<f32>()?; // [V]
        model.clear_kv_cache();
        let log_odds = f64::from(logits[a as usize]) - f64::from(logits[b as usize]);
        Ok((1.0 / (1.0 + (-log_odds).exp())) as f32)
    }

    #[test]
    fn steamshp_input_has_the_model_card_layout() -> Result {
        assert_eq!(
            steamshp_input("my cat ate the plant", "call a vet"),
            "POST: my cat ate the plant\n\n RESPONSE A: call a vet\n\n RESPONSE B: .\n\n Which \
             response is better? RESPONSE"
        );
        assert_eq!(
            steamshp_post(&shp::prompt_of("my cat ate the plant ")),
            "my cat ate the plant"
        );
        assert_eq!(steamshp_post("  what now ?"), "what now ?");
        let (dir, _) = steamshp_dir(512)?;
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let (text, _) = gold.input(&shp::prompt_of("my cat ate the plant"), " call a vet")?;
        assert_eq!(text, steamshp_input("my cat ate the plant", "call a vet"));
        Ok(())
    }

    #[test]
    fn steamshp_scores_p_of_a_against_b() -> Result {
        let (dir, mut model) = steamshp_dir(512)?;
        let expected = ids(
            &t5_tokenizer(T5_WORDS),
            "POST : my cat ate the plant RESPONSE A : call a vet RESPONSE B : . \
             Which response is better ? RESPONSE </s>",
        );
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let prompt = shp::prompt_of("my cat ate the plant");
        assert_eq!(gold.input(&prompt, " call a vet")?.1, expected);
        let scorer = load_real_gold(RealGoldKind::SteamShp, dir.path(), &Device::Cpu)?;
        let got = scorer.score(&[prompt], &strings(&[" call a vet"]))?;
        assert_close(&got, &[steamshp_direct(&mut model, &expected)?], 1e-6);
        assert!(got[0] > 0.0 && got[0] < 1.0);
        Ok(())
    }

    #[test]
    fn steamshp_batching_matches_one_by_one() -> Result {
        let (dir, _) = steamshp_dir(512)?;
        let scorer = load_real_gold(RealGoldKind::SteamShp, dir.path(), &Device::Cpu)?;
        // Equal-length inputs share a batch (more than BATCH_SIZE of them),
        // others go alone.
        let prompts: Vec<String> = (0..13)
            .map(|i| shp::prompt_of(["my cat ate the plant", "what now ?"][i % 2]))
            .collect();
        let responses: Vec<String> = (0..13)
            .map(|i| [" call a vet", " buy a new one", " lol"][i % 3].to_string())
            .collect();
        let batched = scorer.score(&prompts, &responses)?;
        assert_close(
            &batched,
            &one_by_one(scorer.as_ref(), &prompts, &responses),
            1e-6,
        );
        assert!((batched[0] - batched[1]).abs() > 1e-7, "{batched:?}");
        assert!((batched[0] - batched[2]).abs() > 1e-7, "{batched:?}");
        Ok(())
    }

    #[test]
    fn steamshp_truncates_the_post_first() -> Result {
        let (dir, mut model) = steamshp_dir(40)?;
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let post = "my cat ate the plant ".repeat(12); // 60 words
        let (text, input_ids) = gold.input(&shp::prompt_of(&post), " call a vet")?;
        // 19 tokens of layout + response, so 21 words of post remain.
        assert_eq!(input_ids.len(), 40);
        let kept: Vec<&str> = post.split_whitespace().take(21).collect();
        assert_eq!(text, steamshp_input(&kept.join(" "), "call a vet"));
        let got = gold.score(&[shp::prompt_of(&post)], &strings(&[" call a vet"]))?;
        assert_close(&got, &[steamshp_direct(&mut model, &input_ids)?], 1e-6);
        // A response too long for any post loses its end, the question stays.
        let (text, input_ids) = gold.input("what now ?", &" buy a new one".repeat(20))?;
        assert_eq!(input_ids.len(), 40);
        assert!(
            text.starts_with("POST: \n\n RESPONSE A: buy a new one"),
            "{text:?}"
        );
        assert!(text.ends_with("RESPONSE B: .\n\n Which response is better? RESPONSE"));
        Ok(())
    }

    #[test]
    fn steamshp_errors_name_the_file() -> Result {
        let (dir, _) = steamshp_dir(512)?;
        let config_path = dir.path().join(CONFIG_FILE);
        let mut bert = t5_config_json(512);
        bert["model_type"] = json!("bert");
        write_json(&config_path, &bert)?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&config_path.display().to_string()) && err.contains("`bert`"),
            "{err}"
        );
        write_json(&config_path, &t5_config_json(512))?;
        // A tokenizer without single-token answers A / B.
        let words: Vec<&str> = T5_WORDS
            .iter()
            .copied()
            .filter(|w| *w != "A" && *w != "B")
            .collect();
        let mut padded = words.clone();
        padded.extend(["x", "y"]);
        t5_tokenizer(&padded)
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("answer ids") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(TOKENIZER_FILE))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&dir.path().join(TOKENIZER_FILE).display().to_string()),
            "{err}"
        );
        Ok(())
    }
}
