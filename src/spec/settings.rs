//! The typed settings of one sweep cell: what a manifest's `[defaults]`,
//! `[axes]` and per-stage blocks (`[weak]`, `[sft]`, `[align]`, `[generate]`,
//! `[metric]`, `[world]`, `[online]`) resolve to. A setting is named either by a cell key
//! (`dataset`, `objective`, …) or `block.key` (`align.beta`).
use serde::{Deserialize, Serialize};

use super::mixture::SplitMixture;
use super::objective::{DEFAULT_BETA, DEFAULT_EPSILON, DEFAULT_TAU, Objective};
use super::train_on::TrainOn;

/// `weak.beta` when unset: the DPO β of WS-DPO's weak LM (`dpo`,
/// `sft_dpo`). The paper gives no β for it; 0.5 is the one DPO β it gives
/// (Appendix G, the strong model's), and the β the weak LM trained with
/// when it fell back to the tiny and paper profiles' `align.beta`. Its own
/// setting, so sweeping `align.beta` does not re-train the annotator.
pub const DEFAULT_WEAK_BETA: f64 = 0.5;

/// The per-stage blocks, in the order they appear in a manifest.
pub const BLOCKS: &[&str] = &[
    "world", "weak", "sft", "align", "generate", "metric", "online",
];

pub const WEAK_OBJECTIVES: &[&str] = &["bt", "dpo", "sft_dpo", "pairrm"];
/// `topN` (N in 1..=99) is accepted too; `reward-model` only with
/// `regime = "online"`.
pub const ANNOTATIONS: &[&str] = &["human", "ws", "cw", "weak", "topN", "reward-model"];
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
    /// Weak annotator training: bt | dpo | sft_dpo | pairrm (`ws` turns the
    /// default bt into sft_dpo, WS-DPO as the paper runs it).
    pub weak_objective: Option<String>,
    pub seed: Option<u64>,
    pub labeled_fraction: Option<f64>,
    /// Which pairs the strong model trains on: unlabeled | labeled | all.
    pub train_on: Option<String>,
    /// D_L's shares of datasets, e.g. `"harmless80-helpful20"` (`spec::mixture`).
    pub weak_mixture: Option<String>,
    /// D_U's shares of datasets, e.g. `"harmless50-helpful50"`.
    pub unlabeled_mixture: Option<String>,
    /// Share of D_L replaced by flipped pairs of `poison_from`, in (0, 1).
    pub poison_ratio: Option<f64>,
    /// The dataset slot poisoned pairs come from (`"harmless"`).
    pub poison_from: Option<String>,
    /// `offline` (the default: align once on the fixed D_U) or `online`
    /// (iterative DPO on the policy's own samples, `[online]`).
    pub regime: Option<String>,
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
/// The warmup the stages hard-coded before it was a setting (the tiny
/// profile's; the paper's is 100).
fn d_warmup() -> usize {
    10
}
fn d_grad_accum() -> usize {
    1
}
/// transformers' `max_grad_norm` default.
fn d_max_grad_norm() -> f64 {
    1.0
}

