//! Which judge scores a cell's generations.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which judge a `score` stage uses, as a profile or a manifest names it.
///
/// The paper judges every method with a *learned* reward model (Skywork,
/// OpenAssistant, SteamSHP). On the synthetic world the true reward is known
/// exactly, so a user can ask both "does CW-PO win under the true reward?"
/// and "does it win under a learned judge that is itself imperfect?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GoldSpec {
    /// The synthetic world's programmatic reward (tiny profile).
    TrueReward,
    /// A reward model trained by the `gold_train` stage on a large, separate,
    /// gold-labelled set of the synthetic world (the profile's `[learned_gold]`).
    Learned,
    /// A decoder `*ForSequenceClassification` RM in an HF dir (Skywork-Reward-V2).
    RewardModel { path: PathBuf },
    /// A DeBERTa-v2 sequence-classification RM (OpenAssistant, TL;DR's judge).
    DebertaReward { path: PathBuf },
    /// SteamSHP, a flan-T5 preference model (SHP's judge).
    Steamshp { path: PathBuf },
}

impl GoldSpec {
    /// The names a manifest's `metric.gold` accepts (`profile` = the
    /// profile's gold for the dataset, the default).
    pub const MANIFEST_CHOICES: &'static [&'static str] = &["profile", "true", "learned"];

    /// The local checkpoint this judge loads, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            GoldSpec::TrueReward | GoldSpec::Learned => None,
            GoldSpec::RewardModel { path }
            | GoldSpec::DebertaReward { path }
            | GoldSpec::Steamshp { path } => Some(path),
        }
    }

    /// What the judge is, for a report's models table.
    pub fn describe(&self) -> String {
        match self {
            GoldSpec::TrueReward => "the synthetic world's true reward".into(),
            GoldSpec::Learned => {
                "a reward model learned on the world's gold-labelled pairs (`gold_train`)".into()
            }
            other => format!(
                "{} at {}",
                other.kind_name(),
                other
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }

    /// A short name for reports (`true_reward`, `learned`, `reward_model`, …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            GoldSpec::TrueReward => "true_reward",
            GoldSpec::Learned => "learned",
            GoldSpec::RewardModel { .. } => "reward_model",
            GoldSpec::DebertaReward { .. } => "deberta_reward",
            GoldSpec::Steamshp { .. } => "steamshp",
        }
    }
}
