//! The Slurm executor (`sweep run --executor slurm`): the same DAG, cache
//! keys and results as the local executor, each stage computed by a Slurm
//! job.
//!
//! The controller (this module) holds the cache's lock and index. A stage is
//! submitted once every input is recorded (no `afterok` chains: see
//! BENCHMARKS.md for the measured hop times, and a restarted controller then
//! never has to untangle a half-submitted chain); its job runs
//! `sweep stage exec KEY --cache DIR` ([`worker`]), which writes the stage's
//! sealed artifact dir. Every `poll_interval` the controller makes ONE
//! `squeue` call for all jobs of the run ([`queue`]) and ingests every stage
//! whose record file appeared, after checking its checksums. The record file
//! is the truth of success; the job state only explains a failure.
//!
//! Cheap kinds listed in `controller_kinds` (by default dataset, split and
//! metric: [`settings::DEFAULT_CONTROLLER_KINDS`]) run beside the controller
//! as a child `sweep stage exec` (the same worker code), without queueing.
//!
//! - A job the cluster stopped (PREEMPTED, TIMEOUT, NODE_FAIL, or one that
//!   stopped itself on `--signal`'s SIGTERM: [`queue::interrupted`]) is
//!   resubmitted up to `requeue` times and resumes from its stage's partial
//!   dir; the log says so.
//! - A failed, cancelled or out-of-memory job, or an interrupted one past
//!   `requeue`, fails its stage (after `retries` resubmissions of a failed
//!   one): the exit message names the
//!   stage, the job id, its state and its log; dependents are never
//!   submitted; without `--keep-going` nothing new is submitted and the
//!   jobs already in flight are waited for.
//! - Ctrl-C: one `scancel` for every job of the run, wait until they leave
//!   `squeue`, exit 130.
//! - A controller killed (even SIGKILL) and started again lists the run's
//!   jobs by name (`sweep-<run>-<key>`, [`sbatch`]): queued or running ones
//!   are waited for, not resubmitted; finished ones are ingested.
pub mod queue;
pub mod sbatch;
pub mod settings;
pub mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::Dfs;

use crate::cache::record::RECORD_FILE;
use crate::cache::{Cache, CacheRead, LOG_FILE, Record};
use crate::exec::{Failure, NodeState, RunSummary, first_slots, states};
use crate::plan::{Node, Plan};
use queue::Phase;
pub use settings::SlurmSettings;
use worker::StageSpec;

/// How a Slurm run is configured beyond its settings.
pub struct SlurmOptions {
    pub settings: SlurmSettings,
    pub keep_going: bool,
    /// `--device`, handed to every worker.
    pub device: String,
    /// Controller-side stages run at once.
    pub jobs: usize,
    /// The `sweep` binary the jobs run.
    pub binary: PathBuf,
}

/// Polls a job may stay `COMPLETED` (or gone without a known state) before
/// its missing record counts as a failure: a shared filesystem may show the
/// worker's rename a little late.
const GRACE_POLLS: u32 = 3;

enum Slot {
    Pending,
    /// A Slurm job of this run.
    Queued {
        job: String,
        since: Instant,
        unsettled_polls: u32,
    },
    /// A `controller_kinds` stage computing in a child process.
    Child {
        child: Child,
        since: Instant,
    },
    Done,
    Failed,
    Blocked,
}

impl Slot {
    fn in_flight(&self) -> bool {
        matches!(self, Slot::Queued { .. } | Slot::Child { .. })
    }
}

