//! The cache: a sled index under `results/cache/index.sled` (stage key →
//! [`Record`]) and one artifact dir per key, `results/cache/<kind>/<key>/`.
//!
//! A stage writes into `results/cache/tmp/<key>/`; on success every file is
//! fsynced, the dir is renamed into place, and only then the record is
//! written and flushed. A run killed at any moment therefore never leaves a
//! record for an unfinished stage; a leftover temp dir is swept on the next
//! open. A lock file (`results/cache/.lock`) keeps two `sweep` processes off
//! one cache: the second refuses, naming the holder's pid.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::plan::Node;

/// Name of a stage's log file inside its artifact dir.
pub const LOG_FILE: &str = "stage.log";

// TEMP SHIM until the reliability branch lands (not committed).
pub mod check;
pub mod record;
pub use record::{FileStat, RECORD_FILE, Record, RecordError, RecordHead};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{0}")]
    Files(String),
    #[error("{0}")]
    Index(String),
}

impl Cache {
    pub fn ingest_record(&self, dir: &Path) -> std::result::Result<Record, IngestError> {
        let rec = record::read_record_file(dir)?;
        check::check_record(&self.root, &rec, check::Depth::Full).map_err(IngestError::Files)?;
        self.db
            .insert(rec.key.as_bytes(), serde_json::to_vec(&rec).unwrap())
            .map_err(|e| IngestError::Index(e.to_string()))?;
        self.db
            .flush()
            .map_err(|e| IngestError::Index(e.to_string()))?;
        Ok(rec)
    }
}

pub struct Cache {
    root: PathBuf,
    db: sled::Db,
    /// Held (flock) for the cache's lifetime.
    _lock: File,
}

impl Cache {
    /// The cache root under a results dir.
    pub fn root_of(results: &Path) -> PathBuf {
        results.join("cache")
    }

    /// Whether a cache exists under `results` (read-only commands do not create one).
    pub fn exists(results: &Path) -> bool {
        Self::root_of(results).join("index.sled").exists()
    }

    /// Opens (creating if needed) the cache under `results`, taking the lock.
    pub fn open(results: &Path) -> Result<Cache> {
        let root = Self::root_of(results);
        fs::create_dir_all(&root)
            .with_context(|| format!("creating cache dir {}", root.display()))?;
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
                "the cache {} is in use by another sweep process (pid {}); wait for it to finish, or stop it, then retry",
                root.display(),
                holder.trim()
            );
        }
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        lock.sync_all()?;
        let db_path = root.join("index.sled");
        let db = sled::open(&db_path)
            .with_context(|| format!("opening cache index {}", db_path.display()))?;
        let cache = Cache {
            root,
            db,
            _lock: lock,
        };
        // Temp dirs of a killed run hold no finished work.
        let tmp = cache.root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing stale temp dir {}", tmp.display()))?;
        }
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn get(&self, key: &str) -> Result<Option<Record>> {
        match self.db.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("corrupt cache record {key}"))?,
            )),
            None => Ok(None),
        }
    }

    pub fn records(&self) -> Result<Vec<Record>> {
        self.db
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                Ok(serde_json::from_slice(&v)?)
            })
            .collect()
    }

    pub fn artifact_dir(&self, record: &Record) -> PathBuf {
        self.root.join(&record.artifact_dir)
    }

    /// `Err(reason)` when a recorded artifact is missing or its checksum changed.
    pub fn verify(&self, record: &Record) -> std::result::Result<(), String> {
        let dir = self.artifact_dir(record);
        let on_disk = checksums(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for (file, sum) in &record.files {
            match on_disk.get(file) {
                None => return Err(format!("{}/{file} is missing", dir.display())),
                Some(s) if s != sum => {
                    return Err(format!(
                        "{}/{file} changed on disk (checksum mismatch)",
                        dir.display()
                    ));
                }
                _ => {}
            }
        }
        Ok(())
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

    /// Moves a finished stage's temp dir into place, then writes its record.
    pub fn commit(
        &self,
        node: &Node,
        tmp: &Path,
        started_unix_s: f64,
        duration_s: f64,
        metrics: BTreeMap<String, f64>,
    ) -> Result<Record> {
        let files = checksums(tmp)?;
        for file in files.keys() {
            File::open(tmp.join(file))?.sync_all()?;
        }
        File::open(tmp)?.sync_all()?;
        let rel = format!("{}/{}", node.kind, node.key);
        let dest = self.root.join(&rel);
        if dest.exists() {
            fs::remove_dir_all(&dest)?; // an artifact without a record, or one that failed verification
        }
        fs::create_dir_all(dest.parent().expect("has kind dir"))?;
        fs::rename(tmp, &dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        File::open(dest.parent().expect("has kind dir"))?.sync_all()?;
        let record = Record {
            key: node.key.clone(),
            kind: node.kind.clone(),
            version: node.version,
            name: node.name.clone(),
            status: "done".into(),
            started_unix_s,
            duration_s,
            metrics,
            artifact_dir: rel,
            params: node.params.clone(),
            inputs: node.inputs.clone(),
            files,
            stats: Default::default(),
        };
        self.db
            .insert(node.key.as_bytes(), serde_json::to_vec(&record)?)?;
        self.db.flush()?;
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

    /// Deletes a record and its artifact dir.
    pub fn remove(&self, record: &Record) -> Result<()> {
        self.db.remove(record.key.as_bytes())?;
        self.db.flush()?;
        let dir = self.artifact_dir(record);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }

    /// Dirs under the cache that no record points to (orphans, failed and temp dirs).
    pub fn unreferenced_dirs(&self) -> Result<Vec<PathBuf>> {
        let referenced: std::collections::HashSet<PathBuf> = self
            .records()?
            .iter()
            .map(|r| self.artifact_dir(r))
            .collect();
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let kind_dir = entry?.path();
            let name = kind_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if !kind_dir.is_dir() || name == "index.sled" {
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

/// Relative path → blake3 hex of every file under `dir`.
pub fn checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                let mut hasher = blake3::Hasher::new();
                hasher.update_reader(File::open(&path)?)?;
                let rel = path
                    .strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, hasher.finalize().to_hex().to_string());
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}
