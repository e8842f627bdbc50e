//! Hugging Face `config.json` → [`DecoderConfig`].
//!
//! Supported `model_type`s: `llama` (also SmolLM2), `qwen2`, `qwen3`, `opt`.
//! Defaults follow the transformers config classes. Variants the decoder does
//! not implement (RoPE scaling, sliding windows, MLP bias, OPT-350m's
//! projected embeddings or post-norm) are errors, never silently ignored.
use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::config::{Arch, DecoderConfig, RopeScaling};

/// Reads and maps `<dir>/config.json`.
pub fn read_hf_config(dir: &Path) -> anyhow::Result<DecoderConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (an HF model dir needs config.json)",
            path.display()
        )
    })?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {} as JSON", path.display()))?;
    decoder_config_from_hf(&value).with_context(|| format!("in {}", path.display()))
}

/// A field's value: None when absent or null; an error naming the key when mistyped.
fn opt<T: DeserializeOwned>(obj: &Map<String, Value>, key: &str) -> anyhow::Result<Option<T>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .with_context(|| format!("key `{key}` has an unexpected type: {v}")),
    }
}

fn req<T: DeserializeOwned>(obj: &Map<String, Value>, key: &str) -> anyhow::Result<T> {
    opt(obj, key)?.with_context(|| format!("missing key `{key}`"))
}

/// A token id given as a number or a list of numbers (first one wins).
fn token_id(obj: &Map<String, Value>, key: &str) -> anyhow::Result<Option<u32>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(ids)) => ids
            .first()
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .with_context(|| format!("key `{key}`: expected token ids")),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .with_context(|| format!("key `{key}`: expected a token id, got {v}")),
    }
}

