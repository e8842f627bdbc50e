//! Losses as pure tensor functions (PAPER.md, Eq. 5 and 9–11).
//!
//! Everything is built from differentiable candle ops and works in any float
//! dtype (f64 for gradient checks). Per-pair losses return shape [B]; the
//! trainers reduce them with [`weighted_mean`] or a plain mean.
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::custom_loss::{CustomLoss, CustomLossSpec};
use crate::model::ResponseLogProbs;

/// softplus(z) = log(1 + e^z), computed as relu(z) + log(1 + e^{−|z|}) so
/// that neither branch overflows. Both kinks sit at z = 0 and candle gives
/// relu and abs the same one-sided derivative there, so the gradient at 0 is
/// the exact σ(0) = ½ (the first DPO step, where policy = reference, hits
/// exactly h = 0).
pub fn softplus(z: &Tensor) -> Result<Tensor> {
    let tail = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    z.relu()? + tail
}

/// log σ(x) = −softplus(−x), finite for every finite x.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    softplus(&x.neg()?)?.neg()
}

/// Policy (or reference) log-probs of both responses of B pairs.
#[derive(Debug, Clone)]
pub struct PairResponseLogProbs {
    pub chosen: ResponseLogProbs,
    pub rejected: ResponseLogProbs,
}

/// How a response's token log-probs are reduced before the margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogProbReduction {
    /// Σ_t log π(y_t | …): the paper's DPO and rDPO.
    Sum,
    /// Σ_t log π(y_t | …) / |y|: TRL's IPO.
    Mean,
}

/// A response's log-prob under `reduction`. [B] → [B].
pub(crate) fn reduce(lp: &ResponseLogProbs, reduction: LogProbReduction) -> Result<Tensor> {
    match reduction {
        LogProbReduction::Sum => Ok(lp.sum.clone()),
        LogProbReduction::Mean => lp.mean(),
    }
}

/// h = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)]. Shape [B].
pub fn preference_margin(
    policy: &PairResponseLogProbs,
    reference: &PairResponseLogProbs,
    reduction: LogProbReduction,
) -> Result<Tensor> {
    let chosen = (reduce(&policy.chosen, reduction)? - reduce(&reference.chosen, reduction)?)?; // [B]
    let rejected =
        (reduce(&policy.rejected, reduction)? - reduce(&reference.rejected, reduction)?)?; // [B]
    chosen - rejected
}

/// DPO (TRL `sigmoid`): ℓ = −log σ(β h). [B] → [B].
pub fn dpo_loss(h: &Tensor, beta: f64) -> Result<Tensor> {
    log_sigmoid(&h.affine(beta, 0.0)?)?.neg()
}

/// IPO: ℓ = (h − 1/(2τ))². [B] → [B].
pub fn ipo_loss(h: &Tensor, tau: f64) -> Result<Tensor> {
    h.affine(1.0, -1.0 / (2.0 * tau))?.sqr()
}

/// rDPO (TRL `robust`): ℓ = [(1−ε)(−log σ(βh)) − ε(−log σ(−βh))] / (1 − 2ε).
/// Unbiased under labels flipped with probability ε. [B] → [B].
pub fn rdpo_loss(h: &Tensor, beta: f64, epsilon: f64) -> Result<Tensor> {
    let kept = dpo_loss(h, beta)?; // −log σ(βh)
    let flipped = dpo_loss(&h.neg()?, beta)?; // −log σ(−βh)
    (kept.affine(1.0 - epsilon, 0.0)? - flipped.affine(epsilon, 0.0)?)?
        .affine(1.0 / (1.0 - 2.0 * epsilon), 0.0)
}

/// CW-PO's batch loss: mean_i(w_i · ℓ_i). Nothing is filtered: a pair with
/// w_i = 0 stays in the mean's denominator and contributes no gradient.
/// `per_pair` and `weights` are [B]; returns a scalar.
pub fn weighted_mean(per_pair: &Tensor, weights: &Tensor) -> Result<Tensor> {
    (per_pair * weights.to_dtype(per_pair.dtype())?)?.mean_all()
}

