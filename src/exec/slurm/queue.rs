//! Talking to Slurm: `sbatch`, one `squeue` per poll for every job of the
//! run, `sacct` only for jobs that already left `squeue`, and `scancel`.
//!
//! Never one call per job: per-job polling is what overwhelmed slurmctld
//! and slurmdbd for Snakemake's and Nextflow's users. A cluster without
//! accounting works too: `squeue -t all` still shows a finished job for
//! `MinJobAge` seconds (300 by default), and the record file in the stage's
//! artifact dir, not the job state, is what says a stage succeeded.
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// One job as `squeue` or `sacct` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// Slurm's state: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, …
    pub state: String,
}

/// Where a job stands, as far as the executor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Queued, running or finishing.
    Active,
    /// Exited 0 (the record file still decides whether the stage succeeded).
    Completed,
    /// Failed, cancelled, timed out, out of memory, node failure, …: the state.
    Ended(String),
}

impl Job {
    pub fn phase(&self) -> Phase {
        phase_of(&self.state)
    }
}

/// The phase of a Slurm job state.
pub fn phase_of(state: &str) -> Phase {
    // sacct writes `CANCELLED by 0`; squeue `CANCELLED`.
    let state = state.split_whitespace().next().unwrap_or_default();
    {
        match state {
            "COMPLETED" => Phase::Completed,
            "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
            | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SIGNALING" | "STAGE_OUT"
            | "STOPPED" | "RESV_DEL_HOLD" => Phase::Active,
            other => Phase::Ended(other.to_string()),
        }
    }
}

/// Whether a job that ended `state` was stopped by the cluster rather than
/// by its stage: preempted, out of time, or its node failed; or
/// `stopped_by_signal`: it ended FAILED because its worker stopped on
/// Slurm's early-warning SIGTERM (`--signal`, [`super::worker::INTERRUPTED_FILE`])
/// after saving its progress. A cancelled job (`scancel`, Ctrl-C) is not:
/// someone meant it to stop.
pub fn interrupted(state: &str, stopped_by_signal: bool) -> bool {
    match state.split_whitespace().next().unwrap_or_default() {
        "PREEMPTED" | "TIMEOUT" | "NODE_FAIL" => true,
        "FAILED" => stopped_by_signal,
        _ => false,
    }
}

/// Parses `id|name|state` lines (squeue's `-o '%i|%j|%T'`, sacct's `-P`).
/// Job steps (`123.batch`) are skipped: the job's own line has its state.
pub fn parse_jobs(text: &str) -> Vec<Job> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, '|');
            let (id, name, state) = (fields.next()?, fields.next()?, fields.next()?);
            if id.is_empty() || id.contains('.') {
                return None;
            }
            Some(Job {
                id: id.to_string(),
                name: name.to_string(),
                state: state.trim().to_string(),
            })
        })
        .collect()
}

/// Every job of this user whose name starts with `prefix`, finished ones
/// included while slurmctld remembers them: ONE `squeue` call.
pub fn squeue(prefix: &str) -> Result<Vec<Job>> {
    let out = run(Command::new("squeue").args(["--me", "-h", "-t", "all", "-o", "%i|%j|%T"]))?;
    Ok(parse_jobs(&out)
        .into_iter()
        .filter(|j| j.name.starts_with(prefix))
        .collect())
}

/// Final states of jobs that left `squeue`, by job id: ONE `sacct` call
/// (the accounting database), else `sacct -c` (the job completion file of
/// a cluster without slurmdbd); empty when the cluster has neither.
pub fn sacct(ids: &[String]) -> HashMap<String, Job> {
    if ids.is_empty() {
        return HashMap::new();
    }
    let list = ids.join(",");
    let format = ["-n", "-P", "-X", "-j", &list, "-o", "JobID,JobName,State"];
    let out = run(Command::new("sacct").args(format))
        .or_else(|_| run(Command::new("sacct").arg("-c").args(format)))
        .unwrap_or_default();
    parse_jobs(&out)
        .into_iter()
        .map(|j| (j.id.clone(), j))
        .collect()
}

/// Submits a batch script (given on stdin); returns the job id.
pub fn sbatch(script: &str) -> Result<String> {
    let mut child = Command::new("sbatch")
        .process_group(0) // a terminal's Ctrl-C is the controller's to handle
        .arg("--parsable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running sbatch (is Slurm installed and on PATH?)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints `id` or `id;cluster`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        bail!("sbatch printed no job id");
    }
    Ok(id)
}

/// Cancels jobs (one `scancel` call).
pub fn scancel(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    run(Command::new("scancel").args(ids)).map(|_| ())
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let name = format!("{:?}", command.get_program());
    let out = command
        .process_group(0) // a terminal's Ctrl-C is the controller's to handle
        .output()
        .with_context(|| format!("running {name} (is Slurm installed and on PATH?)"))?;
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_sacct_lines_parse_and_steps_are_skipped() {
        let jobs = parse_jobs(
            "12|sweep-r-k1|RUNNING\n13|sweep-r-k2|CANCELLED by 0\n13.batch|batch|CANCELLED\n\n",
        );
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].phase(), Phase::Active);
        assert_eq!(jobs[1].phase(), Phase::Ended("CANCELLED".into()));
    }

    #[test]
    fn every_unsuccessful_end_is_an_end_with_its_state() {
        let job = |state: &str| Job {
            id: "1".into(),
            name: "n".into(),
            state: state.into(),
        };
        assert_eq!(job("COMPLETED").phase(), Phase::Completed);
        assert_eq!(job("PENDING").phase(), Phase::Active);
        for state in [
            "FAILED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
            "PREEMPTED",
        ] {
            assert_eq!(job(state).phase(), Phase::Ended(state.into()));
        }
    }

    #[test]
    fn the_cluster_stopping_a_job_is_an_interruption_and_its_stage_failing_is_not() {
        for state in ["PREEMPTED", "TIMEOUT", "NODE_FAIL"] {
            assert!(interrupted(state, false), "{state}");
        }
        assert!(interrupted("FAILED", true), "stopped on --signal's SIGTERM");
        for state in ["FAILED", "OUT_OF_MEMORY", "CANCELLED by 0"] {
            assert!(!interrupted(state, false), "{state}");
        }
        assert!(!interrupted("CANCELLED by 0", true), "scancel is meant");
        assert!(!interrupted("OUT_OF_MEMORY", true));
    }
}
