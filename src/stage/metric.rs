//! `metric`: Gold Reward Accuracy of an aligned policy vs its own SFT model
//! (`own_reference`, ties count 0.5, tie rate reported) and vs the shared
//! reference (the human-label SFT model's generations), plus mean gold score.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Metric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// |gold difference| at or below which two responses tie.
    pub tie_margin: f64,
}

impl Stage for Metric {
    const KIND: &'static str = "metric";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["score", "own_reference", "shared_reference"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind metric: run not written yet")
    }
}
