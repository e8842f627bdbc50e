//! Stage kinds: one file per box of the CW-PO pipeline.
//!
//! A stage is a pure function of its parameters and its inputs' artifacts: it
//! reads `ctx.params` (exactly the [`Stage::Params`] of its kind) and the
//! artifact dirs of its named input roles, and writes its own artifacts into
//! `ctx.out_dir`, a temporary dir the cache renames into place only after
//! `run` returns `Ok`. Its identity (the cache key) is computed by `plan` from
//! [`Stage::KIND`], [`Stage::VERSION`], the canonical params and the input
//! keys: bump `VERSION` whenever a kind's semantics change.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::train::checkpoint::OutputsCheckpointer;

// The stage kinds, one file each (listed in pipeline order in `stage_kinds!` below).
pub mod align;
pub mod annotate;
pub mod dataset;
pub mod generate;
pub mod gold_train;
pub mod metric;
pub mod online_round;
pub mod pretrain;
pub mod ref_logps;
pub mod score;
pub mod sft;
pub mod split;
pub mod weak_eval;
pub mod weak_train;
pub mod win_rate;

// What several kinds share, each in its named home.
pub mod artifacts;
pub mod models;
pub mod training;

pub use artifacts::{read_json, write_json};

/// Where a running stage reports progress; the executor draws it as a bar and
/// appends `log` lines to the stage's log file (`stage.log` in its artifact dir).
pub trait Progress: Send + Sync {
    /// Number of steps the stage expects to take (for the ETA).
    fn set_total(&self, total: u64);
    /// Current step and, for training stages, the latest loss.
    fn set_step(&self, step: u64, loss: Option<f64>);
    /// One line of the stage's log.
    fn log(&self, line: &str);
}

/// A [`Progress`] that drops everything: for tests and library callers.
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _total: u64) {}
    fn set_step(&self, _step: u64, _loss: Option<f64>) {}
    fn log(&self, _line: &str) {}
}

/// Everything a stage may touch while it runs.
pub struct StageContext<'a> {
    /// The stage's parameters, as the planner serialised its kind's `Params`.
    pub params: &'a serde_json::Value,
    /// Input role (e.g. `"dataset"`) → that input's artifact dir.
    pub inputs: &'a BTreeMap<String, PathBuf>,
    /// Temporary output dir, renamed into the cache after success.
    pub out_dir: &'a Path,
    pub device: &'a candle_core::Device,
    pub progress: &'a dyn Progress,
    /// Set by Ctrl-C: long loops should check [`StageContext::check_cancel`].
    pub cancel: &'a AtomicBool,
    /// Where training loops save their progress (the stage's partial dir,
    /// kept across runs until the stage is recorded); `None` = never save.
    pub checkpoint: Option<&'a crate::train::checkpoint::CheckpointPlace>,
}

impl<'a> StageContext<'a> {
    /// The artifact dir of input `role`; an error names the role if the
    /// planner did not wire it (a planner bug, not a user error).
    pub fn input(&self, role: &str) -> Result<&Path> {
        self.inputs.get(role).map(PathBuf::as_path).ok_or_else(|| {
            anyhow!(
                "stage input `{role}` is not wired (have: {:?})",
                self.inputs.keys()
            )
        })
    }

    /// A saver of a batch loop's finished outputs in the stage's partial dir
    /// (`None` when the stage has none), logging to the stage's log and
    /// stderr and saving when the run is cancelled. `fingerprint`: what the
    /// outputs depend on.
    pub fn outputs_checkpointer(
        &self,
        phase: &str,
        fingerprint: &[u8],
    ) -> Option<OutputsCheckpointer<'a>> {
        let (progress, cancel) = (self.progress, self.cancel);
        self.checkpoint.map(|place| {
            let stage = place.stage.clone();
            OutputsCheckpointer::new(place, phase, fingerprint, move |line: &str| {
                progress.log(line);
                eprintln!("{stage}: {line}");
            })
            .with_cancel(cancel)
        })
    }

    /// `Err` once the user pressed Ctrl-C, so a stage can stop between steps.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            bail!("cancelled by the user");
        }
        Ok(())
    }
}

