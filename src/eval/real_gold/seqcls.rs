//! The decoder `*ForSequenceClassification` gold RM (Skywork-Reward-V2):
//! HH-RLHF and UltraFeedback.
use std::path::Path;

use anyhow::{Context, ensure};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::chat::{ChatTemplate, conversation};
use super::common::{
    MappedTensors, TensorSource, check_lengths, encode, length_sorted_batches, load_tokenizer,
};
use super::{BATCH_SIZE, GoldScorer, SEQCLS_MAX_TOKENS};
use crate::model::checkpoint::hf_weight_files;
use crate::model::hf_config::read_hf_config;
use crate::model::reward::SCORE_HEAD;
use crate::model::{LoraConfig, RewardModel, ScalarScorer};
use crate::train::{Batching, TokenizedExample};

/// A decoder `*ForSequenceClassification` RM: the score head's scalar read at
/// the last token of the chat-formatted conversation.
///
/// Input: the dir's chat template (`tokenizer_config.json`'s `chat_template`,
/// or `chat_template.jinja`) rendered over [`conversation`]`(prompt, response)`
/// with `add_generation_prompt = false`, then tokenised with the tokenizer's
/// special tokens (its BOS), dropping a BOS the template already wrote — the
/// recipe of the Skywork-Reward model cards. Without a template, `prompt +
/// response` as plain text, tokenised the same way.
///
/// Truncation: a sequence longer than `min(max_position_embeddings,
/// SEQCLS_MAX_TOKENS)` keeps its leading BOS and its last tokens. The score
/// is read at the last token, which must be the response's end, so it is the
/// start of the conversation that goes.
pub struct SeqClsGold {
    model: RewardModel,
    tokenizer: tokenizers::Tokenizer,
    template: Option<ChatTemplate>,
    bos_id: Option<u32>,
    pad_id: u32,
    max_len: usize,
    device: Device,
}

impl SeqClsGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let model = load_frozen_reward(dir, device)?;
        let tokenizer = load_tokenizer(dir)?;
        let template = ChatTemplate::from_dir(dir)?;
        let cfg = model.config();
        let bos_id = template
            .as_ref()
            .and_then(|t| t.special_tokens.get("bos_token"))
            .and_then(|bos| tokenizer.token_to_id(bos))
            .or(cfg.bos_id);
        Ok(Self {
            pad_id: cfg.pad_id,
            max_len: cfg.max_position.min(SEQCLS_MAX_TOKENS),
            model,
            tokenizer,
            template,
            bos_id,
            device: device.clone(),
        })
    }

    /// The text the RM reads for one (prompt, response).
    pub fn format(&self, prompt: &str, response: &str) -> anyhow::Result<String> {
        match &self.template {
            Some(t) => t.render(&conversation(prompt, response)),
            None => Ok(format!("{prompt}{response}")),
        }
    }

    /// The token ids the RM reads for one (prompt, response).
    pub fn sequence_ids(&self, prompt: &str, response: &str) -> anyhow::Result<Vec<u32>> {
        let text = self.format(prompt, response)?;
        let mut ids = encode(&self.tokenizer, text.as_str(), true)?
            .get_ids()
            .to_vec();
        // A template that writes `{{ bos_token }}` and a tokenizer that adds BOS
        // would give two; the RM was trained on one.
        if let Some(bos) = self.bos_id
            && ids.len() >= 2
            && ids[0] == bos
            && ids[1] == bos
        {
            ids.remove(0);
        }
        Ok(keep_tail(ids, self.max_len, self.bos_id))
    }
}

/// `ids` cut to `max_len` by dropping tokens after a leading `bos`: the end,
/// where a reward model reads its score, survives.
fn keep_tail(ids: Vec<u32>, max_len: usize, bos: Option<u32>) -> Vec<u32> {
    if ids.len() <= max_len {
        return ids;
    }
    let head = usize::from(bos.is_some() && ids.first() == bos.as_ref());
    let tail = max_len.saturating_sub(head);
    ids[..head]
        .iter()
        .chain(&ids[ids.len() - tail..])
        .copied()
        .collect()
}

