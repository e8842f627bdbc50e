//! The paper profile's code path end to end, through the real `sweep`
//! binary, on checkpoints small enough for CI: every end-to-end test before
//! this one ran the tiny profile (synthetic world, `ModelSpec::Tiny`).
//!
//! The test writes, in a tempdir, what the paper profile reads from
//! `${CWPO_MODELS}` and `${CWPO_DATA}`:
//! - three random-weight HF dirs in the real layout (config.json with HF
//!   field names, model.safetensors, tokenizer.json): a weak Llama-arch
//!   causal LM, a bigger strong one, and a `LlamaForSequenceClassification`
//!   reward model (`score.weight` head, chat template in
//!   tokenizer_config.json) as the gold judge;
//! - HH-RLHF-layout train / test JSONL files;
//! - a profile of `experiments/profiles/paper.toml`'s shape pointing at them
//!   (`DatasetSource::Files`, `ModelSpec::Hf`, `gold = { kind =
//!   "reward_model" }`, LoRA on the strong model) and a manifest with
//!   human / WS / CW annotation.
//!
//! Then `sweep validate` and `sweep run`, and checks that can fail: both
//! weak annotators (BT and WS-DPO on the HF weak model) labelled all of D_U,
//! every cell has a finite GRA and gold mean, every score artifact holds
//! the scores `load_real_gold(SeqCls, …)` gives for its generation file
//! (within 1e-6: the score stage ran the real judge on the real
//! generations), and a second run runs nothing. The same files also run
//! under the embedded `paper` profile itself, through `${CWPO_MODELS}` and
//! `${CWPO_DATA}`. And a gold path that does not exist makes `sweep
//! validate` exit 2 with the download command.
mod common;
use common::{sweep, text};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::Device;
use cwpo::eval::real_gold::{RealGoldKind, load_real_gold};
use cwpo::model::DecoderConfig;
use cwpo::testing::{
    bos_template, tiny_llama, word_tokenizer, write_hf_policy_dir, write_hf_reward_dir,
};
use serde_json::{Value, json};
use tokenizers::Tokenizer;

const SPECIALS: &[&str] = &[
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
];

