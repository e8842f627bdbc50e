//! A finished stage's record, and its durable copy: the record file
//! `sweep-record.json` inside the stage's artifact dir.
//!
//! The record file is the source of truth; the sled index is derived from
//! the record files and can always be rebuilt from them
//! ([`super::Cache::open`], `sweep cache repair`). The file is written with
//! [`seal`] (write a temp file, fsync, rename, fsync the dir) *before* the
//! index entry, and it carries its own checksum, so a torn or edited record
//! file is detected and dropped, never trusted.
//!
//! Anything that can write files can finish a stage: a cluster worker that
//! cannot open sled runs the stage into `<cache>/<kind>/<key>/`, calls
//! [`seal`] on that dir, and the controller later calls
//! [`super::Cache::ingest_record`] on it (or simply opens the cache, which
//! ingests every sealed dir the index lacks).
//!
//! ```json
//! {"format":1,"blake3":"<64 hex>","record":{
//!   …the record, pretty-printed…
//! }}
//! ```
//!
//! The checksum is blake3 of the record's text exactly as it stands in the
//! file (the bytes after `"record":` up to the closing `}` of the envelope),
//! not of a re-serialised record: serde_json's default float parsing is not
//! bit-exact for 17-digit floats (timestamps, metrics), so a record parsed
//! back and serialised again need not reproduce the bytes that were summed.
//! The envelope is therefore written with a fixed prefix, and a file whose
//! prefix or suffix differs is unreadable.
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the record file inside an artifact dir.
pub const RECORD_FILE: &str = "sweep-record.json";

/// The record file layout this code writes and reads.
const FORMAT: u32 = 1;

/// A finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub kind: String,
    pub version: u32,
    pub name: String,
    /// Always `"done"`: unfinished or failed stages get no record.
    pub status: String,
    /// Start, seconds since the Unix epoch.
    pub started_unix_s: f64,
    pub duration_s: f64,
    pub metrics: BTreeMap<String, f64>,
    /// Artifact dir relative to the cache root: `<kind>/<key>`.
    pub artifact_dir: String,
    /// The params and input keys that produced it (for `sweep why`).
    pub params: serde_json::Value,
    pub inputs: BTreeMap<String, String>,
    /// Relative file path → blake3 hex of its content (the record file excluded).
    pub files: BTreeMap<String, String>,
    /// Relative file path → its size and mtime when the content was hashed:
    /// a warm `sweep run` trusts a file whose size and mtime still match
    /// (records of older caches have none and are hashed in full).
    #[serde(default)]
    pub stats: BTreeMap<String, FileStat>,
}

/// What a file looked like when its checksum was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
}

impl FileStat {
    pub fn of(meta: &fs::Metadata) -> FileStat {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        FileStat {
            size: meta.len(),
            mtime_ns,
        }
    }
}

/// What a stage's record says beyond its files (the caller's part of [`seal`]).
#[derive(Debug, Clone)]
pub struct RecordHead {
    pub key: String,
    pub kind: String,
    pub version: u32,
    pub name: String,
    pub started_unix_s: f64,
    pub duration_s: f64,
    pub metrics: BTreeMap<String, f64>,
    pub params: serde_json::Value,
    pub inputs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    blake3: String,
    record: Record,
}

/// Why a record file cannot be trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("no sweep-record.json")]
    Missing,
    #[error("sweep-record.json is unreadable: {0}")]
    Unreadable(String),
    #[error("sweep-record.json fails its own checksum (torn or edited)")]
    BadChecksum,
    #[error("sweep-record.json describes {0}, not this dir")]
    Misplaced(String),
}

