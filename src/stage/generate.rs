//! `generate`: responses of a policy (an `align` or `sft` artifact, role `policy`) to
//! the dataset's test prompts.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Generate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// How many test prompts (None = all).
    #[serde(default)]
    pub num_prompts: Option<usize>,
    pub seed: u64,
}

impl Stage for Generate {
    const KIND: &'static str = "generate";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "policy"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind generate: run not written yet")
    }
}
