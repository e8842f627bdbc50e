//! The cache: one artifact dir per finished stage,
//! `results/cache/<kind>/<key>/`, holding the stage's files and its record
//! file ([`record`]), plus a sled index under `results/cache/index.sled`
//! (stage key → [`Record`]) derived from those record files.
//!
//! A stage writes into `results/cache/tmp/<key>/`; on success every file is
//! fsynced and hashed, the record file is written last (temp, fsync,
//! rename), the dir is renamed into place, and only then the index entry is
//! written and flushed. A run killed at any moment therefore never leaves a
//! record for an unfinished stage: a leftover temp dir is swept on the next
//! open, and a dir renamed into place whose index entry never got written is
//! ingested from its record file on the next open.
//!
//! Opening the cache reconciles the index with the record files: a missing
//! or corrupt index is rebuilt from them (with a warning); a record file
//! the index lacks is ingested after its files are hashed in full; a record
//! file whose own checksum or whose files' checksums fail is dropped (its
//! dir moved to `failed/`) so the stage re-runs. `sweep cache repair` does
//! the same from scratch.
//!
//! A training stage's checkpoints live in its partial dir
//! (`results/cache/partial/<key>/`, [`partial`]), which the sweep on open
//! keeps: a re-run of the key resumes from it.
//!
//! A lock file (`results/cache/.lock`) keeps two writers off one cache: the
//! second refuses, naming the holder's pid. Read-only commands never take
//! it: they read a [`snapshot::Snapshot`] of the record files.
pub mod check;
pub mod partial;
pub mod read_log;
pub mod record;
pub mod snapshot;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::spec::node::Node;
use check::{Depth, check_record};
pub use record::{FileStat, RECORD_FILE, Record, RecordError, RecordHead};

/// Name of a stage's log file inside its artifact dir.
pub const LOG_FILE: &str = "stage.log";

/// Read access to finished stages, shared by the writer ([`Cache`]) and the
/// lock-free reader ([`snapshot::Snapshot`]).
pub trait CacheRead {
    /// The cache root (`<results>/cache`).
    fn root(&self) -> &Path;
    fn get(&self, key: &str) -> Result<Option<Record>>;
    /// Every record, sorted by key.
    fn records(&self) -> Result<Vec<Record>>;

    fn artifact_dir(&self, record: &Record) -> PathBuf {
        self.root().join(&record.artifact_dir)
    }

    /// `Err(reason)` when a recorded artifact is missing or changed
    /// (the quick check of [`check`]: size and mtime, else the content).
    fn verify(&self, record: &Record) -> std::result::Result<(), String> {
        check_record(self.root(), record, Depth::Quick)
    }
}

/// What opening (or repairing) the cache found and fixed.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    /// The index was missing or unreadable and was rebuilt (the reason).
    pub rebuilt: Option<String>,
    /// Record files the index lacked, now in it.
    pub ingested: Vec<String>,
    /// Dirs whose record could not be trusted, moved to `failed/` (dir, reason).
    pub dropped: Vec<(PathBuf, String)>,
    /// Records of an older sweep that got their record file now.
    pub upgraded: usize,
    /// Stage dirs without any record (an older sweep's orphans): left for `sweep gc`.
    pub orphans: Vec<PathBuf>,
}

impl Reconciled {
    fn is_quiet(&self) -> bool {
        self.rebuilt.is_none()
            && self.ingested.is_empty()
            && self.dropped.is_empty()
            && self.upgraded == 0
    }
}

impl std::fmt::Display for Reconciled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(reason) = &self.rebuilt {
            writeln!(
                f,
                "cache index rebuilt from the record files in the artifact dirs ({reason})"
            )?;
        }
        if !self.ingested.is_empty() {
            writeln!(
                f,
                "{} finished stage(s) restored from their record files",
                self.ingested.len()
            )?;
        }
        for (dir, reason) in &self.dropped {
            writeln!(
                f,
                "dropped {} ({reason}): moved to failed/, the stage re-runs",
                dir.display()
            )?;
        }
        if self.upgraded > 0 {
            writeln!(
                f,
                "{} record(s) of an older sweep checked in full and given record files",
                self.upgraded
            )?;
        }
        if !self.orphans.is_empty() {
            writeln!(
                f,
                "{} stage dir(s) without a record (`sweep gc --all-unreferenced` deletes them)",
                self.orphans.len()
            )?;
        }
        Ok(())
    }
}

pub struct Cache {
    root: PathBuf,
    db: sled::Db,
    /// The index in memory (loaded and checked at open; written through to `db`).
    records: Mutex<HashMap<String, Record>>,
    /// Held (flock) for the cache's lifetime.
    _lock: File,
}

