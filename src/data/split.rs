//! The random D_L / D_U split of a preference dataset (the paper's 30% / 70%),
//! shared by the synthetic world and real datasets.
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::spec::SplitMixture;

/// Indices into a dataset's pairs: `labeled` keep their human labels (D_L),
/// `unlabeled` are labelled by the weak model (D_U). Both sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub labeled: Vec<usize>,
    pub unlabeled: Vec<usize>,
}

/// Shuffles `0..n` with `seed` and takes the first `round(n · labeled_fraction)`
/// as labelled. Deterministic in (`n`, `labeled_fraction`, `seed`); the two
/// parts are disjoint and cover `0..n`.
///
/// # Panics
/// If `labeled_fraction` is not within `[0, 1]` (manifest validation rejects
/// such values before any stage runs).
pub fn split_indices(n: usize, labeled_fraction: f64, seed: u64) -> Split {
    assert!(
        (0.0..=1.0).contains(&labeled_fraction),
        "labeled_fraction = {labeled_fraction} is outside [0, 1]; use e.g. 0.3 for the paper's 30% D_L"
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_labeled = (n as f64 * labeled_fraction).round() as usize;
    let mut labeled = order[..n_labeled].to_vec();
    let mut unlabeled = order[n_labeled..].to_vec();
    labeled.sort_unstable();
    unlabeled.sort_unstable();
    Split { labeled, unlabeled }
}

/// A split drawn from a pool of datasets (`spec::mixture`): D_L, D_U and
/// the pairs of D_L whose label is flipped, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixedSplit {
    pub labeled: Vec<usize>,
    pub unlabeled: Vec<usize>,
    pub flipped: Vec<usize>,
}

