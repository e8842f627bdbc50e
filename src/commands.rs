//! What the subcommands compute, as library functions the binary only
//! parses for and prints: `sweep plan` ([`plan_summary`], [`plan_dot`]),
//! `sweep status` ([`cache_status`]), `sweep gc` ([`gc`]), `sweep validate`
//! ([`validate`]), `sweep verify` ([`verify`]), `sweep cache repair`
//! ([`repair_cache`]) and the options of `--executor slurm`
//! ([`slurm_options`]). Each returns data (JSON via serde, text via
//! `Display`), so a test can check it without running the binary.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cache::partial::{PartialStage, partial_stages};
use crate::cache::{Cache, CacheRead, Reconciled, Verified};
use crate::exec::slurm::{SlurmOptions, SlurmSettings};
use crate::exec::{self, NodeState};
use crate::plan::{self, Plan};
use crate::profile::Profile;
use crate::spec::{Diagnostic, Diagnostics};

/// One stage kind's count of nodes in a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindCounts {
    pub nodes: usize,
    pub cached: usize,
    pub to_run: usize,
}

/// One stage of a plan and its cache state (`cached`, `to_run`, `stale: …`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageState {
    pub name: String,
    pub kind: String,
    pub key: String,
    pub state: String,
}

/// An experiment and its number of cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentSize {
    pub name: String,
    pub cells: usize,
}

/// `sweep plan`: per kind, nodes / cached / to run, and the dedup ratio
/// (DAG nodes / the stages every cell would need on its own).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSummary {
    pub profile: String,
    pub nodes: usize,
    pub naive: usize,
    pub dedup_ratio: f64,
    pub to_run: usize,
    pub kinds: BTreeMap<String, KindCounts>,
    /// In topological order.
    pub stages: Vec<StageState>,
    pub experiments: Vec<ExperimentSize>,
}

/// Counts `plan`'s stages against `cache` (a lock-free
/// [`crate::cache::snapshot::Snapshot`] in `sweep plan`; empty when there is no cache yet).
pub fn plan_summary(plan: &Plan, cache: &dyn CacheRead) -> Result<PlanSummary> {
    let states = exec::states(plan, cache)?;
    let mut kinds: BTreeMap<String, KindCounts> = BTreeMap::new();
    let mut stages = Vec::new();
    for idx in plan.topological() {
        let node = &plan.graph[idx];
        let state = &states[&idx];
        let counts = kinds.entry(node.kind.clone()).or_default();
        counts.nodes += 1;
        if *state == NodeState::Cached {
            counts.cached += 1;
        } else {
            counts.to_run += 1;
        }
        stages.push(StageState {
            name: node.name.clone(),
            kind: node.kind.clone(),
            key: node.key.clone(),
            state: match state {
                NodeState::Cached => "cached".to_string(),
                NodeState::Stale(r) => format!("stale: {r}"),
                NodeState::ToRun => "to_run".to_string(),
            },
        });
    }
    let nodes = plan.graph.node_count();
    let naive = plan.naive_stage_count();
    Ok(PlanSummary {
        profile: plan.profile.clone(),
        nodes,
        naive,
        dedup_ratio: if naive == 0 {
            1.0
        } else {
            nodes as f64 / naive as f64
        },
        to_run: kinds.values().map(|c| c.to_run).sum(),
        kinds,
        stages,
        experiments: plan
            .experiments
            .iter()
            .map(|e| ExperimentSize {
                name: e.name.clone(),
                cells: e.cells.len(),
            })
            .collect(),
    })
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>6} {:>7} {:>7}",
            "kind", "nodes", "cached", "to run"
        )?;
        for (kind, c) in &self.kinds {
            writeln!(
                f,
                "{kind:<12} {:>6} {:>7} {:>7}",
                c.nodes, c.cached, c.to_run
            )?;
        }
        write!(
            f,
            "{} stages for {} naive per-cell stages: dedup ratio {:.2}",
            self.nodes, self.naive, self.dedup_ratio
        )
    }
}