impl GoldScorer for SeqClsGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let examples: Vec<TokenizedExample> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| {
                Ok(TokenizedExample {
                    // The whole sequence as "prompt" and no response: the RM
                    // reads the last token, there is nothing to predict.
                    prompt: self.sequence_ids(p, r)?,
                    response: Vec::new(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let batching = Batching {
            pad_id: self.pad_id,
            max_len: self.max_len,
            device: self.device.clone(),
        };
        let lens: Vec<usize> = examples.iter().map(|e| e.prompt.len()).collect();
        let mut scores = vec![0f32; examples.len()];
        for batch in length_sorted_batches(&lens, BATCH_SIZE) {
            let rows: Vec<&TokenizedExample> = batch.iter().map(|&i| &examples[i]).collect();
            let values = self
                .model
                .scores(&batching.examples(&rows)?)?
                .to_vec1::<f32>()?; // [B]
            for (&i, v) in batch.iter().zip(values) {
                scores[i] = v;
            }
        }
        Ok(scores)
    }
}

/// The RM with every weight frozen.
///
/// [`crate::model::load_hf_dir`] builds a trainable model: its weights are
/// candle `Var`s, so each forward op records its inputs for backprop and
/// every activation of the pass stays alive until the scores are dropped —
/// tens of GB for an 8B model at batch 8. Built with a LoRA config, our
/// decoder holds detached weights instead; the adapters (rank 1 on `q_proj`)
/// are answered with zeros and merged away at once (W + 0 = W), leaving the
/// checkpoint's function with nothing recorded but the score head's matmul.
/// Config and weight files are read by the same functions `load_hf_dir` uses.
fn load_frozen_reward(dir: &Path, device: &Device) -> anyhow::Result<RewardModel> {
    let cfg = read_hf_config(dir)?;
    let files = hf_weight_files(dir)?;
    // SAFETY: the files are memory-mapped read-only; they must not be
    // modified while loading.
    let tensors = unsafe { MmapedSafetensors::multi(&files) }
        .with_context(|| format!("reading weights {files:?}"))?;
    ensure!(
        tensors.get(SCORE_HEAD).is_ok(),
        "{}: the weights {files:?} have no `{SCORE_HEAD}`: not a *ForSequenceClassification \
         reward model (a causal LM has lm_head.weight instead)",
        dir.display()
    );
    let vb = VarBuilder::from_backend(
        Box::new(MappedTensors {
            inner: Box::new(tensors),
            source: zero_adapters,
        }),
        DType::F32,
        device.clone(),
    );
    let freeze = LoraConfig {
        rank: 1,
        alpha: 1.0,
        dropout: 0.0,
        targets: vec!["q_proj".into()],
    };
    let mut model = RewardModel::from_varbuilder(&cfg, vb, Some(&freeze))
        .with_context(|| format!("loading weights of {} from {files:?}", dir.display()))?;
    model.backbone_mut().merge_lora()?;
    Ok(model)
}

fn is_adapter(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// The [`MappedTensors`] rule of a reward checkpoint: LoRA adapter names
/// (which no checkpoint holds) read as zeros; any other tensor is the
/// checkpoint's, and a missing one stays an error.
fn zero_adapters<'n>(_: &dyn SimpleBackend, name: &'n str) -> TensorSource<'n> {
    if is_adapter(name) {
        TensorSource::Zeros
    } else {
        TensorSource::Named(name.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::real_gold::common::TOKENIZER_FILE;
    use crate::eval::real_gold::test_support::*;
    use crate::eval::real_gold::{RealGoldKind, load_real_gold};
    use crate::model::Policy;
    use crate::testing::tiny_qwen3;

    #[test]
    fn seqcls_scores_the_chat_formatted_conversation() -> Result {
        let (dir, rm, tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        let gold = SeqClsGold::load(dir.path(), &Device::Cpu)?;
        let response = " a dog is good .";
        // One BOS although the template writes one and the tokenizer adds one;
        // the HH transcript became user / assistant / user turns, the response
        // the final assistant turn.
        let expected = ids(
            &tok,
            "<s> <|user|> hello there <|end|> <|assistant|> how are you ? <|end|> \
             <|user|> tell me about a dog <|end|> <|assistant|> a dog is good . <|end|>",
        );
        assert_eq!(gold.sequence_ids(HH_PROMPT, response)?, expected);
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let got = scorer.score(&strings(&[HH_PROMPT]), &strings(&[response]))?;
        assert_close(&got, &[direct_score(&rm, &expected)?], 1e-5);
        // Loaded frozen: only the score head is a tracked variable, no adapters left.
        assert_eq!(gold.model.trainable_vars().len(), 1);
        assert!(gold.model.lora_config().is_none());
        assert!(
            gold.model
                .backbone()
                .params()
                .iter()
                .all(|(name, _)| !is_adapter(name))
        );
        Ok(())
    }

    #[test]
    fn seqcls_batching_matches_one_by_one_and_responses_differ() -> Result {
        let (dir, _rm, _tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let prompts: Vec<String> = (0..11)
            .map(|i| match i % 3 {
                0 => HH_PROMPT.to_string(),
                1 => "what is the sun ?".to_string(),
                _ => "tell me about a cat ".repeat(1 + i % 4),
            })
            .collect();
        let responses: Vec<String> = (0..11)
            .map(|i| {
                [" sure", " the sun is hot .", " no", " a cat is good . yes"][i % 4]
                    .repeat(1 + i % 3)
            })
            .collect();
        batched_as_alone(scorer.as_ref(), &prompts, &responses, 1e-5)?;
        let pair = scorer.score(
            &strings(&[HH_PROMPT, HH_PROMPT]),
            &strings(&[" a dog is good .", " a dog is bad ."]),
        )?;
        assert!((pair[0] - pair[1]).abs() > 1e-6, "{pair:?}");
        Ok(())
    }

    #[test]
    fn seqcls_without_a_template_reads_plain_text() -> Result {
        let (dir, rm, tok) = seqcls_dir(None)?;
        let gold = SeqClsGold::load(dir.path(), &Device::Cpu)?;
        let expected = ids(&tok, "<s> what is it ? a dog .");
        assert_eq!(gold.sequence_ids("what is it ?", " a dog .")?, expected);
        let got = gold.score(&strings(&["what is it ?"]), &strings(&[" a dog ."]))?;
        assert_close(&got, &[direct_score(&rm, &expected)?], 1e-5);
        Ok(())
    }

    #[test]
    fn seqcls_errors_name_the_dir_and_file() -> Result {
        let missing = Path::new("/nonexistent/skywork");
        let err = err_text(load_real_gold(RealGoldKind::SeqCls, missing, &Device::Cpu));
        assert!(
            err.contains("/nonexistent/skywork") && err.contains("download"),
            "{err}"
        );

        let (dir, _rm, _tok) = seqcls_dir(Some(CHAT_TEMPLATE))?;
        std::fs::remove_file(dir.path().join(TOKENIZER_FILE))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&dir.path().join(TOKENIZER_FILE).display().to_string()),
            "{err}"
        );

        // A causal LM (lm_head, no score head) is not a reward model.
        let policy = Policy::new_random(&tiny_qwen3(), None, 1, &Device::Cpu)?;
        candle_core::safetensors::save(
            &policy.backbone().params().tensors(),
            dir.path().join("model.safetensors"),
        )?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(SCORE_HEAD) && err.contains(&dir.path().display().to_string()),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("model.safetensors"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(err.contains("model.safetensors"), "{err}");
        Ok(())
    }

    #[test]
    fn truncation_keeps_bos_and_the_end() {
        assert_eq!(keep_tail(vec![1, 5, 6, 7, 8], 3, Some(1)), vec![1, 7, 8]);
        assert_eq!(keep_tail(vec![5, 6, 7, 8], 3, Some(1)), vec![6, 7, 8]);
        assert_eq!(keep_tail(vec![5, 6], 3, None), vec![5, 6]);
    }
}
