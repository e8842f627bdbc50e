//! A preference loss written in the manifest as a formula over each pair's
//! log-probs, e.g. SLiC's hinge `"relu(1 - beta*h)"`: parsed by
//! [`super::expression`], evaluated as candle ops on [B] tensors (so it is
//! differentiable), trained by the same loop as the built-ins.
//!
//! Variables, each [B] (one value per pair):
//!
//! | name | meaning |
//! |---|---|
//! | `logp_c`, `logp_r` | log π(y) of the chosen / rejected response under the policy |
//! | `ref_c`, `ref_r` | the same under the frozen reference |
//! | `len_c`, `len_r` | response lengths in tokens |
//! | `h` | the built-ins' margin, (logp_c − ref_c) − (logp_r − ref_r) ([`preference_margin`]) |
//! | `w` | the pair's weight (CW confidence, or 1) |
//!
//! Log-probs are summed over the response's tokens, as for DPO and rDPO;
//! with `length_normalised` they are per-token means (TRL's IPO), and so is
//! `h`. Named numbers: `beta`, `tau`, `eps` (the `[align]` knobs) and any
//! constant the manifest declares.
//!
//! The batch loss is mean_i(w_i · ℓ_i), ℓ_i the expression's value, exactly as
//! for the built-ins, so any weighting turns any loss into its weighted
//! version. An expression that reads `w` places the weight itself: then the
//! batch loss is mean_i ℓ_i, and `w` is not applied twice.
//!
//! [`CustomLoss::new`] rejects, with the offending offset, what would train
//! nothing or blow up: an unknown name, a loss that reads none of `logp_c`,
//! `logp_r`, `h`, a division whose denominator is 0 for every input, a loss
//! that is not finite at the first step (policy = reference, h = 0), and a
//! loss whose gradient with respect to the policy is 0 on every sampled pair.
use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::expression::{Expression, Value, is_function};
use super::losses::{
    LogProbReduction, PairResponseLogProbs, PreferenceLoss, preference_margin, reduce,
    weighted_mean,
};

/// The per-pair variables, in the order [`CustomLoss`] binds them.
pub const PER_PAIR: [&str; 8] = [
    "logp_c", "logp_r", "ref_c", "ref_r", "len_c", "len_r", "h", "w",
];
/// The `[align]` knobs a loss may read by name.
pub const KNOBS: [&str; 3] = ["beta", "tau", "eps"];
/// The variables through which a loss depends on the policy.
const POLICY: [&str; 3] = ["logp_c", "logp_r", "h"];

/// A custom loss as a cache key stores it: the expression printed back in
/// canonical form (so spacing and redundant parentheses do not re-key) and
/// only the named numbers it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomLossSpec {
    pub expression: String,
    pub length_normalised: bool,
    /// Every named number the expression reads (knobs and constants).
    pub constants: BTreeMap<String, f64>,
}

/// What is wrong with a custom loss: a byte offset into the expression, or
/// `None` when the constants are at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LossError {
    pub offset: Option<usize>,
    pub message: String,
}

impl LossError {
    fn at(offset: usize, message: String) -> Self {
        Self {
            offset: Some(offset),
            message,
        }
    }
}

/// A checked loss expression with the values of its named numbers.
#[derive(Debug, Clone)]
pub struct CustomLoss {
    expression: Expression,
    length_normalised: bool,
    /// The named numbers, in the order they follow [`PER_PAIR`] among the
    /// expression's variables.
    constants: Vec<(String, f64)>,
}

impl CustomLoss {
    /// Parses and checks `source`. `knobs` are β, τ, ε; `constants` the
    /// manifest's own named numbers, which may not reuse a variable's,
    /// knob's or function's name.
    pub fn new(
        source: &str,
        length_normalised: bool,
        knobs: [f64; 3],
        constants: &BTreeMap<String, f64>,
    ) -> std::result::Result<Self, LossError> {
        if let Some(name) = constants.keys().find(|k| KNOBS.contains(&k.as_str())) {
            return Err(LossError {
                offset: None,
                message: format!(
                    "constant `{name}` has the name of an [align] knob; set `align.{name}` instead, \
                     or rename the constant"
                ),
            });
        }
        let mut named: BTreeMap<String, f64> =
            KNOBS.iter().map(|k| k.to_string()).zip(knobs).collect();
        named.extend(constants.iter().map(|(k, v)| (k.clone(), *v)));
        Self::compile(source, length_normalised, named)
    }