/// The plan as Graphviz, cached stages marked.
pub fn plan_dot(plan: &Plan, cache: &dyn CacheRead) -> Result<String> {
    let states = exec::states(plan, cache)?;
    let graph = plan.graph.map(
        |idx, n| {
            let cached = states[&idx] == NodeState::Cached;
            format!("{}{}", n.name, if cached { " (cached)" } else { "" })
        },
        |_, role| role.clone(),
    );
    Ok(format!("{}", petgraph::dot::Dot::new(&graph)))
}

/// One stage kind's records in the cache and their compute time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindRecords {
    pub records: usize,
    pub seconds: f64,
}

/// `sweep status`: what the cache holds, per stage kind, and the saved
/// progress of unfinished stages (their partial dirs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStatus {
    pub cache: PathBuf,
    pub kinds: BTreeMap<String, KindRecords>,
    pub partial: Vec<PartialStage>,
}

pub fn cache_status(cache: &dyn CacheRead) -> Result<CacheStatus> {
    let mut kinds: BTreeMap<String, KindRecords> = BTreeMap::new();
    for rec in cache.records()? {
        let k = kinds.entry(rec.kind.clone()).or_default();
        k.records += 1;
        k.seconds += rec.duration_s;
    }
    Ok(CacheStatus {
        cache: cache.root().to_path_buf(),
        kinds,
        partial: partial_stages(cache.root())?,
    })
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache {}", self.cache.display())?;
        for (kind, k) in &self.kinds {
            write!(
                f,
                "\n{kind:<12} {:>6} record(s) {:>9.1}s of compute",
                k.records, k.seconds
            )?;
        }
        if !self.partial.is_empty() {
            write!(
                f,
                "\n{} unfinished stage(s) with saved progress (`sweep run` resumes them):",
                self.partial.len()
            )?;
        }
        for p in &self.partial {
            let key = &p.key[..p.key.len().min(12)];
            for l in &p.loops {
                write!(
                    f,
                    "\n  {} [{}] step {}/{} ({key})",
                    l.stage, l.phase, l.step, l.total_steps
                )?;
            }
            if p.loops.is_empty() && p.unreadable.is_empty() {
                write!(f, "\n  {key}: no checkpoint yet")?;
            }
            for u in &p.unreadable {
                write!(f, "\n  {key}: unreadable {u}")?;
            }
        }
        Ok(())
    }
}

