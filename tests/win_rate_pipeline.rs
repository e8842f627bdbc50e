//! Table 17 end to end on a CI-sized world (~10 s): the shipped manifest
//! (`experiments/table17.toml`, Table 1's cells with `metric.win_rate`) at
//! one pair, dataset, objective and seed, human and CW labels. Checks
//! that each `win_rate` stage scored one chosen response per test prompt
//! and that its win rate is what the cached generations' scores give
//! against those chosen scores (ties ½, the tiny profile's rule), and that
//! the report tabulates it beside the paper's GPT-4 numbers.
//!
//! The full-size table: `sweep run experiments/table17.toml` (README).
mod common;
use std::collections::HashMap;
use std::path::Path;

use common::table1_ci::{ci_sized, small_profile};
use common::{sweep, text};

fn json(dir: &Path, file: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

/// The artifact dir of the cached stage `key` of `kind`.
fn stage_dir(cache: &Path, kind: &str, key: &str) -> std::path::PathBuf {
    cache.join(kind).join(key)
}

#[test]
fn win_rate_is_each_sample_against_its_prompts_chosen_response() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = ci_sized(
        dir,
        "table17",
        "Table 17 (CI-sized world)",
        "pair = [\"opt\"]\ndataset = [\"hh-rlhf\"]\nobjective = [\"dpo\"]\n\
         annotation = [\"human\", \"cw\"]\nseed = [0]\n",
    );
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());
    let run = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let cache = dir.join("results/cache");
    let records: Vec<std::path::PathBuf> = std::fs::read_dir(cache.join("win_rate"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("sweep-record.json").is_file())
        .collect();
    assert_eq!(records.len(), 2, "one win_rate stage per cell");
    for stage in records {
        let record = json(&stage, "sweep-record.json")["record"].clone();
        let inputs = &record["inputs"];
        let prompts = json(
            &stage_dir(&cache, "dataset", inputs["dataset"].as_str().unwrap()),
            "test_prompts.json",
        );
        let chosen = json(&stage, "chosen_scores.json");
        assert_eq!(
            chosen.as_array().unwrap().len(),
            prompts.as_array().unwrap().len()
        );
        let chosen_of: HashMap<&str, f64> = prompts
            .as_array()
            .unwrap()
            .iter()
            .zip(chosen.as_array().unwrap())
            .map(|(p, s)| (p.as_str().unwrap(), s.as_f64().unwrap()))
            .collect();
        let generations = json(
            &stage_dir(&cache, "generate", inputs["generation"].as_str().unwrap()),
            "generations.json",
        );
        let scores = json(
            &stage_dir(&cache, "score", inputs["score"].as_str().unwrap()),
            "scores.json",
        );
        let (mut points, mut n) = (0.0, 0.0);
        for (g, s) in generations
            .as_array()
            .unwrap()
            .iter()
            .zip(scores.as_array().unwrap())
        {
            let reference = chosen_of[g["prompt"].as_str().unwrap()];
            let ours = s.as_f64().unwrap();
            points += if ours > reference {
                1.0
            } else if ours == reference {
                0.5
            } else {
                0.0
            };
            n += 1.0;
        }
        let got = record["metrics"]["win_rate"].as_f64().unwrap();
        assert!((got - points / n).abs() < 1e-9, "{got} vs {}", points / n);
    }
    let report = std::fs::read_to_string(dir.join("results/table17/report.md")).unwrap();
    assert!(report.contains("GPT-4 could not be called"), "{report}");
    assert!(report.contains("`win_rate`"), "{report}");
}
