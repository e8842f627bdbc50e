//! Paired bootstrap over test prompts: how much of a GRA difference between
//! two cells is the luck of which prompts the test set holds.
//!
//! Two cells of one seed (CW and Human, say) answer the same test prompts,
//! so their per-prompt outcomes pair up. One resample draws n prompt indices
//! with replacement, the same indices for both cells, and takes
//! GRA_better − GRA_worse on them (each GRA from the pooled counts, under the
//! tie rule). With several seeds each seed is resampled on its own and the
//! seeds' differences averaged, so the interval is the spread that the test
//! prompts alone put on the mean paired difference; the seeds' own spread is
//! the Student t interval of `report::compare::paired_difference`.
//!
//! The interval is the percentile one: the 2.5% and 97.5% order statistics
//! of the resampled differences, from a fixed seeded stream (the same data
//! give the same interval).
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gra::PromptOutcome;
use crate::spec::TieRule;

/// Resamples of the bootstrap (Efron & Tibshirani's order for a 95%
/// percentile interval).
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The difference better − worse on the test set as it is, and its
/// bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapInterval {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
}

/// One seed's pair of cells: `(better, worse)` outcomes, one per test prompt,
/// in the same prompt order.
pub type PairedOutcomes<'a> = (&'a [PromptOutcome], &'a [PromptOutcome]);

/// GRA of pooled counts under `ties`.
fn accuracy(outcome: PromptOutcome, ties: TieRule) -> Result<f64> {
    outcome
        .gra(ties)
        .map(|g| g.accuracy)
        .ok_or_else(|| anyhow::anyhow!("a bootstrap resample without a comparison"))
}

/// GRA_better − GRA_worse on the test set as it is.
fn difference(pair: PairedOutcomes, ties: TieRule) -> Result<f64> {
    Ok(accuracy(PromptOutcome::sum(pair.0), ties)? - accuracy(PromptOutcome::sum(pair.1), ties)?)
}

/// GRA_better − GRA_worse on n prompts drawn with replacement, the same
/// draws for both cells. One pass, no allocation: reports draw this
/// millions of times on every run.
fn resampled_difference(pair: PairedOutcomes, ties: TieRule, rng: &mut ChaCha8Rng) -> Result<f64> {
    let n = pair.0.len();
    let (mut better, mut worse) = (PromptOutcome::default(), PromptOutcome::default());
    for _ in 0..n {
        let i = rng.random_range(0..n);
        better.add(&pair.0[i]);
        worse.add(&pair.1[i]);
    }
    Ok(accuracy(better, ties)? - accuracy(worse, ties)?)
}

/// The mean over seeds of GRA_better − GRA_worse and its paired bootstrap
/// 95% interval over test prompts (`resamples` resamples, e.g.
/// [`BOOTSTRAP_RESAMPLES`]).
pub fn paired_prompt_bootstrap(
    seeds: &[PairedOutcomes],
    ties: TieRule,
    resamples: usize,
) -> Result<BootstrapInterval> {
    anyhow::ensure!(
        !seeds.is_empty() && resamples >= 1,
        "a bootstrap needs a seed and a resample"
    );
    for (better, worse) in seeds {
        anyhow::ensure!(
            better.len() == worse.len() && !better.is_empty(),
            "paired cells must answer the same test prompts: {} and {} outcomes",
            better.len(),
            worse.len()
        );
    }
    let k = seeds.len() as f64;
    let mut observed = 0.0;
    for &pair in seeds {
        observed += difference(pair, ties)? / k;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0xb0075);
    let mut resampled = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut mean = 0.0;
        for &pair in seeds {
            mean += resampled_difference(pair, ties, &mut rng)? / k;
        }
        resampled.push(mean);
    }
    resampled.sort_by(f64::total_cmp);
    let at = |q: f64| resampled[((q * resamples as f64).ceil() as usize).clamp(1, resamples) - 1];
    Ok(BootstrapInterval {
        difference: observed,
        low: at(0.025),
        high: at(0.975),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIN: PromptOutcome = PromptOutcome {
        wins: 1,
        ties: 0,
        comparisons: 1,
    };
    const LOSS: PromptOutcome = PromptOutcome {
        wins: 0,
        ties: 0,
        comparisons: 1,
    };

    /// `wins` winning prompts first, then losses, `n` in all.
    fn cell(wins: std::ops::Range<usize>, n: usize) -> Vec<PromptOutcome> {
        (0..n)
            .map(|i| if wins.contains(&i) { WIN } else { LOSS })
            .collect()
    }

    /// Better wins prompts 0..60, worse 0..40 of 100: per prompt the
    /// difference is 1 on 20 prompts and 0 elsewhere, so 0.2 with a
    /// bootstrap standard error of √(0.2·0.8/100) = 0.04: the interval is
    /// about 0.2 ± 0.08 and excludes 0. Had the cells won unpaired prompts
    /// (better 0..60, worse 60..100) the difference would be as large but
    /// far noisier.
    #[test]
    fn a_consistent_per_prompt_difference_is_separated_from_zero() {
        let (better, worse) = (cell(0..60, 100), cell(0..40, 100));
        let b = paired_prompt_bootstrap(&[(&better, &worse)], TieRule::Loss, 2000).unwrap();
        assert!((b.difference - 0.2).abs() < 1e-12, "{b:?}");
        assert!(
            b.low > 0.1 && b.low < 0.2 && b.high > 0.2 && b.high < 0.3,
            "{b:?}"
        );
        let apart = cell(60..100, 100);
        let unpaired = paired_prompt_bootstrap(&[(&better, &apart)], TieRule::Loss, 2000).unwrap();
        assert!(
            unpaired.high - unpaired.low > 2.0 * (b.high - b.low),
            "{unpaired:?}"
        );
    }

    /// Better wins 10 prompts worse loses, worse wins 9 others: +0.01 on
    /// 100 prompts, well inside the noise; the interval holds 0.
    #[test]
    fn a_noisy_difference_holds_zero() {
        let (better, worse) = (cell(0..10, 100), cell(10..19, 100));
        let b = paired_prompt_bootstrap(&[(&better, &worse)], TieRule::Loss, 2000).unwrap();
        assert!((b.difference - 0.01).abs() < 1e-12, "{b:?}");
        assert!(b.low < 0.0 && b.high > 0.0, "{b:?}");
    }

    /// Seeds are averaged: a seed at +0.2 and one at 0 give 0.1; identical
    /// cells give exactly 0 every resample.
    #[test]
    fn seeds_are_averaged_and_identical_cells_give_zero() {
        let (a, b, same) = (cell(0..60, 100), cell(0..40, 100), cell(0..50, 100));
        let two = paired_prompt_bootstrap(&[(&a, &b), (&same, &same)], TieRule::Loss, 500).unwrap();
        assert!((two.difference - 0.1).abs() < 1e-12, "{two:?}");
        let zero = paired_prompt_bootstrap(&[(&same, &same)], TieRule::Half, 200).unwrap();
        assert_eq!((zero.difference, zero.low, zero.high), (0.0, 0.0, 0.0));
        assert!(paired_prompt_bootstrap(&[(&a, &a[..5])], TieRule::Loss, 10).is_err());
    }
}
