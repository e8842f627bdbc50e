//! Anthropic HH-RLHF (`harmless-base`, `helpful-base`, … each a
//! `train.jsonl.gz` / `test.jsonl.gz`): one `{"chosen": …, "rejected": …}`
//! per line, each a full transcript `"\n\nHuman: …\n\nAssistant: …"`.
//!
//! The prompt is the shared prefix up to and including the last
//! `"\n\nAssistant:"`; the responses are what follows it (leading space
//! kept, so prompt + response is the original transcript). The union of two
//! subsets is loading both files.
use std::path::Path;

use anyhow::Result;

use super::records::read_records;
use super::{LoadOptions, LoadedDataset, RowError, load_rows, str_field};
use crate::data::PreferencePair;

/// The marker that opens the final assistant turn.
pub const ASSISTANT_MARKER: &str = "\n\nAssistant:";

pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedDataset> {
    let rows = read_records(path)?
        .into_iter()
        .map(|(location, record)| (location, record.and_then(|value| parse_row(&value))));
    load_rows(path, rows, options)
}

/// Splits one `{"chosen", "rejected"}` row into prompt and two responses.
pub fn parse_row(value: &serde_json::Value) -> Result<PreferencePair, RowError> {
    let chosen = str_field(value, "chosen")?;
    let rejected = str_field(value, "rejected")?;
    let split = chosen
        .rfind(ASSISTANT_MARKER)
        .ok_or_else(|| RowError::new("chosen", "no \"\\n\\nAssistant:\" turn in the transcript"))?
        + ASSISTANT_MARKER.len();
    let prompt = &chosen[..split];
    let rejected_response = rejected.strip_prefix(prompt).ok_or_else(|| {
        RowError::new(
            "rejected",
            "does not share the chosen transcript's prompt (everything up to the last \"\\n\\nAssistant:\")",
        )
    })?;
    if rejected_response.contains(ASSISTANT_MARKER) {
        return Err(RowError::new(
            "rejected",
            "has more assistant turns than the chosen transcript",
        ));
    }
    Ok(PreferencePair {
        prompt: prompt.to_string(),
        chosen: chosen[split..].to_string(),
        rejected: rejected_response.to_string(),
    })
}
