//! Gold scorers that need no model: the synthetic world's true reward.
use anyhow::{Context, ensure};

use crate::data::synthetic::reward::gold_reward;
use crate::data::synthetic::task::{SummaryStyle, Task};
use crate::eval::GoldScorer;

/// The synthetic world's true reward for one family: parses each prompt back
/// into its task and scores the response text (see
/// `data::synthetic::reward`). Values lie in [-1, 1]; the same function
/// scores training candidates and model generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueReward {
    family: &'static str,
    summary: SummaryStyle,
}

impl TrueReward {
    /// The true reward of `family` (one of `data::synthetic::FAMILIES`;
    /// use `data::synthetic::gold_scorer` to get a checked one by name).
    pub(crate) fn new(family: &'static str, summary: SummaryStyle) -> Self {
        Self { family, summary }
    }

    /// The family whose prompts this scorer was built for.
    pub fn family(&self) -> &str {
        self.family
    }

    /// Gold reward of one response. Errors if `prompt` is not a prompt of
    /// the synthetic world.
    pub fn reward(&self, prompt: &str, response: &str) -> anyhow::Result<f64> {
        let task = Task::parse(prompt)
            .with_context(|| format!("true reward of family {:?}", self.family))?;
        Ok(gold_reward(&task, self.summary, response))
    }
}

impl GoldScorer for TrueReward {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        ensure!(
            prompts.len() == responses.len(),
            "true reward got {} prompts but {} responses; pass one response per prompt",
            prompts.len(),
            responses.len()
        );
        prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| self.reward(p, r).map(|x| x as f32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::data::synthetic::{WorldConfig, gold_scorer};
    use crate::eval::GoldScorer;

    #[test]
    fn scores_batches_and_rejects_mismatched_lengths_and_foreign_prompts() {
        let world = WorldConfig::default();
        let gold = gold_scorer(&world, "helpful").unwrap();
        let prompts = vec!["what is 2 plus 2 ?".to_string(), "sort : 3 1".to_string()];
        let responses = vec!["the answer is 4".to_string(), "3 1".to_string()];
        let scores = gold.score(&prompts, &responses).unwrap();
        assert_eq!(scores.len(), 2);
        assert!(scores[0] > scores[1], "{scores:?}");
        assert!(gold.score(&prompts, &responses[..1]).is_err());
        let err = format!(
            "{:#}",
            gold.score(&["hello".into()], &["x".into()]).unwrap_err()
        );
        assert!(err.contains("hello") && err.contains("helpful"), "{err}");
        assert!(
            gold_scorer(&world, "reddit")
                .unwrap_err()
                .to_string()
                .contains("shp-askbaking")
        );
    }
}
