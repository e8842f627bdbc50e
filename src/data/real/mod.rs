//! Loaders for the paper's real preference datasets, in their published
//! on-disk layouts: HH-RLHF (JSONL / .jsonl.gz), UltraFeedback Binarized
//! (parquet), TL;DR comparisons and SHP (JSON / JSONL).
//!
//! Every loader turns rows into [`PreferencePair`]s through one driver
//! ([`load_rows`]): a row that cannot be read is an error naming the file, the
//! line (or row) and the field — or, with [`OnBadRow::Skip`], is counted in
//! the [`LoadReport`] and skipped. Pairs longer than the paper's token limit
//! are dropped and counted too.
pub mod hh_rlhf;
pub mod inspect;
pub mod records;
pub mod shp;
pub mod split;
pub mod tldr;
pub mod ultrafeedback;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::{PreferencePair, Tokenizer};

/// What to do with a row that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Stop with an error naming file, line and field (the default: a
    /// malformed dataset should be noticed, not silently shrunk).
    #[default]
    Error,
    /// Skip the row and count it in [`LoadReport::bad_rows`].
    Skip,
}

pub use crate::spec::DatasetFormat;

impl DatasetFormat {
    /// Loads `path` in this format.
    pub fn load(self, path: &Path, options: &LoadOptions) -> Result<LoadedDataset> {
        match self {
            Self::HhRlhf => hh_rlhf::load(path, options),
            Self::UltraFeedback => ultrafeedback::load(path, options),
            Self::Tldr => tldr::load(path, options),
            Self::Shp => shp::load(path, options),
        }
    }
}

/// Loads several files of one format and concatenates them in order — e.g.
/// HH-RLHF's union of `harmless-base` and `helpful-base`. One report per file.
pub fn load_union(
    format: DatasetFormat,
    paths: &[PathBuf],
    options: &LoadOptions,
) -> Result<(Vec<PreferencePair>, Vec<LoadReport>)> {
    let mut pairs = Vec::new();
    let mut reports = Vec::new();
    for path in paths {
        let loaded = format.load(path, options)?;
        pairs.extend(loaded.pairs);
        reports.push(loaded.report);
    }
    Ok((pairs, reports))
}

/// How to load: bad-row policy and the token-length filter.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    pub on_bad_row: OnBadRow,
    /// Drop pairs whose length (see [`pair_length`]) exceeds `max_tokens`;
    /// `None` keeps every pair.
    pub length_filter: Option<LengthFilter<'a>>,
}

/// Token-length filter: `tokenizer` counts, pairs over `max_tokens` are dropped.
#[derive(Clone, Copy)]
pub struct LengthFilter<'a> {
    pub tokenizer: &'a dyn Tokenizer,
    pub max_tokens: usize,
}

/// A pair's length as the filter sees it: prompt tokens plus the longer
/// response's tokens (the longest sequence the pair puts through a model).
pub fn pair_length(tokenizer: &dyn Tokenizer, pair: &PreferencePair) -> Result<usize> {
    let prompt = tokenizer.encode(&pair.prompt)?.len();
    let chosen = tokenizer.encode(&pair.chosen)?.len();
    let rejected = tokenizer.encode(&pair.rejected)?.len();
    Ok(prompt + chosen.max(rejected))
}

/// What a load kept, filtered and skipped. Goes into the stage record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub file: PathBuf,
    pub kept: usize,
    pub filtered_too_long: usize,
    pub bad_rows: usize,
    /// The first few bad-row messages (file:line: field: why), for the user.
    pub bad_row_examples: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: kept {}, filtered (too long) {}, bad rows {}",
            self.file.display(),
            self.kept,
            self.filtered_too_long,
            self.bad_rows
        )?;
        for example in &self.bad_row_examples {
            write!(f, "\n  skipped {example}")?;
        }
        Ok(())
    }
}

/// Pairs read from one file, and the report of how they were read.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    pub pairs: Vec<PreferencePair>,
    pub report: LoadReport,
}

impl LoadedDataset {
    /// Distinct prompts in file order (a test file's pairs give its test prompts).
    pub fn prompts(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.pairs
            .iter()
            .filter(|p| seen.insert(p.prompt.as_str()))
            .map(|p| p.prompt.clone())
            .collect()
    }
}

/// Why one row could not be turned into a pair: the field and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub field: String,
    pub reason: String,
}

impl RowError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// How many bad-row messages a [`LoadReport`] keeps.
const BAD_ROW_EXAMPLES: usize = 5;

/// The driver every loader shares: parse each row, apply the bad-row policy
/// and the length filter, count everything.
///
/// `rows` yields `(location, parsed row)`, where location reads like
/// `"line 12"` or `"row 3"`.
pub fn load_rows(
    file: &Path,
    rows: impl IntoIterator<Item = (String, Result<PreferencePair, RowError>)>,
    options: &LoadOptions,
) -> Result<LoadedDataset> {
    let mut report = LoadReport {
        file: file.to_path_buf(),
        ..LoadReport::default()
    };
    let mut pairs = Vec::new();
    for (location, row) in rows {
        let pair = match row {
            Ok(pair) => pair,
            Err(err) => {
                let message = format!(
                    "{}: {location}: field `{}`: {}",
                    file.display(),
                    err.field,
                    err.reason
                );
                match options.on_bad_row {
                    OnBadRow::Error => bail!(
                        "{message} (fix the row, or set on_bad_row = \"skip\" to skip and count such rows)"
                    ),
                    OnBadRow::Skip => {
                        report.bad_rows += 1;
                        if report.bad_row_examples.len() < BAD_ROW_EXAMPLES {
                            report.bad_row_examples.push(message);
                        }
                        continue;
                    }
                }
            }
        };
        if let Some(filter) = &options.length_filter
            && pair_length(filter.tokenizer, &pair)? > filter.max_tokens
        {
            report.filtered_too_long += 1;
            continue;
        }
        pairs.push(pair);
    }
    report.kept = pairs.len();
    Ok(LoadedDataset { pairs, report })
}

/// A required string field of a JSON object (`a.b` paths allowed).
pub(crate) fn str_field<'v>(value: &'v serde_json::Value, path: &str) -> Result<&'v str, RowError> {
    let mut current = value;
    for key in path.split('.') {
        current = current
            .get(key)
            .ok_or_else(|| RowError::new(path, "missing"))?;
    }
    current
        .as_str()
        .ok_or_else(|| RowError::new(path, format!("expected a string, found {current}")))
}
