//! Models for the training tests.
//!
//! The loops train the real decoder ([`tiny_policy`], [`tiny_reward_model`]).
//! Gradient checks need f64 and exactness the real decoder (f32) does not
//! offer, so they use [`TinyCausalModel`], a two-layer causal model: token
//! embedding, a causal mean-pool of the prefix added to the current token's
//! embedding, one tanh layer, then an LM head (for [`LanguageModel`]) and a
//! scalar head read at the last real token (for [`ScalarScorer`]). Its
//! weights come from a seeded ChaCha8 generator; [`check_gradients`]
//! compares backprop with central finite differences.
use candle_core::{D, DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{LanguageModel, ResponseLogProbs, ScalarScorer, SeqBatch};

pub struct TinyCausalModel {
    /// [V, D]
    embed: Var,
    /// [D, H]
    w1: Var,
    /// [H]
    b1: Var,
    /// [H, V]
    lm_head: Var,
    /// [H]
    score_head: Var,
}

/// A Var of `shape` with entries uniform in [−scale, scale].
fn uniform(
    rng: &mut ChaCha8Rng,
    shape: &[usize],
    scale: f64,
    dtype: DType,
    dev: &Device,
) -> Result<Var> {
    let n = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * scale)
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)
}

impl TinyCausalModel {
    pub fn new(vocab: usize, dim: usize, hidden: usize, seed: u64, dtype: DType) -> Result<Self> {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(Self {
            embed: uniform(&mut rng, &[vocab, dim], 1.0, dtype, &dev)?,
            w1: uniform(
                &mut rng,
                &[dim, hidden],
                1.0 / (dim as f64).sqrt(),
                dtype,
                &dev,
            )?,
            b1: uniform(&mut rng, &[hidden], 0.1, dtype, &dev)?,
            lm_head: uniform(
                &mut rng,
                &[hidden, vocab],
                1.0 / (hidden as f64).sqrt(),
                dtype,
                &dev,
            )?,
            score_head: uniform(
                &mut rng,
                &[hidden],
                1.0 / (hidden as f64).sqrt(),
                dtype,
                &dev,
            )?,
        })
    }

    fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Hidden state of every position, seeing only itself and its prefix. [B, T, H]
    fn hidden(&self, batch: &SeqBatch) -> Result<Tensor> {
        let (b, t) = batch.ids.dims2()?;
        let dim = self.embed.dims()[1];
        let emb = self
            .embed
            .index_select(&batch.ids.flatten_all()?, 0)?
            .reshape((b, t, dim))?; // [B, T, D]
        let mask = batch.attn_mask.to_dtype(self.dtype())?.unsqueeze(2)?; // [B, T, 1]
        let causal = Tensor::tril2(t, self.dtype(), emb.device())?; // [T, T]
        let prefix_sum = causal.broadcast_matmul(&emb.broadcast_mul(&mask)?)?; // [B, T, D]
        let prefix_len = causal.broadcast_matmul(&mask)?.clamp(1.0, f64::MAX)?; // [B, T, 1]
        let x = (prefix_sum.broadcast_div(&prefix_len)? + emb)?; // [B, T, D]
        x.broadcast_matmul(&self.w1)?
            .broadcast_add(&self.b1)?
            .tanh() // [B, T, H]
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.embed.clone(),
            self.w1.clone(),
            self.b1.clone(),
            self.lm_head.clone(),
            self.score_head.clone(),
        ]
    }
}

impl LanguageModel for TinyCausalModel {
    fn response_logprobs(&self, batch: &SeqBatch) -> Result<ResponseLogProbs> {
        let (_, t) = batch.ids.dims2()?;
        let logits = self.hidden(batch)?.broadcast_matmul(&self.lm_head)?; // [B, T, V]
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?; // [B, T, V]
        // Position t−1 predicts token t.
        let predicted = logp.narrow(1, 0, t - 1)?; // [B, T-1, V]
        let next = batch.ids.narrow(1, 1, t - 1)?.unsqueeze(2)?.contiguous()?; // [B, T-1, 1]
        let token_logp = predicted.contiguous()?.gather(&next, 2)?.squeeze(2)?; // [B, T-1]
        let target = batch
            .target_mask
            .narrow(1, 1, t - 1)?
            .to_dtype(self.dtype())?; // [B, T-1]
        Ok(ResponseLogProbs {
            sum: (token_logp * &target)?.sum(1)?, // [B]
            count: target.sum(1)?,                // [B]
        })
    }

