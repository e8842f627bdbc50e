//! Differentiable building blocks, written from basic tensor ops.
//!
//! candle 0.11's fused kernels `candle_nn::ops::rms_norm`, `RmsNorm`,
//! `softmax_last_dim` and `rotary_emb::rope` have no backward pass: gradients
//! silently stop at them. Everything here is composed of ops whose backward
//! candle implements (checked by the finite-difference tests below).
//! Half-precision inputs are computed in f32 and cast back; a norm's weight
//! is cast to its input's dtype (an f32 master weight under bf16 compute).
//!
//! On CPU in f32/f64 the public functions run the equivalent fused kernels
//! of [`super::fused`] (same values, same gradients, far fewer ops); the
//! `*_composed` versions are the reference and the path for other devices.
use candle_core::{D, DType, Result, Tensor};

use super::fused;
use super::precision::cast_like;

/// Runs `f` in f32 when `x` is f16/bf16 (norms and softmax lose too much
/// precision in half types), in `x`'s own dtype otherwise.
fn in_full_precision(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

/// RMSNorm over the last dim: `x / sqrt(mean(x²) + eps) * weight`.
/// x: [..., D], weight: [D].
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let weight = &cast_like(weight, x)?;
    match fused::usable(x) {
        true => fused::rms_norm(x, weight, eps),
        false => rms_norm_composed(x, weight, eps),
    }
}

/// [`rms_norm`] from basic ops.
pub fn rms_norm_composed(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let normed = in_full_precision(x, |x| {
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?; // [..., 1]
        x.broadcast_div(&(mean_sq + eps)?.sqrt()?)
    })?;
    normed.broadcast_mul(weight)
}

/// LayerNorm over the last dim: `(x - mean) / sqrt(var + eps) * weight + bias`.
/// x: [..., D], weight and bias: [D].
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let (weight, bias) = (&cast_like(weight, x)?, &cast_like(bias, x)?);
    let normed = in_full_precision(x, |x| {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?; // [..., D]
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?; // [..., 1]
        centred.broadcast_div(&(var + eps)?.sqrt()?)
    })?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Softmax over the last dim.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match fused::usable(x) {
        true => fused::softmax_last_dim(x),
        false => softmax_composed(x),
    }
}

/// [`softmax_last_dim`] from basic ops. The row maximum is detached: softmax
/// is invariant to it, and its gradient would be zero up to rounding.
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    in_full_precision(x, |x| {
        let max = x.max_keepdim(D::Minus1)?.detach(); // [..., 1]
        let exp = x.broadcast_sub(&max)?.exp()?;
        exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
    })
}

/// softmax(scores + bias) over the last dim: attention probabilities.
/// scores: [B, H, S, T]; bias: [B, 1, S, T], 0 or −inf, shared by the heads.
pub fn biased_softmax(scores: &Tensor, bias: &Tensor) -> Result<Tensor> {
    match fused::usable(scores) {
        true => fused::biased_softmax(scores, bias),
        false => softmax_composed(&scores.broadcast_add(bias)?),
    }
}

/// log softmax(logits)[target] for each row: logits [..., V], targets [...] u32 → [...].
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let rows = logits.elem_count() / v;
    let out = match fused::usable(logits) {
        true => fused::token_logprobs(&logits.reshape((rows, v))?, &targets.flatten_all()?)?,
        false => token_logprobs_composed(&logits.reshape((rows, v))?, &targets.flatten_all()?)?,
    };
    out.reshape(targets.shape())
}

/// [`token_logprobs`] from basic ops; logits [N, V], targets [N].
pub fn token_logprobs_composed(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let picked = logits.gather(&targets.contiguous()?.unsqueeze(1)?, 1)?; // [N, 1]
    (picked - logsumexp_keepdim(logits)?)?.squeeze(1)
}

/// SwiGLU's gate: `silu(gate) · up`, element-wise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    match fused::usable(gate) {
        true => fused::swiglu(gate, up),
        false => swiglu_composed(gate, up),
    }
}

