//! Where tensors live: `--device cpu | cuda | cuda:N`.
//!
//! Every stage takes its device as a parameter; the same code paths run on the
//! CPU and, when `sweep` is built with the `cuda` cargo feature
//! (`scripts/build-cuda.sh`), on an NVIDIA GPU. A [`DeviceSpec`] is the parsed,
//! canonical form of what the user wrote: stage records store its `Display`
//! (`cpu`, `cuda:0`) so a report says where a number was computed, while stage
//! keys leave it out (a CPU-trained weak model is still the same weak model).
//! See docs/cuda.md for building and running on a GPU machine.
use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};
use candle_core::{DType, Device};

/// The forms a device may be written in, for error messages.
const EXPECTED_FORMS: &str = "`cpu`, `cuda` (the same as `cuda:0`) or `cuda:N` with N a GPU ordinal as `nvidia-smi` lists it";

/// A device as the user named it, checked but not yet opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    Cpu,
    /// An NVIDIA GPU by its CUDA ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    /// Parses `cpu`, `cuda` or `cuda:N` (case-insensitive, surrounding spaces ignored).
    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let lower = spec.trim().to_ascii_lowercase();
        match lower.as_str() {
            "" => bail!("empty device: expected {EXPECTED_FORMS}"),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match lower.strip_prefix("cuda:") {
                Some(ordinal) => ordinal.parse::<usize>().map(Self::Cuda).map_err(|_| {
                    anyhow::anyhow!(
                        "bad GPU ordinal `{ordinal}` in device `{spec}`: expected {EXPECTED_FORMS}"
                    )
                }),
                None => bail!("unknown device `{spec}`: expected {EXPECTED_FORMS}"),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    /// The canonical spelling, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device: initialises the CUDA context, cuBLAS and cuRAND for a GPU.
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(_) if !cfg!(feature = "cuda") => bail!(
                "device `{self}`: sweep was built without the `cuda` feature: rebuild with \
                 scripts/build-cuda.sh build (docs/cuda.md), or use --device cpu"
            ),
            Self::Cuda(ordinal) => Device::new_cuda(ordinal).with_context(|| {
                format!(
                    "could not open device `{self}`: check that `nvidia-smi` lists GPU {ordinal} \
                     and that libcuda.so.1 and libcublas.so.13 are found (LD_LIBRARY_PATH, \
                     see docs/cuda.md)"
                )
            }),
        }
    }

    /// The spec of an opened device (Metal, which sweep never opens, reads as `cpu`).
    pub fn of(device: &Device) -> Self {
        match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Self::Cuda(gpu_id),
            _ => Self::Cpu,
        }
    }

    /// The dtype that matrix work should run in on this device: bf16 on a GPU
    /// (tensor cores; training keeps f32 master weights and casts per step),
    /// f32 on the CPU, where bf16 is emulated and slower than f32. Models
    /// apply it through `model::Precision::for_device`.
    pub fn compute_dtype(self) -> DType {
        match self {
            Self::Cpu => DType::F32,
            Self::Cuda(_) => DType::BF16,
        }
    }
}

