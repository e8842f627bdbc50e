//! A scalar reward model: decoder + linear score head read at each row's last
//! real token (HF `*ForSequenceClassification` layout, head `score.weight`
//! [1, D], no bias). The Bradley–Terry weak annotator of CW-PO.
use candle_core::{Result, Tensor, Var};

use super::backbone::{Backbone, backbone_model};
use super::config::DecoderConfig;
use super::decoder::Decoder;
use super::init::WEIGHT_INIT;
use super::lora::LoraConfig;
use super::params::ParamBuilder;
use super::policy::{LM_HEAD, Policy};
use super::precision::Precision;
use super::{ScalarScorer, SeqBatch};

/// Name of the score head weight.
pub const SCORE_HEAD: &str = "score.weight";

#[derive(Debug)]
pub struct RewardModel {
    backbone: Backbone,
    /// [1, D]; trainable even with LoRA on (PEFT's `modules_to_save`).
    score: Tensor,
}

backbone_model!(RewardModel, score);

impl RewardModel {
    /// The score head [1, D], fresh and trainable even with LoRA on.
    fn new_head(pb: &ParamBuilder, decoder: &Decoder, _: Option<&LoraConfig>) -> Result<Tensor> {
        let shape = (1, decoder.config().hidden_size);
        pb.param(shape, SCORE_HEAD, WEIGHT_INIT, true)
    }

    /// A reward model whose backbone starts from `policy`'s weights (its
    /// adapters folded in, copied, not shared) with a fresh score head and,
    /// with `lora`, fresh adapters — both seeded by `seed`.
    pub fn from_policy(
        policy: &Policy,
        lora: Option<&LoraConfig>,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut tensors = policy.backbone().merged_tensors()?;
        tensors.remove(LM_HEAD);
        Self::seeded_over(tensors, policy.backbone(), lora, seed)
    }
}

impl ScalarScorer for RewardModel {
    /// score(x) = w · h[last_index], in the reduction dtype (f32 under bf16
    /// compute; the head is trainable, so it is in the master dtype).
    fn scores(&self, batch: &SeqBatch) -> Result<Tensor> {
        let hidden =
            self.backbone
                .decoder
                .forward(&batch.ids, &batch.positions, &batch.attn_mask, None)?;
        let (b, t, d) = hidden.dims3()?;
        let dev = hidden.device();
        // Row b's last token sits at flat index b·T + last_index[b].
        let row_starts = Tensor::arange_step(0u32, (b * t) as u32, t as u32, dev)?; // [B]
        let flat_index = (row_starts + &batch.last_index)?;
        let last = hidden.reshape((b * t, d))?.index_select(&flat_index, 0)?; // [B, D]
        let reduction = self.backbone.precision().reduction();
        let last = last.to_dtype(reduction)?;
        let score = self.score.to_dtype(reduction)?;
        last.matmul(&score.t()?)?.squeeze(1) // [B]
    }

    fn trainable_vars(&self) -> Vec<Var> {
        self.backbone.trainable_vars()
    }
}
