//! Exec: runs a plan against the cache in topological order.
//!
//! Cached nodes whose artifacts still match their record are skipped (the
//! quick check: a file whose size and mtime are unchanged is trusted, any
//! other is hashed, see [`crate::cache::check`]); a mismatch is reported and
//! the node re-runs. Up to `--jobs` stages run at
//! once on worker threads; results are committed by the scheduler thread
//! only, so a cancelled or killed run never records an unfinished stage; a
//! stage whose results cannot be recorded (a full disk) fails like any
//! other and leaves nothing half-recorded. A
//! failing stage blocks its descendants; without `--keep-going` nothing new
//! starts after a failure.
//!
//! Training stages save checkpoints in their partial dir
//! ([`crate::cache::partial`]) as [`RunOptions::checkpoint_every`] says; a
//! re-run continues from them, and a recorded stage's partial dir goes. On
//! Ctrl-C the scheduler waits (up to [`CANCEL_GRACE`]) for running training
//! stages to save at their step boundary before it exits.
pub mod memory;
pub mod progress;
pub mod results;
pub mod slurm;
pub mod why;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::Dfs;

use crate::cache::partial::partial_dir;
use crate::cache::{Cache, CacheRead, LOG_FILE};
use crate::plan::Plan;
use crate::stage::training::CHECKPOINTING_KINDS;
use crate::stage::{StageContext, StageOutcome, run_stage};
use crate::train::checkpoint::{CheckpointEvery, CheckpointPlace};
use progress::Display;

pub struct RunOptions {
    /// Stages run at once (1 on CPU: training already uses every core).
    pub jobs: usize,
    /// Let branches independent of a failed stage continue.
    pub keep_going: bool,
    pub device: candle_core::Device,
    /// How often training loops save their progress (not part of any key).
    pub checkpoint_every: CheckpointEvery,
}

/// How long a cancelled run waits for its training stages to save.
pub const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// A failed stage, for the exit message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub name: String,
    pub log: PathBuf,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    /// Names of the stages run (and committed) by this run.
    pub ran: Vec<String>,
    pub cached: usize,
    pub failed: Vec<Failure>,
    /// Stages not run because an input failed (or a failure stopped the run).
    pub skipped: usize,
    pub cancelled: bool,
}

/// Whether each node's result is in the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeState {
    Cached,
    /// Recorded, but the artifacts no longer match: re-run.
    Stale(String),
    ToRun,
}

/// The cache state of every node.
pub fn states(plan: &Plan, cache: &dyn CacheRead) -> Result<HashMap<NodeIndex, NodeState>> {
    let mut out = HashMap::new();
    for idx in plan.graph.node_indices() {
        let state = match cache.get(&plan.graph[idx].key)? {
            None => NodeState::ToRun,
            Some(rec) => match cache.verify(&rec) {
                Ok(()) => NodeState::Cached,
                Err(reason) => NodeState::Stale(reason),
            },
        };
        out.insert(idx, state);
    }
    Ok(out)
}

/// A run's first step, whatever the executor: each node of `plan` as the
/// executor's slot, `pending()` where it must run and `done()` where it is
/// cached (see [`needs_run`]); the summary so far; and the display,
/// counting the nodes to run.
pub(crate) fn first_slots<S>(
    plan: &Plan,
    cache: &Cache,
    pending: impl Fn() -> S,
    done: impl Fn() -> S,
) -> Result<(RunSummary, HashMap<NodeIndex, S>, Display)> {
    let mut summary = RunSummary::default();
    let runs = needs_run(plan, cache, &mut summary)?;
    let display = Display::new(runs.values().filter(|&&run| run).count() as u64);
    let slots = runs
        .into_iter()
        .map(|(idx, run)| (idx, if run { pending() } else { done() }))
        .collect();
    Ok((summary, slots, display))
}

