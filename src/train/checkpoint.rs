//! Training checkpoints: a loop's progress, saved inside its stage's partial
//! dir so that a killed run continues where it stopped and ends with the
//! same bits as a run that was never interrupted.
//!
//! One loop (one [`super::optim::run_training`] call, a *phase* of its
//! stage: `weak_train`'s `sft_dpo` has two) keeps one file,
//! `<partial dir>/<phase>.safetensors`, holding everything the next step
//! depends on:
//!
//! | state | saved as |
//! |---|---|
//! | trainable weights | tensors `var.<i>` |
//! | AdamW moments, steps taken | tensors `adam_m.<i>`, `adam_v.<i>`; metadata `optimizer_steps` |
//! | schedule position, data order and position | metadata `step`: the cosine schedule and [`super::optim::epoch_order`] are functions of (seed, step) |
//! | RNG state | metadata `dropout_word_pos`: LoRA dropout is the loops' only random stream |
//! | loss history | tensor `losses` (f64), so the report equals an uninterrupted run's |
//!
//! It is written atomically (temp file, fsync, rename, fsync of the dir),
//! every [`CheckpointEvery::steps`] optimiser steps or
//! [`CheckpointEvery::interval`] of wall time, whichever comes first, and
//! when the user cancels. On load two checks guard the bits: a blake3
//! checksum over every tensor byte, and a fingerprint of what the state
//! belongs to (the loop's config, number of examples, variable shapes and
//! dtypes, dropout seed). A file failing either is reported, moved aside
//! (`<phase>.safetensors.corrupt`) and the loop restarts from step 0: a wrong
//! resume would silently corrupt a result, a restart only costs time.
//!
//! The checkpoint interval is execution, not science: it is not in any cache key.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use safetensors::{Dtype, SafeTensors, View};
use serde::Serialize;

use super::adamw::{AdamW, AdamWState};
use super::optim::TrainConfig;
use crate::model::lora::DropoutState;

/// Bump when the file's layout changes: older files then fail the
/// fingerprint and their loops restart.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// How often a loop saves: every `steps` optimiser steps or every
/// `interval` of wall time, whichever comes first (`steps = 0`: by time only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointEvery {
    pub steps: usize,
    pub interval: Duration,
}

impl Default for CheckpointEvery {
    /// 500 steps or 10 minutes: at the tiny profile's ~10 ms steps a save
    /// every 500 is noise (BENCHMARKS.md, "Checkpoint overhead"); on a GPU
    /// the 10 minutes bound the work a kill can lose.
    fn default() -> Self {
        Self {
            steps: 500,
            interval: Duration::from_secs(600),
        }
    }
}

/// Where one stage's loops keep their checkpoints, and how often they save.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPlace {
    /// The stage's partial dir (one per stage key; see `cache::partial`).
    pub dir: PathBuf,
    /// The stage's readable name, written into each checkpoint for `sweep status`.
    pub stage: String,
    pub every: CheckpointEvery,
}

/// The file of loop `phase` in partial dir `dir`.
pub fn checkpoint_file(dir: &Path, phase: &str) -> PathBuf {
    dir.join(format!("{phase}.safetensors"))
}

/// What a checkpoint says about its progress, read from its header alone
/// (for `sweep status`; no tensor is loaded or checked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointSummary {
    pub stage: String,
    pub phase: String,
    pub step: usize,
    pub total_steps: usize,
}

impl CheckpointSummary {
    /// The summary of a training checkpoint (`.safetensors`, its header
    /// only) or of a batch loop's outputs (`.json`).
    pub fn read(path: &Path) -> Result<Self> {
        if path.extension().is_some_and(|x| x == "json") {
            let saved: SavedOutputs<Vec<serde::de::IgnoredAny>> = serde_json::from_slice(
                &fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{}: unreadable", path.display()))?;
            return Ok(Self {
                stage: saved.stage,
                phase: saved.phase,
                step: saved.outputs.len(),
                total_steps: saved.total,
            });
        }
        let meta = read_header(path)?;
        let read = || -> Result<Self> {
            Ok(Self {
                stage: field(&meta, "stage")?.clone(),
                phase: field(&meta, "phase")?.clone(),
                step: field(&meta, "step")?.parse()?,
                total_steps: field(&meta, "total_steps")?.parse()?,
            })
        };
        read().with_context(|| format!("{}", path.display()))
    }
}

/// Metadata entry `key`, or an error naming it.
fn field<'m>(meta: &'m HashMap<String, String>, key: &str) -> Result<&'m String> {
    meta.get(key)
        .with_context(|| format!("no `{key}` in the checkpoint's metadata"))
}