/// Relative path → (blake3 hex, size and mtime) of every file under `dir`,
/// the record file excepted. Sizes and mtimes are read before hashing, so a
/// file changed while it is hashed shows a newer mtime than recorded.
pub fn stage_files(dir: &Path) -> Result<BTreeMap<String, (String, FileStat)>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (String, FileStat)>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
                continue;
            }
            let rel = path
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .to_string();
            if rel == RECORD_FILE || rel.starts_with(&format!(".{RECORD_FILE}")) {
                continue;
            }
            let stat = FileStat::of(&fs::metadata(&path)?);
            out.insert(rel, (hash_file(&path)?, stat));
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// blake3 hex of a file's content.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Finishes a stage dir: fsyncs and hashes every file in `dir` and writes the
/// record file last (atomically). `dir` may be a temp dir that is renamed to
/// `<kind>/<key>` afterwards: the record names that final place.
pub fn seal(dir: &Path, head: RecordHead) -> Result<Record> {
    let found = stage_files(dir)?;
    for file in found.keys() {
        File::open(dir.join(file))?
            .sync_all()
            .with_context(|| format!("fsyncing {}/{file}", dir.display()))?;
    }
    let record = Record {
        artifact_dir: format!("{}/{}", head.kind, head.key),
        key: head.key,
        kind: head.kind,
        version: head.version,
        name: head.name,
        status: "done".into(),
        started_unix_s: head.started_unix_s,
        duration_s: head.duration_s,
        metrics: head.metrics,
        params: head.params,
        inputs: head.inputs,
        files: found
            .iter()
            .map(|(f, (sum, _))| (f.clone(), sum.clone()))
            .collect(),
        stats: found.iter().map(|(f, (_, st))| (f.clone(), *st)).collect(),
    };
    write_record_file(dir, &record)
}

/// The envelope's fixed text before the checksum and between the checksum
/// and the record; the file ends with [`ENVELOPE_END`].
const ENVELOPE_START: &str = "{\"format\":1,\"blake3\":\"";
const ENVELOPE_MID: &str = "\",\"record\":";
const ENVELOPE_END: &str = "}\n";

/// The record file's bytes: the envelope around the record's pretty text,
/// whose blake3 is the checksum.
fn envelope_bytes(record: &Record) -> Result<Vec<u8>> {
    const _: () = assert!(FORMAT == 1, "ENVELOPE_START spells the format");
    let text = serde_json::to_vec_pretty(record)?;
    let sum = blake3::hash(&text).to_hex().to_string();
    let mut bytes = Vec::with_capacity(text.len() + 100);
    bytes.extend_from_slice(ENVELOPE_START.as_bytes());
    bytes.extend_from_slice(sum.as_bytes());
    bytes.extend_from_slice(ENVELOPE_MID.as_bytes());
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(ENVELOPE_END.as_bytes());
    Ok(bytes)
}

/// Writes `record` as `dir/sweep-record.json`: temp file, fsync, rename,
/// fsync `dir`. Returns the record as a reader will parse it back (its
/// floats may differ from `record`'s in the last bit, see the module doc).
pub fn write_record_file(dir: &Path, record: &Record) -> Result<Record> {
    let bytes = envelope_bytes(record)?;
    let tmp = dir.join(format!(".{RECORD_FILE}.tmp"));
    let path = dir.join(RECORD_FILE);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("fsyncing {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, &path).with_context(|| format!("renaming onto {}", path.display()))?;
    File::open(dir)?.sync_all()?;
    parse_record_file(&bytes)
        .map_err(|e| anyhow::anyhow!("{} reads back wrong: {e}", path.display()))
}

/// Parses and checks the bytes of a record file (not where it lies).
fn parse_record_file(bytes: &[u8]) -> std::result::Result<Record, RecordError> {
    // Any valid JSON first, so a torn file reads as unreadable, not tampered.
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Unreadable(e.to_string()))?;
    if envelope.format != FORMAT {
        return Err(RecordError::Unreadable(format!(
            "format {} (this sweep reads {FORMAT})",
            envelope.format
        )));
    }
    let text = bytes
        .strip_prefix(ENVELOPE_START.as_bytes())
        .and_then(|rest| rest.get(64..))
        .and_then(|rest| rest.strip_prefix(ENVELOPE_MID.as_bytes()))
        .and_then(|rest| rest.strip_suffix(ENVELOPE_END.as_bytes()))
        .ok_or(RecordError::BadChecksum)?;
    if blake3::hash(text).to_hex().as_str() != envelope.blake3 {
        return Err(RecordError::BadChecksum);
    }
    Ok(envelope.record)
}

