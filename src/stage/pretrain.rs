//! `pretrain`: a tiny decoder trained from scratch on the synthetic world's
//! corpus, standing in for a real checkpoint (tiny profile only).
//!
//! The corpus is the world's base policy talking: prompts of every family
//! followed by the noisy base policy's responses, one fresh document per
//! training example. The pretrained model imitates that policy, as a real
//! base LM imitates the web, so SFT and alignment have something to improve.
//! It depends on the world config only, so every dataset of a world shares
//! one pretrained model per size.
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::artifacts::MODEL_DIR;
use super::training::{checkpointer, progress_callback, record_training};
use super::{Stage, StageContext, StageOutcome};
use crate::data::Tokenizer;
use crate::data::synthetic::{WorldConfig, pretraining_corpus};
use crate::model::Policy;
use crate::spec::TinyModelSpec;
use crate::train::{TokenizedExample, TrainConfig, sft::train_sft};

pub struct Pretrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: TinyModelSpec,
    /// The synthetic world whose base policy writes the corpus.
    pub world: serde_json::Value,
    /// Optimiser steps: one pass over `steps × batch_size` fresh documents.
    pub steps: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
}

impl Stage for Pretrain {
    const KIND: &'static str = "pretrain";
    const VERSION: u32 = 3;
    const INPUTS: &'static [&'static str] = &[];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let world = WorldConfig::from_json(&params.world).context("pretrain: the world config")?;
        world.validate()?;
        let tokenizer = crate::data::synthetic::tokenizer();
        let documents = pretraining_corpus(&world, params.steps * params.batch_size);
        // Whole documents: no prompt mask, every token after the first is a target.
        let corpus = documents
            .iter()
            .map(|doc| {
                let mut ids = tokenizer.encode(doc)?;
                ids.push(tokenizer.eos_id());
                Ok(TokenizedExample {
                    prompt: Vec::new(),
                    response: ids,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        anyhow::ensure!(!corpus.is_empty(), "pretrain: `steps` must be at least 1");
        let cfg = params.model.decoder_config(&tokenizer);
        let policy = Policy::new_random(&cfg, None, params.seed, ctx.device)?;
        let train = TrainConfig {
            epochs: 1,
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
            checkpointer(ctx, "pretrain", policy.backbone()).as_mut(),
        )?;
        policy.save(&ctx.out_dir.join(MODEL_DIR))?;
        let mut metrics = record_training(ctx, &report)?;
        metrics.insert("params".into(), cfg.num_params() as f64);
        Ok(StageOutcome { metrics })
    }
}
