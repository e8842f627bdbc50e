//! A PairRM-style weak annotator (PAPER.md, Appendix J.9): one forward pass
//! over a template holding the prompt and both responses gives the logit of
//! "the first response is better". It is trained with BCE on both orders of
//! each pair; on unlabelled pairs the margin m = z(a, b) − z(b, a) of the
//! two orders gives the label (a if m ≥ 0) and the confidence 2σ(|m|) − 1.
//!
//! The template text is the caller's: this module takes its token ids.
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::losses::pairwise_bce_loss;
use super::weak_label::label_with_scorer;
use super::{Batching, LoopRun, TrainReport, WeakLabel, halves};
use crate::model::{PadSide, ScalarScorer, SeqBatch};

/// One pair as the two orders of the template. "a" is the pair's `chosen`
/// slot (the human's choice when training, the first response when labelling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairwiseInput {
    /// template(x, y_a, y_b): target 1 when training.
    pub chosen_first: Vec<u32>,
    /// template(x, y_b, y_a): target 0 when training.
    pub rejected_first: Vec<u32>,
}

/// The scorer reads each sequence's last token, so a sequence is never
/// truncated: fails on one longer than `max_len` (or empty), naming it.
fn check_inputs(batching: &Batching, inputs: &[PairwiseInput]) -> anyhow::Result<()> {
    for (index, input) in inputs.iter().enumerate() {
        for (order, ids) in [
            ("chosen_first", &input.chosen_first),
            ("rejected_first", &input.rejected_first),
        ] {
            anyhow::ensure!(
                ids.len() <= batching.max_len && !ids.is_empty(),
                "pairwise input {index} ({order}) has {} tokens, outside 1..={} (max_len); \
                 drop over-long pairs or raise max_len",
                ids.len(),
                batching.max_len
            );
        }
    }
    Ok(())
}

/// 2B whole-sequence rows: every `chosen_first`, then every `rejected_first`.
fn pairwise_batch(batching: &Batching, inputs: &[&PairwiseInput]) -> candle_core::Result<SeqBatch> {
    let chosen_first = inputs
        .iter()
        .map(|i| (i.chosen_first.clone(), i.chosen_first.len()));
    let rejected_first = inputs
        .iter()
        .map(|i| (i.rejected_first.clone(), i.rejected_first.len()));
    let rows: Vec<(Vec<u32>, usize)> = chosen_first.chain(rejected_first).collect();
    SeqBatch::from_sequences(&rows, batching.pad_id, PadSide::Right, &batching.device)
}

/// Mean BCE over both orders of each input. Scalar.
pub fn pairwise_batch_loss(
    scorer: &dyn ScalarScorer,
    batching: &Batching,
    inputs: &[&PairwiseInput],
) -> anyhow::Result<Tensor> {
    let logits = scorer.scores(&pairwise_batch(batching, inputs)?)?; // [2B]
    let (z_ab, z_ba) = halves(&logits)?; // [B], [B]
    Ok(pairwise_bce_loss(&z_ab, &z_ba)?.mean_all()?)
}

/// Trains `scorer` to give the `chosen_first` order a high logit and the
/// `rejected_first` order a low one.
pub fn train_pairwise(
    scorer: &dyn ScalarScorer,
    inputs: &[PairwiseInput],
    run: LoopRun,
) -> anyhow::Result<TrainReport> {
    let batching = run.batching();
    check_inputs(&batching, inputs)?;
    run.train_on_items(
        scorer.trainable_vars(),
        inputs,
        &|batch: &[&PairwiseInput]| pairwise_batch_loss(scorer, &batching, batch),
    )
}

