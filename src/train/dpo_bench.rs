//! `sweep model bench`: how fast one DPO training step runs on a model, on a
//! device, in a precision: tokens/s and, given the device's peak, MFU. What a
//! user sizing a run on a GPU (or comparing against PyTorch) wants to know.
//!
//! The step is the one `scripts/gpu_anchor.py bench` times in PyTorch:
//! P pairs of T-token sequences (random ids, the second half of each is the
//! response), a forward pass of the frozen reference, the policy's forward
//! and backward over the 2P sequences, the DPO loss (β = 0.1) and one AdamW
//! step over every weight (full fine-tune), through the training loop the
//! stages use ([`super::optim::run_training`], gradient clipping included).
//! The reference is an inference-only copy (frozen, compute dtype).
//!
//! FLOPs per step count the matrix products only: 4 forward passes (policy
//! forward + backward = 3, reference forward = 1), each 2 · (weights touched
//! per token) · tokens plus attention's two [T, T] products per layer, counted
//! without causal halving: the convention of the PyTorch anchor, so the two
//! MFUs compare.
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::losses::PreferenceObjective;
use super::optim::{TrainConfig, run_training};
use super::po::{PoData, po_batch_loss, reference_logprobs};
use super::{Batching, TokenizedPair};
use crate::model::{DecoderConfig, LanguageModel, Policy, Precision};

/// What to time.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Preference pairs per step (2 · pairs sequences).
    pub pairs: usize,
    /// Tokens per sequence: prompt (the first half) + response.
    pub tokens: usize,
    /// Timed steps, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    pub precision: Precision,
    /// Seeds the random token ids.
    pub seed: u64,
    /// The device's dense peak in TFLOP/s for the MFU (e.g. 989 for an
    /// H100 SXM or H200 in bf16); none → no MFU.
    pub peak_tflops: Option<f64>,
}

/// What one bench run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub device: String,
    pub dtype: String,
    pub pairs: usize,
    pub tokens_per_seq: usize,
    pub warmup: usize,
    pub steps: usize,
    /// DPO loss of every step, warm-up included.
    pub loss: Vec<f64>,
    /// Mean wall-clock seconds of a timed step.
    pub step_s: f64,
    /// Sequence tokens (prompt and response, chosen and rejected) per second.
    pub tokens_per_s: f64,
    pub flops_per_step: f64,
    /// Achieved matrix TFLOP/s.
    pub tflops: f64,
    pub peak_tflops: Option<f64>,
    /// Model FLOPs utilisation: tflops / peak_tflops.
    pub mfu: Option<f64>,
}

/// Matrix FLOPs of one forward pass over `tokens` tokens in sequences of
/// `seq`: 2 per weight per token, plus the attention products q·kᵀ and p·v
/// (2 · 2 · seq · heads · head_dim per token and layer, no causal halving).
pub fn forward_flops(cfg: &DecoderConfig, tokens: usize, seq: usize) -> f64 {
    let (d, f, l, v) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.num_layers as f64,
        cfg.vocab_size as f64,
    );
    let q = (cfg.num_heads * cfg.head_dim) as f64;
    let kv = (cfg.num_kv_heads * cfg.head_dim) as f64;
    let mlp = match cfg.arch {
        crate::model::Arch::Llama => 3.0 * d * f, // gate, up, down
        crate::model::Arch::Opt => 2.0 * d * f,   // fc1, fc2
    };
    let per_layer = 2.0 * d * q + 2.0 * d * kv + mlp; // q, o + k, v + MLP
    let per_token = 2.0 * (l * per_layer + d * v) + 2.0 * 2.0 * l * seq as f64 * q;
    per_token * tokens as f64
}

/// Random pairs: `tokens / 2` prompt ids, the rest chosen or rejected response.
fn random_pairs(config: &BenchConfig, vocab: usize) -> Vec<TokenizedPair> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Ids from 3 up: 0..3 are special tokens in most vocabularies.
    let mut ids =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(3..vocab as u32)).collect() };
    let prompt_len = config.tokens / 2;
    let response_len = config.tokens - prompt_len;
    (0..config.pairs)
        .map(|_| TokenizedPair {
            prompt: ids(prompt_len),
            chosen: ids(response_len),
            rejected: ids(response_len),
        })
        .collect()
}

