//! A pairwise judge: a local instruct decoder asked "which response is
//! better, A or B?" — the paper profile's stand-in for Table 17's GPT-4,
//! which cannot be called from here.
//!
//! Why both orders: LMs prefer a position (small ones answer "A" to
//! almost anything), so one ordering measures the position as much as the
//! responses. Each comparison is judged twice, ours as A then ours as B;
//! only a preference that survives the swap counts ([`both_orders`]), and
//! a judge that flips with the order has said nothing: a tie, counted by
//! the profile's `ties` rule like any other.
//!
//! Why next-token log-probs: the verdict is `log p("A")` against
//! `log p("B")` for the first token of the judge's answer ([`verdict`]),
//! one forward pass, deterministic (no sampling), and never an answer that
//! has to be parsed out of free text.
//!
//! The user message is `templates/judge/pairwise.j2` (the one place the
//! wording lives); the model's own chat template wraps it, with the
//! assistant turn opened, so the next token is the start of the answer.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use candle_core::Device;

use super::gra::PromptOutcome;
use super::real_gold::{ChatMessage, ChatTemplate};
use crate::model::gguf::GgufFile;
use crate::model::probe::{LoadedLm, ModelSource, load_lm};

/// The judge's user message: `prompt`, `response_a`, `response_b`.
pub const PAIRWISE_TEMPLATE: &str = include_str!("../../templates/judge/pairwise.j2");

/// The GGUF metadata key of a model's chat template.
const GGUF_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// Which response one judging prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    A,
    B,
    /// `log p("A") == log p("B")`: no preference.
    Neither,
}

/// The verdict of next-token log-probs: the likelier letter.
pub fn verdict(logp_a: f32, logp_b: f32) -> Verdict {
    match logp_a.total_cmp(&logp_b) {
        std::cmp::Ordering::Greater => Verdict::A,
        std::cmp::Ordering::Less => Verdict::B,
        std::cmp::Ordering::Equal => Verdict::Neither,
    }
}

/// One comparison of ours against the reference, after both orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Win,
    Loss,
    Tie,
}

/// The order-swap rule. `ours_as_a`: the verdict with ours as response A
/// and the reference as B; `ours_as_b`: with the two swapped. Ours wins
/// only if both pick it (A, then B), loses only if both pick the reference
/// (B, then A); anything else — the same letter twice (a position
/// preference) or no preference in either order — is a tie.
pub fn both_orders(ours_as_a: Verdict, ours_as_b: Verdict) -> Outcome {
    match (ours_as_a, ours_as_b) {
        (Verdict::A, Verdict::B) => Outcome::Win,
        (Verdict::B, Verdict::A) => Outcome::Loss,
        _ => Outcome::Tie,
    }
}

/// Wins and ties of a set of comparisons, for the GRA rules ([`PromptOutcome::gra`]).
pub fn tally(outcomes: &[Outcome]) -> PromptOutcome {
    PromptOutcome {
        wins: outcomes.iter().filter(|o| **o == Outcome::Win).count() as u32,
        ties: outcomes.iter().filter(|o| **o == Outcome::Tie).count() as u32,
        comparisons: outcomes.len() as u32,
    }
}

/// [`PAIRWISE_TEMPLATE`] rendered: the judge's user message.
pub fn pairwise_message(prompt: &str, response_a: &str, response_b: &str) -> Result<String> {
    let env = minijinja::Environment::new();
    env.render_str(
        PAIRWISE_TEMPLATE,
        minijinja::context! {
            prompt => prompt.trim(),
            response_a => response_a.trim(),
            response_b => response_b.trim(),
        },
    )
    .map_err(|e| anyhow!("templates/judge/pairwise.j2 failed to render: {e:#}"))
}

/// An instruct decoder (HF dir or GGUF file) judging pairs.
pub struct PairwiseJudge {
    lm: LoadedLm,
    chat: ChatTemplate,
    token_a: u32,
    token_b: u32,
}

