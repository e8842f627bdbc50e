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
//! range = [0, 1]          # optional: bounds of `value` (known for gra, accuracies)
//! neutral = 0.5           # optional: its neutral value, dashed in the figure
//! paper = "table1"
//! claims = ["cw > ws", "cw > human"]
//! order = { annotation = ["human", "ws", "cw"] }
//! relative_to = { weak_mixture = "harmless50-helpful50" }  # optional, see below
//! [report.figure]
//! kind = "grouped_bars"
//! panel = "pair"
//! x = "dataset"
//! series = ["objective", "annotation"]
//! ```
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metric_info::MetricInfo;
use super::stats::Interval;

/// A table: rows × columns of a metric, averaged over `over` (the seeds).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// Bounds of `value` in its own unit (before `scale`), where
    /// [`MetricInfo::known`] does not know them; CIs stay inside.
    #[serde(default)]
    pub range: Option<(f64, f64)>,
    /// Neutral value of `value` in its own unit (drawn as a dashed line),
    /// where [`MetricInfo::known`] does not know it.
    #[serde(default)]
    pub neutral: Option<f64>,
    /// Id of the paper's table to set beside ours (`"table1"`).
    #[serde(default)]
    pub paper: Option<String>,
    /// Orderings to check on the last column label, as `"a > b"`.
    #[serde(default)]
    pub claims: Vec<String>,
    /// The figure drawn from the same cells, if any.
    #[serde(default)]
    pub figure: Option<FigureSpec>,
    /// `{ <row key> = "<value>" }`: every other row of the table (and its
    /// CSV) shows its difference from the row with that value (and the same
    /// other row labels), as the paper prints Table 24's 80/20 and 20/80
    /// rows against 50/50; the reference row stays absolute. Deltas are the
    /// means of the per-`over` (per-seed) differences, with their Student t
    /// CI (paired by seed). The figure, the claims and the `Avg.` rows stay
    /// absolute (`avg_row` is refused with it).
    #[serde(default)]
    pub relative_to: Option<BTreeMap<String, String>>,
    /// Figure 5: the per-prompt gold-reward gap between two methods, drawn
    /// from the cells' `score` artifacts.
    #[serde(default)]
    pub gold_gap: Option<GoldGapSpec>,
    /// Figure 7: the weak annotator's confidence on the labels it got right
    /// and wrong, drawn from the cells' `annotate` artifacts.
    #[serde(default)]
    pub confidence: Option<ConfidenceSpec>,
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
            range: None,
            neutral: None,
            paper: None,
            claims: Vec::new(),
            figure: None,
            relative_to: None,
            gold_gap: None,
            confidence: None,
        }
    }

    /// The same table for a further metric (for the extra CSVs); the main
    /// value's `range` and `neutral` do not carry over.
    pub fn for_extra(&self, extra: &ExtraValue) -> Self {
        let other = TableSpec {
            value: extra.value().to_string(),
            range: None,
            neutral: None,
            ..self.clone()
        };
        match extra {
            ExtraValue::Name(_) => other,
            ExtraValue::Scaled { scale, .. } => TableSpec {
                scale: *scale,
                ..other
            },
        }
    }

    /// Range and neutral value of `value` in the table's unit (scaled): the
    /// manifest's where it gives them, the known metric's otherwise.
    pub fn metric_info(&self) -> MetricInfo {
        let known = MetricInfo::known(&self.value);
        MetricInfo {
            range: self.range.or(known.range),
            neutral: self.neutral.or(known.neutral),
        }
        .scaled(self.scale)
    }

    /// `relative_to` as (row key, reference value); `None` unless it has
    /// exactly one entry (the manifest check refuses any other shape).
    pub fn reference_row(&self) -> Option<(&str, &str)> {
        match self
            .relative_to
            .as_ref()?
            .iter()
            .collect::<Vec<_>>()
            .as_slice()
        {
            [(key, value)] => Some((key.as_str(), value.as_str())),
            _ => None,
        }
    }

    /// The interval every entry of this table gets.
    pub fn interval(&self) -> Interval {
        Interval::for_range(self.metric_info().range)
    }
}