/// Whether each node of `plan` must run: cached nodes are counted in
/// `summary`; a stale one is warned about and dropped from the cache, so
/// it re-runs.
fn needs_run(
    plan: &Plan,
    cache: &Cache,
    summary: &mut RunSummary,
) -> Result<HashMap<NodeIndex, bool>> {
    let mut out = HashMap::new();
    for (idx, state) in states(plan, cache)? {
        let run = match state {
            NodeState::Cached => {
                summary.cached += 1;
                false
            }
            NodeState::Stale(reason) => {
                eprintln!("warning: {}: {reason}; re-running it", plan.graph[idx].name);
                if let Some(rec) = cache.get(&plan.graph[idx].key)? {
                    cache.remove(&rec)?;
                }
                true
            }
            NodeState::ToRun => true,
        };
        out.insert(idx, run);
    }
    Ok(out)
}

enum Slot {
    Pending,
    Running { tmp: PathBuf, kind: String },
    Done,
    Failed,
    Blocked,
}

/// Runs every node of `plan` not yet in `cache`.
pub fn run(
    plan: &Plan,
    cache: &Cache,
    opts: &RunOptions,
    cancel: &Arc<AtomicBool>,
) -> Result<RunSummary> {
    let (mut summary, mut slots, display) =
        first_slots(plan, cache, || Slot::Pending, || Slot::Done)?;
    let order = plan.topological();
    let (tx, rx) = mpsc::channel::<(NodeIndex, f64, Instant, Result<StageOutcome>)>();
    let mut bars: HashMap<NodeIndex, Arc<progress::StageProgress>> = HashMap::new();
    let mut stop_scheduling = false;

    loop {
        if cancel.load(Ordering::Relaxed) {
            // Ctrl-C: training stages save at their next step boundary and
            // stop; wait for them a while. Then abandon every running stage
            // (temp dirs go, nothing is recorded; partial dirs stay).
            let deadline = Instant::now() + CANCEL_GRACE;
            while Instant::now() < deadline
                && slots.values().any(|s| {
                    matches!(s, Slot::Running { kind, .. } if CHECKPOINTING_KINDS.contains(&kind.as_str()))
                })
            {
                if let Ok((idx, ..)) = rx.recv_timeout(Duration::from_millis(100)) {
                    if let Some(Slot::Running { tmp, .. }) = slots.remove(&idx) {
                        let _ = std::fs::remove_dir_all(tmp);
                    }
                    slots.insert(idx, Slot::Pending);
                    if let Some(bar) = bars.remove(&idx) {
                        close_bar(&display, bar);
                    }
                }
            }
            for slot in slots.values() {
                if let Slot::Running { tmp, .. } = slot {
                    let _ = std::fs::remove_dir_all(tmp);
                }
            }
            summary.cancelled = true;
            break;
        }
        // Start every ready node, up to `jobs` at once.
        let running = slots
            .values()
            .filter(|s| matches!(s, Slot::Running { .. }))
            .count();
        let mut free = opts.jobs.max(1).saturating_sub(running);
        for &idx in &order {
            if free == 0 || stop_scheduling || cancel.load(Ordering::Relaxed) {
                break;
            }
            if !matches!(slots[&idx], Slot::Pending) {
                continue;
            }
            let ready = plan
                .graph
                .neighbors_directed(idx, Direction::Incoming)
                .all(|i| matches!(slots[&i], Slot::Done));
            if !ready {
                continue;
            }
            let node = plan.graph[idx].clone();
            let tmp = cache.begin(&node.key)?;
            let inputs: BTreeMap<String, PathBuf> = node
                .inputs
                .iter()
                .map(|(role, key)| {
                    let rec = cache
                        .get(key)?
                        .ok_or_else(|| anyhow!("input {key} of {} has no record", node.name))?;
                    Ok((role.clone(), cache.artifact_dir(&rec)))
                })
                .collect::<Result<_>>()?;
            let bar = Arc::new(display.stage(&node.name, &tmp.join(LOG_FILE))?);
            bars.insert(idx, bar.clone());
            let place = CheckpointPlace {
                dir: partial_dir(cache.root(), &node.key),
                stage: node.name.clone(),
                every: opts.checkpoint_every,
            };
            let (tx, cancel, device, out_dir) =
                (tx.clone(), cancel.clone(), opts.device.clone(), tmp.clone());
            let started_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            std::thread::spawn(move || {
                let started = Instant::now();
                let ctx = StageContext {
                    params: &node.params,
                    inputs: &inputs,
                    out_dir: &out_dir,
                    device: &device,
                    progress: bar.as_ref(),
                    cancel: &cancel,
                    checkpoint: Some(&place),
                };
                let result = on_own_compute_threads(|| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_stage(&node.kind, &ctx)
                    }))
                    .unwrap_or_else(|panic| Err(anyhow!("stage panicked: {}", panic_text(&panic))))
                });
                drop(bar); // the scheduler takes the bar back once the result arrives
                let _ = tx.send((idx, started_unix, started, result));
            });
            slots.insert(
                idx,
                Slot::Running {
                    tmp,
                    kind: plan.graph[idx].kind.clone(),
                },
            );
            free -= 1;
        }

        let running = slots
            .values()
            .filter(|s| matches!(s, Slot::Running { .. }))
            .count();
        if running == 0 {
            break;
        }
        let (idx, started_unix, started, result) = match rx.recv_timeout(Duration::from_millis(100))
        {
            Ok(msg) => msg,
            Err(_) => continue,
        };
        let Some(Slot::Running { tmp, .. }) = slots.remove(&idx) else {
            unreachable!("a result comes from a running stage")
        };
        let node = &plan.graph[idx];
        let bar = bars.remove(&idx).expect("bar of a running stage");
        let seconds = started.elapsed().as_secs_f64();
        // A stage that failed and one whose result could not be recorded
        // end alike: its dir kept under failed/, its dependents blocked.
        let recorded = match result {
            Ok(outcome) => {
                close_bar(&display, bar);
                cache
                    .commit(node, &tmp, started_unix, seconds, outcome.metrics)
                    .map_err(|err| err.context("recording the finished stage"))
            }
            Err(err) => {
                use crate::stage::Progress;
                bar.log(&format!("error: {err:#}"));
                close_bar(&display, bar);
                Err(err)
            }
        };
        match recorded {
            Ok(_) => {
                // Recorded: its checkpoints are no longer needed.
                let partial = partial_dir(cache.root(), &node.key);
                if partial.exists() {
                    let _ = std::fs::remove_dir_all(&partial);
                }
                display.ended(&format!("done   {} ({seconds:.1}s)", node.name));
                summary.ran.push(node.name.clone());
                slots.insert(idx, Slot::Done);
            }
            Err(err) => {
                let log = cache
                    .fail(&node.key, &tmp)
                    .unwrap_or_else(|_| tmp.join(LOG_FILE));
                fail(
                    &mut summary,
                    &mut slots,
                    plan,
                    idx,
                    seconds,
                    err,
                    log,
                    &display,
                );
                stop_scheduling |= !opts.keep_going;
            }
        }
    }
    summary.cancelled |= cancel.load(Ordering::Relaxed);
    summary.skipped = slots
        .values()
        .filter(|s| matches!(s, Slot::Pending | Slot::Blocked))
        .count();
    display.done();
    Ok(summary)
}