impl CacheRead for Cache {
    fn root(&self) -> &Path {
        &self.root
    }

    fn get(&self, key: &str) -> Result<Option<Record>> {
        Ok(self.index().get(key).cloned())
    }

    fn records(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = self.index().values().cloned().collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

const INDEX_DIR: &str = "index.sled";

impl Cache {
    /// The cache root under a results dir.
    pub fn root_of(results: &Path) -> PathBuf {
        results.join("cache")
    }

    /// Whether a cache exists under `results`.
    pub fn exists(results: &Path) -> bool {
        Self::root_of(results).is_dir()
    }

    /// Opens (creating if needed) the cache under `results`, taking the
    /// lock, and reconciles the index with the record files; anything it
    /// had to fix is printed as a warning.
    pub fn open(results: &Path) -> Result<Cache> {
        let (cache, found) = Self::open_reconciled(results, false)?;
        if !found.is_quiet() {
            for line in found.to_string().lines() {
                eprintln!("warning: {line}");
            }
        }
        Ok(cache)
    }

    /// `sweep cache repair`: moves the index aside and rebuilds it from the
    /// record files, hashing every file.
    pub fn repair(results: &Path) -> Result<(Cache, Reconciled)> {
        Self::open_reconciled(results, true)
    }

    fn open_reconciled(results: &Path, rebuild: bool) -> Result<(Cache, Reconciled)> {
        let root = Self::root_of(results);
        fs::create_dir_all(&root)
            .with_context(|| format!("creating cache dir {}", root.display()))?;
        let lock = take_lock(&root)?;
        // Temp dirs of a killed run hold no finished work.
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing stale temp dir {}", tmp.display()))?;
        }
        let mut found = Reconciled::default();
        let index_path = root.join(INDEX_DIR);
        let had_index = index_path.exists();
        let loaded = if rebuild {
            Err("`sweep cache repair`".to_string())
        } else {
            open_index(&index_path)?.and_then(|db| load_index(&db).map(|m| (db, m)))
        };
        let (db, map) = match loaded {
            Ok(ok) => ok,
            Err(reason) => {
                if had_index {
                    set_aside(&index_path, if rebuild { "old" } else { "corrupt" })?;
                    found.rebuilt = Some(if rebuild {
                        reason
                    } else {
                        format!("{} was unreadable: {reason}", index_path.display())
                    });
                }
                let db = open_index(&index_path)?.map_err(|e| {
                    anyhow::anyhow!("creating cache index {}: {e}", index_path.display())
                })?;
                (db, HashMap::new())
            }
        };
        let cache = Cache {
            root,
            db,
            records: Mutex::new(map),
            _lock: lock,
        };
        cache.reconcile(&mut found, had_index)?;
        Ok((cache, found))
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the index in line with the stage dirs (see the module doc).
    fn reconcile(&self, found: &mut Reconciled, had_index: bool) -> Result<()> {
        if !had_index && stage_dirs(&self.root)?.next().is_some() {
            found.rebuilt = Some(format!(
                "{} was missing",
                self.root.join(INDEX_DIR).display()
            ));
        }
        for dir in stage_dirs(&self.root)? {
            let key = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if self.index().contains_key(&key) {
                continue;
            }
            match self.ingest_record(&dir) {
                Ok(rec) => found.ingested.push(rec.name),
                Err(IngestError::Record(RecordError::Missing)) => found.orphans.push(dir),
                Err(e) => {
                    self.drop_dir(&dir)?;
                    found.dropped.push((dir, e.to_string()));
                }
            }
        }
        // Records of a sweep that wrote no record files or stats: check in full once.
        let old: Vec<Record> = self
            .index()
            .values()
            .filter(|r| r.stats.len() != r.files.len())
            .cloned()
            .collect();
        for mut rec in old {
            if check_record(&self.root, &rec, Depth::Full).is_err() {
                continue; // stale: the run re-runs it
            }
            let dir = self.artifact_dir(&rec);
            for file in rec.files.keys() {
                rec.stats
                    .insert(file.clone(), FileStat::of(&fs::metadata(dir.join(file))?));
            }
            let rec = record::write_record_file(&dir, &rec)?;
            self.insert_index(rec)?;
            found.upgraded += 1;
        }
        Ok(())
    }

    /// Takes a sealed stage dir (`<cache>/<kind>/<key>/` with its record
    /// file, e.g. written by a cluster worker with [`record::seal`]) into the
    /// index after hashing its files in full. Nothing changes on error.
    pub fn ingest_record(&self, dir: &Path) -> std::result::Result<Record, IngestError> {
        let rec = record::read_record_file(dir)?;
        let expected = self.root.join(&rec.artifact_dir);
        if fs::canonicalize(&expected).ok() != fs::canonicalize(dir).ok() {
            return Err(IngestError::Record(RecordError::Misplaced(
                rec.artifact_dir.clone(),
            )));
        }
        check_record(&self.root, &rec, Depth::Full).map_err(IngestError::Files)?;
        self.insert_index(rec.clone())
            .map_err(|e| IngestError::Index(format!("{e:#}")))?;
        Ok(rec)
    }

    /// Writes one index entry and flushes it.
    fn insert_index(&self, rec: Record) -> Result<()> {
        self.db
            .insert(rec.key.as_bytes(), serde_json::to_vec(&rec)?)
            .context("writing the cache index")?;
        self.db.flush().context("flushing the cache index")?;
        self.index().insert(rec.key.clone(), rec);
        Ok(())
    }

    /// Moves an untrusted stage dir to `failed/<key>` (kept for a look; `gc` deletes it).
    fn drop_dir(&self, dir: &Path) -> Result<()> {
        let key = dir.file_name().unwrap_or_default();
        let dest = self.root.join("failed").join(key);
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::create_dir_all(dest.parent().expect("has parent"))?;
        fs::rename(dir, &dest)
            .with_context(|| format!("moving {} to {}", dir.display(), dest.display()))
    }

    /// A fresh, empty temp dir for `key`.
    pub fn begin(&self, key: &str) -> Result<PathBuf> {
        let dir = self.root.join("tmp").join(key);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Seals a finished stage's temp dir (files hashed and fsynced, record
    /// file written), moves it into place, then writes its index entry.
    pub fn commit(
        &self,
        node: &Node,
        tmp: &Path,
        started_unix_s: f64,
        duration_s: f64,
        metrics: std::collections::BTreeMap<String, f64>,
    ) -> Result<Record> {
        let record = record::seal(
            tmp,
            RecordHead {
                key: node.key.clone(),
                kind: node.kind.clone(),
                version: node.version,
                name: node.name.clone(),
                started_unix_s,
                duration_s,
                metrics,
                params: node.params.clone(),
                inputs: node.inputs.clone(),
            },
        )?;
        File::open(tmp)?.sync_all()?;
        let dest = self.root.join(&record.artifact_dir);
        if dest.exists() {
            // An artifact without a record, or one that failed verification.
            self.discard(&dest)?;
        }
        let kind_dir = dest.parent().expect("has kind dir");
        fs::create_dir_all(kind_dir)?;
        fs::rename(tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        File::open(kind_dir)?.sync_all()?;
        self.insert_index(record.clone())?;
        Ok(record)
    }

    /// Keeps a failed stage's temp dir (with its log) at `failed/<key>/`;
    /// returns the log's path.
    pub fn fail(&self, key: &str, tmp: &Path) -> Result<PathBuf> {
        let dest = self.root.join("failed").join(key);
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::create_dir_all(dest.parent().expect("has parent"))?;
        fs::rename(tmp, &dest)?;
        Ok(dest.join(LOG_FILE))
    }

    /// Deletes a record and its artifact dir. The dir is first renamed out
    /// of place, so a reader never sees half of it.
    pub fn remove(&self, record: &Record) -> Result<()> {
        let dir = self.artifact_dir(record);
        if dir.exists() {
            self.discard(&dir)?;
        }
        self.db.remove(record.key.as_bytes())?;
        self.db.flush()?;
        self.index().remove(&record.key);
        Ok(())
    }

    /// Renames `dir` into `tmp/` (atomic), then deletes it.
    fn discard(&self, dir: &Path) -> Result<()> {
        let trash = self.root.join("tmp").join(format!(
            "discard-{}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        if trash.exists() {
            fs::remove_dir_all(&trash)?;
        }
        fs::create_dir_all(self.root.join("tmp"))?;
        fs::rename(dir, &trash).with_context(|| format!("moving {} aside", dir.display()))?;
        fs::remove_dir_all(&trash).with_context(|| format!("removing {}", trash.display()))
    }

    /// `sweep verify`: hashes every file of every record. A record whose
    /// files changed is dropped (its dir deleted) so the next `sweep run`
    /// re-runs the stage.
    pub fn verify_all(&self) -> Result<Verified> {
        let mut out = Verified::default();
        for rec in self.records()? {
            out.checked += 1;
            if let Err(reason) = check_record(&self.root, &rec, Depth::Full) {
                self.remove(&rec)?;
                out.dropped.push((rec.name, reason));
            }
        }
        Ok(out)
    }

    /// Dirs under the cache that no record points to (orphans, failed and
    /// temp dirs; not the partial dirs of unfinished stages).
    pub fn unreferenced_dirs(&self) -> Result<Vec<PathBuf>> {
        let referenced: std::collections::HashSet<PathBuf> = self
            .index()
            .values()
            .map(|r| self.root.join(&r.artifact_dir))
            .collect();
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let kind_dir = entry?.path();
            let name = kind_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            // Partial dirs are resumable work, not orphans: `sweep gc` judges them by its plan.
            if !kind_dir.is_dir()
                || name == INDEX_DIR
                || name.starts_with(INDEX_DIR)
                || name == partial::PARTIAL_DIR
            {
                continue;
            }
            for sub in fs::read_dir(&kind_dir)? {
                let dir = sub?.path();
                if !referenced.contains(&dir) {
                    out.push(dir);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What `sweep verify` found.
#[derive(Debug, Default, Clone)]
pub struct Verified {
    pub checked: usize,
    /// (stage name, what changed), each dropped from the cache.
    pub dropped: Vec<(String, String)>,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, reason) in &self.dropped {
            writeln!(f, "dropped {name}: {reason}")?;
        }
        write!(
            f,
            "{} record(s) hashed in full, {} dropped{}",
            self.checked,
            self.dropped.len(),
            if self.dropped.is_empty() {
                ""
            } else {
                "; `sweep run` re-runs them"
            }
        )
    }
}

/// Why a stage dir could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{0}")]
    Files(String),
    #[error("{0}")]
    Index(String),
}

/// Every `<cache>/<kind>/<key>` dir of a known stage kind.
pub fn stage_dirs(root: &Path) -> Result<impl Iterator<Item = PathBuf>> {
    let mut out = Vec::new();
    for kind in crate::stage::KINDS {
        let kind_dir = root.join(kind);
        let Ok(entries) = fs::read_dir(&kind_dir) else {
            continue;
        };
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out.into_iter())
}

/// Takes `root/.lock` or says who holds it.
fn take_lock(root: &Path) -> Result<File> {
    let lock_path = root.join(".lock");
    let mut lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", lock_path.display()))?;
    if !fs4::fs_std::FileExt::try_lock_exclusive(&lock)? {
        let mut holder = String::new();
        let _ = lock.read_to_string(&mut holder);
        bail!(
            "the cache {} is in use by another sweep process (pid {}); wait for it to finish, or stop it, then retry (`sweep status`, `plan` and `why` work meanwhile)",
            root.display(),
            holder.trim()
        );
    }
    lock.set_len(0)?;
    write!(lock, "{}", std::process::id())?;
    lock.sync_all()?;
    Ok(lock)
}

/// Opens the sled index; a corrupt one errors (sled may also panic on
/// garbage, which is caught and reported the same way).
fn open_index(path: &Path) -> Result<std::result::Result<sled::Db, String>> {
    let path = path.to_owned();
    match std::panic::catch_unwind(move || sled::open(path)) {
        Ok(Ok(db)) => Ok(Ok(db)),
        Ok(Err(e)) if is_corruption(&e) => Ok(Err(e.to_string())),
        Ok(Err(e)) => Err(e).context("opening the cache index"),
        Err(_) => Ok(Err("sled panicked reading it".into())),
    }
}

/// Whether a sled error says the index's files are damaged (rebuild it),
/// as opposed to an I/O failure such as a full disk (report it, keep the index).
fn is_corruption(e: &sled::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        sled::Error::Io(io) => {
            matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData)
        }
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => true,
        _ => false,
    }
}

/// Every entry of the index; any unreadable entry makes the whole index suspect.
fn load_index(db: &sled::Db) -> std::result::Result<HashMap<String, Record>, String> {
    let load = || -> std::result::Result<HashMap<String, Record>, String> {
        let mut out = HashMap::new();
        for kv in db.iter() {
            let (k, v) = kv.map_err(|e| e.to_string())?;
            let rec: Record = serde_json::from_slice(&v)
                .map_err(|e| format!("entry {}: {e}", String::from_utf8_lossy(&k)))?;
            out.insert(rec.key.clone(), rec);
        }
        Ok(out)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
        .unwrap_or_else(|_| Err("sled panicked reading it".into()))
}

/// Moves an index to `index.sled.<suffix>` (replacing an older one), so
/// nothing is deleted that a person might want to look at.
fn set_aside(index: &Path, suffix: &str) -> Result<()> {
    let aside = index.with_extension(format!("sled.{suffix}"));
    if aside.exists() {
        fs::remove_dir_all(&aside)?;
    }
    fs::rename(index, &aside)
        .with_context(|| format!("moving the unreadable index {} aside", index.display()))
}
