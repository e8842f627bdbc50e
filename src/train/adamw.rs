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
//! types) it runs candle-nn's composed ops, written out here (test:
//! `composed_path_matches_candle_nn_bit_for_bit`) because candle-nn keeps
//! its moments private and a training checkpoint must save them
//! ([`AdamW::state`], [`AdamW::restore`]).
//!
//! It implements [`candle_nn::Optimizer`], so the loop sets the learning
//! rate per step (the schedule) exactly as it would on candle-nn's.
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
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
    /// Any other device or dtype: candle-nn's ops, moments as variables.
    Composed {
        vars: Vec<Var>,
        /// (m, v) per variable, same order as `vars`.
        moments: Vec<(Var, Var)>,
        params: ParamsAdamW,
        t: usize,
    },
}

/// An optimiser's state at a step boundary, what a checkpoint saves: the
/// steps taken (for the bias corrections) and each variable's moments,
/// shaped and typed like the variable.
pub struct AdamWState {
    pub t: usize,
    /// (m, v) per variable, in the order the optimiser was built with.
    pub moments: Vec<(Tensor, Tensor)>,
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
            let moments = vars
                .iter()
                .map(|v| {
                    let zeros = || Var::zeros(v.shape(), v.dtype(), v.device());
                    Ok((zeros()?, zeros()?))
                })
                .collect::<Result<_>>()?;
            State::Composed {
                vars,
                moments,
                params,
                t: 0,
            }
        };
        Ok(Self { state })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let (vars, moments, params, t) = match &mut self.state {
            State::Composed {
                vars,
                moments,
                params,
                t,
            } => return composed_step(vars, moments, params, t, grads),
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
            State::InPlace { params, .. } | State::Composed { params, .. } => params.lr,
        }
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match &mut self.state {
            State::InPlace { params, .. } | State::Composed { params, .. } => params.lr = lr,
        }
    }
}

impl AdamW {
    /// The variables it updates (float ones only), in moment order.
    pub fn vars(&self) -> &[Var] {
        match &self.state {
            State::InPlace { vars, .. } | State::Composed { vars, .. } => vars,
        }
    }

    /// A copy of the state after the last step.
    pub fn state(&self) -> Result<AdamWState> {
        match &self.state {
            State::InPlace {
                vars, moments, t, ..
            } => Ok(AdamWState {
                t: *t,
                moments: vars
                    .iter()
                    .zip(moments)
                    .map(|(var, (m, v))| {
                        let as_tensor =
                            |x: &[f32]| Tensor::from_slice(x, var.shape(), var.device());
                        Ok((as_tensor(m.as_slice())?, as_tensor(v.as_slice())?))
                    })
                    .collect::<Result<_>>()?,
            }),
            State::Composed { moments, t, .. } => Ok(AdamWState {
                t: *t,
                moments: moments
                    .iter()
                    .map(|(m, v)| Ok((m.as_tensor().copy()?, v.as_tensor().copy()?)))
                    .collect::<Result<_>>()?,
            }),
        }
    }

    /// Puts back a state taken by [`Self::state`] from an optimiser over
    /// variables of the same shapes and dtypes; the next step continues
    /// exactly where that one stopped.
    pub fn restore(&mut self, saved: &AdamWState) -> Result<()> {
        let vars = self.vars().to_vec();
        if saved.moments.len() != vars.len() {
            candle_core::bail!(
                "optimiser state for {} variables, this optimiser has {}",
                saved.moments.len(),
                vars.len()
            );
        }
        for (var, (m, v)) in vars.iter().zip(&saved.moments) {
            for x in [m, v] {
                if x.shape() != var.shape() || x.dtype() != var.dtype() {
                    candle_core::bail!(
                        "optimiser moment {:?} {:?} does not fit a variable {:?} {:?}",
                        x.shape(),
                        x.dtype(),
                        var.shape(),
                        var.dtype()
                    );
                }
            }
        }
        match &mut self.state {
            State::InPlace { moments, t, .. } => {
                for ((m, v), (saved_m, saved_v)) in moments.iter_mut().zip(&saved.moments) {
                    *m = saved_m.flatten_all()?.to_vec1::<f32>()?;
                    *v = saved_v.flatten_all()?.to_vec1::<f32>()?;
                }
                *t = saved.t;
            }
            State::Composed { moments, t, .. } => {
                for ((m, v), (saved_m, saved_v)) in moments.iter().zip(&saved.moments) {
                    m.set(&saved_m.to_device(m.device())?)?;
                    v.set(&saved_v.to_device(v.device())?)?;
                }
                *t = saved.t;
            }
        }
        Ok(())
    }
}

