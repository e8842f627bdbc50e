//! Gold Reward Accuracy (GRA): the share of test comparisons an aligned
//! policy wins against a reference under the gold scorer, a tie (|gold
//! difference| ≤ the margin) counted by the manifest's [`TieRule`].
//!
//! A comparison is one (test prompt, sample): `ours[i]` against
//! `reference[i]`. The counts of wins and ties are kept per test prompt
//! ([`PromptOutcome`]), so GRA over any set of prompts (Table 20's subsets,
//! a bootstrap resample) is the rule applied to the summed counts.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::spec::TieRule;

/// GRA of one comparison set and how often its two sides tied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gra {
    /// In [0, 1], ties counted by the rule asked for.
    pub accuracy: f64,
    /// Share of comparisons that tie, in [0, 1], whatever the rule.
    pub tie_rate: f64,
}

/// Wins, ties and comparisons of one test prompt (its samples), or of a set
/// of prompts once added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptOutcome {
    pub wins: u32,
    pub ties: u32,
    pub comparisons: u32,
}

impl PromptOutcome {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &PromptOutcome) {
        self.wins += other.wins;
        self.ties += other.ties;
        self.comparisons += other.comparisons;
    }

    /// The outcomes of several prompts pooled.
    pub fn sum<'a>(outcomes: impl IntoIterator<Item = &'a PromptOutcome>) -> PromptOutcome {
        let mut total = PromptOutcome::default();
        for o in outcomes {
            total.add(o);
        }
        total
    }

    /// GRA of these counts under `ties`; `None` without a comparison.
    ///
    /// - loss: wins / n (the paper's rule: a win needs a strictly higher gold reward);
    /// - half: (wins + ½ ties) / n;
    /// - exclude: wins / (n − ties), ½ when every comparison ties.
    pub fn gra(&self, ties: TieRule) -> Option<Gra> {
        if self.comparisons == 0 {
            return None;
        }
        let (n, wins, tied) = (
            f64::from(self.comparisons),
            f64::from(self.wins),
            f64::from(self.ties),
        );
        let accuracy = match ties {
            TieRule::Loss => wins / n,
            TieRule::Half => (wins + 0.5 * tied) / n,
            TieRule::Exclude if tied == n => 0.5,
            TieRule::Exclude => wins / (n - tied),
        };
        Some(Gra {
            accuracy,
            tie_rate: tied / n,
        })
    }
}

/// A cell's per-prompt outcomes against its own SFT model, with the tie rule
/// its GRA counts by (the metric stage's `prompt_outcomes.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptOutcomes {
    pub ties: TieRule,
    /// One per test prompt, in the test set's order.
    pub prompts: Vec<PromptOutcome>,
}

/// The outcome of each test prompt: `ours` against `reference`, comparison
/// by comparison, prompt-major with `samples` comparisons per prompt
/// (prompt p's sample k at index p·samples + k, as `generate` writes them).
pub fn prompt_outcomes(
    ours: &[f32],
    reference: &[f32],
    samples: usize,
    tie_margin: f64,
) -> Result<Vec<PromptOutcome>> {
    anyhow::ensure!(
        ours.len() == reference.len() && !ours.is_empty(),
        "GRA needs one score per test prompt on both sides, got {} and {}",
        ours.len(),
        reference.len()
    );
    anyhow::ensure!(
        samples >= 1 && ours.len().is_multiple_of(samples),
        "{} scores are not {samples} samples for each of a whole number of test prompts",
        ours.len()
    );
    Ok(ours
        .chunks(samples)
        .zip(reference.chunks(samples))
        .map(|(ours, reference)| {
            let mut outcome = PromptOutcome {
                comparisons: ours.len() as u32,
                ..PromptOutcome::default()
            };
            for (&a, &b) in ours.iter().zip(reference) {
                let diff = f64::from(a) - f64::from(b);
                if diff.abs() <= tie_margin {
                    outcome.ties += 1;
                } else if diff > 0.0 {
                    outcome.wins += 1;
                }
            }
            outcome
        })
        .collect())
}

/// GRA of `ours` against `reference` over every comparison.
pub fn gold_reward_accuracy(
    ours: &[f32],
    reference: &[f32],
    tie_margin: f64,
    ties: TieRule,
) -> Result<Gra> {
    let outcomes = prompt_outcomes(ours, reference, 1, tie_margin)?;
    Ok(PromptOutcome::sum(&outcomes)
        .gra(ties)
        .expect("at least one comparison, checked above"))
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
        assert!(prompt_outcomes(&OURS, &REFERENCE, 3, 0.1).is_err());
    }

    /// The same ten comparisons as 5 prompts × 2 samples: per prompt
    /// (win, win), (win, win), (tie, loss), (loss, loss), (tie, tie) at
    /// margin 0.1; pooled they give the whole set's GRA.
    #[test]
    fn outcomes_per_prompt_pool_to_the_whole_sets_gra() {
        let outcomes = prompt_outcomes(&OURS, &REFERENCE, 2, 0.1).unwrap();
        let o = |wins, ties| PromptOutcome {
            wins,
            ties,
            comparisons: 2,
        };
        assert_eq!(outcomes, [o(2, 0), o(2, 0), o(0, 1), o(0, 0), o(0, 2)]);
        let pooled = PromptOutcome::sum(&outcomes);
        for rule in [TieRule::Loss, TieRule::Half, TieRule::Exclude] {
            assert_eq!(pooled.gra(rule), Some(gra(0.1, rule)), "{rule:?}");
        }
        assert_eq!(PromptOutcome::default().gra(TieRule::Loss), None);
    }
}