/// [`swiglu`] from basic ops.
pub fn swiglu_composed(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

/// log Σ exp(x) over the last dim, keeping it as size 1: [..., V] → [..., 1].
pub fn logsumexp_keepdim(x: &Tensor) -> Result<Tensor> {
    in_full_precision(x, |x| {
        let max = x.max_keepdim(D::Minus1)?.detach(); // [..., 1]
        let sum = x.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?;
        sum.log()?.broadcast_add(&max)
    })
}

/// Fails with a message naming `what` when `x` holds a NaN or an infinity.
/// (A host round trip: call it on small outputs, never inside the forward pass.)
pub fn ensure_finite(x: &Tensor, what: &str) -> Result<()> {
    let total = x
        .to_dtype(DType::F64)?
        .abs()?
        .sum_all()?
        .to_scalar::<f64>()?;
    if !total.is_finite() {
        candle_core::bail!(
            "{what} contains NaN or inf: the model diverged or a weight is corrupt \
             (lower the learning rate, or check the checkpoint)"
        );
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Checks d(f)/d(x) from backprop against central finite differences, in
    /// f64, at `probes` coordinates of `x` (spread over the tensor).
    pub(crate) fn check_gradient(
        x: &Var,
        probes: usize,
        f: &dyn Fn() -> Result<Tensor>,
    ) -> Result<()> {
        let y = f()?;
        let grads = y.backward()?;
        let analytic = grads
            .get(x.as_tensor())
            .expect("no gradient reached the probed tensor")
            .flatten_all()?
            .to_vec1::<f64>()?;
        let base = x.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let n = base.len();
        let h = 1e-5;
        for p in 0..probes.min(n) {
            let i = (p * 7919 + 3) % n;
            let mut perturbed = base.clone();
            perturbed[i] = base[i] + h;
            x.set(&Tensor::from_vec(perturbed.clone(), x.shape(), x.device())?)?;
            let up = f()?.to_scalar::<f64>()?;
            perturbed[i] = base[i] - h;
            x.set(&Tensor::from_vec(perturbed, x.shape(), x.device())?)?;
            let down = f()?.to_scalar::<f64>()?;
            x.set(&Tensor::from_vec(base.clone(), x.shape(), x.device())?)?;
            let numeric = (up - down) / (2.0 * h);
            let tol = 1e-6 + 1e-4 * numeric.abs().max(analytic[i].abs());
            assert!(
                (numeric - analytic[i]).abs() < tol,
                "gradient at flat index {i}: backprop {} vs finite difference {numeric}",
                analytic[i]
            );
        }
        Ok(())
    }

    fn var(shape: (usize, usize), seed: u64) -> Result<Var> {
        let values = crate::model::init::init_values(
            seed,
            "x",
            &shape.into(),
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(DType::F64)?;
        Var::from_tensor(&t)
    }

    /// A fixed, non-uniform projection so that the checked scalar depends on every output.
    fn weighted_sum(y: &Tensor) -> Result<Tensor> {
        let n = y.elem_count();
        let w: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
        let w = Tensor::from_vec(w, y.shape(), y.device())?.to_dtype(y.dtype())?;
        (y * w)?.sum_all()
    }

    #[test]
    fn rms_norm_gradients_match_finite_differences() -> Result<()> {
        fused::with_fused(true, || -> Result<()> {
            let x = var((3, 8), 1)?;
            let w = Var::from_tensor(&(var((1, 8), 2)?.as_tensor().squeeze(0)? + 1.0)?)?;
            let f = || weighted_sum(&rms_norm(x.as_tensor(), w.as_tensor(), 1e-6)?);
            check_gradient(&x, 24, &f)?;
            check_gradient(&w, 8, &f)
        })
    }

    #[test]
    fn layer_norm_gradients_match_finite_differences() -> Result<()> {
        let x = var((3, 8), 3)?;
        let w = Var::from_tensor(&var((1, 8), 4)?.as_tensor().squeeze(0)?)?;
        let b = Var::from_tensor(&var((1, 8), 5)?.as_tensor().squeeze(0)?)?;
        let f = || {
            weighted_sum(&layer_norm(
                x.as_tensor(),
                w.as_tensor(),
                b.as_tensor(),
                1e-5,
            )?)
        };
        check_gradient(&x, 24, &f)?;
        check_gradient(&w, 8, &f)?;
        check_gradient(&b, 8, &f)
    }

    #[test]
    fn softmax_and_logsumexp_gradients_match_finite_differences() -> Result<()> {
        fused::with_fused(true, || -> Result<()> {
            let x = var((4, 6), 6)?;
            check_gradient(&x, 24, &|| weighted_sum(&softmax_last_dim(x.as_tensor())?))?;
            check_gradient(&x, 24, &|| weighted_sum(&logsumexp_keepdim(x.as_tensor())?))?;
            let targets = Tensor::new(&[5u32, 0, 2, 3], &Device::Cpu)?;
            check_gradient(&x, 24, &|| {
                weighted_sum(&token_logprobs(x.as_tensor(), &targets)?)
            })?;
            check_gradient(&x, 24, &|| {
                weighted_sum(&token_logprobs_composed(x.as_tensor(), &targets)?)
            })?;
            let bias = Tensor::new(&[0f64, f64::NEG_INFINITY, 0., 0., 0., 0.], &Device::Cpu)?
                .reshape((1, 1, 1, 6))?;
            let x4 = || x.as_tensor().reshape((1, 4, 1, 6));
            check_gradient(&x, 24, &|| weighted_sum(&biased_softmax(&x4()?, &bias)?))
        })
    }

    #[test]
    fn composed_versions_have_correct_gradients_too() -> Result<()> {
        let x = var((3, 8), 7)?;
        let w = Var::from_tensor(&(var((1, 8), 8)?.as_tensor().squeeze(0)? + 1.0)?)?;
        let f = || weighted_sum(&rms_norm_composed(x.as_tensor(), w.as_tensor(), 1e-6)?);
        check_gradient(&x, 24, &f)?;
        check_gradient(&w, 8, &f)?;
        check_gradient(&x, 24, &|| weighted_sum(&softmax_composed(x.as_tensor())?))?;
        let u = var((3, 8), 9)?;
        let f = || weighted_sum(&swiglu_composed(x.as_tensor(), u.as_tensor())?);
        check_gradient(&x, 24, &f)?;
        check_gradient(&u, 24, &f)
    }

    #[test]
    fn swiglu_gradients_match_finite_differences() -> Result<()> {
        fused::with_fused(true, || -> Result<()> {
            let (g, u) = (var((4, 6), 10)?, var((4, 6), 11)?);
            let f = || weighted_sum(&swiglu(g.as_tensor(), u.as_tensor())?);
            check_gradient(&g, 24, &f)?;
            check_gradient(&u, 24, &f)
        })
    }

    /// Fused and composed kernels agree on values and gradients in f32.
    #[test]
    fn fused_kernels_match_composed_ones() -> Result<()> {
        fused::with_fused(true, || -> Result<()> {
            let to32 =
                |v: Var| -> Result<Var> { Var::from_tensor(&v.as_tensor().to_dtype(DType::F32)?) };
            let x = to32(var((5, 12), 12)?)?;
            let w = to32(var((1, 12), 13)?)?;
            let w1 = w.as_tensor().squeeze(0)?;
            let u = to32(var((5, 12), 14)?)?;
            let targets = Tensor::new(&[0u32, 11, 3, 3, 7], &Device::Cpu)?;
            // x viewed as attention scores [B=1, H=5, S=3, T=4] with a causal bias.
            let x4 = x.as_tensor().reshape((1, 5, 3, 4))?;
            let inf = f32::NEG_INFINITY;
            let bias = Tensor::new(
                &[[0f32, inf, inf, inf], [0., 0., inf, inf], [0., 0., 0., inf]],
                &Device::Cpu,
            )?
            .reshape((1, 1, 3, 4))?;
            type Op<'a> = Box<dyn Fn() -> Result<Tensor> + 'a>;
            let pairs: Vec<(&str, Op, Op)> = vec![
                (
                    "rms_norm",
                    Box::new(|| rms_norm(x.as_tensor(), &w1, 1e-6)),
                    Box::new(|| rms_norm_composed(x.as_tensor(), &w1, 1e-6)),
                ),
                (
                    "softmax",
                    Box::new(|| softmax_last_dim(x.as_tensor())),
                    Box::new(|| softmax_composed(x.as_tensor())),
                ),
                (
                    "swiglu",
                    Box::new(|| swiglu(x.as_tensor(), u.as_tensor())),
                    Box::new(|| swiglu_composed(x.as_tensor(), u.as_tensor())),
                ),
                (
                    "token_logprobs",
                    Box::new(|| token_logprobs(x.as_tensor(), &targets)),
                    Box::new(|| token_logprobs_composed(x.as_tensor(), &targets)),
                ),
                (
                    "biased_softmax",
                    Box::new(|| biased_softmax(&x4, &bias)),
                    Box::new(|| softmax_composed(&x4.broadcast_add(&bias)?)),
                ),
            ];
            for (name, fused_op, composed_op) in pairs {
                let (a, b) = (fused_op()?, composed_op()?);
                let diff = (&a - &b)?
                    .abs()?
                    .flatten_all()?
                    .max(0)?
                    .to_scalar::<f32>()?;
                assert!(diff < 1e-5, "{name}: values differ by {diff}");
                let (ga, gb) = (weighted_sum(&a)?.backward()?, weighted_sum(&b)?.backward()?);
                for v in [&x, &w, &u] {
                    if let (Some(p), Some(q)) = (ga.get(v.as_tensor()), gb.get(v.as_tensor())) {
                        let diff = (p - q)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                        assert!(diff < 1e-4, "{name}: gradients differ by {diff}");
                    }
                }
                assert!(
                    ga.get(x.as_tensor()).is_some(),
                    "{name}: no gradient reached x"
                );
            }
            Ok(())
        })
    }

    #[test]
    fn softmax_matches_candle_and_masks_minus_infinity() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2., f32::NEG_INFINITY], [0.5, -1., 3.]], &dev)?;
        let ours = softmax_last_dim(&x)?.to_vec2::<f32>()?;
        let theirs = candle_nn::ops::softmax_last_dim(&x)?.to_vec2::<f32>()?;
        assert_eq!(ours[0][2], 0.0);
        for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let lse = logsumexp_keepdim(&x)?.to_vec2::<f32>()?;
        let expected = (1f32.exp() + 2f32.exp()).ln();
        assert!((lse[0][0] - expected).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn ensure_finite_rejects_nan() -> Result<()> {
        let dev = Device::Cpu;
        ensure_finite(&Tensor::new(&[1f32, 2.], &dev)?, "ok")?;
        let err = ensure_finite(&Tensor::new(&[1f32, f32::NAN], &dev)?, "logits").unwrap_err();
        assert!(err.to_string().contains("logits contains NaN"));
        Ok(())
    }
}
