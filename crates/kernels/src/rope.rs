//! Rotate-half rotary position embedding; its backward is the inverse
//! rotation.
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::plumbing::{contiguous_slice, dispatch, owned};

/// Rotate-half RoPE on x: [B, S, H, hd] with cos, sin: [B, S, hd].
/// `inverse` rotates by −θ (the backward of the forward rotation).
struct Rope {
    inverse: bool,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: WithDType>(
            inverse: bool,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (x, cos, sin) = (
                contiguous_slice::<T>(s1, l1)?,
                contiguous_slice::<T>(s2, l2)?,
                contiguous_slice::<T>(s3, l3)?,
            );
            let (_, _, h, hd) = l1.shape().dims4()?;
            let half = hd / 2;
            let sign = if inverse { -1.0 } else { 1.0 };
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
            Ok(owned(y, l1.shape()))
        }
        dispatch!(s1, run(self.inverse, s1, l1, s2, l2, s3, l3))
    }

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
