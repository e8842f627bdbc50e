//! `score`: gold scores of a generation: the synthetic world's true reward
//! (tiny profile), or a real gold RM (paper profile).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::dataset::DatasetSource;
use super::generate::{GENERATIONS_FILE, Generation};
use super::support::dataset_source;
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::eval::GoldScorer;

pub struct Score;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The profile's gold scorer spec, as JSON (e.g. `{"kind": "true_reward"}`).
    pub gold: serde_json::Value,
}

pub const SCORES_FILE: &str = "scores.json";

/// The gold scorer a spec names, for the dataset being scored.
fn gold_scorer(spec: &serde_json::Value, source: &DatasetSource) -> Result<Box<dyn GoldScorer>> {
    let kind = spec.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    match (kind, source) {
        ("true_reward", DatasetSource::Synthetic { family, .. }) => {
            Ok(Box::new(crate::data::synthetic::gold_scorer(family)?))
        }
        ("true_reward", DatasetSource::Files { .. }) => bail!(
            "gold `true_reward` exists only for the synthetic world; the paper profile needs a \
             gold reward model"
        ),
        (other, _) => bail!(
            "gold scorer kind `{other}` is not available yet (available: true_reward); \
             real gold RMs (Skywork, OpenAssistant, SteamSHP) are the paper profile's open work"
        ),
    }
}

impl Stage for Score {
    const KIND: &'static str = "score";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "generation"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let scorer = gold_scorer(&params.gold, &dataset_source(ctx)?)?;
        let generations: Vec<Generation> = read_json(ctx.input("generation")?, GENERATIONS_FILE)?;
        let (prompts, responses): (Vec<String>, Vec<String>) = generations
            .into_iter()
            .map(|g| (g.prompt, g.response))
            .unzip();
        let scores = scorer.score(&prompts, &responses)?;
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            bail!("gold score of test prompt {i} is {}, not finite", scores[i]);
        }
        write_json(ctx.out_dir, SCORES_FILE, &scores)?;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len().max(1) as f64;
        Ok(StageOutcome {
            metrics: [("gold_mean".to_string(), mean)].into(),
        })
    }
}
