//! The cluster settings of `--executor slurm`: the `[slurm]` table of the
//! profile, or of the file given with `--executor-config FILE` (which wins).
//!
//! ```toml
//! [slurm]
//! partition = "gpu"                   # each optional: the cluster's default otherwise
//! account = "my-lab"
//! qos = "normal"
//! sbatch_args = ["--constraint=a100"] # added to every job
//! max_jobs = 100                      # jobs of this run queued or running at once
//! poll_interval_s = 5.0               # one squeue call per interval for all jobs
//! retries = 0                         # resubmit a failed job up to N times
//! requeue = 3                         # resubmit a preempted, timed-out or NODE_FAIL job
//!                                     # up to N times (it resumes from its checkpoint)
//! signal_before_limit_s = 120        # SIGTERM a job this long before its time limit, so
//!                                     # it saves a checkpoint (0: only Slurm's at the limit)
//! controller_kinds = ["dataset", "split", "metric"]  # run beside the controller, not as jobs
//!                                     # (default: DEFAULT_CONTROLLER_KINDS; `[]` submits every kind)
//! binary = "/shared/bin/sweep"        # the worker binary (default: this sweep)
//!
//! [slurm.resources.align]             # per stage kind; `default` for every other kind
//! gpus = 1
//! cpus = 8
//! mem = "64G"
//! time = "04:00:00"
//! ```
//!
//! Every error is a diagnostic at its `file:line:col` (exit 2).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::manifest::diagnostic::{Diagnostic, Diagnostics, Loc, Source, from_toml_error};
use crate::stage::KINDS;

/// What one job of a stage kind asks Slurm for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub gpus: u32,
    pub cpus: u32,
    /// Slurm's `--mem` (e.g. `64G`); `None`: the cluster's default.
    pub mem: Option<String>,
    /// Slurm's `--time` (e.g. `04:00:00`); `None`: the partition's default.
    pub time: Option<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            gpus: 0,
            cpus: 1,
            mem: None,
            time: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSettings {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub sbatch_args: Vec<String>,
    pub max_jobs: usize,
    pub poll_interval: Duration,
    pub retries: u32,
    /// Resubmissions of a stage whose job the cluster stopped (preempted,
    /// time limit, node failure; see [`super::queue::interrupted`]): the
    /// job resumes from its partial dir. Counted apart from `retries`.
    pub requeue: u32,
    /// Seconds before a job's time limit at which Slurm sends its worker
    /// SIGTERM (`--signal=B:TERM@N`), so a training stage saves a checkpoint
    /// while it still can; 0: no early warning (Slurm still sends SIGTERM
    /// at the limit itself, `KillWait` seconds before SIGKILL).
    pub signal_before_limit: u32,
    /// Kinds run on the controller's machine (cheap ones: no queueing latency).
    pub controller_kinds: BTreeSet<String>,
    /// The `sweep` binary the jobs run; `None`: the controller's own.
    pub binary: Option<PathBuf>,
    /// Kind (or `default`) → resources.
    pub resources: BTreeMap<String, Resources>,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            account: None,
            qos: None,
            sbatch_args: Vec::new(),
            max_jobs: 100,
            poll_interval: Duration::from_secs(5),
            retries: 0,
            requeue: 3,
            signal_before_limit: DEFAULT_SIGNAL_BEFORE_LIMIT_S,
            controller_kinds: DEFAULT_CONTROLLER_KINDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            binary: None,
            resources: BTreeMap::new(),
        }
    }
}

/// Kinds that run beside the controller unless `controller_kinds` says
/// otherwise: they compute for well under Slurm's ~2.5 s of scheduling per
/// job (BENCHMARKS.md, "Slurm executor"), so queueing them only adds
/// latency, and they need no GPU.
pub const DEFAULT_CONTROLLER_KINDS: &[&str] = &["dataset", "split", "metric"];

/// The early-warning signal's lead: two minutes leave a training stage time
/// to write its checkpoint even at paper scale.
pub const DEFAULT_SIGNAL_BEFORE_LIMIT_S: u32 = 120;

/// Options the executor sets itself: a user's `sbatch_args` may not.
const OWNED_OPTIONS: &[&str] = &[
    "-J",
    "--job-name",
    "-o",
    "--output",
    "-e",
    "--error",
    "-d",
    "--dependency",
    "--parsable",
    "--wrap",
];

