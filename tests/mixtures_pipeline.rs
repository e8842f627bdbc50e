//! Tables 24 and 25 (Appendix J.8) on a CI-sized world through the real
//! `sweep` binary: the shipped manifests, shrunk.
//!
//! - Table 25 end to end at one poisoning ratio and two seeds (~10 s): each
//!   split's D_L holds exactly round(0.1 · |D_L|) flipped pairs, all from
//!   `harmless`, each one the human and the gold judge agreed on before the
//!   flip; D_U is 77% helpful / 23% harmless; the weak annotator trained on
//!   |D_L| pairs; the report tabulates `weak_disagreement` (Figure 8).
//! - Table 24 up to `split`: every weak mixture's D_L has its exact shares,
//!   never meets D_U, and all annotate the same D_U; the cells evaluated on
//!   Harmless and on Helpful share one pool and one split per mixture.
//!
//! The full-size tables: `sweep run experiments/table24.toml` (and table25,
//! fig8), README.
mod common;
use std::collections::BTreeMap;
use std::path::Path;

use common::table1_ci::{CI_PAIRS, ci_sized, small_profile};
use common::{repo, sweep, text};

/// Every stage record of `kind` in the cache, with its artifact directory.
fn records(cache: &Path, kind: &str) -> Vec<(serde_json::Value, std::path::PathBuf)> {
    std::fs::read_dir(cache.join(kind))
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|dir| dir.join("sweep-record.json").is_file())
        .map(|dir| {
            let file: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("sweep-record.json")).unwrap(),
            )
            .unwrap();
            (file["record"].clone(), dir)
        })
        .collect()
}

fn json(dir: &Path, file: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

fn indices(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .map(|a| a.iter().map(|i| i.as_u64().unwrap() as usize).collect())
        .unwrap_or_default()
}

/// The pool's pairs and each dataset's index range, from the one pool
/// stage every cell shares (beside it, the plain dataset evaluated on).
fn pool(
    cache: &Path,
) -> (
    Vec<serde_json::Value>,
    BTreeMap<String, std::ops::Range<usize>>,
) {
    let pools: Vec<std::path::PathBuf> = records(cache, "dataset")
        .into_iter()
        .map(|(_, dir)| dir)
        .filter(|dir| dir.join("subsets.json").is_file())
        .collect();
    assert_eq!(pools.len(), 1, "one pool for every cell");
    let dir = &pools[0];
    let pairs = json(dir, "pairs.json").as_array().unwrap().clone();
    let subsets = json(dir, "subsets.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let (start, len) = (
                s["start"].as_u64().unwrap() as usize,
                s["len"].as_u64().unwrap() as usize,
            );
            (s["name"].as_str().unwrap().to_string(), start..start + len)
        })
        .collect();
    (pairs, subsets)
}

/// The pool dataset pair `i` belongs to.
fn from(ranges: &BTreeMap<String, std::ops::Range<usize>>, i: usize) -> &str {
    ranges
        .iter()
        .find(|(_, r)| r.contains(&i))
        .map(|(n, _)| n.as_str())
        .unwrap()
}

#[test]
fn poisoned_d_l_flips_exactly_its_poison_and_d_u_follows_eq_19() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = ci_sized(
        dir,
        "table25",
        "Table 25 (CI-sized world)",
        "poison_ratio = [0.1]\nannotation = [\"cw\"]\nseed = [0, 1]\n",
    );
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());
    let run = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let cache = dir.join("results/cache");
    let (pairs, ranges) = pool(&cache);
    assert_eq!(
        ranges["helpful"].len() + ranges["harmless"].len(),
        pairs.len()
    );
    let n_labeled = (CI_PAIRS as f64 * 0.3).round() as usize;
    let n_unlabeled = CI_PAIRS - n_labeled;
    let n_poison = (n_labeled as f64 * 0.1).round() as usize;
    let splits = records(&cache, "split");
    assert_eq!(splits.len(), 2, "one split per seed");
    let mut poisons = Vec::new();
    for (record, dir) in &splits {
        let split = json(dir, "split.json");
        let (labeled, unlabeled, flipped) = (
            indices(&split["labeled"]),
            indices(&split["unlabeled"]),
            indices(&split["flipped"]),
        );
        assert_eq!((labeled.len(), unlabeled.len()), (n_labeled, n_unlabeled));
        assert_eq!(flipped.len(), n_poison, "{record}");
        assert_eq!(record["metrics"]["n_flipped"], n_poison as f64);
        // The poison, and only it, is harmless in D_L; each flipped pair is in D_L.
        let harmless_in_l: Vec<usize> = labeled
            .iter()
            .copied()
            .filter(|&i| from(&ranges, i) == "harmless")
            .collect();
        assert_eq!(harmless_in_l, flipped);
        assert!(unlabeled.iter().all(|i| labeled.binary_search(i).is_err()));
        // Each poisoned pair, as the human labelled it, prefers the refusal
        // (the harmless world's gold-best answer starts "i will not" /
        // "sorry"): flipped, D_L prefers the harmful one.
        for &i in &flipped {
            let chosen = pairs[i]["chosen"].as_str().unwrap();
            assert!(
                chosen.contains("sorry") || chosen.contains("not"),
                "poisoned pair {i} is not one the judge clearly prefers: {}",
                pairs[i]
            );
        }
        // Eq. 19: D_U is 77% helpful, 23% harmless of |D_U|: 112 · 23% =
        // 25.76 → 26 (the larger remainder takes the pair left over).
        let harmless_in_u = unlabeled
            .iter()
            .filter(|&&i| from(&ranges, i) == "harmless")
            .count();
        assert_eq!(harmless_in_u, (n_unlabeled * 23 + 50) / 100, "{record}");
        poisons.push(flipped);
    }
    assert_ne!(poisons[0], poisons[1], "each seed draws its own D_L");
    // The weak annotator trained on |D_L| pairs: 2 epochs of batches of 16.
    for (record, _) in records(&cache, "weak_train") {
        assert_eq!(
            record["metrics"]["steps"],
            (2 * n_labeled.div_ceil(16)) as f64
        );
    }
    let report = std::fs::read_to_string(dir.join("results/table25/report.md")).unwrap();
    assert!(report.contains("`weak_disagreement`"), "{report}");
    assert!(
        dir.join("results/table25/table25_weak_disagreement.csv")
            .is_file()
    );
}