/// The metadata of a safetensors file, reading only its header.
fn read_header(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .with_context(|| format!("{}: shorter than a safetensors header", path.display()))?;
    let n = u64::from_le_bytes(n);
    anyhow::ensure!(
        n < 100_000_000,
        "{}: header of {n} bytes is not a checkpoint's",
        path.display()
    );
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .with_context(|| format!("{}: truncated header", path.display()))?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header = serde_json::from_slice(&header)
        .with_context(|| format!("{}: unreadable header", path.display()))?;
    Ok(header.metadata)
}

/// Where a resumed loop continues from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// Optimiser steps already taken (the next step is `step + 1`).
    pub step: usize,
    /// Loss of each of those steps.
    pub losses: Vec<f64>,
    /// Wall seconds the earlier attempts spent in the loop.
    pub seconds: f64,
}

/// Where a loop stands after an optimiser step: what a checkpoint saves.
pub struct LoopState<'a> {
    /// Optimiser steps taken, 1..=`total_steps`.
    pub step: usize,
    pub total_steps: usize,
    /// The loss of each step taken.
    pub losses: &'a [f64],
    /// Wall-clock seconds of the loop so far.
    pub seconds: f64,
    pub optimiser: &'a AdamW,
}

/// Saves and restores one training loop's progress (see the module doc).
/// The loop calls [`Self::resume`] before its first step and
/// [`Self::after_step`] after each one.
pub struct Checkpointer<'a> {
    path: PathBuf,
    stage: String,
    phase: String,
    every: CheckpointEvery,
    keep_final: bool,
    dropout: Option<Arc<DropoutState>>,
    cancel: Option<&'a AtomicBool>,
    log: Box<dyn Fn(&str) + 'a>,
    fingerprint: String,
    last_saved_step: usize,
    last_saved_at: Instant,
    saves: usize,
    /// Wall time spent saving, for the summary line (BENCHMARKS.md reads it).
    save_seconds: f64,
}

/// How a checkpointer's summary line starts: the stage log keeps it, the
/// terminal does not need it.
pub const SUMMARY_PREFIX: &str = "checkpoints:";

impl Drop for Checkpointer<'_> {
    fn drop(&mut self) {
        if self.saves > 0 {
            (self.log)(&format!(
                "{SUMMARY_PREFIX} {} of {} saved in {:.3}s",
                self.saves, self.phase, self.save_seconds
            ));
        }
    }
}

impl<'a> Checkpointer<'a> {
    /// The checkpointer of loop `phase` of the stage at `place`; `log`
    /// receives the lines a user should see (resumed from, restarted because).
    pub fn new(place: &CheckpointPlace, phase: &str, log: impl Fn(&str) + 'a) -> Self {
        Self {
            path: checkpoint_file(&place.dir, phase),
            stage: place.stage.clone(),
            phase: phase.to_string(),
            every: place.every,
            keep_final: false,
            dropout: None,
            cancel: None,
            log: Box::new(log),
            fingerprint: String::new(),
            last_saved_step: 0,
            last_saved_at: Instant::now(),
            saves: 0,
            save_seconds: 0.0,
        }
    }

    /// The model's LoRA dropout stream, whose position is saved and restored.
    pub fn with_dropout(mut self, dropout: Arc<DropoutState>) -> Self {
        self.dropout = Some(dropout);
        self
    }

    /// When `cancel` is set the loop saves at the end of its current step and stops.
    pub fn with_cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Also saves the finished state, for a loop a later phase of its stage
    /// depends on: a re-run then skips the whole loop.
    pub fn keeping_final(mut self) -> Self {
        self.keep_final = true;
        self
    }

