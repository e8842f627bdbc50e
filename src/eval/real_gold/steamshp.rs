//! SteamSHP (FLAN-T5 preference model) as a single-response gold RM: SHP.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, anyhow, bail, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5;
use serde_json::Value as Json;

use super::common::{
    CONFIG_FILE, TOKENIZER_FILE, check_lengths, encode, load_tokenizer, parse_config, read_config,
    weights_backend,
};
use super::{BATCH_SIZE, GoldScorer, STEAMSHP_DEFAULT_MAX_TOKENS};
use crate::data::real::shp;

/// The input SteamSHP reads to score `response` alone: the model card's
/// single-response layout, the response as A and a dummy `.` as B.
pub fn steamshp_input(post: &str, response: &str) -> String {
    format!(
        "POST: {post}\n\n RESPONSE A: {response}\n\n RESPONSE B: .\n\n Which response is better? \
         RESPONSE"
    )
}

/// The post inside a prompt built by [`shp::prompt_of`] (the prompt itself,
/// trimmed, for any other prompt). Derived from `prompt_of` so the two
/// cannot drift apart.
pub fn steamshp_post(prompt: &str) -> &str {
    const HOLE: &str = "\u{0}";
    let layout = shp::prompt_of(HOLE);
    let (prefix, suffix) = layout
        .split_once(HOLE)
        .expect("prompt_of embeds its argument");
    prompt
        .strip_prefix(prefix)
        .and_then(|p| p.strip_suffix(suffix))
        .unwrap_or(prompt)
        .trim()
}

/// SteamSHP as a single-response reward model.
///
/// Input: [`steamshp_input`]`(`[`steamshp_post`]`(prompt), response.trim())`,
/// tokenised with T5's trailing `</s>`. The decoder runs one step from the
/// decoder start token; the score is P(A | A or B) = σ(logit_A − logit_B),
/// the probability that the response beats the dummy, among the two answers
/// the model was trained to give. (The model card divides by the whole
/// vocabulary instead; the two differ only by the mass on other tokens.)
/// A probability rather than log-odds: the score stage averages scores, and
/// a bounded score keeps one confident item from dominating the mean.
///
/// Truncation: an input over `n_positions` (512) tokens loses the end of the
/// post first, then the end of the response; the layout's fixed text, the
/// question included, always survives. This follows the model card, which
/// says to truncate the context and keep the comments.
///
/// candle's T5 has no encoder padding mask, so only inputs of equal token
/// length share a batch: padding would change the scores.
pub struct SteamShpGold {
    /// T5's forward takes `&mut self` (its KV cache); scoring is `&self`.
    model: Mutex<t5::T5ForConditionalGeneration>,
    tokenizer: tokenizers::Tokenizer,
    a_id: u32,
    b_id: u32,
    decoder_start: u32,
    max_tokens: usize,
    device: Device,
}

