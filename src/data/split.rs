//! The random D_L / D_U split of a preference dataset (the paper's 30% / 70%),
//! shared by the synthetic world and real datasets.
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

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
