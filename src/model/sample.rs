//! Batched generation with a KV cache.
//!
//! Prompts are left-padded so every row's next token is in the last column;
//! each step feeds one token per row and reuses the cached keys/values.
//! Token choice (temperature, top-p) runs on the host from a ChaCha8 stream
//! per prompt, seeded by (seed, prompt index): a prompt's samples do not
//! depend on which other prompts share its batch.
use anyhow::Context;
use candle_core::{DType, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::init::tensor_rng;
use super::{PadSide, Policy, SeqBatch};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 means greedy (argmax, lowest id on ties).
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of tokens whose probability
    /// reaches `top_p` (1.0 keeps all).
    pub top_p: f64,
    /// Most new tokens per prompt (EOS not counted, not returned).
    pub max_new_tokens: usize,
    /// Prompts per forward batch.
    pub batch_size: usize,
    pub seed: u64,
}

impl SamplingConfig {
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens,
            batch_size: 16,
            seed: 0,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.temperature >= 0.0 && self.temperature.is_finite(),
            "sampling: temperature must be ≥ 0 (0 = greedy), got {}",
            self.temperature
        );
        anyhow::ensure!(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "sampling: top_p must be in (0, 1], got {}",
            self.top_p
        );
        anyhow::ensure!(
            self.batch_size > 0,
            "sampling: batch_size must be at least 1"
        );
        Ok(())
    }
}

/// New token ids for each prompt (EOS excluded), in prompt order.
pub fn generate(
    policy: &Policy,
    prompts: &[Vec<u32>],
    cfg: &SamplingConfig,
) -> anyhow::Result<Vec<Vec<u32>>> {
    generate_resuming(policy, prompts, cfg, Vec::new(), &mut |_| Ok(()))
}

