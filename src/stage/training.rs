//! A stage's training loop: a manifest's training block as the loops'
//! config, progress on the stage's bar, and the training report it records.
use std::collections::BTreeMap;

use anyhow::Result;

use super::StageContext;
use super::artifacts::{TRAIN_REPORT_FILE, write_json};
use crate::model::backbone::Backbone;
use crate::spec::TrainSettings;
use crate::train::checkpoint::{Checkpointer, SUMMARY_PREFIX};
use crate::train::{StepInfo, TrainConfig, TrainReport};

/// The kinds whose loops checkpoint (through [`checkpointer`], and
/// `generate` at its batch boundaries): on Ctrl-C the runner waits for them
/// to save.
pub const CHECKPOINTING_KINDS: &[&str] = &[
    "pretrain",
    "gold_train",
    "weak_train",
    "sft",
    "align",
    "generate",
];

/// A manifest's training block as the training loops' config.
pub fn train_config(train: &TrainSettings, seed: u64, max_len: usize) -> TrainConfig {
    train.config(seed, max_len)
}

/// A training-loop progress callback that drives the stage's bar.
pub fn progress_callback<'a>(ctx: &'a StageContext) -> impl FnMut(StepInfo) + 'a {
    let mut total_set = false;
    move |info: StepInfo| {
        if !total_set {
            ctx.progress.set_total(info.total_steps as u64);
            total_set = true;
        }
        ctx.progress.set_step(info.step as u64, Some(info.loss));
    }
}

/// The checkpointer of the stage's training loop `phase` (one name per loop
/// of a stage), saving `model`'s weights and dropout stream; `None` when the
/// stage runs without a partial dir (a library caller). Its lines go to the
/// stage's log and to the terminal: a resume or a discarded checkpoint is
/// something the user should see.
pub fn checkpointer<'a>(
    ctx: &'a StageContext,
    phase: &str,
    model: &Backbone,
) -> Option<Checkpointer<'a>> {
    let place = ctx.checkpoint?;
    let stage = place.stage.clone();
    let log = move |line: &str| {
        ctx.progress.log(line);
        if !line.starts_with(SUMMARY_PREFIX) {
            eprintln!("{stage}: {line}");
        }
    };
    Some(
        Checkpointer::new(place, phase, log)
            .with_dropout(model.dropout_state())
            .with_cancel(ctx.cancel),
    )
}

/// Saves a training report beside the model and returns the stage's metrics.
pub fn record_training(ctx: &StageContext, report: &TrainReport) -> Result<BTreeMap<String, f64>> {
    write_json(ctx.out_dir, TRAIN_REPORT_FILE, report)?;
    ctx.progress.log(&format!(
        "trained {} steps in {:.1}s, final loss {:.4}",
        report.steps, report.seconds, report.final_loss
    ));
    Ok([
        ("final_loss".to_string(), report.final_loss),
        ("train_seconds".to_string(), report.seconds),
        ("steps".to_string(), report.steps as f64),
    ]
    .into())
}
