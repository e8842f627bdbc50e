//! A scalar reward model: decoder + linear score head read at each row's last
//! real token (HF `*ForSequenceClassification` layout, head `score.weight`
//! [1, D], no bias). The Bradley–Terry weak annotator of CW-PO.
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::backbone::Backbone;
use super::config::DecoderConfig;
use super::init::{INIT_STD, SeededInit, seeded_varbuilder};
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

impl RewardModel {
    /// A freshly initialised reward model with f32 parameters (see [`Policy::new_random`]).
    pub fn new_random(
        cfg: &DecoderConfig,
        lora: Option<&LoraConfig>,
        seed: u64,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let vb = seeded_varbuilder(seed, DType::F32, device);
        let precision = Precision::for_device(device, DType::F32);
        let rm = Self::from_varbuilder_in(cfg, vb, lora, precision)?;
        rm.backbone.set_dropout_seed(seed);
        Ok(rm)
    }

    /// Loads (or initialises) every tensor from `vb` by HF name, in `vb`'s dtype.
    pub fn from_varbuilder(
        cfg: &DecoderConfig,
        vb: VarBuilder,
        lora: Option<&LoraConfig>,
    ) -> anyhow::Result<Self> {
        let precision = Precision::uniform(vb.dtype());
        Self::from_varbuilder_in(cfg, vb, lora, precision)
    }

    /// [`RewardModel::from_varbuilder`] in `precision` (see [`Policy::from_varbuilder_in`]).
    pub fn from_varbuilder_in(
        cfg: &DecoderConfig,
        vb: VarBuilder,
        lora: Option<&LoraConfig>,
        precision: Precision,
    ) -> anyhow::Result<Self> {
        let pb = ParamBuilder::with_precision(vb, precision);
        let (backbone, score) = Backbone::build(cfg, pb, lora, |pb, _| {
            let randn = Init::Randn {
                mean: 0.0,
                stdev: INIT_STD,
            };
            pb.param((1, cfg.hidden_size), SCORE_HEAD, randn, true)
        })?;
        Ok(Self { backbone, score })
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
        let backbone = policy.backbone();
        let precision = backbone.precision();
        let vb = VarBuilder::from_backend(
            Box::new(SeededInit::over(seed, Box::new(tensors))),
            precision.master,
            backbone.device().clone(),
        );
        let rm = Self::from_varbuilder_in(policy.config(), vb, lora, precision)?;
        rm.backbone.set_dropout_seed(seed);
        Ok(rm)
    }

    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    pub fn backbone_mut(&mut self) -> &mut Backbone {
        &mut self.backbone
    }

    pub fn config(&self) -> &DecoderConfig {
        self.backbone.config()
    }

    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.backbone.lora_config()
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