/// Labels pairs: s_a = z(a, b), s_b = z(b, a), so the label's Δ = |m| and
/// its confidence is 2σ(|m|) − 1.
pub fn label_pairwise(
    scorer: &dyn ScalarScorer,
    inputs: &[PairwiseInput],
    batching: &Batching,
    batch_size: usize,
) -> anyhow::Result<Vec<WeakLabel>> {
    check_inputs(batching, inputs)?;
    label_with_scorer(scorer, inputs.len(), batch_size, &|chunk| {
        let selected: Vec<&PairwiseInput> = chunk.iter().map(|&i| &inputs[i]).collect();
        Ok(pairwise_batch(batching, &selected)?)
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

    const SEP: u32 = 3;

    /// Template "x SEP y_a SEP y_b": good responses use tokens 8..12, bad ones
    /// 12..16, and each held-out pair comes in a random order.
    fn inputs(n: usize, seed: u64) -> (Vec<PairwiseInput>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let template = |x: u32, a: &[u32], b: &[u32]| {
            let mut ids = vec![1, x, SEP];
            ids.extend_from_slice(a);
            ids.push(SEP);
            ids.extend_from_slice(b);
            ids
        };
        (0..n)
            .map(|_| {
                let x = rng.random_range(4..8);
                let good: Vec<u32> = (0..rng.random_range(2..5))
                    .map(|_| rng.random_range(8..12))
                    .collect();
                let bad: Vec<u32> = (0..rng.random_range(2..5))
                    .map(|_| rng.random_range(12..16))
                    .collect();
                let good_is_a = rng.random_bool(0.5);
                let (a, b) = if good_is_a { (good, bad) } else { (bad, good) };
                let input = PairwiseInput {
                    chosen_first: template(x, &a, &b),
                    rejected_first: template(x, &b, &a),
                };
                (input, good_is_a)
            })
            .unzip()
    }

    /// Training data must hold the human's choice in slot a.
    fn training_inputs(n: usize, seed: u64) -> Vec<PairwiseInput> {
        let (inputs, good_is_a) = inputs(n, seed);
        inputs
            .into_iter()
            .zip(good_is_a)
            .map(|(i, a)| {
                if a {
                    i
                } else {
                    PairwiseInput {
                        chosen_first: i.rejected_first,
                        rejected_first: i.chosen_first,
                    }
                }
            })
            .collect()
    }

    #[test]
    fn pairwise_loss_gradient_matches_finite_differences() -> anyhow::Result<()> {
        check_batch_loss_gradients(8, &training_inputs(3, 2), |model, batching, rows| {
            pairwise_batch_loss(model, batching, rows)
        })
    }

    #[test]
    fn pairwise_annotator_learns_and_labels_by_the_margin() -> anyhow::Result<()> {
        let model = tiny_reward_model(6)?;
        let config = TrainConfig {
            epochs: 20,
            batch_size: 8,
            lr: 2e-2,
            ..TrainConfig::default()
        };
        train_pairwise(
            &model,
            &training_inputs(48, 3),
            LoopRun::quiet(&config, 0, &Device::Cpu),
        )?;
        let (test, good_is_a) = inputs(40, 4);
        let batching = test_batching();
        let labels = label_pairwise(&model, &test, &batching, 16)?;
        let correct = labels
            .iter()
            .zip(&good_is_a)
            .filter(|(l, a)| l.prefers_chosen == **a)
            .count();
        assert!(correct as f64 / 40.0 > 0.9, "accuracy {correct}/40");
        // The label's margin is the difference of the two orders' logits.
        let one: Vec<&PairwiseInput> = vec![&test[0]];
        let z = model
            .scores(&pairwise_batch(&batching, &one)?)?
            .to_vec1::<f32>()?;
        let m = (z[0] - z[1]) as f64;
        assert!(
            (labels[0].delta() - m.abs()).abs() < 1e-4,
            "delta {} vs |m| {}",
            labels[0].delta(),
            m.abs()
        );
        assert_eq!(labels[0].prefers_chosen, m >= 0.0);
        Ok(())
    }

    #[test]
    fn over_long_input_is_an_error_naming_it() {
        let model = tiny_reward_model(0).unwrap();
        let (mut data, _) = inputs(4, 1);
        data[2].rejected_first = vec![1; 40];
        let batching = test_batching();
        let err = label_pairwise(&model, &data, &batching, 4)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pairwise input 2 (rejected_first)") && err.contains("max_len"),
            "{err}"
        );
    }
}
