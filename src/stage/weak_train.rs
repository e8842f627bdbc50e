//! `weak_train`: the weak annotator trained on D_L (human labels): a Bradley–Terry
//! reward model (`bt`), a DPO-trained LM (`dpo`, `sft_dpo`), or a PairRM-style
//! pairwise scorer (`pairrm`). Input `base`: a `pretrain` artifact (tiny) or absent (HF path).
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::params::{ModelSpec, TinyModelSpec, TrainSettings};
use super::{Stage, StageContext, StageOutcome};

pub struct WeakTrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `bt` | `dpo` | `sft_dpo` | `pairrm`.
    pub objective: String,
    pub model: ModelSpec,
    pub train: TrainSettings,
    /// DPO β for the `dpo` / `sft_dpo` weak objectives (None for `bt`, `pairrm`).
    #[serde(default)]
    pub beta: Option<f64>,
    pub seed: u64,
}

impl Stage for WeakTrain {
    const KIND: &'static str = "weak_train";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "base"];
    type Params = Params;

    fn run(_params: &Params, _ctx: &StageContext) -> Result<StageOutcome> {
        bail!("stage kind weak_train: run not written yet")
    }
}
