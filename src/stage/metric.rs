//! `metric`: Gold Reward Accuracy (GRA) of an aligned policy: the share of
//! test comparisons the aligned policy wins under the gold scorer, with the
//! tie rate reported beside it as its own metric. A tie (|gold difference|
//! ≤ `tie_margin`) counts by the manifest's [`TieRule`]: a loss (the paper's
//! rule: a win needs a strictly higher gold reward), ½, or not at all.
//! GRA is measured against the policy's own SFT model (the paper's wording)
//! and against one shared reference (the human-label SFT model), since a
//! better SFT start handicaps a method on the first; plus the mean gold
//! score. With a `base_reference` (the pretrained strong model, tiny
//! profile) it also reports the SFT model's GRA against it: SFT must improve
//! on its base for alignment to mean anything.
//!
//! It keeps each test prompt's outcome against its own SFT model
//! ([`PROMPT_OUTCOMES_FILE`]: wins, ties and comparisons over the prompt's
//! samples), for a paired bootstrap over test prompts, and reports Table
//! 20's spread: GRA on 3 disjoint subsets of the test prompts, their mean
//! (`gra_subset_mean`) and standard deviation (`gra_std`).
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::score::SCORES_FILE;

use super::{Stage, StageContext, StageOutcome, read_json, write_json};
pub use crate::eval::gra::{
    Gra, PromptOutcome, PromptOutcomes, gold_reward_accuracy, prompt_outcomes,
};
use crate::eval::test_subsets::{TEST_SUBSETS, subset_spread};

/// Each test prompt's [`PromptOutcome`] against the cell's own SFT model
/// ([`PromptOutcomes`], with the tie rule).
pub const PROMPT_OUTCOMES_FILE: &str = "prompt_outcomes.json";

pub struct Metric;

pub use crate::spec::TieRule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// |gold difference| at or below which two responses tie.
    pub tie_margin: f64,
    /// How a tie counts in GRA.
    pub ties: TieRule,
    /// Generations per test prompt (prompt-major), so comparisons group
    /// into prompts.
    pub samples: usize,
}

impl Stage for Metric {
    const KIND: &'static str = "metric";
    /// 5: per-prompt outcomes kept, Table 20's subset spread (`gra_std`).
    const VERSION: u32 = 5;
    const INPUTS: &'static [&'static str] = &[
        "score",
        "own_reference",
        "shared_reference",
        "base_reference",
    ];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let scores = |role: &str| -> Result<Vec<f32>> { read_json(ctx.input(role)?, SCORES_FILE) };
        let gra = |ours: &[f32], reference: &[f32]| {
            gold_reward_accuracy(ours, reference, params.tie_margin, params.ties)
        };
        let ours = scores("score")?;
        let own = scores("own_reference")?;
        let shared = scores("shared_reference")?;
        let outcomes = prompt_outcomes(&ours, &own, params.samples, params.tie_margin)?;
        let kept = PromptOutcomes {
            ties: params.ties,
            prompts: outcomes,
        };
        write_json(ctx.out_dir, PROMPT_OUTCOMES_FILE, &kept)?;
        let outcomes = kept.prompts;
        let vs_own = PromptOutcome::sum(&outcomes)
            .gra(params.ties)
            .expect("prompt_outcomes checked there is a comparison");
        let vs_shared = gra(&ours, &shared)?;
        let mean = |s: &[f32]| s.iter().map(|&x| f64::from(x)).sum::<f64>() / s.len() as f64;
        let mut metrics: std::collections::BTreeMap<String, f64> = [
            ("gra".to_string(), vs_own.accuracy),
            ("tie_rate".to_string(), vs_own.tie_rate),
            ("gra_shared".to_string(), vs_shared.accuracy),
            ("tie_rate_shared".to_string(), vs_shared.tie_rate),
            ("gold_mean".to_string(), mean(&ours)),
            ("gold_mean_sft".to_string(), mean(&own)),
        ]
        .into();
        if outcomes.len() >= TEST_SUBSETS {
            let spread = subset_spread(&outcomes, params.ties)?;
            metrics.insert("gra_subset_mean".into(), spread.mean);
            metrics.insert("gra_std".into(), spread.std);
        } else {
            // A report that asks for `gra_std` names the cell and the metric.
            ctx.progress.log(&format!(
                "{} test prompts: no Table 20 spread over {TEST_SUBSETS} subsets",
                outcomes.len()
            ));
        }
        if ctx.inputs.contains_key("base_reference") {
            let base = scores("base_reference")?;
            let sft_vs_base = gra(&own, &base)?;
            metrics.insert("gra_sft_vs_base".into(), sft_vs_base.accuracy);
            metrics.insert("tie_rate_sft_vs_base".into(), sft_vs_base.tie_rate);
            metrics.insert("gold_mean_base".into(), mean(&base));
        }
        Ok(StageOutcome { metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_reads_from_a_manifest_in_lowercase() {
        #[derive(Deserialize)]
        struct M {
            ties: TieRule,
        }
        let rule = |s: &str| toml::from_str::<M>(&format!("ties = \"{s}\"")).map(|m| m.ties);
        assert_eq!(rule("loss").unwrap(), TieRule::Loss);
        assert_eq!(rule("half").unwrap(), TieRule::Half);
        assert_eq!(rule("exclude").unwrap(), TieRule::Exclude);
        let err = rule("draw").unwrap_err().to_string();
        assert!(err.contains("loss") && err.contains("exclude"), "{err}");
    }
}
