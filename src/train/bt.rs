//! The weak annotator as a Bradley–Terry reward model (PAPER.md Eq. 4–6):
//! train a [`ScalarScorer`] on D_L, then label D_U with its scores.
use candle_core::Tensor;

use super::losses::bradley_terry_loss;
use super::weak_label::label_with_scorer;
use super::{Batching, LoopRun, TokenizedPair, TrainReport, WeakLabel, halves};
use crate::model::ScalarScorer;

/// Mean −log σ(s(x, y_w) − s(x, y_l)) over `pairs`. Scalar.
pub fn bt_batch_loss(
    scorer: &dyn ScalarScorer,
    batching: &Batching,
    pairs: &[&TokenizedPair],
) -> anyhow::Result<Tensor> {
    let scores = scorer.scores(&batching.pairs(pairs)?)?; // [2B]
    let (chosen, rejected) = halves(&scores)?; // [B], [B]
    Ok(bradley_terry_loss(&chosen, &rejected)?.mean_all()?)
}

/// Trains `scorer` so that each pair's `chosen` outscores its `rejected`.
pub fn train_bradley_terry(
    scorer: &dyn ScalarScorer,
    pairs: &[TokenizedPair],
    run: LoopRun,
) -> anyhow::Result<TrainReport> {
    let batching = run.batching();
    batching.check_pairs(pairs)?;
    run.train_on_items(
        scorer.trainable_vars(),
        pairs,
        &|batch: &[&TokenizedPair]| bt_batch_loss(scorer, &batching, batch),
    )
}

/// Scores both responses of each pair: the label prefers the higher score,
/// and c = 2σ(s_c − s_r) − 1. On unlabelled pairs `chosen`/`rejected` are
/// just the two responses in data order.
pub fn score_pairs(
    scorer: &dyn ScalarScorer,
    pairs: &[TokenizedPair],
    batching: &Batching,
    batch_size: usize,
) -> anyhow::Result<Vec<WeakLabel>> {
    label_with_scorer(scorer, pairs.len(), batch_size, &|chunk| {
        let selected: Vec<&TokenizedPair> = chunk.iter().map(|&i| &pairs[i]).collect();
        Ok(batching.pairs(&selected)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::TrainConfig;
    use crate::train::test_model::{check_batch_loss_gradients, test_batching, tiny_reward_model};
    use candle_core::Device;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A separable toy set: responses rich in "good" tokens (8..12) beat
    /// responses rich in "bad" tokens (12..16); the chosen side is randomly
    /// first or second so position cannot be learnt instead.
    fn separable_pairs(n: usize, seed: u64) -> Vec<TokenizedPair> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let prompt = vec![1, rng.random_range(2..8)];
                let len_good = rng.random_range(2..6);
                let len_bad = rng.random_range(2..6);
                let good: Vec<u32> = (0..len_good).map(|_| rng.random_range(8..12)).collect();
                let bad: Vec<u32> = (0..len_bad).map(|_| rng.random_range(12..16)).collect();
                TokenizedPair {
                    prompt,
                    chosen: good,
                    rejected: bad,
                }
            })
            .collect()
    }

    #[test]
    fn bt_loss_gradient_matches_finite_differences() -> anyhow::Result<()> {
        check_batch_loss_gradients(4, &separable_pairs(3, 1), |model, batching, rows| {
            bt_batch_loss(model, batching, rows)
        })
    }

    #[test]
    fn bt_scorer_separates_a_toy_set() -> anyhow::Result<()> {
        let model = tiny_reward_model(2)?;
        let train = separable_pairs(48, 7);
        let test = separable_pairs(40, 8);
        let batching = test_batching();
        let accuracy = |labels: &[WeakLabel]| {
            labels.iter().filter(|l| l.prefers_chosen).count() as f64 / labels.len() as f64
        };
        let before = accuracy(&score_pairs(&model, &test, &batching, 16)?);
        let config = TrainConfig {
            epochs: 15,
            batch_size: 8,
            lr: 2e-2,
            ..TrainConfig::default()
        };
        let report = train_bradley_terry(&model, &train, LoopRun::quiet(&config, 0, &Device::Cpu))?;
        let labels = score_pairs(&model, &test, &batching, 16)?;
        let after = accuracy(&labels);
        assert!(
            after > 0.9,
            "held-out accuracy {before} → {after}, losses {:?}",
            report.losses
        );
        // Each label holds the scores a direct one-row forward gives the
        // two responses, the chosen one's as s_c.
        for (pair, label) in test.iter().zip(&labels).take(5) {
            let one = |response: &Vec<u32>| -> anyhow::Result<f64> {
                let row = crate::train::TokenizedExample {
                    prompt: pair.prompt.clone(),
                    response: response.clone(),
                };
                Ok(model
                    .scores(&batching.examples(&[&row])?)?
                    .to_vec1::<f32>()?[0] as f64)
            };
            let (first, second) = (one(&pair.chosen)?, one(&pair.rejected)?);
            let (s_c, s_r) = if label.prefers_chosen {
                (first, second)
            } else {
                (second, first)
            };
            assert!(
                (label.s_c - s_c).abs() < 1e-4 && (label.s_r - s_r).abs() < 1e-4,
                "{label:?} vs ({first}, {second})"
            );
        }
        // Confidence is the paper's, from the label's own scores.
        for l in &labels {
            assert!(l.s_c >= l.s_r);
            assert!(
                (l.confidence() - (2.0 / (1.0 + (-(l.s_c - l.s_r)).exp()) - 1.0)).abs() < 1e-12
            );
        }
        // Swapping the two responses swaps the label, not the confidence.
        let swapped: Vec<TokenizedPair> = test
            .iter()
            .map(|p| WeakLabel::from_scores(0.0, 1.0).orient(p))
            .collect();
        let swapped_labels = score_pairs(&model, &swapped, &batching, 7)?;
        for (a, b) in labels.iter().zip(&swapped_labels) {
            if a.delta() > 1e-4 {
                assert_ne!(a.prefers_chosen, b.prefers_chosen);
            }
            assert!((a.confidence() - b.confidence()).abs() < 1e-5);
        }
        Ok(())
    }
}
