//! Causal multi-head self-attention with grouped-query heads and a KV cache.
//!
//! Llama family: q/k/v/o projections (q/k/v bias optional), optional per-head
//! q/k RMSNorm before RoPE. OPT: biases everywhere, output projection called
//! `out_proj`, no RoPE (positions are learned embeddings).
//!
//! Grouped-query attention never materialises repeated K/V heads: the H query
//! heads are viewed as [KV, n_rep · S] so each KV head serves its n_rep query
//! heads in one batched matmul (head h uses KV head h / n_rep, as HF's
//! `repeat_kv`).
use candle_core::{DType, Result, Tensor};
use candle_nn::Init;

use super::config::{Arch, DecoderConfig};
use super::linear::Linear;
use super::lora::LoraContext;
use super::ops::{biased_softmax, rms_norm};
use super::params::ParamBuilder;
use super::rotary::RotaryAngles;

/// Keys and values of the positions seen so far, one entry per layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Per layer: (k, v), each [B, KV, T_past, hd].
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Additive attention bias [B, 1, S, T_k]: 0 where query i may see key j,
/// −inf elsewhere. Queries are the last S of T_k columns. A query sees real
/// keys at or before it; a pad query sees only itself (so no row is all −inf
/// and pads cannot leak into real tokens).
/// attn_mask: [B, T_k] f32, 1 for real tokens.
pub fn attention_bias(attn_mask: &Tensor, s: usize, dtype: DType) -> Result<Tensor> {
    let (b, tk) = attn_mask.dims2()?;
    let dev = attn_mask.device();
    let q_idx = Tensor::arange((tk - s) as u32, tk as u32, dev)?.reshape((s, 1))?; // [S, 1]
    let k_idx = Tensor::arange(0u32, tk as u32, dev)?.reshape((1, tk))?; // [1, T_k]
    let causal = k_idx.broadcast_le(&q_idx)?; // [S, T_k] u8
    let diagonal = k_idx.broadcast_eq(&q_idx)?; // [S, T_k] u8
    let key_real = attn_mask.ge(0.5)?.reshape((b, 1, 1, tk))?; // [B, 1, 1, T_k] u8
    let allowed = key_real
        .broadcast_mul(&causal)?
        .broadcast_maximum(&diagonal)?; // [B, 1, S, T_k]
    let zeros = Tensor::zeros((b, 1, s, tk), dtype, dev)?;
    let minus_inf = Tensor::full(f32::NEG_INFINITY, (b, 1, s, tk), dev)?.to_dtype(dtype)?;
    allowed.where_cond(&zeros, &minus_inf)
}

#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// Per-head RMSNorm weights [hd] (Qwen3).
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    norm_eps: f64,
}

impl Attention {
    /// `pb` is the `self_attn` prefix.
    pub fn load(
        pb: &ParamBuilder,
        cfg: &DecoderConfig,
        lora: Option<&LoraContext>,
    ) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let (h, kv) = (cfg.num_heads, cfg.num_kv_heads);
        let opt = cfg.arch == Arch::Opt;
        let qkv_bias = opt || cfg.qkv_bias;
        let out_name = if opt { "out_proj" } else { "o_proj" };
        // Per-head q/k RMSNorm weights (Qwen3), frozen with LoRA like every base weight.
        let norm = |name: &str| -> Result<Option<Tensor>> {
            if !cfg.qk_norm {
                return Ok(None);
            }
            let init = Init::Const(1.0);
            pb.pp(name)
                .param(hd, "weight", init, lora.is_none())
                .map(Some)
        };
        Ok(Self {
            q_proj: Linear::load(pb, "q_proj", d, h * hd, qkv_bias, lora)?,
            k_proj: Linear::load(pb, "k_proj", d, kv * hd, qkv_bias, lora)?,
            v_proj: Linear::load(pb, "v_proj", d, kv * hd, qkv_bias, lora)?,
            o_proj: Linear::load(pb, out_name, h * hd, d, opt, lora)?,
            q_norm: norm("q_norm")?,
            k_norm: norm("k_norm")?,
            num_heads: h,
            num_kv_heads: kv,
            head_dim: hd,
            norm_eps: cfg.norm_eps,
        })
    }

    /// x: [B, S, D]; bias: [B, 1, S, T_k] from [`attention_bias`] with
    /// T_k = cached + S; rope: angles of the S new positions (None for OPT).
    /// Appends this step's keys/values to `cache` when given. Returns [B, S, D].
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        rope: Option<&RotaryAngles>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let (h, kv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x)?.reshape((b, s, h, hd))?;
        let k = self.k_proj.forward(x)?.reshape((b, s, kv, hd))?;
        let v = self.v_proj.forward(x)?.reshape((b, s, kv, hd))?;
        let (q, k) = match (&self.q_norm, &self.k_norm) {
            (Some(qn), Some(kn)) => (
                rms_norm(&q, qn, self.norm_eps)?,
                rms_norm(&k, kn, self.norm_eps)?,
            ),
            _ => (q, k),
        };
        // RoPE on [B, S, H, hd] (contiguous straight out of the projection).
        let (q, k) = match rope {
            Some(angles) => (angles.apply(&q)?, angles.apply(&k)?),
            None => (q, k),
        };
        // Scale q rather than the [S, T_k] scores: fewer multiplications.
        let q = (q.transpose(1, 2)? * (1.0 / (hd as f64).sqrt()))?; // [B, H, S, hd]
        let k = k.transpose(1, 2)?.contiguous()?; // [B, KV, S, hd]
        let v = v.transpose(1, 2)?.contiguous()?; // [B, KV, S, hd]
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let tk = k.dim(2)?;
        let n_rep = h / kv;
        let q = q.reshape((b, kv, n_rep * s, hd))?; // query heads grouped by their KV head
        let scores = q.matmul(&k.t()?)?.reshape((b, h, s, tk))?; // [B, H, S, T_k]
        let probs = biased_softmax(&scores, bias)?;
        let probs = probs.reshape((b, kv, n_rep * s, tk))?;
        let out = probs.matmul(&v)?.reshape((b, h, s, hd))?; // [B, H, S, hd]
        let out = out.transpose(1, 2)?.reshape((b, s, h * hd))?; // [B, S, H·hd]
        self.o_proj.forward(&out)
    }

    pub(crate) fn linears(&self) -> [&Linear; 4] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj]
    }

    pub(crate) fn linears_mut(&mut self) -> [&mut Linear; 4] {
        [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.o_proj,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bias_hides_pads_and_future_and_keeps_pad_rows_finite() -> Result<()> {
        let dev = Device::Cpu;
        // One left-padded row: pad, a, b.
        let mask = Tensor::new(&[[0f32, 1., 1.]], &dev)?;
        let bias = attention_bias(&mask, 3, DType::F32)?
            .squeeze(0)?
            .squeeze(0)?
            .to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(
            bias,
            vec![vec![0., inf, inf], vec![inf, 0., inf], vec![inf, 0., 0.]]
        );
        // Decoding one new token after three cached ones sees every real key.
        let mask = Tensor::new(&[[0f32, 1., 1., 1.]], &dev)?;
        let bias = attention_bias(&mask, 1, DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(bias, vec![inf, 0., 0., 0.]);
        Ok(())
    }
}
