//! What is submitted: a job's name and its batch script.
//!
//! A job's name is `sweep-<run>-<key>`: `<run>` identifies the cache (the
//! same cache dir gives the same run id), `<key>` the stage. A controller
//! that was killed and started again lists its jobs by that prefix, so it
//! waits for the ones still queued or running instead of submitting them
//! again.
use std::path::Path;

use super::settings::{Resources, SlurmSettings};
use crate::plan::Node;

/// The run id of a cache: the first 12 hex of blake3 of its absolute root.
pub fn run_id(cache_root: &Path) -> String {
    let hash = blake3::hash(cache_root.to_string_lossy().as_bytes());
    hash.to_hex()[..12].to_string()
}

/// Prefix of every job name of run `run`.
pub fn job_prefix(run: &str) -> String {
    format!("sweep-{run}-")
}

/// The job name of stage `key` in run `run`.
pub fn job_name(run: &str, key: &str) -> String {
    format!("{}{key}", job_prefix(run))
}

/// The stage key in a job name of run `run`, if it is one.
pub fn key_of_job<'a>(run: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(&job_prefix(run))
}

/// Where a job's stdout and stderr go (`%j`: Slurm's job id).
pub fn job_log_pattern(cache_root: &Path, key: &str) -> String {
    format!("{}/slurm/logs/{key}.%j.out", cache_root.display())
}

/// The log of job `job_id` of stage `key`.
pub fn job_log(cache_root: &Path, key: &str, job_id: &str) -> std::path::PathBuf {
    cache_root
        .join("slurm/logs")
        .join(format!("{key}.{job_id}.out"))
}

/// The batch script of one stage: `#SBATCH` lines from the settings and the
/// kind's resources, then the worker command.
pub fn script(
    node: &Node,
    run: &str,
    cache_root: &Path,
    binary: &Path,
    settings: &SlurmSettings,
) -> String {
    let Resources {
        gpus,
        cpus,
        mem,
        time,
    } = settings.resources(&node.kind);
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", job_name(run, &node.key)),
        format!(
            "#SBATCH --output={}",
            job_log_pattern(cache_root, &node.key)
        ),
    ];
    let mut option = |name: &str, value: Option<&String>| {
        if let Some(v) = value {
            lines.push(format!("#SBATCH --{name}={v}"));
        }
    };
    option("partition", settings.partition.as_ref());
    option("account", settings.account.as_ref());
    option("qos", settings.qos.as_ref());
    option("mem", mem.as_ref());
    option("time", time.as_ref());
    lines.push(format!("#SBATCH --cpus-per-task={cpus}"));
    if gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{gpus}"));
    }
    // SIGTERM to the job's shell (our `exec`ed worker) before the time
    // limit: a training stage saves a checkpoint, and the job resubmitted
    // under `requeue` resumes from it.
    if settings.signal_before_limit > 0 {
        lines.push(format!(
            "#SBATCH --signal=B:TERM@{}",
            settings.signal_before_limit
        ));
    }
    for arg in &settings.sbatch_args {
        lines.push(format!("#SBATCH {arg}"));
    }
    lines.push(format!("# stage {} ({})", node.name, node.kind));
    // Stages compute on as many threads as the job has CPUs.
    lines.push("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".into());
    lines.push(format!(
        "exec {} stage exec {} --cache {}",
        quote(&binary.to_string_lossy()),
        node.key,
        quote(&cache_root.to_string_lossy())
    ));
    lines.join("\n") + "\n"
}

/// `text` as one word for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(kind: &str) -> Node {
        Node {
            kind: kind.into(),
            version: 1,
            params: serde_json::json!({}),
            inputs: BTreeMap::new(),
            key: "abc123".into(),
            name: format!("{kind}/x"),
        }
    }

    #[test]
    fn script_asks_for_the_kinds_resources_and_runs_the_worker() {
        let settings = SlurmSettings::parse(
            Path::new("c.toml"),
            "[slurm]\npartition = \"gpu\"\nsbatch_args = [\"--constraint=a100\"]\n\
             [slurm.resources.align]\ngpus = 1\ncpus = 8\nmem = \"64G\"\ntime = \"04:00:00\"\n",
        )
        .unwrap();
        let text = script(
            &node("align"),
            "run1",
            Path::new("/shared/it's/cache"),
            Path::new("/bin/sweep"),
            &settings,
        );
        for line in [
            "#SBATCH --job-name=sweep-run1-abc123",
            "#SBATCH --output=/shared/it's/cache/slurm/logs/abc123.%j.out",
            "#SBATCH --partition=gpu",
            "#SBATCH --mem=64G",
            "#SBATCH --time=04:00:00",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --constraint=a100",
            "#SBATCH --signal=B:TERM@120",
            r"exec '/bin/sweep' stage exec abc123 --cache '/shared/it'\''s/cache'",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let plain = script(
            &node("split"),
            "run1",
            Path::new("/c"),
            Path::new("/bin/sweep"),
            &settings,
        );
        assert!(!plain.contains("--gres") && plain.contains("--cpus-per-task=1"));
        let no_warning = SlurmSettings {
            signal_before_limit: 0,
            ..settings
        };
        let text = script(
            &node("align"),
            "run1",
            Path::new("/c"),
            Path::new("/bin/sweep"),
            &no_warning,
        );
        assert!(!text.contains("--signal"), "{text}");
    }

    #[test]
    fn job_names_round_trip_to_keys_of_their_run_only() {
        let name = job_name("r1", "k9");
        assert_eq!(key_of_job("r1", &name), Some("k9"));
        assert_eq!(key_of_job("r2", &name), None);
        assert_ne!(run_id(Path::new("/a/cache")), run_id(Path::new("/b/cache")));
    }
}
