//! The optimisation loop every trainer shares: seeded shuffling, micro-batches,
//! gradient accumulation, global-norm clipping, AdamW with decoupled weight
//! decay ([`super::adamw::AdamW`], in place), the cosine schedule, and the
//! NaN guard.
use std::time::Instant;

use anyhow::Context;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adamw::AdamW;
use super::checkpoint::{Checkpointer, LoopState};
use super::schedule::{LrDecay, Schedule};
use super::{StepInfo, TrainReport};
use crate::model::lora::LORA_TARGETS;
use crate::spec::TrainSettings;

/// Hyper-parameters of one training run. Defaults are transformers'
/// `TrainingArguments` defaults (lr 5e-5, no warmup, no weight decay, clip at
/// 1.0, 3 epochs, batch 8) with the paper's 512-token length cap; manifests
/// override them per stage (the paper's strong-model recipe is batch 16 ×
/// accumulation 4, 100 warmup steps, weight decay 0.05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per micro-batch (one forward/backward pass).
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before one optimiser step;
    /// the effective batch is `batch_size * grad_accum`.
    pub grad_accum: usize,
    /// Peak learning rate of the cosine schedule.
    pub lr: f64,
    /// Optimiser steps of linear warmup from 0 to `lr`.
    pub warmup_steps: usize,
    /// Warmup as a share of the run's optimiser steps, ⌈ratio · steps⌉ as
    /// transformers rounds it; set, it replaces `warmup_steps`.
    pub warmup_ratio: Option<f64>,
    /// AdamW's decoupled weight decay λ (θ ← θ − lr·λ·θ each step).
    pub weight_decay: f64,
    /// Global L2 norm the gradient is clipped to; 0 turns clipping off.
    pub max_grad_norm: f64,
    /// The learning rate's fall after warmup.
    pub decay: LrDecay,
    /// Seeds the example order of every epoch.
    pub seed: u64,
    /// Longest token sequence (prompt + response) fed to the model.
    pub max_len: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 8,
            grad_accum: 1,
            lr: 5e-5,
            warmup_steps: 0,
            warmup_ratio: None,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            decay: LrDecay::Cosine,
            seed: 0,
            max_len: 512,
        }
    }
}

impl TrainConfig {
    /// The loop's config of a stage's training settings: their knobs, the
    /// example order of `seed`, sequences cut to `max_len` tokens (the
    /// model's context) or the settings' lower `max_len`.
    pub fn from_settings(settings: &TrainSettings, seed: u64, max_len: usize) -> TrainConfig {
        TrainConfig {
            epochs: settings.epochs,
            batch_size: settings.batch_size,
            grad_accum: settings.grad_accum,
            lr: settings.learning_rate,
            warmup_steps: settings.warmup_steps,
            warmup_ratio: settings.warmup_ratio,
            weight_decay: settings.weight_decay,
            max_grad_norm: settings.max_grad_norm,
            decay: settings.schedule.unwrap_or_default(),
            seed,
            max_len: settings.max_len_within(max_len),
        }
    }

