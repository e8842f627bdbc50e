//! Mixed precision: which numbers a model keeps and computes in which dtype.
//!
//! A [`Precision`] has two dtypes:
//! - `master`: the trainable parameters (LoRA adapters, a reward model's score
//!   head, every weight of a full fine-tune). The optimiser updates them and
//!   keeps its state in this dtype, so small updates are not rounded away.
//! - `compute`: the activations and the matrix work of the forward and
//!   backward passes, and the storage of frozen parameters (the base weights
//!   under LoRA), which are loaded straight into it: half the memory in bf16.
//!
//! In mixed bf16 ([`Precision::BF16`]) layers cast each trainable weight to
//! bf16 where it is used; that cast is differentiable, so gradients reach the
//! f32 master weights in f32. Some work stays in f32 whatever `compute` is:
//! the LoRA adapters' own matmuls (rank r, cheap, and their updates start
//! from zero), norms and softmax ([`super::ops`]), the log-softmax of the LM
//! logits, response log-prob sums, reward scores and every loss: a DPO
//! margin is a difference of sums of hundreds of log-probs, which bf16's
//! 8 mantissa bits would swamp.
//!
//! With `master == compute` every cast is a no-op: f32 computes exactly what
//! it computed before mixed precision existed (pinned by the tests below).
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Result, Tensor};

use crate::device::DeviceSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Precision {
    /// dtype of trainable parameters and optimiser state.
    pub master: DType,
    /// dtype of activations, matrix work and frozen parameters.
    pub compute: DType,
}

impl Precision {
    /// Everything in f32: the CPU default.
    pub const F32: Self = Self::uniform(DType::F32);
    /// bf16 compute with f32 master weights: the GPU default.
    pub const BF16: Self = Self {
        master: DType::F32,
        compute: DType::BF16,
    };

    /// One dtype for everything (f64 for gradient checks).
    pub const fn uniform(dtype: DType) -> Self {
        Self {
            master: dtype,
            compute: dtype,
        }
    }

    /// The default on `device` for a model whose parameters come in
    /// `master`: mixed bf16 on a GPU when `master` is f32 (tensor cores),
    /// `master` throughout otherwise (bf16 is emulated on the CPU and slower
    /// than f32 there; see `DeviceSpec::compute_dtype`).
    pub fn for_device(device: &Device, master: DType) -> Self {
        match master {
            DType::F32 => Self {
                master,
                compute: DeviceSpec::of(device).compute_dtype(),
            },
            _ => Self::uniform(master),
        }
    }

    /// Where a parameter lives: trainable ones in `master`, frozen ones in `compute`.
    pub fn storage(&self, trainable: bool) -> DType {
        if trainable { self.master } else { self.compute }
    }

    /// The dtype sums of log-probs, scores and losses are reported in: f32
    /// for half-precision compute, the compute dtype otherwise (f64 stays f64).
    pub fn reduction(&self) -> DType {
        match self.compute {
            DType::F16 | DType::BF16 => DType::F32,
            dtype => dtype,
        }
    }
}

impl fmt::Display for Precision {
    /// `f32`, `bf16` (mixed: f32 master weights) or `master/compute`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::F32 => write!(f, "f32"),
            Self::BF16 => write!(f, "bf16"),
            Self { master, compute } if master == compute => write!(f, "{}", master.as_str()),
            Self { master, compute } => write!(f, "{}/{}", master.as_str(), compute.as_str()),
        }
    }
}

impl FromStr for Precision {
    type Err = anyhow::Error;

    /// `f32` or `bf16` (bf16 compute with f32 master weights), as `--dtype` takes them.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            _ => anyhow::bail!(
                "unknown dtype `{text}`: expected `f32` or `bf16` (bf16 compute with f32 master weights)"
            ),
        }
    }
}

