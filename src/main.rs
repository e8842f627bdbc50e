//! `sweep`: the CLI. Parses arguments, calls the `cwpo` library, and maps
//! the outcome to exit codes: 0 ok, 1 a stage (or the runner) failed, 2 bad input.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use cwpo::cache::Cache;
use cwpo::cache::snapshot::Snapshot;
use cwpo::commands::{self, SlurmRun, open_if_exists};
use cwpo::device::parse_device;
use cwpo::exec::{self, RunOptions};
use cwpo::plan;
use cwpo::report::stamp::Render;
use cwpo::spec::Diagnostics;
use cwpo::train::checkpoint::CheckpointEvery;

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
    /// Profile: `tiny` (default, embedded), `paper`, `smollm2` (real-model smoke run), or a profile TOML file.
    #[arg(long, default_value = "tiny")]
    profile: String,
    /// Results dir; the cache lives in `<results>/cache`.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Refuse (exit 2) to plan more stages than this [default: $SWEEP_MAX_STAGES, else 100000].
    #[arg(long, value_name = "N")]
    max_stages: Option<usize>,
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

/// How often training stages save their progress (execution only: it
/// changes no cache key and no result).
#[derive(Args, Clone)]
struct CheckpointArgs {
    /// Save a training checkpoint every N optimiser steps (0: by time only).
    #[arg(long, default_value_t = CheckpointEvery::default().steps)]
    checkpoint_steps: usize,
    /// ... and at least every M minutes of training.
    #[arg(long, default_value_t = CheckpointEvery::default().interval.as_secs_f64() / 60.0)]
    checkpoint_minutes: f64,
}

