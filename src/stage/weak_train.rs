//! `weak_train`: the weak annotator, trained on D_L's human labels.
//!
//! - `bt`: a Bradley–Terry reward model (the paper's annotator, Eq. 4–6): the
//!   weak LM's backbone with a scalar head on the last token.
//! - `sft_dpo`: the WS-DPO baseline as the paper runs it (§4.3, after Tao &
//!   Li 2025): the weak LM fine-tuned on D_L's chosen responses, then
//!   aligned with DPO (β = `weak.beta`) from that SFT model, which is also
//!   the reference; it labels by implicit reward β·(log π − log π_ref).
//!   `annotation = "ws"` trains this one unless `weak_objective` names `dpo`.
//! - `dpo`: the same without the SFT step (the untouched weak LM is the
//!   start and the reference): Table 6's "DPO" column.
//! - `pairrm`: a PairRM-style pairwise scorer (Appendix J.9) over
//!   `x y_a <eos> y_b <eos>`, trained with BCE on both orders.
use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, bail};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::artifacts::split_pairs;
use super::models::{PairTokenizer, load_base_policy, max_len, tokenizer_for, trainable_copy};
use super::training::{checkpointer, progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome, write_json};
use crate::model::backbone::Backbone;
use crate::model::{Policy, RewardModel};
use crate::spec::{ModelSpec, TrainSettings};
use crate::train::checkpoint::Checkpointer;
use crate::train::po::{PoData, reference_logprobs, train_po};
use crate::train::{
    Batching, LoopRun, PreferenceObjective, StepInfo, TokenizedExample, TokenizedPair, TrainConfig,
    TrainReport, bt, pairrm, sft,
};

pub struct WeakTrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `bt` | `dpo` | `sft_dpo` | `pairrm`.
    pub objective: String,
    pub model: ModelSpec,
    pub train: TrainSettings,
    /// DPO β for the `dpo` / `sft_dpo` weak objectives: `weak.beta`, default
    /// [`crate::spec::DEFAULT_WEAK_BETA`] (None for `bt`, `pairrm`).
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
    /// The token cap it was trained with, so its labels are computed on the
    /// same sequences (absent in older artifacts: the model's context).
    #[serde(default)]
    pub max_len: Option<usize>,
}

pub const WEAK_DIR: &str = "weak";
pub const REFERENCE_DIR: &str = "reference";
pub const WEAK_INFO_FILE: &str = "weak.json";
/// The [`WeakPhases`] of the training, beside `train.json`.
pub const PHASES_FILE: &str = "phases.json";

/// A weak objective's training time by phase (Table 6 reports the sum): the
/// SFT step (`sft_dpo` only, 0 for the others) and the preference phase
/// (the BT or PairRM loop; for DPO its reference log-probs and loop).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeakPhases {
    pub sft_seconds: f64,
    pub preference_seconds: f64,
}

impl WeakPhases {
    /// Every phase's seconds: the weak objective's training time.
    pub fn total(&self) -> f64 {
        self.sft_seconds + self.preference_seconds
    }

    /// `train_seconds` (the sum, Table 6's number), `train_seconds_sft` and
    /// `train_seconds_preference`.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        [
            ("train_seconds".to_string(), self.total()),
            ("train_seconds_sft".to_string(), self.sft_seconds),
            (
                "train_seconds_preference".to_string(),
                self.preference_seconds,
            ),
        ]
        .into()
    }
}

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
    /// 3: `phases.json` (Table 6's time by phase); `sft_dpo`'s time counts
    /// its SFT step. (WS cells re-key anyway: they now train `sft_dpo` with
    /// `weak.beta`'s own default.)
    const VERSION: u32 = 3;
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
        let (report, phases) = match params.objective.as_str() {
            "bt" | "pairrm" => {
                let started = Instant::now();
                let lora = super::models::lora_of(&params.train);
                let scorer = RewardModel::from_policy(&base, lora.as_ref(), params.seed)?;
                let mut checkpoint = checkpointer(ctx, &params.objective, scorer.backbone());
                let run = LoopRun {
                    config: &cfg,
                    pad_id: pad,
                    device: ctx.device,
                    progress: Some(&mut progress),
                    checkpoint: checkpoint.as_mut(),
                };
                let report = if params.objective == "bt" {
                    bt::train_bradley_terry(&scorer, &pairs, run)?
                } else {
                    pairrm::train_pairwise(&scorer, &pairwise_inputs(&pairs), run)?
                };
                let phases = WeakPhases {
                    sft_seconds: 0.0,
                    preference_seconds: started.elapsed().as_secs_f64(),
                };
                scorer.save(&out.join(WEAK_DIR))?;
                (report, phases)
            }
            "dpo" | "sft_dpo" => {
                let Some(beta) = params.beta else {
                    bail!(
                        "weak objective `{}` needs a β (weak.beta)",
                        params.objective
                    )
                };
                let examples = match params.objective.as_str() {
                    "sft_dpo" => Some(tok.chosen_examples(&labeled)?),
                    _ => None,
                };
                let annotator = train_dpo_annotator(
                    base,
                    &DpoAnnotatorData {
                        sft_examples: examples.as_deref(),
                        pairs: &pairs,
                        pad_id: pad,
                        device: ctx.device,
                    },
                    beta,
                    &params.train,
                    &cfg,
                    &mut progress,
                    &mut |phase, model| checkpointer(ctx, phase, model),
                )?;
                annotator.policy.save(&out.join(WEAK_DIR))?;
                annotator.reference.save(&out.join(REFERENCE_DIR))?;
                (annotator.report, annotator.phases)
            }
            other => bail!(
                "unknown weak objective `{other}`; valid objectives: bt, dpo, sft_dpo, pairrm"
            ),
        };
        write_json(out, PHASES_FILE, &phases)?;
        write_json(
            out,
            WEAK_INFO_FILE,
            &WeakInfo {
                objective: params.objective.clone(),
                beta: params.beta,
                model: params.model.clone(),
                max_len: Some(cfg.max_len),
            },
        )?;
        let mut metrics = record_training(ctx, &report)?;
        metrics.extend(phases.metrics());
        Ok(StageOutcome { metrics })
    }
}

