//! Differentiable building blocks, written from basic tensor ops.
//!
//! candle 0.11's fused kernels `candle_nn::ops::rms_norm`, `RmsNorm`,
//! `softmax_last_dim` and `rotary_emb::rope` have no backward pass: gradients
//! silently stop at them. Everything here is composed of ops whose backward
//! candle implements (checked by the finite-difference tests below).
//! Half-precision inputs are computed in f32 and cast back.
use candle_core::{D, DType, Result, Tensor};

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
    let normed = in_full_precision(x, |x| {
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?; // [..., 1]
        x.broadcast_div(&(mean_sq + eps)?.sqrt()?)
    })?;
    normed.broadcast_mul(weight)
}

/// LayerNorm over the last dim: `(x - mean) / sqrt(var + eps) * weight + bias`.
/// x: [..., D], weight and bias: [D].
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let normed = in_full_precision(x, |x| {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?; // [..., D]
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?; // [..., 1]
        centred.broadcast_div(&(var + eps)?.sqrt()?)
    })?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Softmax over the last dim. The row maximum is detached: softmax is
/// invariant to it, and its gradient would be zero up to rounding.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    in_full_precision(x, |x| {
        let max = x.max_keepdim(D::Minus1)?.detach(); // [..., 1]
        let exp = x.broadcast_sub(&max)?.exp()?;
        exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
    })
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
        let w = Tensor::from_vec(w, y.shape(), y.device())?;
        (y * w)?.sum_all()
    }

    #[test]
    fn rms_norm_gradients_match_finite_differences() -> Result<()> {
        let x = var((3, 8), 1)?;
        let w = Var::from_tensor(&(var((1, 8), 2)?.as_tensor().squeeze(0)? + 1.0)?)?;
        let f = || weighted_sum(&rms_norm(x.as_tensor(), w.as_tensor(), 1e-6)?);
        check_gradient(&x, 24, &f)?;
        check_gradient(&w, 8, &f)
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
        let x = var((4, 6), 6)?;
        check_gradient(&x, 24, &|| weighted_sum(&softmax_last_dim(x.as_tensor())?))?;
        check_gradient(&x, 24, &|| weighted_sum(&logsumexp_keepdim(x.as_tensor())?))
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
