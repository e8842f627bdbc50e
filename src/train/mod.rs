//! Training: the optimiser and its schedule, the losses, the weighting
//! schemes, and one loop per objective.
//!
//! Every loop has the same shape (see [`optim::run_training`]): shuffle the
//! examples with a seeded ChaCha8 generator, cut them into micro-batches,
//! accumulate gradients over `grad_accum` micro-batches, clip the global
//! gradient norm, take one AdamW step at the cosine schedule's learning rate,
//! report a [`StepInfo`]. What differs between loops is only how a
//! micro-batch of examples becomes a scalar loss:
//!
//! | loop | model | loss |
//! |---|---|---|
//! | [`sft::train_sft`] | [`LanguageModel`](crate::model::LanguageModel) | mean NLL of response tokens |
//! | [`bt::train_bradley_terry`] | [`ScalarScorer`](crate::model::ScalarScorer) | −log σ(s_w − s_l) (Eq. 5) |
//! | [`pairrm::train_pairwise`] | [`ScalarScorer`](crate::model::ScalarScorer) over a pair template | BCE on both orders |
//! | [`po::train_po`] | [`LanguageModel`](crate::model::LanguageModel) | mean_i w_i · ℓ_i, ℓ ∈ {DPO, IPO, rDPO} or a [`custom_loss`] expression |
//!
//! Inputs are already tokenised ([`TokenizedExample`], [`TokenizedPair`]):
//! templates and tokenisers belong to the caller.
//!
//! A loss is a pure function of the preference margin
//! h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)), one
//! value per pair. DPO with β = 0.5 on margins 0 and 2 is −log σ(0) = ln 2
//! and −log σ(1):
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cwpo::train::losses::dpo_loss;
//!
//! let h = Tensor::new(&[0.0f64, 2.0], &Device::Cpu)?; // [B = 2]
//! let loss: Vec<f64> = dpo_loss(&h, 0.5)?.to_vec1()?; // [B]
//! assert!((loss[0] - std::f64::consts::LN_2).abs() < 1e-12);
//! assert!((loss[1] - (1.0 + (-1.0f64).exp()).ln()).abs() < 1e-12);
//! # Ok::<(), candle_core::Error>(())
//! ```
pub mod adamw;
pub mod bt;
pub mod checkpoint;
pub mod custom_loss;
pub mod dpo_bench;
pub mod expression;
pub mod losses;
pub mod optim;
pub mod pairrm;
pub mod po;
pub mod schedule;
pub mod sft;
pub mod weak_label;
pub mod weighting;

#[cfg(test)]
pub(crate) mod test_model;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{PadSide, SeqBatch};

pub use custom_loss::CustomLoss;
pub use losses::{AlignLoss, PreferenceLoss, PreferenceObjective};
pub use optim::{TrainConfig, TrainError, settings_problems};
pub use weak_label::WeakLabel;
pub use weighting::WeightingScheme;

/// One supervised example: the model learns `response` given `prompt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizedExample {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

/// One comparison: `chosen` is preferred to `rejected` (by a human, or by a
/// weak annotator after [`WeakLabel::orient`]). Unlabelled pairs use the same
/// struct with the two responses in the order the data gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizedPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// What a loop reports after each optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Optimiser steps taken so far, 1..=`total_steps`.
    pub step: usize,
    pub total_steps: usize,
    /// Loss of this step's examples (before the update).
    pub loss: f64,
    /// Learning rate used for this step.
    pub lr: f64,
}

/// What a loop returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Loss of each optimiser step, in order.
    pub losses: Vec<f64>,
    /// Loss of the last step.
    pub final_loss: f64,
    pub steps: usize,
    /// Wall-clock seconds of the whole loop (Table 6 reports training time).
    pub seconds: f64,
    /// Learning rate of each optimiser step, in order (reports of loops run
    /// before it was kept have none).
    #[serde(default)]
    pub lrs: Vec<f64>,
    /// Further per-step statistics a loop measures (a preference loop's
    /// `reward_margin`, `accuracy`, `mean_weight`): name → one entry per
    /// optimiser step, `None` for steps a resumed run did not itself take.
    #[serde(default)]
    pub step_stats: std::collections::BTreeMap<String, Vec<Option<f64>>>,
}

/// What every loop takes besides its model and its data: the recipe, how
/// token ids become batches (the tokenizer's pad id, the device), who hears
/// of each step, and where the loop checkpoints. One struct, so the loops
/// share their preamble (batching, then [`optim::train_on_items`]) instead
/// of each spelling it out.
pub struct LoopRun<'a, 'c> {
    pub config: &'a optim::TrainConfig,
    pub pad_id: u32,
    pub device: &'a Device,
    /// Called after each optimiser step; `None`: nobody listens.
    pub progress: Option<&'a mut dyn FnMut(StepInfo)>,
    /// With one, the loop resumes and saves as [`optim::run_training`] says.
    pub checkpoint: Option<&'a mut checkpoint::Checkpointer<'c>>,
}

