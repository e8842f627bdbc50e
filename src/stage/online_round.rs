//! `online_round`: one round of online (iterative) DPO, Tables 21–22 (the
//! paper's §J.5, after Guo et al. 2024). The round samples two responses to
//! each of its D_U prompts from the current policy (role `policy`: the SFT
//! model in round 1, the previous round's artifact after), has the cell's
//! labeller pick one, and takes the align recipe's preference steps on those
//! pairs from the current policy, against the SFT model (role `sft`) as the
//! reference. Each round is its own cached stage keyed by the previous
//! round, so changing round 1 re-runs every later round.
//!
//! Labellers (`Labeller`):
//! - `reward_model` (Online DPO): the cell's judge (`metric.gold`). On the
//!   tiny profile that is the world's true reward (or the learned gold),
//!   the same judge GRA is measured with, so Online DPO here is the
//!   best case of "a dedicated reward model"; on the paper profile it is
//!   the gold RM given by path.
//! - `weak` (Online CW-DPO / WS-DPO): the weak annotator trained offline on
//!   D_L (role `weak`, a `weak_train` artifact: the BT scorer for `cw`, the
//!   SFT+DPO weak LM for `ws`), read by the same code that labels D_U
//!   offline (`annotate::label_pairs`); its confidence becomes the pair's
//!   weight under `cw`.
//!
//! Why the judge also scores the weak labels: the paper explains online
//! CW/WS-DPO's loss by the weak annotator's distribution shift (it never saw
//! on-policy responses); the round records how often the labeller agrees
//! with the judge on the pairs the judge does not tie (`label_gold_agreement`).
//!
//! Resumable (issue #23): the sampling phase saves its finished batches as
//! `generate` does, the training phase checkpoints as `align` does.
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::annotate::label_pairs;
use super::artifacts::{MODEL_DIR, split_pairs};
use super::generate::generate_checkpointed;
use super::models::{PairTokenizer, load_policy, tokenizer_of_checkpoint, trainable_copy};
use super::score::gold_scorer;
use super::training::{train_config, train_preference};
use super::{Stage, StageContext, StageOutcome, write_json};
use crate::data::{PreferencePair, Tokenizer};
use crate::eval::GoldSpec;
use crate::model::{Policy, SamplingConfig};
use crate::spec::TrainSettings;
use crate::train::po::{PoData, reference_logprobs};
use crate::train::{AlignLoss, Batching, PreferenceObjective, WeakLabel, WeightingScheme};

pub struct OnlineRound;

/// Who labels a round's pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Labeller {
    /// The cell's judge (`Params::gold`): Online DPO.
    RewardModel,
    /// The weak annotator of the `weak` input: Online CW-DPO / WS-DPO.
    Weak,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// This round, from 1.
    pub round: usize,
    /// Rounds of the run: unset `prompts_per_round` is ⌈|D_U| / rounds⌉.
    pub rounds: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts_per_round: Option<usize>,
    pub labeller: Labeller,
    /// The cell's judge: the labeller under `reward_model`, and what the
    /// weak labels are compared with.
    pub gold: GoldSpec,
    /// Per-pair weights from the labels (`cw` under Online CW-DPO, uniform otherwise).
    pub weighting: WeightingScheme,
    pub objective: PreferenceObjective,
    /// The `[align]` recipe, run over the round's pairs.
    pub train: TrainSettings,
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// Pairs per forward pass when labelling and computing reference log-probs.
    pub batch_size: usize,
    pub seed: u64,
}

/// One on-policy pair of a round: the policy's two samples for `prompt`
/// (`first` = sample 0, `second` = sample 1, as sampled), the labeller's
/// verdict on them (`prefers_chosen` = prefers `first`) and the pair's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlinePair {
    pub prompt: String,
    pub first: String,
    pub second: String,
    pub label: WeakLabel,
    pub weight: f64,
}

impl OnlinePair {
    /// The pair as DPO trains on it: the labeller's choice in `chosen`.
    pub fn oriented(&self) -> PreferencePair {
        let (chosen, rejected) = if self.label.prefers_chosen {
            (&self.first, &self.second)
        } else {
            (&self.second, &self.first)
        };
        PreferencePair {
            prompt: self.prompt.clone(),
            chosen: chosen.clone(),
            rejected: rejected.clone(),
        }
    }
}

pub const ONLINE_PAIRS_FILE: &str = "online_pairs.json";

/// Responses sampled per prompt.
pub const SAMPLES_PER_PROMPT: usize = 2;

