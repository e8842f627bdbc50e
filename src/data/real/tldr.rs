//! TL;DR comparisons (openai/summarize-from-feedback, `comparisons/batch*.json`:
//! JSON Lines): `info` holds the Reddit post (`post`, `title`, `subreddit`),
//! `summaries` two `{"text": …}` candidates, `choice` the index (0/1) of the
//! one the labeller preferred.
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

/// The summarisation prompt of Stiennon et al. (2020), which DPO reuses.
pub fn prompt_of(subreddit: &str, title: &str, post: &str) -> String {
    format!("SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:")
}

pub fn parse_row(value: &serde_json::Value) -> Result<PreferencePair, RowError> {
    let post = str_field(value, "info.post")?;
    let title = str_field(value, "info.title")?;
    // A few rows have no subreddit (CNN/DM-style posts); the prompt then says so.
    let subreddit = value
        .pointer("/info/subreddit")
        .and_then(|s| s.as_str())
        .unwrap_or("unknown");
    let summaries = value
        .get("summaries")
        .and_then(|s| s.as_array())
        .ok_or_else(|| RowError::new("summaries", "missing or not an array"))?;
    if summaries.len() != 2 {
        return Err(RowError::new(
            "summaries",
            format!("expected 2 summaries, found {}", summaries.len()),
        ));
    }
    let text = |i: usize| -> Result<&str, RowError> {
        summaries[i]
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| RowError::new(format!("summaries[{i}].text"), "missing or not a string"))
    };
    let choice = value
        .get("choice")
        .ok_or_else(|| RowError::new("choice", "missing"))?;
    let chosen_index = match choice.as_u64() {
        Some(c @ (0 | 1)) => c as usize,
        _ => {
            return Err(RowError::new(
                "choice",
                format!("expected 0 or 1, found {choice}"),
            ));
        }
    };
    Ok(PreferencePair {
        prompt: prompt_of(subreddit, title, post),
        chosen: with_leading_space(text(chosen_index)?),
        rejected: with_leading_space(text(1 - chosen_index)?),
    })
}

/// Summaries follow "TL;DR:" after one space; the published texts mostly
/// carry it already.
fn with_leading_space(text: &str) -> String {
    if text.starts_with(' ') {
        text.to_string()
    } else {
        format!(" {text}")
    }
}
