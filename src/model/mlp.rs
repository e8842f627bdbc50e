//! The feed-forward half of a block.
//!
//! Llama family: SwiGLU, `down(silu(gate(x)) · up(x))`. OPT: `fc2(relu(fc1(x)))`.
use candle_core::{Result, Tensor};

use super::config::{Arch, DecoderConfig};
use super::linear::Linear;
use super::lora::LoraContext;
use super::ops::swiglu;
use super::params::ParamBuilder;

#[derive(Debug, Clone)]
pub enum Mlp {
    SwiGlu {
        gate_proj: Linear,
        up_proj: Linear,
        down_proj: Linear,
    },
    Relu {
        fc1: Linear,
        fc2: Linear,
    },
}

/// The projections of an MLP in forward order, borrowed as `$mlp` is
/// (shared or mutable): one list for [`Mlp::linears`] and
/// [`Mlp::linears_mut`].
macro_rules! linears_of {
    ($mlp:expr) => {
        match $mlp {
            Mlp::SwiGlu {
                gate_proj,
                up_proj,
                down_proj,
            } => vec![gate_proj, up_proj, down_proj],
            Mlp::Relu { fc1, fc2 } => vec![fc1, fc2],
        }
    };
}

impl Mlp {
    /// Llama: `pb` is the `mlp` prefix. OPT: `pb` is the layer prefix (fc1/fc2 sit there).
    pub fn load(
        pb: &ParamBuilder,
        cfg: &DecoderConfig,
        lora: Option<&LoraContext>,
    ) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(match cfg.arch {
            Arch::Llama => Mlp::SwiGlu {
                gate_proj: Linear::load(pb, "gate_proj", d, i, false, lora)?,
                up_proj: Linear::load(pb, "up_proj", d, i, false, lora)?,
                down_proj: Linear::load(pb, "down_proj", i, d, false, lora)?,
            },
            Arch::Opt => Mlp::Relu {
                fc1: Linear::load(pb, "fc1", d, i, true, lora)?,
                fc2: Linear::load(pb, "fc2", i, d, true, lora)?,
            },
        })
    }

    /// x: [B, S, D] → [B, S, D].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::SwiGlu {
                gate_proj,
                up_proj,
                down_proj,
            } => {
                let hidden = swiglu(&gate_proj.forward(x)?, &up_proj.forward(x)?)?; // [B, S, I]
                down_proj.forward(&hidden)
            }
            Mlp::Relu { fc1, fc2 } => fc2.forward(&fc1.forward(x)?.relu()?),
        }
    }

    pub(crate) fn linears(&self) -> Vec<&Linear> {
        linears_of!(self)
    }

    pub(crate) fn linears_mut(&mut self) -> Vec<&mut Linear> {
        linears_of!(self)
    }
}