/// The prompts of round `round` (from 1): `per_round` of `pool`, starting
/// where the previous round stopped and wrapping round, so successive rounds
/// see new prompts. Worked: pool of 5, 2 per round → round 1 [0, 1],
/// round 2 [2, 3], round 3 [4, 0].
pub fn round_prompts(pool: &[String], round: usize, per_round: usize) -> Result<Vec<String>> {
    anyhow::ensure!(
        !pool.is_empty(),
        "online round: D_U has no prompts (raise labeled_fraction's complement or the world's n_pairs)"
    );
    anyhow::ensure!(round >= 1, "online round numbers start at 1, got {round}");
    let start = (round - 1) * per_round;
    Ok((start..start + per_round)
        .map(|i| pool[i % pool.len()].clone())
        .collect())
}

/// The sampling of round `round`: seeded by `seed + round`, so each round
/// draws fresh samples and a rerun draws the same.
pub fn round_sampling(params: &Params) -> SamplingConfig {
    SamplingConfig {
        temperature: params.temperature,
        top_p: 1.0,
        max_new_tokens: params.max_new_tokens,
        batch_size: 64,
        seed: params.seed.wrapping_add(params.round as u64),
    }
}

/// The prompts of each sample row (each prompt [`SAMPLES_PER_PROMPT`]
/// times, prompt-major) tokenised for `policy`.
pub fn sample_rows(prompts: &[String], tokenizer: &dyn Tokenizer) -> Result<Vec<Vec<u32>>> {
    prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p, SAMPLES_PER_PROMPT))
        .map(|p| tokenizer.encode_prompt(p))
        .collect()
}

/// Two samples of `policy` per prompt, decoded, as (first, second) per
/// prompt; finished batches are saved to (and resumed from) the stage's
/// partial dir.
fn sample_pairs(
    ctx: &StageContext,
    policy: &Policy,
    tokenizer: &dyn Tokenizer,
    prompts: &[String],
    sampling: &SamplingConfig,
) -> Result<Vec<(String, String)>> {
    let ids = sample_rows(prompts, tokenizer)?;
    let outputs = generate_checkpointed(ctx, "online_sample", policy, &ids, sampling)?;
    let texts = outputs
        .iter()
        .map(|o| tokenizer.decode(o))
        .collect::<Result<Vec<_>>>()?;
    Ok(texts
        .chunks(SAMPLES_PER_PROMPT)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect())
}

/// The judge's labels of (first, second) for each prompt.
fn gold_labels(
    ctx: &StageContext,
    gold: &GoldSpec,
    prompts: &[String],
    samples: &[(String, String)],
) -> Result<Vec<WeakLabel>> {
    let scorer = gold_scorer(gold, ctx)?;
    let (first, second): (Vec<String>, Vec<String>) = samples.iter().cloned().unzip();
    let a = scorer.score(prompts, &first)?;
    let b = scorer.score(prompts, &second)?;
    Ok(a.iter()
        .zip(&b)
        .map(|(&a, &b)| WeakLabel::from_scores(f64::from(a), f64::from(b)))
        .collect())
}

/// Share of `labels` that pick the judge's choice, over the pairs the judge
/// does not tie (`None` when it ties them all).
pub fn agreement_with_gold(labels: &[WeakLabel], gold: &[WeakLabel]) -> Option<f64> {
    let decided: Vec<(&WeakLabel, &WeakLabel)> = labels
        .iter()
        .zip(gold)
        .filter(|(_, g)| g.delta() > 0.0)
        .collect();
    let agree = decided
        .iter()
        .filter(|(l, g)| l.prefers_chosen == g.prefers_chosen)
        .count();
    (!decided.is_empty()).then(|| agree as f64 / decided.len() as f64)
}