/// Declares a block with the training keys (`[weak]`, `[sft]` and
/// `[align]` name them alike) and its [`TrainSettings`]. The keys are written
/// once, here; each block is its own struct because serde's `flatten` cannot
/// deny unknown keys. `own` fields come first, `after_lora_rank` ones after
/// `lora_rank`: the field order is serde's, and so that of the valid keys an
/// unknown-key error lists.
macro_rules! training_block {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            own: { $( $(#[$own_meta:meta])* pub $own:ident: $own_ty:ty, )* }
            after_lora_rank: { $( $(#[$mid_meta:meta])* pub $mid:ident: $mid_ty:ty, )* }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$own_meta])* pub $own: $own_ty, )*
            #[serde(default = "d_lr")]
            pub learning_rate: f64,
            #[serde(default = "d_epochs")]
            pub epochs: usize,
            #[serde(default = "d_batch")]
            pub batch_size: usize,
            #[serde(default)]
            pub lora_rank: Option<usize>,
            $( $(#[$mid_meta])* pub $mid: $mid_ty, )*
            /// Optimiser steps of linear warmup before the cosine decay (Appendix
            /// G: 100). The default is the tiny profile's 10, so its keys are stable.
            #[serde(default = "d_warmup")]
            pub warmup_steps: usize,
            /// AdamW's decoupled weight decay λ (Appendix G: 0.05).
            #[serde(default)]
            pub weight_decay: f64,
            /// Micro-batches of `batch_size` per optimiser step (Appendix G: 4, so
            /// batch 16 × 4 = 64 examples a step).
            #[serde(default = "d_grad_accum")]
            pub grad_accum: usize,
            /// Global gradient-norm clip; 0 turns clipping off.
            #[serde(default = "d_max_grad_norm")]
            pub max_grad_norm: f64,
            /// LoRA scale α (needs `lora_rank`); default 2·rank (Appendix G: r 8, α 16).
            #[serde(default)]
            pub lora_alpha: Option<f64>,
            /// LoRA dropout (needs `lora_rank`); default 0.05 (Appendix G).
            #[serde(default)]
            pub lora_dropout: Option<f64>,
            /// Warmup as a share of the loop's optimiser steps, ⌈ratio · steps⌉
            /// (transformers' `warmup_ratio`); set, it replaces `warmup_steps`.
            #[serde(default)]
            pub warmup_ratio: Option<f64>,
            /// The projections LoRA adapts (needs `lora_rank`), e.g. `["q_proj",
            /// "v_proj"]`; default every projection of the model.
            #[serde(default)]
            pub lora_targets: Option<Vec<String>>,
            /// The learning rate's decay after warmup: `cosine` (the default, TRL's
            /// and the paper's), `linear` or `constant`.
            #[serde(default)]
            pub schedule: Option<LrDecay>,
            /// Longest token sequence (prompt + response) the loop trains on, and
            /// that its reference log-probs and a weak model's labels are computed
            /// on; longer ones lose their end. Default: the model's context (at most
            /// 2048). TRL's `max_length`.
            #[serde(default)]
            pub max_len: Option<usize>,
        }

        impl $name {
            /// The optimisation knobs of this block's training loop.
            pub fn train(&self) -> TrainSettings {
                TrainSettings {
                    learning_rate: self.learning_rate,
                    epochs: self.epochs,
                    batch_size: self.batch_size,
                    lora_rank: self.lora_rank,
                    warmup_steps: self.warmup_steps,
                    weight_decay: self.weight_decay,
                    grad_accum: self.grad_accum,
                    max_grad_norm: self.max_grad_norm,
                    lora_alpha: self.lora_alpha,
                    lora_dropout: self.lora_dropout,
                    warmup_ratio: self.warmup_ratio,
                    lora_targets: self.lora_targets.clone(),
                    schedule: self.schedule,
                    max_len: self.max_len,
                }
            }
        }
    };
}

training_block! {
    /// `[weak]` and `[sft]`: a training loop.
    pub struct TrainBlock {
        own: {}
        after_lora_rank: {
            /// DPO β of a DPO-trained weak LM (`[weak]` only; ignored by bt/pairrm);
            /// unset, [`DEFAULT_WEAK_BETA`], never the align block's β.
            #[serde(default)]
            pub beta: Option<f64>,
        }
    }
}

training_block! {
    /// `[align]`.
    pub struct AlignBlock {
        own: {
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
            /// Per-token mean log-probs instead of sums, for `dpo`, `ipo` and
            /// `custom`. Unset: on for IPO (TRL's, which the paper trains with), off
            /// for DPO and custom losses; rDPO has no normalised form.
            #[serde(default)]
            pub length_normalised: Option<bool>,
            /// Named numbers a custom loss may read (`[align.constants]`).
            #[serde(default)]
            pub constants: std::collections::BTreeMap<String, f64>,
        }
        after_lora_rank: {}
    }
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
    /// Nucleus sampling: each token is drawn from the smallest set of most
    /// likely tokens whose probability reaches `top_p` (in (0, 1]; 1 keeps
    /// every token, the default). Needs `temperature > 0`. Appendix G names
    /// none.
    #[serde(default = "d_top_p")]
    pub top_p: f64,
}
fn d_new_tokens() -> usize {
    32
}
fn d_samples() -> usize {
    1
}
fn d_top_p() -> f64 {
    1.0
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
    /// Also judge the aligned policy's answers against the dataset's
    /// chosen responses (`win_rate`, Table 17; synthetic world only). Off
    /// by default: no stage params hold it, so no key moves.
    #[serde(default)]
    pub win_rate: bool,
}

/// `[online]`: the loop of `regime = "online"` (Tables 21–22). Each round
/// samples two responses to each of its prompts from the current policy,
/// has the cell's labeller pick one, and takes `[align]`'s DPO recipe
/// (`epochs` over the round's pairs) from the current policy against the
/// SFT reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineBlock {
    /// Rounds of sample → label → DPO step.
    #[serde(default = "d_rounds")]
    pub rounds: usize,
    /// D_U prompts per round, taken in D_U order and wrapping round; unset,
    /// ⌈|D_U| / rounds⌉, so the rounds together see D_U's prompts once (the
    /// pairs offline alignment sees).
    #[serde(default)]
    pub prompts_per_round: Option<usize>,
    /// Sampling temperature of the two responses (> 0: two greedy samples
    /// would be the same response).
    #[serde(default = "d_online_temperature")]
    pub temperature: f64,
    /// Most new tokens of each sampled response.
    #[serde(default = "d_new_tokens")]
    pub max_new_tokens: usize,
}
fn d_rounds() -> usize {
    2
}
fn d_online_temperature() -> f64 {
    1.0
}

impl OnlineBlock {
    pub fn is_default(&self) -> bool {
        *self == OnlineBlock::default()
    }
}

impl Default for OnlineBlock {
    fn default() -> Self {
        OnlineBlock {
            rounds: d_rounds(),
            prompts_per_round: None,
            temperature: d_online_temperature(),
            max_new_tokens: d_new_tokens(),
        }
    }
}

/// Offline (one alignment on the fixed D_U) or online (iterative DPO on
/// the policy's own samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    #[default]
    Offline,
    Online,
}

impl Regime {
    pub const NAMES: &[&str] = &["offline", "online"];

    pub fn parse(s: &str) -> Option<Regime> {
        match s {
            "offline" => Some(Regime::Offline),
            "online" => Some(Regime::Online),
            _ => None,
        }
    }

    pub fn is_offline(&self) -> bool {
        *self == Regime::Offline
    }
}

impl std::fmt::Display for Regime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Regime::Offline => "offline",
            Regime::Online => "online",
        })
    }
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
    /// How D_L and D_U are drawn from several datasets and whether D_L is
    /// poisoned; `None` (the default): one dataset split at random.
    #[serde(default)]
    pub mixture: Option<SplitMixture>,
    /// `[world]` overrides of the profile's world config.
    pub world: serde_json::Map<String, serde_json::Value>,
    pub weak: TrainBlock,
    pub sft: TrainBlock,
    pub align: AlignBlock,
    pub generate: GenerateBlock,
    pub metric: MetricBlock,
    /// Offline (the default) or online; `online` is read only when online.
    #[serde(default, skip_serializing_if = "Regime::is_offline")]
    pub regime: Regime,
    #[serde(default, skip_serializing_if = "OnlineBlock::is_default")]
    pub online: OnlineBlock,
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
    /// The cell's judge labels (online only: Online DPO with a reward model).
    RewardModel,
}

