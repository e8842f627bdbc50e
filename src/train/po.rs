//! Preference optimisation of the strong model (DPO / IPO / rDPO), each pair's
//! loss scaled by its weight (CW-PO: mean_i c_i · ℓ_i), against reference
//! log-probs computed once; and the WS-DPO weak labeller's implicit reward.
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::losses::{PairResponseLogProbs, PreferenceLoss};
use super::optim::run_training;
use super::{Batching, LoopRun, StepInfo, TokenizedPair, TrainReport, WeakLabel, halves};
use crate::model::{LanguageModel, ResponseLogProbs};

/// A frozen model's response log-probs for one pair. Computed once per
/// (reference model, pairs) and shared by every objective and weighting that
/// aligns against it; serialisable so a cache can store it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairLogProbs {
    /// Σ log π_ref over the chosen response's tokens.
    pub chosen_sum: f64,
    pub chosen_count: f64,
    pub rejected_sum: f64,
    pub rejected_count: f64,
}

/// Log-probs of both responses of every pair under `model`, without
/// gradients, in `batch_size` pairs per forward pass.
pub fn reference_logprobs(
    model: &dyn LanguageModel,
    pairs: &[TokenizedPair],
    batching: &Batching,
    batch_size: usize,
) -> anyhow::Result<Vec<PairLogProbs>> {
    anyhow::ensure!(
        batch_size >= 1,
        "reference log-probs: batch size must be at least 1, got {batch_size}"
    );
    batching.check_pairs(pairs)?;
    let mut out = Vec::with_capacity(pairs.len());
    for (c, chunk) in pairs.chunks(batch_size).enumerate() {
        let selected: Vec<&TokenizedPair> = chunk.iter().collect();
        let lp = model.response_logprobs(&batching.pairs(&selected)?)?; // [2B]
        let to_vec = |t: &Tensor| t.detach().to_dtype(DType::F64)?.to_vec1::<f64>();
        let (sum, count) = (to_vec(&lp.sum)?, to_vec(&lp.count)?);
        let b = chunk.len();
        for k in 0..b {
            let pair = PairLogProbs {
                chosen_sum: sum[k],
                chosen_count: count[k],
                rejected_sum: sum[b + k],
                rejected_count: count[b + k],
            };
            anyhow::ensure!(
                pair.chosen_sum.is_finite() && pair.rejected_sum.is_finite(),
                "reference log-probs of pair {} are not finite: {pair:?}",
                c * batch_size + k
            );
            out.push(pair);
        }
    }
    Ok(out)
}

/// Stored log-probs as tensors of `dtype`, [B] each.
fn stored_as_tensors(
    stored: &[&PairLogProbs],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<PairResponseLogProbs> {
    let column = |f: fn(&PairLogProbs) -> f64| -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            stored.iter().map(|p| f(p)).collect::<Vec<f64>>(),
            stored.len(),
            device,
        )?
        .to_dtype(dtype)
    };
    Ok(PairResponseLogProbs {
        chosen: ResponseLogProbs {
            sum: column(|p| p.chosen_sum)?,
            count: column(|p| p.chosen_count)?,
        },
        rejected: ResponseLogProbs {
            sum: column(|p| p.rejected_sum)?,
            count: column(|p| p.rejected_count)?,
        },
    })
}

/// What a PO run aligns on: the pairs (chosen = the labeller's choice), the
/// reference log-probs of those pairs, and one weight per pair (all 1 for
/// the unweighted Human and WS baselines).
#[derive(Debug, Clone, Copy)]
pub struct PoData<'a> {
    pub pairs: &'a [TokenizedPair],
    pub reference: &'a [PairLogProbs],
    pub weights: &'a [f64],
}

impl PoData<'_> {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.pairs.len() == self.reference.len() && self.pairs.len() == self.weights.len(),
            "preference data: {} pairs, {} reference log-probs and {} weights must be the same number; \
             recompute the reference log-probs for these pairs",
            self.pairs.len(),
            self.reference.len(),
            self.weights.len()
        );
        if let Some(i) = self.weights.iter().position(|w| !w.is_finite()) {
            anyhow::bail!(
                "preference data: weight of pair {i} is {}, not a finite number",
                self.weights[i]
            );
        }
        Ok(())
    }
}

