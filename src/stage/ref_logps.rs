//! `ref_logps`: reference log-probs of the SFT model on the pairs to align on
//! (D_U under the same labeller as `annotation`, or human labels without it).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct RefLogps;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub batch_size: usize,
}

impl Stage for RefLogps {
    const KIND: &'static str = "ref_logps";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "sft", "annotation"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind ref_logps: run not written yet")
    }
}