/// What [`train_dpo_annotator`] trains on: D_L's pairs and, for `sft_dpo`,
/// the (prompt, chosen) examples of its SFT phase.
pub struct DpoAnnotatorData<'a> {
    /// `Some`: SFT on these first (`sft_dpo`, the paper's WS-DPO, §4.3);
    /// `None`: DPO straight from the base model (`dpo`).
    pub sft_examples: Option<&'a [TokenizedExample]>,
    pub pairs: &'a [TokenizedPair],
    pub pad_id: u32,
    pub device: &'a Device,
}

/// WS-DPO's weak LM: the DPO reference, the DPO-trained policy that labels
/// by implicit reward, the DPO loop's report and the time of each phase.
pub struct DpoAnnotator {
    pub reference: Policy,
    pub policy: Policy,
    pub report: TrainReport,
    pub phases: WeakPhases,
}

/// Trains WS-DPO's weak LM on D_L. With SFT examples (`sft_dpo`) the base
/// model is first fine-tuned on them; that SFT model is then both the DPO
/// reference and the DPO policy's starting point (a copy, with fresh LoRA
/// adapters when the block asks for a rank, merged over the SFT weights).
/// Without (`dpo`), the untouched base model is both. The SFT phase's
/// checkpoint keeps its final state, so a re-run after an interrupted DPO
/// phase skips it. `checkpoint(phase, model)`: the loop's checkpointer
/// (`"sft"`, `"dpo"`), `None` for none.
pub fn train_dpo_annotator<'c>(
    base: Policy,
    data: &DpoAnnotatorData,
    beta: f64,
    train: &TrainSettings,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(StepInfo),
    checkpoint: &mut dyn FnMut(&str, &Backbone) -> Option<Checkpointer<'c>>,
) -> Result<DpoAnnotator> {
    let mut sft_seconds = 0.0;
    let reference = match data.sft_examples {
        Some(examples) => {
            let started = Instant::now();
            let sft_model = trainable_copy(&base, train, cfg.seed)?;
            let mut saver = checkpoint("sft", sft_model.backbone()).map(|c| c.keeping_final());
            sft::train_sft(
                &sft_model,
                examples,
                LoopRun {
                    config: cfg,
                    pad_id: data.pad_id,
                    device: data.device,
                    progress: None,
                    checkpoint: saver.as_mut(),
                },
            )?;
            sft_model.backbone().set_training(false);
            sft_seconds = started.elapsed().as_secs_f64();
            sft_model
        }
        None => base,
    };
    let started = Instant::now();
    let batching = Batching {
        pad_id: data.pad_id,
        max_len: cfg.max_len,
        device: data.device.clone(),
    };
    let ref_lp = reference_logprobs(&reference, data.pairs, &batching, cfg.batch_size)?;
    let policy = trainable_copy(&reference, train, cfg.seed)?;
    let weights = vec![1.0; data.pairs.len()];
    let po_data = PoData {
        pairs: data.pairs,
        reference: &ref_lp,
        weights: &weights,
    };
    let report = train_po(
        &policy,
        &po_data,
        &PreferenceObjective::dpo(beta),
        LoopRun {
            config: cfg,
            pad_id: data.pad_id,
            device: data.device,
            progress: Some(progress),
            checkpoint: checkpoint("dpo", policy.backbone()).as_mut(),
        },
    )?;
    Ok(DpoAnnotator {
        reference,
        policy,
        report,
        phases: WeakPhases {
            sft_seconds,
            preference_seconds: started.elapsed().as_secs_f64(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TrainBlock;
    use crate::train::test_model::tiny_policy;

    /// Six pairs over the tiny decoder's vocabulary (EOS = 2 ends each response).
    fn pairs() -> Vec<TokenizedPair> {
        (0..6u32)
            .map(|i| TokenizedPair {
                prompt: vec![1, 3 + i, 9 + i % 3],
                chosen: vec![15 + i, 21, 2],
                rejected: vec![27 + i % 4, 33, 2],
            })
            .collect()
    }

    fn settings() -> (TrainSettings, TrainConfig) {
        let block: TrainBlock =
            toml::from_str("learning_rate = 0.02\nbatch_size = 2\nepochs = 2\nwarmup_steps = 0")
                .unwrap();
        let train = block.train();
        let cfg = TrainConfig::from_settings(&train, 7, 64);
        (train, cfg)
    }

    /// Σ log π of every chosen and rejected response under `model`.
    fn logprobs(model: &Policy) -> Result<Vec<f64>> {
        let batching = Batching {
            pad_id: 0,
            max_len: 64,
            device: Device::Cpu,
        };
        Ok(reference_logprobs(model, &pairs(), &batching, 4)?
            .iter()
            .flat_map(|p| [p.chosen_sum, p.rejected_sum])
            .collect())
    }

    fn max_gap(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    fn annotator(sft_examples: Option<&[TokenizedExample]>) -> Result<DpoAnnotator> {
        let (train, cfg) = settings();
        let pairs = pairs();
        let data = DpoAnnotatorData {
            sft_examples,
            pairs: &pairs,
            pad_id: 0,
            device: &Device::Cpu,
        };
        train_dpo_annotator(
            tiny_policy(3)?,
            &data,
            0.5,
            &train,
            &cfg,
            &mut |_| {},
            &mut |_, _| None,
        )
    }

    /// WS-DPO's weak LM (`sft_dpo`) starts from its SFT checkpoint: its
    /// reference is the SFT loop's model (an SFT run of its own from the
    /// same base, on the same examples and config, gives the same
    /// log-probs), not the base; and the DPO policy starts at that reference,
    /// so DPO's first step sees log-ratio 0 on every pair: loss ln 2. Plain
    /// `dpo` keeps the base as its reference.
    #[test]
    fn ws_dpo_weak_model_starts_from_its_sft_checkpoint() -> Result<()> {
        let examples: Vec<TokenizedExample> = pairs()
            .into_iter()
            .map(|p| TokenizedExample {
                prompt: p.prompt,
                response: p.chosen,
            })
            .collect();
        let ws = annotator(Some(&examples))?;

        let (train, cfg) = settings();
        let sft_alone = trainable_copy(&tiny_policy(3)?, &train, cfg.seed)?;
        sft::train_sft(&sft_alone, &examples, LoopRun::quiet(&cfg, 0, &Device::Cpu))?;
        sft_alone.backbone().set_training(false);
        let base = logprobs(&tiny_policy(3)?)?;
        let reference = logprobs(&ws.reference)?;
        assert!(
            max_gap(&reference, &logprobs(&sft_alone)?) < 1e-5,
            "the reference is the SFT model"
        );
        assert!(
            max_gap(&reference, &base) > 1e-2,
            "SFT moved the model away from its base: {reference:?} vs {base:?}"
        );
        let first = ws.report.losses[0];
        assert!(
            (first - std::f64::consts::LN_2).abs() < 1e-5,
            "DPO's first step starts at the SFT model: loss {first} should be ln 2"
        );
        assert!(ws.report.steps > 1 && ws.report.final_loss < first);
        assert!(ws.phases.sft_seconds > 0.0 && ws.phases.preference_seconds > 0.0);

        let plain = annotator(None)?;
        assert!(max_gap(&logprobs(&plain.reference)?, &base) < 1e-9);
        assert!((plain.report.losses[0] - std::f64::consts::LN_2).abs() < 1e-5);
        assert_eq!(plain.phases.sft_seconds, 0.0);
        Ok(())
    }

    /// Table 6's time is every phase's: SFT + preference, each one a metric.
    #[test]
    fn train_seconds_sum_the_phases() {
        let phases = WeakPhases {
            sft_seconds: 1.25,
            preference_seconds: 2.5,
        };
        let m = phases.metrics();
        assert_eq!(m["train_seconds"], 3.75);
        assert_eq!(m["train_seconds_sft"], 1.25);
        assert_eq!(m["train_seconds_preference"], 2.5);
    }
}
