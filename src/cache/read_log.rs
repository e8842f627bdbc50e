//! A [`CacheRead`] that remembers every lookup it answered: what a report
//! read from the cache, for the key of its stamp
//! ([`crate::report::stamp`]). Every artifact file is reached through its
//! stage's record (`artifact_dir` takes one), and a record lists its files'
//! checksums, so the records read stand for the artifact files read too.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::{CacheRead, Record};

pub struct ReadLog<'a> {
    cache: &'a dyn CacheRead,
    /// Stage key → the record found (`None`: not cached).
    read: RefCell<BTreeMap<String, Option<Record>>>,
}

impl<'a> ReadLog<'a> {
    pub fn new(cache: &'a dyn CacheRead) -> Self {
        ReadLog {
            cache,
            read: RefCell::new(BTreeMap::new()),
        }
    }

    /// Every lookup so far, by stage key.
    pub fn into_read(self) -> BTreeMap<String, Option<Record>> {
        self.read.into_inner()
    }
}

impl CacheRead for ReadLog<'_> {
    fn root(&self) -> &Path {
        self.cache.root()
    }

    fn get(&self, key: &str) -> Result<Option<Record>> {
        if let Some(found) = self.read.borrow().get(key) {
            return Ok(found.clone());
        }
        let found = self.cache.get(key)?;
        self.read
            .borrow_mut()
            .insert(key.to_string(), found.clone());
        Ok(found)
    }

    fn records(&self) -> Result<Vec<Record>> {
        let records = self.cache.records()?;
        let mut read = self.read.borrow_mut();
        for record in &records {
            read.insert(record.key.clone(), Some(record.clone()));
        }
        Ok(records)
    }

    fn verify(&self, record: &Record) -> std::result::Result<(), String> {
        self.cache.verify(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::snapshot::Snapshot;

    #[test]
    fn every_lookup_is_logged_hits_and_misses() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let cache = Snapshot::open(tmp.path())?;
        let log = ReadLog::new(&cache);
        assert_eq!(log.get("0123abcd")?, None);
        assert_eq!(log.root(), cache.root());
        assert_eq!(
            log.into_read(),
            BTreeMap::from([("0123abcd".to_string(), None)])
        );
        Ok(())
    }
}
