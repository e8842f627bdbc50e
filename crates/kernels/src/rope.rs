//! Rotate-half rotary position embedding; its backward is the inverse
//! rotation.
use candle_core::{CustomOp3, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{Inputs, Kernel, cpu_forward};

/// Rotate-half RoPE on x: [B, S, H, hd] with cos, sin: [B, S, hd].
/// `inverse` rotates by −θ (the backward of the forward rotation).
struct Rope {
    inverse: bool,
}

impl Kernel for Rope {
    fn run<T: WithDType>(&self, inputs: &Inputs) -> Result<(Vec<T>, Shape)> {
        let [x, cos, sin] = inputs.slices::<T, 3>()?;
        let (_, _, h, hd) = inputs.shape(0).dims4()?;
        let half = hd / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut y = vec![T::zero(); x.len()];
        // One chunk per (b, s): H heads sharing one row of angles.
        y.par_chunks_mut(h * hd)
            .zip(x.par_chunks(h * hd))
            .enumerate()
            .for_each(|(bs, (y, x))| {
                let (c, s) = (&cos[bs * hd..(bs + 1) * hd], &sin[bs * hd..(bs + 1) * hd]);
                for (y, x) in y.chunks_mut(hd).zip(x.chunks(hd)) {
                    for i in 0..half {
                        let (x1, x2) = (x[i].to_f64(), x[i + half].to_f64());
                        let (c1, s1) = (c[i].to_f64(), sign * s[i].to_f64());
                        let (c2, s2) = (c[i + half].to_f64(), sign * s[i + half].to_f64());
                        y[i] = T::from_f64(x1 * c1 - x2 * s1);
                        y[i + half] = T::from_f64(x2 * c2 + x1 * s2);
                    }
                }
            });
        Ok((y, inputs.shape(0).clone()))
    }
}

impl CustomOp3 for Rope {
    cpu_forward!(3, "fused-rope");

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = dy.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &Rope {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(dx), None, None))
    }
}

/// Fused RoPE: x [B, S, H, hd] (made contiguous), cos/sin [B, S, hd] contiguous.
/// No gradient flows to the angles.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&cos.detach(), &sin.detach(), Rope { inverse: false })
}
