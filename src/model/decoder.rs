//! The decoder stack shared by every model: embeddings, pre-norm blocks, a
//! final norm; full-sequence hidden states [B, T, D].
//!
//! Two layouts under HF parameter names, so real checkpoints load by name:
//! - `Arch::Llama` (Llama, Qwen2, Qwen3, SmolLM2) under `model.`:
//!   `embed_tokens`, `layers.{i}.{input_layernorm, self_attn, post_attention_layernorm, mlp}`, `norm`.
//! - `Arch::Opt` under `model.decoder.`: `embed_tokens`, `embed_positions`
//!   (row = position + 2, OPT's offset), `layers.{i}.{self_attn_layer_norm,
//!   self_attn, final_layer_norm, fc1, fc2}`, `final_layer_norm`.
//!
//! Padding never changes a real token's output: attention uses the batch's
//! `attn_mask` and positions count from each row's first real token.
use candle_core::{DType, Result, Tensor};
use candle_nn::Init;

use super::attention::{Attention, KvCache, attention_bias};
use super::config::{Arch, DecoderConfig};
use super::init::INIT_STD;
use super::lora::LoraContext;
use super::mlp::Mlp;
use super::ops::{layer_norm, rms_norm};
use super::params::ParamBuilder;
use super::rotary::Rotary;

/// OPT's learned position table starts at row 2 (rows 0 and 1 are legacy padding slots).
pub const OPT_POSITION_OFFSET: u32 = 2;

/// RMSNorm (Llama family) or LayerNorm (OPT).
#[derive(Debug, Clone)]
pub enum Norm {
    Rms {
        weight: Tensor,
        eps: f64,
    },
    Layer {
        weight: Tensor,
        bias: Tensor,
        eps: f64,
    },
}

impl Norm {
    /// `<pb>.weight` (ones) and, for OPT, `<pb>.bias` (zeros).
    pub fn load(pb: &ParamBuilder, cfg: &DecoderConfig, trainable: bool) -> Result<Self> {
        let d = cfg.hidden_size;
        let weight = pb.param(d, "weight", Init::Const(1.0), trainable)?;
        Ok(match cfg.arch {
            Arch::Llama => Norm::Rms {
                weight,
                eps: cfg.norm_eps,
            },
            Arch::Opt => {
                let bias = pb.param(d, "bias", Init::Const(0.0), trainable)?;
                Norm::Layer {
                    weight,
                    bias,
                    eps: cfg.norm_eps,
                }
            }
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Rms { weight, eps } => rms_norm(x, weight, *eps),
            Norm::Layer { weight, bias, eps } => layer_norm(x, weight, bias, *eps),
        }
    }
}

/// One pre-norm block: `h = x + attn(norm₁(x)); out = h + mlp(norm₂(h))`.
#[derive(Debug, Clone)]
pub struct Block {
    attn_norm: Norm,
    attn: Attention,
    mlp_norm: Norm,
    mlp: Mlp,
}

impl Block {
    fn load(pb: &ParamBuilder, cfg: &DecoderConfig, lora: Option<&LoraContext>) -> Result<Self> {
        let trainable = lora.is_none();
        Ok(match cfg.arch {
            Arch::Llama => Self {
                attn_norm: Norm::load(&pb.pp("input_layernorm"), cfg, trainable)?,
                attn: Attention::load(&pb.pp("self_attn"), cfg, lora)?,
                mlp_norm: Norm::load(&pb.pp("post_attention_layernorm"), cfg, trainable)?,
                mlp: Mlp::load(&pb.pp("mlp"), cfg, lora)?,
            },
            Arch::Opt => Self {
                attn_norm: Norm::load(&pb.pp("self_attn_layer_norm"), cfg, trainable)?,
                attn: Attention::load(&pb.pp("self_attn"), cfg, lora)?,
                mlp_norm: Norm::load(&pb.pp("final_layer_norm"), cfg, trainable)?,
                mlp: Mlp::load(pb, cfg, lora)?,
            },
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        rope: Option<&super::rotary::RotaryAngles>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let h = (x + self
            .attn
            .forward(&self.attn_norm.forward(x)?, bias, rope, cache)?)?;
        &h + self.mlp.forward(&self.mlp_norm.forward(&h)?)?
    }
}

#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    /// The dtype hidden states are computed in (see [`super::precision`]).
    compute: DType,
    /// [V, D]
    embed_tokens: Tensor,
    /// [max_position + 2, D] (OPT only)
    embed_positions: Option<Tensor>,
    rotary: Option<Rotary>,
    layers: Vec<Block>,
    final_norm: Norm,
}

impl Decoder {
    /// The name prefix of the decoder's parameters for `arch`.
    pub fn prefix(arch: Arch) -> &'static str {
        match arch {
            Arch::Llama => "model",
            Arch::Opt => "model.decoder",
        }
    }

