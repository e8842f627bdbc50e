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
use crate::train::{LoopRun, TokenizedExample, TrainConfig, sft::train_sft};

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
    /// 4: the corpus's TL;DR summaries follow `tldr_summary`; the key holds
    /// only the world keys the corpus reads.
    const VERSION: u32 = 4;
    const INPUTS: &'static [&'static str] = &[];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let world = WorldConfig::from_json(&params.world).context("pretrain: the world config")?;
        let tokenizer = crate::data::synthetic::tokenizer();
        let cfg = params.model.decoder_config(&tokenizer);
        let policy = Policy::new_random(&cfg, None, params.seed, ctx.device)?;
        let report = pretrain(
            &policy,
            &world,
            params,
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

/// Trains `policy` (fresh, of `params.model`'s shape) on `params.steps ×
/// params.batch_size` fresh documents of `world`'s pretraining corpus: one
/// pass, whole documents (no prompt mask, every token after the first is a
/// target).
pub fn pretrain(
    policy: &Policy,
    world: &WorldConfig,
    params: &Params,
    device: &candle_core::Device,
    progress: &mut dyn FnMut(crate::train::StepInfo),
    checkpoint: Option<&mut crate::train::checkpoint::Checkpointer>,
) -> Result<crate::train::TrainReport> {
    world.validate()?;
    let tokenizer = crate::data::synthetic::tokenizer();
    let documents = pretraining_corpus(world, params.steps * params.batch_size);
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
    train_sft(
        policy,
        &corpus,
        LoopRun {
            config: &train,
            pad_id: tokenizer.pad_id(),
            device,
            progress: Some(progress),
            checkpoint,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::gold_labelled_pairs;
    use crate::model::Arch;
    use crate::stage::models::PairTokenizer;
    use crate::train::po::reference_logprobs;
    use crate::train::{Batching, TrainConfig};
    use candle_core::Device;

    /// How often a model pretrained on `world` gives the gold-chosen response
    /// a higher log-prob than the gold-rejected one, zero-shot, on 400
    /// held-out gold-labelled pairs of every family.
    fn zero_shot_preference(world: &WorldConfig) -> f64 {
        let params = Params {
            model: TinyModelSpec {
                arch: Arch::Llama,
                hidden_size: 32,
                intermediate_size: 64,
                num_layers: 2,
                num_heads: 2,
                num_kv_heads: None,
                max_position: 64,
            },
            world: serde_json::Value::Null,
            steps: 150,
            learning_rate: 3e-3,
            batch_size: 32,
            seed: 0,
        };
        let tokenizer = crate::data::synthetic::tokenizer();
        let cfg = params.model.decoder_config(&tokenizer);
        let policy = Policy::new_random(&cfg, None, 0, &Device::Cpu).unwrap();
        pretrain(&policy, world, &params, &Device::Cpu, &mut |_| {}, None).unwrap();
        let pairs = gold_labelled_pairs(world, None, 400, "gold-rm/valid").unwrap();
        let tok = PairTokenizer {
            tokenizer: &tokenizer,
        };
        let batching =
            Batching::for_training(tokenizer.pad_id(), &TrainConfig::default(), &Device::Cpu);
        let lp = reference_logprobs(&policy, &tok.pairs(&pairs).unwrap(), &batching, 50).unwrap();
        lp.iter().filter(|p| p.chosen_sum > p.rejected_sum).count() as f64 / lp.len() as f64
    }

    /// Issue 18: a corpus that leans the gold judge's way gives the
    /// pretrained (weak-sized) model a prior that agrees with the judge. At
    /// `pretrain_gold_share = 1` it prefers the gold-chosen response, zero
    /// shot, on clearly more than half of held-out pairs, and more often than
    /// the same model pretrained on today's corpus. 400 pairs: a share of
    /// 0.5 has a 95% binomial half-width of 0.049.
    #[test]
    fn a_gold_leaning_corpus_gives_a_prior_that_agrees_with_the_judge() {
        let plain = zero_shot_preference(&WorldConfig::default());
        let leaning = zero_shot_preference(&WorldConfig {
            pretrain_gold_share: 1.0,
            ..WorldConfig::default()
        });
        eprintln!("zero-shot agreement with gold: share 0 → {plain:.3}, share 1 → {leaning:.3}");
        assert!(leaning > 0.5 + 0.049, "share 1: {leaning:.3}");
        assert!(
            leaning > plain,
            "share 0: {plain:.3}, share 1: {leaning:.3}"
        );
    }
}
