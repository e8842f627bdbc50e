//! Partial dirs, `<cache>/partial/<key>/`: where an unfinished stage's
//! training loops keep their checkpoints ([`crate::train::checkpoint`]).
//!
//! Unlike `tmp/`, a partial dir survives a killed run and the next open of
//! the cache: a re-run of the same key (same params, same inputs) continues
//! from it. It is deleted when its stage is recorded; `sweep gc` deletes
//! those whose key its plan no longer has (work of a changed parameter);
//! `sweep status` lists them with their progress.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::train::checkpoint::CheckpointSummary;

pub const PARTIAL_DIR: &str = "partial";

/// The partial dir of stage `key` under cache root `root`.
pub fn partial_dir(root: &Path, key: &str) -> PathBuf {
    root.join(PARTIAL_DIR).join(key)
}

/// One unfinished stage's saved progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartialStage {
    pub key: String,
    pub dir: PathBuf,
    /// One entry per training loop that saved (most stages have one).
    pub loops: Vec<CheckpointSummary>,
    /// Files that are not readable checkpoints (`<file>: <why>`): the
    /// stage restarts the loop that owns one.
    pub unreadable: Vec<String>,
}

/// Every partial dir under `root`, by key, each with what its checkpoint
/// headers say (no tensor is read).
pub fn partial_stages(root: &Path) -> Result<Vec<PartialStage>> {
    let base = root.join(PARTIAL_DIR);
    let Ok(entries) = fs::read_dir(&base) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if !dir.is_dir() {
            continue;
        }
        let mut stage = PartialStage {
            key: dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            dir: dir.clone(),
            loops: Vec::new(),
            unreadable: Vec::new(),
        };
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "safetensors" || x == "json")
            })
            .collect();
        files.sort();
        for file in files {
            match CheckpointSummary::read(&file) {
                Ok(summary) => stage.loops.push(summary),
                Err(e) => stage.unreadable.push(format!("{}: {e:#}", file.display())),
            }
        }
        out.push(stage);
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
