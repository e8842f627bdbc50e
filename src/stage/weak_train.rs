//! `weak_train`: the weak annotator, trained on D_L's human labels.
//!
//! - `bt`: a Bradley–Terry reward model (the paper's annotator, Eq. 4–6): the
//!   weak LM's backbone with a scalar head on the last token.
//! - `dpo`: the WS-DPO baseline: the weak LM aligned with DPO against its
//!   untouched self; it labels by implicit reward β·(log π − log π_ref).
//! - `sft_dpo`: the same after an SFT step on D_L's chosen responses (the
//!   SFT model is then the reference).
//! - `pairrm`: a PairRM-style pairwise scorer (Appendix J.9) over
//!   `x y_a <eos> y_b <eos>`, trained with BCE on both orders.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::split_pairs;
use super::models::{PairTokenizer, load_base_policy, max_len, tokenizer_for, trainable_copy};
use super::training::{checkpointer, progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome, write_json};
use crate::model::RewardModel;
use crate::spec::{ModelSpec, TrainSettings};
use crate::train::po::{PoData, reference_logprobs, train_po};
use crate::train::{Batching, PreferenceObjective, TokenizedPair, bt, pairrm, sft};

pub struct WeakTrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `bt` | `dpo` | `sft_dpo` | `pairrm`.
    pub objective: String,
    pub model: ModelSpec,
    pub train: TrainSettings,
    /// DPO β for the `dpo` / `sft_dpo` weak objectives (None for `bt`, `pairrm`).
    #[serde(default)]
    pub beta: Option<f64>,
    pub seed: u64,
}

/// Which annotator a `weak_train` artifact holds, for `annotate` and `weak_eval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeakInfo {
    pub objective: String,
    pub beta: Option<f64>,
    pub model: ModelSpec,
}

pub const WEAK_DIR: &str = "weak";
pub const REFERENCE_DIR: &str = "reference";
pub const WEAK_INFO_FILE: &str = "weak.json";

/// The PairRM template: `x y_a <eos> y_b <eos>` (the responses already end in EOS).
pub fn pairwise_inputs(pairs: &[TokenizedPair]) -> Vec<pairrm::PairwiseInput> {
    let join = |p: &TokenizedPair, a: &[u32], b: &[u32]| -> Vec<u32> {
        p.prompt.iter().chain(a).chain(b).copied().collect()
    };
    pairs
        .iter()
        .map(|p| pairrm::PairwiseInput {
            chosen_first: join(p, &p.chosen, &p.rejected),
            rejected_first: join(p, &p.rejected, &p.chosen),
        })
        .collect()
}

impl Stage for WeakTrain {
    const KIND: &'static str = "weak_train";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "base"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let tokenizer = tokenizer_for(&params.model)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let labeled = split_pairs(ctx)?.labeled;
        let pairs = tok.pairs(&labeled)?;
        let base = load_base_policy(ctx, &params.model)?;
        let max_len = max_len(&params.model, &base);
        let cfg = train_config(&params.train, params.seed, max_len);
        let pad = tokenizer.pad_id();
        let out = ctx.out_dir;
        let mut progress = progress_callback(ctx);
        let report = match params.objective.as_str() {
            "bt" | "pairrm" => {
                let lora = super::models::lora_of(&params.train);
                let scorer = RewardModel::from_policy(&base, lora.as_ref(), params.seed)?;
                let mut checkpoint = checkpointer(ctx, &params.objective, scorer.backbone());
                let report = if params.objective == "bt" {
                    bt::train_bradley_terry(
                        &scorer,
                        &pairs,
                        &cfg,
                        pad,
                        ctx.device,
                        &mut progress,
                        checkpoint.as_mut(),
                    )?
                } else {
                    let inputs = pairwise_inputs(&pairs);
                    pairrm::train_pairwise(
                        &scorer,
                        &inputs,
                        &cfg,
                        pad,
                        ctx.device,
                        &mut progress,
                        checkpoint.as_mut(),
                    )?
                };
                scorer.save(&out.join(WEAK_DIR))?;
                report
            }
            "dpo" | "sft_dpo" => {
                let Some(beta) = params.beta else {
                    bail!(
                        "weak objective `{}` needs a β (weak.beta)",
                        params.objective
                    )
                };
                let reference = if params.objective == "sft_dpo" {
                    let sft_model = trainable_copy(&base, &params.train, params.seed)?;
                    let examples = tok.chosen_examples(&labeled)?;
                    // The DPO loop below starts from this one's result: keep
                    // its final state so a re-run skips it.
                    let mut checkpoint =
                        checkpointer(ctx, "sft", sft_model.backbone()).map(|c| c.keeping_final());
                    sft::train_sft(
                        &sft_model,
                        &examples,
                        &cfg,
                        pad,
                        ctx.device,
                        &mut |_| {},
                        checkpoint.as_mut(),
                    )?;
                    sft_model.backbone().set_training(false);
                    sft_model
                } else {
                    base
                };
                let batching = Batching {
                    pad_id: pad,
                    max_len,
                    device: ctx.device.clone(),
                };
                let ref_lp = reference_logprobs(&reference, &pairs, &batching, cfg.batch_size)?;
                let policy = trainable_copy(&reference, &params.train, params.seed)?;
                let weights = vec![1.0; pairs.len()];
                let data = PoData {
                    pairs: &pairs,
                    reference: &ref_lp,
                    weights: &weights,
                };
                let objective = PreferenceObjective::dpo(beta);
                let report = train_po(
                    &policy,
                    &data,
                    &objective,
                    &cfg,
                    pad,
                    ctx.device,
                    &mut progress,
                    checkpointer(ctx, "dpo", policy.backbone()).as_mut(),
                )?;
                policy.save(&out.join(WEAK_DIR))?;
                reference.save(&out.join(REFERENCE_DIR))?;
                report
            }
            other => bail!(
                "unknown weak objective `{other}`; valid objectives: bt, dpo, sft_dpo, pairrm"
            ),
        };
        write_json(
            out,
            WEAK_INFO_FILE,
            &WeakInfo {
                objective: params.objective.clone(),
                beta: params.beta,
                model: params.model.clone(),
            },
        )?;
        let metrics = record_training(ctx, &report)?;
        Ok(StageOutcome { metrics })
    }
}