/// `objective`'s batch loss over the pairs at `indices` (for the built-ins
/// mean_i(w_i · ℓ_i)). Scalar.
pub fn po_batch_loss(
    policy: &dyn LanguageModel,
    batching: &Batching,
    data: &PoData,
    objective: &dyn PreferenceLoss,
    indices: &[usize],
) -> anyhow::Result<Tensor> {
    let selected: Vec<&TokenizedPair> = indices.iter().map(|&i| &data.pairs[i]).collect();
    let lp = policy.response_logprobs(&batching.pairs(&selected)?)?; // [2B]
    po_loss_of(&lp, data, objective, indices)
}

/// `objective`'s batch loss of the pairs at `indices` from the policy's
/// log-probs of them (`lp`: [2B], chosen halves first).
fn po_loss_of(
    lp: &ResponseLogProbs,
    data: &PoData,
    objective: &dyn PreferenceLoss,
    indices: &[usize],
) -> anyhow::Result<Tensor> {
    let (chosen_sum, rejected_sum) = halves(&lp.sum)?;
    let (chosen_count, rejected_count) = halves(&lp.count)?;
    let policy_lp = PairResponseLogProbs {
        chosen: ResponseLogProbs {
            sum: chosen_sum,
            count: chosen_count,
        },
        rejected: ResponseLogProbs {
            sum: rejected_sum,
            count: rejected_count,
        },
    };
    let reference: Vec<&PairLogProbs> = indices.iter().map(|&i| &data.reference[i]).collect();
    let reference_lp = stored_as_tensors(&reference, lp.sum.dtype(), lp.sum.device())?;
    let weights: Vec<f64> = indices.iter().map(|&i| data.weights[i]).collect();
    let weights = Tensor::from_vec(weights, indices.len(), lp.sum.device())?; // [B]
    Ok(objective.batch_loss(&policy_lp, &reference_lp, &weights)?)
}

/// A PO step's statistics, summed over its micro-batches: the implicit
/// reward margin h_i = [log π(y_w) − log π_ref(y_w)] − [log π(y_l) − log π_ref(y_l)]
/// (summed token log-probs, before β; TRL's `rewards/margins` is β·h), how
/// many pairs have h_i > 0 (TRL's `rewards/accuracies`), and the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoStepStats {
    pub pairs: usize,
    pub margin_sum: f64,
    pub positive: usize,
    pub weight_sum: f64,
}

impl PoStepStats {
    /// The statistics of the pairs at `indices` under the policy's log-probs
    /// (`policy[i]` of pair `indices[i]`; gradients are not needed).
    pub fn of(data: &PoData, indices: &[usize], policy: &[PairLogProbs]) -> PoStepStats {
        let mut stats = PoStepStats::default();
        for (&i, p) in indices.iter().zip(policy) {
            let r = &data.reference[i];
            let h = (p.chosen_sum - r.chosen_sum) - (p.rejected_sum - r.rejected_sum);
            stats.pairs += 1;
            stats.margin_sum += h;
            stats.positive += usize::from(h > 0.0);
            stats.weight_sum += data.weights[i];
        }
        stats
    }

    fn add(&mut self, other: PoStepStats) {
        self.pairs += other.pairs;
        self.margin_sum += other.margin_sum;
        self.positive += other.positive;
        self.weight_sum += other.weight_sum;
    }

    /// `(reward_margin, accuracy, mean_weight)`: the means over the step's pairs.
    pub fn means(&self) -> (f64, f64, f64) {
        let n = self.pairs.max(1) as f64;
        (
            self.margin_sum / n,
            self.positive as f64 / n,
            self.weight_sum / n,
        )
    }
}

/// The trace names of [`PoStepStats::means`], in its order.
pub const PO_STEP_STATS: [&str; 3] = ["reward_margin", "accuracy", "mean_weight"];

/// The summed log-probs of a forward's pairs, as [`PairLogProbs`] (counts
/// left at 0: the margin does not read them).
fn pair_sums(lp: &ResponseLogProbs) -> anyhow::Result<Vec<PairLogProbs>> {
    let sum = lp.sum.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let b = sum.len() / 2;
    Ok((0..b)
        .map(|k| PairLogProbs {
            chosen_sum: sum[k],
            chosen_count: 0.0,
            rejected_sum: sum[b + k],
            rejected_count: 0.0,
        })
        .collect())
}