/// `sweep gc`: deletes (or with `dry_run` only lists) the cached stages
/// `keep` no longer reaches (all are kept without a plan), then every dir no
/// record points to, then the partial dirs (saved progress) of keys `keep`
/// does not have (all are kept without a plan). Returns one line per deletion.
pub fn gc(keep: Option<&Plan>, cache: &Cache, dry_run: bool) -> Result<Vec<String>> {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines = Vec::new();
    if let Some(plan) = keep {
        for rec in cache.records()? {
            if plan.node(&rec.key).is_none() {
                lines.push(format!(
                    "{verb} {} ({})",
                    rec.name,
                    cache.artifact_dir(&rec).display()
                ));
                if !dry_run {
                    cache.remove(&rec)?;
                }
            }
        }
    }
    let mut dirs = cache.unreferenced_dirs()?;
    if let Some(plan) = keep {
        for p in partial_stages(cache.root())? {
            if plan.node(&p.key).is_none() {
                dirs.push(p.dir);
            }
        }
    }
    for dir in dirs {
        lines.push(format!("{verb} {}", dir.display()));
        if !dry_run {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(lines)
}

/// `sweep validate`: the manifests resolve and plan (bad input is an `Err`
/// of `Diagnostics`), and every local file the cells need exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub profile: String,
    pub experiments: usize,
    pub stages: usize,
    /// Missing checkpoints or dataset files, each with how to get it.
    pub missing: Vec<String>,
}

impl Validation {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok() {
            return write!(
                f,
                "ok: {} experiment(s), {} stage(s)",
                self.experiments, self.stages
            );
        }
        let lines: Vec<String> = self
            .missing
            .iter()
            .map(|m| format!("error: profile `{}`: {m}", self.profile))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

pub fn validate(paths: &[PathBuf], profile: &str, max_stages: Option<usize>) -> Result<Validation> {
    let (plan, experiments) = plan::compile_limited(paths, profile, max_stages)?;
    let profile = Profile::load(profile)?;
    let cells = || experiments.iter().flat_map(|e| &e.cells);
    let datasets = sorted_unique(cells().map(|c| c.settings.dataset.as_str()));
    let models =
        sorted_unique(cells().flat_map(|c| [c.weak_model.0.as_str(), c.strong_model.0.as_str()]));
    let mut missing = profile.missing_paths(&datasets, &models);
    missing.extend(missing_judges(&plan));
    Ok(Validation {
        missing,
        profile: profile.name,
        experiments: experiments.len(),
        stages: plan.graph.node_count(),
    })
}

/// The pairwise judges (`win_rate` on real datasets, the profile's `judge`)
/// the plan needs and this machine lacks: found now, not hours into a run.
fn missing_judges(plan: &plan::Plan) -> Vec<String> {
    let judges: std::collections::BTreeSet<PathBuf> = plan
        .graph
        .node_weights()
        .filter(|node| node.kind == <crate::stage::win_rate::WinRate as crate::stage::Stage>::KIND)
        .filter_map(|node| node.params.get("judge")?.as_str().map(PathBuf::from))
        .collect();
    judges
        .into_iter()
        .filter(|path| !path.is_file() && !path.join("config.json").exists())
        .map(|path| {
            format!(
                "judge: {} is neither a GGUF file nor an HF dir with config.json; set the profile's \
                 `judge = {{ stands_for = \"...\", path = \"...\" }}` to a local instruct model",
                path.display()
            )
        })
        .collect()
}

fn sorted_unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = items.collect();
    v.sort();
    v.dedup();
    v
}

/// `sweep verify`: hashes every file of every record of the cache under
/// `results`; a record whose files changed is dropped, so its stage re-runs.
/// The binary exits 1 when anything was dropped.
pub fn verify(results: &Path) -> Result<Verified> {
    Cache::open(results)?.verify_all()
}

/// `sweep cache repair`: rebuilds the index of the cache under `results`
/// from the record files in the artifact dirs, hashing every file; dirs that
/// cannot be trusted move to `failed/`.
pub fn repair_cache(results: &Path) -> Result<Reconciled> {
    Ok(Cache::repair(results)?.1)
}

/// How `sweep run` and `sweep plan --dry-run` run stages under
/// `--executor slurm`.
#[derive(Debug, Clone, Copy)]
pub struct SlurmRun<'a> {
    /// `--profile`: its file's `[slurm]` table holds the cluster settings.
    pub profile: &'a str,
    /// `--executor-config`: a TOML file whose `[slurm]` wins over the profile's.
    pub executor_config: Option<&'a Path>,
    /// `--results`.
    pub results: &'a Path,
    pub keep_going: bool,
    /// `--device`, handed to every worker.
    pub device: &'a str,
    /// Controller-side stages run at once.
    pub jobs: usize,
}

/// `--executor slurm`'s options, validated: the settings (bad ones are
/// `Diagnostics` at their `file:line:col`, exit 2) and an absolute results
/// dir, which every node must see. The jobs run the settings' `binary`, else
/// this very executable.
pub fn slurm_options(run: &SlurmRun) -> Result<SlurmOptions> {
    let settings = SlurmSettings::load(run.profile, run.executor_config)?;
    if !run.results.is_absolute() {
        let mut errors = Diagnostics::default();
        errors.push(Diagnostic::file(
            run.results,
            "--executor slurm needs an absolute --results dir on a filesystem every node sees \
             (Slurm jobs run elsewhere, in other working dirs)",
        ));
        return Err(errors.into());
    }
    let binary = match &settings.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating the sweep binary for the jobs")?,
    };
    Ok(SlurmOptions {
        settings,
        keep_going: run.keep_going,
        device: run.device.to_string(),
        jobs: run.jobs,
        binary,
    })
}