impl Stage for OnlineRound {
    const KIND: &'static str = "online_round";
    const VERSION: u32 = 1;
    const INPUTS: &'static [&'static str] =
        &["dataset", "split", "policy", "sft", "weak", "gold_model"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let policy_dir = ctx.input("policy")?.join(MODEL_DIR);
        let tokenizer = tokenizer_of_checkpoint(&policy_dir)?;
        let current = load_policy(&policy_dir, ctx.device)?;
        let pool: Vec<String> = split_pairs(ctx)?
            .unlabeled
            .into_iter()
            .map(|p| p.prompt)
            .collect();
        let per_round = params
            .prompts_per_round
            .unwrap_or_else(|| pool.len().div_ceil(params.rounds.max(1)));
        let prompts = round_prompts(&pool, params.round, per_round)?;

        // 1. Two samples per prompt from the current policy.
        ctx.progress
            .set_total((prompts.len() * SAMPLES_PER_PROMPT) as u64);
        let sampling = round_sampling(params);
        let samples = sample_pairs(ctx, &current, tokenizer.as_ref(), &prompts, &sampling)?;
        ctx.check_cancel()?;

        // 2. Labels and weights.
        let judged = gold_labels(ctx, &params.gold, &prompts, &samples)?;
        let labels = match params.labeller {
            Labeller::RewardModel => judged.clone(),
            Labeller::Weak => {
                let unoriented: Vec<PreferencePair> = prompts
                    .iter()
                    .zip(&samples)
                    .map(|(prompt, (first, second))| PreferencePair {
                        prompt: prompt.clone(),
                        chosen: first.clone(),
                        rejected: second.clone(),
                    })
                    .collect();
                label_pairs(
                    ctx.input("weak")?,
                    &unoriented,
                    ctx.device,
                    params.batch_size,
                )?
            }
        };
        let weights = params
            .weighting
            .weights(&labels)
            .context("online round: weighting the labels")?;
        let pairs: Vec<OnlinePair> = prompts
            .iter()
            .zip(samples)
            .zip(labels.iter().zip(&weights))
            .map(|((prompt, (first, second)), (label, weight))| OnlinePair {
                prompt: prompt.clone(),
                first,
                second,
                label: *label,
                weight: *weight,
            })
            .collect();
        write_json(ctx.out_dir, ONLINE_PAIRS_FILE, &pairs)?;

        // 3. Preference steps from the current policy, the SFT model as reference.
        let tok = PairTokenizer {
            tokenizer: tokenizer.as_ref(),
        };
        let oriented: Vec<PreferencePair> = pairs.iter().map(OnlinePair::oriented).collect();
        let tokenized = tok.pairs(&oriented)?;
        let sft = load_policy(&ctx.input("sft")?.join(MODEL_DIR), ctx.device)?;
        let max_len = params
            .train
            .max_len_within(sft.config().max_position.min(2048));
        let batching = Batching {
            pad_id: tokenizer.pad_id(),
            max_len,
            device: ctx.device.clone(),
        };
        let reference = reference_logprobs(&sft, &tokenized, &batching, params.batch_size)?;
        drop(sft);
        let seed = params.seed.wrapping_add(params.round as u64);
        let policy = trainable_copy(&current, &params.train, seed)?;
        drop(current);
        let objective = AlignLoss::from(params.objective).build()?;
        let cfg = train_config(&params.train, seed, max_len);
        let data = PoData {
            pairs: &tokenized,
            reference: &reference,
            weights: &weights,
        };
        let mut metrics = train_preference(
            ctx,
            "online_round",
            &policy,
            &data,
            objective.as_ref(),
            &cfg,
            tokenizer.pad_id(),
            &policy_dir,
        )?;
        let n = weights.len().max(1) as f64;
        let identical = pairs.iter().filter(|p| p.first == p.second).count();
        metrics.insert("identical_sample_share".into(), identical as f64 / n);
        if let Some(agreement) = agreement_with_gold(&labels, &judged) {
            metrics.insert("label_gold_agreement".into(), agreement);
        }
        Ok(StageOutcome { metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i}")).collect()
    }

    /// Pool of 5, 2 per round: rounds 1, 2, 3 take [0, 1], [2, 3], [4, 0].
    #[test]
    fn rounds_take_successive_prompts_and_wrap() {
        let pool = prompts(5);
        assert_eq!(round_prompts(&pool, 1, 2).unwrap(), ["p0", "p1"]);
        assert_eq!(round_prompts(&pool, 2, 2).unwrap(), ["p2", "p3"]);
        assert_eq!(round_prompts(&pool, 3, 2).unwrap(), ["p4", "p0"]);
        assert!(round_prompts(&pool, 0, 2).is_err());
        assert!(round_prompts(&[], 1, 2).is_err());
    }

    /// Judge scores (1, 0), (0, 2), (3, 3): it prefers first, second, and
    /// ties. Labeller prefers first, first, second: it agrees on the first
    /// pair, not the second, and the tie is left out → 1/2.
    #[test]
    fn agreement_counts_only_pairs_the_judge_decides() {
        let gold = [
            WeakLabel::from_scores(1.0, 0.0),
            WeakLabel::from_scores(0.0, 2.0),
            WeakLabel::from_scores(3.0, 3.0),
        ];
        let labels = [
            WeakLabel::from_scores(0.5, 0.1),
            WeakLabel::from_scores(0.5, 0.1),
            WeakLabel::from_scores(0.1, 0.5),
        ];
        assert_eq!(agreement_with_gold(&labels, &gold), Some(0.5));
        assert_eq!(agreement_with_gold(&labels[2..], &gold[2..]), None);
    }

    /// The labeller's choice lands in `chosen` whichever sample it was.
    #[test]
    fn oriented_puts_the_labellers_choice_first() {
        let pair = |first: f64, second: f64| OnlinePair {
            prompt: "x".into(),
            first: "a".into(),
            second: "b".into(),
            label: WeakLabel::from_scores(first, second),
            weight: 1.0,
        };
        assert_eq!(pair(1.0, 0.0).oriented().chosen, "a");
        assert_eq!(pair(0.0, 1.0).oriented().chosen, "b");
        assert_eq!(pair(0.0, 1.0).oriented().rejected, "a");
    }
}
