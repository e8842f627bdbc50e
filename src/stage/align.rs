//! `align`: preference optimisation of the SFT model on D_U (or D_L, or
//! every pair, with human labels: `train_on`): objective
//! (dpo | ipo | rdpo, or `custom`: a loss written in the manifest) ×
//! per-pair weighting (CW-PO: each pair's loss times its weak confidence,
//! nothing dropped) × an optional top-N% confidence filter (the filtering
//! baseline: the most confident pairs, unweighted).
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{MODEL_DIR, training_pairs};
use super::models::{PairTokenizer, load_policy, tokenizer_of_checkpoint, trainable_copy};
use super::ref_logps::REF_LOGPS_FILE;
use super::training::{train_config, train_preference};
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::spec::{TrainOn, TrainSettings};
use crate::train::custom_loss::CustomLossSpec;
use crate::train::po::{PairLogProbs, PoData};
use crate::train::weighting::top_confident;
use crate::train::{AlignLoss, PreferenceObjective, WeakLabel, WeightingScheme};

pub struct Align;

/// The loss and the weighting arrive built and validated (at resolve time).
/// Serde: the flat form the cache keys have always held (`objective`,
/// `beta` — τ for IPO —, `eps`, `weighting` as text), so keys are unchanged;
/// a custom loss writes `objective = "custom"` and its `loss` instead of
/// `beta` (the knobs it reads are in the loss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FlatParams", into = "FlatParams")]
pub struct Params {
    pub objective: AlignLoss,
    /// `uniform`, `cw` (= `2*sigmoid(s_c - s_r) - 1`), another named scheme,
    /// or an expression of `s_c`, `s_r`, `delta`, `c`.
    pub weighting: WeightingScheme,
    /// Keep only the `filter_top` fraction of pairs with the highest confidence.
    pub filter_top: Option<f64>,
    pub train: TrainSettings,
    pub seed: u64,
    /// The pairs aligned on: D_U (the default), D_L or all (human labels).
    pub train_on: TrainOn,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatParams {
    /// `dpo` | `ipo` | `rdpo` | `custom`.
    objective: String,
    /// β of DPO / rDPO, τ of IPO (absent for custom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    beta: Option<f64>,
    /// rDPO label-noise rate ε (None for dpo / ipo / custom).
    #[serde(default)]
    eps: Option<f64>,
    /// Per-token mean log-probs instead of sums; only written when it is
    /// not the objective's default (on for IPO, off for DPO), so the keys of
    /// the defaults are what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length_normalised: Option<bool>,
    /// The loss of `objective = "custom"`, in canonical form. Absent from
    /// the built-ins' params, so their cache keys are what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss: Option<CustomLossSpec>,
    weighting: String,
    #[serde(default)]
    filter_top: Option<f64>,
    train: TrainSettings,
    seed: u64,
    /// Absent when D_U (the default), so older keys hold.
    #[serde(default, skip_serializing_if = "TrainOn::is_unlabeled")]
    train_on: TrainOn,
}

/// `length_normalised` as params write it: `None` at `default`.
fn unless_default(length_normalised: bool, default: bool) -> Option<bool> {
    (length_normalised != default).then_some(length_normalised)
}

impl TryFrom<FlatParams> for Params {
    type Error = anyhow::Error;