/// Aligns `policy` on `data` with `objective`; with a `checkpoint`,
/// resumably (see [`run_training`]).
pub fn train_po(
    policy: &dyn LanguageModel,
    data: &PoData,
    objective: &dyn PreferenceLoss,
    run: LoopRun,
) -> anyhow::Result<TrainReport> {
    objective.validate()?;
    data.validate()?;
    let batching = run.batching();
    batching.check_pairs(data.pairs)?;
    let LoopRun {
        config,
        mut progress,
        checkpoint,
        ..
    } = run;
    // The step statistics ride along the loss: each micro-batch adds its
    // pairs' to the step's, which the progress hook closes.
    let step_so_far = std::cell::Cell::new(PoStepStats::default());
    let mut steps: Vec<PoStepStats> = Vec::new();
    let mut loss = |indices: &[usize]| {
        let selected: Vec<&TokenizedPair> = indices.iter().map(|&i| &data.pairs[i]).collect();
        let lp = policy.response_logprobs(&batching.pairs(&selected)?)?;
        let mut stats = step_so_far.get();
        stats.add(PoStepStats::of(data, indices, &pair_sums(&lp)?));
        step_so_far.set(stats);
        po_loss_of(&lp, data, objective, indices)
    };
    let mut hook = |info: StepInfo| {
        steps.push(step_so_far.take());
        if let Some(progress) = progress.as_mut() {
            progress(info);
        }
    };
    let mut report = run_training(
        policy.trainable_vars(),
        data.pairs.len(),
        config,
        &mut loss,
        &mut hook,
        checkpoint,
    )?;
    // Steps an earlier attempt took (a resume) were not seen here.
    let unseen = report.steps.saturating_sub(steps.len());
    for (k, name) in PO_STEP_STATS.iter().enumerate() {
        let column = std::iter::repeat_n(None, unseen)
            .chain(steps.iter().map(|s| {
                let (margin, accuracy, weight) = s.means();
                Some([margin, accuracy, weight][k])
            }))
            .collect();
        report.step_stats.insert(name.to_string(), column);
    }
    Ok(report)
}

