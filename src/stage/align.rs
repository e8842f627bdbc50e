//! `align`: preference optimisation of the SFT model on D_U: objective
//! (dpo | ipo | rdpo, or `custom`: a loss written in the manifest) × per-pair weighting (CW-PO: each pair's loss times its
//! weak confidence, nothing dropped) × an optional top-N% confidence filter
//! (the filtering baseline: the most confident pairs, unweighted).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::params::TrainSettings;
use super::ref_logps::REF_LOGPS_FILE;
use super::support::{
    MODEL_DIR, PairTokenizer, labelled_unlabeled, load_policy, progress_callback, record_training,
    save_model, tokenizer_of_checkpoint, train_config, trainable_copy,
};
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::train::custom_loss::{CustomLoss, CustomLossSpec};
use crate::train::po::{PairLogProbs, PoData, train_po};
use crate::train::weighting::top_confident;
use crate::train::{PreferenceLoss, PreferenceObjective, WeakLabel, WeightingScheme};

pub struct Align;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `dpo` | `ipo` | `rdpo` | `custom`.
    pub objective: String,
    /// β of DPO / rDPO (and of a custom loss), τ of IPO.
    pub beta: f64,
    /// rDPO label-noise rate ε (None for dpo / ipo / custom).
    #[serde(default)]
    pub eps: Option<f64>,
    /// The loss of `objective = "custom"`, in canonical form. Absent from
    /// the built-ins' params, so their cache keys are what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<CustomLossSpec>,
    /// `uniform`, `cw` (= `2*sigmoid(s_c - s_r) - 1`), another named scheme,
    /// or an expression of `s_c`, `s_r`, `delta`, `c`.
    pub weighting: String,
    /// Keep only the `filter_top` fraction of pairs with the highest confidence.
    #[serde(default)]
    pub filter_top: Option<f64>,
    pub train: TrainSettings,
    pub seed: u64,
}

impl Params {
    fn objective(&self) -> Result<Box<dyn PreferenceLoss>> {
        Ok(match self.objective.as_str() {
            "dpo" => Box::new(PreferenceObjective::Dpo { beta: self.beta }),
            "ipo" => Box::new(PreferenceObjective::Ipo {
                tau: self.beta,
                length_normalised: true,
            }),
            "rdpo" => Box::new(PreferenceObjective::Rdpo {
                beta: self.beta,
                epsilon: self.eps.unwrap_or(0.1),
            }),
            "custom" => {
                let Some(spec) = &self.loss else {
                    bail!("align: objective `custom` without a loss expression");
                };
                let loss = CustomLoss::from_spec(spec)
                    .map_err(|e| anyhow::anyhow!("align: loss `{}`: {e}", spec.expression))?;
                Box::new(loss)
            }
            other => bail!("unknown objective `{other}`; valid objectives: dpo, ipo, rdpo, custom"),
        })
    }
}

/// Why a cell's custom loss is rejected: the setting at fault, a byte
/// offset into `align.loss` when the expression is, and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSettingError {
    pub setting: &'static str,
    pub offset: Option<usize>,
    pub message: String,
}

/// The checked loss of a cell with `objective = "custom"`, as its align
/// params store it; `None` for the built-in objectives (which ignore
/// `align.loss`, so one manifest can sweep `objective = ["dpo", "custom"]`).
/// `loss`, `length_normalised`, `knobs` (β, τ, ε) and `constants` are the
/// `[align]` settings. Called when a manifest is validated, and again when
/// the plan is built.
pub fn custom_loss_spec(
    objective: &str,
    loss: Option<&str>,
    length_normalised: bool,
    knobs: [f64; 3],
    constants: &BTreeMap<String, f64>,
) -> std::result::Result<Option<CustomLossSpec>, LossSettingError> {
    if objective != "custom" {
        return Ok(None);
    }
    let Some(source) = loss else {
        return Err(LossSettingError {
            setting: "objective",
            offset: None,
            message: "`objective = \"custom\"` needs the loss itself: `[align] loss = \"<expression>\"`, \
                      e.g. \"relu(1 - beta*h)\" (README: Writing a loss)"
                .into(),
        });
    };
    CustomLoss::new(source, length_normalised, knobs, constants)
        .map(|loss| Some(loss.spec()))
        .map_err(|e| match e.offset {
            Some(offset) => LossSettingError {
                setting: "align.loss",
                offset: Some(offset),
                message: format!("`align.loss`: {}", e.message),
            },
            None => LossSettingError {
                setting: "align.constants",
                offset: None,
                message: format!("`align.constants`: {}", e.message),
            },
        })
}

/// Per-pair weights, and which pairs survive the filter.
fn weights_and_kept(
    params: &Params,
    labels: Option<&[WeakLabel]>,
    n: usize,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let scheme: WeightingScheme = params
        .weighting
        .parse()
        .map_err(|e| anyhow::anyhow!("align: weighting `{}`: {e}", params.weighting))?;
    let Some(labels) = labels else {
        if scheme != WeightingScheme::Uniform || params.filter_top.is_some() {
            bail!(
                "align: weighting `{}` / filter need weak labels, but this cell uses human labels",
                params.weighting
            );
        }
        return Ok((vec![1.0; n], (0..n).collect()));
    };
    let weights = scheme.weights(labels)?;
    let kept = match params.filter_top {
        Some(fraction) => {
            let confidences: Vec<f64> = labels.iter().map(WeakLabel::confidence).collect();
            top_confident(&confidences, fraction * 100.0)?
        }
        None => (0..n).collect(),
    };
    Ok((weights, kept))
}

impl Stage for Align {
    const KIND: &'static str = "align";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "sft", "ref_logps", "annotation"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let objective = params.objective()?;
        let model_dir = ctx.input("sft")?.join(MODEL_DIR);
        let tokenizer = tokenizer_of_checkpoint(&model_dir)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let (pairs, labels) = labelled_unlabeled(ctx)?;
        let pairs = tok.pairs(&pairs)?;
        let reference: Vec<PairLogProbs> = read_json(ctx.input("ref_logps")?, REF_LOGPS_FILE)?;
        anyhow::ensure!(
            reference.len() == pairs.len(),
            "align: {} reference log-probs for {} pairs",
            reference.len(),
            pairs.len()
        );
        let (weights, kept) = weights_and_kept(params, labels.as_deref(), pairs.len())?;
        let pick = |v: &[f64]| kept.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let kept_pairs: Vec<_> = kept.iter().map(|&i| pairs[i].clone()).collect();
        let kept_ref: Vec<PairLogProbs> = kept.iter().map(|&i| reference[i]).collect();
        let kept_weights = pick(&weights);
        let sft = load_policy(&model_dir, ctx.device)?;
        let policy = trainable_copy(&sft, &params.train, params.seed)?;
        let cfg = train_config(
            &params.train,
            params.seed,
            sft.config().max_position.min(2048),
        );
        let data = PoData {
            pairs: &kept_pairs,
            reference: &kept_ref,
            weights: &kept_weights,
        };
        let report = train_po(
            &policy,
            &data,
            objective.as_ref(),
            &cfg,
            tokenizer.pad_id(),
            ctx.device,
            &mut progress_callback(ctx),
        )?;
        save_model(&policy, Some(&model_dir), ctx.out_dir)?;
        let mut metrics = record_training(ctx, &report)?;
        let n = kept_weights.len().max(1) as f64;
        metrics.insert("pairs".into(), kept_weights.len() as f64);
        metrics.insert("mean_weight".into(), kept_weights.iter().sum::<f64>() / n);
        Ok(StageOutcome { metrics })
    }
}