impl Annotation {
    pub fn parse(s: &str) -> Option<Annotation> {
        Some(match s {
            "human" => Annotation::Human,
            "ws" => Annotation::WeakLm,
            "cw" => Annotation::Confidence,
            "weak" => Annotation::Weak,
            "reward-model" => Annotation::RewardModel,
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
    // The recipe knobs below are left out of a stage's params (and so of
    // its cache key) at their defaults: keys from before they were settings
    // still name the same runs.
    #[serde(default = "d_warmup", skip_serializing_if = "is_default_warmup")]
    pub warmup_steps: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight_decay: f64,
    #[serde(default = "d_grad_accum", skip_serializing_if = "is_one")]
    pub grad_accum: usize,
    #[serde(default = "d_max_grad_norm", skip_serializing_if = "is_default_clip")]
    pub max_grad_norm: f64,
    /// LoRA α; `None` = 2·rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_alpha: Option<f64>,
    /// LoRA dropout; `None` = [`DEFAULT_LORA_DROPOUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_dropout: Option<f64>,
    /// Warmup as a share of the steps; `None` = `warmup_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ratio: Option<f64>,
    /// Projections LoRA adapts; `None` = every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_targets: Option<Vec<String>>,
    /// Decay after warmup; `None` = cosine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LrDecay>,
    /// Token cap below the model's own; `None` = the model's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

/// How the learning rate falls after warmup, over the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrDecay {
    /// ½ (1 + cos(π · progress)) of the peak: transformers'
    /// `get_cosine_schedule_with_warmup`, which TRL and the paper use.
    #[default]
    Cosine,
    /// (1 − progress) of the peak: `get_linear_schedule_with_warmup`.
    Linear,
    /// The peak until the end: `get_constant_schedule_with_warmup`.
    Constant,
}

/// LoRA dropout when a block sets none (Appendix G's 0.05).
pub const DEFAULT_LORA_DROPOUT: f64 = 0.05;

fn is_default_warmup(v: &usize) -> bool {
    *v == d_warmup()
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn is_one(v: &usize) -> bool {
    *v == 1
}
fn is_default_clip(v: &f64) -> bool {
    *v == d_max_grad_norm()
}

impl TrainSettings {
    /// The sequence cap of a loop on a model whose context allows
    /// `model_max` tokens: the block's `max_len` when it is lower.
    pub fn max_len_within(&self, model_max: usize) -> usize {
        self.max_len.map_or(model_max, |cap| cap.min(model_max))
    }

    /// A loop with the default recipe (warmup 10, no weight decay, no
    /// accumulation, clip at 1, LoRA α = 2r and dropout 0.05).
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
            warmup_steps: d_warmup(),
            weight_decay: 0.0,
            grad_accum: d_grad_accum(),
            max_grad_norm: d_max_grad_norm(),
            lora_alpha: None,
            lora_dropout: None,
            warmup_ratio: None,
            lora_targets: None,
            schedule: None,
            max_len: None,
        }
    }

    /// LoRA's values no run could use, as (key in the block, message); the
    /// optimiser's own ranges are checked by `train::settings_problems`.
    pub fn lora_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, set) in [
            ("lora_alpha", self.lora_alpha.is_some()),
            ("lora_dropout", self.lora_dropout.is_some()),
            ("lora_targets", self.lora_targets.is_some()),
        ] {
            if set && self.lora_rank.is_none() {
                out.push((
                    key,
                    format!("`{key}` needs `lora_rank`: without a rank the block fine-tunes every weight and has no adapters"),
                ));
            }
        }
        if let Some(alpha) = self.lora_alpha
            && !(alpha.is_finite() && alpha > 0.0)
        {
            out.push((
                "lora_alpha",
                format!("`lora_alpha = {alpha}` must be a positive number"),
            ));
        }
        if let Some(p) = self.lora_dropout
            && !(0.0..1.0).contains(&p)
        {
            out.push((
                "lora_dropout",
                format!("`lora_dropout = {p}` must be in [0, 1)"),
            ));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    /// The blocks `training_block!` declares keep their key order: serde's
    /// (so a serialised block is unchanged) and the one an unknown-key
    /// error lists its valid keys in.
    #[test]
    fn training_blocks_keep_their_key_order() {
        const TRAIN: &str = "learning_rate epochs batch_size lora_rank warmup_steps \
                             weight_decay grad_accum max_grad_norm lora_alpha lora_dropout \
                             warmup_ratio lora_targets schedule max_len";
        let order = |lead: &str, mid: &str| -> Vec<String> {
            let mut keys: Vec<String> = lead.split_whitespace().map(String::from).collect();
            let train: Vec<&str> = TRAIN.split_whitespace().collect();
            keys.extend(train[..4].iter().map(|k| k.to_string()));
            keys.extend(mid.split_whitespace().map(String::from));
            keys.extend(train[4..].iter().map(|k| k.to_string()));
            keys
        };
        let weak_keys = order("", "beta");
        let align_keys = order(
            "beta tau eps weighting loss length_normalised constants",
            "",
        );
        /// The keys of a default block as serialised, in order (a default
        /// block nests no keys: `constants` is empty).
        fn serialised_keys<T: Serialize + serde::de::DeserializeOwned>() -> Vec<String> {
            let block: T = toml::from_str("").unwrap();
            let json = serde_json::to_string(&block).unwrap();
            json.split('"')
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[1].starts_with(':'))
                .map(|w| w[0].to_string())
                .collect()
        }
        fn listed_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
            let err = toml::from_str::<T>("nope = 1").unwrap_err().to_string();
            let listed = err.split("expected one of ").nth(1).expect(&err);
            listed
                .lines()
                .next()
                .unwrap()
                .split(", ")
                .map(|k| k.trim_matches('`').to_string())
                .collect()
        }
        assert_eq!(serialised_keys::<TrainBlock>(), weak_keys);
        assert_eq!(serialised_keys::<AlignBlock>(), align_keys);
        assert_eq!(listed_keys::<TrainBlock>(), weak_keys);
        assert_eq!(listed_keys::<AlignBlock>(), align_keys);
    }

