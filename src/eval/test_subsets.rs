//! Table 20's spread: GRA on disjoint subsets of the test prompts.
//!
//! The paper re-evaluates each trained model on three disjoint subsets of
//! the test set and reports the mean ± std over them: a spread over test
//! prompts of one model, not over training seeds (the seed CI is a column
//! of its own in our reports).
//!
//! The subsets: the test prompts in one fixed seeded shuffle, cut into
//! `parts` runs whose sizes differ by at most one. Each subset is then a
//! random sample of the test set whatever order its file lists prompts in
//! (the synthetic families list theirs by task), and every cell of a run
//! gets the same subsets, so methods are compared on the same prompts. All
//! samples of a prompt fall in its subset.
use anyhow::Result;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::gra::PromptOutcome;
use crate::spec::TieRule;

/// How many subsets Table 20 cuts the test set into.
pub const TEST_SUBSETS: usize = 3;

/// The shuffle's seed: fixed, so the subsets are a function of the number
/// of test prompts only.
const SHUFFLE_SEED: u64 = 0x7ab1e20;

/// `n` prompt indices cut into `parts` disjoint subsets that cover them all,
/// of sizes ⌈n/parts⌉ or ⌊n/parts⌋, each sorted.
pub fn disjoint_subsets(n: usize, parts: usize) -> Result<Vec<Vec<usize>>> {
    anyhow::ensure!(
        parts >= 1 && n >= parts,
        "{n} test prompts cannot be cut into {parts} non-empty subsets: Table 20's spread needs \
         at least {parts} test prompts (raise generate's num_prompts or drop the limit)"
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SHUFFLE_SEED));
    let (size, longer) = (n / parts, n % parts);
    let mut start = 0;
    Ok((0..parts)
        .map(|k| {
            let len = size + usize::from(k < longer);
            let mut subset = order[start..start + len].to_vec();
            start += len;
            subset.sort_unstable();
            subset
        })
        .collect())
}

/// GRA on each subset, their mean and sample standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetSpread {
    pub gras: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator, as the seed
    /// statistics of `report::stats`); the paper does not say which.
    pub std: f64,
}

impl SubsetSpread {
    /// Mean and sample std of `gras` (at least two).
    pub fn of(gras: Vec<f64>) -> SubsetSpread {
        let n = gras.len() as f64;
        let mean = gras.iter().sum::<f64>() / n;
        let var = gras.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        SubsetSpread {
            gras,
            mean,
            std: var.sqrt(),
        }
    }
}

/// GRA (under `ties`) on each of [`TEST_SUBSETS`] disjoint subsets of the
/// prompts `outcomes` describes, one per test prompt.
pub fn subset_spread(outcomes: &[PromptOutcome], ties: TieRule) -> Result<SubsetSpread> {
    let gras = disjoint_subsets(outcomes.len(), TEST_SUBSETS)?
        .iter()
        .map(|subset| {
            PromptOutcome::sum(subset.iter().map(|&i| &outcomes[i]))
                .gra(ties)
                .map(|g| g.accuracy)
                .ok_or_else(|| anyhow::anyhow!("a test prompt without a comparison"))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(SubsetSpread::of(gras))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 20's subsets are disjoint, cover the test set, and differ in
    /// size by at most one, for sizes that do and do not divide by 3.
    #[test]
    fn subsets_are_disjoint_and_cover_the_test_set() {
        for n in [3, 4, 5, 9, 10, 11, 100, 1001] {
            let subsets = disjoint_subsets(n, TEST_SUBSETS).unwrap();
            assert_eq!(subsets.len(), 3);
            let mut seen = vec![0u32; n];
            for subset in &subsets {
                for &i in subset {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "n = {n}: {seen:?}");
            let sizes: Vec<usize> = subsets.iter().map(Vec::len).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "n = {n}: {sizes:?}");
        }
        // Shuffled, not the file's thirds; the same every time.
        let subsets = disjoint_subsets(30, 3).unwrap();
        assert_ne!(subsets[0], (0..10).collect::<Vec<_>>());
        assert_eq!(subsets, disjoint_subsets(30, 3).unwrap());
        let err = disjoint_subsets(2, 3).unwrap_err().to_string();
        assert!(err.contains("at least 3 test prompts"), "{err}");
    }

    /// GRAs 0.5, 0.6, 0.7: mean 0.6, sample std √((0.01 + 0 + 0.01) / 2) = 0.1.
    #[test]
    fn spread_is_mean_and_sample_std_worked_by_hand() {
        let s = SubsetSpread::of(vec![0.5, 0.6, 0.7]);
        assert!(
            (s.mean - 0.6).abs() < 1e-12 && (s.std - 0.1).abs() < 1e-12,
            "{s:?}"
        );
    }

    /// Each subset's GRA pools exactly its prompts' comparisons: prompts
    /// that win everything in subset 0 only give GRAs 1, 0, 0.
    #[test]
    fn each_subsets_gra_is_its_own_prompts() {
        let subsets = disjoint_subsets(12, 3).unwrap();
        let mut outcomes = vec![
            PromptOutcome {
                wins: 0,
                ties: 1,
                comparisons: 2,
            };
            12
        ];
        for &i in &subsets[0] {
            outcomes[i] = PromptOutcome {
                wins: 2,
                ties: 0,
                comparisons: 2,
            };
        }
        let loss = subset_spread(&outcomes, TieRule::Loss).unwrap();
        assert_eq!(loss.gras, [1.0, 0.0, 0.0]);
        let half = subset_spread(&outcomes, TieRule::Half).unwrap();
        assert_eq!(half.gras, [1.0, 0.25, 0.25]);
    }
}
