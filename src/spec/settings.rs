//! The typed settings of one sweep cell: what a manifest's `[defaults]`,
//! `[axes]` and per-stage blocks (`[weak]`, `[sft]`, `[align]`, `[generate]`,
//! `[metric]`, `[world]`) resolve to. A setting is named either by a cell key
//! (`dataset`, `objective`, …) or `block.key` (`align.beta`).
use serde::{Deserialize, Serialize};

use super::objective::{DEFAULT_BETA, DEFAULT_EPSILON, DEFAULT_TAU, Objective};
use super::train_on::TrainOn;

/// The per-stage blocks, in the order they appear in a manifest.
pub const BLOCKS: &[&str] = &["world", "weak", "sft", "align", "generate", "metric"];

pub const WEAK_OBJECTIVES: &[&str] = &["bt", "dpo", "sft_dpo", "pairrm"];
/// `topN` (N in 1..=99) is accepted too.
pub const ANNOTATIONS: &[&str] = &["human", "ws", "cw", "weak", "topN"];
/// Named weighting schemes (Table 5); any expression of `s_c`, `s_r`,
/// `delta`, `c` the expression parser accepts is a scheme too.
pub const WEIGHTINGS: &[&str] = &["uniform", "cw", "sigmoid", "margin", "squared"];

/// Cell-level keys (strings and numbers that name the cell).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellKeys {
    /// A profile dataset slot.
    pub dataset: Option<String>,
    /// A profile pair slot (weak + strong model).
    pub pair: Option<String>,
    /// Overrides the pair's weak model (a profile model slot).
    pub weak_model: Option<String>,
    /// Overrides the pair's strong model (a profile model slot).
    pub strong_model: Option<String>,
    /// Alignment objective: dpo | ipo | rdpo | custom.
    pub objective: Option<String>,
    /// Who labels D_U and how pairs are weighted: human | ws | cw | weak | topN.
    pub annotation: Option<String>,
    /// Weak annotator training: bt | dpo | sft_dpo | pairrm (`ws` forces dpo).
    pub weak_objective: Option<String>,
    pub seed: Option<u64>,
    pub labeled_fraction: Option<f64>,
    /// Which pairs the strong model trains on: unlabeled | labeled | all.
    pub train_on: Option<String>,
}

fn d_lr() -> f64 {
    1e-3
}
fn d_epochs() -> usize {
    1
}
fn d_batch() -> usize {
    16
}

/// `[weak]` and `[sft]`: a training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainBlock {
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub lora_rank: Option<usize>,
    /// DPO β of a DPO-trained weak LM (`[weak]` only; ignored by bt/pairrm).
    #[serde(default)]
    pub beta: Option<f64>,
}

impl TrainBlock {
    /// The optimisation knobs of this block's training loop.
    pub fn train(&self) -> TrainSettings {
        let (lr, epochs, batch) = (self.learning_rate, self.epochs, self.batch_size);
        TrainSettings::new(lr, epochs, batch, self.lora_rank)
    }
}

/// `[align]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignBlock {
    /// β of DPO / rDPO.
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// τ of IPO.
    #[serde(default = "d_tau")]
    pub tau: f64,
    /// rDPO's assumed label-flip rate ε.
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// `uniform`, `cw`, or an expression of `s_c`, `s_r` (used with annotation `cw`).
    #[serde(default = "d_weighting")]
    pub weighting: String,
    /// The loss of `objective = "custom"`, an expression of the pair's
    /// log-probs (`train::custom_loss`), e.g. `"relu(1 - beta*h)"`; parsed
    /// and checked when the cell is resolved (`manifest::resolve`).
    #[serde(default)]
    pub loss: Option<String>,
    /// `objective = "custom"`: per-token mean log-probs instead of sums.
    #[serde(default)]
    pub length_normalised: bool,
    /// Named numbers a custom loss may read (`[align.constants]`).
    #[serde(default)]
    pub constants: std::collections::BTreeMap<String, f64>,
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default)]
    pub lora_rank: Option<usize>,
}