    /// Fails on a value no run could use, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self.problems().into_iter().next() {
            Some((_, problem)) => anyhow::bail!("train config: {problem}"),
            None => Ok(()),
        }
    }

    /// Every value no run could use, as (key, message naming the key and
    /// its range); a manifest's validation reports them at the key.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let positive = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("grad_accum", self.grad_accum),
        ];
        for (key, value) in positive {
            if value < 1 {
                out.push((key, format!("`{key} = {value}` must be at least 1")));
            }
        }
        if self.max_len < 2 {
            out.push((
                "max_len",
                format!(
                    "`max_len = {}` must be at least 2 (a prompt token and a response token)",
                    self.max_len
                ),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            out.push((
                "lr",
                format!("`lr = {}` must be a positive finite number", self.lr),
            ));
        }
        if let Some(ratio) = self.warmup_ratio
            && !(0.0..1.0).contains(&ratio)
        {
            out.push((
                "warmup_ratio",
                format!("`warmup_ratio = {ratio}` must be in [0, 1): a share of the steps"),
            ));
        }
        let non_negative = [
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
        ];
        for (key, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                out.push((
                    key,
                    format!("`{key} = {value}` must be a finite number >= 0"),
                ));
            }
        }
        out
    }

    /// Examples per optimiser step.
    pub fn examples_per_step(&self) -> usize {
        self.batch_size * self.grad_accum
    }

    /// Optimiser steps needed for `epochs` passes over `n_examples` (the last
    /// step of an epoch may be short).
    pub fn total_steps(&self, n_examples: usize) -> usize {
        self.epochs * n_examples.div_ceil(self.examples_per_step())
    }

    /// The learning rate of each of `total_steps` steps: warmup to `lr`,
    /// then `decay`.
    pub fn schedule(&self, total_steps: usize) -> Schedule {
        Schedule {
            decay: self.decay,
            peak_lr: self.lr,
            warmup_steps: self.warmup_steps_of(total_steps),
            total_steps,
        }
    }

    /// Warmup steps of a run of `total_steps`: ⌈warmup_ratio · total⌉ when
    /// the ratio is set, else `warmup_steps`.
    pub fn warmup_steps_of(&self, total_steps: usize) -> usize {
        match self.warmup_ratio {
            Some(ratio) => (ratio * total_steps as f64).ceil() as usize,
            None => self.warmup_steps,
        }
    }

    /// AdamW's settings: `lr` and `weight_decay`, with candle-nn's default
    /// β₁ = 0.9, β₂ = 0.999 and ε = 1e-8 (PyTorch's).
    pub fn adamw_params(&self) -> ParamsAdamW {
        ParamsAdamW {
            lr: self.lr,
            weight_decay: self.weight_decay,
            ..Default::default()
        }
    }
}

/// Why a loop stopped. The caller adds the stage name.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "non-finite loss {loss} at step {step} of {total_steps}, micro-batch {micro_batch} \
         (example indices {examples:?}); nothing was updated with it. Lower the learning rate, \
         check the inputs of those examples, or clip gradients harder"
    )]
    NonFiniteLoss {
        loss: f64,
        step: usize,
        total_steps: usize,
        micro_batch: usize,
        examples: Vec<usize>,
    },
    #[error(
        "non-finite gradient norm {norm} at step {step} of {total_steps}; nothing was updated \
         with it. Lower the learning rate or set max_grad_norm"
    )]
    NonFiniteGradient {
        norm: f64,
        step: usize,
        total_steps: usize,
    },
    #[error("no training examples: the loop needs at least one")]
    Empty,
}

/// The order in which each epoch visits `n` examples: epoch e's order is a
/// ChaCha8 shuffle seeded by (`seed`, e), so a run is reproducible and an
/// epoch's order does not depend on how many epochs came before.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Gradients of the trainable variables, summed over the micro-batches of
/// one optimiser step. Holds only the variables' gradients, not the whole
/// graph's, so an accumulated step costs one copy of the parameters.
pub struct GradAccumulator {
    vars: Vec<Var>,
    sums: Vec<Option<Tensor>>,
}

impl GradAccumulator {
    pub fn new(vars: &[Var]) -> Self {
        Self {
            vars: vars.to_vec(),
            sums: vec![None; vars.len()],
        }
    }

    /// Adds one backward pass's gradients.
    pub fn add(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        for (var, sum) in self.vars.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                *sum = Some(match sum.take() {
                    Some(s) => (s + g)?,
                    None => g.detach(),
                });
            }
        }
        Ok(())
    }

    /// Global L2 norm over all accumulated gradients, the squares summed in
    /// f64 (on the CPU without a temporary, in the same order as the
    /// composed ops, so the same bits).
    pub fn norm(&self) -> candle_core::Result<f64> {
        let sums: Vec<&Tensor> = self.sums.iter().flatten().collect();
        if sums.iter().all(|g| fused_cpu(g)) {
            return Ok(cwpo_kernels::grad::total_sum_of_squares(&sums)?.sqrt());
        }
        let mut squares = 0f64;
        for g in sums {
            squares += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(squares.sqrt())
    }

    /// Scales every gradient by `max_norm / norm` when the global norm
    /// exceeds `max_norm` (0 = no clipping), as torch's `clip_grad_norm_`.
    /// Returns the norm before clipping.
    pub fn clip(&mut self, max_norm: f64) -> candle_core::Result<f64> {
        let norm = self.norm()?;
        if max_norm > 0.0 && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for g in self.sums.iter_mut().flatten() {
                // A new tensor, not a scaling in place: the backward pass may
                // store one gradient tensor for several variables
                // (vendor/README.md), so `g` is not ours to modify.
                *g = g.affine(scale, 0.0)?;
            }
        }
        Ok(norm)
    }

    /// The sums as a `GradStore` an optimiser can step with.
    pub fn into_grad_store(self) -> GradStore {
        let mut store = GradStore::default();
        for (var, sum) in self.vars.iter().zip(self.sums) {
            if let Some(g) = sum {
                store.insert(var.as_tensor(), g);
            }
        }
        store
    }
}

