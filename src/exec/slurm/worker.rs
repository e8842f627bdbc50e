//! The worker side: `sweep stage exec KEY --cache DIR`, what every Slurm
//! job runs (and what the controller runs itself for `controller_kinds`).
//!
//! The controller writes the stage's spec to `<cache>/slurm/specs/<key>.json`
//! before it submits the job. The worker never opens the sled index (one
//! process at a time): it reads the spec, computes the stage into its own
//! work dir `<cache>/slurm/work/<key>.<job>/`, seals it (every file fsynced
//! and hashed, the record file `sweep-record.json` written last) and renames
//! it to `<cache>/<kind>/<key>/`. The controller then verifies the checksums
//! and ingests the record into the index. A failed stage's work dir (with
//! its `stage.log`) goes to `<cache>/failed/<key>/` and the worker exits 1.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::cache::partial::partial_dir;
use crate::cache::record::{RecordHead, read_record_file, seal};
use crate::cache::{LOG_FILE, Record};
use crate::exec::progress::Display;
use crate::plan::Node;
use crate::stage::{Progress, StageContext, run_stage};
use crate::train::checkpoint::{CheckpointEvery, CheckpointPlace};

/// In a failed stage's dir (`<cache>/failed/<key>/`): the worker stopped
/// because a signal (Slurm's `--signal` warning before the time limit or a
/// preemption) cancelled it, with its progress saved in the partial dir.
pub const INTERRUPTED_FILE: &str = "interrupted";

/// Everything a worker needs to compute one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub key: String,
    pub kind: String,
    pub version: u32,
    pub name: String,
    pub params: serde_json::Value,
    /// Role → input key.
    pub inputs: BTreeMap<String, String>,
    /// Role → the input's artifact dir, relative to the cache root.
    pub input_dirs: BTreeMap<String, String>,
    /// `cpu` or `cuda:N`, as given to `sweep run --device`.
    pub device: String,
}

impl StageSpec {
    pub fn new(node: &Node, input_records: &BTreeMap<String, Record>, device: &str) -> StageSpec {
        StageSpec {
            key: node.key.clone(),
            kind: node.kind.clone(),
            version: node.version,
            name: node.name.clone(),
            params: node.params.clone(),
            inputs: node.inputs.clone(),
            input_dirs: input_records
                .iter()
                .map(|(role, rec)| (role.clone(), rec.artifact_dir.clone()))
                .collect(),
            device: device.to_string(),
        }
    }
}

/// Where the spec of stage `key` lives.
pub fn spec_path(cache_root: &Path, key: &str) -> PathBuf {
    cache_root.join("slurm/specs").join(format!("{key}.json"))
}

/// The dir a finished stage is renamed to (the cache's layout).
pub fn stage_dir(cache_root: &Path, kind: &str, key: &str) -> PathBuf {
    cache_root.join(kind).join(key)
}

/// Where a failed stage's work dir (and log) is kept.
pub fn failed_dir(cache_root: &Path, key: &str) -> PathBuf {
    cache_root.join("failed").join(key)
}

/// Writes a spec atomically (temp file, rename), so a job never reads half of one.
pub fn write_spec(cache_root: &Path, spec: &StageSpec) -> Result<PathBuf> {
    let path = spec_path(cache_root, &spec.key);
    fs::create_dir_all(path.parent().expect("has parent"))?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(spec)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(path)
}