impl PairwiseJudge {
    /// Loads the judge at `path` (an instruct model: it needs a chat
    /// template, from `tokenizer_config.json` / `chat_template.jinja` or the
    /// GGUF's metadata).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let lm = load_lm(path, device)
            .with_context(|| format!("loading the pairwise judge {}", path.display()))?;
        let chat = match lm.source {
            ModelSource::Gguf => {
                let gguf = GgufFile::open(path)?;
                let source = gguf.meta_str(GGUF_CHAT_TEMPLATE).with_context(|| {
                    format!(
                        "{}: the judge must be an instruct model with a chat template \
                         (`{GGUF_CHAT_TEMPLATE}`); give the instruct variant's GGUF",
                        path.display()
                    )
                })?;
                ChatTemplate::new(source.to_string(), BTreeMap::new(), path.to_path_buf())?
            }
            _ => ChatTemplate::from_dir(path)?.with_context(|| {
                format!(
                    "{}: the judge must be an instruct model with a chat template \
                     (tokenizer_config.json's `chat_template` or chat_template.jinja); \
                     download the instruct variant's tokenizer files too",
                    path.display()
                )
            })?,
        };
        let single = |letter: &str| -> Result<u32> {
            match lm.tokenizer.encode(letter)?.as_slice() {
                [id] => Ok(*id),
                ids => bail!(
                    "{}: the judge's tokenizer splits {letter:?} into {ids:?}; a verdict needs \
                     it to be one token",
                    path.display()
                ),
            }
        };
        let (token_a, token_b) = (single("A")?, single("B")?);
        Ok(Self {
            lm,
            chat,
            token_a,
            token_b,
        })
    }

    /// What the judge reads before its answer's first token.
    pub fn input(&self, prompt: &str, response_a: &str, response_b: &str) -> Result<String> {
        let message = ChatMessage {
            role: "user",
            content: pairwise_message(prompt, response_a, response_b)?,
        };
        self.chat.render_with(&[message], true)
    }

    /// `(log p("A"), log p("B"))` as the first token of the judge's answer.
    pub fn letter_logprobs(
        &self,
        prompt: &str,
        response_a: &str,
        response_b: &str,
    ) -> Result<(f32, f32)> {
        let ids = self
            .lm
            .tokenizer
            .encode_prompt(&self.input(prompt, response_a, response_b)?)?;
        let logprobs = self.lm.next_token_logprobs(&ids)?;
        Ok((
            logprobs[self.token_a as usize],
            logprobs[self.token_b as usize],
        ))
    }

    /// Ours against the reference for one prompt, in both orders.
    pub fn compare(&self, prompt: &str, ours: &str, reference: &str) -> Result<Outcome> {
        let (a1, b1) = self.letter_logprobs(prompt, ours, reference)?;
        let (a2, b2) = self.letter_logprobs(prompt, reference, ours)?;
        Ok(both_orders(verdict(a1, b1), verdict(a2, b2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TieRule;
    use Verdict::{A, B, Neither};

    #[test]
    fn the_likelier_letter_is_the_verdict() {
        assert_eq!(verdict(-0.5, -2.0), A);
        assert_eq!(verdict(-3.0, -0.1), B);
        assert_eq!(verdict(-1.0, -1.0), Neither);
    }

    /// Every pair of verdicts, by hand: ours is A in the first order and B
    /// in the second, so (A, B) picks ours twice and (B, A) the reference
    /// twice; the same letter twice is the position talking.
    #[test]
    fn a_win_or_loss_needs_both_orders_to_agree() {
        let table = [
            ((A, B), Outcome::Win),
            ((B, A), Outcome::Loss),
            ((A, A), Outcome::Tie),
            ((B, B), Outcome::Tie),
            ((A, Neither), Outcome::Tie),
            ((Neither, B), Outcome::Tie),
            ((Neither, A), Outcome::Tie),
            ((B, Neither), Outcome::Tie),
            ((Neither, Neither), Outcome::Tie),
        ];
        for ((first, second), want) in table {
            assert_eq!(
                both_orders(first, second),
                want,
                "{first:?} then {second:?}"
            );
        }
    }

    /// 2 wins, 1 loss, 2 ties of 5: loss rule 2/5, half (2 + 1)/5, exclude 2/3.
    #[test]
    fn ties_count_by_the_profiles_rule() {
        let outcomes = [
            both_orders(A, B),
            both_orders(A, B),
            both_orders(B, A),
            both_orders(A, A),
            both_orders(B, B),
        ];
        let counts = tally(&outcomes);
        assert_eq!((counts.wins, counts.ties, counts.comparisons), (2, 2, 5));
        let loss = counts.gra(TieRule::Loss).unwrap();
        assert_eq!((loss.accuracy, loss.tie_rate), (0.4, 0.4));
        assert_eq!(counts.gra(TieRule::Half).unwrap().accuracy, 0.6);
        assert_eq!(counts.gra(TieRule::Exclude).unwrap().accuracy, 2.0 / 3.0);
    }

    #[test]
    fn the_message_holds_both_responses_under_their_letters() {
        let m = pairwise_message(" Capital of France?", "Paris. ", "{{ not a tag }}").unwrap();
        let q = m.find("Question: Capital of France?").expect(&m);
        let a = m.find("Response A: Paris.\n").expect(&m);
        // A response is inserted verbatim, never rendered as a template.
        let b = m.find("Response B: {{ not a tag }}").expect(&m);
        assert!(q < a && a < b, "{m}");
        assert!(m.trim_end().ends_with("A or B."), "{m}");
        assert!(!m.contains("{#"), "the template's comment leaked: {m}");
    }
}