    /// The loss a [`CustomLossSpec`] stores (checked again: a cache entry
    /// written by hand fails here, not mid-training).
    pub fn from_spec(spec: &CustomLossSpec) -> std::result::Result<Self, LossError> {
        Self::compile(
            &spec.expression,
            spec.length_normalised,
            spec.constants.clone(),
        )
    }

    /// The cache-key form: canonical text, only the numbers it reads.
    pub fn spec(&self) -> CustomLossSpec {
        CustomLossSpec {
            expression: self.expression.canonical(),
            length_normalised: self.length_normalised,
            constants: self
                .constants
                .iter()
                .filter(|(name, _)| self.expression.reads(name))
                .cloned()
                .collect(),
        }
    }

    fn compile(
        source: &str,
        length_normalised: bool,
        named: BTreeMap<String, f64>,
    ) -> std::result::Result<Self, LossError> {
        for (name, value) in &named {
            let identifier = name.starts_with(|c: char| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            let problem = if !identifier {
                Some("is not a name an expression can read (letters, digits and `_`)".to_string())
            } else if PER_PAIR.contains(&name.as_str()) || is_function(name) {
                Some("is already a variable or function of the loss; rename it".to_string())
            } else if !value.is_finite() {
                Some(format!("= {value} must be a finite number"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(LossError {
                    offset: None,
                    message: format!("constant `{name}` {problem}"),
                });
            }
        }
        let constants: Vec<(String, f64)> = named.into_iter().collect();
        let variables: Vec<&str> = PER_PAIR
            .iter()
            .copied()
            .chain(constants.iter().map(|(n, _)| n.as_str()))
            .collect();
        let expression = Expression::parse(source, &variables)
            .map_err(|e| LossError::at(e.offset, e.message))?;
        let loss = Self {
            expression,
            length_normalised,
            constants,
        };
        loss.check()?;
        Ok(loss)
    }

    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    fn reduction(&self) -> LogProbReduction {
        if self.length_normalised {
            LogProbReduction::Mean
        } else {
            LogProbReduction::Sum
        }
    }

    /// The [`PER_PAIR`] values followed by the named numbers.
    fn bind(&self, per_pair: [Value; 8]) -> Vec<Value> {
        per_pair
            .into_iter()
            .chain(self.constants.iter().map(|(_, v)| Value::Scalar(*v)))
            .collect()
    }

    /// The static checks of [`CustomLoss::new`], on [`probe_pairs`].
    fn check(&self) -> std::result::Result<(), LossError> {
        let source = self.expression.source();
        if !POLICY.iter().any(|v| self.expression.reads(v)) {
            return Err(LossError::at(
                0,
                format!(
                    "the loss `{source}` reads none of {}, so it does not depend on the policy: \
                     its gradient is 0 everywhere and training would change nothing",
                    POLICY.join(", ")
                ),
            ));
        }
        let probes = probe_pairs(self.length_normalised);
        for (offset, denominator) in self.expression.denominators() {
            let zero_everywhere = probes.iter().all(|p| {
                let values: Vec<f64> = p
                    .iter()
                    .copied()
                    .chain(self.constants.iter().map(|(_, v)| *v))
                    .collect();
                denominator.eval_scalar(&values) == 0.0
            });
            if zero_everywhere {
                return Err(LossError::at(
                    offset,
                    format!(
                        "division by `{denominator}`, which is 0 for every input: the loss would be \
                         infinite or NaN on every pair"
                    ),
                ));
            }
        }
        let (first_step, policy_gradient_is_zero) = self
            .probe(&probes)
            .map_err(|e| LossError::at(0, format!("evaluating `{source}` failed: {e}")))?;
        if !first_step.is_finite() {
            return Err(LossError::at(
                0,
                format!(
                    "the loss `{source}` is {first_step} at the first step, where the policy equals \
                     the reference (h = 0, logp_c = ref_c, logp_r = ref_r): training would fail at once"
                ),
            ));
        }
        if policy_gradient_is_zero {
            return Err(LossError::at(
                0,
                format!(
                    "the gradient of `{source}` with respect to the policy (logp_c, logp_r) is 0 on \
                     all {} sampled pairs: its policy terms cancel, so training would change nothing",
                    probes.len()
                ),
            ));
        }
        Ok(())
    }

    /// The loss at the first probe pair, and whether its gradient with
    /// respect to the policy's log-probs is 0 at every probe pair.
    fn probe(&self, probes: &[[f64; 8]]) -> Result<(f64, bool)> {
        let column = |i: usize| -> Result<Tensor> {
            let values: Vec<f64> = probes.iter().map(|p| p[i]).collect();
            Tensor::from_vec(values, probes.len(), &Device::Cpu)
        };
        let logp_c = Var::from_tensor(&column(0)?)?;
        let logp_r = Var::from_tensor(&column(1)?)?;
        let (ref_c, ref_r) = (column(2)?, column(3)?);
        // h from the variables, so that it carries their gradient.
        let h = ((logp_c.as_tensor() - &ref_c)? - (logp_r.as_tensor() - &ref_r)?)?;
        let values = self.bind([
            Value::Batch(logp_c.as_tensor().clone()),
            Value::Batch(logp_r.as_tensor().clone()),
            Value::Batch(ref_c),
            Value::Batch(ref_r),
            Value::Batch(column(4)?),
            Value::Batch(column(5)?),
            Value::Batch(h),
            Value::Batch(column(7)?),
        ]);
        let Value::Batch(loss) = self.expression.eval(&values)? else {
            return Ok((f64::NAN, true)); // no per-pair term: unreachable after the POLICY check
        };
        let first = loss.get(0)?.to_scalar::<f64>()?;
        let grads = loss.sum_all()?.backward()?;
        let mut zero = true;
        for var in [&logp_c, &logp_r] {
            if let Some(g) = grads.get(var.as_tensor()) {
                zero &= g.to_vec1::<f64>()?.iter().all(|g| *g == 0.0);
            }
        }
        Ok((first, zero))
    }
}

/// How many sampled pairs the static checks evaluate a loss on.
const PROBES: usize = 64;

/// Plausible pairs in [`PER_PAIR`] order: lengths 1–64 tokens, −6 to −0.05
/// nats per token, the policy moved from the reference by 0.1 to 100 nats
/// either way (pair 0 not at all: the first step), weights in (0, 1] (pair
/// 0: 1). Seeded, so a check's verdict never changes between runs.
fn probe_pairs(length_normalised: bool) -> Vec<[f64; 8]> {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    (0..PROBES)
        .map(|k| {
            let response = |rng: &mut ChaCha8Rng| {
                let len = f64::from(rng.random_range(1..=64u32));
                let reference = len * rng.random_range(-6.0..-0.05);
                let moved = if k == 0 {
                    0.0
                } else {
                    rng.random_range(-1.0..1.0) * 10f64.powf(rng.random_range(-1.0..2.0))
                };
                let scale = if length_normalised { 1.0 / len } else { 1.0 };
                (len, (reference + moved) * scale, reference * scale)
            };
            let (len_c, logp_c, ref_c) = response(&mut rng);
            let (len_r, logp_r, ref_r) = response(&mut rng);
            let h = (logp_c - ref_c) - (logp_r - ref_r);
            let w = if k == 0 {
                1.0
            } else {
                rng.random_range(0.05..=1.0)
            };
            [logp_c, logp_r, ref_c, ref_r, len_c, len_r, h, w]
        })
        .collect()
}

impl PreferenceLoss for CustomLoss {
    /// Everything was checked by [`CustomLoss::new`].
    fn validate(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// mean_i(w_i · ℓ_i), or mean_i ℓ_i when the expression reads `w`.
    fn batch_loss(
        &self,
        policy: &PairResponseLogProbs,
        reference: &PairResponseLogProbs,
        weights: &Tensor,
    ) -> Result<Tensor> {
        let reduction = self.reduction();
        let h = preference_margin(policy, reference, reduction)?; // [B]
        let dtype: DType = h.dtype();
        let values = self.bind([
            Value::Batch(reduce(&policy.chosen, reduction)?),
            Value::Batch(reduce(&policy.rejected, reduction)?),
            Value::Batch(reduce(&reference.chosen, reduction)?),
            Value::Batch(reduce(&reference.rejected, reduction)?),
            Value::Batch(policy.chosen.count.to_dtype(dtype)?),
            Value::Batch(policy.rejected.count.to_dtype(dtype)?),
            Value::Batch(h),
            Value::Batch(weights.to_dtype(dtype)?),
        ]);
        let Value::Batch(per_pair) = self.expression.eval(&values)? else {
            candle_core::bail!(
                "loss `{}` has no per-pair term (checked when it was built)",
                self.expression
            );
        }; // [B]
        if self.expression.reads("w") {
            per_pair.mean_all()
        } else {
            weighted_mean(&per_pair, weights)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResponseLogProbs;

    const KNOB_VALUES: [f64; 3] = [0.5, 0.1, 0.2];

    fn loss(src: &str) -> std::result::Result<CustomLoss, LossError> {
        let constants = BTreeMap::from([("gamma".to_string(), 0.3)]);
        CustomLoss::new(src, false, KNOB_VALUES, &constants)
    }

    fn err(src: &str) -> LossError {
        loss(src).expect_err(src)
    }

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// Two pairs with h = (−3 + 4) − (−5 + 5) = 1 and (−2 + 1) − (−7 + 4) = 2.
    fn pairs() -> (PairResponseLogProbs, PairResponseLogProbs) {
        let lp = |sum: &[f64], count: &[f64]| ResponseLogProbs {
            sum: t(sum),
            count: t(count),
        };
        let policy = PairResponseLogProbs {
            chosen: lp(&[-3.0, -2.0], &[2.0, 4.0]),
            rejected: lp(&[-5.0, -7.0], &[5.0, 3.0]),
        };
        let reference = PairResponseLogProbs {
            chosen: lp(&[-4.0, -1.0], &[2.0, 4.0]),
            rejected: lp(&[-5.0, -4.0], &[5.0, 3.0]),
        };
        (policy, reference)
    }

    fn batch(l: &CustomLoss, weights: &[f64]) -> f64 {
        let (policy, reference) = pairs();
        l.batch_loss(&policy, &reference, &t(weights))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn hinge_by_hand_weighted_unless_it_reads_w() {
        // h = 1 and 2, so ℓ = relu(1 − 0.5·h) = 0.5 and 0.
        let hinge = loss("relu(1 - beta*h)").unwrap();
        // Weighted: mean(0.2·0.5, 1.0·0).
        assert!((batch(&hinge, &[0.2, 1.0]) - 0.05).abs() < 1e-15);
        // Reading `w` places the weight itself: w² here, so mean(0.04·0.5, 1·0).
        let squared = loss("w^2*relu(1 - beta*h)").unwrap();
        assert!((batch(&squared, &[0.2, 1.0]) - 0.01).abs() < 1e-15);
    }

    #[test]
    fn every_variable_is_bound_to_its_own_column() {
        // A linear form with a distinct coefficient per variable, by hand.
        let src = "logp_c + 2*logp_r + 4*ref_c + 8*ref_r + 16*len_c + 32*len_r + 64*h + gamma*tau";
        let l = loss(src).unwrap();
        let (pc, pr, rc, rr, nc, nr) = (
            [-3.0, -2.0],
            [-5.0, -7.0],
            [-4.0, -1.0],
            [-5.0, -4.0],
            [2.0, 4.0],
            [5.0, 3.0],
        );
        let per: Vec<f64> = (0..2)
            .map(|i| {
                let h = (pc[i] - rc[i]) - (pr[i] - rr[i]);
                pc[i]
                    + 2.0 * pr[i]
                    + 4.0 * rc[i]
                    + 8.0 * rr[i]
                    + 16.0 * nc[i]
                    + 32.0 * nr[i]
                    + 64.0 * h
                    + 0.3 * 0.1
            })
            .collect();
        let want = (0.5 * per[0] + 0.25 * per[1]) / 2.0;
        assert!((batch(&l, &[0.5, 0.25]) - want).abs() < 1e-12);
        // Length-normalised: the four log-probs and h are per-token means.
        let constants = BTreeMap::from([("gamma".to_string(), 0.3)]);
        let mean = CustomLoss::new("logp_c - 3*ref_r + h", true, KNOB_VALUES, &constants).unwrap();
        let per: Vec<f64> = (0..2)
            .map(|i| {
                let h = (pc[i] / nc[i] - rc[i] / nc[i]) - (pr[i] / nr[i] - rr[i] / nr[i]);
                pc[i] / nc[i] - 3.0 * rr[i] / nr[i] + h
            })
            .collect();
        assert!((batch(&mean, &[1.0, 1.0]) - (per[0] + per[1]) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_names_fail_with_their_offset() {
        let e = err("relu(1 - betta*h)");
        assert_eq!(e.offset, Some(9));
        assert!(
            e.message.contains("unknown variable `betta`") && e.message.contains("gamma"),
            "{e}"
        );
        let e = err("-logsigmoid(beta*h)");
        assert_eq!(e.offset, Some(1));
        assert!(e.message.contains("unknown function `logsigmoid`"), "{e}");
    }

    #[test]
    fn a_denominator_that_is_always_zero_is_an_error() {
        for (src, offset) in [
            ("h/0", 2),
            ("h/(tau - 0.1)", 2),
            ("-log_sigmoid(beta*h)/(len_c - len_c)", 21),
            ("relu(1 - h/(h - h))", 11),
        ] {
            let e = err(src);
            assert_eq!(e.offset, Some(offset), "{src}: {e}");
            assert!(e.message.contains("0 for every input"), "{src}: {e}");
        }
        // Zero for some inputs only is fine (and usual: the length of a response is ≥ 1).
        assert!(loss("h/len_c + h/(1 - 2*eps)").is_ok());
    }

    #[test]
    fn a_loss_without_the_policy_is_an_error() {
        for src in ["ref_c - ref_r", "beta*len_c", "w", "gamma"] {
            let e = err(src);
            assert_eq!(e.offset, Some(0));
            assert!(
                e.message.contains("does not depend on the policy"),
                "{src}: {e}"
            );
        }
        // Reads the policy, but the terms cancel: gradient 0 everywhere.
        for src in ["h - h", "0*logp_c + ref_c", "logp_c - logp_r - h"] {
            let e = err(src);
            assert!(e.message.contains("policy terms cancel"), "{src}: {e}");
        }
        // A hinge is flat where β·h > 1 but not everywhere.
        assert!(loss("relu(1 - beta*h)").is_ok());
        assert!(loss("relu(-10 - h)").is_ok());
    }

    #[test]
    fn a_loss_that_is_not_finite_at_the_first_step_is_an_error() {
        let e = err("-log(sigmoid(beta*h) - 0.5)");
        assert!(e.message.contains("first step"), "{e}");
        assert!(loss("-log(sigmoid(beta*h))").is_ok());
    }

    #[test]
    fn constants_may_not_shadow_names_or_be_infinite() {
        for (name, value, needle) in [
            ("beta", 1.0, "[align] knob"),
            ("h", 1.0, "already a variable"),
            ("relu", 1.0, "already a variable or function"),
            ("my-gamma", 1.0, "not a name"),
            ("gamma", f64::INFINITY, "finite"),
        ] {
            let constants = BTreeMap::from([(name.to_string(), value)]);
            let e = CustomLoss::new("relu(1 - h)", false, KNOB_VALUES, &constants).unwrap_err();
            assert_eq!(e.offset, None);
            assert!(e.message.contains(needle), "{name}: {e}");
        }
    }

    #[test]
    fn the_spec_is_canonical_and_keeps_only_what_the_loss_reads() {
        let a = loss("relu( 1-beta * (h) )").unwrap().spec();
        let b = loss("relu(1 - beta*h)").unwrap().spec();
        assert_eq!(a, b);
        assert_eq!(a.expression, "relu(1 - beta*h)");
        assert_eq!(a.constants, BTreeMap::from([("beta".to_string(), 0.5)]));
        let simpo = loss("-log_sigmoid(beta*(logp_c/len_c - logp_r/len_r) - gamma)").unwrap();
        assert_eq!(
            simpo.spec().constants.keys().collect::<Vec<_>>(),
            ["beta", "gamma"]
        );
        // The spec round-trips to the same loss.
        let back = CustomLoss::from_spec(&simpo.spec()).unwrap();
        assert_eq!(back.spec(), simpo.spec());
        assert!((batch(&back, &[1.0, 0.5]) - batch(&simpo, &[1.0, 0.5])).abs() < 1e-15);
    }
}
