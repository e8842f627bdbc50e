//! Reading JSON records from the layouts the datasets are published in:
//! JSON Lines (one object per line, optionally gzip-compressed, as HH-RLHF
//! ships `train.jsonl.gz`) or one JSON array of objects.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use serde_json::Value;

use super::RowError;

/// One record and where it was: `"line N"` (JSONL, 1-based) or `"record N"` (JSON array).
pub type Record = (String, Result<Value, RowError>);

/// Opens `path`, transparently gunzipping `*.gz`.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let file =
        File::open(path).with_context(|| format!("cannot open dataset file {}", path.display()))?;
    let is_gz = path.extension().is_some_and(|ext| ext == "gz");
    Ok(if is_gz {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// Every record of a JSONL or JSON-array file. A line that is not valid JSON
/// is a bad row (field `<json>`), not an I/O error.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let mut text = String::new();
    open_text(path)?
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    if text.trim_start().starts_with('[') {
        let array: Vec<Value> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} starts with `[` but is not a JSON array of records",
                path.display()
            )
        })?;
        return Ok(array
            .into_iter()
            .enumerate()
            .map(|(i, value)| (format!("record {}", i + 1), Ok(value)))
            .collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let parsed = serde_json::from_str(line)
                .map_err(|e| RowError::new("<json>", format!("not valid JSON: {e}")));
            (format!("line {}", i + 1), parsed)
        })
        .collect())
}