/// The sbatch scripts `sweep run --executor slurm` would submit for the
/// stages not yet cached (controller kinds are listed, not scripted).
pub fn dry_run(
    plan: &Plan,
    cache: &dyn CacheRead,
    cache_root: &Path,
    opts: &SlurmOptions,
) -> Result<String> {
    let states = states(plan, cache)?;
    let run = sbatch::run_id(cache_root);
    let mut out = String::new();
    for idx in plan.topological() {
        if states[&idx] == NodeState::Cached {
            continue;
        }
        let node = &plan.graph[idx];
        if opts.settings.in_controller(&node.kind) {
            out.push_str(&format!("# {}: runs on the controller\n\n", node.name));
        } else {
            out.push_str(&format!("# {}\n", node.name));
            out.push_str(&sbatch::script(
                node,
                &run,
                cache_root,
                &opts.binary,
                &opts.settings,
            ));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs every node of `plan` not yet in `cache` as Slurm jobs.
pub fn run(
    plan: &Plan,
    cache: &Cache,
    opts: &SlurmOptions,
    cancel: &Arc<AtomicBool>,
) -> Result<RunSummary> {
    let root = cache.root().to_path_buf();
    let run = sbatch::run_id(&root);
    let prefix = sbatch::job_prefix(&run);
    let (mut summary, mut slots, display) =
        first_slots(plan, cache, || Slot::Pending, || Slot::Done)?;

    // A controller started again: stages that finished meanwhile are
    // ingested, jobs of this run still queued or running adopted.
    for (&idx, slot) in slots.iter_mut() {
        let node = &plan.graph[idx];
        if matches!(slot, Slot::Pending) && record_written(&root, node) {
            match ingest(cache, &root, node) {
                Ok(_) => {
                    summary.ran.push(node.name.clone());
                    *slot = Slot::Done;
                }
                Err(e) => eprintln!("warning: {}: {e:#}; re-running it", node.name),
            }
        }
    }
    let mut adopted = 0;
    for job in queue::squeue(&prefix)? {
        let Some(&idx) = sbatch::key_of_job(&run, &job.name).and_then(|k| plan.by_key.get(k))
        else {
            continue;
        };
        if job.phase() == Phase::Active && matches!(slots[&idx], Slot::Pending) {
            slots.insert(
                idx,
                Slot::Queued {
                    job: job.id,
                    since: Instant::now(),
                    unsettled_polls: 0,
                },
            );
            adopted += 1;
        }
    }
    if adopted > 0 {
        eprintln!("{adopted} job(s) of this run are still queued or running: waiting for them");
    }

    // Slurm opens each job's output file there before the job starts.
    std::fs::create_dir_all(root.join("slurm/logs"))?;
    let order = plan.topological();
    let mut attempts: HashMap<NodeIndex, Attempts> = HashMap::new();
    let mut submitted = 0usize;
    let mut stop_submitting = false;
    loop {
        if cancel.load(Ordering::Relaxed) {
            cancel_all(&mut slots, &prefix, &root, plan)?;
            summary.cancelled = true;
            break;
        }
        // 1. Where every stage in flight stands: one squeue call for all jobs.
        let queued: Vec<NodeIndex> = slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Queued { .. }))
            .map(|(i, _)| *i)
            .collect();
        let jobs: HashMap<String, queue::Job> = if queued.is_empty() {
            HashMap::new()
        } else {
            match queue::squeue(&prefix) {
                Ok(jobs) => jobs.into_iter().map(|j| (j.id.clone(), j)).collect(),
                Err(err) => {
                    // A busy slurmctld times out now and then: ask again next poll.
                    eprintln!(
                        "warning: {err:#}; asking again in {:?}",
                        opts.settings.poll_interval
                    );
                    sleep_unless_cancelled(opts.settings.poll_interval, cancel);
                    continue;
                }
            }
        };
        let mut gone = Vec::new();
        let mut ended: Vec<(NodeIndex, Result<(), String>)> = Vec::new();
        for &idx in &queued {
            let node = &plan.graph[idx];
            let Slot::Queued { job, .. } = &slots[&idx] else {
                unreachable!()
            };
            if record_written(&root, node) {
                ended.push((idx, Ok(())));
                continue;
            }
            match jobs.get(job).map(queue::Job::phase) {
                Some(Phase::Active) => {}
                Some(Phase::Ended(state)) => ended.push((idx, Err(state))),
                Some(Phase::Completed) => gone.push((idx, Some("COMPLETED".to_string()))),
                None => gone.push((idx, None)),
            }
        }
        // Jobs slurmctld already forgot: one sacct call (accounting or the
        // job completion file) for their final states.
        let forgotten: Vec<String> = gone
            .iter()
            .filter(|(_, state)| state.is_none())
            .filter_map(|(idx, _)| match &slots[idx] {
                Slot::Queued { job, .. } => Some(job.clone()),
                _ => None,
            })
            .collect();
        let accounted = queue::sacct(&forgotten);
        for (idx, state) in gone {
            let Some(Slot::Queued {
                job,
                unsettled_polls,
                ..
            }) = slots.get_mut(&idx)
            else {
                unreachable!()
            };
            let state = state.or_else(|| accounted.get(job.as_str()).map(|j| j.state.clone()));
            match state.as_deref().map(queue::phase_of) {
                Some(Phase::Ended(state)) => ended.push((idx, Err(state))),
                _ => {
                    *unsettled_polls += 1;
                    if *unsettled_polls > GRACE_POLLS {
                        let why = match state {
                            Some(s) => format!("{s} without writing its record"),
                            None => {
                                "gone from squeue, final state unknown (no accounting), no record"
                                    .into()
                            }
                        };
                        ended.push((idx, Err(why)));
                    }
                }
            }
        }
        for (idx, slot) in slots.iter_mut() {
            if let Slot::Child { child, .. } = slot
                && let Some(status) = child.try_wait()?
            {
                let node = &plan.graph[*idx];
                ended.push((
                    *idx,
                    if record_written(&root, node) {
                        Ok(())
                    } else {
                        Err(format!("controller-side stage exited with {status}"))
                    },
                ));
            }
        }

        // 2. Ingest what finished; fail (or retry) what did not.
        for (idx, result) in ended {
            let node = &plan.graph[idx];
            let (job, since) = match slots.remove(&idx).expect("in flight") {
                Slot::Queued { job, since, .. } => (Some(job), since),
                Slot::Child { since, .. } => (None, since),
                _ => unreachable!("only stages in flight end"),
            };
            let result = result.and_then(|()| {
                ingest(cache, &root, node).map_err(|e| format!("its record was rejected: {e}"))
            });
            let took = since.elapsed().as_secs_f64();
            match result {
                Ok(rec) => {
                    let on = job
                        .as_ref()
                        .map_or("on the controller".into(), |j| format!("job {j}"));
                    display.ended(&format!(
                        "done   {} ({on}, {took:.1}s, compute {:.1}s)",
                        node.name, rec.duration_s
                    ));
                    summary.ran.push(node.name.clone());
                    slots.insert(idx, Slot::Done);
                }
                Err(mut state) => {
                    let interrupted = job.is_some()
                        && queue::interrupted(
                            &state,
                            worker::failed_dir(&root, &node.key)
                                .join(worker::INTERRUPTED_FILE)
                                .is_file(),
                        );
                    let so_far = attempts.entry(idx).or_default();
                    let again = resubmission(interrupted, so_far, &opts.settings);
                    if let (Some(again), Some(job)) = (again, &job) {
                        eprintln!("warning: {} (job {job}) ended {state}; {again}", node.name);
                        slots.insert(idx, Slot::Pending);
                        continue;
                    }
                    if interrupted {
                        state += &format!(
                            " after {} resubmission(s); `requeue` in [slurm] allows more",
                            so_far.requeues
                        );
                    }
                    let failure = describe_failure(&root, node, job.as_deref(), &state);
                    display.ended(&format!("FAILED {}: {}", node.name, failure.error));
                    summary.failed.push(failure);
                    slots.insert(idx, Slot::Failed);
                    block_dependents(plan, &mut slots, idx);
                    stop_submitting |= !opts.keep_going;
                }
            }
        }

        // 3. Submit every stage whose inputs are all recorded.
        let mut jobs_in_flight = slots
            .values()
            .filter(|s| matches!(s, Slot::Queued { .. }))
            .count();
        let mut children = slots
            .values()
            .filter(|s| matches!(s, Slot::Child { .. }))
            .count();
        for &idx in &order {
            if stop_submitting || cancel.load(Ordering::Relaxed) {
                break;
            }
            if !matches!(slots[&idx], Slot::Pending)
                || !plan
                    .graph
                    .neighbors_directed(idx, Direction::Incoming)
                    .all(|i| matches!(slots[&i], Slot::Done))
            {
                continue;
            }
            let node = &plan.graph[idx];
            let in_controller = opts.settings.in_controller(&node.kind);
            if (in_controller && children >= opts.jobs.max(1))
                || (!in_controller && jobs_in_flight >= opts.settings.max_jobs)
            {
                continue;
            }
            let spec = StageSpec::new(node, &input_records(cache, node)?, &opts.device);
            // A previous attempt's failure log would name the wrong cause.
            let _ = std::fs::remove_dir_all(worker::failed_dir(&root, &node.key));
            worker::write_spec(&root, &spec)?;
            let slot = if in_controller {
                children += 1;
                Slot::Child {
                    child: spawn_child(&opts.binary, &root, node)?,
                    since: Instant::now(),
                }
            } else {
                let script = sbatch::script(node, &run, &root, &opts.binary, &opts.settings);
                match queue::sbatch(&script) {
                    Ok(job) => {
                        jobs_in_flight += 1;
                        submitted += 1;
                        Slot::Queued {
                            job,
                            since: Instant::now(),
                            unsettled_polls: 0,
                        }
                    }
                    Err(err) => {
                        // Nothing was queued: the stage fails here, and so
                        // would its siblings (a bad partition, account, …).
                        let failure = Failure {
                            name: node.name.clone(),
                            log: worker::spec_path(&root, &node.key), // what was to be submitted
                            error: format!("{err:#}"),
                        };
                        display.ended(&format!("FAILED {}: {}", node.name, failure.error));
                        summary.failed.push(failure);
                        block_dependents(plan, &mut slots, idx);
                        slots.insert(idx, Slot::Failed);
                        stop_submitting |= !opts.keep_going;
                        continue;
                    }
                }
            };
            slots.insert(idx, slot);
        }

        if !slots.values().any(Slot::in_flight) {
            break;
        }
        sleep_unless_cancelled(opts.settings.poll_interval, cancel);
    }
    summary.cancelled |= cancel.load(Ordering::Relaxed);
    summary.skipped = slots
        .values()
        .filter(|s| matches!(s, Slot::Pending | Slot::Blocked))
        .count();
    display.done();
    eprintln!("{submitted} Slurm job(s) submitted");
    Ok(summary)
}

/// How often a stage was resubmitted: after its job was interrupted, and
/// after it failed. Counted apart, so preemptions never use up `retries`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Attempts {
    requeues: u32,
    retries: u32,
}