/// Any file that may hold a `[slurm]` table; its other keys are someone else's.
#[derive(Deserialize)]
struct AnyFile {
    slurm: Option<Spanned<RawSlurm>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    #[serde(default)]
    sbatch_args: Vec<Spanned<String>>,
    max_jobs: Option<Spanned<i64>>,
    poll_interval_s: Option<Spanned<f64>>,
    retries: Option<Spanned<i64>>,
    requeue: Option<Spanned<i64>>,
    signal_before_limit_s: Option<Spanned<i64>>,
    controller_kinds: Option<Vec<Spanned<String>>>,
    binary: Option<Spanned<String>>,
    #[serde(default)]
    resources: BTreeMap<String, Spanned<RawResources>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    gpus: Option<Spanned<i64>>,
    cpus: Option<Spanned<i64>>,
    mem: Option<Spanned<String>>,
    time: Option<Spanned<String>>,
}

impl SlurmSettings {
    /// The settings for `--profile PROFILE [--executor-config FILE]`: the
    /// config file's `[slurm]` if given, else the profile file's, else the
    /// defaults (the embedded profiles have none).
    pub fn load(profile: &str, config: Option<&Path>) -> Result<SlurmSettings, Diagnostics> {
        let path = match config {
            Some(path) => path.to_owned(),
            None if matches!(profile, "tiny" | "paper") => return Ok(SlurmSettings::default()),
            None => PathBuf::from(profile),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            one(Diagnostic::file(
                &path,
                format!("cannot read the executor settings: {e}"),
            ))
        })?;
        Self::parse(&path, &text)
    }

    /// The `[slurm]` table of `text` (the defaults if it has none).
    pub fn parse(path: &Path, text: &str) -> Result<SlurmSettings, Diagnostics> {
        let source = Arc::new(Source {
            path: path.to_owned(),
            text: text.into(),
        });
        let file: AnyFile = toml::from_str(text).map_err(|e| one(from_toml_error(&source, &e)))?;
        let Some(raw) = file.slurm else {
            return Ok(SlurmSettings::default());
        };
        let mut errors = Diagnostics::default();
        let at = |span: std::ops::Range<usize>| Loc::new(&source, Some(span));
        let raw = raw.into_inner();
        let mut out = SlurmSettings {
            partition: raw.partition,
            account: raw.account,
            qos: raw.qos,
            ..SlurmSettings::default()
        };
        for arg in &raw.sbatch_args {
            let option = arg.get_ref().split('=').next().unwrap_or_default();
            if !arg.get_ref().starts_with('-') {
                errors.push(Diagnostic::at(
                    &at(arg.span()),
                    format!(
                        "sbatch_args: `{}` is not an option (starts with `-`)",
                        arg.get_ref()
                    ),
                ));
            } else if OWNED_OPTIONS.contains(&option) {
                errors.push(Diagnostic::at(
                    &at(arg.span()),
                    format!(
                        "sbatch_args: `{option}` is set by sweep itself (job names, logs and dependencies identify a run's jobs)"
                    ),
                ));
            }
            out.sbatch_args.push(arg.get_ref().clone());
        }
        let mut positive = |value: &Option<Spanned<i64>>, what: &str, min: i64| -> Option<i64> {
            let v = value.as_ref()?;
            if *v.get_ref() < min {
                errors.push(Diagnostic::at(
                    &at(v.span()),
                    format!("{what} must be at least {min} (got {})", v.get_ref()),
                ));
                return None;
            }
            Some(*v.get_ref())
        };
        if let Some(n) = positive(&raw.max_jobs, "max_jobs", 1) {
            out.max_jobs = n as usize;
        }
        if let Some(n) = positive(&raw.retries, "retries", 0) {
            out.retries = n as u32;
        }
        if let Some(n) = positive(&raw.requeue, "requeue", 0) {
            out.requeue = n as u32;
        }
        if let Some(n) = positive(&raw.signal_before_limit_s, "signal_before_limit_s", 0) {
            out.signal_before_limit = n.min(u32::MAX as i64) as u32;
        }
        if let Some(s) = &raw.poll_interval_s {
            if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) {
                errors.push(Diagnostic::at(
                    &at(s.span()),
                    format!(
                        "poll_interval_s must be a positive number of seconds (got {})",
                        s.get_ref()
                    ),
                ));
            } else {
                out.poll_interval = Duration::from_secs_f64(*s.get_ref());
            }
        }
        if raw.controller_kinds.is_some() {
            out.controller_kinds.clear();
        }
        for kind in raw.controller_kinds.iter().flatten() {
            match known_kind(kind.get_ref(), false) {
                Ok(()) => {
                    out.controller_kinds.insert(kind.get_ref().clone());
                }
                Err(message) => errors.push(Diagnostic::at(
                    &at(kind.span()),
                    format!("controller_kinds: {message}"),
                )),
            }
        }
        if let Some(binary) = &raw.binary {
            if Path::new(binary.get_ref()).is_absolute() {
                out.binary = Some(PathBuf::from(binary.get_ref()));
            } else {
                errors.push(Diagnostic::at(
                    &at(binary.span()),
                    format!(
                        "binary `{}` must be an absolute path every node sees",
                        binary.get_ref()
                    ),
                ));
            }
        }
        for (kind, table) in &raw.resources {
            if let Err(message) = known_kind(kind, true) {
                errors.push(Diagnostic::at(
                    &at(table.span()),
                    format!("[slurm.resources.{kind}]: {message}"),
                ));
                continue;
            }
            let table = table.get_ref();
            let mut res = Resources::default();
            let mut count = |value: &Option<Spanned<i64>>, what: &str, min: i64| match value {
                Some(v) if *v.get_ref() < min || *v.get_ref() > u32::MAX as i64 => {
                    errors.push(Diagnostic::at(
                        &at(v.span()),
                        format!(
                            "{what} must be a whole number ≥ {min} (got {})",
                            v.get_ref()
                        ),
                    ));
                    None
                }
                Some(v) => Some(*v.get_ref() as u32),
                None => None,
            };
            res.gpus = count(&table.gpus, "gpus", 0).unwrap_or(res.gpus);
            res.cpus = count(&table.cpus, "cpus", 1).unwrap_or(res.cpus);
            if let Some(mem) = &table.mem {
                if is_slurm_memory(mem.get_ref()) {
                    res.mem = Some(mem.get_ref().clone());
                } else {
                    errors.push(Diagnostic::at(
                        &at(mem.span()),
                        format!(
                            "mem `{}` is not a Slurm memory size: a whole number with an optional K, M, G or T (e.g. \"64G\")",
                            mem.get_ref()
                        ),
                    ));
                }
            }
            if let Some(time) = &table.time {
                let lead = out.signal_before_limit;
                match slurm_time_seconds(time.get_ref()) {
                    // Slurm would send the warning as the job starts: the
                    // worker would save and stop at once, every requeue.
                    Some(limit) if lead > 0 && limit <= u64::from(lead) => {
                        errors.push(Diagnostic::at(
                            &at(time.span()),
                            format!(
                                "time `{}` ({limit} s) is not longer than the {lead} s early-warning signal: \
                                 Slurm would stop every job of this kind as it starts; raise `time` or lower \
                                 `signal_before_limit_s` in [slurm] (0: no early warning)",
                                time.get_ref()
                            ),
                        ))
                    }
                    Some(_) => res.time = Some(time.get_ref().clone()),
                    None => errors.push(Diagnostic::at(
                        &at(time.span()),
                        format!(
                            "time `{}` is not a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
                            time.get_ref()
                        ),
                    )),
                }
            }
            out.resources.insert(kind.clone(), res);
        }
        errors.into_result()?;
        Ok(out)
    }

    /// What a job of `kind` asks for: its own table, else `default`, else one CPU.
    pub fn resources(&self, kind: &str) -> Resources {
        self.resources
            .get(kind)
            .or_else(|| self.resources.get("default"))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `kind` runs beside the controller instead of as a Slurm job.
    pub fn in_controller(&self, kind: &str) -> bool {
        self.controller_kinds.contains(kind)
    }
}

