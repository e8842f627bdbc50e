//! OpenAssistant's DeBERTa-v3 gold RM: TL;DR.
use std::path::Path;

use anyhow::{Context, anyhow, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use candle_transformers::models::debertav2;

use super::common::{
    CONFIG_FILE, MappedTensors, TOKENIZER_FILE, TensorSource, check_lengths, encode,
    length_sorted_batches, load_tokenizer, parse_config, read_config, weights_backend,
};
use super::{BATCH_SIZE, GoldScorer};

/// OpenAssistant's DeBERTa-v3 RM: `logits[0]` of the tokenizer's pair
/// encoding `[CLS] prompt [SEP] response [SEP]`, as its model card calls it
/// (`tokenizer(question, answer)`).
///
/// Prompt and response are trimmed (a leading space would become a token of
/// its own in SentencePiece). A pair longer than `max_position_embeddings`
/// (512) is truncated longest-first from the right, as `truncation=True`
/// does in transformers: candle's DeBERTa cannot run longer inputs, and the
/// model never saw them.
pub struct DebertaGold {
    model: debertav2::DebertaV2SeqClassificationModel,
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    use_token_types: bool,
    device: Device,
}

impl DebertaGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let config = read_config(dir, "deberta-v2", "DeBERTa-v2 reward model")?;
        let cfg: debertav2::Config = parse_config(dir, &config)?;
        let config_path = dir.join(CONFIG_FILE);
        let labels = cfg.id2label.as_ref().map_or(1, |m| m.len());
        ensure!(
            labels == 1,
            "{}: {labels} labels in `id2label`; a reward model has one (is this a classifier?)",
            config_path.display()
        );
        // candle's ConvLayer::forward is a `todo!()`: refuse instead of panicking.
        ensure!(
            cfg.conv_kernel_size.unwrap_or(0) == 0,
            "{}: conv_kernel_size > 0 (DeBERTa-v2 xlarge/xxlarge conv layer) is not supported \
             by candle-transformers",
            config_path.display()
        );
        let id2label = cfg
            .id2label
            .is_none()
            .then(|| [(0u32, "LABEL_0".to_string())].into());
        let vb = VarBuilder::from_backend(
            Box::new(MappedTensors {
                inner: weights_backend(dir, "AutoModelForSequenceClassification")?,
                source: legacy_layer_norm_name,
            }),
            DType::F32,
            device.clone(),
        );
        let model =
            debertav2::DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &cfg, id2label)
                .with_context(|| format!("loading DeBERTa weights from {}", dir.display()))?;
        let mut tokenizer = load_tokenizer(dir)?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: cfg.max_position_embeddings,
                strategy: tokenizers::TruncationStrategy::LongestFirst,
                stride: 0,
                direction: tokenizers::TruncationDirection::Right,
            }))
            .map_err(|e| anyhow!("{}: {e}", dir.join(TOKENIZER_FILE).display()))?;
        Ok(Self {
            model,
            tokenizer,
            pad_id: cfg.pad_token_id.unwrap_or(0) as u32,
            use_token_types: cfg.type_vocab_size > 0,
            device: device.clone(),
        })
    }

    /// Token ids and token type ids of one (prompt, response) pair.
    pub fn pair_ids(&self, prompt: &str, response: &str) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
        let encoding = encode(&self.tokenizer, (prompt.trim(), response.trim()), true)?;
        Ok((
            encoding.get_ids().to_vec(),
            encoding.get_type_ids().to_vec(),
        ))
    }
}

impl GoldScorer for DebertaGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| self.pair_ids(p, r))
            .collect::<anyhow::Result<_>>()?;
        let lens: Vec<usize> = pairs.iter().map(|(ids, _)| ids.len()).collect();
        let mut scores = vec![0f32; pairs.len()];
        for batch in length_sorted_batches(&lens, BATCH_SIZE) {
            let (b, t) = (
                batch.len(),
                batch.iter().map(|&i| lens[i]).max().unwrap_or(1),
            );
            // Right padding; the mask keeps pads out of every attention row
            // and the score is read at [CLS], column 0.
            let mut ids = vec![self.pad_id; b * t];
            let mut types = vec![0u32; b * t];
            let mut mask = vec![0i64; b * t];
            for (row, &i) in batch.iter().enumerate() {
                let (seq, seq_types) = &pairs[i];
                ids[row * t..row * t + seq.len()].copy_from_slice(seq);
                types[row * t..row * t + seq.len()].copy_from_slice(seq_types);
                mask[row * t..row * t + seq.len()].fill(1);
            }
            let ids = Tensor::from_vec(ids, (b, t), &self.device)?; // [B, T]
            let types = self
                .use_token_types
                .then(|| Tensor::from_vec(types, (b, t), &self.device))
                .transpose()?; // [B, T]
            let mask = Tensor::from_vec(mask, (b, t), &self.device)?; // [B, T]
            let logits = self.model.forward(&ids, types, Some(mask))?; // [B, 1]
            let values = logits.squeeze(1)?.to_vec1::<f32>()?; // [B]
            for (&i, v) in batch.iter().zip(values) {
                scores[i] = v;
            }
        }
        Ok(scores)
    }
}

