//! Fixtures of the real-gold tests. Each kind is checked on a tiny random
//! model of the real architecture, written as a real HF dir (config.json
//! with HF field names, model.safetensors under HF tensor names, a
//! tokenizer.json built with the `tokenizers` crate) and loaded through
//! [`super::load_real_gold`].
use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::{Init, VarMap};
use serde_json::{Value as Json, json};
use tokenizers::Tokenizer;

use super::GoldScorer;
use super::common::TOKENIZER_CONFIG_FILE;
use crate::model::init::init_values;
use crate::model::{PadSide, RewardModel, ScalarScorer, SeqBatch};
pub(super) use crate::testing::word_tokenizer;
use crate::testing::{bos_template, tiny_qwen3, write_hf_reward_dir};

pub(super) type Result<T = ()> = anyhow::Result<T>;

pub(super) fn ids(tokenizer: &Tokenizer, words: &str) -> Vec<u32> {
    words
        .split(' ')
        .map(|w| {
            tokenizer
                .token_to_id(w)
                .unwrap_or_else(|| panic!("`{w}` not in vocab"))
        })
        .collect()
}

pub(super) fn write_json(path: &Path, value: &Json) -> Result {
    Ok(std::fs::write(path, serde_json::to_string_pretty(value)?)?)
}

pub(super) fn err_text<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

pub(super) fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "item {i}: {x} vs {y}");
    }
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `gold`'s scores of the pairs in one call, after checking that each is
/// (within `tol`) its score when scored alone: batching, padding and
/// ordering by length change nothing.
pub(super) fn batched_as_alone(
    gold: &dyn GoldScorer,
    prompts: &[String],
    responses: &[String],
    tol: f32,
) -> anyhow::Result<Vec<f32>> {
    let batched = gold.score(prompts, responses)?;
    let alone: Vec<f32> = prompts
        .iter()
        .zip(responses)
        .map(|(p, r)| {
            gold.score(std::slice::from_ref(p), std::slice::from_ref(r))
                .map(|s| s[0])
        })
        .collect::<anyhow::Result<_>>()?;
    assert_close(&batched, &alone, tol);
    Ok(batched)
}

/// Every var of `varmap` overwritten with seeded N(0, std²) values (candle's
/// own initialisers are unseeded, and zero T5 layer norms would make
/// every score equal).
pub(super) fn randomize(varmap: &VarMap, std: f64) -> Result {
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

pub(super) fn varmap_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().unwrap();
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect()
}

pub(super) const CHAT_SPECIALS: &[&str] = &[
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
];
pub(super) const CHAT_WORDS: &[&str] = &[
    "hello", "there", "how", "are", "you", "fine", "thanks", "a", "dog", "cat", "is", "good",
    "bad", "what", "?", ".", "it", "tell", "me", "about", "sure", "no", "yes", "the", "sun", "hot",
];

/// A small chat template in the style of HF ones: BOS from
/// `bos_token`, role markers, Python string methods, `raise_exception`.
pub(super) const CHAT_TEMPLATE: &str = "{{ bos_token }}
{% for message in messages %}
{% if message['role'] == 'user' %}<|user|>{% elif message.role == 'assistant' %}<|assistant|>{% else %}{{ raise_exception('unexpected role ' + message.role) }}{% endif %}
 {{ message.content.strip() }} <|end|>
{% endfor %}
{% if add_generation_prompt %}<|assistant|>{% endif %}";

pub(super) fn chat_tokenizer() -> Tokenizer {
    let bos = bos_template("<s>", 1);
    word_tokenizer(CHAT_SPECIALS, CHAT_WORDS, "<unk>", bos)
}

/// An HF dir holding a random Qwen3ForSequenceClassification, its
/// tokenizer and (if given) a tokenizer_config.json with `template`.
pub(super) fn seqcls_dir(
    template: Option<&str>,
) -> Result<(tempfile::TempDir, RewardModel, Tokenizer)> {
    let dir = tempfile::tempdir()?;
    let tokenizer = chat_tokenizer();
    let rm = write_hf_reward_dir(dir.path(), &tiny_qwen3(), 5, &tokenizer)?;
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
pub(super) fn direct_score(rm: &RewardModel, ids: &[u32]) -> Result<f32> {
    let batch = SeqBatch::from_sequences(
        &[(ids.to_vec(), ids.len())],
        0,
        PadSide::Right,
        &Device::Cpu,
    )?;
    Ok(rm.scores(&batch)?.to_vec1::<f32>()?[0])
}

pub(super) const HH_PROMPT: &str = "\n\nHuman: hello there\n\nAssistant: how are you ?\n\nHuman: tell me about a dog\n\nAssistant:";