/// Bradley–Terry (Eq. 5): ℓ = −log σ(s_w − s_l). [B], [B] → [B].
pub fn bradley_terry_loss(s_chosen: &Tensor, s_rejected: &Tensor) -> Result<Tensor> {
    log_sigmoid(&(s_chosen - s_rejected)?)?.neg()
}

/// PairRM-style BCE on both orders: the logit of "first beats second" is
/// `z_ab` for (x, y_w, y_l) (target 1) and `z_ba` for (x, y_l, y_w) (target
/// 0); ℓ = ½[−log σ(z_ab) − log σ(−z_ba)]. [B], [B] → [B].
pub fn pairwise_bce_loss(z_ab: &Tensor, z_ba: &Tensor) -> Result<Tensor> {
    let first = log_sigmoid(z_ab)?.neg()?;
    let second = log_sigmoid(&z_ba.neg()?)?.neg()?;
    (first + second)?.affine(0.5, 0.0)
}

/// SFT: −(Σ log-probs of all response tokens in the batch) / (number of
/// response tokens in the batch), a token-level mean. Returns a scalar.
pub fn sft_loss(lp: &ResponseLogProbs) -> Result<Tensor> {
    lp.sum.sum_all()?.neg()? / lp.count.sum_all()?
}

/// A loss the preference trainer minimises: the built-in
/// [`PreferenceObjective`]s and the manifest's expressions
/// ([`CustomLoss`](super::custom_loss::CustomLoss)).
pub trait PreferenceLoss: std::fmt::Debug {
    /// Fails on a knob outside its domain, naming it.
    fn validate(&self) -> anyhow::Result<()>;

    /// The scalar loss of B pairs: the mean over pairs of each pair's loss
    /// scaled by its weight. `weights` is [B].
    fn batch_loss(
        &self,
        policy: &PairResponseLogProbs,
        reference: &PairResponseLogProbs,
        weights: &Tensor,
    ) -> Result<Tensor>;
}

impl PreferenceLoss for PreferenceObjective {
    fn validate(&self) -> anyhow::Result<()> {
        PreferenceObjective::validate(self)
    }

    /// mean_i(w_i · ℓ_i).
    fn batch_loss(
        &self,
        policy: &PairResponseLogProbs,
        reference: &PairResponseLogProbs,
        weights: &Tensor,
    ) -> Result<Tensor> {
        weighted_mean(&self.per_pair_loss(policy, reference)?, weights)
    }
}

/// Which preference loss aligns the strong model, with its knob. Serde:
/// `{ loss = "dpo", beta = 0.5 }`, `{ loss = "ipo", tau = 0.5 }`,
/// `{ loss = "rdpo", beta = 0.5, epsilon = 0.1 }`; defaults are PAPER.md's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loss", rename_all = "lowercase", deny_unknown_fields)]
pub enum PreferenceObjective {
    /// −log σ(β h), h on summed log-probs (the DPO paper's) unless
    /// `length_normalised = true`, which uses per-token means as TRL's IPO does.
    Dpo {
        #[serde(default = "default_beta")]
        beta: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        length_normalised: bool,
    },
    /// (h − 1/(2τ))², h on mean per-token log-probs (TRL) unless
    /// `length_normalised = false`, which uses sums as the IPO paper writes it.
    Ipo {
        #[serde(default = "default_tau")]
        tau: f64,
        #[serde(default = "default_true")]
        length_normalised: bool,
    },
    /// Robust DPO with label-flip rate ε, h on summed log-probs.
    Rdpo {
        #[serde(default = "default_beta")]
        beta: f64,
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
}

fn default_beta() -> f64 {
    0.5
}
/// τ = 0.5: TRL passes its one `beta` to IPO as τ, and the paper's
/// hyper-parameter table gives one bare 0.5 (docs/world.md, "IPO's τ").
fn default_tau() -> f64 {
    0.5
}
fn default_epsilon() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// Per-token means when `length_normalised`, else sums.
fn reduction_of(length_normalised: bool) -> LogProbReduction {
    if length_normalised {
        LogProbReduction::Mean
    } else {
        LogProbReduction::Sum
    }
}

impl PreferenceObjective {
    /// DPO on summed log-probs, as the DPO paper and ours write it.
    pub const fn dpo(beta: f64) -> Self {
        Self::Dpo {
            beta,
            length_normalised: false,
        }
    }