/// Reads and checks `dir/sweep-record.json`: its own checksum, and that it
/// names `dir` (its `<kind>/<key>` are the last two components of `dir`).
pub fn read_record_file(dir: &Path) -> std::result::Result<Record, RecordError> {
    let path = dir.join(RECORD_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RecordError::Missing),
        Err(e) => return Err(RecordError::Unreadable(e.to_string())),
    };
    let record = parse_record_file(&bytes)?;
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map_or(String::new(), |n| n.to_string_lossy().to_string())
    };
    let here = format!("{}/{}", name(dir.parent()), name(Some(dir)));
    if record.artifact_dir != here
        || record.artifact_dir != format!("{}/{}", record.kind, record.key)
    {
        return Err(RecordError::Misplaced(record.artifact_dir));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(key: &str) -> RecordHead {
        RecordHead {
            key: key.into(),
            kind: "split".into(),
            version: 1,
            name: "split/x".into(),
            started_unix_s: 1.5,
            duration_s: 0.25,
            metrics: BTreeMap::from([("n".into(), 3.0)]),
            params: serde_json::json!({"seed": 0, "fraction": 0.3}),
            inputs: BTreeMap::from([("dataset".into(), "k0".into())]),
        }
    }

    fn stage_dir(root: &Path, key: &str) -> std::path::PathBuf {
        let dir = root.join("split").join(key);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.json"), b"[1, 2]").unwrap();
        fs::write(dir.join("sub/b.bin"), b"bytes").unwrap();
        dir
    }

    #[test]
    fn a_sealed_dir_reads_back_its_record_with_sums_and_stats() {
        let root = tempfile::tempdir().unwrap();
        let dir = stage_dir(root.path(), "k1");
        let sealed = seal(&dir, head("k1")).unwrap();
        assert_eq!(
            sealed.files.keys().collect::<Vec<_>>(),
            ["a.json", "sub/b.bin"],
            "the record file is not one of the stage's files"
        );
        assert_eq!(
            sealed.files["a.json"],
            blake3::hash(b"[1, 2]").to_hex().to_string()
        );
        assert_eq!(sealed.stats["sub/b.bin"].size, 5);
        assert_eq!(read_record_file(&dir).unwrap(), sealed);
    }

    /// 17-digit floats (a Unix timestamp, a loss) do not parse back bit-exact
    /// with serde_json's default float parser: the checksum must not depend on
    /// that (it once did, and every record read from disk failed it).
    #[test]
    fn a_record_with_17_digit_floats_reads_back_and_passes_its_checksum() {
        let root = tempfile::tempdir().unwrap();
        let dir = stage_dir(root.path(), "k1");
        let mut h = head("k1");
        h.started_unix_s = 1764677777.1234567;
        h.duration_s = 0.30000000000000004;
        h.metrics = BTreeMap::from([
            ("loss".into(), std::f64::consts::LN_2),
            ("acc".into(), 1.0 / 3.0),
            ("big".into(), 9007199254740993.0),
        ]);
        h.params = serde_json::json!({"lr": 1.2345678901234567e-7, "beta": 0.1});
        let sealed = seal(&dir, h).unwrap();
        let read = read_record_file(&dir).unwrap();
        assert_eq!(read, sealed, "seal returns the record as it reads back");
        // Many more: the checksum never depends on float parsing.
        for i in 0..2000u64 {
            let mut h = head("k1");
            h.started_unix_s = 1.7e9 + (i as f64) * 0.123456789012345;
            h.metrics = BTreeMap::from([("x".into(), (i as f64).sqrt() / 7.0)]);
            seal(&dir, h).unwrap();
            read_record_file(&dir).unwrap();
        }
    }

    #[test]
    fn an_edited_or_torn_record_file_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        let dir = stage_dir(root.path(), "k1");
        seal(&dir, head("k1")).unwrap();
        let path = dir.join(RECORD_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"duration_s\": 0.25", "\"duration_s\": 9.0"),
        )
        .unwrap();
        assert_eq!(read_record_file(&dir), Err(RecordError::BadChecksum));
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            read_record_file(&dir),
            Err(RecordError::Unreadable(_))
        ));
        fs::remove_file(&path).unwrap();
        assert_eq!(read_record_file(&dir), Err(RecordError::Missing));
    }

    #[test]
    fn a_record_file_copied_to_another_dir_is_misplaced() {
        let root = tempfile::tempdir().unwrap();
        let dir = stage_dir(root.path(), "k1");
        seal(&dir, head("k1")).unwrap();
        let other = stage_dir(root.path(), "k2");
        fs::copy(dir.join(RECORD_FILE), other.join(RECORD_FILE)).unwrap();
        assert_eq!(
            read_record_file(&other),
            Err(RecordError::Misplaced("split/k1".into()))
        );
    }
}