    /// Checkpoints written so far by this checkpointer.
    pub fn saves(&self) -> usize {
        self.saves
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Restores the last checkpoint of this loop into the optimiser's
    /// variables and state, if there is one that belongs to this run
    /// (`config` over `n_examples`); `None` means start from step 0.
    pub fn resume(
        &mut self,
        config: &TrainConfig,
        n_examples: usize,
        optimiser: &mut AdamW,
    ) -> Result<Option<Resumed>> {
        self.fingerprint = self.fingerprint_of(config, n_examples, optimiser.vars())?;
        self.last_saved_at = Instant::now();
        if !self.path.exists() {
            return Ok(None);
        }
        match self.load(optimiser) {
            Ok(resumed) => {
                (self.log)(&format!(
                    "resuming {} from its checkpoint at step {} ({})",
                    self.phase,
                    resumed.step,
                    self.path.display()
                ));
                self.last_saved_step = resumed.step;
                Ok(Some(resumed))
            }
            Err(reason) => {
                set_aside(&self.path, &reason, &self.log, &self.phase, "step 0")?;
                Ok(None)
            }
        }
    }

    /// After optimiser step `step` of `total_steps`: saves when the
    /// interval is due (or at the end, when keeping the final state), and
    /// stops the loop with an error after saving when the run was cancelled.
    pub fn after_step(&mut self, state: &LoopState) -> Result<()> {
        let (step, total_steps) = (state.step, state.total_steps);
        let cancelled = self.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let due = (self.every.steps > 0 && step - self.last_saved_step >= self.every.steps)
            || self.last_saved_at.elapsed() >= self.every.interval
            || (self.keep_final && step == total_steps)
            || cancelled;
        if due && step > self.last_saved_step {
            self.save(state)?;
        }
        if cancelled && step < total_steps {
            bail!(
                "cancelled at step {step} of {total_steps}; progress saved in {}, `sweep run` resumes from it",
                self.path.display()
            );
        }
        Ok(())
    }

    fn fingerprint_of(
        &self,
        config: &TrainConfig,
        n_examples: usize,
        vars: &[Var],
    ) -> Result<String> {
        #[derive(Serialize)]
        struct Fingerprint<'a> {
            format: u32,
            phase: &'a str,
            config: &'a TrainConfig,
            n_examples: usize,
            vars: Vec<(Vec<usize>, String)>,
            dropout_seed: Option<String>,
        }
        Ok(serde_json::to_string(&Fingerprint {
            format: CHECKPOINT_FORMAT,
            phase: &self.phase,
            config,
            n_examples,
            vars: vars
                .iter()
                .map(|v| (v.dims().to_vec(), format!("{:?}", v.dtype())))
                .collect(),
            dropout_seed: self
                .dropout
                .as_ref()
                .map(|d| d.position().0.iter().map(|b| format!("{b:02x}")).collect()),
        })?)
    }

    fn save(&mut self, state: &LoopState) -> Result<()> {
        let LoopState {
            step,
            total_steps,
            losses,
            seconds,
            optimiser,
        } = *state;
        let started = Instant::now();
        let AdamWState { t, moments } = optimiser.state()?;
        let mut tensors: BTreeMap<String, RawTensor> = BTreeMap::new();
        for (i, (var, (m, v))) in optimiser.vars().iter().zip(&moments).enumerate() {
            tensors.insert(format!("var.{i:05}"), RawTensor::of(var.as_tensor())?);
            tensors.insert(format!("adam_m.{i:05}"), RawTensor::of(m)?);
            tensors.insert(format!("adam_v.{i:05}"), RawTensor::of(v)?);
        }
        tensors.insert(
            "losses".into(),
            RawTensor::of(&Tensor::from_slice(losses, losses.len(), &Device::Cpu)?)?,
        );
        let mut meta: HashMap<String, String> = [
            ("format", CHECKPOINT_FORMAT.to_string()),
            ("stage", self.stage.clone()),
            ("phase", self.phase.clone()),
            ("fingerprint", self.fingerprint.clone()),
            ("step", step.to_string()),
            ("total_steps", total_steps.to_string()),
            ("optimizer_steps", t.to_string()),
            // Rust's float formatting round-trips exactly.
            ("seconds", seconds.to_string()),
            ("checksum", checksum(&tensors)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(d) = &self.dropout {
            meta.insert("dropout_word_pos".into(), d.position().1.to_string());
        }
        let bytes = safetensors::serialize(&tensors, Some(meta))
            .with_context(|| format!("serialising checkpoint {}", self.path.display()))?;
        write_atomically(&self.path, &bytes)?;
        self.last_saved_step = step;
        self.last_saved_at = Instant::now();
        self.saves += 1;
        self.save_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Reads and checks the file, then puts its state into the optimiser.
    fn load(&self, optimiser: &mut AdamW) -> Result<Resumed> {
        let bytes = fs::read(&self.path)?;
        let (_, header) = SafeTensors::read_metadata(&bytes).context("not a safetensors file")?;
        let meta = header.metadata().clone().unwrap_or_default();
        if field(&meta, "fingerprint")? != &self.fingerprint {
            bail!(
                "it belongs to another run of this stage (another training config, data size, \
                 model shape or format)"
            );
        }
        let file = SafeTensors::deserialize(&bytes).context("not a safetensors file")?;
        let raw: BTreeMap<String, RawTensor> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let raw = RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                };
                (name, raw)
            })
            .collect();
        if &checksum(&raw) != field(&meta, "checksum")? {
            bail!("its checksum does not match its contents");
        }
        let tensor = |name: &str, device: &Device| -> Result<Tensor> {
            raw.get(name)
                .with_context(|| format!("no tensor `{name}`"))?
                .to_tensor(device)
        };
        let vars = optimiser.vars().to_vec();
        let mut moments = Vec::with_capacity(vars.len());
        let mut weights = Vec::with_capacity(vars.len());
        for (i, var) in vars.iter().enumerate() {
            let dev = var.device();
            weights.push(tensor(&format!("var.{i:05}"), dev)?);
            moments.push((
                tensor(&format!("adam_m.{i:05}"), dev)?,
                tensor(&format!("adam_v.{i:05}"), dev)?,
            ));
        }
        let losses = tensor("losses", &Device::Cpu)?.to_vec1::<f64>()?;
        let step: usize = field(&meta, "step")?.parse()?;
        anyhow::ensure!(
            losses.len() == step,
            "{} losses for {step} steps",
            losses.len()
        );
        let word_pos = match (&self.dropout, meta.get("dropout_word_pos")) {
            (Some(_), Some(p)) => Some(p.parse::<u128>()?),
            (None, None) => None,
            _ => bail!("the dropout stream's position is missing or unexpected"),
        };
        // Everything read and checked: now change the run's state.
        optimiser.restore(&AdamWState {
            t: field(&meta, "optimizer_steps")?.parse()?,
            moments,
        })?;
        for (var, w) in vars.iter().zip(&weights) {
            var.set(w)?;
        }
        if let (Some(d), Some(pos)) = (&self.dropout, word_pos) {
            d.seek(pos);
        }
        Ok(Resumed {
            step,
            losses,
            seconds: field(&meta, "seconds")?.parse()?,
        })
    }
}

