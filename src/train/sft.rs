//! Supervised fine-tuning on (prompt, response) pairs; the loss reads
//! response tokens only (the strong model's SFT on D_U's chosen responses,
//! and the weak model's SFT step of WS-DPO's "SFT+DPO" variant).
use candle_core::Tensor;

use super::losses::sft_loss;
use super::{Batching, LoopRun, TokenizedExample, TrainReport};
use crate::model::LanguageModel;

/// Mean negative log-likelihood per response token over `examples`. Scalar.
pub fn sft_batch_loss(
    model: &dyn LanguageModel,
    batching: &Batching,
    examples: &[&TokenizedExample],
) -> anyhow::Result<Tensor> {
    let batch = batching.examples(examples)?;
    Ok(sft_loss(&model.response_logprobs(&batch)?)?)
}

/// Trains `model` on `examples` and returns the per-step losses; with a
/// `checkpoint`, resumably (see [`super::optim::run_training`]).
pub fn train_sft(
    model: &dyn LanguageModel,
    examples: &[TokenizedExample],
    run: LoopRun,
) -> anyhow::Result<TrainReport> {
    let batching = run.batching();
    batching.check_examples(examples)?;
    run.train_on_items(
        model.trainable_vars(),
        examples,
        &|batch: &[&TokenizedExample]| sft_batch_loss(model, &batching, batch),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::TrainConfig;
    use crate::train::test_model::{TinyCausalModel, check_gradients, test_batching, tiny_policy};
    use candle_core::{DType, Device};

    /// A fixed corpus: after prompt [p], the response counts up from p.
    pub(crate) fn counting_corpus() -> Vec<TokenizedExample> {
        (0..8u32)
            .map(|p| TokenizedExample {
                prompt: vec![1, 2 + p],
                response: (3 + p..7 + p).collect(),
            })
            .collect()
    }

    #[test]
    fn sft_loss_gradient_matches_finite_differences() -> anyhow::Result<()> {
        let model = TinyCausalModel::new(16, 6, 5, 3, DType::F64)?;
        let corpus = counting_corpus();
        // Different response lengths in one padded batch.
        let short = TokenizedExample {
            prompt: vec![4],
            response: vec![9, 2],
        };
        let rows = vec![&corpus[0], &short, &corpus[5]];
        check_gradients(&model.vars(), 6, &|| {
            sft_batch_loss(&model, &test_batching(), &rows)
        })
    }

    #[test]
    fn sft_loss_falls_by_half_on_a_fixed_corpus() -> anyhow::Result<()> {
        let model = tiny_policy(1)?;
        let corpus = counting_corpus();
        let config = TrainConfig {
            epochs: 60,
            batch_size: 4,
            lr: 3e-2,
            ..TrainConfig::default()
        };
        let mut steps = 0;
        let report = train_sft(
            &model,
            &corpus,
            LoopRun {
                config: &config,
                pad_id: 0,
                device: &Device::Cpu,
                progress: Some(&mut |_| steps += 1),
                checkpoint: None,
            },
        )?;
        assert_eq!(steps, report.steps);
        assert_eq!(report.steps, 60 * 2);
        let first = report.losses[0];
        assert!(
            report.final_loss < first / 2.0,
            "loss {first} → {}",
            report.final_loss
        );
        Ok(())
    }

    #[test]
    fn same_seed_same_trace_and_other_seed_other_trace() -> anyhow::Result<()> {
        let corpus = counting_corpus();
        let run = |seed: u64| -> anyhow::Result<Vec<f64>> {
            let model = tiny_policy(5)?;
            let config = TrainConfig {
                epochs: 3,
                batch_size: 3,
                lr: 1e-2,
                seed,
                ..TrainConfig::default()
            };
            Ok(train_sft(&model, &corpus, LoopRun::quiet(&config, 0, &Device::Cpu))?.losses)
        };
        let a = run(11)?;
        assert_eq!(a, run(11)?, "same seed, same numbers");
        assert_ne!(a, run(12)?, "another seed shuffles differently");
        Ok(())
    }

    /// batch 4 × accumulation 2 takes the same steps as batch 8 × 1: the
    /// micro-batch losses are weighted by their share of the step.
    #[test]
    fn gradient_accumulation_matches_one_big_batch() -> anyhow::Result<()> {
        let corpus = counting_corpus();
        let run = |batch_size: usize, grad_accum: usize| -> anyhow::Result<Vec<f64>> {
            let model = tiny_policy(5)?;
            let config = TrainConfig {
                epochs: 4,
                batch_size,
                grad_accum,
                lr: 1e-2,
                ..TrainConfig::default()
            };
            Ok(train_sft(&model, &corpus, LoopRun::quiet(&config, 0, &Device::Cpu))?.losses)
        };
        let (big, accumulated) = (run(8, 1)?, run(4, 2)?);
        assert_eq!(big.len(), accumulated.len());
        // The SFT loss is a token mean per micro-batch; all responses here
        // have 4 tokens, so example shares equal token shares.
        // f32 sums in another order: equal to rounding.
        for (a, b) in big.iter().zip(&accumulated) {
            assert!((a - b).abs() < 1e-5 * a.abs(), "{big:?} vs {accumulated:?}");
        }
        Ok(())
    }

    #[test]
    fn a_response_truncated_away_is_an_error_naming_the_example() {
        let model = tiny_policy(0).unwrap();
        let mut corpus = counting_corpus();
        corpus[3].prompt = vec![1; 40];
        let err = train_sft(
            &model,
            &corpus,
            LoopRun::quiet(
                &TrainConfig {
                    max_len: 32,
                    ..TrainConfig::default()
                },
                0,
                &Device::Cpu,
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("example 3") && err.contains("max_len"),
            "{err}"
        );
    }
}
