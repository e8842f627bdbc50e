//! CSV output of a table (polars `CsvWriter`), written atomically.
use std::path::Path;

use polars::prelude::{CsvWriter, DataFrame, SerWriter};

use super::atomic::write_atomic;

/// Writes `df` as CSV to `path` (header row; null as an empty field; floats
/// with 6 decimals) through a temporary file and a rename.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> anyhow::Result<()> {
    write_atomic(path, |file| {
        CsvWriter::new(file)
            .include_header(true)
            .with_float_precision(Some(6))
            .finish(df)?;
        Ok(())
    })
}
