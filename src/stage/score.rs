//! `score`: gold scores of a generation: the synthetic world's true reward, a learned
//! reward model, or a real gold RM (paper profile).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Score;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The profile's gold scorer spec, as JSON (e.g. `{"kind": "true_reward"}`).
    pub gold: serde_json::Value,
}

impl Stage for Score {
    const KIND: &'static str = "score";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "generation"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind score: run not written yet")
    }
}
