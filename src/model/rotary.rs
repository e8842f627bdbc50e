//! Rotary position embeddings (RoPE), HF "rotate half" convention.
//!
//! For a head vector x split into halves (x₁, x₂) and angle θ_i = pos · base^(-2i/d):
//! `rope(x) = x · cos θ + (−x₂, x₁) · sin θ`, with θ repeated over both halves.
//! candle's fused `rope` kernels have no backward; this uses narrow/cat/mul.
use candle_core::{DType, Device, Result, Tensor};

use super::config::RopeScaling;
use super::fused;

/// Inverse frequencies of one head width; angles are built per forward from
/// the batch's position ids.
#[derive(Debug, Clone)]
pub struct Rotary {
    /// [1, 1, head_dim / 2], f32
    inv_freq: Tensor,
}

/// cos and sin of every (row, position) angle, shared by all heads.
#[derive(Debug, Clone)]
pub struct RotaryAngles {
    /// [B, S, head_dim]
    cos: Tensor,
    /// [B, S, head_dim]
    sin: Tensor,
}

impl Rotary {
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: Option<&RopeScaling>,
        device: &Device,
    ) -> Result<Self> {
        if !head_dim.is_multiple_of(2) {
            candle_core::bail!("RoPE needs an even head_dim, got {head_dim}");
        }
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let inv = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                scaling.map_or(inv, |s| s.rescale(inv)) as f32
            })
            .collect();
        Ok(Self {
            inv_freq: Tensor::from_vec(inv, (1, 1, half), device)?,
        })
    }

    /// Angles for `positions` [B, S] (u32), in `dtype`.
    pub fn angles(&self, positions: &Tensor, dtype: DType) -> Result<RotaryAngles> {
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(2)?; // [B, S, 1]
        let freqs = pos.broadcast_mul(&self.inv_freq)?; // [B, S, hd/2]
        let freqs = Tensor::cat(&[&freqs, &freqs], 2)?; // [B, S, hd]
        Ok(RotaryAngles {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }
}

impl RotaryAngles {
    /// x: [B, S, H, hd] → rotated, same shape.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match fused::usable(x) {
            true => fused::rope(x, &self.cos, &self.sin),
            false => self.apply_composed(x),
        }
    }

    /// [`Self::apply`] from basic ops.
    pub fn apply_composed(&self, x: &Tensor) -> Result<Tensor> {
        let (cos, sin) = (self.cos.unsqueeze(2)?, self.sin.unsqueeze(2)?); // [B, S, 1, hd]
        let hd = x.dim(3)?;
        let half = hd / 2;
        let x1 = x.narrow(3, 0, half)?;
        let x2 = x.narrow(3, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?; // [B, S, H, hd]
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::tests::check_gradient;
    use candle_core::Var;

    #[test]
    fn rope_preserves_norm_and_relative_angles() -> Result<()> {
        let dev = Device::Cpu;
        let rot = Rotary::new(4, 10_000.0, None, &dev)?;
        let q = Tensor::new(&[0.3f32, -1.2, 0.7, 0.5], &dev)?.reshape((1, 1, 1, 4))?;
        let k = Tensor::new(&[1.1f32, 0.4, -0.2, 0.9], &dev)?.reshape((1, 1, 1, 4))?;
        let at = |p: u32, x: &Tensor| -> Result<Tensor> {
            let pos = Tensor::new(&[[p]], &dev)?;
            rot.angles(&pos, DType::F32)?.apply(x)
        };
        let dot =
            |a: &Tensor, b: &Tensor| -> Result<f32> { (a * b)?.sum_all()?.to_scalar::<f32>() };
        // q·k depends only on the distance between positions.
        let d1 = dot(&at(5, &q)?, &at(3, &k)?)?;
        let d2 = dot(&at(12, &q)?, &at(10, &k)?)?;
        assert!((d1 - d2).abs() < 1e-5, "{d1} vs {d2}");
        let n0 = dot(&q, &q)?;
        let n1 = dot(&at(7, &q)?, &at(7, &q)?)?;
        assert!((n0 - n1).abs() < 1e-5);
        // Position 0 is the identity.
        assert_eq!(
            at(0, &q)?.flatten_all()?.to_vec1::<f32>()?,
            q.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }

    /// Fused and composed RoPE agree, and both have correct gradients.
    #[test]
    fn rope_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let rot = Rotary::new(4, 100.0, None, &dev)?;
        let pos = Tensor::new(&[[0u32, 1, 2], [0, 0, 1]], &dev)?; // [B=2, S=3]
        let angles = rot.angles(&pos, DType::F64)?;
        let vals: Vec<f64> = (0..48).map(|i| ((i * 13 % 7) as f64 - 3.0) / 2.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(vals, (2, 3, 2, 4), &dev)?)?; // [B, S, H, hd]
        let w: Vec<f64> = (0..48).map(|i| (i % 5) as f64 - 2.0).collect();
        let w = Tensor::from_vec(w, (2, 3, 2, 4), &dev)?;
        let fused_apply = || fused::with_fused(true, || angles.apply(x.as_tensor()));
        check_gradient(&x, 48, &|| (fused_apply()? * &w)?.sum_all())?;
        check_gradient(&x, 48, &|| {
            (angles.apply_composed(x.as_tensor())? * &w)?.sum_all()
        })?;
        let diff = (fused_apply()? - angles.apply_composed(x.as_tensor())?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()?;
        assert!(diff < 1e-12, "fused vs composed RoPE differ by {diff}");
        Ok(())
    }
}