    /// Loads or initialises the decoder; `root` is the un-prefixed builder.
    pub fn load(
        root: &ParamBuilder,
        cfg: &DecoderConfig,
        lora: Option<&LoraContext>,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
        let pb = root.pp(Self::prefix(cfg.arch));
        let trainable = lora.is_none();
        let randn = Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        };
        let embed_tokens = pb.pp("embed_tokens").param(
            (cfg.vocab_size, cfg.hidden_size),
            "weight",
            randn,
            trainable,
        )?;
        let (embed_positions, rotary, final_norm_name) = match cfg.arch {
            Arch::Llama => (
                None,
                Some(Rotary::new(
                    cfg.head_dim,
                    cfg.rope_theta,
                    cfg.rope_scaling.as_ref(),
                    root.device(),
                )?),
                "norm",
            ),
            Arch::Opt => {
                let rows = cfg.max_position + OPT_POSITION_OFFSET as usize;
                let table = pb.pp("embed_positions").param(
                    (rows, cfg.hidden_size),
                    "weight",
                    randn,
                    trainable,
                )?;
                (Some(table), None, "final_layer_norm")
            }
        };
        let layers = (0..cfg.num_layers)
            .map(|i| Block::load(&pb.pp("layers").pp(i), cfg, lora))
            .collect::<Result<Vec<_>>>()?;
        let final_norm = Norm::load(&pb.pp(final_norm_name), cfg, trainable)?;
        Ok(Self {
            cfg: cfg.clone(),
            compute: root.compute_dtype(),
            embed_tokens,
            embed_positions,
            rotary,
            layers,
            final_norm,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The token embedding [V, D] (also the LM head when tied).
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// The dtype hidden states are computed in.
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// Hidden states after the final norm for S new tokens.
    /// ids, positions: [B, S] u32; attn_mask: [B, T_k] f32 covering the
    /// cached positions followed by the new ones (T_k = cache.len() + S).
    /// Returns [B, S, D].
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        attn_mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let d = self.cfg.hidden_size;
        let dtype = self.compute;
        let mut x = self
            .embed_tokens
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, d))?
            .to_dtype(dtype)?;
        if let Some(table) = &self.embed_positions {
            let rows = (positions.flatten_all()? + OPT_POSITION_OFFSET as f64)?;
            x = (x + table
                .index_select(&rows, 0)?
                .reshape((b, s, d))?
                .to_dtype(dtype)?)?;
        }
        let rope = match &self.rotary {
            Some(r) => Some(r.angles(positions, dtype)?),
            None => None,
        };
        let bias = attention_bias(attn_mask, s, dtype)?; // [B, 1, S, T_k], built once
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(&x, &bias, rope.as_ref(), slot)?;
        }
        self.final_norm.forward(&x)
    }

    /// Every linear projection.
    pub(crate) fn linears(&self) -> Vec<&super::linear::Linear> {
        let mut out = Vec::new();
        for layer in &self.layers {
            out.extend(layer.attn.linears());
            out.extend(layer.mlp.linears());
        }
        out
    }

    /// Every linear projection, mutably (to merge LoRA adapters).
    pub(crate) fn linears_mut(&mut self) -> Vec<&mut super::linear::Linear> {
        let mut out = Vec::new();
        for layer in &mut self.layers {
            out.extend(layer.attn.linears_mut());
            out.extend(layer.mlp.linears_mut());
        }
        out
    }
}
