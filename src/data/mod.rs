//! Data: the synthetic preference world, real dataset loaders, tokenisers and
//! splits. Every source yields [`PreferencePair`]s and test prompts as text; a
//! [`Tokenizer`] turns text into ids, so stages never know which profile they run.
pub mod gguf_tokenizer;
pub mod hf_tokenizer;
pub mod real;
pub mod split;
pub mod synthetic;
pub mod word_tokenizer;

use serde::{Deserialize, Serialize};

/// One human-labelled comparison: `chosen` is the response the (simulated or
/// real) human preferred.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// Text ↔ token ids. Implemented by the synthetic world's word-level
/// tokenizer, by HF `tokenizer.json` files and by GGUF metadata.
pub trait Tokenizer: Send + Sync {
    /// Ids of `text`, without BOS/EOS (callers add them where a model wants them).
    fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>>;
    /// Ids of a prompt, the start of a sequence: the tokenizer's own
    /// start-of-sequence tokens (Llama 3's `<|begin_of_text|>`, OPT's `</s>`;
    /// none for Qwen, SmolLM2 or the synthetic world), then `encode(text)`.
    /// A pretrained model saw them before every document, so training and
    /// generation put them before every prompt; responses follow unprefixed.
    fn encode_prompt(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        self.encode(text)
    }
    /// Text of `ids`, special tokens skipped.
    fn decode(&self, ids: &[u32]) -> anyhow::Result<String>;
    fn vocab_size(&self) -> usize;
    /// End-of-sequence id: appended to responses, stops generation.
    fn eos_id(&self) -> u32;
    /// Padding id (masked out everywhere, so any valid id works).
    fn pad_id(&self) -> u32;
    /// The vocabulary form of one id (byte-level BPE shows a leading space
    /// as `Ġ`), for showing the likeliest next tokens.
    fn id_to_token(&self, id: u32) -> Option<String>;
}