impl<'a, 'c> LoopRun<'a, 'c> {
    /// A run nobody listens to, without checkpoints.
    pub fn quiet(config: &'a optim::TrainConfig, pad_id: u32, device: &'a Device) -> Self {
        Self {
            config,
            pad_id,
            device,
            progress: None,
            checkpoint: None,
        }
    }

    /// The batching of this run ([`Batching::for_training`]).
    pub fn batching(&self) -> Batching {
        Batching::for_training(self.pad_id, self.config, self.device)
    }

    /// Trains `vars` on `items` (see [`optim::train_on_items`]): each
    /// micro-batch's loss is `batch_loss` of its items.
    pub fn train_on_items<T>(
        self,
        vars: Vec<candle_core::Var>,
        items: &[T],
        batch_loss: &dyn Fn(&[&T]) -> anyhow::Result<Tensor>,
    ) -> anyhow::Result<TrainReport> {
        let mut silent = |_: StepInfo| {};
        let progress = self.progress.unwrap_or(&mut silent);
        optim::train_on_items(
            vars,
            items,
            self.config,
            batch_loss,
            progress,
            self.checkpoint,
        )
    }
}

/// How token ids become padded [`SeqBatch`]es: the tokenizer's pad id, the
/// length cap and the device. Right padding throughout (training and
/// scoring; generation is not done here).
#[derive(Debug, Clone)]
pub struct Batching {
    pub pad_id: u32,
    /// Sequences longer than this keep their start (see
    /// [`SeqBatch::from_prompt_response`]).
    pub max_len: usize,
    pub device: Device,
}

impl Batching {
    /// The batching a training loop under `config` uses.
    pub fn for_training(pad_id: u32, config: &optim::TrainConfig, device: &Device) -> Self {
        Self {
            pad_id,
            max_len: config.max_len,
            device: device.clone(),
        }
    }

    /// A batch of (prompt, response) rows; only response tokens are targets.
    pub fn examples(&self, examples: &[&TokenizedExample]) -> candle_core::Result<SeqBatch> {
        let rows: Vec<(&[u32], &[u32])> = examples
            .iter()
            .map(|e| (e.prompt.as_slice(), e.response.as_slice()))
            .collect();
        self.prompt_response_rows(&rows)
    }

    /// (prompt, response) rows, right-padded, each cut to `max_len`.
    fn prompt_response_rows(&self, rows: &[(&[u32], &[u32])]) -> candle_core::Result<SeqBatch> {
        SeqBatch::from_prompt_response(
            rows,
            self.pad_id,
            PadSide::Right,
            self.max_len,
            &self.device,
        )
    }

    /// A batch of 2B rows for B pairs: rows 0..B are (prompt, chosen), rows
    /// B..2B are (prompt, rejected), so one forward pass scores both sides.
    pub fn pairs(&self, pairs: &[&TokenizedPair]) -> candle_core::Result<SeqBatch> {
        let chosen = pairs
            .iter()
            .map(|p| (p.prompt.as_slice(), p.chosen.as_slice()));
        let rejected = pairs
            .iter()
            .map(|p| (p.prompt.as_slice(), p.rejected.as_slice()));
        let rows: Vec<(&[u32], &[u32])> = chosen.chain(rejected).collect();
        self.prompt_response_rows(&rows)
    }

    /// Fails unless every response keeps at least one token within
    /// `max_len`: a response truncated away has no log-prob to train on and
    /// would turn a mean over its tokens into 0/0.
    pub fn check_examples(&self, examples: &[TokenizedExample]) -> anyhow::Result<()> {
        for (i, e) in examples.iter().enumerate() {
            self.check_response(i, "response", e.prompt.len(), e.response.len())?;
        }
        Ok(())
    }

    /// [`Self::check_examples`] for both responses of each pair.
    pub fn check_pairs(&self, pairs: &[TokenizedPair]) -> anyhow::Result<()> {
        for (i, p) in pairs.iter().enumerate() {
            self.check_response(i, "chosen", p.prompt.len(), p.chosen.len())?;
            self.check_response(i, "rejected", p.prompt.len(), p.rejected.len())?;
        }
        Ok(())
    }

    fn check_response(
        &self,
        index: usize,
        side: &str,
        prompt: usize,
        response: usize,
    ) -> anyhow::Result<()> {
        // Position 0 is never a target (nothing predicts it), so a response
        // with an empty prompt loses its first token.
        let kept = (prompt + response)
            .min(self.max_len)
            .saturating_sub(prompt.max(1));
        if kept == 0 {
            anyhow::bail!(
                "example {index}: the {side} response ({response} tokens after a {prompt}-token prompt) \
                 has no token within max_len = {}; raise max_len or drop over-long examples",
                self.max_len
            );
        }
        Ok(())
    }
}

/// Splits a [2B] tensor into its first and second halves, [B] each: the
/// layout of [`Batching::pairs`] (and of PairRM's two orders).
pub(crate) fn halves(paired: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let b = paired.dim(0)? / 2;
    Ok((paired.narrow(0, 0, b)?, paired.narrow(0, b, b)?))
}
