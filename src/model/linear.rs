//! A linear projection `y = x Wᵀ + b`, optionally with a LoRA adapter.
//!
//! Weights use the PyTorch layout [out, in] so HF checkpoints load as is.
//! The product runs in the input's dtype: a weight stored in another one (an
//! f32 master weight under bf16 compute) is cast where it is used.
use candle_core::{Result, Tensor};
use candle_nn::Init;

use super::init::WEIGHT_INIT;
use super::lora::{LoraAdapter, LoraContext};
use super::params::{ParamBuilder, ParamStore};
use super::precision::cast_like;

#[derive(Debug, Clone)]
pub struct Linear {
    /// [out, in]
    weight: Tensor,
    /// [out]
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
    /// Full name of the weight (to write merged values back).
    weight_name: String,
}

impl Linear {
    /// Loads or initialises `<parent>.<name>.weight` (N(0, 0.02)) and, when
    /// `bias`, `<parent>.<name>.bias` (zeros). A LoRA adapter is attached when
    /// `lora` targets `name`; base weights are trainable only without LoRA.
    pub fn load(
        parent: &ParamBuilder,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        lora: Option<&LoraContext>,
    ) -> Result<Self> {
        let pb = parent.pp(name);
        let trainable = lora.is_none();
        let weight = pb.param((out_dim, in_dim), "weight", WEIGHT_INIT, trainable)?;
        let bias = match bias {
            true => Some(pb.param(out_dim, "bias", Init::Const(0.0), trainable)?),
            false => None,
        };
        let lora = match lora {
            Some(ctx) if ctx.config.targets(name) => {
                Some(LoraAdapter::load(&pb, in_dim, out_dim, ctx)?)
            }
            _ => None,
        };
        Ok(Self {
            weight,
            bias,
            lora,
            weight_name: pb.full_name("weight"),
        })
    }

    /// x: [..., in] → [..., out]. The leading dims are flattened into one
    /// matrix so the whole batch is a single GEMM.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let x2 = x.reshape((rows, in_dim))?; // [N, in]
        let mut y = x2.matmul(&cast_like(&self.weight, x)?.t()?)?; // [N, out]
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(&cast_like(bias, x)?)?;
        }
        if let Some(lora) = &self.lora {
            y = (y + lora.forward(&x2)?)?;
        }
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty dims") = y.dim(1)?;
        y.reshape(out_dims)
    }

    /// Full name of the weight, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub fn weight_name(&self) -> &str {
        &self.weight_name
    }

    /// The weight with any adapter folded in, detached: [out, in]. With an
    /// adapter, in the adapter's (master) dtype.
    pub fn effective_weight(&self) -> Result<Tensor> {
        match &self.lora {
            Some(lora) => {
                let delta = lora.delta_weight()?;
                cast_like(&self.weight.detach(), &delta)? + delta
            }
            None => Ok(self.weight.detach()),
        }
    }

    /// Full names of the adapter's A and B (empty without LoRA).
    pub fn adapter_names(&self) -> Vec<String> {
        self.lora
            .iter()
            .flat_map(|l| l.names.iter().cloned())
            .collect()
    }

    pub fn has_lora(&self) -> bool {
        self.lora.is_some()
    }

    /// Folds the adapter into the base weight (W += (α/r)·B·A), removes the
    /// adapter's parameters from `store` and detaches the adapter.
    pub fn merge_lora(&mut self, store: &mut ParamStore) -> Result<()> {
        let Some(lora) = self.lora.take() else {
            return Ok(());
        };
        let var = store.get(&self.weight_name).ok_or_else(|| {
            candle_core::Error::Msg(format!("merge: parameter `{}` missing", self.weight_name))
        })?;
        let delta = lora.delta_weight()?; // master dtype
        let merged = (cast_like(&var.as_tensor().detach(), &delta)? + delta)?;
        var.set(&merged.to_dtype(var.dtype())?)?;
        for name in &lora.names {
            store.remove(name);
        }
        Ok(())
    }
}