/// Parses and opens a device: `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> anyhow::Result<Device> {
    spec.parse::<DeviceSpec>()?.open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_spelling() {
        let cases = [
            ("cpu", DeviceSpec::Cpu),
            (" CPU ", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("CUDA:3", DeviceSpec::Cuda(3)),
            ("cuda:12", DeviceSpec::Cuda(12)),
        ];
        for (text, want) in cases {
            assert_eq!(
                text.parse::<DeviceSpec>().unwrap(),
                want,
                "parsing `{text}`"
            );
        }
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for spec in [DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(7)] {
            let text = spec.to_string();
            assert_eq!(
                text.parse::<DeviceSpec>().unwrap(),
                spec,
                "round trip of `{text}`"
            );
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap().to_string(), "cuda:0");
        assert_eq!(" Cpu".parse::<DeviceSpec>().unwrap().to_string(), "cpu");
    }

    #[test]
    fn rejects_malformed_specs_naming_the_input_and_the_valid_forms() {
        for bad in [
            "", "  ", "gpu", "cuda0", "cuda:", "cuda:-1", "cuda:x", "cuda:0:1", "metal",
        ] {
            let message = format!("{:#}", bad.parse::<DeviceSpec>().unwrap_err());
            assert!(message.contains("`cuda:N`"), "`{bad}`: {message}");
            if !bad.trim().is_empty() {
                assert!(message.contains(&format!("`{bad}`")), "`{bad}`: {message}");
            }
        }
    }

    #[test]
    fn cpu_opens_the_cpu_device() {
        let device = parse_device("cpu").unwrap();
        assert!(device.is_cpu());
        assert_eq!(DeviceSpec::Cpu.compute_dtype(), DType::F32);
        assert_eq!(DeviceSpec::Cuda(0).compute_dtype(), DType::BF16);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let message = format!("{:#}", parse_device("cuda:1").unwrap_err());
        assert!(message.contains("`cuda:1`"), "{message}");
        assert!(
            message.contains("built without the `cuda` feature"),
            "{message}"
        );
        assert!(message.contains("scripts/build-cuda.sh"), "{message}");
    }

    /// No machine has 4096 GPUs: opening one must fail with our hint, not panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_with_a_missing_ordinal_names_it() {
        let message = format!("{:#}", parse_device("cuda:4096").unwrap_err());
        assert!(message.contains("`cuda:4096`"), "{message}");
        assert!(message.contains("nvidia-smi"), "{message}");
    }
}