/// What a finished stage reports besides its artifacts: scalar metrics that
/// land in its cache record (accuracy, GRA, training seconds, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageOutcome {
    pub metrics: BTreeMap<String, f64>,
}

/// One stage kind.
pub trait Stage {
    /// Name in keys, cache paths and readable node names (`"weak_train"`).
    const KIND: &'static str;
    /// Bump when the kind's semantics change: it re-keys every node of the kind.
    const VERSION: u32;
    /// Input roles the kind may receive (a role may be absent, e.g.
    /// `annotation` for a human-label SFT).
    const INPUTS: &'static [&'static str];
    /// Exactly the parameters the stage reads: nothing else re-keys it.
    type Params: Serialize + DeserializeOwned;

    fn run(params: &Self::Params, ctx: &StageContext) -> Result<StageOutcome>;
}

/// The one registry of stage kinds: [`KINDS`], [`version_of`] and
/// [`run_stage`] are generated from this list, so a new kind is its file,
/// its `pub mod` line above and one line here (plus where `plan` adds it).
macro_rules! stage_kinds {
    ($($stage:ty),* $(,)?) => {
        /// Every kind, in pipeline order (`until = KIND` keeps the kinds up to it).
        pub const KINDS: &[&str] = &[$(<$stage as Stage>::KIND),*];

        /// `VERSION` of `kind`, or `None` for an unknown kind.
        pub fn version_of(kind: &str) -> Option<u32> {
            $(
                if kind == <$stage as Stage>::KIND {
                    return Some(<$stage as Stage>::VERSION);
                }
            )*
            None
        }

        /// Runs the stage of kind `kind` (dispatch by name, as the cache stores it).
        pub fn run_stage(kind: &str, ctx: &StageContext) -> Result<StageOutcome> {
            $(
                if kind == <$stage as Stage>::KIND {
                    return run_typed::<$stage>(ctx);
                }
            )*
            bail!(
                "unknown stage kind `{kind}`; valid kinds: {}",
                KINDS.join(", ")
            )
        }
    };
}

stage_kinds![
    dataset::Dataset,
    split::Split,
    pretrain::Pretrain,
    gold_train::GoldTrain,
    gold_train::GoldTrainFiles,
    weak_train::WeakTrain,
    weak_eval::WeakEval,
    annotate::Annotate,
    sft::Sft,
    ref_logps::RefLogps,
    align::Align,
    online_round::OnlineRound,
    generate::Generate,
    score::Score,
    win_rate::WinRate,
    metric::Metric,
];

/// Decodes the kind's params, checks that every wired input is a declared
/// role, then runs it; a non-finite metric is an error, never recorded.
fn run_typed<S: Stage>(ctx: &StageContext) -> Result<StageOutcome> {
    let params: S::Params = serde_json::from_value(ctx.params.clone()).with_context(|| {
        format!(
            "stage kind `{}`: params do not match its Params struct",
            S::KIND
        )
    })?;
    if let Some(role) = ctx.inputs.keys().find(|r| !S::INPUTS.contains(&r.as_str())) {
        bail!(
            "stage kind `{}`: unexpected input role `{role}` (roles: {:?})",
            S::KIND,
            S::INPUTS
        );
    }
    let outcome = S::run(&params, ctx)?;
    if let Some((name, value)) = outcome.metrics.iter().find(|(_, v)| !v.is_finite()) {
        bail!(
            "stage kind `{}`: metric `{name}` is {value}, not a finite number",
            S::KIND
        );
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_each_kind_once_with_its_version() {
        let unique: std::collections::BTreeSet<&str> = KINDS.iter().copied().collect();
        assert_eq!(unique.len(), KINDS.len(), "{KINDS:?}");
        assert_eq!(KINDS.first(), Some(&"dataset"));
        assert_eq!(KINDS.last(), Some(&"metric"));
        assert_eq!(version_of("align"), Some(align::Align::VERSION));
        assert!(KINDS.iter().all(|k| version_of(k).is_some()));
        assert_eq!(version_of("ppo"), None);
    }
}
