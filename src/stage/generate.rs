//! `generate`: a policy's responses (an `align` or `sft` artifact, role
//! `policy`) to the dataset's held-out test prompts. Each SFT model's
//! generations are made once and shared by every cell that compares with it.
use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::artifacts::{MODEL_DIR, test_prompts};
use super::models::{load_policy, tokenizer_of_checkpoint};
use super::{Stage, StageContext, StageOutcome, write_json};
use crate::model::sample::generate_resuming;
use crate::model::{Policy, SamplingConfig};

pub struct Generate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// How many test prompts (None = all).
    #[serde(default)]
    pub num_prompts: Option<usize>,
    /// Responses per prompt. Left out of the params (and so of the cache key)
    /// when 1, so caches written before it existed stay valid.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub samples: usize,
    pub seed: u64,
    /// Nucleus mass (1 keeps every token). Left out of the params when 1,
    /// as `samples` is.
    #[serde(default = "one_f64", skip_serializing_if = "is_one_f64")]
    pub top_p: f64,
}

fn one_f64() -> f64 {
    1.0
}
fn is_one_f64(x: &f64) -> bool {
    *x == 1.0
}

fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

/// One test prompt and one of the policy's responses to it. With `samples`
/// = N the file holds N generations per prompt, prompt-major (prompt i's
/// sample k at index i·N + k), so two generations of the same params line up
/// one to one for GRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub prompt: String,
    pub response: String,
}

pub const GENERATIONS_FILE: &str = "generations.json";

/// `policy`'s outputs for `ids` ([`generate_resuming`]), the finished
/// batches saved to and resumed from the stage's partial dir under `phase`
/// (when it has one), progress on the stage's bar.
pub fn generate_checkpointed(
    ctx: &StageContext,
    phase: &str,
    policy: &Policy,
    ids: &[Vec<u32>],
    sampling: &SamplingConfig,
) -> Result<Vec<Vec<u32>>> {
    let fingerprint = serde_json::to_vec(&(sampling, ids)).expect("serialisable");
    let mut checkpoint = ctx.outputs_checkpointer(phase, &fingerprint);
    let done = match checkpoint.as_mut() {
        Some(c) => c.resume::<Vec<u32>>()?,
        None => Vec::new(),
    };
    generate_resuming(policy, ids, sampling, done, &mut |so_far| {
        ctx.progress.set_step(so_far.len() as u64, None);
        match checkpoint.as_mut() {
            Some(c) => c.after_batch(so_far, ids.len()),
            None => Ok(()),
        }
    })
}

impl Stage for Generate {
    const KIND: &'static str = "generate";
    const VERSION: u32 = 2;
    const INPUTS: &'static [&'static str] = &["dataset", "policy"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let model_dir = ctx.input("policy")?.join(MODEL_DIR);
        let tokenizer = tokenizer_of_checkpoint(&model_dir)?;
        let policy = load_policy(&model_dir, ctx.device)?;
        let mut prompts = test_prompts(ctx)?;
        if let Some(n) = params.num_prompts {
            prompts.truncate(n);
        }
        // Each prompt repeated `samples` times; every row has its own seeded
        // sampling stream (see `model::sample`), so the repeats differ.
        let prompts: Vec<String> = prompts
            .into_iter()
            .flat_map(|p| std::iter::repeat_n(p, params.samples))
            .collect();
        let ids = prompts
            .iter()
            .map(|p| tokenizer.encode_prompt(p))
            .collect::<Result<Vec<_>>>()?;
        let sampling = SamplingConfig {
            temperature: params.temperature,
            top_p: params.top_p,
            max_new_tokens: params.max_new_tokens,
            batch_size: 64,
            seed: params.seed,
        };
        ctx.progress.set_total(prompts.len() as u64);
        // Finished batches survive a kill: their outputs are saved in the
        // partial dir as the checkpoint interval says.
        let outputs = generate_checkpointed(ctx, "generate", &policy, &ids, &sampling)?;
        let generations = prompts
            .into_iter()
            .zip(&outputs)
            .map(|(prompt, out)| {
                Ok(Generation {
                    prompt,
                    response: tokenizer.decode(out)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        ctx.progress.set_step(generations.len() as u64, None);
        write_json(ctx.out_dir, GENERATIONS_FILE, &generations)?;
        let mean_tokens =
            outputs.iter().map(Vec::len).sum::<usize>() as f64 / outputs.len().max(1) as f64;
        Ok(StageOutcome {
            metrics: [("mean_response_tokens".to_string(), mean_tokens)].into(),
        })
    }
}
