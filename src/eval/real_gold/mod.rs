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
use std::path::Path;

use anyhow::{Context, ensure};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::GoldScorer;

mod chat;
mod common;
mod deberta;
mod seqcls;
mod steamshp;
#[cfg(test)]
mod test_support;

pub use chat::{ChatMessage, ChatTemplate, conversation};
pub use deberta::DebertaGold;
pub use seqcls::SeqClsGold;
pub use steamshp::{
    STEAMSHP_DUMMY, SteamShpGold, steamshp_both_orders, steamshp_input, steamshp_post,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::real_gold::test_support::*;
    use serde_json::json;

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
}
