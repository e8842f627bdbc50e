//! `sweep data inspect`: what a dataset file holds once loaded — rows kept,
//! filtered for length and skipped as malformed, pair-length percentiles and
//! two examples as the model will see them.
use std::fmt;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{DatasetFormat, LengthFilter, LoadOptions, LoadReport, OnBadRow, pair_length};
use crate::data::{PreferencePair, Tokenizer};

/// Percentiles of pair length (prompt + longer response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthPercentiles {
    /// `"tokens"` with a tokenizer, `"words"` (whitespace-separated) without.
    pub unit: String,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInspection {
    pub dataset: String,
    pub report: LoadReport,
    /// Token limit applied (`None` without a tokenizer).
    pub max_tokens: Option<usize>,
    /// `None` when nothing was kept.
    pub lengths: Option<LengthPercentiles>,
    /// The first two kept pairs, decoded from their token ids when a
    /// tokenizer is given (so what is shown is what the model reads).
    pub examples: Vec<PreferencePair>,
}

/// Loads `path` as dataset `name`, skipping (and counting) bad rows, with the
/// paper's length filter when `tokenizer` is given.
pub fn inspect_dataset(
    name: &str,
    path: &Path,
    tokenizer: Option<&dyn Tokenizer>,
) -> Result<DatasetInspection> {
    let format = DatasetFormat::from_name(name)?;
    let max_tokens = tokenizer.map(|_| format.max_tokens());
    let options = LoadOptions {
        on_bad_row: OnBadRow::Skip,
        length_filter: tokenizer.map(|tokenizer| LengthFilter {
            tokenizer,
            max_tokens: format.max_tokens(),
        }),
    };
    let loaded = format.load(path, &options)?;

    let mut lengths = loaded
        .pairs
        .iter()
        .map(|pair| match tokenizer {
            Some(t) => pair_length(t, pair),
            None => Ok(word_length(pair)),
        })
        .collect::<Result<Vec<usize>>>()?;
    lengths.sort_unstable();
    let percentile = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
    let lengths = (!lengths.is_empty()).then(|| LengthPercentiles {
        unit: if tokenizer.is_some() {
            "tokens"
        } else {
            "words"
        }
        .to_string(),
        p50: percentile(0.5),
        p90: percentile(0.9),
        p99: percentile(0.99),
        max: *lengths.last().unwrap_or(&0),
    });

    let examples = loaded
        .pairs
        .iter()
        .take(2)
        .map(|pair| match tokenizer {
            Some(t) => decode_pair(t, pair),
            None => Ok(pair.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DatasetInspection {
        dataset: name.to_string(),
        report: loaded.report,
        max_tokens,
        lengths,
        examples,
    })
}

fn word_length(pair: &PreferencePair) -> usize {
    let words = |s: &str| s.split_whitespace().count();
    words(&pair.prompt) + words(&pair.chosen).max(words(&pair.rejected))
}

/// Round-trips each field through the tokenizer.
fn decode_pair(tokenizer: &dyn Tokenizer, pair: &PreferencePair) -> Result<PreferencePair> {
    let round_trip = |text: &str| tokenizer.decode(&tokenizer.encode(text)?);
    Ok(PreferencePair {
        prompt: round_trip(&pair.prompt)?,
        chosen: round_trip(&pair.chosen)?,
        rejected: round_trip(&pair.rejected)?,
    })
}

impl fmt::Display for DatasetInspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset {}", self.dataset)?;
        writeln!(f, "{}", self.report)?;
        match self.max_tokens {
            Some(max) => writeln!(f, "length filter: {max} tokens")?,
            None => writeln!(f, "length filter: none (no tokenizer given)")?,
        }
        if let Some(l) = &self.lengths {
            writeln!(
                f,
                "pair length ({}): p50 {}  p90 {}  p99 {}  max {}",
                l.unit, l.p50, l.p90, l.p99, l.max
            )?;
        }
        for (i, pair) in self.examples.iter().enumerate() {
            writeln!(f, "--- example {} ---", i + 1)?;
            writeln!(f, "[prompt]{}", pair.prompt)?;
            writeln!(f, "[chosen]{}", pair.chosen)?;
            writeln!(f, "[rejected]{}", pair.rejected)?;
        }
        Ok(())
    }
}