/// Whether a stage whose job ended without its record is submitted again
/// (`Some`: what the log says, the attempt counted in `so_far`): an
/// interrupted job up to `requeue` times, a failed one up to `retries`.
fn resubmission(
    interrupted: bool,
    so_far: &mut Attempts,
    settings: &SlurmSettings,
) -> Option<String> {
    let (count, cap, what, then) = if interrupted {
        let then = ", it resumes from its last checkpoint";
        (&mut so_far.requeues, settings.requeue, "requeues", then)
    } else {
        (&mut so_far.retries, settings.retries, "retries", "")
    };
    if *count >= cap {
        return None;
    }
    *count += 1;
    Some(format!("resubmitting{then} ({count} of {cap} {what})"))
}

/// Marks every stage downstream of a failed one as never to run.
fn block_dependents(plan: &Plan, slots: &mut HashMap<NodeIndex, Slot>, failed: NodeIndex) {
    let mut dfs = Dfs::new(&plan.graph, failed);
    while let Some(d) = dfs.next(&plan.graph) {
        if d != failed && matches!(slots[&d], Slot::Pending) {
            slots.insert(d, Slot::Blocked);
        }
    }
}

/// Whether the stage's sealed dir (its record file) is in place.
fn record_written(root: &Path, node: &Node) -> bool {
    worker::stage_dir(root, &node.kind, &node.key)
        .join(RECORD_FILE)
        .is_file()
}

