//! Test helpers of the library, in one home: tiny model configurations
//! (seconds on a CPU), random-weight HF model dirs in the real layout built
//! from them, and [`input_file`] for tests that read a real file. Compiled
//! for the crate's own tests and behind the `testing` feature, which the
//! integration tests and benches enable (Cargo.toml's self dev-dependency);
//! the release library does not ship it.
use std::path::{Path, PathBuf};

use crate::model::{Arch, DecoderConfig};

/// A 2-layer Llama-family decoder with grouped-query attention.
pub fn tiny_llama() -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Llama,
        vocab_size: 37,
        hidden_size: 16,
        intermediate_size: 24,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 4,
        max_position: 64,
        rope_theta: 10_000.0,
        rope_scaling: None,
        norm_eps: 1e-6,
        qkv_bias: false,
        qk_norm: false,
        tie_embeddings: true,
        bos_id: Some(1),
        eos_id: 2,
        pad_id: 0,
    }
}

/// Qwen3-style: q/k norm, q/k/v bias, head_dim ≠ hidden/heads, GQA, untied head.
pub fn tiny_qwen3() -> DecoderConfig {
    DecoderConfig {
        head_dim: 6,
        num_heads: 4,
        num_kv_heads: 1,
        qk_norm: true,
        qkv_bias: true,
        tie_embeddings: false,
        rope_theta: 1_000_000.0,
        rope_scaling: None,
        ..tiny_llama()
    }
}

/// A 2-layer OPT decoder.
pub fn tiny_opt() -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Opt,
        num_kv_heads: 4,
        norm_eps: 1e-5,
        ..tiny_llama()
    }
}

/// The HF-dir writers live in the library (`sweep model init` uses them).
pub use crate::model::hf_writer::{
    bos_template, hf_config_json, word_tokenizer, write_hf_policy_dir, write_hf_reward_dir,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LoadedModel, ModelKind, load_hf_dir};
    use anyhow::anyhow;
    use candle_core::Device;
    use tokenizers::Tokenizer;

    fn tokenizer() -> Tokenizer {
        let bos = bos_template("<s>", 1);
        word_tokenizer(
            &["<pad>", "<s>", "</s>", "<unk>"],
            &["a", "b", "."],
            "<unk>",
            bos,
        )
    }

    /// What the writers write, `load_hf_dir` reads back: same config, same tensors.
    #[test]
    fn hf_dirs_load_back() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        for (i, cfg) in [tiny_llama(), tiny_qwen3()].into_iter().enumerate() {
            let dir = tmp.path().join(format!("lm{i}"));
            let policy = write_hf_policy_dir(&dir, &cfg, 3, &tokenizer())?;
            let loaded = load_hf_dir(&dir, candle_core::DType::F32, &Device::Cpu)?;
            let LoadedModel::Policy(loaded) = loaded else {
                panic!("{cfg:?}: not a policy");
            };
            assert_eq!(loaded.config(), &cfg);
            let (a, b) = (policy.backbone().params(), loaded.backbone().params());
            assert_eq!(a.tensors().len(), b.tensors().len());
            for (name, t) in a.tensors() {
                let u = b.get(&name).unwrap();
                assert_eq!(
                    t.flatten_all()?.to_vec1::<f32>()?,
                    u.flatten_all()?.to_vec1::<f32>()?
                );
            }

            let dir = tmp.path().join(format!("rm{i}"));
            write_hf_reward_dir(&dir, &cfg, 4, &tokenizer())?;
            let loaded = load_hf_dir(&dir, candle_core::DType::F32, &Device::Cpu)?;
            assert_eq!(loaded.kind(), ModelKind::Reward);
            let tok =
                Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| anyhow!("{e}"))?;
            assert_eq!(tok.encode("a b .", true).unwrap().get_ids(), [1, 4, 5, 6]);
        }
        Ok(())
    }
}

/// The real SmolLM2-135M-Instruct GGUF: `$SWEEP_SMOLLM2_GGUF`, else
/// models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-smollm2.sh puts it
/// there); `None` (after saying why) when it is not there, a failure under
/// `CI=true` ([`input_file`]).
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = std::env::var_os("SWEEP_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    input_file(
        path,
        "run scripts/fetch-smollm2.sh (or set SWEEP_SMOLLM2_GGUF) to run this test",
    )
}

/// A real input file a test needs (a checkpoint, a dataset): `Some(path)`
/// when it exists. When it does not, a developer's run skips the test with a
/// note naming `how` to get it, but under CI (`CI=true`) the test fails:
/// a missing input must not pass as a green test there.
pub fn input_file(path: impl Into<PathBuf>, how: &str) -> Option<PathBuf> {
    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    input_file_or_skip(path.into(), how, under_ci)
}

fn input_file_or_skip(path: PathBuf, how: &str, under_ci: bool) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!("{} not found; {how}", path.display());
    assert!(
        !under_ci,
        "CI=true and this test's input is missing: {message}"
    );
    eprintln!("SKIPPED: {message}");
    None
}

#[cfg(test)]
mod input_file_tests {
    use super::*;

    #[test]
    fn a_missing_input_skips_locally_and_is_found_when_there() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(input_file_or_skip(here.clone(), "", true), Some(here));
        assert_eq!(
            input_file_or_skip("no/such.gguf".into(), "fetch it", false),
            None
        );
    }

    #[test]
    #[should_panic(
        expected = "CI=true and this test's input is missing: no/such.gguf not found; fetch it"
    )]
    fn a_missing_input_fails_under_ci() {
        input_file_or_skip("no/such.gguf".into(), "fetch it", true);
    }
}