/// WS-DPO's weak labels: the implicit reward r(y) = β·[log π_w(y) − log π_ref(y)]
/// of each response (summed log-probs); the higher reward wins and its
/// margin is the label's Δ.
pub fn implicit_reward_labels(
    policy: &[PairLogProbs],
    reference: &[PairLogProbs],
    beta: f64,
) -> anyhow::Result<Vec<WeakLabel>> {
    anyhow::ensure!(
        policy.len() == reference.len(),
        "implicit reward: {} policy log-probs but {} reference log-probs; compute both on the same pairs",
        policy.len(),
        reference.len()
    );
    anyhow::ensure!(
        beta.is_finite() && beta > 0.0,
        "implicit reward: `beta` = {beta} must be positive"
    );
    Ok(policy
        .iter()
        .zip(reference)
        .map(|(p, r)| {
            WeakLabel::from_scores(
                beta * (p.chosen_sum - r.chosen_sum),
                beta * (p.rejected_sum - r.rejected_sum),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::TrainConfig;
    use crate::train::test_model::{TinyCausalModel, check_gradients, test_batching, tiny_policy};
    use crate::train::{CustomLoss, PreferenceObjective};
    use candle_core::Var;

    /// Three pairs worked by hand: h = (policy − reference) of chosen minus
    /// that of rejected = +1.0, −0.5, +2.0 → margin 2.5/3, accuracy 2/3;
    /// weights 1, 0.5, 0 → mean 0.5 (pair 3 is not in the step; pairs 0
    /// and 1 alone, added micro-batch by micro-batch: 0.75).
    #[test]
    fn step_stats_are_the_means_of_margin_sign_and_weight() {
        let lp = |c: f64, r: f64| PairLogProbs {
            chosen_sum: c,
            chosen_count: 1.0,
            rejected_sum: r,
            rejected_count: 1.0,
        };
        let reference = [lp(-2.0, -2.0), lp(-1.0, -3.0), lp(-5.0, -5.0), lp(0.0, 0.0)];
        let weights = [1.0, 0.5, 0.0, 9.0];
        let data = PoData {
            pairs: &[],
            reference: &reference,
            weights: &weights,
        };
        let policy = [lp(-1.0, -2.0), lp(-1.5, -3.0), lp(-3.0, -5.0)];
        let stats = PoStepStats::of(&data, &[0, 1, 2], &policy);
        let (margin, accuracy, weight) = stats.means();
        assert!((margin - 2.5 / 3.0).abs() < 1e-12, "{margin}");
        assert!((accuracy - 2.0 / 3.0).abs() < 1e-12, "{accuracy}");
        assert!((weight - 0.5).abs() < 1e-12, "{weight}");
        let mut two = PoStepStats::of(&data, &[0], &policy[..1]);
        two.add(PoStepStats::of(&data, &[1], &policy[1..2]));
        assert_eq!(two.pairs, 2);
        assert!((two.means().2 - 0.75).abs() < 1e-12);
    }

    /// Pairs whose chosen responses repeat the prompt token and whose
    /// rejected ones do not, with varied lengths.
    fn pairs() -> Vec<TokenizedPair> {
        (0..8u32)
            .map(|i| TokenizedPair {
                prompt: vec![1, 4 + i % 6],
                chosen: vec![4 + i % 6; 2 + (i as usize % 3)],
                rejected: (10..12 + i % 4).collect(),
            })
            .collect()
    }

    const OBJECTIVES: [PreferenceObjective; 4] = [
        PreferenceObjective::dpo(0.5),
        PreferenceObjective::Ipo {
            tau: 0.1,
            length_normalised: true,
        },
        PreferenceObjective::Ipo {
            tau: 0.1,
            length_normalised: false,
        },
        PreferenceObjective::Rdpo {
            beta: 0.5,
            epsilon: 0.2,
        },
    ];

    /// `PoData` over borrowed pairs, reference log-probs and weights.
    fn po_data<'a>(
        pairs: &'a [TokenizedPair],
        reference: &'a [PairLogProbs],
        weights: &'a [f64],
    ) -> PoData<'a> {
        PoData {
            pairs,
            reference,
            weights,
        }
    }

    /// A policy that has moved away from its reference, so that h ≠ 0.
    fn moved_policy_and_reference() -> anyhow::Result<(TinyCausalModel, Vec<PairLogProbs>)> {
        let reference = TinyCausalModel::new(16, 6, 5, 21, DType::F64)?;
        let stored = reference_logprobs(&reference, &pairs(), &test_batching(), 3)?;
        let policy = TinyCausalModel::new(16, 6, 5, 22, DType::F64)?;
        Ok((policy, stored))
    }

    /// `train_po` on the CPU with pad id 0 and no progress callback.
    fn train(
        policy: &dyn LanguageModel,
        data: &PoData,
        objective: &dyn PreferenceLoss,
        config: &TrainConfig,
    ) -> anyhow::Result<TrainReport> {
        train_po(
            policy,
            data,
            objective,
            LoopRun::quiet(config, 0, &Device::Cpu),
        )
    }

    /// Trains `policy` for 10 epochs (batch 4, lr 1e-2) with `objective` on
    /// [`pairs`] at unit weights, against its own starting log-probs as the
    /// reference. Returns the reference and the report.
    fn train_from_itself(
        policy: &dyn LanguageModel,
        objective: &dyn PreferenceLoss,
    ) -> anyhow::Result<(Vec<PairLogProbs>, TrainReport)> {
        let pairs = pairs();
        let reference = reference_logprobs(policy, &pairs, &test_batching(), 4)?;
        let weights = vec![1.0; pairs.len()];
        let data = po_data(&pairs, &reference, &weights);
        let config = TrainConfig {
            epochs: 10,
            batch_size: 4,
            lr: 1e-2,
            ..TrainConfig::default()
        };
        let report = train(policy, &data, objective, &config)?;
        Ok((reference, report))
    }

    #[test]
    fn po_loss_gradients_match_finite_differences() -> anyhow::Result<()> {
        let (policy, reference) = moved_policy_and_reference()?;
        let pairs = pairs();
        let weights = [0.9, 0.3, 0.6, 1.0, 0.2, 0.5, 0.7, 0.8];
        let data = po_data(&pairs, &reference, &weights);
        for objective in OBJECTIVES {
            check_gradients(&policy.vars(), 4, &|| {
                po_batch_loss(&policy, &test_batching(), &data, &objective, &[0, 3, 5])
            })
            .map_err(|e| e.context(format!("{objective:?}")))?;
        }
        Ok(())
    }

    fn gradients(policy: &TinyCausalModel, loss: Tensor) -> anyhow::Result<Vec<Vec<f64>>> {
        let grads = loss.backward()?;
        policy
            .vars()
            .iter()
            .map(|v: &Var| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.flatten_all()?.to_vec1::<f64>()?),
                None => Ok(vec![0.0; v.elem_count()]), // the scalar head: unused by log-probs
            })
            .collect()
    }

    #[test]
    fn a_zero_weight_pair_contributes_no_gradient() -> anyhow::Result<()> {
        let (policy, reference) = moved_policy_and_reference()?;
        let pairs = pairs();
        let weights = [1.0, 0.0, 0.4, 1.0, 1.0, 1.0, 1.0, 1.0];
        let data = po_data(&pairs, &reference, &weights);
        for objective in OBJECTIVES {
            // Alone, the zero-weight pair's gradient is exactly zero.
            let alone = gradients(
                &policy,
                po_batch_loss(&policy, &test_batching(), &data, &objective, &[1])?,
            )?;
            assert!(alone.iter().flatten().all(|g| *g == 0.0), "{objective:?}");
            // With it, the batch's gradient is that of the batch without it,
            // scaled by 2/3 because the mean still counts it (nothing filtered).
            let with = gradients(
                &policy,
                po_batch_loss(&policy, &test_batching(), &data, &objective, &[0, 1, 2])?,
            )?;
            let without = gradients(
                &policy,
                po_batch_loss(&policy, &test_batching(), &data, &objective, &[0, 2])?,
            )?;
            for (w, wo) in with.iter().flatten().zip(without.iter().flatten()) {
                assert!(
                    (w * 3.0 - wo * 2.0).abs() < 1e-12 * (1.0 + wo.abs()),
                    "{objective:?}: {w} vs {wo}"
                );
            }
            assert!(
                without.iter().flatten().any(|g| g.abs() > 1e-6),
                "{objective:?}: a vacuous comparison"
            );
        }
        Ok(())
    }

    #[test]
    fn dpo_raises_the_chosen_minus_rejected_margin() -> anyhow::Result<()> {
        let policy = tiny_policy(5)?;
        let objective = PreferenceObjective::dpo(0.5);
        let (reference, report) = train_from_itself(&policy, &objective)?;
        // At the start policy = reference: h = 0 and ℓ = log 2 for every pair.
        assert!(
            (report.losses[0] - 2f64.ln()).abs() < 1e-5,
            "first loss {}",
            report.losses[0]
        );
        let after = reference_logprobs(&policy, &pairs(), &test_batching(), 4)?;
        let margin = |lp: &[PairLogProbs]| -> f64 {
            lp.iter()
                .zip(&reference)
                .map(|(p, r)| (p.chosen_sum - r.chosen_sum) - (p.rejected_sum - r.rejected_sum))
                .sum::<f64>()
                / lp.len() as f64
        };
        assert!(margin(&after) > 1.0, "mean h after DPO: {}", margin(&after));
        assert!(report.final_loss < report.losses[0]);
        // The trace's statistics, one per step: the first step sees h = 0
        // (no pair right yet), unit weights throughout, and the margin grows.
        for name in PO_STEP_STATS {
            assert_eq!(report.step_stats[name].len(), report.steps, "{name}");
        }
        let stat = |name: &str, step: usize| report.step_stats[name][step].unwrap();
        assert!(stat("reward_margin", 0).abs() < 1e-9);
        assert_eq!(stat("accuracy", 0), 0.0);
        assert_eq!(stat("mean_weight", report.steps - 1), 1.0);
        assert!(stat("reward_margin", report.steps - 1) > 0.5);
        Ok(())
    }

    /// The built-ins written as custom expressions (README: Writing a loss),
    /// each with its built-in twin.
    fn built_ins_as_expressions() -> Vec<(PreferenceObjective, CustomLoss)> {
        let (beta, tau, eps) = (0.5, 0.1, 0.2);
        let custom = |src: &str, length_normalised: bool| {
            CustomLoss::new(
                src,
                length_normalised,
                [beta, tau, eps],
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{src}: {e}"))
        };
        let dpo = PreferenceObjective::dpo(beta);
        let ipo = PreferenceObjective::Ipo {
            tau,
            length_normalised: true,
        };
        let rdpo = PreferenceObjective::Rdpo { beta, epsilon: eps };
        vec![
            (dpo, custom("-log_sigmoid(beta*h)", false)),
            // Reading `w` places the weight itself: the same CW-DPO.
            (dpo, custom("-w*log_sigmoid(beta*h)", false)),
            (ipo, custom("(h - 1/(2*tau))^2", true)),
            // The same IPO spelled out on summed log-probs.
            (
                ipo,
                custom(
                    "square(logp_c/len_c - ref_c/len_c - (logp_r/len_r - ref_r/len_r) - 1/(2*tau))",
                    false,
                ),
            ),
            (
                rdpo,
                custom(
                    "((1 - eps)*-log_sigmoid(beta*h) - eps*-log_sigmoid(-beta*h))/(1 - 2*eps)",
                    false,
                ),
            ),
        ]
    }

    #[test]
    fn built_ins_written_as_expressions_match_in_value_and_gradient() -> anyhow::Result<()> {
        let (policy, reference) = moved_policy_and_reference()?;
        let pairs = pairs();
        let weights = [0.9, 0.3, 0.6, 1.0, 0.2, 0.5, 0.7, 0.8];
        let data = po_data(&pairs, &reference, &weights);
        let batch = [0, 3, 5, 6];
        for (built_in, custom) in built_ins_as_expressions() {
            let what = format!("{built_in:?} vs `{}`", custom.expression());
            let want = po_batch_loss(&policy, &test_batching(), &data, &built_in, &batch)?;
            let got = po_batch_loss(&policy, &test_batching(), &data, &custom, &batch)?;
            let (w, g) = (want.to_scalar::<f64>()?, got.to_scalar::<f64>()?);
            assert!((w - g).abs() < 1e-6, "{what}: loss {g} vs {w}");
            let want = gradients(&policy, want)?;
            let got = gradients(&policy, got)?;
            for (a, b) in want.iter().flatten().zip(got.iter().flatten()) {
                assert!((a - b).abs() < 1e-5, "{what}: gradient {b} vs {a}");
            }
            assert!(
                want.iter().flatten().any(|g| g.abs() > 1e-3),
                "{what}: a vacuous comparison"
            );
            // And backprop through the expression agrees with finite differences.
            check_gradients(&policy.vars(), 4, &|| {
                po_batch_loss(&policy, &test_batching(), &data, &custom, &batch)
            })
            .map_err(|e| e.context(what.clone()))?;
        }
        Ok(())
    }

    /// TRL's reward accuracy: the fraction of pairs whose implicit reward
    /// margin h = [log π(y_c) − log π_ref(y_c)] − [log π(y_r) − log π_ref(y_r)]
    /// is positive.
    fn reward_accuracy(after: &[PairLogProbs], reference: &[PairLogProbs]) -> f64 {
        let right = after
            .iter()
            .zip(reference)
            .filter(|(p, r)| {
                (p.chosen_sum - r.chosen_sum) - (p.rejected_sum - r.rejected_sum) > 0.0
            })
            .count();
        right as f64 / after.len() as f64
    }

    #[test]
    fn a_hinge_loss_raises_pair_accuracy_on_a_separable_set() -> anyhow::Result<()> {
        // Chosen responses repeat the prompt's token, rejected ones never do.
        let policy = tiny_policy(5)?;
        let hinge = CustomLoss::new(
            "relu(1 - beta*h)",
            false,
            [0.5, 0.1, 0.1],
            &Default::default(),
        )
        .map_err(anyhow::Error::msg)?;
        let (reference, report) = train_from_itself(&policy, &hinge)?;
        // At the start policy = reference: h = 0, ℓ = relu(1) = 1, no pair
        // right (h > 0 is strict).
        assert!(
            (report.losses[0] - 1.0).abs() < 1e-5,
            "first loss {}",
            report.losses[0]
        );
        assert_eq!(reward_accuracy(&reference, &reference), 0.0);
        let after = reward_accuracy(
            &reference_logprobs(&policy, &pairs(), &test_batching(), 4)?,
            &reference,
        );
        assert!(after >= 0.875, "reward accuracy after the hinge: {after}");
        assert!(
            report.final_loss < 0.5 * report.losses[0],
            "{:?}",
            report.losses
        );
        Ok(())
    }

    #[test]
    fn reference_logprobs_match_a_direct_forward_and_survive_serde() -> anyhow::Result<()> {
        let model = tiny_policy(1)?;
        let pairs = pairs();
        let stored = reference_logprobs(&model, &pairs, &test_batching(), 3)?;
        // Pair 4 alone, unpadded, against its row in a padded batch of 3.
        let direct = model.response_logprobs(&test_batching().pairs(&[&pairs[4]])?)?;
        let sums = direct.sum.to_vec1::<f32>()?;
        assert!(
            (stored[4].chosen_sum - sums[0] as f64).abs() < 1e-4
                && (stored[4].rejected_sum - sums[1] as f64).abs() < 1e-4,
            "{:?} vs {sums:?}",
            stored[4]
        );
        assert_eq!(stored[4].chosen_count, pairs[4].chosen.len() as f64);
        assert_eq!(stored[4].rejected_count, pairs[4].rejected.len() as f64);
        let json = serde_json::to_string(&stored)?;
        let back = serde_json::from_str::<Vec<PairLogProbs>>(&json)?;
        // serde_json's default float parser may differ in the last bit.
        for (a, b) in back.iter().zip(&stored) {
            assert!(
                (a.chosen_sum - b.chosen_sum).abs() < 1e-12
                    && (a.rejected_sum - b.rejected_sum).abs() < 1e-12
            );
            assert_eq!(
                (a.chosen_count, a.rejected_count),
                (b.chosen_count, b.rejected_count)
            );
        }
        assert_eq!(back.len(), stored.len());
        Ok(())
    }

    #[test]
    fn implicit_reward_labels_by_hand() -> anyhow::Result<()> {
        let lp = |c: f64, r: f64| PairLogProbs {
            chosen_sum: c,
            chosen_count: 3.0,
            rejected_sum: r,
            rejected_count: 2.0,
        };
        let policy = [lp(-5.0, -9.0), lp(-8.0, -2.0)];
        let reference = [lp(-6.0, -8.0), lp(-7.0, -4.0)];
        let labels = implicit_reward_labels(&policy, &reference, 0.5)?;
        // Pair 0: r_c = 0.5·1 = 0.5, r_r = 0.5·(−1) = −0.5 → keeps the order.
        assert_eq!(
            labels[0],
            WeakLabel {
                prefers_chosen: true,
                s_c: 0.5,
                s_r: -0.5
            }
        );
        // Pair 1: r_c = −0.5, r_r = 1.0 → flips.
        assert_eq!(
            labels[1],
            WeakLabel {
                prefers_chosen: false,
                s_c: 1.0,
                s_r: -0.5
            }
        );
        assert!(implicit_reward_labels(&policy, &reference[..1], 0.5).is_err());
        Ok(())
    }

    #[test]
    fn mismatched_lengths_and_nan_weights_are_errors() {
        let model = tiny_policy(0).unwrap();
        let pairs = pairs();
        let reference = reference_logprobs(&model, &pairs, &test_batching(), 8).unwrap();
        let objective = PreferenceObjective::dpo(0.5);
        let config = TrainConfig::default();
        let short = vec![1.0; 3];
        let data = po_data(&pairs, &reference, &short);
        let err = train(&model, &data, &objective, &config).unwrap_err();
        assert!(err.to_string().contains("3 weights"), "{err}");
        let mut nan = vec![1.0; 8];
        nan[6] = f64::NAN;
        let data = po_data(&pairs, &reference, &nan);
        let err = train(&model, &data, &objective, &config).unwrap_err();
        assert!(err.to_string().contains("pair 6"), "{err}");
    }
}
