//! `annotate`: the weak annotator labels D_U: for each pair, which response it
//! prefers and its confidence c = 2σ(s_c − s_r) − 1 (scores kept for weighting expressions).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Annotate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub batch_size: usize,
}

impl Stage for Annotate {
    const KIND: &'static str = "annotate";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "weak"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind annotate: run not written yet")
    }
}