/// A chat template in the style of HF ones (Skywork's is Llama 3.1's):
/// BOS, a role marker per turn, the trimmed content, an end marker.
const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}\
{% if message['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %} \
{{ message['content'].strip() }} <|end|>{% endfor %}";

const TOPICS: &[&str] = &["dog", "cat", "garden", "bread", "river", "music"];
const QUESTIONS: &[&str] = &[
    "tell me about the {t}",
    "what do you know about a {t} ?",
    "can you help me with my {t} ?",
    "why is the {t} so nice ?",
    "how should I care for a {t} ?",
];
/// Test questions: none of them is a training prompt.
const TEST_QUESTIONS: &[&str] = &["what is the best {t} ?", "is a {t} good for me ?"];
const CHOSEN: &[&str] = &[
    " sure , the {t} is lovely and I am happy to help you learn more .",
    " of course ! a {t} needs time , care and a little patience .",
];
const REJECTED: &[&str] = &[
    " no , I will not talk about the {t} .",
    " I do not know . ask someone else about your {t} .",
];

/// An HH-RLHF transcript prompt (single or two-turn), ending in the empty
/// assistant turn the responses fill.
fn prompt(question: &str, topic: &str, two_turns: bool) -> String {
    let q = question.replace("{t}", topic);
    match two_turns {
        false => format!("\n\nHuman: {q}\n\nAssistant:"),
        true => format!(
            "\n\nHuman: hello there\n\nAssistant: hi , how can I help you today ?\n\nHuman: {q}\n\nAssistant:"
        ),
    }
}

/// One HH-RLHF row: the two full transcripts.
fn row(prompt: &str, topic: &str, i: usize) -> Value {
    let chosen = CHOSEN[i % CHOSEN.len()].replace("{t}", topic);
    let rejected = REJECTED[(i / 2) % REJECTED.len()].replace("{t}", topic);
    json!({"chosen": format!("{prompt}{chosen}"), "rejected": format!("{prompt}{rejected}")})
}

/// 60 training rows (6 topics × 5 questions × 1 or 2 turns), 8 test rows.
fn hh_rows() -> (Vec<Value>, Vec<Value>) {
    let mut train = Vec::new();
    for (t, topic) in TOPICS.iter().enumerate() {
        for (q, question) in QUESTIONS.iter().enumerate() {
            for two_turns in [false, true] {
                let i = train.len();
                train.push(row(&prompt(question, topic, two_turns), topic, i + t + q));
            }
        }
    }
    let mut test = Vec::new();
    for (i, topic) in TOPICS.iter().chain(&TOPICS[..2]).enumerate() {
        let question = TEST_QUESTIONS[i / TOPICS.len()];
        test.push(row(&prompt(question, topic, i % 2 == 1), topic, i));
    }
    (train, test)
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The words of `text` as the tokenizer's Whitespace pre-tokenizer splits
/// it: runs of word characters, runs of other non-space characters.
fn words_of(text: &str, into: &mut BTreeSet<String>) {
    let mut word = String::new();
    let mut word_kind = None;
    for c in text.chars() {
        let kind = match c {
            c if c.is_whitespace() => None,
            c if c.is_alphanumeric() || c == '_' => Some(true),
            _ => Some(false),
        };
        if kind != word_kind && !word.is_empty() {
            into.insert(std::mem::take(&mut word));
        }
        if kind.is_some() {
            word.push(c);
        }
        word_kind = kind;
    }
    if !word.is_empty() {
        into.insert(word);
    }
}

/// One tokenizer for all three models: every word of the data is in its
/// vocabulary (so nothing is `<unk>`), BOS prepended when encoding with
/// special tokens (the gold RM does; our LMs encode without).
fn tokenizer_for(rows: &[&Value]) -> Tokenizer {
    let mut words = BTreeSet::new();
    for r in rows {
        for side in ["chosen", "rejected"] {
            words_of(r[side].as_str().unwrap(), &mut words);
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let bos = bos_template("<s>", 1);
    word_tokenizer(SPECIALS, &words, "<unk>", bos)
}

/// A Llama-arch config of the given size over `vocab` tokens. The LM head
/// is untied: a random tied head mostly repeats the last token (the
/// residual stream carries its embedding), so every greedy response would
/// be the same `: : :` and the checks below would compare equal numbers.
fn llama(vocab: usize, hidden: usize, layers: usize) -> DecoderConfig {
    DecoderConfig {
        tie_embeddings: false,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        num_layers: layers,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: hidden / 4,
        max_position: 128,
        ..tiny_llama()
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    gold: PathBuf,
    profile: PathBuf,
    manifest: PathBuf,
}

fn toml_str(path: &Path) -> String {
    toml::Value::String(path.to_str().unwrap().to_string()).to_string()
}

/// The paper profile's shape, pointing at the fixture's files.
fn profile_toml(gold: &Path, data: &Path, weak: &Path, strong: &Path) -> String {
    format!(
        r#"name = "paper-ci"
description = "the paper profile's shape on random-weight HF dirs and HH-RLHF-layout files"
gold = {{ kind = "reward_model", path = {gold} }}

[defaults]
labeled_fraction = 0.3
weak_objective = "bt"
seed = 0

[defaults.weak]
learning_rate = 1e-3
epochs = 1
batch_size = 8

[defaults.sft]
learning_rate = 1e-3
epochs = 1
batch_size = 8
lora_rank = 2

[defaults.align]
beta = 0.5
weighting = "cw"
learning_rate = 1e-3
epochs = 1
batch_size = 8
lora_rank = 2

[defaults.generate]
temperature = 0.0
max_new_tokens = 6

[datasets.hh-rlhf]
stands_for = "Anthropic/hh-rlhf"
files = {{ format = "hh-rlhf", train = {train}, test = {test} }}

[models.weak-llama]
stands_for = "facebook/opt-125m"
path = {weak}

[models.strong-llama]
stands_for = "facebook/opt-13b"
path = {strong}

[pairs.opt]
weak = "weak-llama"
strong = "strong-llama"
"#,
        gold = toml_str(gold),
        train = toml_str(&data.join("train.jsonl")),
        test = toml_str(&data.join("test.jsonl")),
        weak = toml_str(weak),
        strong = toml_str(strong),
    )
}

const MANIFEST: &str = r#"
[experiment]
name = "paper-path"
title = "the paper profile's path on tiny HF checkpoints"

[axes]
annotation = ["human", "ws", "cw"]

[defaults]
dataset = "hh-rlhf"
pair = "opt"
objective = "dpo"
seed = 0

[generate]
max_new_tokens = 6
"#;

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data/hh-rlhf");
    std::fs::create_dir_all(&data).unwrap();
    let (train, test) = hh_rows();
    write_jsonl(&data.join("train.jsonl"), &train);
    write_jsonl(&data.join("test.jsonl"), &test);

    let tokenizer = tokenizer_for(&train.iter().chain(&test).collect::<Vec<_>>());
    let vocab = tokenizer.get_vocab_size(true);
    let models = dir.join("models");
    let (weak, strong, gold) = (
        models.join("opt-125m"),
        models.join("opt-13b"),
        models.join("Skywork-Reward-V2-Llama-3.1-8B"),
    );
    write_hf_policy_dir(&weak, &llama(vocab, 16, 1), 1, &tokenizer).unwrap();
    write_hf_policy_dir(&strong, &llama(vocab, 32, 2), 2, &tokenizer).unwrap();
    write_hf_reward_dir(&gold, &llama(vocab, 16, 1), 3, &tokenizer).unwrap();
    let tokenizer_config = json!({
        "bos_token": "<s>",
        "eos_token": {"content": "</s>", "special": true},
        "pad_token": "<pad>",
        "chat_template": CHAT_TEMPLATE,
    });
    std::fs::write(
        gold.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )
    .unwrap();

    let profile = dir.join("paper-ci.toml");
    std::fs::write(&profile, profile_toml(&gold, &data, &weak, &strong)).unwrap();
    let manifest = dir.join("paper-path.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    Fixture {
        _tmp: tmp,
        dir,
        gold,
        profile,
        manifest,
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `sweep plan --json`'s stages: name → artifact dir (`results/cache/<kind>/<key>`).
fn stage_dirs(f: &Fixture, args: &[&str]) -> BTreeMap<String, (String, PathBuf)> {
    let out = sweep(&f.dir, &[&["plan", "--json"], args].concat());
    assert!(out.status.success(), "plan failed:\n{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["to_run"], 0, "everything ran: {plan}");
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let kind = s["kind"].as_str().unwrap().to_string();
            let dir = f
                .dir
                .join("results/cache")
                .join(&kind)
                .join(s["key"].as_str().unwrap());
            (s["name"].as_str().unwrap().to_string(), (kind, dir))
        })
        .collect()
}

#[test]
fn paper_profile_path_runs_end_to_end() {
    let f = fixture();
    let (profile, manifest) = (f.profile.to_str().unwrap(), f.manifest.to_str().unwrap());
    let args = [manifest, "--profile", profile];

    // Every word of the data is in the vocabulary.
    let tokenizer = Tokenizer::from_file(f.gold.join("tokenizer.json")).unwrap();
    let unk = tokenizer.token_to_id("<unk>").unwrap();
    let (train, test) = hh_rows();
    for r in train.iter().chain(&test) {
        for side in ["chosen", "rejected"] {
            let ids = tokenizer.encode(r[side].as_str().unwrap(), false).unwrap();
            assert!(!ids.get_ids().contains(&unk), "{r}");
        }
    }

    let validate = sweep(&f.dir, &[&["validate"], &args[..]].concat());
    assert!(
        validate.status.success() && text(&validate).starts_with("ok: 1 experiment(s)"),
        "validate:\n{}",
        text(&validate)
    );

    let run = sweep(&f.dir, &[&["run"], &args[..]].concat());
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    // Every cell finished with a finite GRA in [0, 1] and a gold mean.
    let results = read_json(&f.dir.join("results/paper-path/cells.json"));
    assert_eq!(results["profile"], "paper-ci", "{results}");
    let cells = results["cells"].as_array().unwrap();
    let annotations: BTreeSet<&str> = cells
        .iter()
        .map(|c| c["labels"]["annotation"].as_str().unwrap())
        .collect();
    assert_eq!(
        annotations,
        BTreeSet::from(["human", "ws", "cw"]),
        "{results}"
    );
    for cell in cells {
        let metric = |name: &str| -> f64 {
            cell["metrics"][name]
                .as_f64()
                .unwrap_or_else(|| panic!("no `{name}` in {cell}"))
        };
        assert!((0.0..=1.0).contains(&metric("gra")), "{cell}");
        assert!((0.0..=1.0).contains(&metric("gra_shared")), "{cell}");
        assert!(metric("gold_mean").is_finite(), "{cell}");
        // An HF strong model has no pretrain node, so no base comparison.
        assert!(cell["metrics"].get("gra_sft_vs_base").is_none(), "{cell}");
    }

    let stages = stage_dirs(&f, &args);
    let of_kind = |kind: &str| -> Vec<(&String, &PathBuf)> {
        stages
            .iter()
            .filter(|(_, (k, _))| k == kind)
            .map(|(name, (_, dir))| (name, dir))
            .collect()
    };
    assert!(
        of_kind("pretrain").is_empty(),
        "HF models are not pretrained"
    );

    // The dataset stage read the files: 60 pairs, 8 test prompts.
    let datasets = of_kind("dataset");
    assert_eq!(datasets.len(), 1);
    let pairs = read_json(&datasets[0].1.join("pairs.json"));
    assert_eq!(pairs.as_array().unwrap().len(), 60);
    let first = prompt(QUESTIONS[0], "dog", false);
    assert_eq!(
        pairs[0],
        json!({
            "prompt": first,
            "chosen": CHOSEN[0].replace("{t}", "dog"),
            "rejected": REJECTED[0].replace("{t}", "dog"),
        }),
        "the prompt is the transcript up to the last Assistant:, responses keep their space"
    );
    let test_prompts = read_json(&datasets[0].1.join("test_prompts.json"));
    assert_eq!(test_prompts.as_array().unwrap().len(), 8);

    // Both weak annotators (BT for cw, DPO for ws) labelled every D_U pair.
    let split = read_json(&of_kind("split")[0].1.join("split.json"));
    let n_unlabeled = split["unlabeled"].as_array().unwrap().len();
    assert_eq!(n_unlabeled + split["labeled"].as_array().unwrap().len(), 60);
    let annotations = of_kind("annotate");
    assert_eq!(annotations.len(), 2, "{annotations:?}");
    for (name, dir) in &annotations {
        let labels = read_json(&dir.join("labels.json"));
        let labels = labels.as_array().unwrap();
        assert_eq!(labels.len(), n_unlabeled, "{name}");
        for l in labels {
            let (s_c, s_r) = (l["s_c"].as_f64().unwrap(), l["s_r"].as_f64().unwrap());
            assert!(
                s_c.is_finite() && s_r.is_finite() && s_c >= s_r,
                "{name}: {l}"
            );
        }
    }

    // Each score artifact is the real gold RM's scores of its generation file.
    let gold = load_real_gold(RealGoldKind::SeqCls, &f.gold, &Device::Cpu).unwrap();
    let scores = of_kind("score");
    // aligned ×3, SFT under ws and cw, the shared human SFT model.
    assert_eq!(scores.len(), 6, "{scores:?}");
    for (name, dir) in scores {
        let tail = name.strip_prefix("score/").unwrap();
        let (_, generation) = &stages[&format!("generate/{tail}")];
        let rows = read_json(&generation.join("generations.json"));
        let (prompts, responses): (Vec<String>, Vec<String>) = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["prompt"].as_str().unwrap().to_string(),
                    g["response"].as_str().unwrap().to_string(),
                )
            })
            .unzip();
        assert_eq!(prompts.len(), 8, "{name}");
        let got: Vec<f64> = read_json(&dir.join("scores.json"))
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        // Different prompts get different responses and scores, so the
        // comparison below is not between copies of one number.
        assert!(
            got.iter().any(|&s| s != got[0]),
            "{name}: every score is {}: {responses:?}",
            got[0]
        );
        let want = gold.score(&prompts, &responses).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - f64::from(*w)).abs() <= 1e-6,
                "{name} item {i}: {g} vs {w}"
            );
        }
    }

    // Unchanged inputs: nothing re-runs.
    let again = sweep(&f.dir, &[&["run"], &args[..]].concat());
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again)
            .lines()
            .any(|l| l.starts_with("0 stage(s) run")),
        "second run ran stages:\n{}",
        text(&again)
    );
}

