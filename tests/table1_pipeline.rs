//! Table 1 end to end on a CI-sized world: the real manifest
//! (`experiments/table1.toml`) with a smaller world, shorter pretraining and
//! two seeds, driven through the real `sweep` binary. Every stage kind runs
//! for real (pretrain, weak BT and DPO annotators, SFT, DPO/IPO/rDPO, sampling,
//! the true gold reward, GRA); the test checks the report's shape and
//! numbers, then that a second run trains nothing and rewrites identical files.
//!
//! The full-size table is `sweep run experiments/table1.toml` (README).
mod common;
use common::table1_ci::{files_of, small_manifest, small_profile};
use common::{sweep, text};

#[test]
fn table1_runs_end_to_end_and_reruns_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = small_manifest(dir);
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());

    let first = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(
        first.status.success(),
        "first run failed:\n{}",
        text(&first)
    );

    let out = dir.join("results/table1");
    let csv = std::fs::read_to_string(out.join("table1.csv")).expect("table1.csv written");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut want = vec!["pair".to_string(), "dataset".to_string()];
    for objective in ["dpo", "ipo", "rdpo"] {
        for annotation in ["human", "ws", "cw"] {
            want.push(format!("{objective}_{annotation}"));
            want.push(format!("{objective}_{annotation}_lo"));
            want.push(format!("{objective}_{annotation}_hi"));
        }
    }
    assert_eq!(header, want, "Table 1's column groups");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let labels: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    let mut want_rows = Vec::new();
    for pair in ["opt", "qwen"] {
        for dataset in ["hh-rlhf", "tldr", "ufb", "Avg."] {
            want_rows.push((pair, dataset));
        }
    }
    assert_eq!(labels, want_rows, "one block per pair, datasets then Avg.");
    for row in &rows {
        for (name, cell) in header.iter().zip(row).skip(2) {
            let value: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("{row:?}: `{name}` = `{cell}` is not a number"));
            assert!(value.is_finite(), "{row:?}: {name} = {value}");
            // means and CI ends alike: a GRA interval never leaves [0, 100]
            assert!((0.0..=100.0).contains(&value), "{row:?}: {name} = {value}%");
        }
    }
    for file in [
        "table1.png",
        "report.md",
        "table1_gra_shared.csv",
        "table1_gra_sft_vs_base.csv",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let index = std::fs::read_to_string(dir.join("results/index.md")).expect("index.md written");
    assert!(
        index.contains("(table1/report.md)") && index.contains("cw > ws: "),
        "{index}"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("58.4"),
        "report.md shows the paper's Table 1"
    );

    // Each claim of a dataset row carries the bootstrap over test prompts,
    // read from the metric stages' per-prompt outcomes (column 9 of the
    // claims table; Avg. rows have no cells of their own).
    let claims: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("| cw > ") && !l.contains("Avg."))
        .collect();
    assert!(!claims.is_empty(), "{report}");
    for line in &claims {
        let bootstrap = line.split('|').nth(9).unwrap().trim();
        let (mean, interval) = bootstrap
            .split_once(" [")
            .unwrap_or_else(|| panic!("{line}"));
        let (lo, hi) = interval.trim_end_matches(']').split_once(", ").unwrap();
        let [mean, lo, hi] = [mean, lo, hi].map(|v| v.parse::<f64>().unwrap());
        assert!(lo <= mean && mean <= hi, "{line}");
    }
    // Table 20's spread over test subsets is a metric of every cell.
    let cells = std::fs::read_to_string(out.join("cells.json")).unwrap();
    assert!(cells.contains("\"gra_std\"") && cells.contains("\"gra_subset_mean\""));
    // Every training stage keeps its per-step trace, one row per optimiser
    // step (train.json's count), and the report draws the align curves.
    let mut traced = 0;
    for kind in ["pretrain", "weak_train", "sft", "align"] {
        let stages = std::fs::read_dir(dir.join("results/cache").join(kind)).unwrap();
        for stage in stages {
            let stage = stage.unwrap().path();
            let train: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(stage.join("train.json")).unwrap())
                    .unwrap();
            let trace = std::fs::read_to_string(stage.join("train_trace.csv"))
                .unwrap_or_else(|e| panic!("{}: no trace: {e}", stage.display()));
            let mut lines = trace.lines();
            let header = lines.next().unwrap();
            assert!(header.starts_with("step,loss,lr"), "{header}");
            if kind == "align" {
                assert!(
                    header.ends_with(",accuracy,mean_weight,reward_margin"),
                    "{header}"
                );
            }
            assert_eq!(
                lines.count() as u64,
                train["steps"].as_u64().unwrap(),
                "{}",
                stage.display()
            );
            traced += 1;
        }
    }
    assert!(traced > 10, "{traced} training stages");
    assert!(out.join("table1_curves.png").is_file(), "curves missing");
    assert!(
        report.contains("![training curves](table1_curves.png)"),
        "{report}"
    );

    let before = files_of(&out);
    let second = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(
        second.status.success(),
        "second run failed:\n{}",
        text(&second)
    );
    let log = text(&second);
    assert!(
        log.lines().any(|l| l.starts_with("0 stage(s) run")),
        "a second run must train nothing:\n{log}"
    );
    assert_eq!(
        before,
        files_of(&out),
        "the second run rewrites identical files"
    );
}
