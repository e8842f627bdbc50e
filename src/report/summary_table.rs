//! A small table of text cells (the summaries of the figures drawn from
//! artifacts): as markdown for `report.md` and as CSV beside it.
use std::path::Path;

use super::atomic::write_bytes_atomic;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SummaryTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl SummaryTable {
    pub fn new(header: &[&str]) -> SummaryTable {
        SummaryTable {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    /// Writes the table as CSV, atomically; a cell holding a comma or a
    /// quote is quoted.
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        let field = |s: &String| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.clone()
            }
        };
        let mut out = String::new();
        for cells in std::iter::once(&self.header).chain(&self.rows) {
            out.push_str(&cells.iter().map(field).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        write_bytes_atomic(path, out.as_bytes())
    }
}