    /// The paper profile's training blocks hold Appendix G's recipe.
    #[test]
    fn paper_profile_carries_appendix_g() {
        let paper = Profile::load("paper").unwrap();
        let block = |name: &str| paper.defaults[name].as_table().unwrap().clone();
        let weak: TrainBlock = block("weak").try_into().unwrap();
        let sft: TrainBlock = block("sft").try_into().unwrap();
        let align: AlignBlock = block("align").try_into().unwrap();
        let weak = weak.train();
        assert_eq!((weak.epochs, weak.batch_size, weak.grad_accum), (5, 32, 1));
        assert_eq!(weak.lora_rank, None, "the weak model is fully fine-tuned");
        for (train, epochs) in [(sft.train(), 3), (align.train(), 5)] {
            assert_eq!(train.epochs, epochs);
            assert_eq!((train.batch_size, train.grad_accum), (16, 4));
            assert_eq!((train.warmup_steps, train.weight_decay), (100, 0.05));
            assert_eq!(train.lora_rank, Some(8));
            assert_eq!(
                (train.lora_alpha, train.lora_dropout),
                (Some(16.0), Some(0.05))
            );
            assert!(
                crate::train::settings_problems(&train).is_empty(),
                "{:?}",
                crate::train::settings_problems(&train)
            );
        }
    }

    /// The recipe knobs at their defaults are not in a stage's params, so
    /// the keys of runs from before they existed still match; off their
    /// defaults they are.
    #[test]
    fn default_knobs_stay_out_of_params() {
        let plain = TrainSettings::new(1e-3, 1, 16, Some(8));
        let json = serde_json::to_value(&plain).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["batch_size", "epochs", "learning_rate", "lora_rank"]);
        let paper = TrainSettings {
            grad_accum: 4,
            warmup_steps: 100,
            weight_decay: 0.05,
            lora_alpha: Some(16.0),
            ..plain
        };
        let json = serde_json::to_value(&paper).unwrap();
        for key in ["grad_accum", "warmup_steps", "weight_decay", "lora_alpha"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(
            serde_json::from_value::<TrainSettings>(json).unwrap(),
            paper
        );
    }
}