impl SteamShpGold {
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let config = read_config(dir, "t5", "T5 (SteamSHP) model")?;
        let mut cfg: t5::Config = parse_config(dir, &config)?;
        ensure!(
            cfg.is_encoder_decoder,
            "{}: is_encoder_decoder = false; SteamSHP is an encoder-decoder T5",
            dir.join(CONFIG_FILE).display()
        );
        // One decoder step per forward: a cache would only leak state between calls.
        cfg.use_cache = false;
        let max_tokens = config
            .get("n_positions")
            .and_then(Json::as_u64)
            .map_or(STEAMSHP_DEFAULT_MAX_TOKENS, |n| n as usize);
        let weights = weights_backend(dir, "AutoModelForSeq2SeqLM")?;
        let vb = VarBuilder::from_backend(weights, DType::F32, device.clone());
        let model = t5::T5ForConditionalGeneration::load(vb, &cfg)
            .with_context(|| format!("loading T5 weights from {}", dir.display()))?;
        let tokenizer = load_tokenizer(dir)?;
        let answer_id = |answer: &str| -> anyhow::Result<u32> {
            let ids = encode(&tokenizer, answer, false)?.get_ids().to_vec();
            match ids.as_slice() {
                &[id] => Ok(id),
                _ => bail!(
                    "{}: `{answer}` encodes to {} tokens {ids:?}, but SteamSHP answers with one \
                     token: is this the SteamSHP tokenizer?",
                    dir.join(TOKENIZER_FILE).display(),
                    ids.len()
                ),
            }
        };
        let (a_id, b_id) = (answer_id("A")?, answer_id("B")?);
        ensure!(
            a_id != b_id && (a_id as usize) < cfg.vocab_size && (b_id as usize) < cfg.vocab_size,
            "{}: answer ids A = {a_id}, B = {b_id} must be two distinct ids below vocab_size {} \
             (both unknown words?): is this the SteamSHP tokenizer?",
            dir.join(TOKENIZER_FILE).display(),
            cfg.vocab_size
        );
        Ok(Self {
            model: Mutex::new(model),
            tokenizer,
            a_id,
            b_id,
            decoder_start: cfg.decoder_start_token_id.unwrap_or(cfg.pad_token_id) as u32,
            max_tokens,
            device: device.clone(),
        })
    }

    /// The input text and its token ids for one (prompt, response), after
    /// truncation.
    pub fn input(&self, prompt: &str, response: &str) -> anyhow::Result<(String, Vec<u32>)> {
        let post = steamshp_post(prompt);
        let response = response.trim();
        let (mut post_end, mut response_end) = (post.len(), response.len());
        loop {
            let text = steamshp_input(&post[..post_end], &response[..response_end]);
            let ids = encode(&self.tokenizer, text.as_str(), true)?
                .get_ids()
                .to_vec();
            let Some(excess) = ids.len().checked_sub(self.max_tokens).filter(|&e| e > 0) else {
                return Ok((text, ids));
            };
            if post_end > 0 {
                post_end = self.cut_tokens(&post[..post_end], excess)?;
            } else if response_end > 0 {
                response_end = self.cut_tokens(&response[..response_end], excess)?;
            } else {
                bail!(
                    "the SteamSHP layout alone is {} tokens, over the {} the model reads",
                    ids.len(),
                    self.max_tokens
                );
            }
        }
    }

    /// The byte length of `text` with about `n` tokens cut off its end
    /// (always shorter than `text`, trailing whitespace dropped).
    fn cut_tokens(&self, text: &str, n: usize) -> anyhow::Result<usize> {
        let encoding = encode(&self.tokenizer, text, false)?;
        let offsets = encoding.get_offsets(); // byte spans in `text`
        let keep = offsets.len().saturating_sub(n);
        let mut end = match keep {
            0 => 0,
            k => offsets[k].0.min(text.len() - 1),
        };
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(text[..end].trim_end().len())
    }
}

