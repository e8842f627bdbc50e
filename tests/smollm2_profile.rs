//! The `smollm2` profile end to end (issue #20): the real, pretrained
//! SmolLM2-135M-Instruct GGUF in every model slot (weak = BT head, strong =
//! LoRA, the gold judge = a BT head the pipeline trains on gold-labelled
//! pairs), HH-layout files of the synthetic world through the HH reader, and
//! `experiments/table1_smoke.toml` (Table 1, one row) run unchanged by the
//! real `sweep` binary to its report.md, CSV and PNG.
//!
//! - `shipped_hh_files_are_what_export_hh_writes`: the data under
//!   assets/smollm2/ are exactly what the profile's documented
//!   `sweep world export-hh` command writes (no model needed).
//! - `ci_sized_smollm2_run`: the same DAG on 2 pairs, 2 gold pairs, batch 2
//!   (one optimiser step per training stage) and 3 new tokens: the shipped
//!   profile's text with only those numbers and the paths changed.
//! - `smollm2_profile_runs_table1_smoke` (`#[ignore]`, README's slow tests):
//!   the shipped profile as it is; prints the wall time per stage kind
//!   (BENCHMARKS.md, "Real-model smoke run").
//!
//! Both runs need models/SmolLM2-135M-Instruct.Q4_1.gguf
//! (`scripts/fetch-smollm2.sh`): skipped without it, failed under `CI=true`.
mod common;
use common::{repo, text};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// The GGUF the profile binds; `None` (after saying why) when absent, a
/// failure under `CI=true`.
fn smollm2_gguf() -> Option<PathBuf> {
    cwpo::testing::input_file(
        repo().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "run scripts/fetch-smollm2.sh to run this test",
    )
}

