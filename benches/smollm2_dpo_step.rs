//! One DPO step of SmolLM2-135M (f32, CPU, full-model AdamW, the frozen
//! reference's forward included), side by side with PyTorch.
//!
//! For each thread count (`THREADS`, default `1,2`) it runs this binary
//! again as a child with `RAYON_NUM_THREADS` set, threads set up as `sweep`
//! sets them up and the step computed on a rayon pool's thread as a stage
//! computes; the child times `STEPS` steps (default 4: one cold, the rest
//! warm), each split into reference forward, policy forward + loss,
//! backward and AdamW. Then `scripts/smollm2_torch_dpo_step.py` times the
//! same step in transformers + torch with as many threads (one cold step,
//! three warm). `ROUNDS` times; at the end a table of both and the ratio.
//!
//! Needs the real model (`scripts/fetch-smollm2.sh`); without it, it says so
//! and stops. Without a torch venv (benches/common/torch.rs) it prints ours.
//!
//! Run: `TORCH_PYTHON=.venv-torch/bin/python cargo bench --bench smollm2_dpo_step`.
#[path = "common/child_process.rs"]
mod child_process;
#[path = "common/smollm2_dpo.rs"]
mod smollm2_dpo;
#[path = "common/torch.rs"]
mod torch;

use std::time::Instant;

use candle_nn::{Optimizer, ParamsAdamW};
use child_process::{as_a_stage, env_or, run_child, thread_counts};
use cwpo::model::LanguageModel;
use cwpo::train::adamw::AdamW;
use smollm2_dpo::DpoStep;

/// Seconds of one step, whole and by phase.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Split {
    reference_forward: f64,
    policy_forward_loss: f64,
    backward: f64,
    adamw: f64,
}

impl Split {
    fn total(&self) -> f64 {
        self.reference_forward + self.policy_forward_loss + self.backward + self.adamw
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The child: times `steps` steps and prints them as one JSON line.
fn child(steps: usize) {
    let path = cwpo::testing::smollm2_gguf().expect("the parent checked the model");
    let dpo = DpoStep::new(&path);
    let mut opt = AdamW::new(dpo.lm.policy.trainable_vars(), ParamsAdamW::default()).unwrap();
    let mut splits = Vec::new();
    for step in 0..steps {
        let t0 = Instant::now();
        let reference_margin = dpo.reference_margin();
        let t1 = Instant::now();
        let loss = dpo.loss(&reference_margin);
        let loss_value = loss.to_scalar::<f32>().unwrap();
        let t2 = Instant::now();
        let grads = loss.backward().unwrap();
        let t3 = Instant::now();
        opt.step(&grads).unwrap();
        let t4 = Instant::now();
        let s = |a: Instant, b: Instant| (b - a).as_secs_f64();
        let split = Split {
            reference_forward: s(t0, t1),
            policy_forward_loss: s(t1, t2),
            backward: s(t2, t3),
            adamw: s(t3, t4),
        };
        println!(
            "  ours, step {step}: {:.2} s (reference forward {:.2}, policy forward + loss {:.2}, backward {:.2}, AdamW {:.2}), loss {loss_value:.5}",
            split.total(),
            split.reference_forward,
            split.policy_forward_loss,
            split.backward,
            split.adamw
        );
        if step == 0 {
            assert!(
                (loss_value - std::f32::consts::LN_2).abs() < 1e-4,
                "policy = reference gives ln 2, got {loss_value}"
            );
        }
        splits.push(split);
    }
    println!("RESULT {}", serde_json::to_string(&splits).unwrap());
}

/// Ours at `threads`: (cold step seconds, median of the warm steps).
fn ours(threads: usize, steps: usize) -> anyhow::Result<(f64, f64)> {
    let json = run_child("SMOLLM2_DPO_CHILD", threads, steps)?;
    let splits: Vec<Split> = serde_json::from_str(&json)?;
    let cold = splits[0].total();
    let warm = median(splits[1..].iter().map(Split::total).collect());
    Ok((cold, warm))
}

fn main() -> anyhow::Result<()> {
    let steps: usize = env_or("STEPS", 4).max(2);
    if std::env::var_os("SMOLLM2_DPO_CHILD").is_some() {
        // SAFETY: first thing in the child's `main`, before any thread exists.
        unsafe { as_a_stage(|| child(steps)) };
        return Ok(());
    }
    let Some(model) = cwpo::testing::smollm2_gguf() else {
        println!("smollm2_dpo_step: no SmolLM2 GGUF; run scripts/fetch-smollm2.sh first");
        return Ok(());
    };
    let threads = thread_counts()?;
    let rounds: usize = env_or("ROUNDS", 1);
    let rows = torch::side_by_side(
        &threads,
        rounds,
        |n| ours(n, steps),
        |python, n| {
            let json = torch::run_script(
                python,
                "smollm2_torch_dpo_step.py",
                &[&model.to_string_lossy()],
                n,
            )?;
            let dpo = &json["dpo"];
            println!(
                "  PyTorch: cold {} s, warm {} s, cold split {}",
                dpo["cold_step_s"], dpo["warm_step_s"], dpo["cold_split_s"]
            );
            Ok(dpo["cold_step_s"]
                .as_f64()
                .zip(dpo["warm_median_s"].as_f64()))
        },
    )?;
    println!(
        "\n| round | threads | ours: cold / warm median s (load) | PyTorch: cold / warm median s (load) | ours / PyTorch speed, cold / warm |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        let (round, n, ((cold, warm), load)) = (row.round, row.threads, row.ours);
        match row.theirs {
            Some(((tc, tw), tload)) => println!(
                "| {round} | {n} | {cold:.2} / {warm:.2} ({load:.1}) | {tc:.2} / {tw:.2} ({tload:.1}) | {:.2}× / {:.2}× |",
                tc / cold,
                tw / warm
            ),
            None => println!("| {round} | {n} | {cold:.2} / {warm:.2} ({load:.1}) | – | – |"),
        }
    }
    Ok(())
}