/// candle-nn's `AdamW::step` (0.11), op for op, so the numbers are its numbers.
fn composed_step(
    vars: &[Var],
    moments: &[(Var, Var)],
    params: &ParamsAdamW,
    t: &mut usize,
    grads: &GradStore,
) -> Result<()> {
    *t += 1;
    let lr = params.lr;
    let lr_lambda = lr * params.weight_decay;
    let (beta1, beta2) = (params.beta1, params.beta2);
    let scale_m = 1f64 / (1f64 - beta1.powi(*t as i32));
    let scale_v = 1f64 / (1f64 - beta2.powi(*t as i32));
    for (theta, (m, v)) in vars.iter().zip(moments) {
        if let Some(g) = grads.get(theta) {
            let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
            let adjusted_grad = (m_hat / (v_hat.sqrt()? + params.eps)?)?;
            let next_theta = (next_theta - (adjusted_grad * lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
    }
    Ok(())
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
    fn other_dtypes_take_the_composed_path() -> anyhow::Result<()> {
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

    /// A two-variable least-squares-ish loss with mixed-sign gradients.
    fn toy_loss(vars: &[Var], step: usize) -> anyhow::Result<Tensor> {
        let a = vars[0].as_tensor();
        let shift = (step as f64 * 0.3).sin();
        Ok(
            ((a.affine(1.0, shift)?.sqr()?.sum_all()? + vars[1].as_tensor().sum_all()?)?
                + (a.sum_all()? * vars[1].as_tensor().sum_all()?)?)?,
        )
    }

    fn toy_vars<T: candle_core::WithDType>(values: [T; 5]) -> anyhow::Result<Vec<Var>> {
        Ok(vec![
            Var::from_vec(values[..3].to_vec(), 3, &Device::Cpu)?,
            Var::from_vec(values[3..].to_vec(), 2, &Device::Cpu)?,
        ])
    }

    fn bits(vars: &[Var]) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for v in vars {
            let flat = v.as_tensor().flatten_all()?.to_dtype(DType::F64)?;
            out.extend(flat.to_vec1::<f64>()?.iter().map(|x| x.to_bits()));
        }
        Ok(out)
    }

    #[test]
    fn composed_path_matches_candle_nn_bit_for_bit() -> anyhow::Result<()> {
        let params = ParamsAdamW {
            lr: 2e-2,
            weight_decay: 0.1,
            ..Default::default()
        };
        let (ours_vars, theirs_vars) = (
            toy_vars([0.5f64, -1.0, 2.0, 0.1, -0.3])?,
            toy_vars([0.5f64, -1.0, 2.0, 0.1, -0.3])?,
        );
        let mut ours = AdamW::new(ours_vars.clone(), params.clone())?;
        let mut theirs = candle_nn::AdamW::new(theirs_vars.clone(), params)?;
        assert!(!ours.in_place());
        for step in 0..7 {
            let lr = 2e-2 / (step + 1) as f64;
            ours.set_learning_rate(lr);
            theirs.set_learning_rate(lr);
            ours.step(&toy_loss(&ours_vars, step)?.backward()?)?;
            theirs.step(&toy_loss(&theirs_vars, step)?.backward()?)?;
            assert_eq!(bits(&ours_vars)?, bits(&theirs_vars)?, "step {step}");
        }
        Ok(())
    }

    /// 3 steps, state and weights copied into a fresh optimiser, 3 more
    /// steps: the same bits as 6 uninterrupted steps, on both paths.
    #[test]
    fn a_restored_state_continues_bit_for_bit() -> anyhow::Result<()> {
        let params = ParamsAdamW {
            lr: 3e-2,
            weight_decay: 0.05,
            ..Default::default()
        };
        let in_place = toy_vars([0.5f32, -1.0, 2.0, 0.1, -0.3])?;
        let composed = toy_vars([0.5f64, -1.0, 2.0, 0.1, -0.3])?;
        for make in [in_place, composed] {
            let fresh = || -> anyhow::Result<Vec<Var>> {
                make.iter()
                    .map(|v| Ok(Var::from_tensor(&v.as_tensor().copy()?)?))
                    .collect()
            };
            let run = |vars: &[Var], opt: &mut AdamW, steps: std::ops::Range<usize>| {
                for step in steps {
                    opt.set_learning_rate(3e-2 / (step + 1) as f64);
                    opt.step(&toy_loss(vars, step)?.backward()?)?;
                }
                anyhow::Ok(())
            };
            let straight = fresh()?;
            run(
                &straight,
                &mut AdamW::new(straight.clone(), params.clone())?,
                0..6,
            )?;

            let first = fresh()?;
            let mut opt = AdamW::new(first.clone(), params.clone())?;
            run(&first, &mut opt, 0..3)?;
            let saved = opt.state()?;
            assert_eq!(saved.t, 3);
            let resumed: Vec<Var> = first
                .iter()
                .map(|v| Ok(Var::from_tensor(&v.as_tensor().copy()?)?))
                .collect::<anyhow::Result<_>>()?;
            let mut opt = AdamW::new(resumed.clone(), params.clone())?;
            opt.restore(&saved)?;
            run(&resumed, &mut opt, 3..6)?;
            assert_eq!(bits(&resumed)?, bits(&straight)?, "{:?}", make[0].dtype());
            // A state that does not fit is refused.
            let other = AdamW::new(
                vec![Var::zeros(4, make[0].dtype(), &Device::Cpu)?],
                params.clone(),
            )?;
            let err = AdamW::new(resumed.clone(), params.clone())?
                .restore(&other.state()?)
                .unwrap_err();
            assert!(err.to_string().contains("1 variables"), "{err}");
        }
        Ok(())
    }
}