fn known_kind(kind: &str, default_ok: bool) -> Result<(), String> {
    if KINDS.contains(&kind) || (default_ok && kind == "default") {
        return Ok(());
    }
    Err(format!(
        "unknown stage kind `{kind}`; kinds: {}{}",
        KINDS.join(", "),
        if default_ok { ", default" } else { "" }
    ))
}

/// `64G`, `500M`, `1024`: digits and an optional unit (Slurm's `--mem`).
fn is_slurm_memory(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Seconds in one of Slurm's `--time` forms: `MM`, `MM:SS`, `HH:MM:SS`,
/// `D-HH`, `D-HH:MM`, `D-HH:MM:SS`; `None` if `text` is none of them.
fn slurm_time_seconds(text: &str) -> Option<u64> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (Some(number(d)?), rest),
        None => (None, text),
    };
    let parts = rest.split(':').map(number).collect::<Option<Vec<u64>>>()?;
    // Without days the fields are minutes[:seconds] or hours:minutes:seconds;
    // after `D-` they are hours[:minutes[:seconds]].
    let (h, m, s) = match (days, parts.as_slice()) {
        (None, [m]) => (0, *m, 0),
        (None, [m, s]) => (0, *m, *s),
        (None, [h, m, s]) | (Some(_), [h, m, s]) => (*h, *m, *s),
        (Some(_), [h]) => (*h, 0, 0),
        (Some(_), [h, m]) => (*h, *m, 0),
        _ => return None,
    };
    Some(((days.unwrap_or(0) * 24 + h) * 60 + m) * 60 + s)
}