/// The finished outputs of a batch loop (a `generate` stage's batches), as
/// its `<phase>.json` in the partial dir holds them.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedOutputs<O> {
    format: u32,
    stage: String,
    phase: String,
    /// What the outputs belong to (the caller's inputs and settings, hashed).
    fingerprint: String,
    /// Outputs the finished loop has.
    total: usize,
    /// blake3 of `outputs` as JSON.
    checksum: String,
    /// The outputs so far, in order (a `Vec` read back, a slice written).
    outputs: O,
}

/// Saves and restores a batch loop's finished outputs: each batch depends
/// only on its own inputs, so a re-run keeps the finished batches and
/// computes the rest. The same interval, atomic write, checks and warnings
/// as [`Checkpointer`]; a batch counts as a step.
pub struct OutputsCheckpointer<'a> {
    path: PathBuf,
    stage: String,
    phase: String,
    fingerprint: String,
    every: CheckpointEvery,
    cancel: Option<&'a AtomicBool>,
    log: Box<dyn Fn(&str) + 'a>,
    batches: usize,
    last_saved_batch: usize,
    last_saved_at: Instant,
}

impl<'a> OutputsCheckpointer<'a> {
    /// `fingerprint`: anything that changes the outputs (hashed here).
    pub fn new(
        place: &CheckpointPlace,
        phase: &str,
        fingerprint: &[u8],
        log: impl Fn(&str) + 'a,
    ) -> Self {
        Self {
            path: place.dir.join(format!("{phase}.json")),
            stage: place.stage.clone(),
            phase: phase.to_string(),
            fingerprint: blake3::hash(fingerprint).to_hex().to_string(),
            every: place.every,
            cancel: None,
            log: Box::new(log),
            batches: 0,
            last_saved_batch: 0,
            last_saved_at: Instant::now(),
        }
    }

    pub fn with_cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The outputs an earlier attempt finished (empty: start from the first batch).
    pub fn resume<T: serde::de::DeserializeOwned + Serialize>(&mut self) -> Result<Vec<T>> {
        self.last_saved_at = Instant::now();
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let load = || -> Result<Vec<T>> {
            let saved: SavedOutputs<Vec<T>> = serde_json::from_slice(&fs::read(&self.path)?)
                .context("not a saved-outputs file")?;
            if saved.fingerprint != self.fingerprint || saved.format != CHECKPOINT_FORMAT {
                bail!("it belongs to another run of this stage (other inputs or settings)");
            }
            if outputs_checksum(&saved.outputs)? != saved.checksum {
                bail!("its checksum does not match its contents");
            }
            Ok(saved.outputs)
        };
        match load() {
            Ok(outputs) => {
                (self.log)(&format!(
                    "resuming {} after its {} saved outputs ({})",
                    self.phase,
                    outputs.len(),
                    self.path.display()
                ));
                Ok(outputs)
            }
            Err(reason) => {
                set_aside(
                    &self.path,
                    &reason,
                    &self.log,
                    &self.phase,
                    "the first batch",
                )?;
                Ok(Vec::new())
            }
        }
    }

