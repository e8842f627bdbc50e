//! Training throughput of the model core: forward + backward + AdamW step of
//! a ~0.9M-parameter Llama-style decoder (vocab 512, d 128, 4 layers, 4 heads)
//! on a batch of 16 × 64 tokens, the size every tiny-profile table trains
//! hundreds of times. Prints tokens/s and where the time goes.
//!
//! Run: `cargo bench --bench train_step` (STEPS=n to change the step count).
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use cwpo::model::fused::with_fused;
use cwpo::model::{Arch, DecoderConfig, LanguageModel, PadSide, Policy, SeqBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 16;
const SEQ: usize = 64;

fn config() -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Llama,
        vocab_size: 512,
        hidden_size: 128,
        intermediate_size: 344,
        num_layers: 4,
        num_heads: 4,
        num_kv_heads: 4,
        head_dim: 32,
        max_position: 128,
        rope_theta: 10_000.0,
        rope_scaling: None,
        norm_eps: 1e-6,
        qkv_bias: false,
        qk_norm: false,
        tie_embeddings: true,
        bos_id: Some(1),
        eos_id: 2,
        pad_id: 0,
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

fn measure(policy: &Policy, batches: &[SeqBatch], steps: usize) -> anyhow::Result<Timings> {
    let mut opt = AdamW::new(
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

fn report(label: &str, t: &Timings, steps: usize) {
    let total = t.forward + t.backward + t.optimizer;
    let tokens = (steps * BATCH * SEQ) as f64;
    let ms = |d: Duration| 1e3 * d.as_secs_f64() / steps as f64;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    println!(
        "  {label:>8}: {:6.0} tokens/s ({:.1} ms/step) | forward {:.1} ms ({:.0}%), backward {:.1} ms ({:.0}%), AdamW {:.1} ms ({:.0}%) | loss {:.3}",
        tokens / total.as_secs_f64(),
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

fn main() -> anyhow::Result<()> {
    let device = Device::Cpu;
    let cfg = config();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batches: Vec<SeqBatch> = (0..4)
        .map(|_| batch(&mut rng, &device))
        .collect::<anyhow::Result<_>>()?;
    let steps: usize = std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
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
    // Same initial weights and batches for both paths.
    for (label, fused) in [("composed", false), ("fused", true)] {
        let policy = Policy::new_random(&cfg, None, 0, &device)?;
        let t = with_fused(fused, || measure(&policy, &batches, steps))?;
        report(label, &t, steps);
    }
    Ok(())
}
