//! `gold_train`: the synthetic world's *learned* judge (`metric.gold =
//! "learned"`). The paper's gold RMs are themselves learned models, so a
//! user can ask whether a method's gains survive a judge with a learned
//! judge's blind spots. This is one Bradley–Terry reward model per world, of
//! the profile's `[learned_gold]` size (the largest strong one), started from
//! its pretrained base and trained on a large set of base-policy pairs
//! labelled by the *true* reward over every family — separate from the human
//! pairs and never touching a test prompt. Its agreement with the true
//! reward on held-out pairs of each family is in its record.
//!
//! `gold_train_files` is the same judge for a profile of real models (the
//! `smollm2` smoke profile): an HF or GGUF model with a Bradley–Terry head,
//! trained on a file of gold-labelled pairs (`[learned_gold] files`), its
//! agreement measured on a held-out file. There is no synthetic base to
//! pretrain and no world to draw pairs from, so it is its own kind; the
//! training is the one below.
use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::MODEL_DIR;
use super::models::{
    PairTokenizer, keep_tokenizer, load_base_policy, load_policy, max_len, origin_of, tokenizer_for,
};
use super::training::{checkpointer, progress_callback, record_training, train_config};
use super::{Stage, StageContext, StageOutcome};
use crate::data::real::{LoadOptions, OnBadRow};
use crate::data::synthetic::{FAMILIES, WorldConfig, gold_labelled_pairs, tokenizer};
use crate::model::{Policy, RewardModel};
use crate::spec::{DatasetSource, ModelSpec, TinyModelSpec, TrainSettings};
use crate::train::{Batching, LoopRun, TokenizedPair, bt};

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
        let base = load_policy(&ctx.input("base")?.join(MODEL_DIR), ctx.device)?;
        let judge = Judge {
            tok: &tok,
            max_len: params.model.max_position,
        };
        let (scorer, mut metrics) =
            judge.train(&base, &train_pairs, &params.train, params.seed, ctx)?;
        scorer.save(&ctx.out_dir.join(GOLD_DIR))?;

        // Agreement with the true reward on fresh pairs of each family.
        let (mut agree, mut total) = (0usize, 0usize);
        for family in FAMILIES {
            ctx.check_cancel()?;
            let valid =
                gold_labelled_pairs(&world, Some(family), params.n_valid_pairs, "gold-rm/valid")?;
            let (agreeing, n) = judge.agreeing(&scorer, &valid, ctx)?;
            let share = agreeing as f64 / n.max(1) as f64;
            ctx.progress
                .log(&format!("  {family}: {:.1}% of {n}", 100.0 * share));
            metrics.insert(format!("agreement_{family}"), share);
            agree += agreeing;
            total += n;
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

/// A judge's training and its agreement check, shared by both kinds.
struct Judge<'a> {
    tok: &'a PairTokenizer<'a>,
    /// Longest sequence trained on and scored.
    max_len: usize,
}

impl Judge<'_> {
    /// A Bradley–Terry head on `base`, trained on `pairs` (chosen = the
    /// gold-preferred response); in eval mode, with its training record.
    fn train(
        &self,
        base: &Policy,
        pairs: &[crate::data::PreferencePair],
        train: &TrainSettings,
        seed: u64,
        ctx: &StageContext,
    ) -> Result<(RewardModel, BTreeMap<String, f64>)> {
        let pairs: Vec<TokenizedPair> = self.tok.pairs(pairs)?;
        let scorer = RewardModel::from_policy(base, None, seed)?;
        let cfg = train_config(train, seed, self.max_len);
        let report = bt::train_bradley_terry(
            &scorer,
            &pairs,
            LoopRun {
                config: &cfg,
                pad_id: self.tok.tokenizer.pad_id(),
                device: ctx.device,
                progress: Some(&mut progress_callback(ctx)),
                checkpoint: checkpointer(ctx, "gold_train", scorer.backbone()).as_mut(),
            },
        )?;
        scorer.backbone().set_training(false);
        let metrics = record_training(ctx, &report)?;
        Ok((scorer, metrics))
    }

    /// How many of `pairs` the judge scores chosen above rejected, of how many.
    fn agreeing(
        &self,
        scorer: &RewardModel,
        pairs: &[crate::data::PreferencePair],
        ctx: &StageContext,
    ) -> Result<(usize, usize)> {
        let batching = Batching {
            pad_id: self.tok.tokenizer.pad_id(),
            max_len: self.max_len,
            device: ctx.device.clone(),
        };
        let labels = bt::score_pairs(scorer, &self.tok.pairs(pairs)?, &batching, 64)?;
        let agreeing = labels.iter().filter(|l| l.prefers_chosen).count();
        Ok((agreeing, labels.len()))
    }
}

pub struct GoldTrainFiles;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesParams {
    /// The HF dir or GGUF file the judge starts from.
    pub model: ModelSpec,
    /// Gold-labelled pairs: `train` to learn, `test` held out (both read whole).
    pub pairs: DatasetSource,
    /// The first `n_pairs` training pairs and `n_valid_pairs` held-out ones.
    pub n_pairs: usize,
    pub n_valid_pairs: usize,
    pub train: TrainSettings,
    pub seed: u64,
}

impl Stage for GoldTrainFiles {
    const KIND: &'static str = "gold_train_files";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &[];
    type Params = FilesParams;

    fn run(params: &FilesParams, ctx: &StageContext) -> Result<StageOutcome> {
        let DatasetSource::Files {
            format,
            train,
            test,
        } = &params.pairs
        else {
            bail!("gold_train_files: the gold-labelled pairs must be files ([learned_gold] files)");
        };
        let options = LoadOptions {
            on_bad_row: OnBadRow::Error,
            length_filter: None,
        };
        let read = |path: &std::path::Path, n: usize, what: &str| -> Result<Vec<_>> {
            let pairs = format.load(path, &options)?.pairs;
            anyhow::ensure!(
                pairs.len() >= n,
                "{} holds {} gold-labelled pairs but [learned_gold] asks for {n} {what}; \
                 lower it or write more (`sweep world export-hh`)",
                path.display(),
                pairs.len()
            );
            Ok(pairs.into_iter().take(n).collect())
        };
        let (train_pairs, valid) = (
            read(train, params.n_pairs, "n_pairs")?,
            read(test, params.n_valid_pairs, "n_valid_pairs")?,
        );
        let tokenizer = tokenizer_for(&params.model)?;
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let base = load_base_policy(ctx, &params.model)?;
        let judge = Judge {
            tok: &tok,
            max_len: max_len(&params.model, &base),
        };
        let (scorer, mut metrics) =
            judge.train(&base, &train_pairs, &params.train, params.seed, ctx)?;
        let dir = ctx.out_dir.join(GOLD_DIR);
        scorer.save(&dir)?;
        // The score stage reads the judge's tokenizer from its checkpoint.
        keep_tokenizer(origin_of(&params.model), &dir)?;
        let (agreeing, n) = judge.agreeing(&scorer, &valid, ctx)?;
        let share = agreeing as f64 / n.max(1) as f64;
        metrics.insert("agreement_with_gold_valid".into(), share);
        ctx.progress.log(&format!(
            "learned judge agrees with the gold labels on {:.1}% of {n} held-out pairs",
            100.0 * share
        ));
        Ok(StageOutcome { metrics })
    }
}
