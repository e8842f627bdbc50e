//! One DPO step of SmolLM2-135M on the CPU, f32: the step that
//! `tests/real_smollm2_bench.rs` checks and `benches/smollm2_dpo_step.rs`
//! times against PyTorch (`scripts/smollm2_torch_dpo_step.py` builds the
//! same step in transformers + torch).
use std::path::Path;

use candle_core::{Device, Tensor};
use cwpo::model::probe::load_lm;
use cwpo::model::{LanguageModel, PadSide, SeqBatch};
use cwpo::train::losses::dpo_loss;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Pairs and tokens per prompt / response of the timed DPO step.
pub const PAIRS: usize = 2;
pub const LEN: usize = 128;

/// The timed DPO step's inputs: SmolLM2 as policy and as frozen π_ref,
/// [`PAIRS`] pairs of random [`LEN`]-token prompts and responses, β = 0.5.
pub struct DpoStep {
    pub lm: cwpo::model::probe::LoadedLm,
    reference: cwpo::model::Policy,
    chosen_batch: SeqBatch,
    rejected_batch: SeqBatch,
    beta: f64,
}

impl DpoStep {
    /// Loads the GGUF at `path` (the policy; the reference is its frozen
    /// copy) and draws the pairs' token ids from a fixed seed.
    pub fn new(path: &Path) -> DpoStep {
        let device = Device::Cpu;
        let lm = load_lm(path, &device).unwrap();
        // π_ref: frozen, as PyTorch's `requires_grad_(False)` + `no_grad`,
        // so its forward records no graph for a backward that never comes.
        let reference = lm.policy.frozen().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let vocab = lm.policy.config().vocab_size as u32;
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(17..vocab)).collect() };
        let prompts: Vec<Vec<u32>> = (0..PAIRS).map(|_| ids(LEN)).collect();
        let chosen: Vec<Vec<u32>> = (0..PAIRS).map(|_| ids(LEN)).collect();
        let rejected: Vec<Vec<u32>> = (0..PAIRS).map(|_| ids(LEN)).collect();
        let batch_of = |responses: &[Vec<u32>]| {
            let rows: Vec<(&[u32], &[u32])> = prompts
                .iter()
                .zip(responses)
                .map(|(p, r)| (p.as_slice(), r.as_slice()))
                .collect();
            SeqBatch::from_prompt_response(&rows, 0, PadSide::Right, 1024, &device).unwrap()
        };
        DpoStep {
            chosen_batch: batch_of(&chosen),
            rejected_batch: batch_of(&rejected),
            lm,
            reference,
            beta: 0.5,
        }
    }

    /// The frozen reference's margin, log π_ref(y_c) − log π_ref(y_r). [B]
    pub fn reference_margin(&self) -> Tensor {
        let reference = &self.reference;
        let margin = sum(reference, &self.chosen_batch) - sum(reference, &self.rejected_batch);
        margin.unwrap().detach()
    }

    /// The DPO loss, mean over pairs, given the reference's margin.
    pub fn loss(&self, reference_margin: &Tensor) -> Tensor {
        let policy = &self.lm.policy;
        let margin = (sum(policy, &self.chosen_batch) - sum(policy, &self.rejected_batch)).unwrap();
        let h = (margin - reference_margin).unwrap(); // [B]
        dpo_loss(&h, self.beta).unwrap().mean_all().unwrap()
    }
}

/// Σ response log-prob per row. [B]
pub fn sum(model: &dyn LanguageModel, batch: &SeqBatch) -> Tensor {
    model.response_logprobs(batch).unwrap().sum
}
