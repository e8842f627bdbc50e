//! A weak annotator's verdict on one pair: which response it prefers and
//! how sure it is (PAPER.md, Eq. 8).
//!
//! All three annotators end here: the Bradley–Terry scorer (two scores), the
//! PairRM-style scorer (the logits of the two orders) and the WS-DPO
//! implicit reward (β-scaled log-ratios). Each gives one number per response
//! ("first" = the pair's `chosen` slot, "second" = its `rejected` slot) and
//! the higher one wins.
use serde::{Deserialize, Serialize};

use super::weighting::Bindings;
use super::{TokenizedPair, halves};
use crate::model::{ScalarScorer, SeqBatch};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeakLabel {
    /// True when the annotator prefers the pair's `chosen` slot (ties go to
    /// it). On human-labelled pairs this is "agrees with the human", so the
    /// mean over pairs is the weak accuracy of Tables 6, 12, 13.
    pub prefers_chosen: bool,
    /// Score of the response the annotator chose.
    pub s_c: f64,
    /// Score of the response it rejected.
    pub s_r: f64,
}

impl WeakLabel {
    /// The label from the scores of the pair's first (`chosen`) and second
    /// (`rejected`) responses.
    pub fn from_scores(first: f64, second: f64) -> Self {
        if first >= second {
            Self {
                prefers_chosen: true,
                s_c: first,
                s_r: second,
            }
        } else {
            Self {
                prefers_chosen: false,
                s_c: second,
                s_r: first,
            }
        }
    }

    /// Δ = s_c − s_r ≥ 0.
    pub fn delta(&self) -> f64 {
        self.s_c - self.s_r
    }

    /// c = 2σ(s_c − s_r) − 1 ∈ [0, 1).
    pub fn confidence(&self) -> f64 {
        self.bindings().confidence()
    }

    pub(crate) fn bindings(&self) -> Bindings {
        Bindings {
            s_c: self.s_c,
            s_r: self.s_r,
        }
    }

    /// The pair with the annotator's chosen response in the `chosen` slot.
    pub fn orient(&self, pair: &TokenizedPair) -> TokenizedPair {
        if self.prefers_chosen {
            pair.clone()
        } else {
            TokenizedPair {
                prompt: pair.prompt.clone(),
                chosen: pair.rejected.clone(),
                rejected: pair.chosen.clone(),
            }
        }
    }
}

/// Labels `n` items with a scorer that sees each item twice in one batch:
/// `build(indices)` returns 2B rows, the item's first response (or order) in
/// row i and its second in row B + i. A non-finite score is an error naming
/// the item.
pub(crate) fn label_with_scorer(
    scorer: &dyn ScalarScorer,
    n: usize,
    batch_size: usize,
    build: &dyn Fn(&[usize]) -> anyhow::Result<SeqBatch>,
) -> anyhow::Result<Vec<WeakLabel>> {
    anyhow::ensure!(
        batch_size >= 1,
        "labelling batch size must be at least 1, got {batch_size}"
    );
    let indices: Vec<usize> = (0..n).collect();
    let mut labels = Vec::with_capacity(n);
    for chunk in indices.chunks(batch_size) {
        let scores = scorer.scores(&build(chunk)?)?.detach(); // [2B]
        let (first, second) = halves(&scores)?;
        let first = first.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let second = second.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        for (k, &i) in chunk.iter().enumerate() {
            anyhow::ensure!(
                first[k].is_finite() && second[k].is_finite(),
                "the weak scorer gave non-finite scores ({}, {}) to pair {i}",
                first[k],
                second[k]
            );
            labels.push(WeakLabel::from_scores(first[k], second[k]));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_score_wins_and_confidence_is_2_sigmoid_minus_1() {
        let kept = WeakLabel::from_scores(1.25, -0.75);
        assert!(kept.prefers_chosen);
        assert_eq!((kept.s_c, kept.s_r, kept.delta()), (1.25, -0.75, 2.0));
        let want = 2.0 / (1.0 + (-2.0f64).exp()) - 1.0;
        assert!((kept.confidence() - want).abs() < 1e-15);

        let flipped = WeakLabel::from_scores(0.1, 0.4);
        assert!(!flipped.prefers_chosen);
        assert_eq!((flipped.s_c, flipped.s_r), (0.4, 0.1));
        assert!(flipped.confidence() > 0.0);
        let pair = TokenizedPair {
            prompt: vec![1],
            chosen: vec![2],
            rejected: vec![3],
        };
        assert_eq!(flipped.orient(&pair).chosen, vec![3]);
        assert_eq!(kept.orient(&pair), pair);

        let tie = WeakLabel::from_scores(0.5, 0.5);
        assert!(tie.prefers_chosen && tie.confidence() == 0.0);
    }
}
