//! A reward model as the judge: the tiny profile's `learned` gold (trained by
//! the `gold_train` stage) scores a response as its Bradley–Terry head's
//! scalar on `prompt response <eos>`, exactly as it was trained.
use std::path::Path;

use anyhow::{Context, ensure};
use candle_core::Device;

use super::GoldScorer;
use crate::data::Tokenizer;
use crate::model::{LoadedModel, RewardModel, ScalarScorer, load_checkpoint};
use crate::train::{Batching, TokenizedExample};

/// Responses scored per forward pass (does not change the scores).
const BATCH: usize = 64;

pub struct LearnedGold {
    model: RewardModel,
    tokenizer: Box<dyn Tokenizer>,
    batching: Batching,
}

impl LearnedGold {
    /// The reward model checkpoint in `dir` (one of our checkpoints) with the
    /// tokenizer it was trained with.
    pub fn load(
        dir: &Path,
        tokenizer: Box<dyn Tokenizer>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let model = match load_checkpoint(dir, device)
            .with_context(|| format!("loading the learned gold RM in {}", dir.display()))?
        {
            LoadedModel::Reward(rm) => rm,
            LoadedModel::Policy(_) => anyhow::bail!(
                "{} holds a policy, not the reward model a learned judge needs",
                dir.display()
            ),
        };
        let batching = Batching {
            pad_id: tokenizer.pad_id(),
            max_len: model.config().max_position,
            device: device.clone(),
        };
        Ok(Self {
            model,
            tokenizer,
            batching,
        })
    }
}

impl GoldScorer for LearnedGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        ensure!(
            prompts.len() == responses.len(),
            "learned gold got {} prompts but {} responses",
            prompts.len(),
            responses.len()
        );
        let examples = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| {
                let mut response = self.tokenizer.encode(r)?;
                response.push(self.tokenizer.eos_id());
                Ok(TokenizedExample {
                    prompt: self.tokenizer.encode(p)?,
                    response,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut scores = Vec::with_capacity(examples.len());
        for chunk in examples.chunks(BATCH) {
            let rows: Vec<&TokenizedExample> = chunk.iter().collect();
            let batch = self.batching.examples(&rows)?;
            scores.extend(self.model.scores(&batch)?.to_vec1::<f32>()?); // [B]
        }
        Ok(scores)
    }
}