/// A further metric tabulated like the main one: a bare name takes the main
/// table's scale (`"gra_shared"`); a table sets its own
/// (`{ value = "gold_mean", scale = 1 }`, a reward is no fraction).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// One group of bars per value of `x`, one bar per `series` value, CI
    /// whiskers; one panel per value of `panel`.
    #[default]
    GroupedBars,
    /// `x` is a numeric label; one line per `series` value with a CI band.
    Line,
}

/// A figure over the table's cells; value, `over` and scale come from the
/// [`TableSpec`] it is drawn with.
///
/// ```toml
/// [report.figure]
/// kind = "line"
/// panel = "pair"
/// x = "annotation"
/// x_prefix = "top"      # x values top10 … top90: the axis reads 10 … 90
/// baselines = ["cw"]    # x values drawn as a level line with its CI band
/// series = ["dataset"]
/// average = ["strong_model"]  # optional: labels averaged away first
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
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
    /// Line figures: the text before the number in every `x` value
    /// (`"top"` for `top30`), so a label such as `annotation` can be an axis.
    #[serde(default)]
    pub x_prefix: Option<String>,
    /// Line figures: values of `x` that are methods, not points of the axis
    /// (`"cw"` beside `top10` … `top90`): each is drawn as a dashed level
    /// line across the panel, with its CI band, in its series' colour.
    #[serde(default)]
    pub baselines: Vec<String>,
    /// Labels the figure averages away before it summarises over `over`
    /// (the paper's Figure 2 averages both model pairs): per value of `over`,
    /// the mean over the cells that differ only in these labels, as the
    /// table's `Avg.` rows do; the paper's numbers are looked up at `Avg.`.
    #[serde(default)]
    pub average: Vec<String>,
}

/// `[report.gold_gap]`: for every test prompt (and sample), the gold reward
/// of `compare[0]`'s response minus `compare[1]`'s, where two cells differ
/// only in `label`; one histogram per value of `panel`, pooled over the
/// seeds and every other label.
///
/// ```toml
/// [report.gold_gap]
/// label = "annotation"
/// compare = ["cw", "human"]
/// panel = "dataset"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoldGapSpec {
    pub label: String,
    pub compare: (String, String),
    #[serde(default)]
    pub panel: Option<String>,
}

/// `[report.confidence]`: the weak annotator's confidence on D_U, for the
/// labels that agree with the human's and for those that do not; one
/// panel per value of `panel`, each weak annotator counted once.
///
/// ```toml
/// [report.confidence]
/// panel = "dataset"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceSpec {
    #[serde(default)]
    pub panel: Option<String>,
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
        assert_eq!(spec.figure.as_ref().unwrap().kind, FigureKind::GroupedBars);
        // gra is a share: a logit interval on [0, 1]; gold_mean is unbounded
        assert_eq!(spec.interval(), Interval::LogitT { lo: 0.0, hi: 1.0 });
        let gold = spec.for_extra(&spec.extra_values[1]);
        assert_eq!(gold.interval(), Interval::StudentT);
        assert_eq!(gold.metric_info().neutral, None);
        // a manifest can bound and centre a metric the program does not know
        let custom: TableSpec = toml::from_str(
            "rows = [\"a\"]\ncolumns = [\"b\"]\nvalue = \"judge_score\"\nscale = 10\nrange = [1, 5]\nneutral = 3",
        )
        .unwrap();
        assert_eq!(custom.interval(), Interval::LogitT { lo: 10.0, hi: 50.0 });
        assert_eq!(custom.metric_info().neutral, Some(30.0));
        let err = toml::from_str::<TableSpec>("rows = []\ncolumns = []\nvalue = \"gra\"\nrow = 1")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `row`"), "{err}");
    }
}
