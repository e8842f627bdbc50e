//! AdamW with decoupled weight decay, updating the parameters in place.
//!
//! The numbers are candle-nn's `AdamW` (and torch's `AdamW` with
//! `amsgrad = false`): for each parameter θ with gradient g at step t,
//!
//! ```text
//! m ← β₁·m + (1 − β₁)·g            v ← β₂·v + (1 − β₂)·g²
//! θ ← (1 − lr·λ)·θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```
//!
//! candle-nn builds that from ~15 tensor ops per parameter, each a fresh
//! full-size tensor (for SmolLM2-135M, ~8 GB of allocations per step). Here,
//! when every variable is a contiguous f32 CPU tensor, one fused pass
//! ([`cwpo_kernels::adamw`]) updates θ, m and v where they lie, with the
//! same f32 arithmetic in the same order, so the trajectory is bit-identical
//! (test: `matches_candle_nn_adamw_bit_for_bit`). Elsewhere (CUDA, half
//! types) it delegates to candle-nn's `AdamW`.
//!
//! It implements [`candle_nn::Optimizer`], so the loop sets the learning
//! rate per step (the schedule) exactly as it would on candle-nn's.
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use cwpo_kernels::adamw::{AdamWStep, adamw_step};

/// AdamW over a fixed set of variables.
pub struct AdamW {
    state: State,
}

enum State {
    /// Every variable is a contiguous f32 CPU tensor: moments as plain
    /// vectors, updated with θ in one pass.
    InPlace {
        vars: Vec<Var>,
        /// (m, v) per variable, same order as `vars`.
        moments: Vec<(Vec<f32>, Vec<f32>)>,
        params: ParamsAdamW,
        /// Steps taken so far.
        t: usize,
    },
    /// Any other device or dtype.
    Composed(candle_nn::AdamW),
}

impl AdamW {
    /// Whether the update runs in place (every variable a contiguous f32
    /// CPU tensor) rather than through candle-nn.
    pub fn in_place(&self) -> bool {
        matches!(self.state, State::InPlace { .. })
    }
}

fn updatable_in_place(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == DType::F32 && var.is_contiguous()
}

impl Optimizer for AdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        // candle-nn keeps only float variables; so do we.
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let state = if vars.iter().all(updatable_in_place) {
            let moments = vars
                .iter()
                .map(|v| (vec![0f32; v.elem_count()], vec![0f32; v.elem_count()]))
                .collect();
            State::InPlace {
                vars,
                moments,
                params,
                t: 0,
            }
        } else {
            State::Composed(candle_nn::AdamW::new(vars, params)?)
        };
        Ok(Self { state })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let (vars, moments, params, t) = match &mut self.state {
            State::Composed(inner) => return inner.step(grads),
            State::InPlace {
                vars,
                moments,
                params,
                t,
            } => (vars, moments, params, t),
        };
        *t += 1;
        let step = AdamWStep {
            lr: params.lr,
            beta1: params.beta1,
            beta2: params.beta2,
            eps: params.eps,
            weight_decay: params.weight_decay,
            t: *t,
        };
        for (var, (m, v)) in vars.iter().zip(moments.iter_mut()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                adamw_step(var.as_tensor(), g, m, v, step)?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        match &self.state {
            State::InPlace { params, .. } => params.lr,
            State::Composed(inner) => inner.learning_rate(),
        }
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match &mut self.state {
            State::InPlace { params, .. } => params.lr = lr,
            State::Composed(inner) => inner.set_learning_rate(lr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Three variables (one with no gradient on some steps), a loss with
    /// both signs of gradient and a zero one, weight decay on, a learning
    /// rate changed between steps: after 6 steps θ equals candle-nn's AdamW
    /// bit for bit.
    #[test]
    fn matches_candle_nn_adamw_bit_for_bit() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let init = |seed: u64, n: usize| -> anyhow::Result<Vec<f32>> {
            Ok((0..n)
                .map(|i| ((i as f32 + 1.3) * (seed as f32 + 0.7)).sin())
                .collect())
        };
        let make = || -> anyhow::Result<Vec<Var>> {
            Ok(vec![
                Var::from_vec(init(1, 300)?, (20, 15), &dev)?,
                Var::from_vec(init(2, 15)?, 15, &dev)?,
                Var::from_vec(init(3, 7)?, 7, &dev)?,
            ])
        };
        let params = ParamsAdamW {
            lr: 3e-2,
            weight_decay: 0.05,
            ..Default::default()
        };
        let (ours_vars, theirs_vars) = (make()?, make()?);
        let mut ours = AdamW::new(ours_vars.clone(), params.clone())?;
        let mut theirs = candle_nn::AdamW::new(theirs_vars.clone(), params)?;
        assert!(ours.in_place(), "f32 CPU variables take the fused path");
        let x = Tensor::from_vec(init(4, 15 * 3)?, (3, 15), &dev)?;
        let loss_of = |vars: &[Var], step: usize| -> anyhow::Result<Tensor> {
            // tanh(x Wᵀ)·…: mixed-sign gradients; relu makes some exactly 0.
            let h = x.matmul(&vars[0].as_tensor().t()?)?.tanh()?.relu()?;
            let mut loss = (h.sqr()?.sum_all()? + vars[1].as_tensor().sum_all()?)?;
            if step.is_multiple_of(2) {
                loss = (loss + vars[2].as_tensor().sqr()?.mean_all()?)?;
            }
            Ok(loss)
        };
        for step in 0..6 {
            let lr = 3e-2 / (step + 1) as f64;
            ours.set_learning_rate(lr);
            theirs.set_learning_rate(lr);
            ours.step(&loss_of(&ours_vars, step)?.backward()?)?;
            theirs.step(&loss_of(&theirs_vars, step)?.backward()?)?;
            for (a, b) in ours_vars.iter().zip(&theirs_vars) {
                let (a, b) = (
                    a.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                    b.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                );
                let a_bits: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
                let b_bits: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
                assert_eq!(a_bits, b_bits, "step {step}: {a:?} vs {b:?}");
            }
        }
        // And the parameters did move.
        assert_ne!(
            ours_vars[0].as_tensor().flatten_all()?.to_vec1::<f32>()?,
            init(1, 300)?
        );
        Ok(())
    }

    #[test]
    fn other_dtypes_take_candle_nn_path() -> anyhow::Result<()> {
        let w = Var::from_vec(vec![1f64, -2.0], 2, &Device::Cpu)?;
        let mut opt = AdamW::new(vec![w.clone()], ParamsAdamW::default())?;
        assert!(!opt.in_place());
        opt.step(&w.as_tensor().sqr()?.sum_all()?.backward()?)?;
        let moved = w.as_tensor().to_vec1::<f64>()?;
        // First AdamW step moves each weight by ≈ lr against its gradient's
        // sign (m̂/√v̂ = ±1), plus the decay lr·λ·θ.
        assert!((moved[0] - (1.0 - 1e-3 - 1e-5)).abs() < 1e-9, "{moved:?}");
        assert!((moved[1] - (-2.0 + 1e-3 + 2e-5)).abs() < 1e-9, "{moved:?}");
        Ok(())
    }
}
