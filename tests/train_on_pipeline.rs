//! Figure 3 (right) end to end on a CI-sized world: the real manifest
//! (`experiments/fig3_right.toml`, DPO on D_L only vs CW-DPO on D_U) at one
//! labelled fraction and two seeds, plus one DPO-on-every-pair cell (Table 3 /
//! Figure 1's baseline), through the real `sweep` binary. Checks that each
//! alignment trained on exactly the pairs its `train_on` names, read off the
//! cache's stage records (the split's D_L / D_U sizes against the align
//! stage's `pairs`), and that the report sets the two annotations side by side.
//!
//! The full-size figure is `sweep run experiments/fig3_right.toml` (README).
mod common;
use std::collections::BTreeMap;
use std::path::Path;

use common::table1_ci::{CI_PAIRS as N_PAIRS, ci_sized, small_profile};
use common::{sweep, text};

/// Fig 3 right at one fraction and two seeds, plus the human cell on every
/// pair; that one sits at another fraction, its own row of the report (at
/// 0.3 it would share the human entry with D_L's cells).
fn small_manifest(dir: &Path) -> std::path::PathBuf {
    ci_sized(
        dir,
        "fig3_right",
        "Figure 3 right (CI-sized world)",
        "labeled_fraction = [0.3]\nseed = [0, 1]\n\
         include = [{ annotation = \"human\", train_on = \"all\", labeled_fraction = 0.5, seed = 0 }]\n",
    )
}

/// Every stage record of `kind` in the cache (the file wraps it with its checksum).
fn records(cache: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_dir(cache.join(kind))
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
        .map(|e| e.unwrap().path().join("sweep-record.json"))
        .filter(|p| p.is_file())
        .map(|p| {
            let file: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            file["record"].clone()
        })
        .collect()
}

fn metric(record: &serde_json::Value, name: &str) -> usize {
    record["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} missing: {record}")) as usize
}

#[test]
fn each_alignment_trains_on_exactly_the_pairs_train_on_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = small_manifest(dir);
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());
    let run = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let cache = dir.join("results/cache");
    // split key → (|D_L|, |D_U|)
    let splits: BTreeMap<String, (usize, usize)> = records(&cache, "split")
        .iter()
        .map(|r| {
            let sizes = (metric(r, "n_labeled"), metric(r, "n_unlabeled"));
            assert_eq!(sizes.0 + sizes.1, N_PAIRS, "a split partitions the pairs");
            (r["key"].as_str().unwrap().to_string(), sizes)
        })
        .collect();
    let mut seen = BTreeMap::<&str, usize>::new();
    for align in records(&cache, "align") {
        let train_on = align["params"]["train_on"].as_str().unwrap_or("unlabeled");
        let pairs = metric(&align, "pairs");
        let split = align["inputs"]
            .get("split")
            .and_then(|k| splits.get(k.as_str().unwrap()));
        match (train_on, split) {
            ("all", None) => assert_eq!(pairs, N_PAIRS, "|D_L| + |D_U|"),
            ("labeled", Some(&(labeled, _))) => assert_eq!(pairs, labeled, "|D_L|"),
            ("unlabeled", Some(&(_, unlabeled))) => assert_eq!(pairs, unlabeled, "|D_U|"),
            other => panic!("align with train_on and split {other:?}: {align}"),
        }
        *seen
            .entry(match train_on {
                "all" => "all",
                "labeled" => "labeled",
                _ => "unlabeled",
            })
            .or_default() += 1;
    }
    // two seeds of DPO on D_L and of CW on D_U, one human cell on every pair
    assert_eq!(
        seen,
        BTreeMap::from([("all", 1), ("labeled", 2), ("unlabeled", 2)])
    );
    // and the SFT start of each baseline is trained on the same pairs
    let sft_on: Vec<&str> = records(&cache, "sft")
        .iter()
        .map(|r| r["params"]["train_on"].as_str().unwrap_or("unlabeled"))
        .map(|t| match t {
            "all" => "all",
            "labeled" => "labeled",
            _ => "unlabeled",
        })
        .collect();
    for want in ["all", "labeled"] {
        assert!(sft_on.contains(&want), "{sft_on:?}");
    }

    let csv = std::fs::read_to_string(dir.join("results/fig3_right/fig3_right.csv"))
        .expect("fig3_right.csv written");
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("labeled_fraction,human,human_lo,human_hi,cw,cw_lo,cw_hi"),
        "{header}"
    );
    let report = std::fs::read_to_string(dir.join("results/fig3_right/report.md")).unwrap();
    assert!(report.contains("cw > human"), "{report}");
    assert!(dir.join("results/fig3_right/fig3_right.png").is_file());
}
