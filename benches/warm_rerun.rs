//! A warm `sweep run experiments/`: every stage of every shipped manifest
//! cached (issue 22's goal: ≤ 1 s on 2 cores). Training the real cache takes
//! hours, so this fabricates one of the same shape: one sealed artifact dir
//! per planned stage (the plan of `experiments/` under the tiny profile),
//! each with `STAGE_KB` KiB of data in two files plus a log, and metrics for
//! the reports. It times
//!
//! - `sweep run experiments/` (the warm path: size + mtime per file, then
//!   the reports),
//! - `sweep plan experiments/` (the same check, no reports),
//! - `sweep verify` (every file hashed: what every warm run used to do).
//!
//! Run: `cargo bench --bench warm_rerun` (`STAGE_KB=n`, default 64).
#[path = "common/sweep.rs"]
mod sweep;
use std::collections::BTreeMap;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use sweep::sweep;

use cwpo::cache::record::{RecordHead, seal};

/// Writes a sealed dir for every stage of the shipped manifests' plan.
fn fabricate(results: &Path, stage_kb: usize) -> usize {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (plan, _) = cwpo::plan::compile(&[repo.join("experiments")], "tiny").unwrap();
    let root = cwpo::cache::Cache::root_of(results);
    let metric_names = [
        "gra",
        "gra_shared",
        "gold_mean",
        "tie_rate",
        "gra_sft_vs_base",
        "train_seconds",
        "weak_accuracy",
    ];
    for node in plan.graph.node_weights() {
        let dir = root.join(&node.kind).join(&node.key);
        std::fs::create_dir_all(&dir).unwrap();
        let seed = u64::from_str_radix(&node.key[..8], 16).unwrap();
        let data: Vec<u8> = (0..stage_kb * 1024)
            .map(|i| (seed as usize + i * 31) as u8)
            .collect();
        std::fs::write(dir.join("model.safetensors"), &data[..data.len() * 3 / 4]).unwrap();
        std::fs::write(dir.join("out.json"), &data[data.len() * 3 / 4..]).unwrap();
        std::fs::write(dir.join(cwpo::cache::LOG_FILE), b"fabricated\n").unwrap();
        let metrics: BTreeMap<String, f64> = metric_names
            .iter()
            .enumerate()
            .map(|(i, m)| (m.to_string(), 0.3 + ((seed >> i) % 40) as f64 / 100.0))
            .collect();
        seal(
            &dir,
            RecordHead {
                key: node.key.clone(),
                kind: node.kind.clone(),
                version: node.version,
                name: node.name.clone(),
                started_unix_s: 0.0,
                duration_s: 1.0,
                metrics,
                params: node.params.clone(),
                inputs: node.inputs.clone(),
            },
        )
        .unwrap();
    }
    plan.graph.node_count()
}

fn warm_rerun(c: &mut Criterion) {
    let stage_kb: usize = std::env::var("STAGE_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let experiments = repo.join("experiments");
    let experiments = experiments.to_str().unwrap();
    let stages = fabricate(&dir.path().join("results"), stage_kb);
    sweep(dir.path(), &["run", experiments]); // builds the index from the record files
    let mut group = c.benchmark_group(format!("{stages} cached stages, {stage_kb} KiB each"));
    group.sample_size(10);
    group.bench_function("sweep run experiments/ (warm)", |b| {
        b.iter(|| sweep(dir.path(), &["run", experiments]))
    });
    group.bench_function("sweep plan experiments/", |b| {
        b.iter(|| sweep(dir.path(), &["plan", experiments]))
    });
    group.bench_function("sweep verify (every file hashed)", |b| {
        b.iter(|| sweep(dir.path(), &["verify"]))
    });
    group.finish();
}

criterion_group!(benches, warm_rerun);
criterion_main!(benches);
