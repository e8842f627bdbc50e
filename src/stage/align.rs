//! `align`: preference optimisation of the SFT model on D_U: objective
//! (dpo | ipo | rdpo) × per-pair weighting (CW-PO: each pair's loss times its
//! weak confidence, nothing dropped) × an optional top-N% confidence filter
//! (the filtering baseline: the most confident pairs, unweighted).
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{MODEL_DIR, labelled_unlabeled};
use super::models::{
    PairTokenizer, load_policy, save_model, tokenizer_of_checkpoint, trainable_copy,
};
use super::ref_logps::REF_LOGPS_FILE;
use super::training::{progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::spec::TrainSettings;
use crate::train::po::{PairLogProbs, PoData, train_po};
use crate::train::weighting::top_confident;
use crate::train::{PreferenceObjective, WeakLabel, WeightingScheme};

pub struct Align;

/// The loss and the weighting arrive built and validated (at resolve time).
/// Serde: the flat form the cache keys have always held (`objective`,
/// `beta` — τ for IPO —, `eps`, `weighting` as text), so keys are unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FlatParams", into = "FlatParams")]
pub struct Params {
    pub objective: PreferenceObjective,
    /// `uniform`, `cw` (= `2*sigmoid(s_c - s_r) - 1`), another named scheme,
    /// or an expression of `s_c`, `s_r`, `delta`, `c`.
    pub weighting: WeightingScheme,
    /// Keep only the `filter_top` fraction of pairs with the highest confidence.
    pub filter_top: Option<f64>,
    pub train: TrainSettings,
    pub seed: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatParams {
    /// `dpo` | `ipo` | `rdpo`.
    objective: String,
    /// β of DPO / rDPO, τ of IPO.
    beta: f64,
    /// rDPO label-noise rate ε (None for dpo / ipo).
    #[serde(default)]
    eps: Option<f64>,
    /// IPO on summed log-probs; only written when false.
    #[serde(default = "length_normalised", skip_serializing_if = "is_true")]
    length_normalised: bool,
    weighting: String,
    #[serde(default)]
    filter_top: Option<f64>,
    train: TrainSettings,
    seed: u64,
}

fn length_normalised() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl TryFrom<FlatParams> for Params {
    type Error = anyhow::Error;

    fn try_from(flat: FlatParams) -> Result<Params> {
        let objective = match flat.objective.as_str() {
            "dpo" => PreferenceObjective::Dpo { beta: flat.beta },
            "ipo" => PreferenceObjective::Ipo {
                tau: flat.beta,
                length_normalised: flat.length_normalised,
            },
            "rdpo" => PreferenceObjective::Rdpo {
                beta: flat.beta,
                epsilon: flat.eps.context("align: rdpo needs `eps`")?,
            },
            other => bail!("unknown objective `{other}`; valid objectives: dpo, ipo, rdpo"),
        };
        objective.validate()?;
        Ok(Params {
            objective,
            weighting: flat.weighting.parse()?,
            filter_top: flat.filter_top,
            train: flat.train,
            seed: flat.seed,
        })
    }
}

impl From<Params> for FlatParams {
    fn from(p: Params) -> FlatParams {
        let (objective, beta, eps, length_normalised) = match p.objective {
            PreferenceObjective::Dpo { beta } => ("dpo", beta, None, true),
            PreferenceObjective::Ipo {
                tau,
                length_normalised,
            } => ("ipo", tau, None, length_normalised),
            PreferenceObjective::Rdpo { beta, epsilon } => ("rdpo", beta, Some(epsilon), true),
        };
        FlatParams {
            objective: objective.into(),
            beta,
            eps,
            length_normalised,
            weighting: p.weighting.into(),
            filter_top: p.filter_top,
            train: p.train,
            seed: p.seed,
        }
    }
}

/// Per-pair weights, and which pairs survive the filter.
fn weights_and_kept(
    params: &Params,
    labels: Option<&[WeakLabel]>,
    n: usize,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let scheme = &params.weighting;
    let Some(labels) = labels else {
        if *scheme != WeightingScheme::Uniform || params.filter_top.is_some() {
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
        let objective = params.objective;
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
            &objective,
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
