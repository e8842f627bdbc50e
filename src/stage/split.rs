//! `split`: which pairs are labelled (D_L, the weak annotator's training set,
//! `labeled_fraction` of them) and which are unlabelled (D_U, to be annotated).
//!
//! Artifact: `split.json` ([`SplitIndices`]).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::{Stage, StageContext, StageOutcome};

pub struct Split;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub labeled_fraction: f64,
    pub seed: u64,
}

/// Indices into the dataset's `pairs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitIndices {
    pub labeled: Vec<usize>,
    pub unlabeled: Vec<usize>,
}

pub const SPLIT_FILE: &str = "split.json";

impl Stage for Split {
    const KIND: &'static str = "split";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset"];
    type Params = Params;

    fn run(params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!(
            "stage kind split (fraction {}): needs data::split (not merged yet)",
            params.labeled_fraction
        )
    }
}