/// The cache under `results`, if one was ever created (read-only commands
/// never create one).
pub fn open_if_exists(results: &Path) -> Result<Option<Cache>> {
    if Cache::exists(results) {
        Ok(Some(Cache::open(results)?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two experiments of 2 and 1 cells that stop after `split`; they share
    /// the dataset and the seed-0 split.
    fn two_experiments(dir: &Path) -> Vec<PathBuf> {
        let body = |name: &str, seeds: &str| {
            format!(
                "[experiment]\nname = \"{name}\"\nuntil = \"split\"\n[axes]\nseed = [{seeds}]\n\
                 [defaults]\ndataset = \"tldr\"\npair = \"opt\"\nobjective = \"dpo\"\nannotation = \"cw\"\n"
            )
        };
        let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
        std::fs::write(&a, body("a", "0, 1")).unwrap();
        std::fs::write(&b, body("b", "0")).unwrap();
        vec![a, b]
    }

    #[test]
    fn plan_summary_counts_kinds_and_the_dedup_ratio() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let (plan, _) = plan::compile(&two_experiments(tmp.path()), "tiny")?;
        let none = crate::cache::snapshot::Snapshot::open(&tmp.path().join("results"))?;
        let summary = plan_summary(&plan, &none)?;
        // One dataset, two splits (seeds 0, 1) for 3 cells × (dataset + split).
        assert_eq!(summary.kinds["dataset"].nodes, 1);
        assert_eq!(summary.kinds["split"].nodes, 2);
        assert_eq!((summary.nodes, summary.naive, summary.to_run), (3, 6, 3));
        assert!((summary.dedup_ratio - 0.5).abs() < 1e-12);
        assert_eq!(summary.stages[0].kind, "dataset", "topological order");
        assert!(summary.stages.iter().all(|s| s.state == "to_run"));
        let cells: Vec<usize> = summary.experiments.iter().map(|e| e.cells).collect();
        assert_eq!(cells, [2, 1]);
        let text = summary.to_string();
        let split_row = ["split", "2", "0", "2"];
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(split_row.iter().copied())),
            "{text}"
        );
        assert!(text.ends_with("dedup ratio 0.50"), "{text}");
        assert!(plan_dot(&plan, &none)?.contains("split/tldr/f0.3/seed1"));
        Ok(())
    }

    #[test]
    fn status_and_gc_of_an_empty_cache_and_its_orphans() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let results = tmp.path().join("results");
        assert!(open_if_exists(&results)?.is_none(), "nothing created");
        let cache = Cache::open(&results)?;
        let status = cache_status(&cache)?;
        assert!(status.kinds.is_empty());
        assert_eq!(
            status.to_string(),
            format!("cache {}", cache.root().display())
        );
        // An orphan dir (no record points to it) is listed, then deleted.
        let orphan = cache.root().join("split").join("0123abcd");
        std::fs::create_dir_all(&orphan)?;
        let (plan, _) = plan::compile(&two_experiments(tmp.path()), "tiny")?;
        let listed = gc(Some(&plan), &cache, true)?;
        assert_eq!(listed, [format!("would delete {}", orphan.display())]);
        assert!(orphan.exists(), "a dry run deletes nothing");
        let deleted = gc(None, &cache, false)?;
        assert_eq!(deleted, [format!("deleted {}", orphan.display())]);
        assert!(!orphan.exists());
        Ok(())
    }

    /// A cache under `results` holding `split`'s first stage, its one file
    /// `split.json` = `body`. Returns the cache and the artifact file.
    fn cache_with_one_stage(results: &Path, body: &str) -> Result<(Cache, PathBuf)> {
        let (plan, _) = plan::compile(&two_experiments(results.parent().unwrap()), "tiny")?;
        let node = &plan.graph[plan.topological()[0]];
        let cache = Cache::open(results)?;
        let tmp = cache.begin(&node.key)?;
        std::fs::write(tmp.join("split.json"), body)?;
        let record = cache.commit(node, &tmp, 0.0, 1.5, BTreeMap::new())?;
        let file = cache.artifact_dir(&record).join("split.json");
        Ok((cache, file))
    }

    #[test]
    fn verify_drops_a_record_whose_file_changed() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let results = tmp.path().join("results");
        let (cache, file) = cache_with_one_stage(&results, "[1, 2]")?;
        drop(cache);
        let clean = verify(&results)?;
        assert_eq!((clean.checked, clean.dropped.len()), (1, 0), "{clean}");
        std::fs::write(&file, "[1, 3]")?;
        let changed = verify(&results)?;
        assert_eq!(
            (changed.checked, changed.dropped.len()),
            (1, 1),
            "{changed}"
        );
        assert!(!file.exists(), "the changed stage's dir is deleted");
        assert!(cache_status(&Cache::open(&results)?)?.kinds.is_empty());
        Ok(())
    }

    #[test]
    fn repair_rebuilds_the_index_from_the_record_files() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let results = tmp.path().join("results");
        let (cache, _) = cache_with_one_stage(&results, "[1, 2]")?;
        let root = cache.root().to_path_buf();
        drop(cache);
        let found = repair_cache(&results)?;
        assert!(found.rebuilt.is_some(), "{found}");
        assert!(found.dropped.is_empty(), "{found}");
        let status = cache_status(&Cache::open(&results)?)?;
        assert_eq!(status.kinds.values().map(|k| k.records).sum::<usize>(), 1);
        assert_eq!(status.cache, root);
        Ok(())
    }

    #[test]
    fn slurm_options_need_an_absolute_results_dir() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let run = SlurmRun {
            profile: "tiny",
            executor_config: None,
            results: Path::new("results"),
            keep_going: true,
            device: "cpu",
            jobs: 3,
        };
        let Err(err) = slurm_options(&run) else {
            panic!("a relative --results dir was accepted")
        };
        let diagnostics = err.downcast_ref::<Diagnostics>().expect("exit 2");
        assert!(
            diagnostics.to_string().contains("absolute --results"),
            "{diagnostics}"
        );
        let config = tmp.path().join("cluster.toml");
        std::fs::write(&config, "[slurm]\nbinary = \"/shared/bin/sweep\"\n")?;
        let opts = slurm_options(&SlurmRun {
            results: tmp.path(),
            executor_config: Some(&config),
            ..run
        })?;
        assert_eq!(opts.binary, Path::new("/shared/bin/sweep"));
        assert_eq!(
            (opts.keep_going, opts.jobs, opts.device.as_str()),
            (true, 3, "cpu")
        );
        let own = slurm_options(&SlurmRun {
            results: tmp.path(),
            ..run
        })?;
        assert_eq!(
            own.binary,
            std::env::current_exe()?,
            "no binary set: this one"
        );
        Ok(())
    }

    #[test]
    fn validate_counts_and_reports_missing_files() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let v = validate(&two_experiments(tmp.path()), "tiny", None)?;
        assert!(v.ok(), "{v}");
        assert_eq!(v.to_string(), "ok: 2 experiment(s), 3 stage(s)");
        let missing = Validation {
            missing: vec!["dataset `tldr`: /nowhere does not exist".into()],
            ..v
        };
        assert!(!missing.ok());
        assert_eq!(
            missing.to_string(),
            "error: profile `tiny`: dataset `tldr`: /nowhere does not exist"
        );
        Ok(())
    }
}
