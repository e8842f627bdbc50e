//! `win_rate`: how often the aligned policy's answer to a test prompt beats
//! the dataset's chosen response to it, by the cell's judge (Table 17; the
//! paper's judge is GPT-4, which cannot be called here). Each of the
//! policy's samples for a prompt is one comparison against that prompt's
//! chosen response; ties count by the manifest's [`TieRule`], as GRA's do.
//!
//! Two judges:
//! - the synthetic world (tiny profile): its true reward (the cell's gold)
//!   scores both responses; the chosen responses of its test prompts are
//!   made as its training pairs are (`data::synthetic::test_pairs`);
//! - real datasets (paper profile): a local instruct model given by path
//!   (the profile's `judge`), prompted pairwise in both orders
//!   ([`crate::eval::judge`]); a prompt's chosen response is that of its
//!   first pair in the test file. Without a `judge` such a cell fails
//!   saying so.
//!
//! Artifacts: `chosen_scores.json` (the gold judge's score of each test
//! prompt's chosen response, in test-prompt order, for `gold_mean_chosen`);
//! with a pairwise judge also `judgments.json` (one [`Judgment`] per
//! generation).
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{dataset_source, test_prompts};
use super::dataset::{DatasetSource, first_test_pairs};
use super::generate::{GENERATIONS_FILE, Generation};
use super::metric::{TieRule, gold_reward_accuracy};
use super::score::{SCORES_FILE, gold_scorer};
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::data::synthetic::{WorldConfig, test_pairs};
use crate::eval::GoldSpec;
use crate::eval::judge::{PairwiseJudge, tally};

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
    /// The pairwise judge of a real dataset's cells (the profile's
    /// `judge`, an instruct model's HF dir or GGUF file); absent on the
    /// synthetic world, whose true reward judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<PathBuf>,
}

/// One generation judged against its prompt's chosen response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    pub prompt: String,
    /// `win`, `loss` or `tie` (the two orders disagreed).
    pub outcome: String,
}

pub const JUDGMENTS_FILE: &str = "judgments.json";

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
        let prompts = test_prompts(ctx)?;
        let pairs = match dataset_source(ctx)? {
            DatasetSource::Synthetic { family, world } => {
                let cfg = WorldConfig::from_json(&world)?;
                test_pairs(&cfg, &family)?
            }
            DatasetSource::Files { format, test, .. } => {
                if params.judge.is_none() {
                    bail!(
                        "stage kind win_rate: the win rate against a real dataset's chosen \
                         response needs a pairwise judge model (the paper used GPT-4): set \
                         `judge = {{ path = ... }}` in the profile (see experiments/profiles/paper.toml)"
                    );
                }
                first_test_pairs(format, &test)?
            }
        };
        anyhow::ensure!(
            pairs.iter().map(|p| &p.prompt).eq(prompts.iter()),
            "win rate: the test pairs do not follow the dataset's test prompts \
             (a dataset stage of another world version or test file?); rerun the dataset stage"
        );
        let scorer = gold_scorer(&params.gold, ctx)?;
        let (chosen_prompts, chosen): (Vec<String>, Vec<String>) =
            pairs.into_iter().map(|p| (p.prompt, p.chosen)).unzip();
        let chosen_scores = scorer.score(&chosen_prompts, &chosen)?;
        drop(scorer);
        write_json(ctx.out_dir, CHOSEN_SCORES_FILE, &chosen_scores)?;
        let generations: Vec<Generation> = read_json(ctx.input("generation")?, GENERATIONS_FILE)?;
        let win = match &params.judge {
            None => {
                let by_prompt: HashMap<&str, f32> = chosen_prompts
                    .iter()
                    .map(String::as_str)
                    .zip(chosen_scores.iter().copied())
                    .collect();
                let ours: Vec<f32> = read_json(ctx.input("score")?, SCORES_FILE)?;
                win_rate_against_chosen(
                    &generations,
                    &ours,
                    &by_prompt,
                    params.tie_margin,
                    params.ties,
                )?
            }
            Some(path) => {
                let by_prompt: HashMap<&str, &str> = chosen_prompts
                    .iter()
                    .map(String::as_str)
                    .zip(chosen.iter().map(String::as_str))
                    .collect();
                let judge = PairwiseJudge::load(path, ctx.device)?;
                let mut judgments = Vec::with_capacity(generations.len());
                let mut outcomes = Vec::with_capacity(generations.len());
                for (i, g) in generations.iter().enumerate() {
                    ctx.check_cancel()?;
                    let reference = by_prompt.get(g.prompt.as_str()).with_context(|| {
                        format!(
                            "win rate: no chosen response for test prompt {:?}",
                            g.prompt
                        )
                    })?;
                    let outcome = judge.compare(&g.prompt, &g.response, reference)?;
                    outcomes.push(outcome);
                    judgments.push(Judgment {
                        prompt: g.prompt.clone(),
                        outcome: format!("{outcome:?}").to_lowercase(),
                    });
                    ctx.progress.log(&format!(
                        "judged {}/{} generations",
                        i + 1,
                        generations.len()
                    ));
                }
                write_json(ctx.out_dir, JUDGMENTS_FILE, &judgments)?;
                tally(&outcomes)
                    .gra(params.ties)
                    .context("win rate: no generations to judge")?
            }
        };
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
