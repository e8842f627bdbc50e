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
}

impl HfTokenizer {
    pub fn new(inner: tokenizers::Tokenizer, eos_id: u32, pad_id: u32) -> Self {
        Self {
            inner,
            eos_id,
            pad_id,
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

    /// The token string of one id (its vocab form, e.g. `"Ġthe"`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
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
}

/// The first 60 characters of `text`, for error messages.
fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}