/// Maps a parsed HF config.
pub fn decoder_config_from_hf(value: &Value) -> anyhow::Result<DecoderConfig> {
    let obj = value
        .as_object()
        .context("config.json is not a JSON object")?;
    let model_type: String = req(obj, "model_type")?;
    let arch = match model_type.as_str() {
        "llama" | "qwen2" | "qwen3" => Arch::Llama,
        "opt" => Arch::Opt,
        other => bail!(
            "model_type `{other}` is not supported; supported are llama (SmolLM2), qwen2, qwen3, opt"
        ),
    };
    let hidden: usize = req(obj, "hidden_size")?;
    let heads: usize = req(obj, "num_attention_heads")?;
    let eos = token_id(obj, "eos_token_id")?.context("missing key `eos_token_id`")?;
    let mut cfg = DecoderConfig {
        arch,
        vocab_size: req(obj, "vocab_size")?,
        hidden_size: hidden,
        intermediate_size: 0,
        num_layers: req(obj, "num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: opt(obj, "num_key_value_heads")?.unwrap_or(heads),
        head_dim: hidden / heads.max(1),
        max_position: opt(obj, "max_position_embeddings")?.unwrap_or(2048),
        rope_theta: opt(obj, "rope_theta")?.unwrap_or(10_000.0),
        rope_scaling: None,
        norm_eps: 1e-6,
        qkv_bias: false,
        qk_norm: false,
        tie_embeddings: false,
        bos_id: token_id(obj, "bos_token_id")?,
        eos_id: eos,
        pad_id: token_id(obj, "pad_token_id")?.unwrap_or(eos),
    };
    match arch {
        Arch::Llama => {
            cfg.intermediate_size = req(obj, "intermediate_size")?;
            cfg.norm_eps = opt(obj, "rms_norm_eps")?.unwrap_or(1e-6);
            cfg.tie_embeddings = opt(obj, "tie_word_embeddings")?.unwrap_or(false);
            let act: String = opt(obj, "hidden_act")?.unwrap_or_else(|| "silu".into());
            ensure!(
                act == "silu",
                "hidden_act `{act}` is not supported (only silu)"
            );
            ensure!(
                !opt::<bool>(obj, "mlp_bias")?.unwrap_or(false),
                "mlp_bias = true is not supported"
            );
            if let Some(scaling) = obj.get("rope_scaling").filter(|v| !v.is_null()) {
                cfg.rope_scaling = Some(rope_scaling(scaling)?);
            }
            ensure!(
                !opt::<bool>(obj, "use_sliding_window")?.unwrap_or(false),
                "use_sliding_window = true is not supported"
            );
            let attention_bias: bool = opt(obj, "attention_bias")?.unwrap_or(false);
            match model_type.as_str() {
                "qwen2" => cfg.qkv_bias = true,
                "qwen3" => {
                    cfg.qkv_bias = attention_bias;
                    cfg.qk_norm = true;
                    cfg.head_dim = opt(obj, "head_dim")?.unwrap_or(128);
                }
                _ => {
                    cfg.qkv_bias = attention_bias;
                    cfg.head_dim = opt(obj, "head_dim")?.unwrap_or(cfg.head_dim);
                }
            }
            ensure!(
                !(attention_bias && model_type == "llama"),
                "attention_bias = true on llama also biases o_proj, which is not supported"
            );
        }
        Arch::Opt => {
            cfg.intermediate_size = req(obj, "ffn_dim")?;
            cfg.norm_eps = 1e-5;
            cfg.tie_embeddings = opt(obj, "tie_word_embeddings")?.unwrap_or(true);
            ensure!(
                opt::<bool>(obj, "do_layer_norm_before")?.unwrap_or(true),
                "do_layer_norm_before = false (post-norm OPT, e.g. opt-350m) is not supported"
            );
            let proj: usize = opt(obj, "word_embed_proj_dim")?.unwrap_or(hidden);
            ensure!(
                proj == hidden,
                "word_embed_proj_dim {proj} ≠ hidden_size {hidden} (projected embeddings, e.g. \
                 opt-350m) is not supported"
            );
            let act: String = opt(obj, "activation_function")?.unwrap_or_else(|| "relu".into());
            ensure!(
                act == "relu",
                "activation_function `{act}` is not supported (only relu)"
            );
            ensure!(
                opt(obj, "enable_bias")?.unwrap_or(true),
                "enable_bias = false is not supported"
            );
            ensure!(
                opt(obj, "layer_norm_elementwise_affine")?.unwrap_or(true),
                "layer_norm_elementwise_affine = false is not supported"
            );
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

/// HF's `rope_scaling` object; only Llama 3.1's `llama3` rescaling is
/// implemented (other types would silently change every position's angle).
fn rope_scaling(value: &serde_json::Value) -> anyhow::Result<RopeScaling> {
    let kind = value
        .get("rope_type")
        .or_else(|| value.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    ensure!(
        kind == "llama3",
        "rope_scaling {value} is not supported (only plain RoPE and `rope_type = \"llama3\"`)"
    );
    let field = |name: &str| -> anyhow::Result<f64> {
        value
            .get(name)
            .and_then(|v| v.as_f64())
            .with_context(|| format!("rope_scaling {value}: missing number `{name}`"))
    };
    Ok(RopeScaling {
        factor: field("factor")?,
        low_freq_factor: field("low_freq_factor")?,
        high_freq_factor: field("high_freq_factor")?,
        original_max_position: field("original_max_position_embeddings")? as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_qwen3_and_smollm2_fields() -> anyhow::Result<()> {
        let qwen3 = json!({
            "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
            "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
            "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
            "attention_bias": false, "eos_token_id": 151645, "bos_token_id": 151643,
            "rope_scaling": null
        });
        let c = decoder_config_from_hf(&qwen3)?;
        assert_eq!(
            (c.head_dim, c.num_kv_heads, c.qk_norm, c.qkv_bias),
            (128, 8, true, false)
        );
        assert_eq!(
            (c.tie_embeddings, c.rope_theta, c.pad_id),
            (true, 1e6, 151645)
        );
        let smol = json!({
            "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
            "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
            "num_key_value_heads": 3, "rope_theta": 100000, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": true, "eos_token_id": [2, 0], "pad_token_id": 2
        });
        let c = decoder_config_from_hf(&smol)?;
        assert_eq!(
            (c.head_dim, c.eos_id, c.rope_theta, c.norm_eps),
            (64, 2, 1e5, 1e-5)
        );
        Ok(())
    }

    #[test]
    fn unsupported_variants_are_named() {
        let opt350 = json!({
            "model_type": "opt", "vocab_size": 50272, "hidden_size": 1024, "ffn_dim": 4096,
            "num_hidden_layers": 24, "num_attention_heads": 16, "word_embed_proj_dim": 512,
            "do_layer_norm_before": false, "eos_token_id": 2
        });
        let err = format!("{:#}", decoder_config_from_hf(&opt350).unwrap_err());
        assert!(err.contains("do_layer_norm_before"), "{err}");
        let mistral = json!({"model_type": "mistral"});
        let err = format!("{:#}", decoder_config_from_hf(&mistral).unwrap_err());
        assert!(err.contains("`mistral` is not supported"), "{err}");
        let missing = json!({"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "eos_token_id": 1});
        let err = format!("{:#}", decoder_config_from_hf(&missing).unwrap_err());
        assert!(err.contains("missing key `vocab_size`"), "{err}");
        let scaled = json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "eos_token_id": 1,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0}
        });
        let err = format!("{:#}", decoder_config_from_hf(&scaled).unwrap_err());
        assert!(err.contains("low_freq_factor"), "{err}");
        let yarn = json!({
            "model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "eos_token_id": 1,
            "rope_scaling": {"type": "yarn", "factor": 4.0}
        });
        let err = format!("{:#}", decoder_config_from_hf(&yarn).unwrap_err());
        assert!(
            err.contains("not supported") && err.contains("yarn"),
            "{err}"
        );
    }

    /// Llama 3.1's published scaling: high frequencies kept, low ones divided
    /// by the factor, the band between continuous at both ends.
    #[test]
    fn llama3_rope_scaling_parses_and_rescales_by_wavelength() {
        let cfg = json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "eos_token_id": 1,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        });
        let scaling = decoder_config_from_hf(&cfg).unwrap().rope_scaling.unwrap();
        assert_eq!(scaling.original_max_position, 8192);
        let at_wavelength = |w: f64| 2.0 * std::f64::consts::PI / w;
        // Wavelength 100 < 8192/4: untouched; 1e5 > 8192/1: divided by 8.
        assert_eq!(scaling.rescale(at_wavelength(100.0)), at_wavelength(100.0));
        let low = at_wavelength(1e5);
        assert!((scaling.rescale(low) - low / 8.0).abs() < 1e-18);
        for (edge, expected) in [(2048.0, 1.0), (8192.0, 1.0 / 8.0)] {
            let f = at_wavelength(edge);
            assert!(((scaling.rescale(f) / f) - expected).abs() < 1e-9, "{edge}");
        }
        // Halfway through the band (8192 / wavelength = 2.5): smooth = 0.5.
        let mid = at_wavelength(8192.0 / 2.5);
        let want = 0.5 * mid / 8.0 + 0.5 * mid;
        assert!((scaling.rescale(mid) - want).abs() < 1e-15);
    }
}
