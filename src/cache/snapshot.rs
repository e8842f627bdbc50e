//! A read-only view of the cache for `sweep status`, `plan`, `why` and
//! `report`, built from the record files alone: it takes no lock and never
//! opens sled, so it works while a `sweep run` holds the cache.
//!
//! Why the record files and not sled: sled allows one process at a time,
//! and a copy of its files taken while a run writes them is not a
//! consistent database. Each record file, on the other hand, appears
//! atomically (it is renamed into place inside a dir that is itself renamed
//! into place) and a removed stage dir vanishes atomically (it is renamed
//! out of place first), so every record this view returns is whole and
//! names files that were complete. A stage a concurrent run finishes after
//! the view listed the dirs is simply not in the view yet.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::record::read_record_file;
use super::{Cache, CacheRead, Record, stage_dirs};

pub struct Snapshot {
    root: PathBuf,
    /// Stage key → its artifact dir.
    dirs: HashMap<String, PathBuf>,
}

impl Snapshot {
    /// The view of `<results>/cache` (empty when there is no cache yet).
    pub fn open(results: &Path) -> Result<Snapshot> {
        let root = Cache::root_of(results);
        let mut dirs = HashMap::new();
        if root.is_dir() {
            for dir in stage_dirs(&root)? {
                let key = dir
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                dirs.insert(key, dir);
            }
        }
        Ok(Snapshot { root, dirs })
    }

    /// Whether a cache dir exists at all.
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }
}

impl CacheRead for Snapshot {
    fn root(&self) -> &Path {
        &self.root
    }

    /// A dir whose record file is missing or fails its checksum counts as
    /// not cached (the next `sweep run` drops or re-runs it).
    fn get(&self, key: &str) -> Result<Option<Record>> {
        Ok(self
            .dirs
            .get(key)
            .and_then(|dir| read_record_file(dir).ok()))
    }

    fn records(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = self
            .dirs
            .values()
            .filter_map(|dir| read_record_file(dir).ok())
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
