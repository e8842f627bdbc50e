//! `weak_eval`: the weak annotator's accuracy on D_U against the human labels
//! (Tables 6, 12, 13), overall and on its most confident 30%, and its
//! disagreement with them (1 − accuracy, Figure 8's poisoned D_L), with its
//! training time; on the synthetic world also its agreement with the gold
//! reward (pairs the gold reward ties are left out).
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::annotate::{agreement, label_unlabeled};
use super::artifacts::{TRAIN_REPORT_FILE, dataset_source, split_pairs};
use super::dataset::DatasetSource;
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
    const VERSION: u32 = 3;
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
        let accuracy = agreement(&labels);
        let mut metrics: std::collections::BTreeMap<String, f64> = [
            ("weak_accuracy".to_string(), accuracy),
            ("weak_disagreement".to_string(), 1.0 - accuracy),
            ("weak_accuracy_top30".to_string(), agreement(&top)),
            ("train_seconds".to_string(), train.seconds),
        ]
        .into();
        if let DatasetSource::Synthetic { family, .. } = dataset_source(ctx)? {
            let gold_first = gold_prefers_first(&family, ctx)?;
            let top_set: Vec<usize> = top_confident(&confidences, 30.0)?;
            let all: Vec<usize> = (0..labels.len()).collect();
            metrics.insert(
                "gold_agreement".into(),
                gold_agreement(&labels, &gold_first, &all),
            );
            metrics.insert(
                "gold_agreement_top30".into(),
                gold_agreement(&labels, &gold_first, &top_set),
            );
        }
        Ok(StageOutcome { metrics })
    }
}

/// For each D_U pair: `Some(true)` when the gold reward prefers its first
/// response, `Some(false)` the second, `None` on a gold tie.
fn gold_prefers_first(family: &str, ctx: &StageContext) -> Result<Vec<Option<bool>>> {
    let gold = crate::data::synthetic::gold_scorer(family)?;
    split_pairs(ctx)?
        .unlabeled
        .iter()
        .map(|p| {
            let (a, b) = (
                gold.reward(&p.prompt, &p.chosen)?,
                gold.reward(&p.prompt, &p.rejected)?,
            );
            Ok((a != b).then_some(a > b))
        })
        .collect()
}

/// Share of `indices` (gold ties left out) where the weak label sides with gold.
fn gold_agreement(labels: &[WeakLabel], gold_first: &[Option<bool>], indices: &[usize]) -> f64 {
    let decided: Vec<bool> = indices
        .iter()
        .filter_map(|&i| gold_first[i].map(|g| g == labels[i].prefers_chosen))
        .collect();
    decided.iter().filter(|&&agree| agree).count() as f64 / decided.len().max(1) as f64
}
