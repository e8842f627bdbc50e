//! `split`: which pairs are labelled (D_L, the weak annotator's training set,
//! `labeled_fraction` of them) and which are unlabelled (D_U, to be annotated).
//!
//! Artifact: `split.json` ([`SplitIndices`]).
use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::{SPLIT_FILE, SplitIndices, read_pairs, write_json};
use super::{Stage, StageContext, StageOutcome};
use crate::data::split::split_indices;

pub struct Split;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub labeled_fraction: f64,
    pub seed: u64,
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
        let n = read_pairs(ctx.input("dataset")?)?.len();
        let split = split_indices(n, f, params.seed);
        ctx.progress.log(&format!(
            "{n} pairs: {} labelled, {} unlabelled",
            split.labeled.len(),
            split.unlabeled.len()
        ));
        let indices = SplitIndices {
            labeled: split.labeled,
            unlabeled: split.unlabeled,
        };
        write_json(ctx.out_dir, SPLIT_FILE, &indices)?;
        let metrics = BTreeMap::from([
            ("n_labeled".to_string(), indices.labeled.len() as f64),
            ("n_unlabeled".to_string(), indices.unlabeled.len() as f64),
        ]);
        Ok(StageOutcome { metrics })
    }
}
