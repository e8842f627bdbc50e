//! The paper's published tables as data (experiments/paper/<id>.toml, embedded
//! at compile time: the program never reads the paper at run time), so a
//! report can set our numbers beside them and check the paper's orderings.
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::CellResult;
use super::grid::Grid;
use super::spec::TableSpec;

/// Every paper table shipped with the program: id → TOML text.
const PAPER_TABLES: &[(&str, &str)] = &[(
    "table1",
    include_str!("../../experiments/paper/table1.toml"),
)];

/// The label that tells the paper's single run apart (the `over` of its grid).
const RUN_LABEL: &str = "run";

/// One table of the paper, with one cell per published number.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperTable {
    pub id: String,
    pub title: String,
    /// Where the numbers come from, and what the label ids stand for.
    pub source: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// The metric the table reports (`gra`), in the paper's unit (%).
    pub value: String,
    /// One cell per number; labels are rows + columns + `run = "paper"`.
    pub cells: Vec<CellResult>,
}

/// The on-disk shape of experiments/paper/<id>.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaperFile {
    id: String,
    title: String,
    source: String,
    rows: Vec<String>,
    columns: Vec<String>,
    value: String,
    /// Column label values, in the order of every row's `values`.
    column_order: Vec<Vec<String>>,
    row: Vec<PaperRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaperRow {
    labels: BTreeMap<String, String>,
    values: Vec<f64>,
}

/// The paper's table `id` (`"table1"`), or `None` if the paper has no such
/// table shipped with the program.
pub fn paper_table(id: &str) -> anyhow::Result<Option<PaperTable>> {
    let Some((_, text)) = PAPER_TABLES.iter().find(|(known, _)| *known == id) else {
        return Ok(None);
    };
    PaperTable::parse(text)
        .with_context(|| format!("experiments/paper/{id}.toml is malformed"))
        .map(Some)
}

impl PaperTable {
    /// Parses and checks a paper table file.
    pub fn parse(text: &str) -> anyhow::Result<PaperTable> {
        let file: PaperFile = toml::from_str(text)?;
        let mut cells = Vec::new();
        for (i, row) in file.row.iter().enumerate() {
            if row.values.len() != file.column_order.len() {
                bail!(
                    "row {} ({:?}) has {} values but column_order lists {} columns",
                    i + 1,
                    row.labels,
                    row.values.len(),
                    file.column_order.len()
                );
            }
            for key in &file.rows {
                if !row.labels.contains_key(key) {
                    bail!(
                        "row {} ({:?}) lacks the row label `{key}`",
                        i + 1,
                        row.labels
                    );
                }
            }
            for (column, &value) in file.column_order.iter().zip(&row.values) {
                if column.len() != file.columns.len() {
                    bail!(
                        "column_order entry {column:?} does not name one value per column key {:?}",
                        file.columns
                    );
                }
                let mut labels = row.labels.clone();
                labels.extend(file.columns.iter().cloned().zip(column.iter().cloned()));
                labels.insert(RUN_LABEL.to_string(), "paper".to_string());
                cells.push(CellResult {
                    labels,
                    metrics: BTreeMap::from([(file.value.clone(), value)]),
                });
            }
        }
        Ok(PaperTable {
            id: file.id,
            title: file.title,
            source: file.source,
            rows: file.rows,
            columns: file.columns,
            value: file.value,
            cells,
        })
    }

    /// The table as a grid (single run: no CIs; `Avg.` rows as published).
    pub fn grid(&self) -> anyhow::Result<Grid> {
        let rows: Vec<&str> = self.rows.iter().map(String::as_str).collect();
        let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let mut spec = TableSpec::new(&rows, &columns, &self.value);
        spec.over = RUN_LABEL.to_string();
        Grid::build(&spec, &self.cells)
    }

    /// The published number whose labels match `labels` on every key the
    /// paper uses, ignoring case and punctuation (`HH-RLHF` = `hh_rlhf`).
    pub fn lookup(&self, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.cells
            .iter()
            .find(|cell| {
                cell.labels
                    .iter()
                    .filter(|(k, _)| *k != RUN_LABEL)
                    .all(|(k, v)| {
                        labels
                            .get(k)
                            .is_some_and(|ours| normalise_label(ours) == normalise_label(v))
                    })
            })
            .and_then(|cell| cell.metrics.get(&self.value).copied())
    }
}

/// Lower-case alphanumerics only: how a run's label values are matched to the
/// paper's (`TL;DR` = `tldr`, `Avg.` = `avg`).
pub fn normalise_label(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table1_holds_every_cell_and_the_published_averages() {
        let t = paper_table("table1").unwrap().expect("table1 is shipped");
        // 2 pairs × (3 datasets + Avg.) × 3 objectives × 3 annotations
        assert_eq!(t.cells.len(), 2 * 4 * 9);
        let at = |pair, dataset, objective, annotation| {
            t.lookup(&labels(&[
                ("pair", pair),
                ("dataset", dataset),
                ("objective", objective),
                ("annotation", annotation),
            ]))
        };
        assert_eq!(at("opt", "Avg.", "dpo", "human"), Some(58.4));
        assert_eq!(at("OPT", "avg", "rdpo", "cw"), Some(62.7));
        assert_eq!(at("qwen", "TL;DR", "ipo", "ws"), Some(62.8));
        assert_eq!(at("qwen", "HH_RLHF", "rdpo", "cw"), Some(86.2));
        assert_eq!(at("qwen", "shp", "dpo", "cw"), None);
        // the published averages agree with the rows to rounding
        for pair in ["opt", "qwen"] {
            for obj in ["dpo", "ipo", "rdpo"] {
                for ann in ["human", "ws", "cw"] {
                    let rows: f64 = ["hh-rlhf", "tldr", "ufb"]
                        .iter()
                        .map(|d| at(pair, d, obj, ann).unwrap())
                        .sum();
                    let avg = at(pair, "Avg.", obj, ann).unwrap();
                    assert!(
                        (rows / 3.0 - avg).abs() <= 0.051,
                        "{pair} {obj} {ann}: {} vs {avg}",
                        rows / 3.0
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_table_is_none_and_bad_rows_are_errors() {
        assert!(paper_table("table99").unwrap().is_none());
        let bad = r#"
            id = "t"
            title = "t"
            source = "s"
            rows = ["dataset"]
            columns = ["annotation"]
            value = "gra"
            column_order = [["human"], ["cw"]]
            [[row]]
            labels = { dataset = "tldr" }
            values = [1.0]
        "#;
        let err = PaperTable::parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("has 1 values but column_order lists 2"),
            "{err}"
        );
    }
}