fn d_beta() -> f64 {
    DEFAULT_BETA
}
fn d_tau() -> f64 {
    DEFAULT_TAU
}
fn d_eps() -> f64 {
    DEFAULT_EPSILON
}
fn d_weighting() -> String {
    "cw".into()
}

impl AlignBlock {
    /// The optimisation knobs of the alignment loop.
    pub fn train(&self) -> TrainSettings {
        let (lr, epochs, batch) = (self.learning_rate, self.epochs, self.batch_size);
        TrainSettings::new(lr, epochs, batch, self.lora_rank)
    }
}

/// `[generate]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBlock {
    #[serde(default)]
    pub temperature: f64,
    #[serde(default = "d_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub num_prompts: Option<usize>,
    /// Responses sampled per test prompt (needs `temperature > 0` when > 1).
    /// GRA then compares sample k of the policy with sample k of the
    /// reference over every prompt and k: more comparisons, less noise.
    #[serde(default = "d_samples")]
    pub samples: usize,
}
fn d_new_tokens() -> usize {
    32
}
fn d_samples() -> usize {
    1
}

/// `[metric]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBlock {
    /// |gold difference| at or below which two responses tie.
    #[serde(default)]
    pub tie_margin: f64,
    /// How GRA counts a tie: `loss` (the paper's strict win, the default),
    /// `half` or `exclude`; the tie rate is reported beside GRA either way.
    #[serde(default)]
    pub ties: TieRule,
    /// The judge: `profile` (the profile's gold for the dataset, the
    /// default), `true` (the synthetic world's true reward) or `learned` (a
    /// reward model trained on the world's own gold-labelled pairs).
    #[serde(default)]
    pub gold: Option<String>,
}

/// Everything one cell resolved to, before binding to a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub dataset: String,
    pub pair: String,
    pub weak_model: Option<String>,
    pub strong_model: Option<String>,
    pub objective: Objective,
    pub annotation: String,
    pub weak_objective: String,
    pub seed: u64,
    pub labeled_fraction: f64,
    /// D_U (the default), D_L or both (human labels only).
    #[serde(default)]
    pub train_on: TrainOn,
    /// `[world]` overrides of the profile's world config.
    pub world: serde_json::Map<String, serde_json::Value>,
    pub weak: TrainBlock,
    pub sft: TrainBlock,
    pub align: AlignBlock,
    pub generate: GenerateBlock,
    pub metric: MetricBlock,
}

/// How a cell's annotation setting labels and weights D_U.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Annotation {
    /// Human labels, uniform weights.
    Human,
    /// Labels of a DPO-trained weak LM, uniform weights.
    WeakLm,
    /// Bradley–Terry weak labels with confidence weights.
    Confidence,
    /// Bradley–Terry weak labels, uniform weights.
    Weak,
    /// Bradley–Terry weak labels, keep the top `N` percent by confidence.
    Top(u32),
}

impl Annotation {
    pub fn parse(s: &str) -> Option<Annotation> {
        Some(match s {
            "human" => Annotation::Human,
            "ws" => Annotation::WeakLm,
            "cw" => Annotation::Confidence,
            "weak" => Annotation::Weak,
            _ => {
                let n: u32 = s.strip_prefix("top")?.parse().ok()?;
                if !(1..=99).contains(&n) {
                    return None;
                }
                Annotation::Top(n)
            }
        })
    }
}

/// Optimisation knobs of one training loop (weak annotator, SFT, alignment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    /// LoRA rank on the projections; `None` = full fine-tuning.
    #[serde(default)]
    pub lora_rank: Option<usize>,
}

impl TrainSettings {
    pub fn new(
        learning_rate: f64,
        epochs: usize,
        batch_size: usize,
        lora_rank: Option<usize>,
    ) -> Self {
        TrainSettings {
            learning_rate,
            epochs,
            batch_size,
            lora_rank,
        }
    }
}

/// How GRA counts a comparison whose gold rewards tie (`[metric] ties`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TieRule {
    /// A tie is not a win: GRA = wins / all (the paper's rule).
    #[default]
    Loss,
    /// A tie counts ½: GRA = (wins + ½ ties) / all.
    Half,
    /// Ties are left out: GRA = wins / (all − ties); ½ when everything ties,
    /// since then neither side was preferred.
    Exclude,
}