fn one(d: Diagnostic) -> Diagnostics {
    let mut all = Diagnostics::default();
    all.push(d);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SlurmSettings, String> {
        SlurmSettings::parse(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_table_parses_and_kinds_fall_back_to_default() {
        let s = parse(
            r#"name = "someone else's key"
[slurm]
partition = "gpu"
sbatch_args = ["--constraint=a100"]
max_jobs = 7
poll_interval_s = 0.5
requeue = 0
controller_kinds = ["dataset", "metric"]
[slurm.resources.align]
gpus = 1
cpus = 8
mem = "64G"
time = "1-04:00:00"
[slurm.resources.default]
cpus = 2
"#,
        )
        .unwrap();
        assert_eq!(s.partition.as_deref(), Some("gpu"));
        assert_eq!(s.max_jobs, 7);
        assert_eq!(s.poll_interval, Duration::from_millis(500));
        assert_eq!((s.requeue, SlurmSettings::default().requeue), (0, 3));
        assert!(s.in_controller("metric") && !s.in_controller("align"));
        let align = s.resources("align");
        assert_eq!((align.gpus, align.cpus), (1, 8));
        assert_eq!(align.mem.as_deref(), Some("64G"));
        assert_eq!(s.resources("sft").cpus, 2, "`default` covers other kinds");
        assert_eq!(parse("").unwrap(), SlurmSettings::default());
    }

    #[test]
    fn cheap_kinds_run_on_the_controller_unless_the_settings_list_others() {
        let default = parse("[slurm]\n").unwrap();
        for kind in DEFAULT_CONTROLLER_KINDS {
            assert!(default.in_controller(kind), "{kind}");
        }
        assert!(!default.in_controller("align"));
        let listed = parse("[slurm]\ncontroller_kinds = [\"metric\"]\n").unwrap();
        assert!(listed.in_controller("metric") && !listed.in_controller("dataset"));
        let none = parse("[slurm]\ncontroller_kinds = []\n").unwrap();
        assert!(
            DEFAULT_CONTROLLER_KINDS
                .iter()
                .all(|k| !none.in_controller(k))
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_its_place() {
        let err = parse(
            r#"[slurm]
max_jobs = 0
requeue = -1
sbatch_args = ["--job-name=x"]
controller_kinds = ["datset"]
[slurm.resources.align]
mem = "64 GB"
time = "4h"
"#,
        )
        .unwrap_err();
        for want in [
            "c.toml:2:12: max_jobs must be at least 1",
            "c.toml:3:11: requeue must be at least 0",
            "c.toml:4:16: sbatch_args: `--job-name` is set by sweep",
            "c.toml:5:21: controller_kinds: unknown stage kind `datset`",
            "c.toml:7:7: mem `64 GB`",
            "c.toml:8:8: time `4h`",
        ] {
            assert!(err.contains(want), "missing `{want}` in:\n{err}");
        }
        let err = parse("[slurm]\npartiton = \"gpu\"\n").unwrap_err();
        assert!(
            err.starts_with("error: c.toml:2:1: unknown field `partiton`"),
            "{err}"
        );
    }

    #[test]
    fn slurm_sizes_and_time_limits() {
        for ok in ["64G", "500M", "1024", "2T"] {
            assert!(is_slurm_memory(ok), "{ok}");
        }
        for bad in ["", "G", "64GB", "6.4G", "-1"] {
            assert!(!is_slurm_memory(bad), "{bad}");
        }
        for (ok, seconds) in [
            ("30", 1800),
            ("30:00", 1800),
            ("04:00:00", 4 * 3600),
            ("1-00", 86_400),
            ("1-04:00", 86_400 + 4 * 3600),
            ("2-04:00:30", 2 * 86_400 + 4 * 3600 + 30),
        ] {
            assert_eq!(slurm_time_seconds(ok), Some(seconds), "{ok}");
        }
        for bad in ["", "4h", "1:2:3:4", "-04:00", "1-", "a-1"] {
            assert_eq!(slurm_time_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_time_limit_within_the_early_warning_is_refused_unless_the_warning_is_off() {
        let table = "[slurm.resources.pretrain]\ntime = \"2\"\n";
        let err = parse(&format!("[slurm]\n{table}")).unwrap_err();
        assert!(
            err.contains(
                "c.toml:3:8: time `2` (120 s) is not longer than the 120 s early-warning signal"
            ),
            "{err}"
        );
        let off = parse(&format!("[slurm]\nsignal_before_limit_s = 0\n{table}")).unwrap();
        assert_eq!(off.resources("pretrain").time.as_deref(), Some("2"));
        let shorter = parse(&format!("[slurm]\nsignal_before_limit_s = 30\n{table}")).unwrap();
        assert_eq!(shorter.signal_before_limit, 30);
    }
}