/// Marks `idx` failed and every stage downstream of it blocked.
#[allow(clippy::too_many_arguments)]
fn fail(
    summary: &mut RunSummary,
    slots: &mut HashMap<NodeIndex, Slot>,
    plan: &Plan,
    idx: NodeIndex,
    seconds: f64,
    err: anyhow::Error,
    log: PathBuf,
    display: &Display,
) {
    let node = &plan.graph[idx];
    display.ended(&format!("FAILED {} ({seconds:.1}s): {err:#}", node.name));
    summary.failed.push(Failure {
        name: node.name.clone(),
        log,
        error: format!("{err:#}"),
    });
    slots.insert(idx, Slot::Failed);
    let mut dfs = Dfs::new(&plan.graph, idx);
    while let Some(d) = dfs.next(&plan.graph) {
        if d != idx && matches!(slots[&d], Slot::Pending) {
            slots.insert(d, Slot::Blocked);
        }
    }
}

/// Closes a finished stage's bar and log; the worker thread dropped its
/// handle before sending the result, so this is the last one.
fn close_bar(display: &Display, bar: Arc<progress::StageProgress>) {
    match Arc::try_unwrap(bar) {
        Ok(bar) => display.close(bar),
        Err(_) => unreachable!("the worker drops its progress handle before reporting"),
    }
}

