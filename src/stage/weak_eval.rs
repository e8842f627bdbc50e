//! `weak_eval`: the weak annotator's accuracy on D_U against the human labels, and its
//! training seconds (Tables 6, 12, 13).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct WeakEval;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Pairs scored per forward pass (does not change the numbers).
    pub batch_size: usize,
}

impl Stage for WeakEval {
    const KIND: &'static str = "weak_eval";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "weak"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind weak_eval: run not written yet")
    }
}