    /// After a batch: saves every output so far when the interval is due,
    /// and stops with an error after saving when the run was cancelled.
    pub fn after_batch<T: Serialize>(&mut self, outputs: &[T], total: usize) -> Result<()> {
        self.batches += 1;
        let cancelled = self.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let due = (self.every.steps > 0
            && self.batches - self.last_saved_batch >= self.every.steps)
            || self.last_saved_at.elapsed() >= self.every.interval
            || cancelled;
        if due && outputs.len() < total {
            let saved = SavedOutputs {
                format: CHECKPOINT_FORMAT,
                stage: self.stage.clone(),
                phase: self.phase.clone(),
                fingerprint: self.fingerprint.clone(),
                total,
                checksum: outputs_checksum(outputs)?,
                outputs,
            };
            write_atomically(&self.path, &serde_json::to_vec(&saved)?)?;
            self.last_saved_batch = self.batches;
            self.last_saved_at = Instant::now();
        }
        if cancelled && outputs.len() < total {
            bail!(
                "cancelled after {} of {total} outputs; progress saved in {}, `sweep run` resumes from it",
                outputs.len(),
                self.path.display()
            );
        }
        Ok(())
    }
}

/// Moves an unusable checkpoint to `<file>.corrupt` (kept for a look, not
/// read again) and warns that loop `phase` restarts from `restart`.
fn set_aside(
    path: &Path,
    reason: &anyhow::Error,
    log: &dyn Fn(&str),
    phase: &str,
    restart: &str,
) -> Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside)
        .with_context(|| format!("moving the unusable checkpoint {} aside", path.display()))?;
    log(&format!(
        "warning: checkpoint {} is unusable ({reason:#}); moved to {} and {phase} restarts from {restart}",
        path.display(),
        aside.display(),
    ));
    Ok(())
}

fn outputs_checksum<T: Serialize>(outputs: &[T]) -> Result<String> {
    Ok(blake3::hash(&serde_json::to_vec(outputs)?)
        .to_hex()
        .to_string())
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never part of one: temp file, fsync, rename, fsync of the dir.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("a checkpoint file has a dir");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// A tensor as the bytes safetensors stores.
struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl RawTensor {
    fn of(t: &Tensor) -> Result<Self> {
        let flat = t.flatten_all()?;
        let (dtype, data): (Dtype, Vec<u8>) = match t.dtype() {
            DType::F32 => (Dtype::F32, le_bytes(&flat.to_vec1::<f32>()?).to_vec()),
            DType::F64 => (Dtype::F64, le_bytes(&flat.to_vec1::<f64>()?).to_vec()),
            DType::BF16 => (
                Dtype::BF16,
                le_bytes(&flat.to_vec1::<half::bf16>()?).to_vec(),
            ),
            DType::F16 => (Dtype::F16, le_bytes(&flat.to_vec1::<half::f16>()?).to_vec()),
            other => bail!("a checkpoint holds float tensors only, not {other:?}"),
        };
        Ok(Self {
            dtype,
            shape: t.dims().to_vec(),
            data,
        })
    }

    fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let dtype = match self.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::BF16 => DType::BF16,
            Dtype::F16 => DType::F16,
            other => bail!("unexpected tensor dtype {other:?}"),
        };
        Ok(Tensor::from_raw_buffer(
            &self.data,
            dtype,
            &self.shape,
            device,
        )?)
    }
}

/// The float types a checkpoint stores: plain values, no padding, any bit
/// pattern readable as bytes.
trait PlainFloat: Copy {}
impl PlainFloat for f32 {}
impl PlainFloat for f64 {}
impl PlainFloat for half::bf16 {}
impl PlainFloat for half::f16 {}

#[cfg(not(target_endian = "little"))]
compile_error!("checkpoints store little-endian bytes: port `le_bytes` to this machine");