impl CheckpointArgs {
    fn every(&self) -> Result<CheckpointEvery> {
        if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes > 0.0) {
            bail!(
                "--checkpoint-minutes {} must be a positive number of minutes",
                self.checkpoint_minutes
            );
        }
        Ok(CheckpointEvery {
            steps: self.checkpoint_steps,
            interval: std::time::Duration::from_secs_f64(self.checkpoint_minutes * 60.0),
        })
    }
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
        #[command(flatten)]
        checkpoint: CheckpointArgs,
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
    /// What the cache holds, per stage kind, and the unfinished stages' saved progress.
    Status {
        #[arg(long, default_value = "results")]
        results: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild every report from the cache only (runs nothing); `sweep run`
    /// rebuilds only those whose inputs changed.
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
    /// Hash every cached file in full; drop records whose files changed (they re-run).
    Verify {
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Look after the cache itself.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
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
enum CacheCommand {
    /// Rebuild the index from the record files in the artifact dirs,
    /// hashing every file; untrusted dirs move to `failed/`.
    Repair {
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Per TEXT: token ids, sum and mean log-prob, and the 10 likeliest next tokens.
    Logprob {
        #[arg(long)]
        model: PathBuf,
        /// Repeat to score several texts with one load of the model.
        #[arg(long, required = true)]
        text: Vec<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// `f32` or `bf16` (bf16 compute, f32 master weights). Default: bf16 on a GPU, f32 on the CPU.
        #[arg(long)]
        dtype: Option<String>,
        /// One JSON object per text, one a line.
        #[arg(long)]
        json: bool,
    },
    /// Write a randomly initialised model of a real architecture as an HF dir
    /// (to check a machine where the real weights are not at hand).
    Init {
        #[arg(long, value_enum)]
        preset: cwpo::model::preset::Preset,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Time DPO training steps (full fine-tune) on random tokens: tokens/s and MFU.
    Bench {
        #[arg(long)]
        model: PathBuf,
        /// Preference pairs per step.
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Tokens per sequence (half prompt, half response).
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// `f32` or `bf16`. Default: bf16 on a GPU, f32 on the CPU.
        #[arg(long)]
        dtype: Option<String>,
        /// The device's dense peak TFLOP/s in this dtype, for the MFU (H100 SXM / H200 bf16: 989).
        #[arg(long)]
        peak_tflops: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
    /// Write one family's pairs as HH-RLHF files (human labels), plus
    /// gold-labelled pairs for a learned judge (the `smollm2` profile's data).
    ExportHh {
        /// Profile whose `[world]` generates them: `tiny` or a profile TOML file.
        #[arg(long, default_value = "tiny")]
        profile: String,
        #[arg(long, default_value = "hh-rlhf")]
        family: String,
        /// Human-labelled training pairs (the world's `n_pairs`).
        #[arg(long)]
        pairs: usize,
        /// Test prompts (the world's `n_test_prompts`).
        #[arg(long)]
        test_prompts: usize,
        /// Gold-labelled pairs to train the judge on, and held out for its agreement.
        #[arg(long)]
        gold_pairs: usize,
        #[arg(long)]
        gold_valid_pairs: usize,
        /// Writes <OUT>/<family>/{train,test}.jsonl and <OUT>/gold/{train,valid}.jsonl.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    one_compute_thread_per_stage();
    // SAFETY: first thing in `main`, before any thread exists.
    unsafe { cwpo::exec::idle_candle_workers_sleep() };
    let cli = Cli::parse();
    if trains_real_models(&cli.command) {
        // Before any thread allocates: see `exec::memory`.
        cwpo::exec::memory::keep_freed_memory();
    }
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
        Command::World {
            command:
                WorldCommand::ExportHh {
                    profile,
                    family,
                    pairs,
                    test_prompts,
                    gold_pairs,
                    gold_valid_pairs,
                    out,
                },
        } => {
            let mut world = profile_world(&profile)?;
            (world.n_pairs, world.n_test_prompts) = (pairs, test_prompts);
            use cwpo::data::synthetic::hh_layout::{export_family, write_export};
            let export = export_family(&world, &family, gold_pairs, gold_valid_pairs)?;
            for line in write_export(&out, &family, &export)? {
                println!("wrote {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
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
            let report =
                cwpo::data::real::inspect::inspect_dataset(&dataset, &path, tokenizer.as_deref())?;
            print_report(&report, json)
        }
        Command::Run {
            inputs,
            jobs,
            keep_going,
            device,
            executor,
            checkpoint,
        } => {
            let jobs = jobs.unwrap_or_else(|| default_jobs(&device));
            run(
                &inputs,
                jobs,
                keep_going,
                &device,
                &executor,
                checkpoint.every()?,
            )
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
            let (plan, _) =
                plan::compile_limited(&inputs.paths, &inputs.profile, inputs.max_stages)?;
            let opts = slurm_options(&inputs, &executor, false, "cpu", 1)?;
            let cache = Snapshot::open(&inputs.results)?;
            let root = Cache::root_of(&inputs.results);
            print!("{}", exec::slurm::dry_run(&plan, &cache, &root, &opts)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            inputs, json, dot, ..
        } => show_plan(&inputs, json, dot.as_deref()),
        Command::Stage {
            command: StageCommand::Exec { key, cache },
        } => {
            // Slurm sends SIGTERM before a time limit (`--signal`) or on
            // preemption: training loops save, and the resubmitted job resumes.
            let cancel = Arc::new(AtomicBool::new(false));
            let flag = cancel.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
                .context("installing the SIGTERM/SIGINT handler")?;
            exec::slurm::worker::exec_stage(&cache, &key, &cancel)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Why { stage, inputs } => {
            let (plan, _) =
                plan::compile_limited(&inputs.paths, &inputs.profile, inputs.max_stages)?;
            let Some(node) = plan.find(&stage) else {
                bail!(
                    "no stage named `{stage}` in this plan (or the key prefix is ambiguous); `sweep plan --json` lists them"
                );
            };
            let cache = Snapshot::open(&inputs.results)?;
            print!("{}", exec::why::explain(&plan, &cache, node)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { results, json } => status(&results, json),
        Command::Verify { results } => {
            let verified = commands::verify(&results)?;
            println!("{verified}");
            Ok(ExitCode::from(u8::from(!verified.dropped.is_empty())))
        }
        Command::Cache {
            command: CacheCommand::Repair { results },
        } => {
            print!("{}", commands::repair_cache(&results)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { inputs } => {
            let (plan, _) =
                plan::compile_limited(&inputs.paths, &inputs.profile, inputs.max_stages)?;
            let cache = Snapshot::open(&inputs.results)?;
            exec::results::write_reports(&plan, &cache, &inputs.results, Render::Always)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { inputs, executor } => {
            let validation = commands::validate(&inputs.paths, &inputs.profile, inputs.max_stages)?;
            if executor.executor == Executor::Slurm {
                slurm_options(&inputs, &executor, false, "cpu", 1)?;
            }
            if !validation.ok() {
                eprintln!("{validation}");
                return Ok(ExitCode::from(2));
            }
            println!("{validation}");
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

/// `--executor slurm`'s options for these flags ([`commands::slurm_options`]).
fn slurm_options(
    inputs: &Inputs,
    executor: &ExecutorArgs,
    keep_going: bool,
    device: &str,
    jobs: usize,
) -> Result<exec::slurm::SlurmOptions> {
    commands::slurm_options(&SlurmRun {
        profile: &inputs.profile,
        executor_config: executor.executor_config.as_deref(),
        results: &inputs.results,
        keep_going,
        device,
        jobs,
    })
}

fn run(
    inputs: &Inputs,
    jobs: usize,
    keep_going: bool,
    device_name: &str,
    executor: &ExecutorArgs,
    checkpoint_every: CheckpointEvery,
) -> Result<ExitCode> {
    // Everything is validated before the cache is touched.
    let device = parse_device(device_name)?;
    let (plan, _) = plan::compile_limited(&inputs.paths, &inputs.profile, inputs.max_stages)?;
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
                checkpoint_every,
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
        eprintln!(
            "cancelled: unfinished stages were discarded (training stages saved a checkpoint first); \
             `sweep run` again resumes"
        );
        return Ok(ExitCode::from(130));
    }
    // Failures first: writing the reports can fail for the same reason (a full disk).
    for f in &summary.failed {
        eprintln!(
            "error: stage {} failed: {}\n  log: {}",
            f.name,
            f.error,
            f.log.display()
        );
    }
    exec::results::write_reports(&plan, &cache, &inputs.results, Render::Changed)?;
    Ok(ExitCode::from(u8::from(!summary.failed.is_empty())))
}

fn show_plan(inputs: &Inputs, json: bool, dot: Option<&Path>) -> Result<ExitCode> {
    let (plan, _) = plan::compile_limited(&inputs.paths, &inputs.profile, inputs.max_stages)?;
    let cache = Snapshot::open(&inputs.results)?;
    print_report(&commands::plan_summary(&plan, &cache)?, json)?;
    if let Some(path) = dot {
        let text = commands::plan_dot(&plan, &cache)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status(results: &Path, json: bool) -> Result<ExitCode> {
    let cache = Snapshot::open(results)?;
    if !cache.exists() {
        println!("no cache under {}", results.display());
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&commands::cache_status(&cache)?, json)
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
    let keep = if paths.is_empty() {
        None
    } else {
        Some(plan::compile(paths, profile)?.0)
    };
    let Some(cache) = open_if_exists(results)? else {
        println!("no cache under {}", results.display());
        return Ok(ExitCode::SUCCESS);
    };
    for line in commands::gc(keep.as_ref(), &cache, dry_run)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn world_stats(profile: &str, json: bool) -> Result<ExitCode> {
    let config = profile_world(profile)?;
    print_report(&cwpo::data::synthetic::stats::world_stats(&config)?, json)
}

/// The synthetic world of profile `name` (its `[world]`).
fn profile_world(name: &str) -> Result<cwpo::data::synthetic::WorldConfig> {
    let profile = cwpo::profile::Profile::load(name)?;
    cwpo::data::synthetic::WorldConfig::from_json(&serde_json::Value::Object(profile.world))
        .context("the profile's [world]")
}

/// Whether `command` computes stages of real-size models, whose 100 MB
/// tensors are worth keeping freed memory for (`exec::memory`): a run on
/// any profile but the embedded `tiny` one, and a Slurm job's stage. The
/// tiny profile's stages allocate many small tensors, two stages at once,
/// and one shared arena made a seed-0 Table 1 6–13% slower (BENCHMARKS.md,
/// "Freed memory kept").
fn trains_real_models(command: &Command) -> bool {
    match command {
        Command::Run { inputs, .. } => inputs.profile != "tiny",
        Command::Stage { .. } => true,
        _ => false,
    }
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
    use cwpo::model::probe::{load_lm_in, model_generate, model_logprobs};
    use cwpo::train::dpo_bench::{BenchConfig, dpo_step_bench};
    match command {
        ModelCommand::Logprob {
            model,
            text,
            device,
            dtype,
            json,
        } => {
            let device = parse_device(&device)?;
            let texts: Vec<&str> = text.iter().map(String::as_str).collect();
            let reports = model_logprobs(&model, &texts, &device, precision(&device, dtype)?)?;
            for report in &reports {
                match json {
                    true => println!("{}", serde_json::to_string(report)?),
                    false => println!("{report}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Init { preset, seed, out } => {
            cwpo::model::preset::write_random_model(preset, seed, &out)?;
            println!(
                "wrote a random {preset:?} model (seed {seed}) to {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Bench {
            model,
            pairs,
            tokens,
            steps,
            warmup,
            device,
            dtype,
            peak_tflops,
            seed,
            json,
        } => {
            let device = parse_device(&device)?;
            let config = BenchConfig {
                pairs,
                tokens,
                steps,
                warmup,
                precision: precision(&device, dtype)?,
                seed,
                peak_tflops,
            };
            let lm = load_lm_in(&model, &device, cwpo::model::Precision::F32)?;
            let report = dpo_step_bench(&lm.policy, &device, &config)?;
            match json {
                true => println!("{}", serde_json::to_string(&report)?),
                false => println!("{report}"),
            }
            Ok(ExitCode::SUCCESS)
        }
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

/// `--dtype` as given, or the device's default.
fn precision(
    device: &candle_core::Device,
    dtype: Option<String>,
) -> Result<cwpo::model::Precision> {
    match dtype {
        Some(text) => text.parse(),
        None => Ok(cwpo::model::Precision::for_device(
            device,
            candle_core::DType::F32,
        )),
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