/// Verifies a worker's sealed dir and writes its record into the index.
fn ingest(cache: &Cache, root: &Path, node: &Node) -> Result<Record> {
    let dir = worker::stage_dir(root, &node.kind, &node.key);
    cache.ingest_record(&dir).map_err(|e| anyhow!("{e}"))
}

/// The records of a node's inputs, by role.
fn input_records(cache: &Cache, node: &Node) -> Result<BTreeMap<String, Record>> {
    node.inputs
        .iter()
        .map(|(role, key)| {
            let rec = cache
                .get(key)?
                .ok_or_else(|| anyhow!("input {key} of {} has no record", node.name))?;
            Ok((role.clone(), rec))
        })
        .collect()
}

/// A controller-side stage: the same worker, as a child process.
fn spawn_child(binary: &Path, root: &Path, node: &Node) -> Result<Child> {
    let log = root
        .join("slurm/logs")
        .join(format!("{}.controller.out", node.key));
    std::fs::create_dir_all(log.parent().expect("has parent"))?;
    let out = std::fs::File::create(&log)?;
    Command::new(binary)
        .process_group(0) // a terminal's Ctrl-C is the controller's to handle
        .args(["stage", "exec", &node.key, "--cache"])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {} for {}", binary.display(), node.name))
}

/// The exit message of a failed stage: stage, job id, state, and the log
/// that says why (the stage's own log if it got that far, else Slurm's).
fn describe_failure(root: &Path, node: &Node, job: Option<&str>, state: &str) -> Failure {
    let stage_log = worker::failed_dir(root, &node.key).join(LOG_FILE);
    let slurm_log = match job {
        Some(id) => sbatch::job_log(root, &node.key, id),
        None => root
            .join("slurm/logs")
            .join(format!("{}.controller.out", node.key)),
    };
    let reason = std::fs::read_to_string(&stage_log).ok().and_then(|text| {
        text.lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map(str::to_string)
    });
    let error = match (job, reason) {
        (Some(id), Some(reason)) => format!(
            "Slurm job {id} ended {state}; {reason} (Slurm log: {})",
            slurm_log.display()
        ),
        (Some(id), None) => format!("Slurm job {id} ended {state}"),
        (None, Some(reason)) => format!("{state}; {reason}"),
        (None, None) => state.to_string(),
    };
    Failure {
        name: node.name.clone(),
        log: if stage_log.is_file() {
            stage_log
        } else {
            slurm_log
        },
        error,
    }
}

