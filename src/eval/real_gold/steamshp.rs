//! SteamSHP (FLAN-T5 preference model), the gold judge of SHP: pairwise, as
//! its model card runs it, and a per-response score derived from it.
//!
//! The model card's input holds the post and both responses, and the model
//! answers `A` or `B`:
//!
//! ```text
//! POST: {post}\n\n RESPONSE A: {a}\n\n RESPONSE B: {b}\n\n Which response is better? RESPONSE
//! ```
//!
//! [`SteamShpGold::prefer`] asks it in both orders (a as A, then a as B) and
//! averages, so the answer does not depend on which slot a response sits in:
//! P(a ≻ b) = ½ [P(A | a, b) + P(B | b, a)], and P(a ≻ b) + P(b ≻ a) = 1.
//!
//! The paper's GRA and mean gold reward need one score per response (the
//! pipeline's `score` stage scores each generation set on its own). The
//! model card's reward-model usage gives one: the response as A against an
//! empty answer, a dummy `.`, as B. We ask that in both orders too, so the
//! score is P(response ≻ `.`) by the pairwise rule above: a bounded score in
//! (0, 1), free of the dummy's position.
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

/// The answer a single response is scored against (the model card's
/// reward-model usage: an empty response B).
pub const STEAMSHP_DUMMY: &str = ".";

/// The model card's input: `post`, response `a` as A and `b` as B.
pub fn steamshp_input(post: &str, a: &str, b: &str) -> String {
    format!(
        "POST: {post}\n\n RESPONSE A: {a}\n\n RESPONSE B: {b}\n\n Which response is better? \
         RESPONSE"
    )
}

/// The two inputs of one comparison: `a` as A, then `a` as B.
pub fn steamshp_both_orders(post: &str, a: &str, b: &str) -> [String; 2] {
    [steamshp_input(post, a, b), steamshp_input(post, b, a)]
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

/// SteamSHP as a pairwise judge ([`SteamShpGold::prefer`]) and, through the
/// dummy answer, a per-response reward model ([`GoldScorer::score`]); see
/// the module docs.
///
/// Input: [`steamshp_input`]`(`[`steamshp_post`]`(prompt), a.trim(), b.trim())`,
/// tokenised with T5's trailing `</s>`. The decoder runs one step from the
/// decoder start token; P(A) = σ(logit_A − logit_B), the probability of A
/// among the two answers the model was trained to give. (The model card
/// divides by the whole vocabulary instead; the two differ only by the mass
/// on other tokens.)
///
/// Truncation: an input over `n_positions` (512) tokens loses the end of the
/// post first, then the end of the longer response; the layout's fixed
/// text, the question included, always survives. This follows the model
/// card, which says to truncate the context and keep the comments.
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

    /// The input text and its token ids for `prompt` with `a` as response A
    /// and `b` as B, after truncation.
    pub fn input(&self, prompt: &str, a: &str, b: &str) -> anyhow::Result<(String, Vec<u32>)> {
        let post = steamshp_post(prompt);
        let (a, b) = (a.trim(), b.trim());
        let (mut post_end, mut a_end, mut b_end) = (post.len(), a.len(), b.len());
        loop {
            let text = steamshp_input(&post[..post_end], &a[..a_end], &b[..b_end]);
            let ids = encode(&self.tokenizer, text.as_str(), true)?
                .get_ids()
                .to_vec();
            let Some(excess) = ids.len().checked_sub(self.max_tokens).filter(|&e| e > 0) else {
                return Ok((text, ids));
            };
            if post_end > 0 {
                post_end = self.cut_tokens(&post[..post_end], excess)?;
            } else if a_end >= b_end && a_end > 0 {
                a_end = self.cut_tokens(&a[..a_end], excess)?;
            } else if b_end > 0 {
                b_end = self.cut_tokens(&b[..b_end], excess)?;
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

    /// P(A) = σ(logit_A − logit_B) of each input's first decoder step.
    fn p_a(&self, inputs: &[Vec<u32>]) -> anyhow::Result<Vec<f64>> {
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, ids) in inputs.iter().enumerate() {
            by_len.entry(ids.len()).or_default().push(i);
        }
        let mut model = self.model.lock().map_err(|_| {
            anyhow!("the SteamSHP model was poisoned by a panic in another scorer call")
        })?;
        let mut p = vec![0f64; inputs.len()];
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
                    p[i] = 1.0 / (1.0 + (-log_odds).exp());
                }
            }
        }
        Ok(p)
    }

    /// P(firsts[i] ≻ seconds[i]) for `prompts[i]`, both orders averaged:
    /// ½ [P(A | first as A) + P(B | first as B)].
    pub fn prefer(
        &self,
        prompts: &[String],
        firsts: &[String],
        seconds: &[String],
    ) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, firsts)?;
        check_lengths(prompts, seconds)?;
        let mut inputs = Vec::with_capacity(2 * prompts.len());
        for ((p, a), b) in prompts.iter().zip(firsts).zip(seconds) {
            inputs.push(self.input(p, a, b)?.1);
            inputs.push(self.input(p, b, a)?.1);
        }
        let p_a = self.p_a(&inputs)?;
        Ok(p_a
            .chunks(2)
            .map(|both| (0.5 * (both[0] + (1.0 - both[1]))) as f32)
            .collect())
    }
}

