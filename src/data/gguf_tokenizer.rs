//! The tokenizer stored in a GGUF file's metadata, rebuilt as an HF tokenizer.
//!
//! llama.cpp stores a GPT-2-style byte-level BPE as `tokenizer.ggml.tokens`,
//! `tokenizer.ggml.merges`, `tokenizer.ggml.token_type` and a pre-tokenizer
//! name `tokenizer.ggml.pre`. We write exactly the `tokenizer.json` that the
//! original HF model ships (for SmolLM2: `pre = smollm` → digits split one by
//! one, then byte-level without a prefix space; the control tokens, type 3,
//! matched whole as special tokens) and let `tokenizers` parse it.
//!
//! candle's `TokenizerFromGguf` is not used: it adds a prefix space and reads
//! the wrong pad/unk keys for this file.
use anyhow::{Context, Result, anyhow, bail};
use candle_core::quantized::gguf_file::Value;
use serde_json::{Value as Json, json};

use super::hf_tokenizer::HfTokenizer;
use crate::model::gguf::GgufFile;

/// llama.cpp's `token_type` for control tokens (`<|im_start|>`, …).
const TOKEN_TYPE_CONTROL: i32 = 3;

/// Builds the tokenizer of `gguf` from its metadata.
pub fn tokenizer_from_gguf(gguf: &GgufFile) -> Result<HfTokenizer> {
    let file = gguf.path.display();
    let model = gguf.meta_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        bail!(
            "GGUF file {file}: tokenizer.ggml.model = `{model}`; only byte-level BPE (`gpt2`) is supported"
        );
    }
    let pre = gguf.meta_str("tokenizer.ggml.pre").unwrap_or("default");
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level,
        ]}),
        "default" | "gpt-2" => byte_level,
        other => bail!(
            "GGUF file {file}: tokenizer.ggml.pre = `{other}` is not supported (known: smollm, gpt-2, default)"
        ),
    };

    let tokens = string_array(gguf, "tokenizer.ggml.tokens")?;
    let merges = string_array(gguf, "tokenizer.ggml.merges")?;
    let token_types: Vec<i32> = gguf
        .meta("tokenizer.ggml.token_type")?
        .to_vec()?
        .iter()
        .map(|v| v.to_i32())
        .collect::<candle_core::Result<_>>()
        .with_context(|| {
            format!("GGUF file {file}: tokenizer.ggml.token_type is not an i32 array")
        })?;
    if token_types.len() != tokens.len() {
        bail!(
            "GGUF file {file}: {} token types for {} tokens",
            token_types.len(),
            tokens.len()
        );
    }

    let vocab: serde_json::Map<String, Json> = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let added_tokens: Vec<Json> = tokens
        .iter()
        .zip(&token_types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == TOKEN_TYPE_CONTROL)
        .map(|(id, (token, _))| {
            json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    let inner: tokenizers::Tokenizer = tokenizer_json.to_string().parse().map_err(|e| {
        anyhow!("GGUF file {file}: cannot build the tokenizer from its metadata: {e}")
    })?;

    let eos_id = gguf.meta_u32("tokenizer.ggml.eos_token_id")?;
    let pad_id = match gguf.content.metadata.get("tokenizer.ggml.padding_token_id") {
        Some(_) => gguf.meta_u32("tokenizer.ggml.padding_token_id")?,
        None => eos_id,
    };
    Ok(HfTokenizer::new(inner, eos_id, pad_id))
}

fn string_array(gguf: &GgufFile, key: &str) -> Result<Vec<String>> {
    gguf.meta(key)?
        .to_vec()?
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(anyhow!(
                "GGUF file {}: `{key}` should hold strings, found {other:?}",
                gguf.path.display()
            )),
        })
        .collect()
}
