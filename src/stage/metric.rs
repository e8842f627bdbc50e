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
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::score::SCORES_FILE;

use super::{Stage, StageContext, StageOutcome, read_json};

pub struct Metric;

pub use crate::spec::TieRule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// |gold difference| at or below which two responses tie.
    pub tie_margin: f64,
    /// How a tie counts in GRA.
    pub ties: TieRule,
}

/// GRA of one comparison set and how often its two sides tied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gra {
    /// In [0, 1], ties counted by the rule asked for.
    pub accuracy: f64,
    /// Share of comparisons that tie, in [0, 1], whatever the rule.
    pub tie_rate: f64,
}

/// GRA of `ours` against `reference`, comparison by comparison (one per
/// test prompt and sample).
pub fn gold_reward_accuracy(
    ours: &[f32],
    reference: &[f32],
    tie_margin: f64,
    ties: TieRule,
) -> Result<Gra> {
    anyhow::ensure!(
        ours.len() == reference.len() && !ours.is_empty(),
        "GRA needs one score per test prompt on both sides, got {} and {}",
        ours.len(),
        reference.len()
    );
    let (mut wins, mut tied) = (0usize, 0usize);
    for (&a, &b) in ours.iter().zip(reference) {
        let diff = f64::from(a) - f64::from(b);
        if diff.abs() <= tie_margin {
            tied += 1;
        } else if diff > 0.0 {
            wins += 1;
        }
    }
    let (n, wins, tied) = (ours.len() as f64, wins as f64, tied as f64);
    let accuracy = match ties {
        TieRule::Loss => wins / n,
        TieRule::Half => (wins + 0.5 * tied) / n,
        TieRule::Exclude if tied == n => 0.5,
        TieRule::Exclude => wins / (n - tied),
    };
    Ok(Gra {
        accuracy,
        tie_rate: tied / n,
    })
}

impl Stage for Metric {
    const KIND: &'static str = "metric";
    const VERSION: u32 = 4;
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
        let vs_own = gra(&ours, &own)?;
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

    /// Ten comparisons worked by hand: 4 wins, 3 losses, 3 ties within a
    /// margin of 0.1 (two exact, one at 0.05), so wins = 4, ties = 3, n = 10.
    const OURS: [f32; 10] = [1.0, 0.5, 0.3, 0.9, 0.0, 0.0, 0.2, -0.5, 0.25, 0.7];
    const REFERENCE: [f32; 10] = [0.0, 0.2, 0.1, 0.4, 0.0, 0.5, 0.6, 0.1, 0.25, 0.65];

    fn gra(margin: f64, ties: TieRule) -> Gra {
        gold_reward_accuracy(&OURS, &REFERENCE, margin, ties).unwrap()
    }

    #[test]
    fn loss_rule_counts_only_strict_wins() {
        let g = gra(0.1, TieRule::Loss);
        assert!((g.accuracy - 0.4).abs() < 1e-12, "{g:?}");
        assert!((g.tie_rate - 0.3).abs() < 1e-12, "{g:?}");
    }

    #[test]
    fn half_rule_counts_a_tie_as_half_a_win() {
        let g = gra(0.1, TieRule::Half);
        assert!((g.accuracy - (4.0 + 1.5) / 10.0).abs() < 1e-12, "{g:?}");
        assert!((g.tie_rate - 0.3).abs() < 1e-12, "{g:?}");
    }

    #[test]
    fn exclude_rule_leaves_ties_out_of_the_denominator() {
        let g = gra(0.1, TieRule::Exclude);
        assert!((g.accuracy - 4.0 / 7.0).abs() < 1e-12, "{g:?}");
        assert!((g.tie_rate - 0.3).abs() < 1e-12, "{g:?}");
        // All ties: neither side preferred.
        let all = gold_reward_accuracy(&[0.3, 0.1], &[0.3, 0.1], 0.0, TieRule::Exclude).unwrap();
        assert_eq!((all.accuracy, all.tie_rate), (0.5, 1.0));
    }

    #[test]
    fn the_margin_decides_what_ties() {
        // Margin 0: only the two exact ties; 0.7 vs 0.65 becomes a win.
        for (rule, want) in [
            (TieRule::Loss, 0.5),
            (TieRule::Half, 0.6),
            (TieRule::Exclude, 5.0 / 8.0),
        ] {
            let g = gra(0.0, rule);
            assert!((g.accuracy - want).abs() < 1e-12, "{rule:?}: {g:?}");
            assert!((g.tie_rate - 0.2).abs() < 1e-12, "{g:?}");
        }
    }

    #[test]
    fn mismatched_or_empty_scores_are_an_error() {
        assert!(gold_reward_accuracy(&OURS, &REFERENCE[..2], 0.0, TieRule::Loss).is_err());
        assert!(gold_reward_accuracy(&[], &[], 0.0, TieRule::Loss).is_err());
    }

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