/// Older PyTorch DeBERTa checkpoints name LayerNorm parameters `gamma` /
/// `beta`; transformers renames them on load, candle asks for `weight` /
/// `bias`. The [`MappedTensors`] rule: a name the checkpoint holds reads
/// itself, else its legacy form when that is a LayerNorm parameter there.
fn legacy_layer_norm_name<'n>(weights: &dyn SimpleBackend, name: &'n str) -> TensorSource<'n> {
    if weights.contains_tensor(name) {
        return TensorSource::Named(name.into());
    }
    let legacy = name
        .strip_suffix(".weight")
        .map(|base| format!("{base}.gamma"))
        .or_else(|| {
            name.strip_suffix(".bias")
                .map(|base| format!("{base}.beta"))
        });
    TensorSource::Named(match legacy {
        Some(l) if l.contains("LayerNorm") && weights.contains_tensor(&l) => l.into(),
        _ => name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::real_gold::common::PYTORCH_WEIGHTS_FILE;
    use crate::eval::real_gold::test_support::*;
    use crate::eval::real_gold::{RealGoldKind, load_real_gold};
    use candle_nn::VarMap;
    use serde_json::{Value as Json, json};
    use std::collections::HashMap;
    use tokenizers::Tokenizer;
    use tokenizers::processors::template::TemplateProcessing;

    const DEBERTA_SPECIALS: &[&str] = &["[PAD]", "[CLS]", "[SEP]", "[UNK]"];
    const DEBERTA_WORDS: &[&str] = &[
        "what",
        "is",
        "the",
        "sun",
        "?",
        "it",
        "hot",
        ".",
        "a",
        "star",
        "cold",
        "my",
        "cat",
        "summary",
        "TL",
        ";",
        "DR",
        ":",
        "post",
        "long",
        "SUBREDDIT",
        "r",
        "/",
        "TITLE",
        "POST",
    ];
    const DEBERTA_MAX_POSITIONS: usize = 24;

    fn deberta_config_json() -> Json {
        json!({
            "architectures": ["DebertaV2ForSequenceClassification"],
            "model_type": "deberta-v2",
            "vocab_size": DEBERTA_SPECIALS.len() + DEBERTA_WORDS.len(),
            "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": DEBERTA_MAX_POSITIONS, "type_vocab_size": 0,
            "initializer_range": 0.02, "layer_norm_eps": 1e-7,
            "relative_attention": true, "max_relative_positions": -1, "position_buckets": 8,
            "pad_token_id": 0, "position_biased_input": false, "pos_att_type": ["p2c", "c2p"],
            "share_att_key": true, "norm_rel_ebd": "layer_norm",
            "pooler_dropout": 0, "pooler_hidden_act": "gelu", "pooler_hidden_size": 16,
            "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "torch_dtype": "float32"
        })
    }

    fn deberta_tokenizer() -> Tokenizer {
        let pair = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
            .unwrap()
            .special_tokens(vec![("[CLS]", 1), ("[SEP]", 2)])
            .build()
            .unwrap();
        word_tokenizer(DEBERTA_SPECIALS, DEBERTA_WORDS, "[UNK]", pair)
    }

    /// An HF dir with a random DeBERTa-v2 reward model; also returns the
    /// in-memory model and its tensors by name.
    fn deberta_dir() -> Result<(
        tempfile::TempDir,
        debertav2::DebertaV2SeqClassificationModel,
        HashMap<String, Tensor>,
    )> {
        let dir = tempfile::tempdir()?;
        let config = deberta_config_json();
        let cfg: debertav2::Config = serde_json::from_value(config.clone())?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = debertav2::DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &cfg, None)?;
        randomize(&varmap, 0.5)?;
        let tensors = varmap_tensors(&varmap);
        assert!(tensors.contains_key("deberta.encoder.rel_embeddings.weight"));
        assert!(
            tensors.contains_key("pooler.dense.weight") && tensors.contains_key("classifier.bias")
        );
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors"))?;
        write_json(&dir.path().join(CONFIG_FILE), &config)?;
        deberta_tokenizer()
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((dir, model, tensors))
    }

    fn deberta_direct(
        model: &debertav2::DebertaV2SeqClassificationModel,
        ids: &[u32],
    ) -> Result<f32> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?; // [1, T]
        Ok(model
            .forward(&input, None, None)?
            .flatten_all()?
            .to_vec1::<f32>()?[0])
    }

    #[test]
    fn deberta_scores_the_pair_encoding() -> Result {
        let (dir, model, _) = deberta_dir()?;
        let gold = DebertaGold::load(dir.path(), &Device::Cpu)?;
        let tok = deberta_tokenizer();
        let expected = ids(&tok, "[CLS] what is the sun ? [SEP] it is a star . [SEP]");
        let (got_ids, types) = gold.pair_ids("what is the sun ?", " it is a star .")?;
        assert_eq!(got_ids, expected);
        assert_eq!(types, [vec![0; 7], vec![1; 6]].concat());
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let got = scorer.score(
            &strings(&["what is the sun ?"]),
            &strings(&[" it is a star ."]),
        )?;
        assert_close(&got, &[deberta_direct(&model, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_batching_matches_one_by_one_and_truncates() -> Result {
        let (dir, model, _) = deberta_dir()?;
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let prompts: Vec<String> = (0..10)
            .map(|i| "what is the sun ? ".repeat(1 + i % 3))
            .collect();
        let responses: Vec<String> = (0..10)
            .map(|i| [" it is hot .", " a star", " cold"][i % 3].repeat(1 + i % 4))
            .collect();
        let batched = batched_as_alone(scorer.as_ref(), &prompts, &responses, 1e-5)?;
        assert!((batched[0] - batched[1]).abs() > 1e-6, "{batched:?}");

        // Too long for the model: cut longest-first to max_position_embeddings.
        let gold = DebertaGold::load(dir.path(), &Device::Cpu)?;
        let long_response = " it is hot .".repeat(10);
        let (truncated, _) = gold.pair_ids("what is the sun ?", &long_response)?;
        assert_eq!(truncated.len(), DEBERTA_MAX_POSITIONS);
        let tok = deberta_tokenizer();
        assert_eq!(truncated[..7], ids(&tok, "[CLS] what is the sun ? [SEP]"));
        assert_eq!(truncated.last(), tok.token_to_id("[SEP]").as_ref());
        let got = gold.score(&strings(&["what is the sun ?"]), &[long_response])?;
        assert_close(&got, &[deberta_direct(&model, &truncated)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_reads_legacy_layer_norm_names() -> Result {
        let (dir, model, tensors) = deberta_dir()?;
        let legacy: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, t)| {
                let k = match k.contains("LayerNorm") {
                    true => k.replace(".weight", ".gamma").replace(".bias", ".beta"),
                    false => k,
                };
                (k, t)
            })
            .collect();
        assert!(legacy.contains_key("deberta.embeddings.LayerNorm.gamma"));
        candle_core::safetensors::save(&legacy, dir.path().join("model.safetensors"))?;
        let scorer = load_real_gold(RealGoldKind::Deberta, dir.path(), &Device::Cpu)?;
        let got = scorer.score(
            &strings(&["what is the sun ?"]),
            &strings(&[" it is hot ."]),
        )?;
        let expected = ids(
            &deberta_tokenizer(),
            "[CLS] what is the sun ? [SEP] it is hot . [SEP]",
        );
        assert_close(&got, &[deberta_direct(&model, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn deberta_errors_name_the_file() -> Result {
        let (dir, _, _) = deberta_dir()?;
        let config_path = dir.path().join(CONFIG_FILE);
        let mut bert = deberta_config_json();
        bert["model_type"] = json!("bert");
        write_json(&config_path, &bert)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&config_path.display().to_string())
                && err.contains("model_type `bert` is not a DeBERTa-v2 reward model"),
            "{err}"
        );
        let mut two_labels = deberta_config_json();
        two_labels["id2label"] = json!({"0": "NEG", "1": "POS"});
        write_json(&config_path, &two_labels)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(err.contains("2 labels"), "{err}");
        let mut incomplete = deberta_config_json();
        incomplete.as_object_mut().unwrap().remove("hidden_size");
        write_json(&config_path, &incomplete)?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("hidden_size") && err.contains(&config_path.display().to_string()),
            "{err}"
        );

        write_json(&config_path, &deberta_config_json())?;
        std::fs::remove_file(dir.path().join("model.safetensors"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("model.safetensors") && err.contains(PYTORCH_WEIGHTS_FILE),
            "{err}"
        );
        // Only a PyTorch checkpoint, and an unreadable one: say how to convert it.
        let bin = dir.path().join(PYTORCH_WEIGHTS_FILE);
        std::fs::write(&bin, b"not a zip pickle")?;
        let err = err_text(load_real_gold(
            RealGoldKind::Deberta,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&bin.display().to_string())
                && err.contains("AutoModelForSequenceClassification"),
            "{err}"
        );
        Ok(())
    }
}