/// Ctrl-C: cancels every job of the run (one scancel), waits until they
/// left squeue, stops the controller-side children, and removes their work.
fn cancel_all(
    slots: &mut HashMap<NodeIndex, Slot>,
    prefix: &str,
    root: &Path,
    plan: &Plan,
) -> Result<()> {
    let mut ids: HashSet<String> = queue::squeue(prefix)?
        .into_iter()
        .filter(|j| j.phase() == Phase::Active)
        .map(|j| j.id)
        .collect();
    let mut keys = Vec::new();
    for (idx, slot) in slots.iter_mut() {
        match slot {
            Slot::Queued { job, .. } => {
                ids.insert(job.clone());
                keys.push(plan.graph[*idx].key.clone());
            }
            Slot::Child { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
                keys.push(plan.graph[*idx].key.clone());
            }
            _ => {}
        }
    }
    let ids: Vec<String> = ids.into_iter().collect();
    queue::scancel(&ids)?;
    eprintln!("cancelled {} Slurm job(s)", ids.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && queue::squeue(prefix)?
            .iter()
            .any(|j| ids.contains(&j.id) && j.phase() == Phase::Active)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Unfinished work dirs of the cancelled stages hold nothing of value.
    let work = root.join("slurm/work");
    if let Ok(entries) = std::fs::read_dir(&work) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if keys.iter().any(|k| name.starts_with(&format!("{k}."))) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

fn sleep_unless_cancelled(total: Duration, cancel: &AtomicBool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !cancel.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Preemptions use `requeue` and failures `retries`, each to its own
    /// cap, whichever order they come in.
    #[test]
    fn interruptions_and_failures_resubmit_up_to_their_own_caps() {
        let settings = SlurmSettings {
            requeue: 2,
            retries: 1,
            ..SlurmSettings::default()
        };
        let mut so_far = Attempts::default();
        let again = resubmission(true, &mut so_far, &settings).unwrap();
        assert!(
            again.contains("resumes from its last checkpoint (1 of 2 requeues)"),
            "{again}"
        );
        let again = resubmission(false, &mut so_far, &settings).unwrap();
        assert!(again.contains("(1 of 1 retries)"), "{again}");
        assert_eq!(resubmission(false, &mut so_far, &settings), None);
        assert!(resubmission(true, &mut so_far, &settings).is_some());
        assert_eq!(resubmission(true, &mut so_far, &settings), None);
        assert_eq!(
            so_far,
            Attempts {
                requeues: 2,
                retries: 1
            }
        );
        let default = SlurmSettings::default();
        let mut so_far = Attempts::default();
        assert_eq!(
            resubmission(false, &mut so_far, &default),
            None,
            "retries = 0"
        );
        assert!(
            resubmission(true, &mut so_far, &default).is_some(),
            "requeue = 3"
        );
    }
}
