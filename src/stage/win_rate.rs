//! `win_rate`: how often the aligned policy's answer to a test prompt beats
//! the dataset's chosen response to it, by the cell's judge (Table 17; the
//! paper's judge is GPT-4, which cannot be called here). Each of the
//! policy's samples for a prompt is one comparison against that prompt's
//! chosen response; ties count by the manifest's [`TieRule`], as GRA's do.
//!
//! The chosen responses of the synthetic world's test prompts are made as
//! its training pairs are (`data::synthetic::test_pairs`); real datasets'
//! test pairs would be compared by a judge model prompted pairwise, which
//! is not implemented: such a cell fails with that message.
//!
//! Artifact: `chosen_scores.json` (the judge's score of each test prompt's
//! chosen response, in test-prompt order).
use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{dataset_source, test_prompts};
use super::dataset::DatasetSource;
use super::generate::{GENERATIONS_FILE, Generation};
use super::metric::{TieRule, gold_reward_accuracy};
use super::score::{SCORES_FILE, gold_scorer};
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::data::synthetic::{WorldConfig, test_pairs};
use crate::eval::GoldSpec;

pub struct WinRate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The judge, as the `score` stage it follows names it.
    pub gold: GoldSpec,
    /// |gold difference| at or below which the two responses tie.
    pub tie_margin: f64,
    /// How a tie counts.
    pub ties: TieRule,
}

pub const CHOSEN_SCORES_FILE: &str = "chosen_scores.json";

/// The win rate of `ours` (one score per generation) against the chosen
/// response of each generation's prompt, and the tie rate: GRA with the
/// chosen response as the reference.
pub fn win_rate_against_chosen(
    generations: &[Generation],
    ours: &[f32],
    chosen: &HashMap<&str, f32>,
    tie_margin: f64,
    ties: TieRule,
) -> Result<super::metric::Gra> {
    anyhow::ensure!(
        generations.len() == ours.len(),
        "win rate: {} generations but {} scores (stale score stage?)",
        generations.len(),
        ours.len()
    );
    let reference: Vec<f32> = generations
        .iter()
        .map(|g| {
            chosen.get(g.prompt.as_str()).copied().with_context(|| {
                format!(
                    "win rate: no chosen response for test prompt {:?}",
                    g.prompt
                )
            })
        })
        .collect::<Result<_>>()?;
    gold_reward_accuracy(ours, &reference, tie_margin, ties)
}

impl Stage for WinRate {
    const KIND: &'static str = "win_rate";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "generation", "score", "gold_model"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let pairs = match dataset_source(ctx)? {
            DatasetSource::Synthetic { family, world } => {
                let cfg = WorldConfig::from_json(&world)?;
                test_pairs(&cfg, &family)?
            }
            DatasetSource::Files { .. } => bail!(
                "stage kind win_rate: the win rate against a real dataset's chosen response \
                 needs a pairwise judge model (the paper used GPT-4), which is not implemented; \
                 only the synthetic world's judge is (tiny profile)"
            ),
        };
        let prompts = test_prompts(ctx)?;
        anyhow::ensure!(
            pairs.iter().map(|p| &p.prompt).eq(prompts.iter()),
            "win rate: the world's test pairs do not follow the dataset's test prompts \
             (a dataset stage of another world version?); rerun the dataset stage"
        );
        let scorer = gold_scorer(&params.gold, ctx)?;
        let (chosen_prompts, chosen): (Vec<String>, Vec<String>) =
            pairs.into_iter().map(|p| (p.prompt, p.chosen)).unzip();
        let chosen_scores = scorer.score(&chosen_prompts, &chosen)?;
        write_json(ctx.out_dir, CHOSEN_SCORES_FILE, &chosen_scores)?;
        let by_prompt: HashMap<&str, f32> = chosen_prompts
            .iter()
            .map(String::as_str)
            .zip(chosen_scores.iter().copied())
            .collect();
        let generations: Vec<Generation> = read_json(ctx.input("generation")?, GENERATIONS_FILE)?;
        let ours: Vec<f32> = read_json(ctx.input("score")?, SCORES_FILE)?;
        let win = win_rate_against_chosen(
            &generations,
            &ours,
            &by_prompt,
            params.tie_margin,
            params.ties,
        )?;
        let mean = chosen_scores.iter().map(|&s| f64::from(s)).sum::<f64>()
            / chosen_scores.len().max(1) as f64;
        let metrics = BTreeMap::from([
            ("win_rate".to_string(), win.accuracy),
            ("win_tie_rate".to_string(), win.tie_rate),
            ("gold_mean_chosen".to_string(), mean),
        ]);
        Ok(StageOutcome { metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(prompt: &str) -> Generation {
        Generation {
            prompt: prompt.into(),
            response: String::new(),
        }
    }

    /// Two prompts, two samples each, worked by hand: chosen scores a = 0.5,
    /// b = 0.0. Samples of a: 0.7 (win), 0.5 (tie); of b: -0.2 (loss),
    /// 0.3 (win). Wins 2, ties 1, n 4.
    #[test]
    fn each_sample_is_judged_against_its_prompts_chosen_response() {
        let gens = [
            generation("a"),
            generation("a"),
            generation("b"),
            generation("b"),
        ];
        let ours = [0.7, 0.5, -0.2, 0.3];
        let chosen = HashMap::from([("a", 0.5f32), ("b", 0.0)]);
        let loss = win_rate_against_chosen(&gens, &ours, &chosen, 0.0, TieRule::Loss).unwrap();
        assert_eq!((loss.accuracy, loss.tie_rate), (0.5, 0.25));
        let half = win_rate_against_chosen(&gens, &ours, &chosen, 0.0, TieRule::Half).unwrap();
        assert_eq!(half.accuracy, 2.5 / 4.0);
        // Swapping the chosen scores of the two prompts changes the answer:
        // the reference is looked up per prompt, not by position.
        let swapped = HashMap::from([("a", 0.0f32), ("b", 0.5)]);
        let other = win_rate_against_chosen(&gens, &ours, &swapped, 0.0, TieRule::Loss).unwrap();
        assert_eq!(other.accuracy, 0.5);
        assert_eq!(other.tie_rate, 0.0);
        // A prompt without a chosen response, or a count mismatch, is an error.
        let err = win_rate_against_chosen(&[generation("c")], &[0.1], &chosen, 0.0, TieRule::Loss)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"c\""), "{err}");
        assert!(win_rate_against_chosen(&gens, &ours[..3], &chosen, 0.0, TieRule::Loss).is_err());
    }
}