/// The bytes of `values` as safetensors stores them (little-endian), seen in
/// place: converting value by value cost 75 ms of a 100 ms save of the tiny
/// profile's largest model in the debug build (this crate is built at
/// opt-level 0).
fn le_bytes<T: PlainFloat>(values: &[T]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and accepts every bit pattern; a
    // `PlainFloat` has no padding; the slice covers exactly the
    // `size_of_val(values)` bytes of `values`, borrowed for as long.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// blake3 over every tensor's name, dtype, shape and bytes, in name order.
fn checksum(tensors: &BTreeMap<String, RawTensor>) -> String {
    let mut h = blake3::Hasher::new();
    for (name, t) in tensors {
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.dtype, t.shape).as_bytes());
        h.update(&t.data);
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lora::LORA_TARGETS;
    use crate::model::{LanguageModel, LoraConfig, Policy};
    use crate::train::sft::train_sft;
    use crate::train::test_model::tiny_policy;
    use crate::train::{LoopRun, StepInfo, TokenizedExample};
    use rand::{Rng, SeedableRng};
    use std::cell::RefCell;

    /// After prompt [1, p], the response counts up from p.
    fn corpus() -> Vec<TokenizedExample> {
        (0..10u32)
            .map(|p| TokenizedExample {
                prompt: vec![1, 2 + p],
                response: (3 + p..6 + p + p % 3).collect(),
            })
            .collect()
    }

    fn config(lr: f64) -> TrainConfig {
        TrainConfig {
            epochs: 4,
            batch_size: 3,
            lr,
            warmup_steps: 2,
            weight_decay: 0.01,
            seed: 5,
            max_len: 32,
            ..TrainConfig::default()
        }
    }

    /// The tiny decoder with LoRA adapters whose dropout is on: a stage's
    /// model, with a random stream the checkpoint must carry.
    fn lora_policy() -> anyhow::Result<Policy> {
        let lora = LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.2,
            targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
        };
        let policy = tiny_policy(3)?.with_lora(&lora, 9)?;
        policy.backbone().set_training(true);
        Ok(policy)
    }

    fn weight_bits(policy: &Policy) -> anyhow::Result<Vec<u32>> {
        let mut out = Vec::new();
        for v in policy.trainable_vars() {
            let w = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            out.extend(w.iter().map(|x| x.to_bits()));
        }
        Ok(out)
    }

    fn loss_bits(losses: &[f64]) -> Vec<u64> {
        losses.iter().map(|x| x.to_bits()).collect()
    }

    /// `attempt` finished with exactly `want`'s losses (bit for bit) and weights.
    fn assert_finished_as(attempt: Attempt, want: &(Vec<f64>, Vec<u32>), what: &str) {
        let (losses, weights) = attempt.finished.expect("the attempt finishes");
        assert_eq!(loss_bits(&losses), loss_bits(&want.0), "{what}: losses");
        assert!(weights == want.1, "{what}: weights");
    }

    /// What one attempt of a stage did: its losses (if it finished), the
    /// steps it ran, and the lines its checkpointer logged.
    struct Attempt {
        finished: Option<(Vec<f64>, Vec<u32>)>,
        ran: usize,
        log: Vec<String>,
    }

    /// One attempt at training a fresh model (as a stage re-run builds it)
    /// with checkpoints in `dir`: killed (a panic in the progress callback,
    /// so nothing is saved after it) once it has run `kill_after` steps,
    /// or cancelled (Ctrl-C: the loop saves, then stops) after `cancel_after`.
    fn attempt(
        dir: &Path,
        every: usize,
        lr: f64,
        kill_after: Option<usize>,
        cancel_after: Option<usize>,
    ) -> anyhow::Result<Attempt> {
        let place = CheckpointPlace {
            dir: dir.to_path_buf(),
            stage: "sft/test".into(),
            every: CheckpointEvery {
                steps: every,
                interval: Duration::from_secs(3600),
            },
        };
        let policy = lora_policy()?;
        let log = RefCell::new(Vec::new());
        let cancel = AtomicBool::new(false);
        let mut ran = 0;
        let mut progress = |_: StepInfo| {
            ran += 1;
            if Some(ran) == kill_after {
                panic!("killed");
            }
            if Some(ran) == cancel_after {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let mut checkpointer =
            Checkpointer::new(&place, "sft", |l| log.borrow_mut().push(l.into()))
                .with_dropout(policy.backbone().dropout_state())
                .with_cancel(&cancel);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train_sft(
                &policy,
                &corpus(),
                LoopRun {
                    config: &config(lr),
                    pad_id: 0,
                    device: &Device::Cpu,
                    progress: Some(&mut progress),
                    checkpoint: Some(&mut checkpointer),
                },
            )
        }));
        drop(checkpointer);
        let finished = match result {
            Ok(Ok(report)) => Some((report.losses, weight_bits(&policy)?)),
            Ok(Err(e)) if e.to_string().contains("cancelled") => None,
            Ok(Err(e)) => return Err(e),
            Err(_) => None, // killed
        };
        Ok(Attempt {
            finished,
            ran,
            log: log.into_inner(),
        })
    }

    fn uninterrupted(lr: f64) -> anyhow::Result<(Vec<f64>, Vec<u32>)> {
        let dir = tempfile::tempdir()?;
        let done = attempt(dir.path(), 0, lr, None, None)?;
        Ok(done.finished.expect("finishes"))
    }

    const TOTAL: usize = 4 * 4; // 4 epochs × ceil(10 / 3) steps

    /// Killed at random steps (after at least one step) four times, then
    /// run to the end: the same losses and weights, bit for bit, as one
    /// uninterrupted run, and no kill cost more than the interval's steps.
    #[test]
    fn killed_at_random_steps_the_loop_ends_bit_identical() -> anyhow::Result<()> {
        let (want_losses, want_weights) = uninterrupted(1e-2)?;
        assert_eq!(want_losses.len(), TOTAL);
        let every = 3;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let dir = tempfile::tempdir()?;
        let (mut ran, mut kills, mut resumes) = (0, 0, 0);
        let finished = loop {
            let kill_after = (kills < 4).then(|| rng.random_range(1..=6));
            let a = attempt(dir.path(), every, 1e-2, kill_after, None)?;
            ran += a.ran;
            resumes += a
                .log
                .iter()
                .filter(|l| l.starts_with("resuming sft"))
                .count();
            assert!(!a.log.iter().any(|l| l.contains("warning")), "{:?}", a.log);
            match a.finished {
                Some(done) => break done,
                None => kills += 1,
            }
        };
        assert_eq!(kills, 4);
        assert!(resumes >= 1, "some attempt resumed");
        assert_eq!(loss_bits(&finished.0), loss_bits(&want_losses));
        assert!(finished.1 == want_weights, "final weights differ");
        // A kill after step k loses the steps since the last save: at most `every`.
        assert!(
            ran <= TOTAL + kills * every,
            "{ran} steps run for {TOTAL}: more repeated than {kills} kills × {every}"
        );
        Ok(())
    }

    /// Ctrl-C: the loop saves at the step it is on and stops; the re-run
    /// repeats nothing.
    #[test]
    fn a_cancelled_loop_saves_and_the_rerun_repeats_nothing() -> anyhow::Result<()> {
        let (want_losses, want_weights) = uninterrupted(1e-2)?;
        let dir = tempfile::tempdir()?;
        let first = attempt(dir.path(), 100, 1e-2, None, Some(7))?;
        assert!(first.finished.is_none());
        assert_eq!(first.ran, 7);
        let summary = CheckpointSummary::read(&checkpoint_file(dir.path(), "sft"))?;
        assert_eq!((summary.step, summary.total_steps), (7, TOTAL));
        assert_eq!(summary.stage, "sft/test");
        let second = attempt(dir.path(), 100, 1e-2, None, None)?;
        assert_eq!(second.ran, TOTAL - 7);
        assert!(
            second.log[0].contains("resuming sft from its checkpoint at step 7"),
            "{:?}",
            second.log
        );
        assert_finished_as(second, &(want_losses, want_weights), "resumed");
        Ok(())
    }

    /// A checkpoint of another config (here another learning rate, as a
    /// stage whose key did not change but whose code did) is not resumed:
    /// the loop warns and restarts, and ends as a fresh run of the new config.
    #[test]
    fn a_checkpoint_of_another_config_is_discarded_with_a_warning() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        attempt(dir.path(), 100, 1e-2, None, Some(5))?;
        let other = attempt(dir.path(), 100, 2e-2, None, None)?;
        assert_eq!(other.ran, TOTAL, "restarted from step 0");
        assert!(
            other
                .log
                .iter()
                .any(|l| l.starts_with("warning") && l.contains("another run")),
            "{:?}",
            other.log
        );
        let (want_losses, want_weights) = uninterrupted(2e-2)?;
        assert_finished_as(other, &(want_losses, want_weights), "restarted");
        Ok(())
    }

    /// A flipped byte in the tensors, or a truncated file: detected,
    /// moved aside with a warning, and the loop restarts from step 0.
    #[test]
    fn a_corrupt_checkpoint_restarts_from_zero_with_a_warning() -> anyhow::Result<()> {
        let want = uninterrupted(1e-2)?;
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 2] = [
            ("checksum", |b| {
                let last = b.len() - 3;
                b[last] ^= 0x10;
            }),
            ("safetensors", |b| b.truncate(b.len() / 2)),
        ];
        for (expected, damage) in damages {
            let dir = tempfile::tempdir()?;
            attempt(dir.path(), 100, 1e-2, None, Some(6))?;
            let file = checkpoint_file(dir.path(), "sft");
            let mut bytes = fs::read(&file)?;
            damage(&mut bytes);
            fs::write(&file, bytes)?;
            let again = attempt(dir.path(), 100, 1e-2, None, None)?;
            assert_eq!(again.ran, TOTAL, "{expected}: restarted from step 0");
            assert!(
                again.log[0].starts_with("warning") && again.log[0].contains(expected),
                "{:?}",
                again.log
            );
            assert!(file.with_extension("safetensors.corrupt").exists());
            assert_finished_as(again, &want, expected);
        }
        Ok(())
    }

    /// The dropout stream moved during training, so restoring its
    /// position is what the bit-identity above tests.
    #[test]
    fn training_with_lora_dropout_draws_from_the_stream() -> anyhow::Result<()> {
        let policy = lora_policy()?;
        let before = policy.backbone().dropout_state().position().1;
        train_sft(
            &policy,
            &corpus(),
            LoopRun::quiet(&config(1e-2), 0, &Device::Cpu),
        )?;
        assert!(policy.backbone().dropout_state().position().1 > before);
        Ok(())
    }

    /// A batch loop's outputs: saved per interval, resumed, and refused
    /// (with a warning) when they belong to other inputs or were edited.
    #[test]
    fn saved_outputs_resume_and_mismatched_or_edited_ones_restart() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let place = |steps| CheckpointPlace {
            dir: dir.path().to_path_buf(),
            stage: "generate/test".into(),
            every: CheckpointEvery {
                steps,
                interval: Duration::from_secs(3600),
            },
        };
        let log = RefCell::new(Vec::<String>::new());
        let logged = |l: &str| log.borrow_mut().push(l.into());
        let (one, two) = (place(1), place(100));
        let mut c = OutputsCheckpointer::new(&one, "generate", b"inputs", logged);
        assert!(c.resume::<u32>()?.is_empty());
        c.after_batch(&[1u32, 2], 6)?;
        c.after_batch(&[1u32, 2, 3, 4], 6)?;
        let summary = CheckpointSummary::read(c.path())?;
        assert_eq!((summary.step, summary.total_steps), (4, 6));
        let path = c.path().to_path_buf();

        let mut c = OutputsCheckpointer::new(&one, "generate", b"inputs", logged);
        assert_eq!(c.resume::<u32>()?, [1, 2, 3, 4]);
        assert!(log.borrow()[0].contains("resuming generate after its 4 saved outputs"));

        // Ctrl-C between batches: saved even though the interval is not due.
        let cancel = AtomicBool::new(true);
        let mut c =
            OutputsCheckpointer::new(&two, "generate", b"inputs", logged).with_cancel(&cancel);
        let err = c.after_batch(&[9u32, 8, 7, 6, 5], 6).unwrap_err();
        assert!(err.to_string().contains("cancelled after 5 of 6"), "{err}");
        let mut c = OutputsCheckpointer::new(&one, "generate", b"inputs", logged);
        assert_eq!(c.resume::<u32>()?, [9, 8, 7, 6, 5]);

        let mut c = OutputsCheckpointer::new(&one, "generate", b"other inputs", logged);
        assert!(c.resume::<u32>()?.is_empty());
        assert!(
            log.borrow().last().unwrap().contains("another run"),
            "{:?}",
            log.borrow()
        );
        assert!(!path.exists());

        let mut c = OutputsCheckpointer::new(&one, "generate", b"inputs", logged);
        c.after_batch(&[1u32, 2], 6)?;
        let edited = fs::read_to_string(&path)?.replace("[1,2]", "[1,3]");
        fs::write(&path, edited)?;
        let mut c = OutputsCheckpointer::new(&one, "generate", b"inputs", logged);
        assert!(c.resume::<u32>()?.is_empty());
        assert!(
            log.borrow().last().unwrap().contains("checksum"),
            "{:?}",
            log.borrow()
        );
        Ok(())
    }
}
