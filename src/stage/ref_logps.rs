//! `ref_logps`: the SFT model's log-probs of both responses of every pair the
//! strong model trains on (D_U oriented by the labeller, unless `train_on`), computed once and shared by every objective
//! and weighting that aligns against that SFT model.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::artifacts::{MODEL_DIR, training_pairs};
use super::models::{PairTokenizer, load_policy, tokenizer_of_checkpoint};
use super::{Stage, StageContext, StageOutcome, write_json};
use crate::spec::TrainOn;
use crate::train::Batching;
use crate::train::po::reference_logprobs;

pub struct RefLogps;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub batch_size: usize,
    /// Left out of the key when D_U (the default), so older keys hold.
    #[serde(default, skip_serializing_if = "TrainOn::is_unlabeled")]
    pub train_on: TrainOn,
    /// The align block's `max_len`, so the reference sees the sequences the
    /// policy is trained on; left out of the key when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

pub const REF_LOGPS_FILE: &str = "ref_logps.json";

impl Stage for RefLogps {
    const KIND: &'static str = "ref_logps";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "sft", "annotation"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let model_dir = ctx.input("sft")?.join(MODEL_DIR);
        let tokenizer = tokenizer_of_checkpoint(&model_dir)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let (pairs, _) = training_pairs(ctx, params.train_on)?;
        let pairs = tok.pairs(&pairs)?;
        let policy = load_policy(&model_dir, ctx.device)?;
        let batching = Batching {
            pad_id: tokenizer.pad_id(),
            max_len: params
                .max_len
                .unwrap_or(usize::MAX)
                .min(policy.config().max_position.min(2048)),
            device: ctx.device.clone(),
        };
        let logps = reference_logprobs(&policy, &pairs, &batching, params.batch_size)?;
        write_json(ctx.out_dir, REF_LOGPS_FILE, &logps)?;
        let n = logps.len().max(1) as f64;
        let margin = logps
            .iter()
            .map(|l| l.chosen_sum - l.rejected_sum)
            .sum::<f64>()
            / n;
        Ok(StageOutcome {
            metrics: [("mean_ref_margin".to_string(), margin)].into(),
        })
    }
}
