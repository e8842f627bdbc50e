//! What a manifest's `[report]` block says: which labels make a table's rows
//! and columns, which metric fills it, and which figure to draw from it.
//!
//! ```toml
//! [report]
//! rows = ["pair", "dataset"]
//! columns = ["objective", "annotation"]
//! value = "gra"
//! extra_values = ["gra_shared", { value = "gold_mean", scale = 1 }]
//! avg_row = true
//! scale = 100
//! paper = "table1"
//! claims = ["cw > ws", "cw > human"]
//! order = { annotation = ["human", "ws", "cw"] }
//! [report.figure]
//! kind = "grouped_bars"
//! panel = "pair"
//! x = "dataset"
//! series = ["objective", "annotation"]
//! ```
use std::collections::BTreeMap;

use serde::Deserialize;

/// A table: rows × columns of a metric, averaged over `over` (the seeds).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// Label keys whose values name a row, outermost first (`["pair", "dataset"]`):
    /// all but the last key form a block, the last varies inside it.
    pub rows: Vec<String>,
    /// Label keys whose values name a column, outermost first
    /// (`["objective", "annotation"]`).
    pub columns: Vec<String>,
    /// The metric that fills the table (`"gra"`).
    pub value: String,
    /// Further metrics, one CSV each (`<experiment>_<metric>.csv`), same shape.
    #[serde(default)]
    pub extra_values: Vec<ExtraValue>,
    /// The label the mean and CI are taken over.
    #[serde(default = "default_over")]
    pub over: String,
    /// Add an `Avg.` row per block: the mean of the block's row means.
    #[serde(default)]
    pub avg_row: bool,
    /// Multiplies every value (100 turns a fraction into a percentage).
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Explicit order of a label's values; values not listed follow in the
    /// order they first appear among the cells (never hash order).
    #[serde(default)]
    pub order: BTreeMap<String, Vec<String>>,
    /// Id of the paper's table to set beside ours (`"table1"`).
    #[serde(default)]
    pub paper: Option<String>,
    /// Orderings to check on the last column label, as `"a > b"`.
    #[serde(default)]
    pub claims: Vec<String>,
    /// The figure drawn from the same cells, if any.
    #[serde(default)]
    pub figure: Option<FigureSpec>,
}

fn default_over() -> String {
    "seed".to_string()
}

fn default_scale() -> f64 {
    1.0
}

impl TableSpec {
    /// A spec with the defaults a manifest gets when it names only the axes.
    pub fn new(rows: &[&str], columns: &[&str], value: &str) -> Self {
        TableSpec {
            rows: rows.iter().map(|s| s.to_string()).collect(),
            columns: columns.iter().map(|s| s.to_string()).collect(),
            value: value.to_string(),
            extra_values: Vec::new(),
            over: default_over(),
            avg_row: false,
            scale: default_scale(),
            order: BTreeMap::new(),
            paper: None,
            claims: Vec::new(),
            figure: None,
        }
    }

    /// The same table for a further metric (for the extra CSVs).
    pub fn for_extra(&self, extra: &ExtraValue) -> Self {
        match extra {
            ExtraValue::Name(value) => TableSpec {
                value: value.clone(),
                ..self.clone()
            },
            ExtraValue::Scaled { value, scale } => TableSpec {
                value: value.clone(),
                scale: *scale,
                ..self.clone()
            },
        }
    }
}

/// A further metric tabulated like the main one: a bare name takes the main
/// table's scale (`"gra_shared"`); a table sets its own
/// (`{ value = "gold_mean", scale = 1 }`, a reward is no fraction).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExtraValue {
    Name(String),
    Scaled { value: String, scale: f64 },
}

impl ExtraValue {
    pub fn value(&self) -> &str {
        match self {
            ExtraValue::Name(value) | ExtraValue::Scaled { value, .. } => value,
        }
    }
}

/// The kind of figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// One group of bars per value of `x`, one bar per `series` value, CI
    /// whiskers; one panel per value of `panel`.
    GroupedBars,
    /// `x` is a numeric label; one line per `series` value with a CI band.
    Line,
}

/// A figure over the table's cells; value, `over` and scale come from the
/// [`TableSpec`] it is drawn with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub kind: FigureKind,
    /// Label key with one panel per value (`"pair"`); `None` draws one panel.
    #[serde(default)]
    pub panel: Option<String>,
    /// Label key along the x axis (`"dataset"`, or a numeric one for lines).
    pub x: String,
    /// Label keys whose joined values name a bar or line.
    pub series: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_block_parses_with_defaults_and_rejects_unknown_keys() {
        let spec: TableSpec = toml::from_str(
            r#"
            rows = ["pair", "dataset"]
            columns = ["objective", "annotation"]
            value = "gra"
            extra_values = ["gra_shared", { value = "gold_mean", scale = 1 }]
            [figure]
            kind = "grouped_bars"
            panel = "pair"
            x = "dataset"
            series = ["objective", "annotation"]
            "#,
        )
        .unwrap();
        assert_eq!(spec.over, "seed");
        assert_eq!(spec.scale, 1.0);
        assert!(!spec.avg_row);
        assert_eq!(spec.for_extra(&spec.extra_values[1]).scale, 1.0);
        assert_eq!(spec.extra_values[0].value(), "gra_shared");
        assert_eq!(spec.figure.unwrap().kind, FigureKind::GroupedBars);
        let err = toml::from_str::<TableSpec>("rows = []\ncolumns = []\nvalue = \"gra\"\nrow = 1")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `row`"), "{err}");
    }
}
