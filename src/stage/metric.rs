//! `metric`: Gold Reward Accuracy (GRA) of an aligned policy: the share of
//! test prompts on which the gold scorer prefers its response to a
//! reference's (ties count ½, the tie rate is reported). Against its own SFT
//! model (the paper's wording) and against one shared reference (the
//! human-label SFT model), since a better SFT start handicaps a method on
//! the first; plus the mean gold score. With a `base_reference` (the
//! pretrained strong model, tiny profile) it also reports the SFT model's GRA
//! against it: SFT must improve on its base for alignment to mean anything.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::score::SCORES_FILE;

use super::{Stage, StageContext, StageOutcome, read_json};

pub struct Metric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// |gold difference| at or below which two responses tie.
    pub tie_margin: f64,
}

/// GRA and tie rate of `ours` against `reference`, prompt by prompt.
pub fn gold_reward_accuracy(
    ours: &[f32],
    reference: &[f32],
    tie_margin: f64,
) -> Result<(f64, f64)> {
    anyhow::ensure!(
        ours.len() == reference.len() && !ours.is_empty(),
        "GRA needs one score per test prompt on both sides, got {} and {}",
        ours.len(),
        reference.len()
    );
    let (mut wins, mut ties) = (0.0, 0.0);
    for (&a, &b) in ours.iter().zip(reference) {
        let diff = f64::from(a) - f64::from(b);
        if diff.abs() <= tie_margin {
            ties += 1.0;
        } else if diff > 0.0 {
            wins += 1.0;
        }
    }
    let n = ours.len() as f64;
    Ok(((wins + 0.5 * ties) / n, ties / n))
}

impl Stage for Metric {
    const KIND: &'static str = "metric";
    const VERSION: u32 = 3;
    const INPUTS: &'static [&'static str] = &[
        "score",
        "own_reference",
        "shared_reference",
        "base_reference",
    ];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let scores = |role: &str| -> Result<Vec<f32>> { read_json(ctx.input(role)?, SCORES_FILE) };
        let ours = scores("score")?;
        let own = scores("own_reference")?;
        let shared = scores("shared_reference")?;
        let (gra, tie_rate) = gold_reward_accuracy(&ours, &own, params.tie_margin)?;
        let (gra_shared, tie_rate_shared) =
            gold_reward_accuracy(&ours, &shared, params.tie_margin)?;
        let mean = |s: &[f32]| s.iter().map(|&x| f64::from(x)).sum::<f64>() / s.len() as f64;
        let mut metrics: std::collections::BTreeMap<String, f64> = [
            ("gra".to_string(), gra),
            ("tie_rate".to_string(), tie_rate),
            ("gra_shared".to_string(), gra_shared),
            ("tie_rate_shared".to_string(), tie_rate_shared),
            ("gold_mean".to_string(), mean(&ours)),
            ("gold_mean_sft".to_string(), mean(&own)),
        ]
        .into();
        if ctx.inputs.contains_key("base_reference") {
            let base = scores("base_reference")?;
            let (sft_vs_base, _) = gold_reward_accuracy(&own, &base, params.tie_margin)?;
            metrics.insert("gra_sft_vs_base".into(), sft_vs_base);
            metrics.insert("gold_mean_base".into(), mean(&base));
        }
        Ok(StageOutcome { metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gra_counts_wins_and_half_ties() {
        let ours = [1.0, 0.5, 0.2, 0.0];
        let reference = [0.0, 0.5, 0.3, -0.05];
        // win, tie, loss, tie within 0.1
        let (gra, ties) = gold_reward_accuracy(&ours, &reference, 0.1).unwrap();
        assert!((gra - (1.0 + 0.5 + 0.5) / 4.0).abs() < 1e-12, "{gra}");
        assert!((ties - 0.5).abs() < 1e-12);
        let (strict, strict_ties) = gold_reward_accuracy(&ours, &reference, 0.0).unwrap();
        assert!((strict - (1.0 + 0.5 + 1.0) / 4.0).abs() < 1e-12, "{strict}");
        assert!((strict_ties - 0.25).abs() < 1e-12);
        assert!(gold_reward_accuracy(&ours, &reference[..2], 0.0).is_err());
    }
}
