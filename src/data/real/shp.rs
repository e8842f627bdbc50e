//! Stanford Human Preferences (stanfordnlp/SHP, one JSONL file per domain
//! and split, e.g. `askacademia/train.json`): a Reddit post `history`, two
//! comments `human_ref_A` / `human_ref_B`, and `labels` = 1 when A is
//! preferred, 0 when B is.
use std::path::Path;

use anyhow::Result;

use super::records::read_records;
use super::{LoadOptions, LoadedDataset, RowError, load_rows, str_field};
use crate::data::PreferencePair;

pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedDataset> {
    let rows = read_records(path)?
        .into_iter()
        .map(|(location, record)| (location, record.and_then(|value| parse_row(&value))));
    load_rows(path, rows, options)
}

/// The prompt a model sees: the post, then where the reply goes.
pub fn prompt_of(history: &str) -> String {
    format!("POST: {history}\n\nResponse:")
}

pub fn parse_row(value: &serde_json::Value) -> Result<PreferencePair, RowError> {
    let history = str_field(value, "history")?;
    let a = str_field(value, "human_ref_A")?;
    let b = str_field(value, "human_ref_B")?;
    let label = value
        .get("labels")
        .ok_or_else(|| RowError::new("labels", "missing"))?;
    let a_preferred = match label.as_i64() {
        Some(1) => true,
        Some(0) => false,
        _ => {
            return Err(RowError::new(
                "labels",
                format!("expected 0 or 1, found {label}"),
            ));
        }
    };
    let (chosen, rejected) = if a_preferred { (a, b) } else { (b, a) };
    Ok(PreferencePair {
        prompt: prompt_of(history),
        chosen: format!(" {chosen}"),
        rejected: format!(" {rejected}"),
    })
}