/// Table 17 on the paper profile's path: the profile's `judge` (the real
/// SmolLM2-135M-Instruct GGUF, SKIPPED without it, a failure under
/// `CI=true`) judges every generation against the chosen response of its
/// prompt's first test pair in both orders; the win and tie rates are those
/// of `judgments.json` under the profile's tie rule (the paper's: a tie
/// loses). A `judge` path that does not exist fails `sweep validate`, and
/// the same cell without a `judge` fails at `win_rate`, saying so.
#[test]
fn win_rate_on_real_files_is_judged_pairwise_by_the_profiles_judge() {
    let Some(judge) = cwpo::testing::smollm2_gguf() else {
        return;
    };
    let f = fixture();
    let manifest = MANIFEST.replace(
        "annotation = [\"human\", \"ws\", \"cw\"]",
        "annotation = [\"human\"]",
    ) + "\n[metric]\nwin_rate = true\n";
    std::fs::write(&f.manifest, manifest).unwrap();
    let without_judge = std::fs::read_to_string(&f.profile).unwrap();
    let gold_line = without_judge
        .lines()
        .find(|l| l.starts_with("gold = "))
        .unwrap();
    let with_judge = without_judge.replace(
        gold_line,
        &format!(
            "{gold_line}\njudge = {{ stands_for = \"HuggingFaceTB/SmolLM2-135M-Instruct\", path = {} }}",
            toml_str(&judge)
        ),
    );
    std::fs::write(&f.profile, &with_judge).unwrap();
    let (profile, manifest) = (f.profile.to_str().unwrap(), f.manifest.to_str().unwrap());
    let run = sweep(&f.dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let stages = stage_dirs(&f, &[manifest, "--profile", profile]);
    let (_, win_dir) = stages
        .values()
        .find(|(kind, _)| kind == "win_rate")
        .unwrap();
    let record = read_json(&win_dir.join("sweep-record.json"))["record"].clone();
    let generation = record["inputs"]["generation"].as_str().unwrap();
    let generations = read_json(
        &f.dir
            .join("results/cache/generate")
            .join(generation)
            .join("generations.json"),
    );
    let judgments = read_json(&win_dir.join("judgments.json"));
    let (generations, judgments) = (
        generations.as_array().unwrap(),
        judgments.as_array().unwrap(),
    );
    assert_eq!(
        judgments.len(),
        generations.len(),
        "one judgment per generation"
    );
    for (j, g) in judgments.iter().zip(generations) {
        assert_eq!(j["prompt"], g["prompt"]);
    }
    let count = |o: &str| judgments.iter().filter(|j| j["outcome"] == o).count() as f64;
    let n = judgments.len() as f64;
    let metrics = &record["metrics"];
    assert_eq!(
        metrics["win_rate"].as_f64().unwrap(),
        count("win") / n,
        "{metrics}"
    );
    assert_eq!(
        metrics["win_tie_rate"].as_f64().unwrap(),
        count("tie") / n,
        "{metrics}"
    );
    assert_eq!(count("win") + count("loss") + count("tie"), n);

    // A judge path that is not there is found by `sweep validate`.
    let missing = f.dir.join("no-such-judge.gguf");
    std::fs::write(
        &f.profile,
        with_judge.replace(&toml_str(&judge), &toml_str(&missing)),
    )
    .unwrap();
    let validate = sweep(&f.dir, &["validate", manifest, "--profile", profile]);
    assert!(!validate.status.success(), "{}", text(&validate));
    assert!(
        text(&validate).contains(&format!(
            "judge: {} is neither a GGUF file nor an HF dir",
            missing.display()
        )),
        "{}",
        text(&validate)
    );

    std::fs::write(&f.profile, &without_judge).unwrap();
    let run = sweep(&f.dir, &["run", manifest, "--profile", profile]);
    assert!(!run.status.success());
    assert!(
        text(&run).contains("needs a pairwise judge model"),
        "{}",
        text(&run)
    );
}

#[test]
fn a_missing_gold_dir_fails_validate_with_the_download_command() {
    let f = fixture();
    let missing = f.dir.join("models/no-such-reward-model");
    let profile = std::fs::read_to_string(&f.profile)
        .unwrap()
        .replace(&toml_str(&f.gold), &toml_str(&missing));
    assert!(profile.contains("no-such-reward-model"), "{profile}");
    std::fs::write(&f.profile, profile).unwrap();
    let out = sweep(
        &f.dir,
        &[
            "validate",
            f.manifest.to_str().unwrap(),
            "--profile",
            f.profile.to_str().unwrap(),
        ],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains(&missing.display().to_string()) && log.contains("huggingface-cli download"),
        "{log}"
    );
}

/// The embedded `paper` profile itself (not a copy of its shape), with
/// `${CWPO_MODELS}` and `${CWPO_DATA}` pointing at the fixture, whose dirs
/// are named as paper.toml expects (`opt-125m`, `opt-13b`,
/// `Skywork-Reward-V2-Llama-3.1-8B`, `hh-rlhf/train.jsonl`): its LoRA r = 8,
/// learning rates and batch sizes run as they are; only the manifest's
/// `max_new_tokens` keeps generation short.
#[test]
fn the_embedded_paper_profile_runs_on_files_in_its_layout() {
    let f = fixture();
    let sweep_paper = |args: &[&str]| -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_sweep"))
            .current_dir(&f.dir)
            .env("CWPO_MODELS", f.dir.join("models"))
            .env("CWPO_DATA", f.dir.join("data"))
            .args(args)
            .args([f.manifest.to_str().unwrap(), "--profile", "paper"])
            .output()
            .expect("sweep runs")
    };
    let validate = sweep_paper(&["validate"]);
    assert!(
        validate.status.success() && text(&validate).starts_with("ok: 1 experiment(s)"),
        "validate:\n{}",
        text(&validate)
    );
    let run = sweep_paper(&["run"]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));
    let results = read_json(&f.dir.join("results/paper-path/cells.json"));
    assert_eq!(results["profile"], "paper", "{results}");
    let cells = results["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{results}");
    for cell in cells {
        let gra = cell["metrics"]["gra"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&gra), "{cell}");
        assert!(
            cell["metrics"]["gold_mean"].as_f64().unwrap().is_finite(),
            "{cell}"
        );
    }
}
