//! LoRA: low-rank adapters on the linear projections.
//!
//! A targeted projection computes `y = x Wᵀ + b + (α/r) · dropout(x) Aᵀ Bᵀ`
//! with A: [r, in] seeded random and B: [out, r] zero, so a fresh adapter
//! leaves the model unchanged. With LoRA on, only A and B are trainable (and
//! a reward model's score head); every base weight is frozen. Parameter names
//! follow PEFT: `<projection>.lora_A.weight`, `<projection>.lora_B.weight`.
//!
//! Dropout masks come from one seeded ChaCha8 stream per model (candle's own
//! RNG cannot be seeded) and apply only in training mode.
//!
//! A and B are trainable, so they live in the master dtype (f32) and the
//! adapter computes in it whatever the base model computes in (bf16 on a
//! GPU): the input is cast up, the (rank-r, cheap) product cast back down.
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Result, Tensor};
use candle_nn::Init;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::params::ParamBuilder;

/// Projections LoRA can target (HF names of the Llama and OPT linears).
pub const LORA_TARGETS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "fc1",
    "fc2",
    "out_proj",
];

/// Name of the file `save_adapters` writes.
pub const ADAPTERS_FILE: &str = "adapters.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r of the update B·A.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by alpha / rank.
    pub alpha: f64,
    /// Dropout probability on the adapter's input (training mode only).
    pub dropout: f64,
    /// Projection names to adapt, e.g. `["q_proj", "v_proj"]`.
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// Rejects a zero rank, a dropout outside [0, 1) and unknown targets.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.rank > 0, "lora.rank must be at least 1, got 0");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "lora.dropout must be in [0, 1), got {}",
            self.dropout
        );
        anyhow::ensure!(
            !self.targets.is_empty(),
            "lora.targets is empty: name at least one of {LORA_TARGETS:?}"
        );
        for t in &self.targets {
            anyhow::ensure!(
                LORA_TARGETS.contains(&t.as_str()),
                "lora.targets: unknown projection `{t}`; valid ones are {LORA_TARGETS:?}"
            );
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    pub fn targets(&self, projection: &str) -> bool {
        self.targets.iter().any(|t| t == projection)
    }
}

/// Train/eval switch and dropout stream shared by every adapter of one model.
#[derive(Debug)]
pub struct DropoutState {
    training: AtomicBool,
    rng: Mutex<ChaCha8Rng>,
}

impl DropoutState {
    /// Starts in eval mode (no dropout).
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            training: AtomicBool::new(false),
            rng: Mutex::new(Self::rng(seed)),
        })
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed ^ 0x4c6f_5241_4472_6f70)
    }

    /// Restarts the dropout stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().expect("dropout rng poisoned") = Self::rng(seed);
    }

    pub fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    /// Where the stream stands: its seed and how many 32-bit words it has
    /// given out. A training checkpoint saves it so a resumed run draws the
    /// same masks an uninterrupted one would.
    pub fn position(&self) -> ([u8; 32], u128) {
        let rng = self.rng.lock().expect("dropout rng poisoned");
        (rng.get_seed(), rng.get_word_pos())
    }

    /// Moves the stream to a position taken by [`Self::position`] of a
    /// stream with the same seed.
    pub fn seek(&self, word_pos: u128) {
        self.rng
            .lock()
            .expect("dropout rng poisoned")
            .set_word_pos(word_pos);
    }

    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Inverted-dropout mask of `n` values: 0 with probability p, 1/(1-p) otherwise.
    fn mask(&self, n: usize, p: f64) -> Vec<f32> {
        let keep = (1.0 / (1.0 - p)) as f32;
        let mut rng = self.rng.lock().expect("dropout rng poisoned");
        (0..n)
            .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
            .collect()
    }
}

/// What a model build needs to attach adapters.
#[derive(Debug, Clone)]
pub struct LoraContext {
    pub config: LoraConfig,
    pub dropout: Arc<DropoutState>,
}

/// One adapter: the pair (A, B) on one projection.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// [r, in]
    a: Tensor,
    /// [out, r]
    b: Tensor,
    scale: f64,
    dropout_p: f64,
    dropout: Arc<DropoutState>,
    /// Full parameter names of A and B.
    pub(crate) names: [String; 2],
}

impl LoraAdapter {
    /// Loads or initialises `lora_A` / `lora_B` under `pb` (the projection's prefix).
    pub fn load(
        pb: &ParamBuilder,
        in_dim: usize,
        out_dim: usize,
        ctx: &LoraContext,
    ) -> Result<Self> {
        let r = ctx.config.rank;
        let bound = 1.0 / (in_dim as f64).sqrt();
        let pa = pb.pp("lora_A");
        let pbb = pb.pp("lora_B");
        let a = pa.param(
            (r, in_dim),
            "weight",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
            true,
        )?;
        let b = pbb.param((out_dim, r), "weight", Init::Const(0.0), true)?;
        Ok(Self {
            a,
            b,
            scale: ctx.config.scale(),
            dropout_p: ctx.config.dropout,
            dropout: ctx.dropout.clone(),
            names: [pa.full_name("weight"), pbb.full_name("weight")],
        })
    }

    /// The adapter's contribution for input x: [N, in] → [N, out], in x's
    /// dtype, computed in the adapter's.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out_dtype = x.dtype();
        let x = &x.to_dtype(self.a.dtype())?;
        let x = if self.dropout_p > 0.0 && self.dropout.is_training() {
            let mask = self.dropout.mask(x.elem_count(), self.dropout_p);
            let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
            (x * mask)?
        } else {
            x.clone()
        };
        let low = x.matmul(&self.a.t()?)?; // [N, r]
        (low.matmul(&self.b.t()?)? * self.scale)?.to_dtype(out_dtype) // [N, out]
    }

    /// The equivalent dense update (α/r)·B·A: [out, in].
    pub fn delta_weight(&self) -> Result<Tensor> {
        self.b.matmul(&self.a)?.detach() * self.scale
    }
}