    fn trainable_vars(&self) -> Vec<Var> {
        self.vars()
    }
}

impl ScalarScorer for TinyCausalModel {
    fn scores(&self, batch: &SeqBatch) -> Result<Tensor> {
        let per_position = self
            .hidden(batch)?
            .broadcast_matmul(&self.score_head.unsqueeze(1)?)?
            .squeeze(2)?; // [B, T]
        let last = batch.last_index.unsqueeze(1)?; // [B, 1]
        per_position.gather(&last, 1)?.squeeze(1) // [B]
    }

    fn trainable_vars(&self) -> Vec<Var> {
        self.vars()
    }
}

/// Compares backprop gradients of `loss` with central finite differences,
/// in f64, on `per_var` entries of every variable (entries picked by a seeded
/// generator). Panics with the variable, entry and both values on mismatch.
pub fn check_gradients(
    vars: &[Var],
    per_var: usize,
    loss: &dyn Fn() -> anyhow::Result<Tensor>,
) -> anyhow::Result<()> {
    let grads = loss()?.backward()?;
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let eps = 1e-6;
    let mut checked_nonzero = 0;
    for (v, var) in vars.iter().enumerate() {
        assert_eq!(var.dtype(), DType::F64, "gradient checks run in f64");
        let shape = var.shape().clone();
        let original = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let analytic = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; original.len()],
        };
        for _ in 0..per_var {
            let i = rng.random_range(0..original.len());
            let at = |delta: f64| -> anyhow::Result<f64> {
                let mut values = original.clone();
                values[i] += delta;
                var.set(&Tensor::from_vec(values, &shape, var.device())?)?;
                Ok(loss()?.to_scalar::<f64>()?)
            };
            let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
            var.set(&Tensor::from_vec(original.clone(), &shape, var.device())?)?;
            let tol = 1e-6 + 1e-4 * numeric.abs().max(analytic[i].abs());
            assert!(
                (numeric - analytic[i]).abs() <= tol,
                "variable {v}, entry {i}: backprop {} vs finite difference {numeric}",
                analytic[i]
            );
            if numeric.abs() > 1e-8 {
                checked_nonzero += 1;
            }
        }
    }
    assert!(
        checked_nonzero > 0,
        "every checked gradient was zero: the check tested nothing"
    );
    Ok(())
}

/// [`check_gradients`] (6 entries per variable) of a batch loss over all
/// of `items`, for a fresh f64 [`TinyCausalModel`] seeded by `seed` and
/// [`test_batching`].
pub fn check_batch_loss_gradients<T>(
    seed: u64,
    items: &[T],
    batch_loss: impl Fn(&TinyCausalModel, &crate::train::Batching, &[&T]) -> anyhow::Result<Tensor>,
) -> anyhow::Result<()> {
    let model = TinyCausalModel::new(16, 6, 5, seed, DType::F64)?;
    let rows: Vec<&T> = items.iter().collect();
    let batching = test_batching();
    check_gradients(&model.vars(), 6, &|| batch_loss(&model, &batching, &rows))
}

/// CPU batches padded with id 0 and cut at 32 tokens: the batching of the
/// loss and gradient tests.
pub fn test_batching() -> crate::train::Batching {
    crate::train::Batching {
        pad_id: 0,
        max_len: 32,
        device: Device::Cpu,
    }
}

/// The real decoder (2-layer Llama of `testing::tiny_llama`, vocab 37,
/// pad 0) with an LM head: what the training-loop tests train.
pub fn tiny_policy(seed: u64) -> anyhow::Result<crate::model::Policy> {
    crate::model::Policy::new_random(&crate::testing::tiny_llama(), None, seed, &Device::Cpu)
}

/// The same decoder with a scalar reward head.
pub fn tiny_reward_model(seed: u64) -> anyhow::Result<crate::model::RewardModel> {
    crate::model::RewardModel::new_random(&crate::testing::tiny_llama(), None, seed, &Device::Cpu)
}
