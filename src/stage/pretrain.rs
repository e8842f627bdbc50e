//! `pretrain`: a tiny decoder trained from scratch on the synthetic corpus,
//! standing in for a real checkpoint (tiny profile only).
//!
//! The corpus is the base policy's samples in the dataset: every prompt
//! followed by each of its two candidate responses. Both candidates are the
//! noisy base policy's work, so the pretrained model imitates that policy,
//! as a real base LM imitates the web, and SFT then has something to improve.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::params::TinyModelSpec;
use super::support::{MODEL_DIR, PairTokenizer, progress_callback, record_training};
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::data::{PreferencePair, Tokenizer};
use crate::model::Policy;
use crate::train::{TokenizedExample, TrainConfig, sft::train_sft};

pub struct Pretrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: TinyModelSpec,
    /// Optimiser steps, rounded up to whole passes over the corpus.
    pub steps: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
}

impl Stage for Pretrain {
    const KIND: &'static str = "pretrain";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let tokenizer = crate::data::synthetic::tokenizer();
        let pairs: Vec<PreferencePair> =
            read_json(ctx.input("dataset")?, super::dataset::PAIRS_FILE)?;
        let tok = PairTokenizer {
            tokenizer: &tokenizer,
        };
        // Whole documents: no prompt mask, every token after the first is a target.
        let mut corpus = Vec::with_capacity(2 * pairs.len());
        for pair in &pairs {
            for response in [&pair.chosen, &pair.rejected] {
                let mut ids = tokenizer.encode(&pair.prompt)?;
                ids.extend(tok.response(response)?);
                corpus.push(TokenizedExample {
                    prompt: Vec::new(),
                    response: ids,
                });
            }
        }
        anyhow::ensure!(!corpus.is_empty(), "pretrain: the dataset has no pairs");
        let cfg = params.model.decoder_config(&tokenizer);
        let policy = Policy::new_random(&cfg, None, params.seed, ctx.device)?;
        let examples = params.steps * params.batch_size;
        let train = TrainConfig {
            epochs: examples.div_ceil(corpus.len()).max(1),
            batch_size: params.batch_size,
            lr: params.learning_rate,
            warmup_steps: params.steps / 20,
            weight_decay: 0.01,
            seed: params.seed,
            max_len: params.model.max_position,
            ..TrainConfig::default()
        };
        let report = train_sft(
            &policy,
            &corpus,
            &train,
            tokenizer.pad_id(),
            ctx.device,
            &mut progress_callback(ctx),
        )?;
        policy.save(&ctx.out_dir.join(MODEL_DIR))?;
        let mut metrics = record_training(ctx, &report)?;
        metrics.insert("params".into(), cfg.num_params() as f64);
        Ok(StageOutcome { metrics })
    }
}
