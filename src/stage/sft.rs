//! `sft`: the strong model fine-tuned on the chosen responses of D_U under one
//! labeller: human labels (no `annotation` input) or a weak annotator's.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Sft;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: ModelSpec,
    pub train: TrainSettings,
    pub seed: u64,
}

impl Stage for Sft {
    const KIND: &'static str = "sft";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "base", "annotation"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind sft: run not written yet")
    }
}