    fn try_from(flat: FlatParams) -> Result<Params> {
        let beta = || {
            flat.beta
                .with_context(|| format!("align: {} needs `beta`", flat.objective))
        };
        let objective = match flat.objective.as_str() {
            "dpo" => PreferenceObjective::Dpo {
                beta: beta()?,
                length_normalised: flat.length_normalised.unwrap_or(false),
            }
            .into(),
            "ipo" => PreferenceObjective::Ipo {
                tau: beta()?,
                length_normalised: flat.length_normalised.unwrap_or(true),
            }
            .into(),
            "rdpo" => PreferenceObjective::Rdpo {
                beta: beta()?,
                epsilon: flat.eps.context("align: rdpo needs `eps`")?,
            }
            .into(),
            "custom" => AlignLoss::Custom(
                flat.loss
                    .clone()
                    .context("align: objective `custom` without a loss expression")?,
            ),
            other => {
                bail!("unknown objective `{other}`; valid objectives: dpo, ipo, rdpo, custom")
            }
        };
        objective.build()?;
        Ok(Params {
            objective,
            weighting: flat.weighting.parse()?,
            filter_top: flat.filter_top,
            train: flat.train,
            seed: flat.seed,
            train_on: flat.train_on,
        })
    }
}

impl From<Params> for FlatParams {
    fn from(p: Params) -> FlatParams {
        let (objective, beta, eps, length_normalised, loss) = match p.objective {
            AlignLoss::BuiltIn(PreferenceObjective::Dpo {
                beta,
                length_normalised,
            }) => (
                "dpo",
                Some(beta),
                None,
                unless_default(length_normalised, false),
                None,
            ),
            AlignLoss::BuiltIn(PreferenceObjective::Ipo {
                tau,
                length_normalised,
            }) => (
                "ipo",
                Some(tau),
                None,
                unless_default(length_normalised, true),
                None,
            ),
            AlignLoss::BuiltIn(PreferenceObjective::Rdpo { beta, epsilon }) => {
                ("rdpo", Some(beta), Some(epsilon), None, None)
            }
            AlignLoss::Custom(spec) => ("custom", None, None, None, Some(spec)),
        };
        FlatParams {
            objective: objective.into(),
            beta,
            eps,
            length_normalised,
            loss,
            weighting: p.weighting.into(),
            filter_top: p.filter_top,
            train: p.train,
            seed: p.seed,
            train_on: p.train_on,
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
        let objective = params.objective.build()?;
        let model_dir = ctx.input("sft")?.join(MODEL_DIR);
        let tokenizer = tokenizer_of_checkpoint(&model_dir)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let (pairs, labels) = training_pairs(ctx, params.train_on)?;
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
        let metrics = train_preference(
            ctx,
            "align",
            &policy,
            &data,
            objective.as_ref(),
            &cfg,
            tokenizer.pad_id(),
            &model_dir,
        )?;
        Ok(StageOutcome { metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::CustomLoss;

    fn params(objective: AlignLoss) -> Params {
        Params {
            objective,
            weighting: WeightingScheme::Uniform,
            filter_top: None,
            train: TrainSettings::new(1e-3, 1, 16, None),
            seed: 3,
            train_on: TrainOn::Unlabeled,
        }
    }

    #[test]
    fn built_ins_keep_the_flat_form_of_their_cache_keys() {
        let train = serde_json::json!({
            "learning_rate": 1e-3, "epochs": 1, "batch_size": 16, "lora_rank": null
        });
        let cases = [
            (
                PreferenceObjective::dpo(0.5),
                serde_json::json!({"objective": "dpo", "beta": 0.5, "eps": null}),
            ),
            (
                PreferenceObjective::Ipo {
                    tau: 0.1,
                    length_normalised: true,
                },
                serde_json::json!({"objective": "ipo", "beta": 0.1, "eps": null}),
            ),
            (
                PreferenceObjective::Rdpo {
                    beta: 0.5,
                    epsilon: 0.2,
                },
                serde_json::json!({"objective": "rdpo", "beta": 0.5, "eps": 0.2}),
            ),
            // Off the objective's default, `length_normalised` is written.
            (
                PreferenceObjective::Dpo {
                    beta: 0.5,
                    length_normalised: true,
                },
                serde_json::json!({"objective": "dpo", "beta": 0.5, "eps": null,
                    "length_normalised": true}),
            ),
            (
                PreferenceObjective::Ipo {
                    tau: 0.1,
                    length_normalised: false,
                },
                serde_json::json!({"objective": "ipo", "beta": 0.1, "eps": null,
                    "length_normalised": false}),
            ),
        ];
        for (objective, head) in cases {
            let p = params(objective.into());
            let mut want = head.as_object().unwrap().clone();
            want.insert("weighting".into(), "uniform".into());
            want.insert("filter_top".into(), serde_json::Value::Null);
            want.insert("train".into(), train.clone());
            want.insert("seed".into(), 3.into());
            let got = serde_json::to_value(&p).unwrap();
            assert_eq!(got, serde_json::Value::Object(want), "{objective:?}");
            assert_eq!(serde_json::from_value::<Params>(got).unwrap(), p);
        }
    }

    #[test]
    fn a_custom_loss_is_keyed_by_its_spec_and_checked_when_read_back() {
        let spec = CustomLoss::new(
            "relu(1-beta*(h))",
            false,
            [0.5, 0.1, 0.1],
            &Default::default(),
        )
        .unwrap()
        .spec();
        let p = params(AlignLoss::Custom(spec));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["objective"], "custom");
        assert_eq!(json["loss"]["expression"], "relu(1 - beta*h)");
        assert_eq!(json["loss"]["constants"], serde_json::json!({"beta": 0.5}));
        assert!(json.get("beta").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<Params>(json.clone()).unwrap(), p);
        // A record edited into a loss the checks reject fails on reading.
        let mut bad = json;
        bad["loss"]["expression"] = "h - h".into();
        let err = serde_json::from_value::<Params>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("custom loss `h - h`"), "{err}");
    }
}