impl GoldScorer for SteamShpGold {
    /// P(response ≻ [`STEAMSHP_DUMMY`]) by [`SteamShpGold::prefer`].
    fn score(&self, prompts: &[String], responses: &[String]) -> anyhow::Result<Vec<f32>> {
        check_lengths(prompts, responses)?;
        let dummies = vec![STEAMSHP_DUMMY.to_string(); responses.len()];
        self.prefer(prompts, responses, &dummies)
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

    /// The model card's own example, byte for byte, in both orders.
    #[test]
    fn steamshp_input_is_the_model_cards_byte_for_byte_in_both_orders() -> Result {
        let post = "Instacart gave me 50 pounds of limes instead of 5 pounds... what the hell do \
                    I do with 50 pounds of limes? I've already donated a bunch and gave a bunch \
                    away. I'm planning on making a bunch of lime-themed cocktails, but... jeez. \
                    Ceviche? ";
        let (a, b) = (
            "Lime juice, and zest, then freeze in small quantities.",
            "Lime marmalade lol",
        );
        // The model card's `input_text`, as its Python literal spells it.
        let card = "POST: Instacart gave me 50 pounds of limes instead of 5 pounds... what the \
                    hell do I do with 50 pounds of limes? I've already donated a bunch and gave \
                    a bunch away. I'm planning on making a bunch of lime-themed cocktails, \
                    but... jeez. Ceviche? \n\n RESPONSE A: Lime juice, and zest, then freeze in \
                    small quantities.\n\n RESPONSE B: Lime marmalade lol\n\n Which response is \
                    better? RESPONSE";
        let swapped = "POST: Instacart gave me 50 pounds of limes instead of 5 pounds... what \
                       the hell do I do with 50 pounds of limes? I've already donated a bunch \
                       and gave a bunch away. I'm planning on making a bunch of lime-themed \
                       cocktails, but... jeez. Ceviche? \n\n RESPONSE A: Lime marmalade lol\n\n \
                       RESPONSE B: Lime juice, and zest, then freeze in small quantities.\n\n \
                       Which response is better? RESPONSE";
        assert_eq!(steamshp_both_orders(post, a, b), [card, swapped]);
        assert_eq!(
            steamshp_input("my cat ate the plant", "call a vet", STEAMSHP_DUMMY),
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
        let prompt = shp::prompt_of("my cat ate the plant");
        let (text, _) = gold.input(&prompt, " call a vet", " buy a new one ")?;
        assert_eq!(
            text,
            steamshp_input("my cat ate the plant", "call a vet", "buy a new one")
        );
        Ok(())
    }

    /// A comparison reads both orders: P(a ≻ b) = ½ [P(A | a, b) + P(B | b, a)],
    /// so P(a ≻ b) + P(b ≻ a) = 1; a single response's score is its
    /// comparison with the dummy `.`.
    #[test]
    fn steamshp_compares_in_both_orders_and_scores_against_the_dummy() -> Result {
        let (dir, mut model) = steamshp_dir(512)?;
        let tok = t5_tokenizer(T5_WORDS);
        let layout = |a: &str, b: &str| {
            ids(
                &tok,
                &format!(
                    "POST : my cat ate the plant RESPONSE A : {a} RESPONSE B : {b} \
                     Which response is better ? RESPONSE </s>"
                ),
            )
        };
        let (vet_first, vet_second) = (layout("call a vet", "lol"), layout("lol", "call a vet"));
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let prompt = shp::prompt_of("my cat ate the plant");
        assert_eq!(gold.input(&prompt, " call a vet", "lol")?.1, vet_first);
        assert_eq!(gold.input(&prompt, "lol", " call a vet")?.1, vet_second);
        let p_first = steamshp_direct(&mut model, &vet_first)?;
        let p_second = steamshp_direct(&mut model, &vet_second)?;
        assert!(
            (p_first - (1.0 - p_second)).abs() > 1e-4,
            "the random model has a position bias to average out: {p_first} vs {p_second}"
        );
        let prompts = vec![prompt.clone(), prompt.clone()];
        let got = gold.prefer(
            &prompts,
            &strings(&[" call a vet", "lol"]),
            &strings(&["lol", " call a vet"]),
        )?;
        let want = 0.5 * (p_first + (1.0 - p_second));
        assert_close(&got, &[want, 1.0 - want], 1e-6);

        let (vs_dummy, dummy_first) = (layout("call a vet", "."), layout(".", "call a vet"));
        let scorer = load_real_gold(RealGoldKind::SteamShp, dir.path(), &Device::Cpu)?;
        let score = scorer.score(&[prompt], &strings(&[" call a vet"]))?;
        let want = 0.5
            * (steamshp_direct(&mut model, &vs_dummy)?
                + (1.0 - steamshp_direct(&mut model, &dummy_first)?));
        assert_close(&score, &[want], 1e-6);
        assert!(score[0] > 0.0 && score[0] < 1.0);
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
        let batched = batched_as_alone(scorer.as_ref(), &prompts, &responses, 1e-6)?;
        assert!((batched[0] - batched[1]).abs() > 1e-7, "{batched:?}");
        assert!((batched[0] - batched[2]).abs() > 1e-7, "{batched:?}");
        Ok(())
    }

    #[test]
    fn steamshp_truncates_the_post_first() -> Result {
        let (dir, mut model) = steamshp_dir(40)?;
        let gold = SteamShpGold::load(dir.path(), &Device::Cpu)?;
        let post = "my cat ate the plant ".repeat(12); // 60 words
        let (text, input_ids) = gold.input(&shp::prompt_of(&post), " call a vet", ".")?;
        // 19 tokens of layout + response, so 21 words of post remain.
        assert_eq!(input_ids.len(), 40);
        let kept: Vec<&str> = post.split_whitespace().take(21).collect();
        assert_eq!(text, steamshp_input(&kept.join(" "), "call a vet", "."));
        let (_, swapped_ids) = gold.input(&shp::prompt_of(&post), ".", " call a vet")?;
        assert_eq!(swapped_ids.len(), 40);
        let got = gold.score(&[shp::prompt_of(&post)], &strings(&[" call a vet"]))?;
        let want = 0.5
            * (steamshp_direct(&mut model, &input_ids)?
                + (1.0 - steamshp_direct(&mut model, &swapped_ids)?));
        assert_close(&got, &[want], 1e-6);
        // A response too long for any post loses its end, the question stays.
        let (text, input_ids) = gold.input("what now ?", &" buy a new one".repeat(20), ".")?;
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