    /// Fails on a knob outside its domain, naming it.
    pub fn validate(&self) -> anyhow::Result<()> {
        match *self {
            Self::Dpo { beta, .. } | Self::Rdpo { beta, .. }
                if !(beta.is_finite() && beta > 0.0) =>
            {
                anyhow::bail!("preference loss: `beta` = {beta} must be a positive finite number")
            }
            Self::Ipo { tau, .. } if !(tau.is_finite() && tau > 0.0) => {
                anyhow::bail!("preference loss: `tau` = {tau} must be a positive finite number")
            }
            Self::Rdpo { epsilon, .. } if !(0.0..0.5).contains(&epsilon) => {
                anyhow::bail!("preference loss: rDPO `epsilon` = {epsilon} must be in [0, 0.5)")
            }
            _ => Ok(()),
        }
    }

    /// Per-pair loss ℓ_i. Shape [B].
    pub fn per_pair_loss(
        &self,
        policy: &PairResponseLogProbs,
        reference: &PairResponseLogProbs,
    ) -> Result<Tensor> {
        match *self {
            Self::Dpo {
                beta,
                length_normalised,
            } => dpo_loss(
                &preference_margin(policy, reference, reduction_of(length_normalised))?,
                beta,
            ),
            Self::Ipo {
                tau,
                length_normalised,
            } => ipo_loss(
                &preference_margin(policy, reference, reduction_of(length_normalised))?,
                tau,
            ),
            Self::Rdpo { beta, epsilon } => rdpo_loss(
                &preference_margin(policy, reference, LogProbReduction::Sum)?,
                beta,
                epsilon,
            ),
        }
    }
}

/// The loss an `align` stage trains with, as a resolved cell carries it: a
/// built-in objective, or a loss written in the manifest (`objective =
/// "custom"`) in the checked, canonical form its cache key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum AlignLoss {
    BuiltIn(PreferenceObjective),
    Custom(CustomLossSpec),
}

impl From<PreferenceObjective> for AlignLoss {
    fn from(objective: PreferenceObjective) -> Self {
        Self::BuiltIn(objective)
    }
}

