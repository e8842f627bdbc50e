//! A causal language model: decoder + LM head. The policy trained by SFT and
//! DPO/IPO/rDPO, and the generator of responses.
use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};
use candle_nn::VarBuilder;

use super::attention::KvCache;
use super::backbone::{Backbone, backbone_model};
use super::config::DecoderConfig;
use super::decoder::Decoder;
use super::init::WEIGHT_INIT;
use super::lora::LoraConfig;
use super::ops::token_logprobs;
use super::params::ParamBuilder;
use super::precision::{Precision, cast_like};
use super::{LanguageModel, ResponseLogProbs, SeqBatch};

/// Name of the untied LM head weight.
pub const LM_HEAD: &str = "lm_head.weight";

#[derive(Debug)]
pub struct Policy {
    backbone: Backbone,
    /// [V, D]; the token embedding itself when tied.
    lm_head: Tensor,
}

backbone_model!(Policy, lm_head);

impl Policy {
    /// The LM head [V, D]: the token embedding itself when tied, else a
    /// fresh weight, trainable unless LoRA trains adapters instead.
    fn new_head(pb: &ParamBuilder, decoder: &Decoder, lora: Option<&LoraConfig>) -> Result<Tensor> {
        let cfg = decoder.config();
        if cfg.tie_embeddings {
            return Ok(decoder.embed_tokens().clone());
        }
        let shape = (cfg.vocab_size, cfg.hidden_size);
        pb.param(shape, LM_HEAD, WEIGHT_INIT, lora.is_none())
    }

    /// An inference-only copy (a frozen reference model, a generator): the
    /// same function in the same precision, every parameter (adapters too)
    /// frozen and stored in the compute dtype: half the memory in bf16, and
    /// in f32 bit-identical outputs.
    pub fn frozen(&self) -> anyhow::Result<Self> {
        let precision = self.backbone.precision();
        let vb = VarBuilder::from_tensors(
            self.backbone.params.tensors(),
            precision.master,
            self.backbone.device(),
        );
        let pb = ParamBuilder::with_precision(vb, precision).frozen();
        Self::build(self.config(), pb, self.lora_config())
    }

    /// The same weights (adapters folded in) with fresh LoRA adapters, seeded
    /// by `seed`; base weights become frozen. The original is untouched.
    pub fn with_lora(&self, lora: &LoraConfig, seed: u64) -> anyhow::Result<Self> {
        Self::seeded_over(
            self.backbone.merged_tensors()?,
            &self.backbone,
            Some(lora),
            seed,
        )
    }

    /// An independent copy (new variables) of this model, adapters included.
    pub fn deep_clone(&self) -> anyhow::Result<Self> {
        self.with_precision(self.backbone.precision())
    }

    /// An independent copy of this model, adapters included, in `precision`
    /// (a parameter already in a narrower dtype keeps its rounded values).
    pub fn with_precision(&self, precision: Precision) -> anyhow::Result<Self> {
        let tensors: HashMap<String, Tensor> = self
            .backbone
            .params
            .tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect::<Result<_>>()?;
        let vb = VarBuilder::from_tensors(tensors, precision.master, self.backbone.device());
        Self::from_varbuilder_in(self.config(), vb, self.lora_config(), precision)
    }

    /// LM logits for hidden states: [B, S, D] → [B, S, V], in the
    /// reduction dtype (f32 under bf16 compute: log-softmax runs on them).
    fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, s, d) = hidden.dims3()?;
        let head = cast_like(&self.lm_head, hidden)?;
        let logits = hidden.reshape((b * s, d))?.matmul(&head.t()?)?; // [B·S, V]
        let logits = logits.to_dtype(self.backbone.precision().reduction())?;
        logits.reshape((b, s, self.config().vocab_size))
    }

    /// Logits of every position of `batch`: [B, T, V] (f32 under bf16 compute).
    pub fn logits(&self, batch: &SeqBatch) -> Result<Tensor> {
        let hidden =
            self.backbone
                .decoder
                .forward(&batch.ids, &batch.positions, &batch.attn_mask, None)?;
        self.project(&hidden)
    }

    /// Logits of S new tokens given `cache` (which this call extends).
    /// ids, positions: [B, S] u32; attn_mask: [B, cache.len() + S]. Returns [B, S, V].
    pub fn step_logits(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        attn_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let hidden = self
            .backbone
            .decoder
            .forward(ids, positions, attn_mask, Some(cache))?;
        self.project(&hidden)
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config().num_layers)
    }
}

impl LanguageModel for Policy {
    /// Σ log π(ids[t] | ids[<t]) over t with target_mask 1, read from the
    /// logits at t−1. Log-softmax and sums are in the reduction dtype (f32
    /// under bf16 compute).
    fn response_logprobs(&self, batch: &SeqBatch) -> Result<ResponseLogProbs> {
        let (b, t) = batch.ids.dims2()?;
        let out_dtype = self.backbone.precision().reduction();
        let count = batch.target_mask.sum(1)?.to_dtype(out_dtype)?; // [B]
        if t < 2 {
            let sum = Tensor::zeros(b, out_dtype, batch.ids.device())?;
            return Ok(ResponseLogProbs { sum, count });
        }
        let hidden =
            self.backbone
                .decoder
                .forward(&batch.ids, &batch.positions, &batch.attn_mask, None)?;
        let logits = self.project(&hidden.narrow(1, 0, t - 1)?)?; // [B, T-1, V] predicts ids[1..]
        let targets = batch.ids.narrow(1, 1, t - 1)?; // [B, T-1]
        let logp = token_logprobs(&logits, &targets)?.to_dtype(out_dtype)?; // [B, T-1]
        let mask = batch.target_mask.narrow(1, 1, t - 1)?.to_dtype(out_dtype)?; // [B, T-1]
        let sum = (logp * mask)?.sum(1)?; // [B]
        Ok(ResponseLogProbs { sum, count })
    }

    fn trainable_vars(&self) -> Vec<Var> {
        self.backbone.trainable_vars()
    }
}
