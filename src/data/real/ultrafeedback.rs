//! UltraFeedback Binarized (HuggingFaceH4/ultrafeedback_binarized,
//! `data/train_prefs-*.parquet`): a `prompt` string, `chosen` / `rejected`
//! message lists (`[{content, role}, …]`, the last assistant turn is the
//! response) and the GPT-4 scores `score_chosen` / `score_rejected`.
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::*;

use super::{LoadOptions, LoadedDataset, RowError, load_rows};
use crate::data::PreferencePair;

pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedDataset> {
    let file =
        File::open(path).with_context(|| format!("cannot open dataset file {}", path.display()))?;
    let frame = ParquetReader::new(file)
        .finish()
        .with_context(|| format!("{} is not a readable parquet file", path.display()))?;
    let columns = Columns::of(&frame).with_context(|| {
        format!(
            "{} is not in the UltraFeedback Binarized layout",
            path.display()
        )
    })?;
    let rows = (0..frame.height()).map(|i| (format!("row {}", i + 1), columns.row(i)));
    load_rows(path, rows, options)
}

/// The columns a row is read from, type-checked once.
struct Columns<'a> {
    prompt: &'a StringChunked,
    chosen: &'a ListChunked,
    rejected: &'a ListChunked,
    score_chosen: &'a Float64Chunked,
    score_rejected: &'a Float64Chunked,
}

impl<'a> Columns<'a> {
    fn of(frame: &'a DataFrame) -> Result<Self> {
        let column = |name: &str| {
            frame.column(name).with_context(|| {
                format!("missing column `{name}` (expected prompt, chosen, rejected, score_chosen, score_rejected)")
            })
        };
        let typed = |name: &str, err: PolarsError| anyhow::anyhow!("column `{name}`: {err}");
        Ok(Self {
            prompt: column("prompt")?.str().map_err(|e| typed("prompt", e))?,
            chosen: column("chosen")?.list().map_err(|e| typed("chosen", e))?,
            rejected: column("rejected")?
                .list()
                .map_err(|e| typed("rejected", e))?,
            score_chosen: column("score_chosen")?
                .f64()
                .map_err(|e| typed("score_chosen", e))?,
            score_rejected: column("score_rejected")?
                .f64()
                .map_err(|e| typed("score_rejected", e))?,
        })
    }

    fn row(&self, i: usize) -> Result<PreferencePair, RowError> {
        let prompt = self
            .prompt
            .get(i)
            .ok_or_else(|| RowError::new("prompt", "null"))?;
        let score_chosen = self
            .score_chosen
            .get(i)
            .ok_or_else(|| RowError::new("score_chosen", "null"))?;
        let score_rejected = self
            .score_rejected
            .get(i)
            .ok_or_else(|| RowError::new("score_rejected", "null"))?;
        if !score_chosen.is_finite() || !score_rejected.is_finite() || score_chosen < score_rejected
        {
            return Err(RowError::new(
                "score_chosen",
                format!("{score_chosen} must be finite and >= score_rejected {score_rejected}"),
            ));
        }
        Ok(PreferencePair {
            prompt: prompt.to_string(),
            chosen: last_assistant_turn(self.chosen, i, "chosen")?,
            rejected: last_assistant_turn(self.rejected, i, "rejected")?,
        })
    }
}

/// The content of the last `role == "assistant"` message of row `i`.
fn last_assistant_turn(messages: &ListChunked, i: usize, field: &str) -> Result<String, RowError> {
    let list = messages
        .get_as_series(i)
        .ok_or_else(|| RowError::new(field, "null"))?;
    let bad = |what: String| RowError::new(field, what);
    let turns = list.struct_().map_err(|e| {
        bad(format!(
            "expected a list of {{content, role}} messages: {e}"
        ))
    })?;
    let content = turns
        .field_by_name("content")
        .map_err(|e| bad(format!("message without `content`: {e}")))?;
    let role = turns
        .field_by_name("role")
        .map_err(|e| bad(format!("message without `role`: {e}")))?;
    let (content, role) = (
        content.str().map_err(|e| bad(e.to_string()))?,
        role.str().map_err(|e| bad(e.to_string()))?,
    );
    (0..role.len())
        .rev()
        .find(|&t| role.get(t) == Some("assistant"))
        .and_then(|t| content.get(t))
        .map(str::to_string)
        .ok_or_else(|| bad("no assistant message".to_string()))
}
