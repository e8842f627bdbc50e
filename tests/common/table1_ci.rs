//! The CI-sized Table 1: the real manifest (`experiments/table1.toml`) with a
//! smaller world, shorter pretraining and two seeds; other shipped manifests
//! shrink the same way ([`ci_sized`]). `table1_pipeline.rs`
//! runs it locally, `slurm_executor.rs` through Slurm.
use std::path::{Path, PathBuf};

/// The embedded tiny profile with pretraining cut short, written to `dir`.
pub fn small_profile(dir: &Path) -> PathBuf {
    let mut profile = super::tiny_profile();
    super::set(&mut profile, "pretrain", "steps", 40);
    super::write_profile(dir, &profile)
}

/// Table 1's manifest with a smaller world and two seeds (a CI needs two).
pub fn small_manifest(dir: &Path) -> PathBuf {
    ci_sized(dir, "table1", "Table 1 (CI-sized world)", "seed = [0, 1]\n")
}

/// The shipped manifest `experiments/<name>.toml` on a smaller world (160
/// pairs, 24 test prompts, 12 new tokens), its `[axes]` overridden by `axes`
/// (TOML lines), written to `dir/<name>-ci.toml`.
pub fn ci_sized(dir: &Path, name: &str, title: &str, axes: &str) -> PathBuf {
    let base = super::repo().join(format!("experiments/{name}.toml"));
    let manifest = format!(
        r#"extends = "{}"
[experiment]
name = "{name}"
title = "{title}"

[axes]
{axes}
[world]
n_pairs = {CI_PAIRS}
n_test_prompts = 24

[generate]
max_new_tokens = 12
"#,
        base.display()
    );
    let path = dir.join(format!("{name}-ci.toml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

/// Preference pairs of the CI-sized world.
pub const CI_PAIRS: usize = 160;

/// Name → content of every file directly in `dir`, sorted by name.
pub fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}
