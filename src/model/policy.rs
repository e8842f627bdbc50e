//! A causal language model: decoder + LM head. The policy trained by SFT and
//! DPO/IPO/rDPO, and the generator of responses.
use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::attention::KvCache;
use super::backbone::Backbone;
use super::config::DecoderConfig;
use super::init::{INIT_STD, SeededInit, seeded_varbuilder};
use super::lora::LoraConfig;
use super::ops::token_logprobs;
use super::{LanguageModel, ResponseLogProbs, SeqBatch};

/// Name of the untied LM head weight.
pub const LM_HEAD: &str = "lm_head.weight";

#[derive(Debug)]
pub struct Policy {
    backbone: Backbone,
    /// [V, D]; the token embedding itself when tied.
    lm_head: Tensor,
}

impl Policy {
    /// A freshly initialised f32 model: N(0, 0.02) weights, zero biases,
    /// unit norms, every tensor from its own ChaCha8 stream of `seed`.
    pub fn new_random(
        cfg: &DecoderConfig,
        lora: Option<&LoraConfig>,
        seed: u64,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let policy = Self::from_varbuilder(cfg, seeded_varbuilder(seed, DType::F32, device), lora)?;
        policy.backbone.set_dropout_seed(seed);
        Ok(policy)
    }

    /// Loads (or, with a seeded backend, initialises) every tensor from `vb`
    /// by HF name. With `lora`, the adapters are read from `vb` too: use a
    /// [`SeededInit`] backend (or [`Policy::with_lora`]) for fresh ones.
    pub fn from_varbuilder(
        cfg: &DecoderConfig,
        vb: VarBuilder,
        lora: Option<&LoraConfig>,
    ) -> anyhow::Result<Self> {
        let (backbone, lm_head) = Backbone::build(cfg, vb, lora, |pb, decoder| {
            if cfg.tie_embeddings {
                return Ok(decoder.embed_tokens().clone());
            }
            let randn = Init::Randn {
                mean: 0.0,
                stdev: INIT_STD,
            };
            pb.param(
                (cfg.vocab_size, cfg.hidden_size),
                LM_HEAD,
                randn,
                lora.is_none(),
            )
        })?;
        Ok(Self { backbone, lm_head })
    }

    /// The same weights (adapters folded in) with fresh LoRA adapters, seeded
    /// by `seed`; base weights become frozen. The original is untouched.
    pub fn with_lora(&self, lora: &LoraConfig, seed: u64) -> anyhow::Result<Self> {
        let tensors = self.backbone.merged_tensors()?;
        let vb = VarBuilder::from_backend(
            Box::new(SeededInit::over(seed, Box::new(tensors))),
            self.backbone.dtype(),
            self.backbone.device().clone(),
        );
        let policy = Self::from_varbuilder(self.config(), vb, Some(lora))?;
        policy.backbone.set_dropout_seed(seed);
        Ok(policy)
    }

    /// An independent copy (new variables) of this model, adapters included.
    pub fn deep_clone(&self) -> anyhow::Result<Self> {
        let tensors: HashMap<String, Tensor> = self
            .backbone
            .params
            .tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect::<Result<_>>()?;
        let vb = VarBuilder::from_tensors(tensors, self.backbone.dtype(), self.backbone.device());
        Self::from_varbuilder(self.config(), vb, self.lora_config())
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

    /// LM logits for hidden states: [B, S, D] → [B, S, V].
    fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, s, d) = hidden.dims3()?;
        let logits = hidden.reshape((b * s, d))?.matmul(&self.lm_head.t()?)?; // [B·S, V]
        logits.reshape((b, s, self.config().vocab_size))
    }

    /// Logits of every position of `batch`: [B, T, V].
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
    /// logits at t−1. Sums are in the model's dtype (f32 for half models).
    fn response_logprobs(&self, batch: &SeqBatch) -> Result<ResponseLogProbs> {
        let (b, t) = batch.ids.dims2()?;
        let out_dtype = match self.backbone.dtype() {
            DType::F16 | DType::BF16 => DType::F32,
            dt => dt,
        };
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
