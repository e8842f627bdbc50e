//! `split`: which pairs are labelled (D_L, the weak annotator's training set,
//! `labeled_fraction` of them) and which are unlabelled (D_U, to be annotated).
//! Under a `mixture` (`spec::mixture`), both are drawn from the dataset's
//! pool in exact shares, and a poisoned D_L lists its flipped pairs
//! (`data::split::mixed_split_indices`).
//!
//! Artifact: `split.json` ([`SplitIndices`]).
use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{
    SPLIT_FILE, SUBSETS_FILE, SplitIndices, Subset, read_json, read_pairs, write_json,
};
use super::{Stage, StageContext, StageOutcome};
use crate::data::split::{mixed_split_indices, split_indices};
use crate::spec::{DatasetSource, SplitMixture};

pub struct Split;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub labeled_fraction: f64,
    pub seed: u64,
    /// D_L / D_U drawn from the dataset's pool; `None` (left out of the
    /// key): one dataset split at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixture: Option<SplitMixture>,
}

impl Stage for Split {
    const KIND: &'static str = "split";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let f = params.labeled_fraction;
        if !(f > 0.0 && f < 1.0) {
            bail!("stage kind split: labeled_fraction = {f} must be in (0, 1)");
        }
        let indices = match &params.mixture {
            None => {
                let n = read_pairs(ctx.input("dataset")?)?.len();
                let split = split_indices(n, f, params.seed);
                SplitIndices {
                    labeled: split.labeled,
                    unlabeled: split.unlabeled,
                    flipped: Vec::new(),
                }
            }
            Some(mix) => mixed(mix, params, ctx)?,
        };
        ctx.progress.log(&format!(
            "{} labelled ({} flipped), {} unlabelled",
            indices.labeled.len(),
            indices.flipped.len(),
            indices.unlabeled.len()
        ));
        write_json(ctx.out_dir, SPLIT_FILE, &indices)?;
        let mut metrics = BTreeMap::from([
            ("n_labeled".to_string(), indices.labeled.len() as f64),
            ("n_unlabeled".to_string(), indices.unlabeled.len() as f64),
        ]);
        if params.mixture.is_some() {
            metrics.insert("n_flipped".to_string(), indices.flipped.len() as f64);
        }
        Ok(StageOutcome { metrics })
    }
}

/// The mixture draw over the dataset's pool (its `subsets.json`), the
/// poison ranked by the synthetic world's true reward.
fn mixed(mix: &SplitMixture, params: &Params, ctx: &StageContext) -> Result<SplitIndices> {
    let dir = ctx.input("dataset")?;
    let subsets: Vec<Subset> = read_json(dir, SUBSETS_FILE).map_err(|e| {
        e.context("a mixture split needs its dataset's pool: plan the dataset stage with `pool`")
    })?;
    let pairs = read_pairs(dir)?;
    let parts: Vec<(String, std::ops::Range<usize>)> = subsets
        .iter()
        .map(|s| (s.name.clone(), s.start..s.start + s.len))
        .collect();
    let gold = match &mix.poison {
        None => None,
        Some(poison) => match subsets
            .iter()
            .find(|s| s.name == poison.from)
            .map(|s| &s.source)
        {
            Some(DatasetSource::Synthetic { family, world }) => {
                Some(crate::data::synthetic::gold_scorer_of(world, family)?)
            }
            _ => bail!(
                "stage kind split: `poison_from = \"{}\"` is not a synthetic dataset of the pool; \
                 poisoned pairs are ranked by the synthetic world's true reward",
                poison.from
            ),
        },
    };
    let margin = |i: usize| -> Result<f64> {
        let (gold, pair) = (gold.as_ref().expect("poison has a judge"), &pairs[i]);
        Ok(gold.reward(&pair.prompt, &pair.chosen)? - gold.reward(&pair.prompt, &pair.rejected)?)
    };
    let split = mixed_split_indices(&parts, mix, params.labeled_fraction, params.seed, margin)?;
    Ok(SplitIndices {
        labeled: split.labeled,
        unlabeled: split.unlabeled,
        flipped: split.flipped,
    })
}
