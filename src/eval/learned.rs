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
                // As it was trained (`PairTokenizer`): the prompt opens the
                // sequence with the tokenizer's start tokens.
                Ok(TokenizedExample {
                    prompt: self.tokenizer.encode_prompt(p)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::hf_tokenizer::HfTokenizer;
    use crate::stage::models::PairTokenizer;
    use crate::testing::{bos_template, tiny_llama, word_tokenizer, write_hf_policy_dir};

    /// Regression: the judge scored prompts without the tokenizer's start
    /// tokens (`encode`), but trained on them (`PairTokenizer` uses
    /// `encode_prompt`), so with a BOS-adding tokenizer (Llama 3's, OPT's)
    /// it scored sequences it never saw. Its score now equals the reward
    /// model's on exactly the training ids, and differs from the BOS-less one.
    #[test]
    fn a_learned_judge_scores_what_it_was_trained_on() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let words = word_tokenizer(
            &["<pad>", "<s>", "</s>", "<unk>"],
            &["a", "b", "."],
            "<unk>",
            bos_template("<s>", 1),
        );
        let cfg = tiny_llama(); // bos 1, eos 2, pad 0
        let policy = write_hf_policy_dir(&tmp.path().join("hf"), &cfg, 1, &words)?;
        let rm = RewardModel::from_policy(&policy, None, 3)?;
        rm.save(&tmp.path().join("rm"))?;
        let tokenizer =
            || HfTokenizer::from_file(&tmp.path().join("hf/tokenizer.json"), 2, 0).unwrap();
        let tok = tokenizer();
        assert_eq!(tok.encode_prompt("a b")?, [1, 4, 5], "BOS first");

        let judge = LearnedGold::load(&tmp.path().join("rm"), Box::new(tokenizer()), &Device::Cpu)?;
        let got = judge.score(&["a b".into()], &[" .".into()])?;

        let pairs = PairTokenizer { tokenizer: &tok };
        let score_of = |prompt: Vec<u32>| -> anyhow::Result<f32> {
            let example = TokenizedExample {
                prompt,
                response: pairs.response(" .")?,
            };
            let batch = judge.batching.examples(&[&example])?;
            Ok(rm.scores(&batch)?.to_vec1::<f32>()?[0])
        };
        let trained = score_of(tok.encode_prompt("a b")?)?;
        let without_bos = score_of(tok.encode("a b")?)?;
        assert!((got[0] - trained).abs() < 1e-6, "{} vs {trained}", got[0]);
        assert!(
            (trained - without_bos).abs() > 1e-6,
            "BOS changes nothing here"
        );
        Ok(())
    }
}
