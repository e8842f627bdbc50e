//! `weak_eval`: the weak annotator's accuracy on D_U against the human labels
//! (Tables 6, 12, 13), overall and on its most confident 30%, and its
//! disagreement with them (1 − accuracy, Figure 8's poisoned D_L), with its
//! training time (every phase's, summed, and each phase's); on the synthetic
//! world also its agreement with the gold
//! reward (pairs the gold reward ties are left out).
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::annotate::{agreement, label_unlabeled};
use super::artifacts::{dataset_source, split_pairs};
use super::dataset::DatasetSource;
use super::weak_train::{PHASES_FILE, WeakPhases};
use super::{Stage, StageContext, StageOutcome, read_json};
use crate::eval::gold::TrueReward;
use crate::train::{WeakLabel, weighting::top_confident};

pub struct WeakEval;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Pairs scored per forward pass (does not change the numbers).
    pub batch_size: usize,
}

impl Stage for WeakEval {
    const KIND: &'static str = "weak_eval";
    /// 4: `train_seconds` is every phase's time (SFT+DPO's SFT step
    /// included), with `train_seconds_sft` / `train_seconds_preference`.
    /// 5: gold agreement follows the world's `tldr_summary`.
    const VERSION: u32 = 5;
    const INPUTS: &'static [&'static str] = &["dataset", "split", "weak"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let labels = label_unlabeled(ctx, params.batch_size)?;
        let confidences: Vec<f64> = labels.iter().map(WeakLabel::confidence).collect();
        let top: Vec<WeakLabel> = top_confident(&confidences, 30.0)?
            .into_iter()
            .map(|i| labels[i])
            .collect();
        let phases: WeakPhases = read_json(ctx.input("weak")?, PHASES_FILE)?;
        let mut metrics = phases.metrics();
        let accuracy = agreement(&labels);
        metrics.insert("weak_accuracy".into(), accuracy);
        metrics.insert("weak_disagreement".into(), 1.0 - accuracy);
        metrics.insert("weak_accuracy_top30".into(), agreement(&top));
        if let DatasetSource::Synthetic { family, world } = dataset_source(ctx)? {
            let gold = crate::data::synthetic::gold_scorer_of(&world, &family)?;
            let gold_first = gold_prefers_first(&gold, ctx)?;
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
fn gold_prefers_first(gold: &TrueReward, ctx: &StageContext) -> Result<Vec<Option<bool>>> {
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