#[test]
fn every_weak_mixture_has_exact_shares_and_annotates_the_same_d_u() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = dir.join("table24-split.toml");
    std::fs::write(
        &manifest,
        format!(
            "extends = \"{}\"\n[experiment]\nname = \"table24\"\ntitle = \"t\"\nuntil = \"split\"\n\
             [axes]\ndataset = [\"harmless\", \"helpful\"]\nannotation = [\"cw\"]\nseed = [0]\n\
             [world]\nn_pairs = {CI_PAIRS}\n\
             [report]\nrows = [\"weak_mixture\"]\ncolumns = [\"dataset\"]\nvalue = \"n_labeled\"\n",
            repo().join("experiments/table24.toml").display()
        ),
    )
    .unwrap();
    let (profile, manifest) = (profile.to_str().unwrap(), manifest.to_str().unwrap());
    let run = sweep(dir, &["run", manifest, "--profile", profile]);
    assert!(run.status.success(), "run failed:\n{}", text(&run));
    let cache = dir.join("results/cache");
    let (_, ranges) = pool(&cache);
    let n_labeled = (CI_PAIRS as f64 * 0.3).round() as usize;
    let mut unlabeled_sets = Vec::new();
    let mut harmless_shares = Vec::new();
    for (record, dir) in records(&cache, "split") {
        let split = json(&dir, "split.json");
        let (labeled, unlabeled) = (indices(&split["labeled"]), indices(&split["unlabeled"]));
        let mixture = record["params"]["mixture"]["labeled"]
            .as_str()
            .unwrap()
            .to_string();
        let harmless = labeled
            .iter()
            .filter(|&&i| from(&ranges, i) == "harmless")
            .count();
        // 48 pairs: 80% = 38.4 → 38, 50% = 24, 20% = 9.6 → 10.
        let want = match mixture.as_str() {
            "harmless80-helpful20" => 38,
            "harmless50-helpful50" => 24,
            "harmless20-helpful80" => 10,
            other => panic!("unexpected mixture {other}"),
        };
        assert_eq!((labeled.len(), harmless), (n_labeled, want), "{mixture}");
        assert!(unlabeled.iter().all(|i| labeled.binary_search(i).is_err()));
        let harmless_u = unlabeled
            .iter()
            .filter(|&&i| from(&ranges, i) == "harmless")
            .count();
        assert_eq!(2 * harmless_u, unlabeled.len(), "D_U is 50/50");
        harmless_shares.push(want);
        unlabeled_sets.push(unlabeled);
    }
    // Three splits for six cells: both evaluation sets share them.
    assert_eq!(harmless_shares.len(), 3);
    assert!(
        unlabeled_sets.windows(2).all(|w| w[0] == w[1]),
        "D_U differs between mixtures"
    );
}

/// Poisoned pairs are ranked by the synthetic world's true reward, which
/// real datasets lack: the paper profile rejects `poison_from` at its line.
#[test]
fn poisoning_from_a_real_dataset_is_rejected_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("m.toml"),
        "[experiment]\nname = \"t\"\n[defaults]\ndataset = \"helpful\"\npair = \"opt\"\n\
         objective = \"dpo\"\nannotation = \"cw\"\npoison_from = \"harmless\"\npoison_ratio = 0.1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sweep"))
        .current_dir(dir)
        .args(["validate", "--profile", "paper", "m.toml"])
        .env("CWPO_DATA", dir)
        .env("CWPO_MODELS", dir)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("m.toml:8:15") && msg.contains("is a real dataset"),
        "{msg}"
    );
}
