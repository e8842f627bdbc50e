//! `pretrain`: a tiny decoder trained from scratch on the synthetic corpus (the base
//! policy's samples in the dataset), standing in for a real checkpoint (tiny profile only).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Pretrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub model: TinyModelSpec,
    pub steps: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
}

impl Stage for Pretrain {
    const KIND: &'static str = "pretrain";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind pretrain: run not written yet")
    }
}
