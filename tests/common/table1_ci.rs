//! The CI-sized Table 1: the real manifest (`experiments/table1.toml`) with a
//! smaller world, shorter pretraining and two seeds. `table1_pipeline.rs`
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
    let base = super::repo().join("experiments/table1.toml");
    let manifest = format!(
        r#"extends = "{}"
[experiment]
name = "table1"
title = "Table 1 (CI-sized world)"

[axes]
seed = [0, 1]

[world]
n_pairs = 160
n_test_prompts = 24

[generate]
max_new_tokens = 12
"#,
        base.display()
    );
    let path = dir.join("table1-ci.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

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
