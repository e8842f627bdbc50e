//! A stage's training loop: a manifest's training block as the loops'
//! config, progress on the stage's bar, and the training report it records.
use std::collections::BTreeMap;

use anyhow::Result;

use super::StageContext;
use super::artifacts::{TRAIN_REPORT_FILE, write_json};
use crate::spec::TrainSettings;
use crate::train::{StepInfo, TrainConfig, TrainReport};

/// A manifest's training block as the training loops' config.
pub fn train_config(train: &TrainSettings, seed: u64, max_len: usize) -> TrainConfig {
    TrainConfig {
        epochs: train.epochs,
        batch_size: train.batch_size,
        lr: train.learning_rate,
        seed,
        max_len,
        warmup_steps: 10,
        weight_decay: 0.0,
        ..TrainConfig::default()
    }
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
