//! Deterministic D_L / D_U / test splits of a real dataset's pairs, built on
//! the world's seeded index split ([`crate::data::split::split_indices`]).
//!
//! First `test_fraction` of D is held out as the test split (used only when
//! the dataset ships no test file, e.g. TL;DR's ~5%), by `seed`; then
//! `labeled_fraction` of the rest is D_L (human labels the weak model trains
//! on) and the remainder D_U (the weak model labels it), by `seed + 1`.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::PreferencePair;
use crate::data::split::split_indices;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    /// D_L: pairs whose human labels the weak model is trained on.
    pub labeled: Vec<PreferencePair>,
    /// D_U: pairs the weak model labels; the strong model is aligned on them.
    pub unlabeled: Vec<PreferencePair>,
    /// Held-out pairs whose prompts are the test prompts.
    pub test: Vec<PreferencePair>,
}

/// Splits `pairs` by `seed` (sizes rounded as `split_indices` rounds).
pub fn split_pairs(
    pairs: Vec<PreferencePair>,
    labeled_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<Splits> {
    for (name, value) in [
        ("labeled_fraction", labeled_fraction),
        ("test_fraction", test_fraction),
    ] {
        if !(0.0..=1.0).contains(&value) {
            bail!("{name} = {value} must lie in [0, 1]");
        }
    }
    let held_out = split_indices(pairs.len(), test_fraction, seed);
    let rest = &held_out.unlabeled;
    let inner = split_indices(rest.len(), labeled_fraction, seed.wrapping_add(1));
    let pick = |indices: &[usize]| -> Vec<PreferencePair> {
        indices.iter().map(|&i| pairs[i].clone()).collect()
    };
    let through_rest =
        |indices: &[usize]| -> Vec<usize> { indices.iter().map(|&i| rest[i]).collect() };
    Ok(Splits {
        test: pick(&held_out.labeled),
        labeled: pick(&through_rest(&inner.labeled)),
        unlabeled: pick(&through_rest(&inner.unlabeled)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<PreferencePair> {
        (0..n)
            .map(|i| PreferencePair {
                prompt: format!("p{i}"),
                chosen: "a".into(),
                rejected: "b".into(),
            })
            .collect()
    }

    #[test]
    fn split_is_a_seeded_partition() {
        let a = split_pairs(pairs(100), 0.3, 0.1, 7).unwrap();
        assert_eq!(
            (a.test.len(), a.labeled.len(), a.unlabeled.len()),
            (10, 27, 63)
        );
        let mut all: Vec<String> = [&a.test, &a.labeled, &a.unlabeled]
            .iter()
            .flat_map(|s| s.iter().map(|p| p.prompt.clone()))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100, "every pair lands in exactly one split");

        assert_eq!(
            a,
            split_pairs(pairs(100), 0.3, 0.1, 7).unwrap(),
            "same seed, same split"
        );
        assert_ne!(
            a.labeled,
            split_pairs(pairs(100), 0.3, 0.1, 8).unwrap().labeled
        );
    }

    #[test]
    fn split_rejects_fraction_outside_unit_interval() {
        let err = split_pairs(pairs(3), 1.5, 0.0, 0).unwrap_err().to_string();
        assert!(err.contains("labeled_fraction = 1.5"), "{err}");
    }
}
