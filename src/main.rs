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
use cwpo::device::parse_device;
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

/// Where stages run: this machine's thread pool, or Slurm jobs.
#[derive(Args, Clone)]
struct ExecutorArgs {
    /// `local` (default) or `slurm` (needs an absolute --results on a shared filesystem).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    /// A TOML file whose `[slurm]` table holds the cluster settings (else the profile's).
    #[arg(long)]
    executor_config: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Executor {
    Local,
    Slurm,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage of the manifests that is not cached yet.
    Run {
        #[command(flatten)]
        inputs: Inputs,
        /// Stages run at once. Default: one per CPU core on `cpu` (each stage
        /// computes on one thread, see `RAYON_NUM_THREADS` in the README), 1 on CUDA.
        #[arg(long)]
        jobs: Option<usize>,
        /// Keep running branches that do not depend on a failed stage.
        #[arg(long)]
        keep_going: bool,
        /// `cpu` or `cuda:N` (needs the `cuda` feature).
        #[arg(long, default_value = "cpu")]
        device: String,
        #[command(flatten)]
        executor: ExecutorArgs,
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
        #[command(flatten)]
        executor: ExecutorArgs,
        /// With `--executor slurm`: print the sbatch scripts a run would submit.
        #[arg(long)]
        dry_run: bool,
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
        #[command(flatten)]
        executor: ExecutorArgs,
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
    /// Look at the synthetic world of the tiny profile.
    World {
        #[command(subcommand)]
        command: WorldCommand,
    },
    /// Look at what a model computes: an HF dir, a GGUF file, or a checkpoint of ours.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Look at a real dataset file as the paper profile loads it.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// What a Slurm job runs (internal).
    #[command(hide = true)]
    Stage {
        #[command(subcommand)]
        command: StageCommand,
    },
}

#[derive(Subcommand)]
enum StageCommand {
    /// Compute stage KEY from the spec the controller wrote under the cache.
    Exec {
        key: String,
        /// The cache root (`<results>/cache`).
        #[arg(long)]
        cache: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Token ids, sum and mean log-prob of TEXT, and the 10 likeliest next tokens.
    Logprob {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        text: String,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Continue PROMPT (greedy unless --temperature > 0).
    Generate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Rows kept, filtered and bad, length percentiles, two decoded examples.
    Inspect {
        /// Format: hh-rlhf, ufb, tldr, shp (see `docs/paper-profile.md`).
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        path: PathBuf,
        /// Count lengths in this model's tokens (HF dir or GGUF) and apply the paper's filter.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorldCommand {
    /// Per family: pair counts, token lengths, human-vs-gold agreement,
    /// the gold-gap distribution and a few decoded examples.
    Stats {
        /// Profile whose `[world]` to describe: `tiny` or a profile TOML file.
        #[arg(long, default_value = "tiny")]
        profile: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    one_compute_thread_per_stage();
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
        Command::World {
            command: WorldCommand::Stats { profile, json },
        } => world_stats(&profile, json),
        Command::Model { command } => model_command(command),
        Command::Data {
            command:
                DataCommand::Inspect {
                    dataset,
                    path,
                    tokenizer,
                    json,
                },
        } => {
            let tokenizer = match tokenizer {
                Some(p) => {
                    Some(cwpo::model::probe::load_lm(&p, &candle_core::Device::Cpu)?.tokenizer)
                }
                None => None,
            };
            let report = cwpo::data::real::inspect::inspect_dataset(
                &dataset,
                &path,
                tokenizer.as_ref().map(|t| t as &dyn cwpo::data::Tokenizer),
            )?;
            print_report(&report, json)
        }
        Command::Run {
            inputs,
            jobs,
            keep_going,
            device,
            executor,
        } => {
            let jobs = jobs.unwrap_or_else(|| default_jobs(&device));
            run(&inputs, jobs, keep_going, &device, &executor)
        }
        Command::Plan {
            inputs,
            executor,
            dry_run: true,
            ..
        } => {
            if executor.executor != Executor::Slurm {
                bail!("--dry-run prints the sbatch scripts of `--executor slurm`; add it");
            }
            let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
            let opts = slurm_options(&inputs, &executor, false, "cpu", 1)?;
            let cache = open_if_exists(&inputs.results)?;
            let root = Cache::root_of(&inputs.results);
            print!(
                "{}",
                exec::slurm::dry_run(&plan, cache.as_ref(), &root, &opts)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            inputs, json, dot, ..
        } => show_plan(&inputs, json, dot.as_deref()),
        Command::Stage {
            command: StageCommand::Exec { key, cache },
        } => {
            exec::slurm::worker::exec_stage(&cache, &key)?;
            Ok(ExitCode::SUCCESS)
        }
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
        Command::Validate { inputs, executor } => {
            let (plan, experiments) = plan::compile(&inputs.paths, &inputs.profile)?;
            if executor.executor == Executor::Slurm {
                slurm_options(&inputs, &executor, false, "cpu", 1)?;
            }
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

/// `--executor slurm`'s options, validated: the settings (exit 2 at their
/// `file:line:col`) and an absolute results dir, which every node must see.
fn slurm_options(
    inputs: &Inputs,
    executor: &ExecutorArgs,
    keep_going: bool,
    device: &str,
    jobs: usize,
) -> Result<exec::slurm::SlurmOptions> {
    let settings =
        exec::slurm::SlurmSettings::load(&inputs.profile, executor.executor_config.as_deref())?;
    if !inputs.results.is_absolute() {
        let mut errors = Diagnostics::default();
        errors.push(cwpo::manifest::diagnostic::Diagnostic::file(
            &inputs.results,
            "--executor slurm needs an absolute --results dir on a filesystem every node sees \
             (Slurm jobs run elsewhere, in other working dirs)",
        ));
        return Err(errors.into());
    }
    let binary = match &settings.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating the sweep binary for the jobs")?,
    };
    Ok(exec::slurm::SlurmOptions {
        settings,
        keep_going,
        device: device.to_string(),
        jobs,
        binary,
    })
}

fn run(
    inputs: &Inputs,
    jobs: usize,
    keep_going: bool,
    device_name: &str,
    executor: &ExecutorArgs,
) -> Result<ExitCode> {
    // Everything is validated before the cache is touched.
    let device = parse_device(device_name)?;
    let (plan, _) = plan::compile(&inputs.paths, &inputs.profile)?;
    let slurm = match executor.executor {
        Executor::Slurm => Some(slurm_options(
            inputs,
            executor,
            keep_going,
            device_name,
            jobs,
        )?),
        Executor::Local => None,
    };
    let cache = Cache::open(&inputs.results)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let summary = match &slurm {
        Some(opts) => exec::slurm::run(&plan, &cache, opts, &cancel)?,
        None => exec::run(
            &plan,
            &cache,
            &RunOptions {
                jobs,
                keep_going,
                device,
            },
            &cancel,
        )?,
    };
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

fn world_stats(profile: &str, json: bool) -> Result<ExitCode> {
    let profile = cwpo::profile::Profile::load(profile)?;
    let config: cwpo::data::synthetic::WorldConfig =
        serde_json::from_value(serde_json::Value::Object(profile.world.clone()))
            .context("the profile's [world] does not match the world's settings")?;
    print_report(&cwpo::data::synthetic::stats::world_stats(&config)?, json)
}

/// The tiny models of the default profile are far too small for a thread
/// pool to pay off: candle's CPU kernels spend their time waking threads, and
/// one thread per stage measured 3.5× faster than two (BENCHMARKS.md). So
/// unless the user chose, each stage computes on one thread and `--jobs`
/// runs stages side by side instead.
fn one_compute_thread_per_stage() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none()
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // SAFETY: called first thing in `main`, before any thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

/// One stage per core on CPU (see [`one_compute_thread_per_stage`]); one at a time on a GPU.
fn default_jobs(device: &str) -> usize {
    if device == "cpu" {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

fn model_command(command: ModelCommand) -> Result<ExitCode> {
    use cwpo::model::probe::{model_generate, model_logprob};
    match command {
        ModelCommand::Logprob {
            model,
            text,
            device,
            json,
        } => print_report(
            &model_logprob(&model, &text, &parse_device(&device)?)?,
            json,
        ),
        ModelCommand::Generate {
            model,
            prompt,
            temperature,
            top_p,
            max_new_tokens,
            seed,
            device,
        } => {
            let sampling = cwpo::model::SamplingConfig {
                temperature,
                top_p,
                max_new_tokens,
                batch_size: 1,
                seed,
            };
            println!(
                "{}",
                model_generate(&model, &prompt, &sampling, &parse_device(&device)?)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints a report as JSON or as its human-readable table.
fn print_report<T: serde::Serialize + std::fmt::Display>(
    report: &T,
    json: bool,
) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