/// `sweep ARGS…` from the repository root (the profile's paths are relative
/// to it); results go where `args` say (`--results`).
fn sweep_at_root(args: &[&str]) -> Output {
    common::sweep(repo(), args)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn shipped_hh_files_are_what_export_hh_writes() {
    // The command the profile's header documents, run as written there.
    let profile =
        std::fs::read_to_string(repo().join("experiments/profiles/smollm2.toml")).unwrap();
    let documented = "sweep world export-hh --pairs 48 --test-prompts 16 --gold-pairs 64 \\\n#     --gold-valid-pairs 32 --out assets/smollm2";
    assert!(
        profile.contains(documented),
        "the profile documents another command"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let run = sweep_at_root(&[
        "world",
        "export-hh",
        "--pairs",
        "48",
        "--test-prompts",
        "16",
        "--gold-pairs",
        "64",
        "--gold-valid-pairs",
        "32",
        "--out",
        out,
    ]);
    assert!(run.status.success(), "{}", text(&run));
    for file in [
        "hh-rlhf/train.jsonl",
        "hh-rlhf/test.jsonl",
        "gold/train.jsonl",
        "gold/valid.jsonl",
    ] {
        let shipped = std::fs::read_to_string(repo().join("assets/smollm2").join(file)).unwrap();
        let written = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert!(
            shipped == written,
            "assets/smollm2/{file} differs from what export-hh writes; regenerate it"
        );
    }
}

/// Replaces `from` by `to` in `text`, which must contain it (so a change
/// of the shipped profile fails here, not silently).
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the profile has no `{from}`");
    text.replace(from, to)
}

fn first_lines(from: &Path, n: usize, to: &Path) {
    let text = std::fs::read_to_string(from).unwrap();
    let lines: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(to, lines).unwrap();
}

fn toml_str(path: &Path) -> String {
    toml::Value::String(path.to_str().unwrap().to_string()).to_string()
}

#[test]
fn ci_sized_smollm2_run() {
    let Some(gguf) = smollm2_gguf() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let assets = repo().join("assets/smollm2");
    for (file, n) in [
        ("hh-rlhf/train.jsonl", 2),
        ("hh-rlhf/test.jsonl", 2),
        ("gold/train.jsonl", 2),
        ("gold/valid.jsonl", 2),
    ] {
        first_lines(&assets.join(file), n, &dir.join("data").join(file));
    }
    let mut profile =
        std::fs::read_to_string(repo().join("experiments/profiles/smollm2.toml")).unwrap();
    for (from, to) in [
        ("n_pairs = 64", "n_pairs = 2".to_string()),
        ("n_valid_pairs = 32", "n_valid_pairs = 2".to_string()),
        ("batch_size = 8", "batch_size = 2".to_string()),
        ("max_new_tokens = 24", "max_new_tokens = 3".to_string()),
        ("\"assets/smollm2/", format!("\"{}/data/", dir.display())),
        (
            "\"models/SmolLM2-135M-Instruct.Q4_1.gguf\"",
            toml_str(&gguf),
        ),
    ] {
        profile = replace(&profile, from, &to);
    }
    let profile_path = dir.join("smollm2-ci.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let results = dir.join("results");
    check_run(&profile_path, &results, 2, 2);
}

#[test]
#[ignore = "minutes on CPU (release); README's slow tests, BENCHMARKS.md's numbers"]
fn smollm2_profile_runs_table1_smoke() {
    if smollm2_gguf().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let start = std::time::Instant::now();
    let stages = check_run(Path::new("smollm2"), &results, 48, 16);
    println!("whole run: {:.1} s", start.elapsed().as_secs_f64());
    // Wall time per stage kind, from the cache's records.
    let mut per_kind: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (kind, dir) in stages.values() {
        let record = read_json(&dir.join("sweep-record.json"));
        let entry = per_kind.entry(kind.clone()).or_default();
        entry.0 += 1;
        entry.1 += record["record"]["duration_s"].as_f64().unwrap();
    }
    println!("| stage kind | stages | total s | s per stage |");
    println!("|---|---|---|---|");
    for (kind, (n, s)) in per_kind {
        println!("| {kind} | {n} | {s:.1} | {:.1} |", s / n as f64);
    }
}

/// Runs `sweep validate` and `sweep run experiments/table1_smoke.toml` under
/// `profile` and checks what can fail on the real path; returns the stages
/// (name → (kind, artifact dir)).
fn check_run(
    profile: &Path,
    results: &Path,
    n_pairs: usize,
    n_test: usize,
) -> BTreeMap<String, (String, PathBuf)> {
    let (profile, results_arg) = (profile.to_str().unwrap(), results.to_str().unwrap());
    let args = [
        "experiments/table1_smoke.toml",
        "--profile",
        profile,
        "--results",
        results_arg,
    ];
    let validate = sweep_at_root(&[&["validate"], &args[..]].concat());
    assert!(validate.status.success(), "validate:\n{}", text(&validate));
    let run = sweep_at_root(&[&["run"], &args[..]].concat());
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    // The report, its CSV and its figure.
    let out = results.join("table1_smoke");
    for file in ["report.md", "table1_smoke.csv", "table1_smoke.png"] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("SMOKE TEST"),
        "the report must say it is a smoke run:\n{report}"
    );

    let cells = read_json(&out.join("cells.json"));
    assert_eq!(cells["profile"], "smollm2", "{cells}");
    let cells = cells["cells"].as_array().unwrap();
    let annotations: BTreeSet<&str> = cells
        .iter()
        .map(|c| c["labels"]["annotation"].as_str().unwrap())
        .collect();
    assert_eq!(annotations, BTreeSet::from(["human", "ws", "cw"]));
    for cell in cells {
        let gra = cell["metrics"]["gra"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&gra), "{cell}");
        assert!(
            cell["metrics"]["gold_mean"].as_f64().unwrap().is_finite(),
            "{cell}"
        );
    }

    // Every stage, from the plan (all cached now).
    let plan = sweep_at_root(&[&["plan", "--json"], &args[..]].concat());
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["to_run"], 0, "{plan}");
    let stages: BTreeMap<String, (String, PathBuf)> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let kind = s["kind"].as_str().unwrap().to_string();
            let dir = results
                .join("cache")
                .join(&kind)
                .join(s["key"].as_str().unwrap());
            (s["name"].as_str().unwrap().to_string(), (kind, dir))
        })
        .collect();
    let of_kind = |kind: &str| -> Vec<&PathBuf> {
        stages
            .values()
            .filter(|(k, _)| k == kind)
            .map(|(_, d)| d)
            .collect()
    };

    // The HH reader: prompts in HH layout, responses with their space.
    let dataset = of_kind("dataset");
    assert_eq!(dataset.len(), 1);
    let pairs = read_json(&dataset[0].join("pairs.json"));
    assert_eq!(pairs.as_array().unwrap().len(), n_pairs);
    let prompt = pairs[0]["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with("\n\nHuman: ") && prompt.ends_with("\n\nAssistant:"),
        "{prompt:?}"
    );
    assert!(pairs[0]["chosen"].as_str().unwrap().starts_with(' '));

    // One judge, trained once, with the tokenizer the score stage reads.
    let judges = of_kind("gold_train_files");
    assert_eq!(judges.len(), 1, "{stages:?}");
    assert!(judges[0].join("gold/tokenizer.json").is_file());
    let record = read_json(&judges[0].join("sweep-record.json")); // {format, blake3, record}
    let agreement = record["record"]["metrics"]["agreement_with_gold_valid"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&agreement), "{record}");

    // Strong checkpoints carry SmolLM2's tokenizer (not the synthetic one).
    for sft in of_kind("sft") {
        let tok = std::fs::read_to_string(sft.join("model/tokenizer.json")).unwrap();
        assert!(tok.contains("<|im_end|>"), "{}", sft.display());
    }

    // Generations: decoded text of a real LM, no control token left in.
    let mut generated = 0;
    for gen_dir in of_kind("generate") {
        let rows = read_json(&gen_dir.join("generations.json"));
        let rows = rows.as_array().unwrap();
        assert_eq!(
            rows.iter()
                .map(|g| g["prompt"].as_str().unwrap())
                .collect::<BTreeSet<_>>()
                .len(),
            n_test,
            "{}",
            gen_dir.display()
        );
        for g in rows {
            let response = g["response"].as_str().unwrap();
            assert!(
                !response.contains("<|im_end|>") && !response.contains("<|im_start|>"),
                "{response:?}"
            );
            generated += usize::from(!response.trim().is_empty());
        }
    }
    assert!(generated > 0, "every generation is empty");
    stages
}
