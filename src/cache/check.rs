//! Does a record still describe the files on disk? Two depths:
//!
//! - [`Depth::Quick`] (every `sweep run`, `plan`, `why`): a file whose size
//!   and mtime match the record is trusted without reading it; any other
//!   file is hashed, and only a checksum mismatch makes the stage stale
//!   (a `touch` alone re-runs nothing). Cost: one `stat` per file.
//! - [`Depth::Full`] (`sweep verify`, `sweep cache repair`, and ingesting a
//!   record the index did not have): every file is hashed.
//!
//! Content changed under an unchanged size and mtime (bit rot, or an editor
//! that restores mtimes) passes the quick check; `sweep verify` catches it.
use std::path::Path;

use super::record::{Record, hash_file};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Quick,
    Full,
}

/// `Err(reason)` when a file of `record` is missing or its content changed.
/// `root` is the cache root the record's `artifact_dir` is relative to.
pub fn check_record(root: &Path, record: &Record, depth: Depth) -> Result<(), String> {
    let dir = root.join(&record.artifact_dir);
    if !dir.is_dir() {
        return Err(format!("{} is missing", dir.display()));
    }
    for (file, sum) in &record.files {
        let path = dir.join(file);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => return Err(format!("{}/{file} is missing", dir.display())),
        };
        let unchanged = record
            .stats
            .get(file)
            .is_some_and(|st| *st == super::record::FileStat::of(&meta));
        if depth == Depth::Quick && unchanged {
            continue;
        }
        match hash_file(&path) {
            Ok(s) if &s == sum => {}
            Ok(_) => {
                return Err(format!(
                    "{}/{file} changed on disk (checksum mismatch)",
                    dir.display()
                ));
            }
            Err(e) => return Err(format!("{}/{file}: {e:#}", dir.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::record::{RecordHead, seal};
    use std::collections::BTreeMap;
    use std::fs;
    use std::time::{Duration, SystemTime};

    fn sealed(root: &Path) -> Record {
        let dir = root.join("split/k1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.txt"), b"0123456789").unwrap();
        seal(
            &dir,
            RecordHead {
                key: "k1".into(),
                kind: "split".into(),
                version: 1,
                name: "split/x".into(),
                started_unix_s: 0.0,
                duration_s: 0.0,
                metrics: BTreeMap::new(),
                params: serde_json::Value::Null,
                inputs: BTreeMap::new(),
            },
        )
        .unwrap()
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn same_size_and_mtime_is_trusted_by_quick_and_caught_by_full() {
        let root = tempfile::tempdir().unwrap();
        let rec = sealed(root.path());
        let path = root.path().join("split/k1/a.txt");
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, b"9876543210").unwrap(); // same size
        set_mtime(&path, mtime);
        assert_eq!(check_record(root.path(), &rec, Depth::Quick), Ok(()));
        let err = check_record(root.path(), &rec, Depth::Full).unwrap_err();
        assert!(
            err.contains("a.txt changed on disk (checksum mismatch)"),
            "{err}"
        );
    }

    #[test]
    fn a_new_mtime_makes_quick_hash_the_file() {
        let root = tempfile::tempdir().unwrap();
        let rec = sealed(root.path());
        let path = root.path().join("split/k1/a.txt");
        let later = SystemTime::now() + Duration::from_secs(5);
        set_mtime(&path, later);
        assert_eq!(
            check_record(root.path(), &rec, Depth::Quick),
            Ok(()),
            "touched, content unchanged"
        );
        fs::write(&path, b"9876543210").unwrap();
        set_mtime(&path, later);
        assert!(check_record(root.path(), &rec, Depth::Quick).is_err());
    }

    #[test]
    fn a_missing_file_or_dir_is_stale() {
        let root = tempfile::tempdir().unwrap();
        let rec = sealed(root.path());
        fs::remove_file(root.path().join("split/k1/a.txt")).unwrap();
        assert!(
            check_record(root.path(), &rec, Depth::Quick)
                .unwrap_err()
                .contains("missing")
        );
        fs::remove_dir_all(root.path().join("split/k1")).unwrap();
        assert!(
            check_record(root.path(), &rec, Depth::Quick)
                .unwrap_err()
                .contains("missing")
        );
    }
}
