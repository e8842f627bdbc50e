//! `score`: gold scores of a generation, by the cell's judge: the synthetic
//! world's true reward, the world's learned RM (a `gold_train` artifact,
//! role `gold_model`), or a real gold RM (paper profile).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::dataset_source;
use super::dataset::DatasetSource;
use super::generate::{GENERATIONS_FILE, Generation};
use super::gold_train::GOLD_DIR;
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::eval::learned::LearnedGold;
use crate::eval::real_gold::{RealGoldKind, load_real_gold};
use crate::eval::{GoldScorer, GoldSpec};

pub struct Score;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The judge (e.g. `{"kind": "true_reward"}`).
    pub gold: GoldSpec,
}

pub const SCORES_FILE: &str = "scores.json";

/// The judge `spec` names, for the dataset being scored.
fn gold_scorer(spec: &GoldSpec, ctx: &StageContext) -> Result<Box<dyn GoldScorer>> {
    let source = dataset_source(ctx)?;
    match (spec, &source) {
        (GoldSpec::TrueReward, DatasetSource::Synthetic { family, .. }) => {
            Ok(Box::new(crate::data::synthetic::gold_scorer(family)?))
        }
        (GoldSpec::Learned, DatasetSource::Synthetic { .. }) => Ok(Box::new(LearnedGold::load(
            &ctx.input("gold_model")?.join(GOLD_DIR),
            Box::new(crate::data::synthetic::tokenizer()),
            ctx.device,
        )?)),
        (GoldSpec::TrueReward | GoldSpec::Learned, DatasetSource::Files { .. }) => bail!(
            "gold `{}` exists only for the synthetic world; a real dataset needs a gold reward model",
            spec.kind_name()
        ),
        (GoldSpec::RewardModel { path }, _) => {
            load_real_gold(RealGoldKind::SeqCls, path, ctx.device)
        }
        (GoldSpec::DebertaReward { path }, _) => {
            load_real_gold(RealGoldKind::Deberta, path, ctx.device)
        }
        (GoldSpec::Steamshp { path }, _) => {
            load_real_gold(RealGoldKind::SteamShp, path, ctx.device)
        }
    }
}

impl Stage for Score {
    const KIND: &'static str = "score";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "generation", "gold_model"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let scorer = gold_scorer(&params.gold, ctx)?;
        let generations: Vec<Generation> = read_json(ctx.input("generation")?, GENERATIONS_FILE)?;
        let (prompts, responses): (Vec<String>, Vec<String>) = generations
            .into_iter()
            .map(|g| (g.prompt, g.response))
            .unzip();
        let scores = scorer.score(&prompts, &responses)?;
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            bail!("gold score of generation {i} is {}, not finite", scores[i]);
        }
        write_json(ctx.out_dir, SCORES_FILE, &scores)?;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len().max(1) as f64;
        Ok(StageOutcome {
            metrics: [("gold_mean".to_string(), mean)].into(),
        })
    }
}