impl GoldScorer for SteamShpGold {
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let inputs: Vec<Vec<u32>> = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| Ok(self.input(p, r)?.1))
            .collect::<anyhow::Result<_>>()?;
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, ids) in inputs.iter().enumerate() {
            by_len.entry(ids.len()).or_default().push(i);
        }
        let mut model = self.model.lock().map_err(|_| {
            anyhow!("the SteamSHP model was poisoned by a panic in another scorer call")
        })?;
        let mut scores = vec![0f32; inputs.len()];
        let answers = Tensor::new(&[self.a_id, self.b_id], &self.device)?; // [2]
        for (&t, same_len) in &by_len {
            for batch in same_len.chunks(BATCH_SIZE) {
                let b = batch.len();
                let ids: Vec<u32> = batch
                    .iter()
                    .flat_map(|&i| inputs[i].iter().copied())
                    .collect();
                let ids = Tensor::from_vec(ids, (b, t), &self.device)?; // [B, T]
                let start = Tensor::full(self.decoder_start, (b, 1), &self.device)?; // [B, 1]
                model.clear_kv_cache();
                let logits = model.forward(&ids, &start)?; // [B, V], next-token logits
                let ab = logits.index_select(&answers, 1)?.to_vec2::<f32>()?; // [B, 2]
                for (&i, row) in batch.iter().zip(ab) {
                    let log_odds = f64::from(row[0]) - f64::from(row[1]);
                    scores[i] = (1.0 / (1.0 + (-log_odds).exp())) as f32;
                }
            }
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::real_gold::test_support::*;
    use crate::eval::real_gold::{RealGoldKind, load_real_gold};
    use candle_nn::VarMap;
    use serde_json::{Value as Json, json};
    use tokenizers::Tokenizer;
    use tokenizers::processors::template::TemplateProcessing;

    const T5_SPECIALS: &[&str] = &["<pad>", "</s>", "<unk>"];
    const T5_WORDS: &[&str] = &[
        "POST", ":", "RESPONSE", "A", "B", ".", "Which", "response", "is", "better", "?", "my",
        "cat", "ate", "the", "plant", "what", "now", "call", "a", "vet", "buy", "new", "one",
        "lol",
    ];

    fn t5_config_json(n_positions: usize) -> Json {
        json!({
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5", "vocab_size": T5_SPECIALS.len() + T5_WORDS.len(),
            "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_decoder_layers": 2,
            "num_heads": 4, "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16, "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
            "is_encoder_decoder": true, "pad_token_id": 0, "eos_token_id": 1,
            "decoder_start_token_id": 0, "n_positions": n_positions, "use_cache": true
        })
    }

    fn t5_tokenizer(words: &[&str]) -> Tokenizer {
        let eos = TemplateProcessing::builder()
            .try_single("$A </s>")
            .unwrap()
            .special_tokens(vec![("</s>", 1)])
            .build()
            .unwrap();
        word_tokenizer(T5_SPECIALS, words, "<unk>", eos)
    }

    /// An HF dir with a random FLAN-T5-style model (gated-gelu, untied head,
    /// embeddings saved as `shared.weight` as transformers does), and the
    /// in-memory model.
    fn steamshp_dir(
        n_positions: usize,
    ) -> Result<(tempfile::TempDir, t5::T5ForConditionalGeneration)> {
        let dir = tempfile::tempdir()?;
        let config = t5_config_json(n_positions);
        let cfg: t5::Config = serde_json::from_value(config.clone())?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = t5::T5ForConditionalGeneration::load(vb, &cfg)?;
        randomize(&varmap, 0.3)?;
        let mut tensors = varmap_tensors(&varmap);
        let shared = tensors
            .remove("decoder.embed_tokens.weight")
            .expect("T5 embeddings");
        tensors.insert("shared.weight".into(), shared);
        assert!(tensors.contains_key("lm_head.weight"));
        candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors"))?;
        write_json(&dir.path().join(CONFIG_FILE), &config)?;
        t5_tokenizer(T5_WORDS)
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        Ok((dir, model))
    }

    /// P(A | A or B) straight from the model, for one input.
    fn steamshp_direct(model: &mut t5::T5ForConditionalGeneration, ids: &[u32]) -> Result<f32> {
        let tok = t5_tokenizer(T5_WORDS);
        let (a, b) = (tok.token_to_id("A").unwrap(), tok.token_to_id("B").unwrap());
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?; // [1, T]
        let start = Tensor::new(&[[0u32]], &Device::Cpu)?; // [1, 1]
        model.clear_kv_cache();
        let logits = model
            .forward(&input, &start)?
            .squeeze(0)?
            .to_vec1::<f32>()?; // [V]
        model.clear_kv_cache();
        let log_odds = f64::from(logits[a as usize]) - f64::from(logits[b as usize]);
        Ok((1.0 / (1.0 + (-log_odds).exp())) as f32)
    }

    #[test]
    fn steamshp_input_has_the_model_card_layout() -> Result {
        assert_eq!(
            steamshp_input("my cat ate the plant", "call a vet"),
            "POST: my cat ate the plant\n\n RESPONSE A: call a vet\n\n RESPONSE B: .\n\n Which \
             response is better? RESPONSE"
        );
        assert_eq!(
            steamshp_post(&shp::prompt_of("my cat ate the plant ")),
            "my cat ate the plant"
        );
        assert_eq!(steamshp_post("  what now ?"), "what now ?");
        let (dir, _) = steamshp_dir(512)?;
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let (text, _) = gold.input(&shp::prompt_of("my cat ate the plant"), " call a vet")?;
        assert_eq!(text, steamshp_input("my cat ate the plant", "call a vet"));
        Ok(())
    }

    #[test]
    fn steamshp_scores_p_of_a_against_b() -> Result {
        let (dir, mut model) = steamshp_dir(512)?;
        let expected = ids(
            &t5_tokenizer(T5_WORDS),
            "POST : my cat ate the plant RESPONSE A : call a vet RESPONSE B : . \
             Which response is better ? RESPONSE </s>",
        );
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let prompt = shp::prompt_of("my cat ate the plant");
        assert_eq!(gold.input(&prompt, " call a vet")?.1, expected);
        let scorer = load_real_gold(RealGoldKind::SteamShp, dir.path(), &Device::Cpu)?;
        let got = scorer.score(&[prompt], &strings(&[" call a vet"]))?;
        assert_close(&got, &[steamshp_direct(&mut model, &expected)?], 1e-6);
        assert!(got[0] > 0.0 && got[0] < 1.0);
        Ok(())
    }

    #[test]
    fn steamshp_batching_matches_one_by_one() -> Result {
        let (dir, _) = steamshp_dir(512)?;
        let scorer = load_real_gold(RealGoldKind::SteamShp, dir.path(), &Device::Cpu)?;
        // Equal-length inputs share a batch (more than BATCH_SIZE of them),
        // others go alone.
        let prompts: Vec<String> = (0..13)
            .map(|i| shp::prompt_of(["my cat ate the plant", "what now ?"][i % 2]))
            .collect();
        let responses: Vec<String> = (0..13)
            .map(|i| [" call a vet", " buy a new one", " lol"][i % 3].to_string())
            .collect();
        let batched = scorer.score(&prompts, &responses)?;
        assert_close(
            &batched,
            &one_by_one(scorer.as_ref(), &prompts, &responses),
            1e-6,
        );
        assert!((batched[0] - batched[1]).abs() > 1e-7, "{batched:?}");
        assert!((batched[0] - batched[2]).abs() > 1e-7, "{batched:?}");
        Ok(())
    }

    #[test]
    fn steamshp_truncates_the_post_first() -> Result {
        let (dir, mut model) = steamshp_dir(40)?;
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let post = "my cat ate the plant ".repeat(12); // 60 words
        let (text, input_ids) = gold.input(&shp::prompt_of(&post), " call a vet")?;
        // 19 tokens of layout + response, so 21 words of post remain.
        assert_eq!(input_ids.len(), 40);
        let kept: Vec<&str> = post.split_whitespace().take(21).collect();
        assert_eq!(text, steamshp_input(&kept.join(" "), "call a vet"));
        let got = gold.score(&[shp::prompt_of(&post)], &strings(&[" call a vet"]))?;
        assert_close(&got, &[steamshp_direct(&mut model, &input_ids)?], 1e-6);
        // A response too long for any post loses its end, the question stays.
        let (text, input_ids) = gold.input("what now ?", &" buy a new one".repeat(20))?;
        assert_eq!(input_ids.len(), 40);
        assert!(
            text.starts_with("POST: \n\n RESPONSE A: buy a new one"),
            "{text:?}"
        );
        assert!(text.ends_with("RESPONSE B: .\n\n Which response is better? RESPONSE"));
        Ok(())
    }

    #[test]
    fn steamshp_errors_name_the_file() -> Result {
        let (dir, _) = steamshp_dir(512)?;
        let config_path = dir.path().join(CONFIG_FILE);
        let mut bert = t5_config_json(512);
        bert["model_type"] = json!("bert");
        write_json(&config_path, &bert)?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&config_path.display().to_string()) && err.contains("`bert`"),
            "{err}"
        );
        write_json(&config_path, &t5_config_json(512))?;
        // A tokenizer without single-token answers A / B.
        let words: Vec<&str> = T5_WORDS
            .iter()
            .copied()
            .filter(|w| *w != "A" && *w != "B")
            .collect();
        let mut padded = words.clone();
        padded.extend(["x", "y"]);
        t5_tokenizer(&padded)
            .save(dir.path().join(TOKENIZER_FILE), false)
            .map_err(|e| anyhow!("{e}"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains("answer ids") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(TOKENIZER_FILE))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SteamShp,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(&dir.path().join(TOKENIZER_FILE).display().to_string()),
            "{err}"
        );
        Ok(())
    }
}