/// The environment variable that sets how long candle's element-wise
/// workers spin, waiting for the next op, before they sleep.
const CANDLE_SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Makes candle's element-wise workers sleep as soon as an op is done,
/// unless the user set `CANDLE_BARRIER_POOL_SPIN_LIMIT`.
///
/// Why: with more than one thread, candle 0.11 runs large element-wise ops
/// on a pool of its own beside rayon's, whose workers spin 25,000 rounds
/// after every op. Between two such ops a step runs matmuls and kernels on
/// rayon's threads, so on 2 cores the spinning worker takes a core from
/// them: in a 2-thread training step of the tiny decoder it burned 16% of
/// all samples, and sleeping at once took the step from 12.2–13.5k to
/// 14.1–15.2k tokens/s (BENCHMARKS.md, "Parity with PyTorch at 1 and 2
/// threads"). With one thread
/// that pool has no workers and nothing changes. Numbers do not change
/// either: the same ops compute the same values; only the waiting differs.
///
/// # Safety
/// Sets an environment variable: call it first thing in `main`, before
/// any other thread exists.
pub unsafe fn idle_candle_workers_sleep() {
    if std::env::var_os(CANDLE_SPIN_LIMIT).is_none() {
        // SAFETY: the caller promises no other thread exists yet.
        unsafe { std::env::set_var(CANDLE_SPIN_LIMIT, "0") };
    }
}

/// Runs `work` (one stage) on a rayon pool of its own, as many threads as
/// the global pool has (`RAYON_NUM_THREADS`: 1 per stage unless the user
/// chose, see `main`).
///
/// Why: stages run side by side on threads of this process, and a rayon
/// call from a thread outside a pool hands its work to the global pool and
/// waits. With one global worker, two stages queued every kernel and
/// softmax on that one thread: a cold `sweep run experiments/` kept two
/// stages running yet used 1.44 of the 2 cores, with 5.8 million context
/// switches (BENCHMARKS.md, "One rayon pool per stage"). Inside its own
/// pool a stage's rayon calls run where it runs. The thread count, and so
/// every number, is the same as before. If the pool cannot be built, the
/// stage runs as before.
pub fn on_own_compute_threads<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .thread_name(|i| format!("sweep-stage-compute-{i}"))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::on_own_compute_threads;
    use rayon::prelude::*;

    /// A stage's rayon calls run on its own pool's threads, never on the
    /// global pool's workers (which two stages would share), with as many
    /// threads as the global pool has.
    #[test]
    fn a_stage_computes_inside_a_rayon_pool_of_its_own() {
        let global = rayon::current_num_threads();
        let names = |stage: usize| {
            on_own_compute_threads(|| {
                let threads = rayon::current_num_threads();
                let mut names: Vec<String> = (0..64)
                    .into_par_iter()
                    .map(|_| std::thread::current().name().unwrap_or("?").to_string())
                    .collect();
                names.sort();
                names.dedup();
                (stage, threads, names)
            })
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| names(0));
            let b = s.spawn(|| names(1));
            (a.join().unwrap(), b.join().unwrap())
        });
        for (stage, threads, names) in [a, b] {
            assert_eq!(threads, global, "stage {stage}");
            assert!(
                names.iter().all(|n| n.starts_with("sweep-stage-compute-")),
                "stage {stage} ran rayon work on {names:?}"
            );
        }
    }
}