/// CPU-vs-GPU parity of the operations a language model's log-probs and a DPO
/// step are made of. Built with `--features cuda`; they run on a GPU machine
/// (scripts/gpu-check.sh runs the carried test binary with `--ignored`).
#[cfg(all(test, feature = "cuda"))]
mod gpu_parity {
    use candle_core::{D, DType, Device, Tensor, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const VOCAB: usize = 512;
    const HIDDEN: usize = 64;
    const TOKENS: usize = 32;
    const SEQS: usize = 4;

    fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let values = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// A two-matrix toy LM: per-token log-prob of each next token, [SEQS, TOKENS].
    /// Weights are cast to `dtype` for the matrix work; log-softmax runs in f32,
    /// as the model code does.
    fn token_logprobs(embed: &Tensor, head: &Tensor, ids: &Tensor, dtype: DType) -> Tensor {
        let hidden = embed.embedding(&ids.flatten_all().unwrap()).unwrap(); // [S*T, H]
        let hidden = hidden.to_dtype(dtype).unwrap().silu().unwrap();
        let logits = hidden.matmul(&head.to_dtype(dtype).unwrap()).unwrap(); // [S*T, V]
        let logits = logits.to_dtype(DType::F32).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let next = ids.flatten_all().unwrap().unsqueeze(1).unwrap(); // toy target: the token itself
        logp.gather(&next, 1)
            .unwrap()
            .reshape((SEQS, TOKENS))
            .unwrap()
    }

    /// The same toy weights and batch on the CPU and on `cuda:0`.
    fn setup(device: &Device) -> (Var, Tensor, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let embed = random(&mut rng, &[VOCAB, HIDDEN], 1.0);
        let head = random(&mut rng, &[HIDDEN, VOCAB], 0.3);
        let ids: Vec<u32> = (0..SEQS * TOKENS)
            .map(|_| rng.random_range(0..VOCAB as u32))
            .collect();
        let ids = Tensor::from_vec(ids, (SEQS, TOKENS), &Device::Cpu).unwrap();
        let head = Var::from_tensor(&head.to_device(device).unwrap()).unwrap();
        (
            head,
            embed.to_device(device).unwrap(),
            ids.to_device(device).unwrap(),
        )
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let b = b.to_device(&Device::Cpu).unwrap();
        a.sub(&b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// f32 on both devices: cuBLAS and the CPU gemm differ only in summation
    /// order (candle keeps TF32 off by default), so per-token log-probs agree to
    /// ~1e-6 relative; 1e-4 absolute leaves room for a 512-way log-sum-exp.
    /// bf16 matrix work keeps 8 mantissa bits (relative error 2^-9 per product,
    /// logits of size ~5): 0.1 absolute per token.
    #[test]
    #[ignore = "needs an NVIDIA GPU: run by scripts/gpu-check.sh"]
    fn logprobs_agree_between_cpu_and_gpu() {
        let gpu = super::parse_device("cuda:0").unwrap();
        let (head_c, embed_c, ids_c) = setup(&Device::Cpu);
        let (head_g, embed_g, ids_g) = setup(&gpu);
        let cpu = token_logprobs(&embed_c, head_c.as_tensor(), &ids_c, DType::F32);
        let f32_gpu = token_logprobs(&embed_g, head_g.as_tensor(), &ids_g, DType::F32);
        let bf16_gpu = token_logprobs(&embed_g, head_g.as_tensor(), &ids_g, DType::BF16);
        let (d32, d16) = (max_abs_diff(&cpu, &f32_gpu), max_abs_diff(&cpu, &bf16_gpu));
        println!("max |logp_cpu - logp_gpu|: f32 {d32:.3e}, bf16 {d16:.3e}");
        assert!(d32 < 1e-4, "f32 log-probs differ by {d32}");
        assert!(d16 < 0.1, "bf16 log-probs differ by {d16}");
    }

    /// One DPO step (rows 0,1 chosen vs rows 2,3 rejected; the reference model
    /// is the policy with its head scaled by 0.9, frozen) gives the same loss
    /// and head gradient on both devices in f32.
    #[test]
    #[ignore = "needs an NVIDIA GPU: run by scripts/gpu-check.sh"]
    fn dpo_loss_and_gradient_agree_between_cpu_and_gpu() {
        let gpu = super::parse_device("cuda:0").unwrap();
        let run = |device: &Device| {
            let (head, embed, ids) = setup(device);
            let reference_head = head.as_tensor().affine(0.9, 0.0).unwrap().detach();
            let policy = token_logprobs(&embed, head.as_tensor(), &ids, DType::F32);
            let reference = token_logprobs(&embed, &reference_head, &ids, DType::F32);
            let margin = (policy - reference).unwrap().sum(1).unwrap(); // [S]
            let chosen = margin.narrow(0, 0, 2).unwrap(); // [2]
            let rejected = margin.narrow(0, 2, 2).unwrap(); // [2]
            let logits = ((chosen - rejected).unwrap() * 0.1).unwrap();
            let loss = candle_nn::ops::sigmoid(&logits)
                .unwrap()
                .log()
                .unwrap()
                .neg()
                .unwrap();
            let loss = loss.mean_all().unwrap();
            let grads = loss.backward().unwrap();
            let grad = grads
                .get(head.as_tensor())
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap();
            (
                loss.to_device(&Device::Cpu)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                grad,
            )
        };
        let (loss_cpu, grad_cpu) = run(&Device::Cpu);
        let (loss_gpu, grad_gpu) = run(&gpu);
        assert!(
            loss_cpu.is_finite() && loss_gpu.is_finite(),
            "loss {loss_cpu} / {loss_gpu}"
        );
        let grad_diff = max_abs_diff(&grad_cpu, &grad_gpu);
        println!("DPO loss cpu {loss_cpu:.6} gpu {loss_gpu:.6}; max |grad diff| {grad_diff:.3e}");
        assert!(
            (loss_cpu - loss_gpu).abs() < 1e-5,
            "loss {loss_cpu} vs {loss_gpu}"
        );
        assert!(grad_diff < 1e-5, "gradients differ by {grad_diff}");
    }
}
