//! `sft`: the strong model fine-tuned on (x, chosen) of D_U under one
//! labeller: the human labels (no `annotation` input) or a weak annotator's.
//! Each method's strong model starts from its own labeller's SFT model.
//! Under `train_on = "labeled" | "all"`, (x, chosen) of D_L or of every pair,
//! with their human labels: the SFT start of those baselines.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::artifacts::training_pairs;
use super::models::{
    PairTokenizer, load_base_policy, max_len, origin_of, save_model, tokenizer_for, trainable_copy,
};
use super::training::{checkpointer, progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome};
use crate::spec::{ModelSpec, TrainOn, TrainSettings};
use crate::train::LoopRun;
use crate::train::sft::train_sft;

pub struct Sft;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: ModelSpec,
    pub train: TrainSettings,
    pub seed: u64,
    /// Left out of the key when D_U (the default), so older keys hold.
    #[serde(default, skip_serializing_if = "TrainOn::is_unlabeled")]
    pub train_on: TrainOn,
}

impl Stage for Sft {
    const KIND: &'static str = "sft";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "base", "annotation"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let tokenizer = tokenizer_for(&params.model)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let (pairs, _) = training_pairs(ctx, params.train_on)?;
        let examples = tok.chosen_examples(&pairs)?;
        let base = load_base_policy(ctx, &params.model)?;
        let policy = trainable_copy(&base, &params.train, params.seed)?;
        let cfg = train_config(&params.train, params.seed, max_len(&params.model, &base));
        let report = train_sft(
            &policy,
            &examples,
            LoopRun {
                config: &cfg,
                pad_id: tokenizer.pad_id(),
                device: ctx.device,
                progress: Some(&mut progress_callback(ctx)),
                checkpoint: checkpointer(ctx, "sft", policy.backbone()).as_mut(),
            },
        )?;
        save_model(&policy, origin_of(&params.model), ctx.out_dir)?;
        Ok(StageOutcome {
            metrics: record_training(ctx, &report)?,
        })
    }
}
