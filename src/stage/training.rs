//! A stage's training loop: a manifest's training block as the loops'
//! config, progress on the stage's bar, and the training report it records.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::StageContext;
use super::artifacts::{TRAIN_REPORT_FILE, write_json};
use super::models::save_model;
use crate::model::Policy;
use crate::model::backbone::Backbone;
use crate::spec::TrainSettings;
use crate::train::PreferenceLoss;
use crate::train::checkpoint::{Checkpointer, SUMMARY_PREFIX};
use crate::train::po::{PoData, train_po};
use crate::train::{LoopRun, StepInfo, TrainConfig, TrainReport};

/// The kinds whose loops checkpoint (through [`checkpointer`], and
/// `generate` at its batch boundaries): on Ctrl-C the runner waits for them
/// to save.
pub const CHECKPOINTING_KINDS: &[&str] = &[
    "pretrain",
    "gold_train",
    "weak_train",
    "sft",
    "align",
    "online_round",
    "generate",
];

/// A manifest's training block as the training loops' config.
pub fn train_config(train: &TrainSettings, seed: u64, max_len: usize) -> TrainConfig {
    TrainConfig::from_settings(train, seed, max_len)
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

/// A preference stage's loop (`align`, `online_round`): trains `policy` on
/// `data` with the stage's progress bar and its checkpointer of `phase`,
/// saves it as the stage's model (with the tokenizer of `origin`) and
/// returns the stage's metrics: the training report's, plus `pairs` and
/// `mean_weight` of `data`.
#[allow(clippy::too_many_arguments)]
pub fn train_preference(
    ctx: &StageContext,
    phase: &str,
    policy: &Policy,
    data: &PoData,
    objective: &dyn PreferenceLoss,
    cfg: &TrainConfig,
    pad_id: u32,
    origin: &Path,
) -> Result<BTreeMap<String, f64>> {
    let report = train_po(
        policy,
        data,
        objective,
        LoopRun {
            config: cfg,
            pad_id,
            device: ctx.device,
            progress: Some(&mut progress_callback(ctx)),
            checkpoint: checkpointer(ctx, phase, policy.backbone()).as_mut(),
        },
    )?;
    save_model(policy, Some(origin), ctx.out_dir)?;
    let mut metrics = record_training(ctx, &report)?;
    let weights = data.weights;
    let n = weights.len().max(1) as f64;
    metrics.insert("pairs".into(), weights.len() as f64);
    metrics.insert("mean_weight".into(), weights.iter().sum::<f64>() / n);
    Ok(metrics)
}

/// The per-step trace of a training stage, beside its model: what
/// `sweep report` draws as training curves.
pub const TRAIN_TRACE_FILE: &str = "train_trace.csv";

/// The first columns of every trace; a loop's [`TrainReport::step_stats`]
/// (a preference loop's `reward_margin`, `accuracy`, `mean_weight`) follow.
pub const TRACE_COLUMNS: [&str; 3] = ["step", "loss", "lr"];

/// `report` as CSV: a header, then one row per optimiser step (1-based
/// `step`, its loss and learning rate, then each step statistic in name
/// order). A value the loop did not measure (the rates of a report from
/// before they were kept, the statistics of steps a resumed run did not
/// take) is left empty.
pub fn trace_csv(report: &TrainReport) -> String {
    let mut header: Vec<&str> = TRACE_COLUMNS.to_vec();
    header.extend(report.step_stats.keys().map(String::as_str));
    let mut out = header.join(",");
    out.push('\n');
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for (i, loss) in report.losses.iter().enumerate() {
        let mut row = vec![(i + 1).to_string(), format!("{loss}")];
        row.push(cell(report.lrs.get(i).copied()));
        row.extend(
            report
                .step_stats
                .values()
                .map(|column| cell(column.get(i).copied().flatten())),
        );
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Saves a training report and its per-step trace ([`TRAIN_TRACE_FILE`])
/// beside the model and returns the stage's metrics.
pub fn record_training(ctx: &StageContext, report: &TrainReport) -> Result<BTreeMap<String, f64>> {
    write_json(ctx.out_dir, TRAIN_REPORT_FILE, report)?;
    let trace = ctx.out_dir.join(TRAIN_TRACE_FILE);
    std::fs::write(&trace, trace_csv(report))
        .with_context(|| format!("writing {}", trace.display()))?;
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

/// Each recipe knob, set the way a manifest sets it (a `[sft]` block's
/// TOML), changes the optimiser as the knob says.
#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;
    use crate::spec::TrainBlock;
    use crate::train::optim::run_training;

    fn config_of(block: &str) -> TrainConfig {
        let block: TrainBlock = toml::from_str(block).unwrap();
        train_config(&block.train(), 0, 16)
    }

    /// Fits y = a·x + b on 16 fixed points; returns (a, b) and each step's lr.
    fn fit_line(config: &TrainConfig) -> anyhow::Result<(Vec<f32>, Vec<f64>)> {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        let ys: Vec<f32> = xs.iter().map(|x| 1.5 * x - 0.5 + (x * 3.0).cos()).collect();
        let w = Var::from_vec(vec![0f32, 0.0], 2, &dev)?;
        let mut loss = |idx: &[usize]| -> anyhow::Result<Tensor> {
            let x: Vec<f32> = idx.iter().map(|&i| xs[i]).collect();
            let y: Vec<f32> = idx.iter().map(|&i| ys[i]).collect();
            let (x, y) = (Tensor::new(x, &dev)?, Tensor::new(y, &dev)?);
            let a = w.as_tensor().narrow(0, 0, 1)?;
            let b = w.as_tensor().narrow(0, 1, 1)?;
            let pred = x.broadcast_mul(&a)?.broadcast_add(&b)?;
            Ok((pred - y)?.sqr()?.mean_all()?)
        };
        let mut lrs = Vec::new();
        let progress = &mut |s: crate::train::StepInfo| lrs.push(s.lr);
        run_training(vec![w.clone()], 16, config, &mut loss, progress, None)?;
        Ok((w.as_tensor().to_vec1()?, lrs))
    }

    /// Linear warmup: step k (0-based) of the first `warmup_steps` runs at
    /// lr·k/warmup, and step `warmup_steps` at the peak.
    #[test]
    fn warmup_sets_the_learning_rate_of_step_k() -> anyhow::Result<()> {
        let config = config_of("learning_rate = 0.1\nbatch_size = 1\nwarmup_steps = 4");
        let (_, lrs) = fit_line(&config)?;
        assert_eq!(lrs.len(), 16);
        for (k, lr) in lrs.iter().enumerate().take(4) {
            assert!((lr - 0.1 * k as f64 / 4.0).abs() < 1e-15, "step {k}: {lr}");
        }
        assert!((lrs[4] - 0.1).abs() < 1e-15, "peak at step 4: {}", lrs[4]);
        Ok(())
    }

    /// batch 2 × accumulation 4 takes the same steps as batch 8: the same
    /// weights to 1e-5; batch 2 without accumulation lands elsewhere.
    #[test]
    fn accumulation_matches_one_big_batch() -> anyhow::Result<()> {
        let common = "learning_rate = 0.05\nepochs = 3\nwarmup_steps = 0\n";
        let accumulated = config_of(&format!("{common}batch_size = 2\ngrad_accum = 4"));
        let big = config_of(&format!("{common}batch_size = 8"));
        let small = config_of(&format!("{common}batch_size = 2"));
        let (w_accumulated, _) = fit_line(&accumulated)?;
        let (w_big, _) = fit_line(&big)?;
        let (w_small, _) = fit_line(&small)?;
        for (a, b) in w_accumulated.iter().zip(&w_big) {
            assert!((a - b).abs() < 1e-5, "{w_accumulated:?} vs {w_big:?}");
        }
        assert!(
            (w_small[0] - w_big[0]).abs() > 1e-3,
            "without accumulation the run differs: {w_small:?} vs {w_big:?}"
        );
        Ok(())
    }

    /// A parameter whose gradient is exactly zero moves only by the
    /// decoupled decay: θ ← θ·(1 − lr·wd), here 2 → 2·(1 − 0.1·0.05) = 1.99.
    #[test]
    fn weight_decay_shrinks_a_zero_gradient_parameter_by_lr_times_wd() -> anyhow::Result<()> {
        let shrink = |block: &str| -> anyhow::Result<f32> {
            let config = config_of(block);
            let dev = Device::Cpu;
            let w = Var::from_vec(vec![1f32], 1, &dev)?;
            let idle = Var::from_vec(vec![2f32], 1, &dev)?;
            // `idle` sits at the minimum of its term, (idle − 2)², so its
            // gradient is exactly 0 (candle drops a `* 0.0` branch from the
            // graph, so that would be no gradient at all): AdamW's moments
            // stay 0 and only the decay moves it.
            let mut loss = |_: &[usize]| -> anyhow::Result<Tensor> {
                let fit = (w.as_tensor() - 3.0)?.sqr()?.sum_all()?;
                Ok((fit + (idle.as_tensor() - 2.0)?.sqr()?.sum_all()?)?)
            };
            let vars = vec![w.clone(), idle.clone()];
            let report = run_training(vars, 4, &config, &mut loss, &mut |_| {}, None)?;
            assert_eq!(report.steps, 1);
            Ok(idle.as_tensor().to_vec1::<f32>()?[0])
        };
        let one_step = "learning_rate = 0.1\nbatch_size = 4\nwarmup_steps = 0\n";
        let decayed = shrink(&format!("{one_step}weight_decay = 0.05"))?;
        assert!(
            (decayed - 2.0 * (1.0 - 0.1 * 0.05)).abs() < 1e-6,
            "{decayed}"
        );
        assert_eq!(shrink(one_step)?, 2.0, "no decay without the knob");
        Ok(())
    }

    /// The trace has a header and one row per optimiser step: 16 examples,
    /// batch 4, 2 epochs = 8 steps; each row's loss and rate are the
    /// loop's, and a statistic the loop did not measure for a step is empty.
    #[test]
    fn trace_has_one_row_per_optimiser_step() -> anyhow::Result<()> {
        let config = config_of("learning_rate = 0.1\nbatch_size = 4\nepochs = 2\nwarmup_steps = 2");
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0f32], 1, &dev)?;
        let mut loss = |_: &[usize]| -> anyhow::Result<Tensor> {
            Ok((w.as_tensor() - 1.0)?.sqr()?.sum_all()?)
        };
        let mut report = run_training(vec![w.clone()], 16, &config, &mut loss, &mut |_| {}, None)?;
        assert_eq!(report.steps, 8);
        report.step_stats.insert(
            "accuracy".into(),
            vec![None, Some(0.5), None, None, None, None, None, Some(1.0)],
        );
        let csv = trace_csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "step,loss,lr,accuracy");
        assert_eq!(lines.len(), 1 + 8, "{csv}");
        for (i, line) in lines[1..].iter().enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields[0], (i + 1).to_string());
            assert_eq!(fields[1].parse::<f64>()?, report.losses[i]);
            assert_eq!(fields[2].parse::<f64>()?, report.lrs[i]);
        }
        // warmup: step 1 runs at lr 0, step 3 at the peak
        assert_eq!(report.lrs[0], 0.0);
        assert_eq!(report.lrs[2], 0.1);
        assert!(lines[1].ends_with(','), "{}", lines[1]);
        assert!(
            lines[2].ends_with(",0.5") && lines[8].ends_with(",1"),
            "{csv}"
        );
        Ok(())
    }

    /// Unset, the knobs are the recipe the stages hard-coded before they
    /// were settings (warmup 10, no decay, no accumulation, clip at 1).
    #[test]
    fn unset_knobs_are_the_old_hard_coded_recipe() {
        let config = config_of("learning_rate = 0.1");
        assert_eq!(
            (config.warmup_steps, config.weight_decay, config.grad_accum),
            (10, 0.0, 1)
        );
        assert_eq!(config.max_grad_norm, 1.0);
    }
}