/// Whether the in-place CPU kernels can work on `g` where it lies.
fn fused_cpu(g: &Tensor) -> bool {
    g.device().is_cpu() && matches!(g.dtype(), DType::F32 | DType::F64) && g.is_contiguous()
}

/// [`run_training`] over a slice of items: each micro-batch's indices become
/// references to the items they name, so a loop only says how a batch of
/// its items turns into a loss.
pub fn train_on_items<T>(
    vars: Vec<Var>,
    items: &[T],
    config: &TrainConfig,
    batch_loss: &dyn Fn(&[&T]) -> anyhow::Result<Tensor>,
    progress: &mut dyn FnMut(StepInfo),
    checkpoint: Option<&mut Checkpointer>,
) -> anyhow::Result<TrainReport> {
    let mut loss = |indices: &[usize]| {
        let selected: Vec<&T> = indices.iter().map(|&i| &items[i]).collect();
        batch_loss(&selected)
    };
    run_training(vars, items.len(), config, &mut loss, progress, checkpoint)
}

/// Runs `config.epochs` passes over `n_examples` examples and updates `vars`.
///
/// `micro_batch_loss(indices)` returns the mean loss over those examples as
/// a scalar tensor. Each micro-batch's loss is scaled by its share of the
/// step's examples before `backward`, so the accumulated gradient is that of
/// the mean over the whole step: `batch_size = 4, grad_accum = 2` follows the
/// same path as `batch_size = 8, grad_accum = 1`.
///
/// With a `checkpoint`, the loop first continues from that loop's last
/// checkpoint if there is one (skipping the steps it holds; `progress` sees
/// only the steps run now) and saves as its interval says: the result is
/// the same, bit for bit, as one uninterrupted run's.
pub fn run_training(
    vars: Vec<Var>,
    n_examples: usize,
    config: &TrainConfig,
    micro_batch_loss: &mut dyn FnMut(&[usize]) -> anyhow::Result<Tensor>,
    progress: &mut dyn FnMut(StepInfo),
    mut checkpoint: Option<&mut Checkpointer>,
) -> anyhow::Result<TrainReport> {
    config.validate()?;
    if n_examples == 0 {
        return Err(TrainError::Empty.into());
    }
    let started = Instant::now();
    let total_steps = config.total_steps(n_examples);
    let schedule = config.schedule(total_steps);
    let mut optimiser =
        AdamW::new(vars.clone(), config.adamw_params()).context("building the AdamW optimiser")?;
    let mut losses = Vec::with_capacity(total_steps);
    let mut earlier_seconds = 0.0;
    if let Some(c) = checkpoint.as_deref_mut()
        && let Some(resumed) = c.resume(config, n_examples, &mut optimiser)?
    {
        losses = resumed.losses;
        earlier_seconds = resumed.seconds;
    }
    let steps_per_epoch = n_examples.div_ceil(config.examples_per_step());

    for epoch in losses.len() / steps_per_epoch..config.epochs {
        let order = epoch_order(config.seed, epoch, n_examples);
        let done_in_epoch = losses.len().saturating_sub(epoch * steps_per_epoch);
        for step_examples in order.chunks(config.examples_per_step()).skip(done_in_epoch) {
            let step = losses.len();
            let lr = schedule.lr(step);
            optimiser.set_learning_rate(lr);
            let mut grads = GradAccumulator::new(&vars);
            let mut step_loss = 0f64;
            for (micro_batch, examples) in step_examples.chunks(config.batch_size).enumerate() {
                let loss = micro_batch_loss(examples)?;
                let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !value.is_finite() {
                    let mut examples = examples.to_vec();
                    examples.sort_unstable();
                    return Err(TrainError::NonFiniteLoss {
                        loss: value,
                        step: step + 1,
                        total_steps,
                        micro_batch,
                        examples,
                    }
                    .into());
                }
                let share = examples.len() as f64 / step_examples.len() as f64;
                grads.add(&loss.affine(share, 0.0)?.backward()?)?;
                step_loss += share * value;
            }
            let norm = grads.clip(config.max_grad_norm)?;
            if !norm.is_finite() {
                return Err(TrainError::NonFiniteGradient {
                    norm,
                    step: step + 1,
                    total_steps,
                }
                .into());
            }
            optimiser.step(&grads.into_grad_store())?;
            losses.push(step_loss);
            progress(StepInfo {
                step: step + 1,
                total_steps,
                loss: step_loss,
                lr,
            });
            if let Some(c) = checkpoint.as_deref_mut() {
                let seconds = earlier_seconds + started.elapsed().as_secs_f64();
                c.after_step(&LoopState {
                    step: step + 1,
                    total_steps,
                    losses: &losses,
                    seconds,
                    optimiser: &optimiser,
                })?;
            }
        }
    }
    Ok(TrainReport {
        final_loss: *losses.last().expect("at least one step ran"),
        steps: losses.len(),
        // The schedule is a function of the step, so a resumed run knows the
        // rates of the steps an earlier attempt took.
        lrs: (0..losses.len()).map(|step| schedule.lr(step)).collect(),
        losses,
        seconds: earlier_seconds + started.elapsed().as_secs_f64(),
        step_stats: Default::default(),
    })
}