/// Times `config.warmup + config.steps` DPO steps of a full fine-tune of
/// `model` (whose own precision is replaced by `config.precision`) on `device`.
pub fn dpo_step_bench(
    model: &Policy,
    device: &Device,
    config: &BenchConfig,
) -> Result<BenchReport> {
    anyhow::ensure!(
        config.pairs >= 1 && config.tokens >= 2 && config.steps >= 1,
        "bench: need at least 1 pair, 2 tokens per sequence and 1 timed step"
    );
    let cfg = model.config();
    anyhow::ensure!(
        config.tokens <= cfg.max_position,
        "bench: {} tokens per sequence exceed the model's {} positions",
        config.tokens,
        cfg.max_position
    );
    let policy = model.with_precision(config.precision)?;
    let reference = policy.frozen()?;
    let pairs = random_pairs(config, cfg.vocab_size);
    let weights = vec![1.0; pairs.len()];
    let train = TrainConfig {
        epochs: config.warmup + config.steps,
        batch_size: config.pairs,
        lr: 1e-6,
        max_len: config.tokens,
        ..TrainConfig::default()
    };
    let batching = Batching::for_training(cfg.pad_id, &train, device);
    let objective = PreferenceObjective::dpo(0.1);
    let mut loss = |indices: &[usize]| {
        let selected: Vec<TokenizedPair> = indices.iter().map(|&i| pairs[i].clone()).collect();
        let reference = reference_logprobs(&reference, &selected, &batching, selected.len())?;
        let data = PoData {
            pairs: &selected,
            reference: &reference,
            weights: &weights[..selected.len()],
        };
        let all: Vec<usize> = (0..selected.len()).collect();
        po_batch_loss(&policy, &batching, &data, &objective, &all)
    };
    // The timed window starts once the warm-up steps have finished on the device.
    let mut timed_from = None;
    let mut sync_error = None;
    let mut progress = |info: super::StepInfo| {
        if info.step == config.warmup {
            if let Err(e) = device.synchronize() {
                sync_error.get_or_insert(e);
            }
            timed_from = Some(Instant::now());
        }
    };
    let started = Instant::now();
    let report = run_training(
        policy.trainable_vars(),
        pairs.len(),
        &train,
        &mut loss,
        &mut progress,
        None,
    )
    .context("bench: the DPO step failed")?;
    device.synchronize()?;
    if let Some(e) = sync_error {
        return Err(e.into());
    }
    let elapsed = timed_from.unwrap_or(started).elapsed().as_secs_f64();
    let step_s = elapsed / config.steps as f64;
    let tokens = 2 * config.pairs * config.tokens;
    let flops_per_step = 4.0 * forward_flops(cfg, tokens, config.tokens);
    let tflops = flops_per_step / step_s / 1e12;
    Ok(BenchReport {
        device: crate::device::DeviceSpec::of(device).to_string(),
        dtype: config.precision.to_string(),
        pairs: config.pairs,
        tokens_per_seq: config.tokens,
        warmup: config.warmup,
        steps: config.steps,
        loss: report.losses,
        step_s,
        tokens_per_s: tokens as f64 / step_s,
        flops_per_step,
        tflops,
        peak_tflops: config.peak_tflops,
        mfu: config.peak_tflops.map(|peak| tflops / peak),
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "DPO step on {} in {}: {} pairs x {} tokens, {} timed steps after {} warm-up",
            self.device, self.dtype, self.pairs, self.tokens_per_seq, self.steps, self.warmup
        )?;
        writeln!(
            f,
            "{:.4} s/step, {:.0} tokens/s, {:.2} TFLOP/s{}",
            self.step_s,
            self.tokens_per_s,
            self.tflops,
            match self.mfu {
                Some(mfu) => format!(", MFU {:.1}%", 100.0 * mfu),
                None => String::new(),
            }
        )?;
        write!(f, "losses: {:?}", self.loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_llama;

    /// tiny_llama: d 16, f 24, 2 layers, 4 heads x 4 (q width 16), 2 KV heads
    /// (kv width 8), vocabulary 37. Per layer: 2·16·16 + 2·16·8 + 3·16·24 =
    /// 512 + 256 + 1152 = 1920 weights; per token 2·(2·1920 + 16·37) =
    /// 2·(3840 + 592) = 8864, plus attention 2·2·2·seq·16 = 128·seq.
    #[test]
    fn forward_flops_count_weights_and_attention_by_hand() {
        let cfg = tiny_llama();
        assert_eq!(forward_flops(&cfg, 1, 0), 8864.0);
        assert_eq!(forward_flops(&cfg, 10, 8), 10.0 * (8864.0 + 128.0 * 8.0));
    }

    /// The bench runs its warm-up and timed steps through the real training
    /// loop in f32 and mixed bf16: the first loss is ln 2 (policy = reference),
    /// and the report's rates follow from its step time.
    #[test]
    fn bench_times_dpo_steps_in_both_precisions() -> Result<()> {
        let model = crate::train::test_model::tiny_policy(1)?;
        for precision in [Precision::F32, Precision::BF16] {
            let config = BenchConfig {
                pairs: 2,
                tokens: 12,
                steps: 2,
                warmup: 1,
                precision,
                seed: 0,
                peak_tflops: Some(1.0),
            };
            let report = dpo_step_bench(&model, &Device::Cpu, &config)?;
            assert_eq!(report.loss.len(), 3, "{report}");
            assert!(
                (report.loss[0] - std::f64::consts::LN_2).abs() < 1e-3,
                "{report}"
            );
            assert!(report.step_s > 0.0);
            assert_eq!(report.tokens_per_s, 48.0 / report.step_s);
            assert_eq!(report.mfu, Some(report.tflops));
            assert_eq!(report.dtype, precision.to_string());
        }
        Ok(())
    }
}