/// `weight` in the dtype of the activations `x` it multiplies (a no-op when
/// they agree; differentiable, so a trainable f32 weight gets its gradient).
pub fn cast_like(weight: &Tensor, x: &Tensor) -> Result<Tensor> {
    weight.to_dtype(x.dtype())
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::Precision;
    use crate::model::init::init_values;
    use crate::model::{LanguageModel, LoraConfig, Policy, fused};
    use crate::testing::{tiny_llama, tiny_qwen3};
    use crate::train::po::{PoData, po_batch_loss, reference_logprobs, train_po};
    use crate::train::{Batching, LoopRun, PreferenceObjective, TokenizedPair, TrainConfig};

    /// Six seeded pairs in the tiny vocabulary (ids 3..37; 0 is pad, 2 EOS).
    fn pairs() -> Vec<TokenizedPair> {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let mut ids = |n: usize| {
            (0..n)
                .map(|_| rng.random_range(3..37u32))
                .collect::<Vec<_>>()
        };
        (0..6)
            .map(|i| TokenizedPair {
                prompt: ids(4 + i % 3),
                chosen: ids(5 + i % 2),
                rejected: ids(3 + i % 4),
            })
            .collect()
    }

    fn lora() -> LoraConfig {
        LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            targets: ["q_proj", "v_proj", "up_proj", "down_proj"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// DPO against `reference` for `steps` optimiser steps of 2 pairs: the
    /// loss of each step and Σ of every trainable value afterwards.
    fn dpo_trace(reference: &Policy, policy: &Policy, steps: usize) -> (Vec<f64>, f64) {
        let pairs = &pairs()[..2 * steps];
        let config = TrainConfig {
            epochs: 1,
            batch_size: 2,
            lr: 1e-2,
            ..TrainConfig::default()
        };
        let batching = Batching::for_training(0, &config, &Device::Cpu);
        let reference = reference_logprobs(reference, pairs, &batching, 3).unwrap();
        let weights = vec![1.0; pairs.len()];
        let data = PoData {
            pairs,
            reference: &reference,
            weights: &weights,
        };
        let objective = PreferenceObjective::dpo(0.5);
        let report = train_po(
            policy,
            &data,
            &objective,
            LoopRun::quiet(&config, 0, &Device::Cpu),
        )
        .unwrap();
        let total = policy
            .trainable_vars()
            .iter()
            .map(|v| v.as_tensor().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64)
            .sum();
        (report.losses, total)
    }

    /// The f32 trace of three DPO steps (full fine-tune of a Llama, LoRA on
    /// a Qwen3; fused kernels off and on): per run, each step's loss and Σ of
    /// every trainable value afterwards, pinned from the code before mixed
    /// precision existed (commit 657dcbd): f32 must not change.
    ///
    /// The pins were recorded on one CPU; gemm picks its kernels (AVX2 or
    /// AVX-512) at run time, and those round differently in the last bits, so
    /// across machines the trace is compared to 1e-6 relative. On one machine
    /// it must be bit-identical from run to run (the determinism promise:
    /// same seed, same device, same numbers).
    #[test]
    fn f32_dpo_trace_is_pinned() {
        type Trace = (&'static [f64], f64);
        let pinned: [[Trace; 2]; 2] = [
            [
                (
                    &[0.6931471824645996, 0.6573056578636169, 0.7826223373413086],
                    80.57348657771945,
                ),
                (
                    &[0.6931471824645996, 0.6892470717430115, 0.6991864442825317],
                    -1.0101776104420424,
                ),
            ],
            [
                (
                    &[0.6931471824645996, 0.6573055982589722, 0.7826218605041504],
                    80.57349054142833,
                ),
                (
                    &[0.6931471824645996, 0.6892473101615906, 0.6991863250732422],
                    -1.0101775657385588,
                ),
            ],
        ];
        let reference = Policy::new_random(&tiny_llama(), None, 3, &Device::Cpu).unwrap();
        let base = Policy::new_random(&tiny_qwen3(), None, 4, &Device::Cpu).unwrap();
        for (fused_on, want) in [false, true].into_iter().zip(pinned) {
            fused::with_fused(fused_on, || {
                let full = reference.deep_clone().unwrap();
                let adapted = base.with_lora(&lora(), 5).unwrap();
                let got = [
                    dpo_trace(&reference, &full, 3),
                    dpo_trace(&base, &adapted, 3),
                ];
                let again = [
                    dpo_trace(&reference, &reference.deep_clone().unwrap(), 3),
                    dpo_trace(&base, &base.with_lora(&lora(), 5).unwrap(), 3),
                ];
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
                for (((losses, total), (want_losses, want_total)), (losses2, total2)) in
                    got.iter().zip(want).zip(&again)
                {
                    assert_eq!(losses, losses2, "fused {fused_on}: run-to-run losses");
                    assert_eq!(
                        total.to_bits(),
                        total2.to_bits(),
                        "fused {fused_on}: run-to-run Σ"
                    );
                    assert_eq!(losses.len(), want_losses.len());
                    for (l, w) in losses.iter().zip(want_losses) {
                        assert!(close(*l, *w), "fused {fused_on}: loss {l} vs pinned {w}");
                    }
                    assert!(
                        close(*total, want_total),
                        "fused {fused_on}: Σ {total} vs pinned {want_total}"
                    );
                }
            });
        }
    }

    /// The loss of one DPO micro-batch (all six pairs, β = 0.5, reference =
    /// `reference`) and the gradient of every trainable variable, flattened
    /// in `policy.trainable_vars()` order, in f64.
    fn dpo_loss_and_gradient(reference: &Policy, policy: &Policy) -> (f64, Vec<f64>) {
        let pairs = pairs();
        let batching = Batching {
            pad_id: 0,
            max_len: 64,
            device: Device::Cpu,
        };
        let reference = reference_logprobs(reference, &pairs, &batching, 6).unwrap();
        let weights = vec![1.0; pairs.len()];
        let data = PoData {
            pairs: &pairs,
            reference: &reference,
            weights: &weights,
        };
        let objective = PreferenceObjective::dpo(0.5);
        let all: Vec<usize> = (0..pairs.len()).collect();
        let loss = po_batch_loss(policy, &batching, &data, &objective, &all).unwrap();
        assert_eq!(loss.dtype(), DType::F32, "the loss is reduced in f32");
        let grads = loss.backward().unwrap();
        let gradient = policy
            .trainable_vars()
            .iter()
            .flat_map(|v| {
                let g = grads
                    .get(v.as_tensor())
                    .expect("every trainable var gets a gradient");
                assert_eq!(g.dtype(), DType::F32, "master gradients are f32");
                g.to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            })
            .collect();
        (loss.to_scalar::<f32>().unwrap() as f64, gradient)
    }

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    /// A policy that already differs from its reference (so the DPO loss and
    /// its gradient are not at their symmetric starting point), in f32.
    fn trained_apart(policy: Policy) -> Policy {
        let params = policy.backbone().params();
        for (name, var) in params.iter().filter(|(n, _)| params.is_trainable(n)) {
            let randn = candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.05,
            };
            let noise = init_values(9, name, var.shape(), randn).unwrap();
            let noise = Tensor::from_vec(noise, var.shape(), &Device::Cpu).unwrap();
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
        policy
    }

    /// One DPO step in mixed bf16 against the same step in f32, from the same
    /// weights, on CPU: a full fine-tune of a Llama and LoRA on a Qwen3. The
    /// loss agrees to 1e-2 relative and the gradient (the direction the
    /// master weights move in) to a cosine above 0.99; trainable variables
    /// and their gradients stay f32, frozen base weights are bf16.
    #[test]
    fn bf16_dpo_step_agrees_with_f32() {
        let reference = Policy::new_random(&tiny_llama(), None, 3, &Device::Cpu).unwrap();
        let base = Policy::new_random(&tiny_qwen3(), None, 4, &Device::Cpu).unwrap();
        let full = trained_apart(reference.deep_clone().unwrap());
        let adapted = trained_apart(base.with_lora(&lora(), 5).unwrap());
        for (name, reference, policy) in [("full", &reference, full), ("lora", &base, adapted)] {
            let mixed = policy.with_precision(Precision::BF16).unwrap();
            for (param, var) in mixed.backbone().params().iter() {
                let trainable = mixed.backbone().params().is_trainable(param);
                let want = if trainable { DType::F32 } else { DType::BF16 };
                assert_eq!(var.dtype(), want, "{name}: {param}");
            }
            let (loss32, grad32) = dpo_loss_and_gradient(reference, &policy);
            let (loss16, grad16) = dpo_loss_and_gradient(reference, &mixed);
            let relative = (loss16 - loss32).abs() / loss32.abs();
            let cos = cosine(&grad32, &grad16);
            println!(
                "{name}: loss f32 {loss32:.6} bf16 {loss16:.6} (rel {relative:.2e}), gradient cosine {cos:.5}"
            );
            assert!(relative < 1e-2, "{name}: loss {loss32} vs {loss16}");
            assert!(cos > 0.99, "{name}: gradient cosine {cos}");
        }
    }

    /// An inference-only copy stores every parameter in the compute dtype,
    /// trains nothing and computes the same log-probs: bit for bit in f32,
    /// to bf16 rounding in mixed bf16.
    #[test]
    fn frozen_copy_is_in_the_compute_dtype_and_computes_the_same() {
        let policy = Policy::new_random(&tiny_qwen3(), Some(&lora()), 6, &Device::Cpu).unwrap();
        let policy = trained_apart(policy);
        let same = policy.frozen().unwrap();
        assert!(same.trainable_vars().is_empty());
        let frozen = policy
            .with_precision(Precision::BF16)
            .unwrap()
            .frozen()
            .unwrap();
        assert!(frozen.trainable_vars().is_empty());
        assert_eq!(frozen.lora_config(), policy.lora_config());
        for (name, var) in frozen.backbone().params().iter() {
            assert_eq!(var.dtype(), DType::BF16, "{name}");
        }
        let batching = Batching {
            pad_id: 0,
            max_len: 64,
            device: Device::Cpu,
        };
        let pairs = pairs();
        let a = reference_logprobs(&policy, &pairs, &batching, 6).unwrap();
        assert_eq!(a, reference_logprobs(&same, &pairs, &batching, 6).unwrap());
        let b = reference_logprobs(&frozen, &pairs, &batching, 6).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let tolerance = 0.02 * x.chosen_count;
            assert!(
                (x.chosen_sum - y.chosen_sum).abs() < tolerance,
                "{x:?} vs {y:?}"
            );
            assert!(
                (x.rejected_sum - y.rejected_sum).abs() < tolerance,
                "{x:?} vs {y:?}"
            );
        }
    }

    #[test]
    fn precision_parses_and_prints_its_two_names() {
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!(" BF16".parse::<Precision>().unwrap(), Precision::BF16);
        assert_eq!(Precision::BF16.to_string(), "bf16");
        assert_eq!(Precision::uniform(DType::F64).to_string(), "f64");
        let message = "fp8".parse::<Precision>().unwrap_err().to_string();
        assert!(
            message.contains("`fp8`") && message.contains("`bf16`"),
            "{message}"
        );
        assert_eq!(
            Precision::for_device(&Device::Cpu, DType::F32),
            Precision::F32
        );
        assert_eq!(Precision::BF16.storage(true), DType::F32);
        assert_eq!(Precision::BF16.storage(false), DType::BF16);
        assert_eq!(Precision::BF16.reduction(), DType::F32);
    }
}
