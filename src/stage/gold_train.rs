//! `gold_train`: the synthetic world's *learned* judge (`metric.gold =
//! "learned"`). The paper's gold RMs are themselves learned models, so a
//! user can ask whether a method's gains survive a judge with a learned
//! judge's blind spots. This is one Bradley–Terry reward model per world, of
//! the profile's `[learned_gold]` size (the largest strong one), started from
//! its pretrained base and trained on a large set of base-policy pairs
//! labelled by the *true* reward over every family — separate from the human
//! pairs and never touching a test prompt. Its agreement with the true
//! reward on held-out pairs of each family is in its record.
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::artifacts::MODEL_DIR;
use super::models::{PairTokenizer, load_policy};
use super::training::{checkpointer, progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome};
use crate::data::Tokenizer;
use crate::data::synthetic::{FAMILIES, WorldConfig, gold_labelled_pairs, tokenizer};
use crate::model::RewardModel;
use crate::spec::{TinyModelSpec, TrainSettings};
use crate::train::{Batching, LoopRun, bt};

pub struct GoldTrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: TinyModelSpec,
    /// The world whose pairs it learns (and whose base model it starts from).
    pub world: serde_json::Value,
    pub n_pairs: usize,
    /// Held-out pairs per family for the agreement metrics.
    pub n_valid_pairs: usize,
    pub train: TrainSettings,
    pub seed: u64,
}

/// The reward model's dir inside the artifact.
pub const GOLD_DIR: &str = "gold";

impl Stage for GoldTrain {
    const KIND: &'static str = "gold_train";
    /// 2: its gold-labelled pairs follow the world's `tldr_summary`.
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["base"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let world =
            WorldConfig::from_json(&params.world).context("gold_train: the world config")?;
        let tokenizer = tokenizer();
        let tok = PairTokenizer {
            tokenizer: &tokenizer,
        };
        let train_pairs = gold_labelled_pairs(&world, None, params.n_pairs, "gold-rm/train")?;
        let pairs = tok.pairs(&train_pairs)?;
        let base = load_policy(&ctx.input("base")?.join(MODEL_DIR), ctx.device)?;
        let scorer = RewardModel::from_policy(&base, None, params.seed)?;
        let cfg = train_config(&params.train, params.seed, params.model.max_position);
        let report = bt::train_bradley_terry(
            &scorer,
            &pairs,
            LoopRun {
                config: &cfg,
                pad_id: tokenizer.pad_id(),
                device: ctx.device,
                progress: Some(&mut progress_callback(ctx)),
                checkpoint: checkpointer(ctx, "gold_train", scorer.backbone()).as_mut(),
            },
        )?;
        scorer.backbone().set_training(false);
        scorer.save(&ctx.out_dir.join(GOLD_DIR))?;
        let mut metrics = record_training(ctx, &report)?;

        // Agreement with the true reward on fresh pairs of each family.
        let batching = Batching {
            pad_id: tokenizer.pad_id(),
            max_len: params.model.max_position,
            device: ctx.device.clone(),
        };
        let (mut agree, mut total) = (0usize, 0usize);
        for family in FAMILIES {
            ctx.check_cancel()?;
            let valid =
                gold_labelled_pairs(&world, Some(family), params.n_valid_pairs, "gold-rm/valid")?;
            let labels = bt::score_pairs(&scorer, &tok.pairs(&valid)?, &batching, 64)?;
            let agreeing = labels.iter().filter(|l| l.prefers_chosen).count();
            let share = agreeing as f64 / labels.len().max(1) as f64;
            ctx.progress.log(&format!(
                "  {family}: {:.1}% of {}",
                100.0 * share,
                labels.len()
            ));
            metrics.insert(format!("agreement_{family}"), share);
            agree += agreeing;
            total += labels.len();
        }
        let overall = agree as f64 / total.max(1) as f64;
        metrics.insert("agreement_with_true".into(), overall);
        ctx.progress.log(&format!(
            "learned judge agrees with the true reward on {:.1}% of held-out pairs",
            100.0 * overall
        ));
        Ok(StageOutcome { metrics })
    }
}