/// Draws D_L and D_U from a pool whose `parts` name the index range of each
/// dataset's pairs.
///
/// - Sizes: with `n` the smallest dataset's pair count (every dataset is
///   drawn as if it were that large), |D_L| = round(n · `labeled_fraction`)
///   and |D_U| = n − |D_L|, as one dataset split at random.
/// - Shares are exact ([`Mixture::counts`]). The poison takes
///   p = round(|D_L| · ratio) of D_L's places; the labelled mixture fills
///   the other |D_L| − p.
/// - Each dataset's pairs are shuffled once by (`seed`, dataset name); D_U
///   takes the first of them, then D_L the next. So D_U depends on the
///   unlabelled mixture, the pool and the seed alone: every weak mixture and
///   poisoning ratio of a sweep annotates the same D_U (Table 24's shared
///   50/50 D_U). The parts never overlap.
/// - Poisoned pairs are the `poison.from` pairs left undrawn whose human
///   label agrees with the gold judge, by the largest gold margin first
///   (`gold_margin(i)` = gold(chosen) − gold(rejected) of pair `i`; ties
///   by index): they join D_L and are listed in `flipped`.
///
/// Errors name the dataset and the fix when a dataset has too few pairs.
pub fn mixed_split_indices(
    parts: &[(String, std::ops::Range<usize>)],
    mix: &SplitMixture,
    labeled_fraction: f64,
    seed: u64,
    gold_margin: impl Fn(usize) -> anyhow::Result<f64>,
) -> anyhow::Result<MixedSplit> {
    let n = parts.iter().map(|(_, r)| r.len()).min().unwrap_or(0);
    let n_labeled = (n as f64 * labeled_fraction).round() as usize;
    let n_unlabeled = n - n_labeled;
    let n_poison = mix
        .poison
        .as_ref()
        .map_or(0, |p| (n_labeled as f64 * p.ratio).round() as usize);
    // Each dataset's shuffled pairs, consumed from the front.
    let mut queues: Vec<(String, Vec<usize>)> = Vec::new();
    for (name, range) in parts {
        let mut order: Vec<usize> = range.clone().collect();
        order.shuffle(&mut dataset_stream(seed, name));
        order.reverse(); // pop() from the back takes the shuffled order's front
        queues.push((name.clone(), order));
    }
    // Shares of D_L and D_U never ask a dataset for more than n pairs; the
    // check guards the invariant.
    let mut take = |name: &str, count: usize, what: &str| -> anyhow::Result<Vec<usize>> {
        let (_, queue) = queues
            .iter_mut()
            .find(|(n, _)| n == name)
            .with_context(|| format!("dataset `{name}` is not in the pool"))?;
        if queue.len() < count {
            bail!(
                "dataset `{name}` has {} pairs left but {what} needs {count} (|D_L| = {n_labeled}, \
                 |D_U| = {n_unlabeled}); lower its share, `labeled_fraction` or `poison_ratio`, \
                 or raise the world's `n_pairs`",
                queue.len()
            );
        }
        Ok((0..count).filter_map(|_| queue.pop()).collect())
    };
    let mut unlabeled = Vec::with_capacity(n_unlabeled);
    for ((name, _), count) in mix
        .unlabeled
        .parts
        .iter()
        .zip(mix.unlabeled.counts(n_unlabeled))
    {
        unlabeled.extend(take(name, count, "D_U")?);
    }
    let mut labeled = Vec::with_capacity(n_labeled);
    let clean = n_labeled - n_poison;
    for ((name, _), count) in mix.labeled.parts.iter().zip(mix.labeled.counts(clean)) {
        labeled.extend(take(name, count, "D_L")?);
    }
    let mut flipped = Vec::new();
    if let Some(poison) = &mix.poison {
        let left: Vec<usize> = queues
            .iter()
            .find(|(n, _)| *n == poison.from)
            .map(|(_, queue)| queue.clone())
            .with_context(|| format!("dataset `{}` is not in the pool", poison.from))?;
        let mut candidates: Vec<(f64, usize)> = Vec::new();
        for i in left.into_iter().rev() {
            let margin = gold_margin(i)?;
            if margin > 0.0 {
                candidates.push((margin, i));
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if candidates.len() < n_poison {
            bail!(
                "dataset `{}` has {} undrawn pairs whose human label agrees with the gold judge, \
                 but poisoning {} of D_L needs {n_poison}; lower `poison_ratio` or raise the \
                 world's `n_pairs`",
                poison.from,
                candidates.len(),
                poison.ratio
            );
        }
        flipped = candidates[..n_poison].iter().map(|(_, i)| *i).collect();
        labeled.extend(&flipped);
    }
    labeled.sort_unstable();
    unlabeled.sort_unstable();
    flipped.sort_unstable();
    Ok(MixedSplit {
        labeled,
        unlabeled,
        flipped,
    })
}

/// The shuffle stream of one dataset of a pool.
fn dataset_stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"split/");
    hasher.update(&seed.to_le_bytes());
    hasher.update(name.as_bytes());
    ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_covering_sized_and_deterministic() {
        let split = split_indices(1000, 0.3, 7);
        assert_eq!(split.labeled.len(), 300);
        let mut all: Vec<usize> = split
            .labeled
            .iter()
            .chain(&split.unlabeled)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "parts must be disjoint and cover 0..n"
        );
        assert_eq!(split, split_indices(1000, 0.3, 7));
        assert_ne!(split.labeled, split_indices(1000, 0.3, 8).labeled);
        // not simply the first 30%
        assert_ne!(split.labeled, (0..300).collect::<Vec<_>>());
    }

    use crate::spec::{Mixture, Poison};

    /// Two datasets of 100 pairs each: `harmless` at 0..100, `helpful` at
    /// 100..200.
    fn pool() -> Vec<(String, std::ops::Range<usize>)> {
        vec![("harmless".into(), 0..100), ("helpful".into(), 100..200)]
    }

    fn mix(labeled: &str, unlabeled: &str, poison: Option<f64>) -> SplitMixture {
        SplitMixture {
            labeled: Mixture::parse(labeled).unwrap(),
            unlabeled: Mixture::parse(unlabeled).unwrap(),
            poison: poison.map(|ratio| Poison {
                ratio,
                from: "harmless".into(),
            }),
        }
    }

    fn from_harmless(indices: &[usize]) -> usize {
        indices.iter().filter(|&&i| i < 100).count()
    }

    /// Worked by hand: n = 100 (both datasets), f = 0.3 → |D_L| = 30,
    /// |D_U| = 70; 80/20 of 30 = 24 + 6, 50/50 of 70 = 35 + 35.
    #[test]
    fn mixture_shares_are_exact_disjoint_and_d_u_is_shared() {
        let no_gold = |_: usize| -> anyhow::Result<f64> { unreachable!("no poison") };
        let mut unlabeled_sets = Vec::new();
        for (labeled, want_harmless) in [
            ("harmless80-helpful20", 24),
            ("harmless50-helpful50", 15),
            ("harmless20-helpful80", 6),
        ] {
            let split = mixed_split_indices(
                &pool(),
                &mix(labeled, "harmless50-helpful50", None),
                0.3,
                7,
                no_gold,
            )
            .unwrap();
            assert_eq!(split.labeled.len(), 30, "{labeled}");
            assert_eq!(from_harmless(&split.labeled), want_harmless, "{labeled}");
            assert_eq!(split.unlabeled.len(), 70);
            assert_eq!(from_harmless(&split.unlabeled), 35);
            assert!(split.flipped.is_empty());
            assert!(
                split
                    .labeled
                    .iter()
                    .all(|i| split.unlabeled.binary_search(i).is_err()),
                "{labeled}: D_L and D_U overlap"
            );
            let mut all = split.labeled.clone();
            all.extend(&split.unlabeled);
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), 100, "{labeled}: a pair drawn twice");
            unlabeled_sets.push(split.unlabeled);
        }
        // Every weak mixture annotates the same D_U (Table 24).
        assert!(unlabeled_sets.windows(2).all(|w| w[0] == w[1]));
        // A different seed draws other pairs.
        let other = mixed_split_indices(
            &pool(),
            &mix("harmless50-helpful50", "harmless50-helpful50", None),
            0.3,
            8,
            no_gold,
        )
        .unwrap();
        assert_ne!(other.unlabeled, unlabeled_sets[0]);
    }

    /// D_L 100% helpful, 10% poisoned from harmless: |D_L| = 30, so 3
    /// poisoned pairs + 27 helpful ones. The gold margin of pair i is
    /// `50 - i` for harmless pairs: pairs 0, 1, 2 have the largest margins
    /// (50, 49, 48) unless drawn into D_U; pairs ≥ 50 are labelled against
    /// gold (margin ≤ 0) and never chosen.
    #[test]
    fn poison_takes_the_largest_gold_margins_and_flips_only_them() {
        let margin = |i: usize| -> anyhow::Result<f64> { Ok(50.0 - i as f64) };
        let mixture = mix("helpful100", "helpful77-harmless23", Some(0.1));
        let split = mixed_split_indices(&pool(), &mixture, 0.3, 3, margin).unwrap();
        assert_eq!(split.labeled.len(), 30);
        assert_eq!(split.flipped.len(), 3);
        assert_eq!(
            from_harmless(&split.labeled),
            3,
            "only the poison is harmless in D_L"
        );
        assert!(
            split
                .flipped
                .iter()
                .all(|i| split.labeled.binary_search(i).is_ok())
        );
        assert!(
            split
                .flipped
                .iter()
                .all(|i| split.unlabeled.binary_search(i).is_err())
        );
        // The three largest margins among the harmless pairs not in D_U.
        let undrawn: Vec<usize> = (0..100)
            .filter(|i| split.unlabeled.binary_search(i).is_err())
            .take(3)
            .collect();
        assert_eq!(split.flipped, undrawn);
        // |D_U| = 70: 77% = 53.9 → 54 helpful, 16 harmless.
        assert_eq!(from_harmless(&split.unlabeled), 16);
        // D_U does not move with the ratio.
        let more = mixed_split_indices(
            &pool(),
            &mix("helpful100", "helpful77-harmless23", Some(0.2)),
            0.3,
            3,
            margin,
        )
        .unwrap();
        assert_eq!(more.unlabeled, split.unlabeled);
        assert_eq!(more.flipped.len(), 6);
    }

    /// Every pair of `harmless` is drawn but 5 (|D_U| = 50, 45 clean D_L
    /// pairs), and none of those has a label the gold judge agrees with.
    #[test]
    fn too_few_poison_candidates_is_an_error_naming_the_dataset_and_the_fix() {
        let against_gold = |_: usize| -> anyhow::Result<f64> { Ok(-1.0) };
        let err = mixed_split_indices(
            &pool(),
            &mix("harmless100", "harmless100", Some(0.1)),
            0.5,
            1,
            against_gold,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`harmless`") && err.contains("poison_ratio"),
            "{err}"
        );
    }

    #[test]
    fn extreme_fractions() {
        assert!(split_indices(10, 0.0, 1).labeled.is_empty());
        assert_eq!(split_indices(10, 1.0, 1).labeled.len(), 10);
        assert_eq!(
            split_indices(0, 0.3, 1),
            Split {
                labeled: vec![],
                unlabeled: vec![]
            }
        );
    }

    #[test]
    #[should_panic(expected = "outside [0, 1]")]
    fn fraction_above_one_panics() {
        split_indices(10, 1.5, 1);
    }
}
