//! `weak_eval`: the weak annotator's accuracy on D_U against the human labels
//! (Tables 6, 12, 13), overall and on its most confident 30%, with its
//! training time.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::annotate::{agreement, label_unlabeled};
use super::support::TRAIN_REPORT_FILE;
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::train::{TrainReport, WeakLabel, weighting::top_confident};

pub struct WeakEval;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Pairs scored per forward pass (does not change the numbers).
    pub batch_size: usize,
}

impl Stage for WeakEval {
    const KIND: &'static str = "weak_eval";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "weak"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let labels = label_unlabeled(ctx, params.batch_size)?;
        let confidences: Vec<f64> = labels.iter().map(WeakLabel::confidence).collect();
        let top: Vec<WeakLabel> = top_confident(&confidences, 30.0)?
            .into_iter()
            .map(|i| labels[i])
            .collect();
        let train: TrainReport = read_json(ctx.input("weak")?, TRAIN_REPORT_FILE)?;
        Ok(StageOutcome {
            metrics: [
                ("weak_accuracy".to_string(), agreement(&labels)),
                ("weak_accuracy_top30".to_string(), agreement(&top)),
                ("train_seconds".to_string(), train.seconds),
            ]
            .into(),
        })
    }
}
