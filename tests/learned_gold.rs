//! The synthetic world's two judges and sampled GRA, end to end through the
//! real binary on a CI-sized world: `metric.gold = ["true", "learned"]` as an
//! axis trains the learned RM once (`gold_train`) and scores the same
//! generations twice; `generate.samples = 3` makes three sampled responses
//! per test prompt, which GRA compares sample by sample.
mod common;
use common::{sweep, text};
use std::path::{Path, PathBuf};

/// The tiny profile with short pretraining and a small learned-judge set.
fn small_profile(dir: &Path) -> PathBuf {
    let mut profile = common::tiny_profile();
    common::set(&mut profile, "pretrain", "steps", 40);
    common::set(&mut profile, "learned_gold", "n_pairs", 640);
    common::set(&mut profile, "learned_gold", "n_valid_pairs", 40);
    common::write_profile(dir, &profile)
}

const MANIFEST: &str = r#"
[experiment]
name = "judges"
title = "true vs learned judge, sampled GRA"

[axes]
"metric.gold" = ["true", "learned"]

[defaults]
dataset = "tldr"
pair = "qwen"
objective = "dpo"
annotation = "human"

[world]
n_pairs = 120
n_test_prompts = 12

[generate]
temperature = 1.0
samples = 3
max_new_tokens = 10
"#;

/// Every cached artifact dir of stage `kind`.
fn artifacts(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let root = dir.join("results/cache").join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn learned_and_true_judges_score_the_same_sampled_generations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = dir.join("judges.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let args = [
        "run",
        manifest.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
    ];
    let run = sweep(dir, &args);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    // One learned judge for the world, better than chance on held-out gold pairs.
    let gold = artifacts(dir, "gold_train");
    assert_eq!(gold.len(), 1, "{gold:?}");
    let log = std::fs::read_to_string(gold[0].join("stage.log")).unwrap();
    let agreement: f64 = log
        .split("agrees with the true reward on ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|pct| pct.parse().ok())
        .unwrap_or_else(|| panic!("no agreement line in stage.log:\n{log}"));
    assert!(
        agreement > 55.0,
        "learned judge agreement {agreement}%:\n{log}"
    );

    // Sampled generations: 3 per prompt, prompt-major, not all alike.
    let generations = artifacts(dir, "generate");
    // aligned, SFT (= the shared reference) and the pretrained base.
    assert_eq!(generations.len(), 3, "{generations:?}");
    for g in &generations {
        let rows = json(&g.join("generations.json"));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 12 * 3);
        for prompt in rows.chunks(3) {
            assert!(prompt.iter().all(|r| r["prompt"] == prompt[0]["prompt"]));
        }
        let distinct: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r["response"].to_string()).collect();
        assert!(distinct.len() > 12, "samples differ: {distinct:?}");
    }
    // Each generation scored by both judges, one score per sample.
    let scores = artifacts(dir, "score");
    assert_eq!(scores.len(), 2 * 3, "{scores:?}");
    for s in &scores {
        assert_eq!(json(&s.join("scores.json")).as_array().unwrap().len(), 36);
    }

    // Both cells finished with finite GRA; the judges disagree on the scale.
    let results = json(&dir.join("results/judges/cells.json"));
    let cells = results["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    let metric = |judge: &str, name: &str| -> f64 {
        let cell = cells
            .iter()
            .find(|c| c["labels"]["metric.gold"] == judge)
            .unwrap_or_else(|| panic!("no {judge} cell in {cells:?}"));
        cell["metrics"][name].as_f64().unwrap()
    };
    for judge in ["true", "learned"] {
        let gra = metric(judge, "gra");
        assert!((0.0..=1.0).contains(&gra), "{judge}: {gra}");
    }
    assert_ne!(metric("true", "gold_mean"), metric("learned", "gold_mean"));

    // Unchanged manifest: nothing re-runs.
    let again = sweep(dir, &args);
    assert!(again.status.success(), "{}", text(&again));
    let reran = String::from_utf8_lossy(&again.stderr)
        .lines()
        .filter(|l| l.starts_with("done   "))
        .count();
    assert_eq!(reran, 0, "second run ran stages:\n{}", text(&again));
}