/// Every value of a stage's training settings no run could use, as (key in
/// the manifest block, message): the optimiser's ranges
/// ([`TrainConfig::problems`], its `lr` named `learning_rate` as the block
/// does) and LoRA's ([`TrainSettings::lora_problems`]).
pub fn settings_problems(settings: &TrainSettings) -> Vec<(&'static str, String)> {
    let config = TrainConfig::from_settings(settings, 0, usize::MAX);
    let mut out: Vec<(&'static str, String)> = config
        .problems()
        .into_iter()
        .map(|(key, problem)| match key {
            "lr" => (
                "learning_rate",
                problem.replacen("`lr", "`learning_rate", 1),
            ),
            _ => (key, problem),
        })
        .collect();
    out.extend(settings.lora_problems());
    if let Some(targets) = &settings.lora_targets {
        let unknown: Vec<&String> = targets
            .iter()
            .filter(|t| !LORA_TARGETS.contains(&t.as_str()))
            .collect();
        if targets.is_empty() || !unknown.is_empty() {
            out.push((
                "lora_targets",
                format!(
                    "`lora_targets = {targets:?}`: name at least one projection, each one of \
                     {LORA_TARGETS:?}"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(7, 0, 50);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(7, 0, 50), "same seed and epoch, same order");
        assert_ne!(a, epoch_order(8, 0, 50), "another seed, another order");
        assert_ne!(a, epoch_order(7, 1, 50), "another epoch, another order");
    }

    #[test]
    fn clipping_bounds_the_global_norm() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let a = Var::from_vec(vec![1f32, 2.], 2, &dev)?;
        let b = Var::from_vec(vec![3f32], 1, &dev)?;
        // loss = 3·a0 + 4·a1 + 12·b0 → gradient (3, 4, 12), norm 13.
        let loss = ((a.as_tensor() * &Tensor::new(&[3f32, 4.], &dev)?)?.sum_all()?
            + (b.as_tensor() * 12.)?.sum_all()?)?;
        let mut acc = GradAccumulator::new(&[a.clone(), b.clone()]);
        acc.add(&loss.backward()?)?;
        let before = acc.clip(1.3)?;
        assert!(
            (before - 13.0).abs() < 1e-5,
            "norm before clipping {before}"
        );
        assert!(acc.norm()? <= 1.3 + 1e-5, "clipped norm {}", acc.norm()?);
        let store = acc.into_grad_store();
        let ga = store.get(a.as_tensor()).unwrap().to_vec1::<f32>()?;
        // Direction kept: (3, 4) · 1.3 / 13 = (0.3, 0.4).
        assert!(
            (ga[0] - 0.3).abs() < 1e-5 && (ga[1] - 0.4).abs() < 1e-5,
            "{ga:?}"
        );

        // Under the bound nothing changes.
        let mut acc = GradAccumulator::new(&[a.clone(), b.clone()]);
        acc.add(&loss.backward()?)?;
        acc.clip(100.0)?;
        assert!((acc.norm()? - 13.0).abs() < 1e-5);
        Ok(())
    }

    /// loss = Σ (a + b): the backward pass hands `a` and `b` one and the same
    /// gradient tensor (vendor/README.md). Clipping must scale each
    /// variable's gradient once; scaling that tensor in place would scale
    /// it twice, once through each variable.
    #[test]
    fn clipping_a_gradient_two_variables_share_scales_it_once() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let a = Var::from_vec(vec![1f32; 4], 4, &dev)?;
        let b = Var::from_vec(vec![2f32; 4], 4, &dev)?;
        let loss = (a.as_tensor() + b.as_tensor())?.sum_all()?;
        let mut acc = GradAccumulator::new(&[a.clone(), b.clone()]);
        acc.add(&loss.backward()?)?;
        // Gradient 1 everywhere, norm √8; clipped to 1 each entry is
        // 1 · 1 / (√8 + 1e-6).
        let before = acc.clip(1.0)?;
        assert_eq!(before, 8f64.sqrt());
        let want = 1.0 / (8f64.sqrt() + 1e-6);
        let store = acc.into_grad_store();
        for var in [&a, &b] {
            for g in store.get(var.as_tensor()).unwrap().to_vec1::<f32>()? {
                assert!((g as f64 - want).abs() < 1e-6, "{g} vs {want}");
            }
        }
        Ok(())
    }

    #[test]
    fn accumulation_sums_micro_batch_gradients() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0.5f32, -1.0], 2, &dev)?;
        let mut acc = GradAccumulator::new(std::slice::from_ref(&w));
        acc.add(&(w.as_tensor() * 2.)?.sum_all()?.backward()?)?;
        acc.add(&w.as_tensor().sqr()?.sum_all()?.backward()?)?;
        let g = acc
            .into_grad_store()
            .get(w.as_tensor())
            .unwrap()
            .to_vec1::<f32>()?;
        assert_eq!(g, vec![2.0 + 1.0, 2.0 - 2.0]);
        Ok(())
    }

    /// The loop before the in-place kernels, written with candle's composed
    /// ops: accumulation by `+`, the norm via f64 temporaries, clipping by
    /// `affine`, candle-nn's AdamW. Returns the loss of every step.
    fn composed_reference_loop(
        vars: Vec<Var>,
        n_examples: usize,
        config: &TrainConfig,
        micro_batch_loss: &dyn Fn(&[usize]) -> anyhow::Result<Tensor>,
    ) -> anyhow::Result<Vec<f64>> {
        let total_steps = config.total_steps(n_examples);
        let schedule = config.schedule(total_steps);
        let mut opt = candle_nn::AdamW::new(vars.clone(), config.adamw_params())?;
        let mut losses = Vec::new();
        for epoch in 0..config.epochs {
            let order = epoch_order(config.seed, epoch, n_examples);
            for step_examples in order.chunks(config.examples_per_step()) {
                opt.set_learning_rate(schedule.lr(losses.len()));
                let mut sums: Vec<Option<Tensor>> = vec![None; vars.len()];
                let mut step_loss = 0f64;
                for examples in step_examples.chunks(config.batch_size) {
                    let loss = micro_batch_loss(examples)?;
                    let share = examples.len() as f64 / step_examples.len() as f64;
                    let grads = loss.affine(share, 0.0)?.backward()?;
                    for (var, sum) in vars.iter().zip(sums.iter_mut()) {
                        if let Some(g) = grads.get(var.as_tensor()) {
                            *sum = Some(match sum.take() {
                                Some(s) => (s + g)?,
                                None => g.detach(),
                            });
                        }
                    }
                    step_loss += share * loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                }
                let mut squares = 0f64;
                for g in sums.iter().flatten() {
                    squares += g
                        .to_dtype(DType::F64)?
                        .sqr()?
                        .sum_all()?
                        .to_scalar::<f64>()?;
                }
                let norm = squares.sqrt();
                let mut store = GradStore::default();
                for (var, sum) in vars.iter().zip(sums) {
                    if let Some(mut g) = sum {
                        if norm > config.max_grad_norm {
                            g = g.affine(config.max_grad_norm / (norm + 1e-6), 0.0)?;
                        }
                        store.insert(var.as_tensor(), g);
                    }
                }
                opt.step(&store)?;
                losses.push(step_loss);
            }
        }
        Ok(losses)
    }

    /// The speed work must not move the numbers: the real (tiny) decoder
    /// trained by `run_training` — gradient accumulation, clipping that
    /// fires, weight decay, warmup + cosine — gives the same loss at every
    /// step and the same final weights, bit for bit, as the composed loop.
    #[test]
    fn loss_trace_is_bit_identical_to_the_composed_loop() -> anyhow::Result<()> {
        use crate::model::{LanguageModel, PadSide, SeqBatch};
        let dev = Device::Cpu;
        let seqs: Vec<(Vec<u32>, usize)> = (0..12u32)
            .map(|i| ((0..10).map(|t| 1 + (i * 7 + t * 3) % 36).collect(), 4))
            .collect();
        let config = TrainConfig {
            epochs: 2,
            batch_size: 3,
            grad_accum: 2,
            lr: 5e-3,
            warmup_steps: 1,
            warmup_ratio: None,
            weight_decay: 0.05,
            max_grad_norm: 0.5,
            decay: LrDecay::Cosine,
            seed: 3,
            max_len: 16,
        };
        let train = |reference: bool| -> anyhow::Result<(Vec<f64>, Vec<Vec<u32>>)> {
            let policy = super::super::test_model::tiny_policy(11)?;
            let loss = |idx: &[usize]| -> anyhow::Result<Tensor> {
                let rows: Vec<_> = idx.iter().map(|&i| seqs[i].clone()).collect();
                let batch = SeqBatch::from_sequences(&rows, 0, PadSide::Right, &dev)?;
                let lp = policy.response_logprobs(&batch)?;
                Ok((lp.sum.sum_all()? / lp.count.sum_all()?.to_scalar::<f32>()? as f64)?.neg()?)
            };
            let vars = policy.trainable_vars();
            let losses = if reference {
                composed_reference_loop(vars.clone(), seqs.len(), &config, &loss)?
            } else {
                let mut loss = loss;
                run_training(
                    vars.clone(),
                    seqs.len(),
                    &config,
                    &mut loss,
                    &mut |_| {},
                    None,
                )?
                .losses
            };
            let bits = vars
                .iter()
                .map(|v| -> anyhow::Result<Vec<u32>> {
                    let w = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                    Ok(w.iter().map(|x| x.to_bits()).collect())
                })
                .collect::<anyhow::Result<_>>()?;
            Ok((losses, bits))
        };
        let (ours, ours_weights) = train(false)?;
        let (reference, reference_weights) = train(true)?;
        assert_eq!(ours.len(), 4, "2 epochs × ceil(12 / 6) steps");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ours), bits(&reference), "{ours:?} vs {reference:?}");
        assert!(ours_weights == reference_weights, "final weights differ");
        assert!(ours[3] < ours[0], "it trains: {ours:?}");
        Ok(())
    }

    #[test]
    fn config_rejects_unknown_keys_and_bad_values() {
        let err = toml::from_str::<TrainConfig>("lr = 1e-3\nlearning_rate = 2").unwrap_err();
        assert!(err.to_string().contains("learning_rate"), "{err}");
        let partial: TrainConfig = toml::from_str("lr = 1e-3\nepochs = 2").unwrap();
        assert_eq!(
            partial,
            TrainConfig {
                lr: 1e-3,
                epochs: 2,
                ..TrainConfig::default()
            }
        );
        let bad = TrainConfig {
            grad_accum: 0,
            ..TrainConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("grad_accum")
        );
        let bad = TrainConfig {
            lr: f64::NAN,
            ..TrainConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("`lr = NaN`")
        );
    }

    #[test]
    fn total_steps_counts_a_short_last_step() {
        let c = TrainConfig {
            epochs: 2,
            batch_size: 3,
            grad_accum: 2,
            ..TrainConfig::default()
        };
        assert_eq!(c.total_steps(13), 2 * 3);
        assert_eq!(c.total_steps(12), 2 * 2);
    }

    /// Least squares on a fixed toy problem: the loop drives the loss down,
    /// and a NaN loss stops it before the parameters move.
    #[test]
    fn loop_minimises_and_stops_on_nan() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let targets: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
        let w = Var::from_vec(vec![0f32], 1, &dev)?;
        let config = TrainConfig {
            epochs: 40,
            batch_size: 4,
            lr: 0.05,
            ..TrainConfig::default()
        };
        let mut loss_of = |idx: &[usize]| -> anyhow::Result<Tensor> {
            let t: Vec<f32> = idx.iter().map(|&i| targets[i]).collect();
            let t = Tensor::from_vec(t, idx.len(), &dev)?;
            Ok(w.as_tensor().broadcast_sub(&t)?.sqr()?.mean_all()?)
        };
        let mut seen = Vec::new();
        let report = run_training(
            vec![w.clone()],
            12,
            &config,
            &mut loss_of,
            &mut |s| seen.push(s),
            None,
        )?;
        assert_eq!(report.steps, 120);
        assert_eq!(seen.len(), 120);
        assert_eq!(seen.last().unwrap().step, 120);
        // Mini-batch losses are noisy (their floor is each batch's variance);
        // the minimiser of the mean loss is the mean of the targets, 0.375.
        let learned = w.as_tensor().to_vec1::<f32>()?[0];
        assert!((learned - 0.375).abs() < 0.05, "w = {learned}");

        // One micro-batch per step holding every example: the first step's
        // loss is NaN, so the loop must stop before AdamW moves `w`.
        let before = w.as_tensor().to_vec1::<f32>()?;
        let one_batch = TrainConfig {
            batch_size: 12,
            ..config
        };
        let mut nan_loss = |idx: &[usize]| -> anyhow::Result<Tensor> {
            let l = w.as_tensor().sqr()?.sum_all()?;
            Ok(if idx.contains(&5) { (l * f64::NAN)? } else { l })
        };
        let err = run_training(
            vec![w.clone()],
            12,
            &one_batch,
            &mut nan_loss,
            &mut |_| {},
            None,
        )
        .unwrap_err();
        match err.downcast_ref::<TrainError>() {
            Some(TrainError::NonFiniteLoss {
                step,
                micro_batch,
                examples,
                ..
            }) => {
                assert_eq!((*step, *micro_batch), (1, 0), "{err}");
                assert_eq!(examples, &(0..12).collect::<Vec<_>>(), "{err}");
            }
            other => panic!("expected NonFiniteLoss, got {other:?}: {err}"),
        }
        assert!(err.to_string().contains("step 1 of"), "{err}");
        assert_eq!(
            w.as_tensor().to_vec1::<f32>()?,
            before,
            "no update with a NaN loss"
        );
        Ok(())
    }

    /// `warmup_ratio` 0.25 of a 16-step run warms up over ⌈4⌉ = 4 steps:
    /// step k < 4 runs at lr·k/4 and step 4 at the peak; 0.2 of 16 rounds
    /// up to 4 too (transformers' ceil). Unset, `warmup_steps` holds.
    #[test]
    fn warmup_ratio_sets_the_warmup_as_a_share_of_the_steps() {
        let config = |ratio: Option<f64>| TrainConfig {
            lr: 0.1,
            warmup_steps: 10,
            warmup_ratio: ratio,
            ..TrainConfig::default()
        };
        let schedule = config(Some(0.25)).schedule(16);
        for k in 0..4 {
            assert!(
                (schedule.lr(k) - 0.1 * k as f64 / 4.0).abs() < 1e-15,
                "step {k}"
            );
        }
        assert!((schedule.lr(4) - 0.1).abs() < 1e-15);
        assert_eq!(config(Some(0.2)).warmup_steps_of(16), 4);
        assert_eq!(config(None).warmup_steps_of(16), 10);
        let err = config(Some(1.0)).validate().unwrap_err().to_string();
        assert!(err.contains("`warmup_ratio = 1`"), "{err}");
    }

    /// LoRA targets are projections the model has, at least one, and need a rank.
    #[test]
    fn lora_targets_are_known_projections_with_a_rank() {
        let problems = |targets: &[&str], rank: Option<usize>| {
            let settings = TrainSettings {
                lora_targets: Some(targets.iter().map(|t| t.to_string()).collect()),
                ..TrainSettings::new(1e-3, 1, 8, rank)
            };
            settings_problems(&settings)
                .into_iter()
                .map(|(key, _)| key)
                .collect::<Vec<_>>()
        };
        assert!(problems(&["q_proj", "v_proj"], Some(8)).is_empty());
        assert_eq!(problems(&["q_proj", "qkv"], Some(8)), ["lora_targets"]);
        assert_eq!(problems(&[], Some(8)), ["lora_targets"]);
        assert_eq!(problems(&["q_proj"], None), ["lora_targets"]);
    }
}