/// [`generate`] continuing after `done`, the outputs of the first whole
/// batches of an earlier attempt, and calling `after_batch` with every
/// output so far after each batch (a checkpoint saves them). The result is
/// an uninterrupted call's: a batch depends only on its own prompts and
/// their streams.
pub fn generate_resuming(
    policy: &Policy,
    prompts: &[Vec<u32>],
    cfg: &SamplingConfig,
    done: Vec<Vec<u32>>,
    after_batch: &mut dyn FnMut(&[Vec<u32>]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Vec<u32>>> {
    cfg.validate()?;
    anyhow::ensure!(
        done.len() <= prompts.len()
            && (done.len().is_multiple_of(cfg.batch_size) || done.len() == prompts.len()),
        "sampling: {} finished outputs is not a whole number of {}-prompt batches of {} prompts",
        done.len(),
        cfg.batch_size,
        prompts.len()
    );
    let skip = done.len().div_ceil(cfg.batch_size);
    let mut out = done;
    out.reserve(prompts.len() - out.len());
    for (chunk_index, chunk) in prompts.chunks(cfg.batch_size).enumerate().skip(skip) {
        let first = chunk_index * cfg.batch_size;
        let mut rngs: Vec<ChaCha8Rng> = (first..first + chunk.len())
            .map(|i| tensor_rng(cfg.seed, &format!("sample/{i}")))
            .collect();
        out.extend(
            generate_batch(policy, chunk, cfg, &mut rngs).with_context(|| {
                format!("generating for prompts {first}..{}", first + chunk.len())
            })?,
        );
        after_batch(&out)?;
    }
    Ok(out)
}

fn generate_batch(
    policy: &Policy,
    prompts: &[Vec<u32>],
    cfg: &SamplingConfig,
    rngs: &mut [ChaCha8Rng],
) -> anyhow::Result<Vec<Vec<u32>>> {
    let model_cfg = policy.config();
    let (eos, pad) = (model_cfg.eos_id, model_cfg.pad_id);
    let dev = policy.backbone().device().clone();
    let b = prompts.len();
    let mut new_tokens: Vec<Vec<u32>> = vec![Vec::new(); b];
    if cfg.max_new_tokens == 0 {
        return Ok(new_tokens);
    }
    for (i, p) in prompts.iter().enumerate() {
        anyhow::ensure!(
            !p.is_empty(),
            "sampling: prompt {i} is empty (give it at least a BOS token)"
        );
    }
    let seqs: Vec<(Vec<u32>, usize)> = prompts.iter().map(|p| (p.clone(), p.len())).collect();
    let prompt_batch = SeqBatch::from_sequences(&seqs, pad, PadSide::Left, &dev)?;
    let mut attn_mask = prompt_batch.attn_mask.clone(); // [B, T_k]
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    let mut cache = policy.new_cache();
    let t = prompt_batch.ids.dim(1)?;
    let mut logits = policy
        .step_logits(
            &prompt_batch.ids,
            &prompt_batch.positions,
            &attn_mask,
            &mut cache,
        )?
        .narrow(1, t - 1, 1)?; // [B, 1, V]
    let mut done = vec![false; b];
    for step in 0..cfg.max_new_tokens {
        let rows = logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?; // [B][V]
        let mut fed = Vec::with_capacity(b);
        for (row, l) in rows.iter().enumerate() {
            if done[row] {
                fed.push(pad);
                continue;
            }
            let tok = choose_token(l, cfg.temperature, cfg.top_p, &mut rngs[row])
                .with_context(|| format!("row {row}, step {step}"))?;
            if tok == eos {
                done[row] = true;
            } else {
                new_tokens[row].push(tok);
            }
            fed.push(tok);
        }
        if step + 1 == cfg.max_new_tokens || done.iter().all(|&d| d) {
            break;
        }
        let ids = Tensor::from_vec(fed, (b, 1), &dev)?;
        let positions = Tensor::from_vec(next_pos.clone(), (b, 1), &dev)?;
        next_pos.iter_mut().for_each(|p| *p += 1);
        attn_mask = Tensor::cat(&[&attn_mask, &Tensor::ones((b, 1), DType::F32, &dev)?], 1)?;
        logits = policy.step_logits(&ids, &positions, &attn_mask, &mut cache)?; // [B, 1, V]
    }
    Ok(new_tokens)
}

/// Picks one token id from one row of logits.
pub fn choose_token(
    logits: &[f32],
    temperature: f64,
    top_p: f64,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<u32> {
    anyhow::ensure!(
        logits.iter().all(|x| x.is_finite()),
        "logits contain NaN or inf: the model diverged (lower the learning rate or check the checkpoint)"
    );
    let argmax = || {
        let mut best = 0;
        for (i, &x) in logits.iter().enumerate() {
            if x > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if temperature == 0.0 {
        return Ok(argmax());
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i, ((x as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    if top_p < 1.0 {
        // Most likely first; ties by id so the order is deterministic.
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0;
        let mut mass = 0.0;
        while kept < probs.len() && (kept == 0 || mass < top_p * total) {
            mass += probs[kept].1;
            kept += 1;
        }
        probs.truncate(kept);
    }
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    let mut u = rng.random::<f64>() * total;
    for &(i, p) in &probs {
        if u < p {
            return Ok(i as u32);
        }
        u -= p;
    }
    Ok(probs.last().expect("non-empty vocabulary").0 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tiny_llama, tiny_opt, tiny_qwen3};
    use candle_core::Device;
    use rand::SeedableRng;

    fn prompts() -> Vec<Vec<u32>> {
        vec![vec![1, 5, 6], vec![1, 7], vec![1, 8, 9, 10, 11], vec![1]]
    }

    /// Logits from the KV-cache path equal a full recompute of the whole
    /// (left-padded) sequence, at every step, for every architecture.
    #[test]
    fn kv_cache_logits_equal_full_recompute() -> anyhow::Result<()> {
        for fused in [false, true] {
            crate::model::fused::with_fused(fused, kv_cache_matches_recompute)?;
        }
        Ok(())
    }

    fn kv_cache_matches_recompute() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        for cfg in [tiny_llama(), tiny_qwen3(), tiny_opt()] {
            let policy = Policy::new_random(&cfg, None, 31, &dev)?;
            let prompts = prompts();
            let fed: Vec<Vec<u32>> = vec![
                vec![12, 13, 14],
                vec![15, 16, 17],
                vec![18, 3, 4],
                vec![5, 6, 7],
            ];
            let seqs: Vec<(Vec<u32>, usize)> =
                prompts.iter().map(|p| (p.clone(), p.len())).collect();
            let pb = SeqBatch::from_sequences(&seqs, 0, PadSide::Left, &dev)?;
            let mut cache = policy.new_cache();
            let mut mask = pb.attn_mask.clone();
            let mut step_logits =
                vec![policy.step_logits(&pb.ids, &pb.positions, &mask, &mut cache)?];
            for s in 0..3 {
                let ids: Vec<u32> = fed.iter().map(|f| f[s]).collect();
                let pos: Vec<u32> = prompts.iter().map(|p| (p.len() + s) as u32).collect();
                mask = Tensor::cat(&[&mask, &Tensor::ones((4, 1), DType::F32, &dev)?], 1)?;
                let ids = Tensor::from_vec(ids, (4, 1), &dev)?;
                let pos = Tensor::from_vec(pos, (4, 1), &dev)?;
                step_logits.push(policy.step_logits(&ids, &pos, &mask, &mut cache)?);
            }
            let cached = Tensor::cat(&step_logits, 1)?; // [B, T + 3, V]
            // Full recompute: prompts followed by the fed tokens, left-padded the same way.
            let full: Vec<(Vec<u32>, usize)> = prompts
                .iter()
                .zip(&fed)
                .map(|(p, f)| (p.iter().chain(f).copied().collect(), p.len()))
                .collect();
            let fb = SeqBatch::from_sequences(&full, 0, PadSide::Left, &dev)?;
            let recomputed = policy.logits(&fb)?;
            let diff = (cached - recomputed)?.abs()?;
            // Compare real positions only (pad rows' outputs are meaningless).
            let real = fb.attn_mask.unsqueeze(2)?.broadcast_as(diff.shape())?;
            let max = (diff * real)?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(
                max < 1e-5,
                "{:?}: cache vs recompute differ by {max}",
                cfg.arch
            );
        }
        Ok(())
    }

    /// Greedy decoding is deterministic, independent of batch size, and equals
    /// argmax of a full (cache-free) forward at each step.
    #[test]
    fn greedy_is_deterministic_and_matches_full_forward() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let policy = Policy::new_random(&tiny_llama(), None, 32, &dev)?;
        let mut cfg = SamplingConfig::greedy(6);
        let a = generate(&policy, &prompts(), &cfg)?;
        cfg.batch_size = 1;
        assert_eq!(a, generate(&policy, &prompts(), &cfg)?);
        for (prompt, out) in prompts().iter().zip(&a) {
            let mut seq = prompt.clone();
            let mut expected = Vec::new();
            for _ in 0..6 {
                let b =
                    SeqBatch::from_sequences(&[(seq.clone(), seq.len())], 0, PadSide::Right, &dev)?;
                let last = policy.logits(&b)?.squeeze(0)?.get(seq.len() - 1)?;
                let tok = last.argmax(0)?.to_scalar::<u32>()?;
                if tok == policy.config().eos_id {
                    break;
                }
                expected.push(tok);
                seq.push(tok);
            }
            assert_eq!(out, &expected);
        }
        Ok(())
    }

    /// A row stops at EOS (which is not returned) while the others go on.
    #[test]
    fn rows_stop_at_eos_independently() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let cfg = tiny_llama();
        let policy = Policy::new_random(&cfg, None, 33, &dev)?;
        let greedy = generate(&policy, &prompts(), &SamplingConfig::greedy(5))?;
        assert!(
            !greedy[0].is_empty(),
            "pick a seed whose first greedy token is not EOS"
        );
        // Same weights (seeds are per tensor name), EOS = the first token of prompt 0.
        let mut stop_cfg = cfg.clone();
        stop_cfg.eos_id = greedy[0][0];
        let stopping = Policy::new_random(&stop_cfg, None, 33, &dev)?;
        let out = generate(&stopping, &prompts(), &SamplingConfig::greedy(5))?;
        assert!(out[0].is_empty());
        assert!(
            out.iter().any(|o| !o.is_empty()),
            "every row stopped at once"
        );
        for (o, g) in out.iter().zip(&greedy) {
            assert!(!o.contains(&stop_cfg.eos_id));
            // Both are the same greedy path until one of them meets its EOS.
            let common = o.len().min(g.len());
            assert_eq!(o[..common], g[..common]);
            if let Some(cut) = g.iter().position(|&t| t == stop_cfg.eos_id) {
                assert_eq!(o.len(), cut);
            }
        }
        Ok(())
    }

    #[test]
    fn same_seed_same_samples_other_seed_other_samples() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let policy = Policy::new_random(&tiny_opt(), None, 34, &dev)?;
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_p: 0.95,
            max_new_tokens: 8,
            batch_size: 4,
            seed: 5,
        };
        let a = generate(&policy, &prompts(), &cfg)?;
        assert_eq!(
            a,
            generate(
                &policy,
                &prompts(),
                &SamplingConfig {
                    batch_size: 2,
                    ..cfg.clone()
                }
            )?
        );
        let b = generate(
            &policy,
            &prompts(),
            &SamplingConfig {
                seed: 6,
                ..cfg.clone()
            },
        )?;
        assert_ne!(a, b);
        assert!(a.iter().all(|s| s.len() <= 8));
        Ok(())
    }

    /// Resumed after its first batch (the outputs a checkpoint kept), the
    /// loop gives an uninterrupted run's outputs and reports each batch.
    #[test]
    fn generation_resumed_after_whole_batches_matches_one_run() -> anyhow::Result<()> {
        let policy = Policy::new_random(&tiny_opt(), None, 34, &Device::Cpu)?;
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 6,
            batch_size: 2,
            seed: 3,
        };
        let prompts = prompts();
        let whole = generate(&policy, &prompts, &cfg)?;
        let mut seen = Vec::new();
        let resumed = generate_resuming(
            &policy,
            &prompts,
            &cfg,
            whole[..2].to_vec(),
            &mut |so_far| {
                seen.push(so_far.len());
                Ok(())
            },
        )?;
        assert_eq!(resumed, whole);
        assert_eq!(seen, [4], "one batch left of two");
        // Half a batch is not a place a checkpoint saves at.
        assert!(
            generate_resuming(
                &policy,
                &prompts,
                &cfg,
                whole[..1].to_vec(),
                &mut |_| Ok(())
            )
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() -> anyhow::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Probabilities ≈ [0.64, 0.24, 0.09, 0.03]: top_p 0.8 keeps ids 0 and 1.
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[choose_token(&logits, 1.0, 0.8, &mut rng)? as usize] += 1;
        }
        assert!(
            seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0,
            "{seen:?}"
        );
        assert_eq!(choose_token(&logits, 0.0, 1.0, &mut rng)?, 0);
        assert!(choose_token(&[0.0, f32::NAN], 1.0, 1.0, &mut rng).is_err());
        Ok(())
    }
}