/// `sweep stage exec KEY --cache DIR`: computes the stage, seals it and
/// renames it into the cache. `Err` after its work dir went to `failed/`.
/// `cancel` (SIGTERM, SIGINT) makes a training loop save and stop.
pub fn exec_stage(cache_root: &Path, key: &str, cancel: &AtomicBool) -> Result<()> {
    let path = spec_path(cache_root, key);
    let spec: StageSpec = serde_json::from_slice(
        &fs::read(&path).with_context(|| format!("reading the stage spec {}", path.display()))?,
    )
    .with_context(|| format!("parsing the stage spec {}", path.display()))?;
    let dest = stage_dir(cache_root, &spec.kind, &spec.key);
    if read_record_file(&dest).is_ok() {
        println!("{} is already done", spec.name);
        return Ok(());
    }
    let mut inputs = BTreeMap::new();
    for (role, rel) in &spec.input_dirs {
        let dir = cache_root.join(rel);
        read_record_file(&dir)
            .map_err(|e| anyhow!("input `{role}` ({}) is not finished: {e}", dir.display()))?;
        inputs.insert(role.clone(), dir);
    }
    // One work dir per attempt: a job resubmitted after its controller died
    // never writes into another attempt's files.
    let attempt = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    let work = cache_root
        .join("slurm/work")
        .join(format!("{key}.{attempt}"));
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let device = crate::device::parse_device(&spec.device)?;
    let display = Display::new(1);
    let progress = display.stage(&spec.name, &work.join(LOG_FILE))?;
    progress.log(&format!(
        "stage {} ({}) on {} as {}{}",
        spec.name,
        spec.key,
        hostname(),
        std::env::var("SLURM_JOB_ID")
            .map_or("a controller child".into(), |id| format!("Slurm job {id}")),
        // What Slurm granted a job that asked for GPUs.
        std::env::var("CUDA_VISIBLE_DEVICES")
            .map_or(String::new(), |d| format!(", CUDA_VISIBLE_DEVICES={d}"))
    ));
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let started = Instant::now();
    // Keyed like the local runner's, so a resubmitted (preempted, timed
    // out) job continues from the last checkpoint of any earlier attempt.
    let checkpoint = CheckpointPlace {
        dir: partial_dir(cache_root, key),
        stage: spec.name.clone(),
        every: CheckpointEvery::default(),
    };
    let ctx = StageContext {
        params: &spec.params,
        inputs: &inputs,
        out_dir: &work,
        device: &device,
        progress: &progress,
        cancel,
        checkpoint: Some(&checkpoint),
    };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_stage(&spec.kind, &ctx)))
            .unwrap_or_else(|panic| {
                Err(anyhow!(
                    "stage panicked: {}",
                    crate::exec::panic_text(&panic)
                ))
            });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => {
            progress.log(&format!("error: {err:#}"));
            display.close(progress);
            let failed = failed_dir(cache_root, key);
            if failed.exists() {
                fs::remove_dir_all(&failed)?;
            }
            fs::create_dir_all(failed.parent().expect("has parent"))?;
            fs::rename(&work, &failed)?;
            if cancel.load(Ordering::Relaxed) {
                // The controller resubmits it under `requeue`, not `retries`.
                fs::write(
                    failed.join(INTERRUPTED_FILE),
                    "stopped by SIGTERM; progress saved in the partial dir\n",
                )?;
            }
            bail!(
                "stage {} failed: {err:#}\n  log: {}",
                spec.name,
                failed.join(LOG_FILE).display()
            );
        }
    };
    display.close(progress);
    seal(
        &work,
        RecordHead {
            key: spec.key.clone(),
            kind: spec.kind.clone(),
            version: spec.version,
            name: spec.name.clone(),
            started_unix_s,
            duration_s: started.elapsed().as_secs_f64(),
            metrics: outcome.metrics,
            params: spec.params.clone(),
            inputs: spec.inputs.clone(),
        },
    )?;
    move_into_place(&work, &dest)?;
    let _ = fs::remove_dir_all(&checkpoint.dir);
    println!(
        "{} done in {:.1}s",
        spec.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Renames a sealed work dir to the stage's dir. Another attempt may have
/// finished first: its sealed dir stays and ours goes; an unsealed leftover
/// (an artifact without a record) is replaced.
fn move_into_place(work: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().expect("has kind dir");
    fs::create_dir_all(parent)?;
    if dest.exists() {
        if read_record_file(dest).is_ok() {
            fs::remove_dir_all(work)?;
            return Ok(());
        }
        fs::remove_dir_all(dest)?;
    }
    fs::rename(work, dest)
        .with_context(|| format!("renaming {} to {}", work.display(), dest.display()))?;
    fs::File::open(parent)?.sync_all()?;
    Ok(())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "?".into(), |h| h.trim().into())
}
