//! HF `tokenizers` (the library behind every `tokenizer.json`) as a
//! [`crate::data::Tokenizer`].
//!
//! Used for HF checkpoint directories (`tokenizer.json` on disk) and for GGUF
//! files, whose metadata [`crate::data::gguf_tokenizer`] turns into the same
//! in-memory tokenizer.
use std::path::Path;

use anyhow::{Context, Result, anyhow};

/// A `tokenizers::Tokenizer` plus the two ids our models need to know.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    eos_id: u32,
    pad_id: u32,
    /// What the file's post-processor puts before a sequence (its BOS).
    start_ids: Vec<u32>,
}

impl HfTokenizer {
    pub fn new(inner: tokenizers::Tokenizer, eos_id: u32, pad_id: u32) -> Self {
        let start_ids = start_ids_of(&inner);
        Self {
            inner,
            eos_id,
            pad_id,
            start_ids,
        }
    }

    /// Reads a `tokenizer.json`. EOS / pad come from the model's config, not the file.
    pub fn from_file(path: &Path, eos_id: u32, pad_id: u32) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            anyhow!(
                "cannot read tokenizer {}: {e} (an HF model directory needs the tokenizer.json the model ships)",
                path.display()
            )
        })?;
        Ok(Self::new(inner, eos_id, pad_id))
    }

    /// The id of a token string, e.g. `"<|im_end|>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

impl crate::data::Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        // `false`: no post-processor BOS/EOS; special tokens written in the text
        // (e.g. "<|im_start|>") are still matched as single tokens.
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizer cannot encode {:?}: {e}", truncate(text)))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.start_ids.clone();
        ids.extend(crate::data::Tokenizer::encode(self, text)?);
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("tokenizer cannot decode {} ids: {e}", ids.len()))
            .context("decoding token ids")
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn eos_id(&self) -> u32 {
        self.eos_id
    }

    fn pad_id(&self) -> u32 {
        self.pad_id
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

/// The ids the post-processor adds *before* a single sequence: encode a
/// probe with and without special tokens and keep what precedes the plain
/// ids (a template such as `<s> $A </s>` gives `<s>`; the trailing `</s>` is
/// the response's business). Empty when there is no post-processor.
fn start_ids_of(inner: &tokenizers::Tokenizer) -> Vec<u32> {
    let ids = |special: bool| {
        inner
            .encode("a", special)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    };
    let (plain, with) = (ids(false), ids(true));
    (0..=with.len().saturating_sub(plain.len()))
        .find(|&start| with[start..].starts_with(&plain))
        .map(|start| with[..start].to_vec())
        .unwrap_or_default()
}

/// The first 60 characters of `text`, for error messages.
fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Tokenizer;
    use crate::testing::word_tokenizer;
    use tokenizers::processors::template::TemplateProcessing;

    fn with_template(single: &str) -> HfTokenizer {
        let post = TemplateProcessing::builder()
            .try_single(single)
            .unwrap()
            .special_tokens(vec![("<s>", 1), ("</s>", 2)])
            .build()
            .unwrap();
        let inner = word_tokenizer(
            &["<pad>", "<s>", "</s>", "<unk>"],
            &["a", "b"],
            "<unk>",
            post,
        );
        HfTokenizer::new(inner, 2, 0)
    }

    /// Prompts start with the post-processor's BOS (Llama, OPT) and nothing
    /// else: a template's trailing EOS is not a prompt's.
    #[test]
    fn prompts_get_the_tokenizers_start_tokens_and_only_those() {
        for template in ["<s> $A", "<s> $A </s>"] {
            let tok = with_template(template);
            assert_eq!(tok.encode("b a").unwrap(), [5, 4], "{template}");
            assert_eq!(tok.encode_prompt("b a").unwrap(), [1, 5, 4], "{template}");
        }
        let plain = with_template("$A");
        assert_eq!(plain.encode_prompt("b a").unwrap(), [5, 4]);
    }
}
