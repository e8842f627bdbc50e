//! `align`: preference alignment of the SFT model: objective (dpo | ipo | rdpo) ×
//! per-pair weighting (uniform, confidence, or an expression of s_c, s_r) ×
//! optional top-N% confidence filter.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct Align;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `dpo` | `ipo` | `rdpo`.
    pub objective: String,
    /// β of DPO / rDPO, τ of IPO.
    pub beta: f64,
    /// rDPO label-noise rate ε (None for dpo / ipo).
    #[serde(default)]
    pub eps: Option<f64>,
    /// `uniform`, `cw` (= `2*sigmoid(s_c - s_r) - 1`), or an expression of `s_c`, `s_r`.
    pub weighting: String,
    /// Keep only the `filter_top` fraction of pairs with the highest confidence.
    #[serde(default)]
    pub filter_top: Option<f64>,
    pub train: TrainSettings,
    pub seed: u64,
}

impl Stage for Align {
    const KIND: &'static str = "align";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "sft", "ref_logps", "annotation"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind align: run not written yet")
    }
}