impl AlignLoss {
    /// The loss to train with: fails on a built-in's knob outside its
    /// domain, or a custom loss that fails [`CustomLoss`]'s checks (a cache
    /// record written by hand).
    pub fn build(&self) -> anyhow::Result<Box<dyn PreferenceLoss>> {
        Ok(match self {
            Self::BuiltIn(objective) => {
                objective.validate()?;
                Box::new(*objective)
            }
            Self::Custom(spec) => Box::new(
                CustomLoss::from_spec(spec)
                    .map_err(|e| anyhow::anyhow!("custom loss `{}`: {e}", spec.expression))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn lp(sum: &[f64], count: &[f64]) -> ResponseLogProbs {
        ResponseLogProbs {
            sum: t(sum),
            count: t(count),
        }
    }

    fn close(got: &Tensor, want: &[f64], tol: f64) {
        let got = got.to_vec1::<f64>().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "index {i}: got {g}, want {w} (all: {got:?})"
            );
        }
    }

    /// Three pairs with different margins and different lengths, so that a
    /// chosen/rejected or policy/reference or row mix-up changes the numbers.
    struct Fixture {
        policy: PairResponseLogProbs,
        reference: PairResponseLogProbs,
        pc: [f64; 3],
        pr: [f64; 3],
        rc: [f64; 3],
        rr: [f64; 3],
        nc: [f64; 3],
        nr: [f64; 3],
    }

    fn fixture() -> Fixture {
        let pc = [-10.0, -4.0, -30.0];
        let pr = [-12.0, -3.0, -25.0];
        let rc = [-11.0, -5.0, -28.0];
        let rr = [-11.5, -2.0, -26.0];
        let nc = [4.0, 2.0, 9.0];
        let nr = [5.0, 1.0, 7.0];
        Fixture {
            policy: PairResponseLogProbs {
                chosen: lp(&pc, &nc),
                rejected: lp(&pr, &nr),
            },
            reference: PairResponseLogProbs {
                chosen: lp(&rc, &nc),
                rejected: lp(&rr, &nr),
            },
            pc,
            pr,
            rc,
            rr,
            nc,
            nr,
        }
    }

    impl Fixture {
        fn h_sum(&self, i: usize) -> f64 {
            (self.pc[i] - self.rc[i]) - (self.pr[i] - self.rr[i])
        }
        fn h_mean(&self, i: usize) -> f64 {
            (self.pc[i] / self.nc[i] - self.rc[i] / self.nc[i])
                - (self.pr[i] / self.nr[i] - self.rr[i] / self.nr[i])
        }
    }

    #[test]
    fn margin_sum_and_mean_by_hand() {
        let f = fixture();
        let sum = preference_margin(&f.policy, &f.reference, LogProbReduction::Sum).unwrap();
        close(&sum, &[1.5, 2.0, -3.0], 1e-12);
        let mean = preference_margin(&f.policy, &f.reference, LogProbReduction::Mean).unwrap();
        close(
            &mean,
            &(0..3).map(|i| f.h_mean(i)).collect::<Vec<_>>(),
            1e-12,
        );
        // Pair 0 literally: (−10 + 11)/4 − (−12 + 11.5)/5 = 0.25 + 0.1.
        assert!((f.h_mean(0) - 0.35).abs() < 1e-12);
    }

    #[test]
    fn dpo_by_hand() {
        let f = fixture();
        let beta = 0.5;
        let want: Vec<f64> = (0..3).map(|i| -sigmoid(beta * f.h_sum(i)).ln()).collect();
        let got = PreferenceObjective::dpo(beta)
            .per_pair_loss(&f.policy, &f.reference)
            .unwrap();
        close(&got, &want, 1e-12);
    }

    /// `length_normalised` swaps DPO's summed margin for the per-token one:
    /// pair 0's h goes from 1.5 to 0.35, so its loss from −log σ(0.75) to
    /// −log σ(0.175).
    #[test]
    fn length_normalised_dpo_by_hand() {
        let f = fixture();
        let beta = 0.5;
        let normalised = PreferenceObjective::Dpo {
            beta,
            length_normalised: true,
        };
        let got = normalised.per_pair_loss(&f.policy, &f.reference).unwrap();
        let want: Vec<f64> = (0..3).map(|i| -sigmoid(beta * f.h_mean(i)).ln()).collect();
        close(&got, &want, 1e-12);
        assert!((got.to_vec1::<f64>().unwrap()[0] + sigmoid(0.175).ln()).abs() < 1e-12);
        let summed = PreferenceObjective::dpo(beta)
            .per_pair_loss(&f.policy, &f.reference)
            .unwrap();
        assert!((summed.to_vec1::<f64>().unwrap()[0] + sigmoid(0.75).ln()).abs() < 1e-12);
    }

    #[test]
    fn ipo_by_hand_in_both_forms() {
        let f = fixture();
        let tau = 0.1;
        let normalised = PreferenceObjective::Ipo {
            tau,
            length_normalised: true,
        };
        let want: Vec<f64> = (0..3).map(|i| (f.h_mean(i) - 5.0).powi(2)).collect();
        close(
            &normalised.per_pair_loss(&f.policy, &f.reference).unwrap(),
            &want,
            1e-12,
        );
        let summed = PreferenceObjective::Ipo {
            tau,
            length_normalised: false,
        };
        let want: Vec<f64> = (0..3).map(|i| (f.h_sum(i) - 5.0).powi(2)).collect();
        close(
            &summed.per_pair_loss(&f.policy, &f.reference).unwrap(),
            &want,
            1e-12,
        );
    }

    #[test]
    fn rdpo_by_hand_and_equal_to_dpo_at_zero_epsilon() {
        let f = fixture();
        let (beta, eps) = (0.5, 0.2);
        let want: Vec<f64> = (0..3)
            .map(|i| {
                let h = f.h_sum(i);
                ((1.0 - eps) * -sigmoid(beta * h).ln() - eps * -sigmoid(-beta * h).ln())
                    / (1.0 - 2.0 * eps)
            })
            .collect();
        let got = PreferenceObjective::Rdpo { beta, epsilon: eps }
            .per_pair_loss(&f.policy, &f.reference)
            .unwrap();
        close(&got, &want, 1e-12);
        let rdpo0 = PreferenceObjective::Rdpo { beta, epsilon: 0.0 }
            .per_pair_loss(&f.policy, &f.reference)
            .unwrap();
        let dpo = PreferenceObjective::dpo(beta)
            .per_pair_loss(&f.policy, &f.reference)
            .unwrap();
        close(&rdpo0, &dpo.to_vec1::<f64>().unwrap(), 1e-15);
    }

    #[test]
    fn weighted_mean_keeps_zero_weights_in_the_denominator() {
        let got = weighted_mean(&t(&[2.0, 4.0, 8.0]), &t(&[0.5, 0.0, 0.25])).unwrap();
        assert!((got.to_scalar::<f64>().unwrap() - (1.0 + 0.0 + 2.0) / 3.0).abs() < 1e-15);
    }

    #[test]
    fn bradley_terry_and_pairwise_bce_by_hand() {
        let sw = [1.0, -0.5, 3.0];
        let sl = [0.2, 0.5, -1.0];
        let want: Vec<f64> = (0..3).map(|i| -sigmoid(sw[i] - sl[i]).ln()).collect();
        close(&bradley_terry_loss(&t(&sw), &t(&sl)).unwrap(), &want, 1e-12);
        let want: Vec<f64> = (0..3)
            .map(|i| 0.5 * (-sigmoid(sw[i]).ln() - (1.0 - sigmoid(sl[i])).ln()))
            .collect();
        close(&pairwise_bce_loss(&t(&sw), &t(&sl)).unwrap(), &want, 1e-12);
    }

    #[test]
    fn sft_is_a_token_level_mean() {
        let got = sft_loss(&lp(&[-6.0, -1.0], &[3.0, 1.0])).unwrap();
        assert!((got.to_scalar::<f64>().unwrap() - 7.0 / 4.0).abs() < 1e-15);
    }

    #[test]
    fn log_sigmoid_is_stable_and_has_the_exact_gradient_at_zero() -> anyhow::Result<()> {
        let xs = [-800.0, -30.0, -1.0, 0.0, 2.0, 800.0];
        let x = Var::from_vec(xs.to_vec(), 6, &Device::Cpu)?;
        let y = log_sigmoid(x.as_tensor())?;
        let want: Vec<f64> = xs
            .iter()
            .map(|&v| if v < -700.0 { v } else { sigmoid(v).ln() })
            .collect();
        close(&y, &want, 1e-12);
        // d/dx log σ(x) = σ(−x): ½ at 0, even though relu and abs kink there.
        let grad = y
            .sum_all()?
            .backward()?
            .get(x.as_tensor())
            .unwrap()
            .to_vec1::<f64>()?;
        for (g, v) in grad.iter().zip(xs) {
            assert!((g - sigmoid(-v)).abs() < 1e-12, "x = {v}: grad {g}");
        }
        let y32 = log_sigmoid(&Tensor::new(&[-200f32, 200.], &Device::Cpu)?)?;
        assert!(y32.to_vec1::<f32>()?.iter().all(|v| v.is_finite()));
        assert_eq!(y32.dtype(), DType::F32);
        Ok(())
    }

    #[test]
    fn objective_serde_defaults_and_validation() {
        let o: PreferenceObjective = toml::from_str("loss = \"ipo\"").unwrap();
        assert_eq!(
            o,
            PreferenceObjective::Ipo {
                tau: 0.5,
                length_normalised: true
            }
        );
        let o: PreferenceObjective = toml::from_str("loss = \"rdpo\"\nepsilon = 0.2").unwrap();
        assert_eq!(
            o,
            PreferenceObjective::Rdpo {
                beta: 0.5,
                epsilon: 0.2
            }
        );
        assert!(toml::from_str::<PreferenceObjective>("loss = \"dpo\"\ntau = 1").is_err());
        let o: PreferenceObjective = toml::from_str("loss = \"dpo\"").unwrap();
        assert_eq!(o, PreferenceObjective::dpo(0.5), "DPO sums by default");
        let err = PreferenceObjective::Rdpo {
            beta: 0.5,
            epsilon: 0.5,
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("epsilon"), "{err}");
        assert!(PreferenceObjective::dpo(0.0).validate().is_err());
        assert!(PreferenceObjective::dpo(0.1).validate().is_ok());
    }
}
