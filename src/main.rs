//! `sweep`: the CLI. Parses arguments, calls the `cwpo` library, and maps
//! the outcome to exit codes: 0 ok, 1 a stage (or the runner) failed, 2 bad input.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use cwpo::cache::Cache;
use cwpo::exec::{self, NodeState, RunOptions};
use cwpo::manifest::diagnostic::Diagnostics;
use cwpo::plan;

#[derive(Parser)]
#[command(
    name = "sweep",
    version,
    about = "Declarative, cached experiment sweeps reproducing CW-PO"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Manifests and where their results live (shared by most subcommands).
#[derive(Args, Clone)]
struct Inputs {
    /// Manifest files or directories (searched recursively; `profiles/` skipped).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Profile: `tiny` (default, embedded), `paper`, or a profile TOML file.
    #[arg(long, default_value = "tiny")]
    profile: String,
    /// Results dir; the cache lives in `<results>/cache`.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage of the manifests that is not cached yet.
    Run {
        #[command(flatten)]
        inputs: Inputs,
        /// Stages run at once (default 1 on CPU: training already uses every core).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Keep running branches that do not depend on a failed stage.
        #[arg(long)]
        keep_going: bool,
        /// `cpu` or `cuda:N` (needs the `cuda` feature).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Show the DAG: per kind, nodes / cached / to run, and the dedup ratio.
    Plan {
        #[command(flatten)]
        inputs: Inputs,
        #[arg(long)]
        json: bool,
        /// Also write the DAG as Graphviz.
        #[arg(long)]
        dot: Option<PathBuf>,
    },
    /// Why would STAGE (a readable name or key prefix) re-run?
    Why {
        stage: String,
        #[command(flatten)]
        inputs: Inputs,
    },
    /// What the cache holds, per stage kind.
    Status {
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the reports from the cache only (runs nothing).
    Report {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Check manifests and the profile's paths; write nothing.
    Validate {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Delete cached stages the given manifests no longer reach.
    Gc {
        /// Manifests whose stages to keep.
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "tiny")]
        profile: String,
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Without manifests: delete only dirs no record points to (orphans, failed, temp).
        #[arg(long)]
        all_unreferenced: bool,
        /// List what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => match err.downcast_ref::<Diagnostics>() {
            Some(diagnostics) => {
                eprintln!("{diagnostics}");
                ExitCode::from(2)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            inputs,
            jobs,
            keep_going,
            device,
        } => run(&inputs, jobs, keep_going, &device),
        Command::Plan { inputs, json, dot } => show_plan(&inputs, json, dot.as_deref()),
        Command::Why { stage, inputs } => {
            let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
            let Some(node) = plan.find(&stage) else {
                bail!(
                    "no stage named `{stage}` in this plan (or the key prefix is ambiguous); `sweep plan --json` lists them"
                );
            };
            let cache = open_if_exists(&inputs.results)?;
            print!("{}", exec::why::explain(&plan, cache.as_ref(), node)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { results, json } => status(&results, json),
        Command::Report { inputs } => {
            let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
            let cache = open_if_exists(&inputs.results)?;
            exec::results::write_reports(&plan, cache.as_ref(), &inputs.results)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { inputs } => {
            let (plan, experiments) = plan::compile(&inputs.paths, &inputs.profile)?;
            let profile = cwpo::profile::Profile::load(&inputs.profile)?;
            let datasets: Vec<&str> = experiments
                .iter()
                .flat_map(|e| &e.cells)
                .map(|c| c.settings.dataset.as_str())
                .collect();
            let models: Vec<&str> = experiments
                .iter()
                .flat_map(|e| &e.cells)
                .flat_map(|c| [c.weak_model.0.as_str(), c.strong_model.0.as_str()])
                .collect();
            let missing = profile.missing_paths(&dedup(datasets), &dedup(models));
            for m in &missing {
                eprintln!("error: profile `{}`: {m}", profile.name);
            }
            if !missing.is_empty() {
                return Ok(ExitCode::from(2));
            }
            println!(
                "ok: {} experiment(s), {} stage(s)",
                experiments.len(),
                plan.graph.node_count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc {
            paths,
            profile,
            results,
            all_unreferenced,
            dry_run,
        } => gc(&paths, &profile, &results, all_unreferenced, dry_run),
    }
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v.dedup();
    v
}

fn open_if_exists(results: &Path) -> Result<Option<Cache>> {
    if Cache::exists(results) {
        Ok(Some(Cache::open(results)?))
    } else {
        Ok(None)
    }
}

fn parse_device(device: &str) -> Result<candle_core::Device> {
    match device {
        "cpu" => Ok(candle_core::Device::Cpu),
        d => match d.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => candle_core::Device::new_cuda(n).with_context(|| {
                format!("--device {d}: cannot open CUDA device {n} (is sweep built with `--features cuda`?)")
            }),
            None => bail!("--device `{d}`: use `cpu` or `cuda:N`"),
        },
    }
}

fn run(inputs: &Inputs, jobs: usize, keep_going: bool, device: &str) -> Result<ExitCode> {
    // Everything is validated before the cache is touched.
    let device = parse_device(device)?;
    let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
    let cache = Cache::open(&inputs.results)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let summary = exec::run(
        &plan,
        &cache,
        &RunOptions {
            jobs,
            keep_going,
            device,
        },
        &cancel,
    )?;
    eprintln!(
        "{} stage(s) run, {} cached, {} failed, {} not run",
        summary.ran.len(),
        summary.cached,
        summary.failed.len(),
        summary.skipped
    );
    if summary.cancelled {
        eprintln!("cancelled: unfinished stages were discarded; `sweep run` again resumes");
        return Ok(ExitCode::from(130));
    }
    exec::results::write_reports(&plan, Some(&cache), &inputs.results)?;
    if summary.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &summary.failed {
        eprintln!(
            "error: stage {} failed: {}\n  log: {}",
            f.name,
            f.error,
            f.log.display()
        );
    }
    Ok(ExitCode::from(1))
}

fn show_plan(inputs: &Inputs, json: bool, dot: Option<&Path>) -> Result<ExitCode> {
    let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
    let cache = open_if_exists(&inputs.results)?;
    let states = exec::states(&plan, cache.as_ref())?;
    let mut per_kind: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    let mut stages = Vec::new();
    for idx in plan.topological() {
        let node = &plan.graph[idx];
        let state = &states[&idx];
        let counts = per_kind.entry(node.kind.as_str()).or_default();
        counts[0] += 1;
        counts[if *state == NodeState::Cached { 1 } else { 2 }] += 1;
        let state_name = match state {
            NodeState::Cached => "cached".to_string(),
            NodeState::Stale(r) => format!("stale: {r}"),
            NodeState::ToRun => "to_run".to_string(),
        };
        stages.push(serde_json::json!({"name": node.name, "kind": node.kind, "key": node.key, "state": state_name}));
    }
    let nodes = plan.graph.node_count();
    let naive = plan.naive_stage_count();
    let ratio = if naive == 0 {
        1.0
    } else {
        nodes as f64 / naive as f64
    };
    if json {
        let kinds: BTreeMap<&str, serde_json::Value> = per_kind
            .iter()
            .map(|(k, [n, c, r])| {
                (
                    *k,
                    serde_json::json!({"nodes": n, "cached": c, "to_run": r}),
                )
            })
            .collect();
        let to_run: usize = per_kind.values().map(|c| c[2]).sum();
        let out = serde_json::json!({
            "profile": plan.profile, "nodes": nodes, "naive": naive, "dedup_ratio": ratio,
            "to_run": to_run, "kinds": kinds, "stages": stages,
            "experiments": plan.experiments.iter().map(|e| serde_json::json!({"name": e.name, "cells": e.cells.len()})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<12} {:>6} {:>7} {:>7}",
            "kind", "nodes", "cached", "to run"
        );
        for (kind, [n, c, r]) in &per_kind {
            println!("{kind:<12} {n:>6} {c:>7} {r:>7}");
        }
        println!("{nodes} stages for {naive} naive per-cell stages: dedup ratio {ratio:.2}");
    }
    if let Some(path) = dot {
        let graph = plan.graph.map(
            |idx, n| {
                format!(
                    "{}{}",
                    n.name,
                    if states[&idx] == NodeState::Cached {
                        " (cached)"
                    } else {
                        ""
                    }
                )
            },
            |_, role| role.clone(),
        );
        let text = format!("{}", petgraph::dot::Dot::new(&graph));
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status(results: &Path, json: bool) -> Result<ExitCode> {
    let Some(cache) = open_if_exists(results)? else {
        println!("no cache under {}", results.display());
        return Ok(ExitCode::SUCCESS);
    };
    let mut per_kind: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for rec in cache.records()? {
        let e = per_kind.entry(rec.kind.clone()).or_default();
        e.0 += 1;
        e.1 += rec.duration_s;
    }
    if json {
        let kinds: BTreeMap<&String, serde_json::Value> = per_kind
            .iter()
            .map(|(k, (n, s))| (k, serde_json::json!({"records": n, "seconds": s})))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"cache": cache.root(), "kinds": kinds})
            )?
        );
    } else {
        println!("cache {}", cache.root().display());
        for (kind, (n, s)) in &per_kind {
            println!("{kind:<12} {n:>6} record(s) {s:>9.1}s of compute");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(
    paths: &[PathBuf],
    profile: &str,
    results: &Path,
    all_unreferenced: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    if paths.is_empty() && !all_unreferenced {
        bail!(
            "give the manifests whose stages to keep, or --all-unreferenced to delete only orphan dirs"
        );
    }
    let plan = if paths.is_empty() {
        None
    } else {
        Some(plan::compile(paths, profile)?.0)
    };
    let Some(cache) = open_if_exists(results)? else {
        println!("no cache under {}", results.display());
        return Ok(ExitCode::SUCCESS);
    };
    let verb = if dry_run { "would delete" } else { "deleted" };
    if let Some(plan) = &plan {
        for rec in cache.records()? {
            if plan.node(&rec.key).is_none() {
                println!(
                    "{verb} {} ({})",
                    rec.name,
                    cache.artifact_dir(&rec).display()
                );
                if !dry_run {
                    cache.remove(&rec)?;
                }
            }
        }
    }
    for dir in cache.unreferenced_dirs()? {
        println!("{verb} {}", dir.display());
        if !dry_run {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
