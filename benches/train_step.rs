//! Training throughput of the model core, side by side with PyTorch:
//! forward + backward + AdamW step of a ~0.9M-parameter Llama-style decoder
//! (vocab 512, d 128, 4 layers, 4 heads) on a batch of 16 × 64 tokens, the
//! size every tiny-profile table trains hundreds of times.
//!
//! For each thread count (`THREADS`, default `1,2`) it runs this binary
//! again as a child with `RAYON_NUM_THREADS` set (candle reads it once per
//! process), then `scripts/tiny_torch_train_step.py` with as many torch
//! threads, back to back, `ROUNDS` times (default 1), and prints a table:
//! tokens/s of each, the ratio ours / PyTorch, the 1-minute load average
//! before each. `PATHS=all` also times the composed ops and candle-nn's
//! AdamW (the slower paths this crate replaced) in the child.
//!
//! Run: `cargo bench --bench train_step` (STEPS=n steps per measurement).
//! Without a torch venv (benches/common/torch.rs) it prints ours only.
#[path = "common/child_process.rs"]
mod child_process;
#[path = "common/torch.rs"]
mod torch;

use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use candle_nn::{Optimizer, ParamsAdamW};
use child_process::{as_a_stage, env_or, run_child, thread_counts};
use cwpo::model::fused::with_fused;
use cwpo::model::{DecoderConfig, LanguageModel, PadSide, Policy, SeqBatch};
use cwpo::train::adamw::AdamW;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 16;
const SEQ: usize = 64;

fn config() -> DecoderConfig {
    DecoderConfig {
        vocab_size: 512,
        hidden_size: 128,
        intermediate_size: 344,
        num_layers: 4,
        num_heads: 4,
        num_kv_heads: 4,
        head_dim: 32,
        max_position: 128,
        ..cwpo::testing::tiny_llama()
    }
}

/// Random sequences with a 16-token prompt and a 48-token response.
fn batch(rng: &mut ChaCha8Rng, device: &Device) -> anyhow::Result<SeqBatch> {
    let seqs: Vec<(Vec<u32>, usize)> = (0..BATCH)
        .map(|_| ((0..SEQ).map(|_| rng.random_range(3..512u32)).collect(), 16))
        .collect();
    Ok(SeqBatch::from_sequences(&seqs, 0, PadSide::Right, device)?)
}

/// Seconds per step spent in forward, backward and the AdamW step.
struct Timings {
    forward: Duration,
    backward: Duration,
    optimizer: Duration,
    final_loss: f32,
}

/// Times `steps` steps (after 3 warm-up steps) with optimiser `O`.
fn measure<O: Optimizer<Config = ParamsAdamW>>(
    policy: &Policy,
    batches: &[SeqBatch],
    steps: usize,
) -> anyhow::Result<Timings> {
    let mut opt = O::new(
        policy.trainable_vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    let warmup = 3;
    let mut t = Timings {
        forward: Duration::ZERO,
        backward: Duration::ZERO,
        optimizer: Duration::ZERO,
        final_loss: 0.0,
    };
    for i in 0..warmup + steps {
        let b = &batches[i % batches.len()];
        let t0 = Instant::now();
        let lp = policy.response_logprobs(b)?;
        let loss = (lp.sum.sum_all()? / lp.count.sum_all()?.to_scalar::<f32>()? as f64)?.neg()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        if i >= warmup {
            t.forward += t1 - t0;
            t.backward += t2 - t1;
            t.optimizer += t3 - t2;
        }
        t.final_loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    }
    Ok(t)
}

impl Timings {
    fn tokens_per_s(&self, steps: usize) -> f64 {
        let total = self.forward + self.backward + self.optimizer;
        (steps * BATCH * SEQ) as f64 / total.as_secs_f64()
    }
}

fn report(label: &str, t: &Timings, steps: usize) {
    let total = t.forward + t.backward + t.optimizer;
    let ms = |d: Duration| 1e3 * d.as_secs_f64() / steps as f64;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    println!(
        "  {label:>24}: {:6.0} tokens/s ({:.1} ms/step) | forward {:.1} ms ({:.0}%), backward {:.1} ms ({:.0}%), AdamW {:.1} ms ({:.0}%) | loss {:.3}",
        t.tokens_per_s(steps),
        ms(total),
        ms(t.forward),
        pct(t.forward),
        ms(t.backward),
        pct(t.backward),
        ms(t.optimizer),
        pct(t.optimizer),
        t.final_loss
    );
}

/// The child: times this process's paths at its thread count; the last
/// line, `RESULT <tokens/s>`, is ours (fused kernels, in-place AdamW).
fn child(steps: usize) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let cfg = config();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batches: Vec<SeqBatch> = (0..4)
        .map(|_| batch(&mut rng, &device))
        .collect::<anyhow::Result<_>>()?;
    let params = Policy::new_random(&cfg, None, 0, &device)?
        .backbone()
        .params()
        .num_params()
        .0;
    println!(
        "train_step: llama d={} L={} H={} V={} params={params} batch={BATCH}x{SEQ} threads={} steps={steps}",
        cfg.hidden_size,
        cfg.num_layers,
        cfg.num_heads,
        cfg.vocab_size,
        candle_core::utils::get_num_threads()
    );
    // Same initial weights and batches for every path.
    let fresh = || Policy::new_random(&cfg, None, 0, &device);
    if std::env::var("PATHS").as_deref() == Ok("all") {
        let t = with_fused(false, || {
            measure::<candle_nn::AdamW>(&fresh()?, &batches, steps)
        })?;
        report("composed, candle-nn AdamW", &t, steps);
        let t = with_fused(true, || {
            measure::<candle_nn::AdamW>(&fresh()?, &batches, steps)
        })?;
        report("fused, candle-nn AdamW", &t, steps);
    }
    let t = with_fused(true, || measure::<AdamW>(&fresh()?, &batches, steps))?;
    report("fused, in-place AdamW", &t, steps);
    println!("RESULT {}", t.tokens_per_s(steps));
    Ok(())
}

/// Ours at `threads`: this binary as a child process.
fn ours(threads: usize, steps: usize) -> anyhow::Result<f64> {
    Ok(run_child("TRAIN_STEP_CHILD", threads, steps)?.parse()?)
}

fn main() -> anyhow::Result<()> {
    let steps: usize = env_or("STEPS", 20);
    if std::env::var_os("TRAIN_STEP_CHILD").is_some() {
        // SAFETY: first thing in the child's `main`, before any thread exists.
        return unsafe { as_a_stage(|| child(steps)) };
    }
    let threads = thread_counts()?;
    let rounds: usize = env_or("ROUNDS", 1);
    let rows = torch::side_by_side(
        &threads,
        rounds,
        |n| ours(n, steps),
        |python, n| {
            let json = torch::run_script(
                python,
                "tiny_torch_train_step.py",
                &["--steps", &steps.to_string()],
                n,
            )?;
            println!("  {:>24}: {json}", "PyTorch");
            Ok(json["tokens_per_s"].as_f64())
        },
    )?;
    println!(
        "\n| round | threads | ours tokens/s (load) | PyTorch tokens/s (load) | ours / PyTorch |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        let (round, n, (ours, load_ours)) = (row.round, row.threads, row.ours);
        match row.theirs {
            Some((t, load)) => println!(
                "| {round} | {n} | {ours:.0} ({load_ours:.1}) | {t:.0} ({load:.1}) | {:.2}× |",
                ours / t
            ),
            None => println!("| {round} | {n} | {ours:.0} ({load_ours:.1}) | – | – |"),
        }
    }
    Ok(())
}
