//! The world must not silently lose its signal (issue 21): on every family
//! the paper's Table 1 uses (hh-rlhf, tldr, ufb), DPO on *clean* labels (the
//! gold reward's choice, no human noise, no flips, a noiseless ufb judge)
//! must beat its own SFT model, pooled over the families, and damage none.
//! This is the CI-sized version of
//! `docs/calibration/families_clean.toml` (docs/world.md, "Calibration per
//! family"), driven through the real `sweep` binary: pretraining, SFT, DPO,
//! sampling and the true gold reward all run for real, on a smaller world,
//! and a smaller strong model (`opt-1.3b`'s stand-in).
//!
//! "Beats" means more wins than losses against the SFT model's samples
//! (`ties = "half"`: GRA > 50% exactly when wins > losses), averaged over
//! the seeds.
mod common;
use common::{sweep, text};
use std::path::{Path, PathBuf};

const FAMILIES: [&str; 3] = ["hh-rlhf", "tldr", "ufb"];

/// The embedded tiny profile with pretraining cut short.
fn small_profile(dir: &Path) -> PathBuf {
    let mut profile = common::tiny_profile();
    // The profile's own 1500 steps: with 150 (and the world before the
    // TL;DR fix) every family failed; docs/world.md, "The TL;DR fix".
    common::set(&mut profile, "pretrain", "steps", 1500);
    common::write_profile(dir, &profile)
}

/// The clean-label control of `docs/calibration/families_clean.toml`, CI-sized.
fn small_manifest(dir: &Path) -> PathBuf {
    let manifest = r#"[experiment]
name = "calib_ci"
title = "Clean-label DPO vs its SFT model (CI-sized)"

[defaults]
pair = "opt"
strong_model = "opt-1.3b"
annotation = "human"
objective = "dpo"

[axes]
dataset = ["hh-rlhf", "tldr", "ufb"]
seed = [0, 1, 2]

[world]
n_pairs = 400
n_test_prompts = 32
flip = 0.0
ufb_judge_noise = 0.0
human = { model = "bt", temperature = 0.001 }

[generate]
max_new_tokens = 12

[metric]
ties = "half"

[report]
rows = ["objective"]
columns = ["dataset"]
value = "gra"
scale = 100
"#;
    let path = dir.join("calib-ci.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// Measured 2026-12-02 after the TL;DR fix (event summaries, 1500
/// pretraining steps), 108 s in the debug test profile on the shared 2-core
/// machine: clean-label DPO wins 55.9 [43.1, 67.9] (hh-rlhf), 55.5 [52.0,
/// 58.9] (tldr), 51.2 [49.5, 52.9] (ufb) against its SFT model, 54.2 pooled.
/// Before the fix the same test gave 48.8, 37.2 and 44.3. The bar: the pooled
/// mean beats SFT (above 51%), and no family is clearly damaged (every mean
/// above 48%): ufb's margin at this size is too thin to ask more of one
/// family without the test turning on a CPU's rounding.
#[test]
fn clean_label_dpo_beats_its_sft_model_on_every_table1_family() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = small_profile(dir);
    let manifest = small_manifest(dir);
    let run = sweep(
        dir,
        &[
            "run",
            manifest.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "run failed:\n{}", text(&run));

    let csv = std::fs::read_to_string(dir.join("results/calib_ci/calib_ci.csv"))
        .expect("calib_ci.csv written");
    eprintln!("{csv}");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().expect("one row: dpo").split(',').collect();
    let gra_of = |family: &str| -> f64 {
        let col = header
            .iter()
            .position(|h| *h == family)
            .unwrap_or_else(|| panic!("no `{family}` column in {header:?}"));
        row[col].parse().unwrap()
    };
    let gras: Vec<f64> = FAMILIES.iter().map(|f| gra_of(f)).collect();
    let pooled = gras.iter().sum::<f64>() / gras.len() as f64;
    assert!(
        pooled > 51.0,
        "clean-label DPO wins {pooled:.1}% (ties ½, pooled over {FAMILIES:?} and 3 seeds) \
         against its SFT model; the world or the training lost its signal\n{csv}"
    );
    for (family, gra) in FAMILIES.iter().zip(&gras) {
        assert!(
            *gra > 48.0,
            "{family}: clean-label DPO wins only {gra:.1}% (ties ½) against its SFT model \
             over 3 seeds: alignment damages this family\n{csv}"
        );
    }
}
