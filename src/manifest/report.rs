//! The `[report]` block: which table and figure an experiment's report shows.
//! Axis names in it are checked against the experiment's settings by `resolve`.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    #[serde(default)]
    pub table: Option<TableSpec>,
    #[serde(default)]
    pub figure: Option<FigureSpec>,
    /// Metrics to report (metric-stage names: `gra`, `gra_shared`, `gold_mean`, `tie_rate`, …).
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// A table in the paper's shape: one row per combination of `rows` settings,
/// one column per combination of `columns` settings, cells = `value`
/// aggregated over the remaining axes (seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub value: String,
    /// `mean` (default) or `mean_std`.
    #[serde(default = "default_aggregation")]
    pub aggregation: String,
    /// Add an "Avg" row.
    #[serde(default)]
    pub avg_row: bool,
    /// Multiply values (100 = percentages).
    #[serde(default = "one")]
    pub scale: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    /// `grouped_bars` | `lines`.
    pub kind: String,
    /// One panel per value of this setting.
    #[serde(default)]
    pub panel: Option<String>,
    /// x axis setting (lines) or bar groups (grouped_bars).
    #[serde(default)]
    pub x: Option<String>,
    /// One series per value of this setting.
    #[serde(default)]
    pub series: Option<String>,
    /// The metric on the y axis.
    pub value: String,
}

pub const AGGREGATIONS: &[&str] = &["mean", "mean_std"];
pub const FIGURE_KINDS: &[&str] = &["grouped_bars", "lines"];

fn default_aggregation() -> String {
    "mean".into()
}
fn one() -> f64 {
    1.0
}
