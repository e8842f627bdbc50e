//! A whitespace word-level tokenizer over a fixed vocabulary: the synthetic
//! world's tokenizer. One word ↔ one id; anything outside the vocabulary is
//! `<unk>`.
use std::collections::HashMap;

use anyhow::{Context, bail};

use crate::data::Tokenizer;

/// Spelling of the padding token; id 0 in every vocabulary built by [`WordTokenizer::new`].
pub const PAD: &str = "<pad>";
/// Spelling of the end-of-sequence token; id 1.
pub const EOS: &str = "<eos>";
/// Spelling of the unknown-word token; id 2.
pub const UNK: &str = "<unk>";

/// Word-level tokenizer: `encode` splits on whitespace, `decode` joins with
/// single spaces, so text made of vocabulary words separated by single spaces
/// round-trips exactly.
#[derive(Debug, Clone)]
pub struct WordTokenizer {
    words: Vec<String>,
    ids: HashMap<String, u32>,
}

impl WordTokenizer {
    /// Builds a tokenizer whose ids are `<pad> <eos> <unk>` followed by
    /// `words` in order. Errors on a duplicated word, a word containing
    /// whitespace, or a word spelled like a special token.
    pub fn new<S: AsRef<str>>(words: &[S]) -> anyhow::Result<Self> {
        let mut vocab: Vec<String> = vec![PAD.into(), EOS.into(), UNK.into()];
        let mut ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        for word in words {
            let word = word.as_ref();
            if word.is_empty() || word.contains(char::is_whitespace) {
                bail!(
                    "vocabulary word {word:?} is empty or contains whitespace; words are split on whitespace"
                );
            }
            if ids.contains_key(word) {
                bail!(
                    "vocabulary word {word:?} appears twice (or is a special token); list each word once"
                );
            }
            ids.insert(word.to_string(), vocab.len() as u32);
            vocab.push(word.to_string());
        }
        Ok(Self { words: vocab, ids })
    }

    /// Id of `word`, or `None` if it is not in the vocabulary.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// The vocabulary, in id order (specials first).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    fn unk_id(&self) -> u32 {
        2
    }
}

impl Tokenizer for WordTokenizer {
    fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        Ok(text
            .split_whitespace()
            .map(|w| self.id(w).unwrap_or(self.unk_id()))
            .collect())
    }

    /// Skips `<pad>` and `<eos>`; `<unk>` is kept as the word `<unk>` so that
    /// a lossy encoding stays visible in the decoded text.
    fn decode(&self, ids: &[u32]) -> anyhow::Result<String> {
        let mut out: Vec<&str> = Vec::with_capacity(ids.len());
        for &id in ids {
            let word = self.words.get(id as usize).with_context(|| {
                format!(
                    "token id {id} is outside the word vocabulary (size {}); was it produced by another tokenizer?",
                    self.words.len()
                )
            })?;
            if id != self.pad_id() && id != self.eos_id() {
                out.push(word);
            }
        }
        Ok(out.join(" "))
    }

    fn vocab_size(&self) -> usize {
        self.words.len()
    }

    fn eos_id(&self) -> u32 {
        1
    }

    fn pad_id(&self) -> u32 {
        0
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.words.get(id as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_become_unk_and_specials_are_skipped_on_decode() {
        let tok = WordTokenizer::new(&["hello", "world"]).unwrap();
        assert_eq!(tok.encode("hello  there\tworld").unwrap(), vec![3, 2, 4]);
        assert_eq!(
            tok.decode(&[0, 3, 2, 4, 1, 0]).unwrap(),
            "hello <unk> world"
        );
        assert_eq!(tok.vocab_size(), 5);
    }

    #[test]
    fn duplicate_or_special_words_are_rejected() {
        assert!(WordTokenizer::new(&["a", "a"]).is_err());
        assert!(WordTokenizer::new(&["<eos>"]).is_err());
        assert!(WordTokenizer::new(&["two words"]).is_err());
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let tok = WordTokenizer::new(&["a"]).unwrap();
        let err = tok.decode(&[9]).unwrap_err().to_string();
        assert!(err.contains("token id 9"), "{err}");
    }
}
