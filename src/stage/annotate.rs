//! `annotate`: the weak annotator labels D_U. Each pair gets a [`WeakLabel`]:
//! which of its two responses the annotator prefers (relative to the data's
//! order, whose first response is the human's choice) and the two scores
//! s_c ≥ s_r that confidence weights are computed from.
use std::path::Path;

use anyhow::{Result, bail};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::artifacts::{LABELS_FILE, split_pairs};
use super::models::{PairTokenizer, load_policy, tokenizer_for};
use super::weak_train::{REFERENCE_DIR, WEAK_DIR, WEAK_INFO_FILE, WeakInfo, pairwise_inputs};
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::data::PreferencePair;
use crate::model::{LoadedModel, load_checkpoint};
use crate::train::po::{implicit_reward_labels, reference_logprobs};
use crate::train::{Batching, WeakLabel, bt, pairrm};

pub struct Annotate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Pairs scored per forward pass (does not change the numbers).
    pub batch_size: usize,
}

/// The `weak` input's labels for D_U, in D_U order.
pub fn label_unlabeled(ctx: &StageContext, batch_size: usize) -> Result<Vec<WeakLabel>> {
    let unlabeled = split_pairs(ctx)?.unlabeled;
    label_pairs(ctx.input("weak")?, &unlabeled, ctx.device, batch_size)
}

/// The labels of the weak annotator saved in `weak_dir` (a `weak_train`
/// artifact) for `pairs`, in order: D_U's offline, the policy's own
/// samples in an online round.
pub fn label_pairs(
    weak_dir: &Path,
    pairs: &[PreferencePair],
    device: &Device,
    batch_size: usize,
) -> Result<Vec<WeakLabel>> {
    let info: WeakInfo = read_json(weak_dir, WEAK_INFO_FILE)?;
    let tokenizer = tokenizer_for(&info.model)?;
    let tok = PairTokenizer {
        tokenizer: tokenizer.as_ref(),
    };
    let pairs = tok.pairs(pairs)?;
    let weak = load_checkpoint(&weak_dir.join(WEAK_DIR), device)?;
    let batching = Batching {
        pad_id: tokenizer.pad_id(),
        max_len: info.max_len.unwrap_or(usize::MAX).min(weak_max_len(&weak)),
        device: device.clone(),
    };
    match (info.objective.as_str(), weak) {
        ("bt", LoadedModel::Reward(scorer)) => {
            bt::score_pairs(&scorer, &pairs, &batching, batch_size)
        }
        ("pairrm", LoadedModel::Reward(scorer)) => {
            let inputs = pairwise_inputs(&pairs);
            pairrm::label_pairwise(&scorer, &inputs, &batching, batch_size)
        }
        ("dpo" | "sft_dpo", LoadedModel::Policy(policy)) => {
            let reference = load_policy(&weak_dir.join(REFERENCE_DIR), device)?;
            let beta = info.beta.unwrap_or(1.0);
            let pi = reference_logprobs(&policy, &pairs, &batching, batch_size)?;
            let pi_ref = reference_logprobs(&reference, &pairs, &batching, batch_size)?;
            implicit_reward_labels(&pi, &pi_ref, beta)
        }
        (objective, _) => bail!(
            "{}: weak objective `{objective}` does not match the model kind saved there",
            weak_dir.display()
        ),
    }
}

fn weak_max_len(model: &LoadedModel) -> usize {
    let cfg = match model {
        LoadedModel::Policy(p) => p.config(),
        LoadedModel::Reward(r) => r.config(),
    };
    cfg.max_position.min(2048)
}

/// Share of labels that agree with the human's choice (the data's first response).
pub fn agreement(labels: &[WeakLabel]) -> f64 {
    labels.iter().filter(|l| l.prefers_chosen).count() as f64 / labels.len().max(1) as f64
}

impl Stage for Annotate {
    const KIND: &'static str = "annotate";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "weak"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let labels = label_unlabeled(ctx, params.batch_size)?;
        write_json(ctx.out_dir, LABELS_FILE, &labels)?;
        let mean_confidence =
            labels.iter().map(WeakLabel::confidence).sum::<f64>() / labels.len().max(1) as f64;
        Ok(StageOutcome {
            metrics: [
                ("agreement_with_human".to_string(), agreement(&labels)),
                ("mean_confidence".to_string(), mean_confidence),
            ]
            .into(),
        })
    }
}
