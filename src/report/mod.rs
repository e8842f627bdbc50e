//! Report: finished cells of an experiment → CSV tables (polars), PNG figures
//! (plotters) and a `report.md` (minijinja) that sets our numbers beside the
//! paper's.
//!
//! The flow, top-down:
//! 1. [`grid`] groups [`CellResult`]s by the table's row and column labels and
//!    summarises each group over seeds ([`stats`]: mean and a 95% CI that
//!    stays inside the metric's range, [`metric_info`]).
//! 2. [`table`] turns that grid into a polars `DataFrame` (the paper's shape)
//!    and into markdown; [`csv`] writes the frame.
//! 3. [`paper`] holds the paper's published values (`experiments/paper/*.toml`,
//!    embedded) and [`compare`] checks the paper's orderings in our run.
//! 4. [`figure`] draws grouped bars or lines with CI whiskers / bands, the
//!    metric's neutral line, the paper's values and the claims' separations.
//! 5. [`render`] writes everything for one experiment, `report.md` last.
//! 6. [`index`] writes `results/index.md`: every experiment on one page.
//!
//! A report is a pure function of its inputs: [`stamp`] lets a warm
//! `sweep run` keep the reports whose inputs did not change.
//!
//! Beside the metrics, some figures read the cells' stage artifacts
//! ([`CellArtifacts`]): [`gold_gap`] (Figure 5), [`confidence`] (Figure 7)
//! and [`curves`] (each training stage's per-step trace).
//!
//! Every file is written atomically ([`atomic`]): a crash never leaves a
//! half-written CSV, PNG or report.
pub mod atomic;
pub mod compare;
pub mod confidence;
pub mod csv;
pub mod curves;
pub mod figure;
#[cfg(test)]
mod fixtures;
pub mod font;
pub mod gold_gap;
pub mod grid;
pub mod histogram;
pub mod index;
pub mod metric_info;
pub mod paper;
pub mod prompt_bootstrap;
pub mod render;
pub mod spec;
pub mod stamp;
pub mod stats;
pub mod summary_table;
pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use compare::{Claim, ClaimCheck, check_claims};
pub use csv::write_csv;
pub use figure::{Overlays, draw_figure};
pub use index::{IndexEntry, ReportSummary, write_index};
pub use paper::{PaperTable, paper_table, paper_table_ids};
pub use render::{ReportContext, write_report};
pub use spec::{ExtraValue, FigureKind, FigureSpec, TableSpec};
pub use table::build_table;

/// One finished cell of an experiment: its axis labels (e.g. `pair = "opt"`,
/// `dataset = "tldr"`, `objective = "dpo"`, `annotation = "cw"`,
/// `seed = "0"`) and the metrics its stages produced (e.g. `gra = 0.61`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CellResult {
    pub labels: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    /// Each test prompt's outcome (the metric stage's), for the paired
    /// bootstrap over test prompts; loaded only for reports with claims.
    #[serde(skip)]
    pub prompt_outcomes: Option<std::sync::Arc<crate::eval::gra::PromptOutcomes>>,
}

impl CellResult {
    /// `{dataset=tldr, pair=opt, seed=0}`: how errors name a cell.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    /// The label keys whose values differ between `self` and `other` (how
    /// an error says why two cells fell into one entry).
    pub fn labels_differing_from(&self, other: &CellResult) -> Vec<&String> {
        self.labels
            .iter()
            .filter(|(k, v)| other.labels.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect()
    }
}

/// Where a finished cell's stage artifacts lie, for the figures drawn from
/// them rather than from metrics: its labels (as in [`CellResult`]) and,
/// per stage kind upstream of its result (`score`, `generate`, `align`,
/// `sft`, `annotate`, `weak_train`), that stage's artifact dir.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct CellArtifacts {
    pub labels: BTreeMap<String, String>,
    pub dirs: BTreeMap<String, PathBuf>,
}
