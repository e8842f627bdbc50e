//! The paper's published tables as data (experiments/paper/<id>.toml, embedded
//! at compile time: the program never reads the paper at run time), so a
//! report can set our numbers beside them and check the paper's orderings.
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::CellResult;
use super::grid::Grid;
use super::spec::TableSpec;

/// `(id, TOML text)` of experiments/paper/<id>.toml, embedded at compile time.
macro_rules! paper_file {
    ($id:literal) => {
        (
            $id,
            include_str!(concat!("../../experiments/paper/", $id, ".toml")),
        )
    };
}

/// Every paper table shipped with the program: id → TOML text. Tables 7–9,
/// 14–15, 18–19 are hyper-parameters or generated text, not results. A
/// figure's entry holds the few of its numbers the paper's text prints.
const PAPER_TABLES: &[(&str, &str)] = &[
    paper_file!("table1"),
    paper_file!("table2"),
    paper_file!("table3"),
    paper_file!("table4"),
    paper_file!("table5"),
    paper_file!("table6"),
    paper_file!("table10"),
    paper_file!("table11"),
    paper_file!("table12"),
    paper_file!("table13"),
    paper_file!("table16"),
    paper_file!("table17"),
    paper_file!("table20"),
    paper_file!("table21"),
    paper_file!("table22"),
    paper_file!("table23"),
    paper_file!("table24"),
    paper_file!("table25"),
    paper_file!("table26"),
    paper_file!("fig1"),
    paper_file!("fig2"),
    paper_file!("fig3_right"),
    paper_file!("fig4"),
];

/// The ids of every paper table shipped with the program, in the paper's order.
pub fn paper_table_ids() -> impl Iterator<Item = &'static str> {
    PAPER_TABLES.iter().map(|(id, _)| *id)
}

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
    /// The table's main metric (`gra`, `weak_accuracy`, `win_rate`), in the
    /// paper's unit (%). A row may publish another one (`train_seconds`).
    pub value: String,
    /// One cell per number; labels are rows + columns + `run = "paper"`;
    /// metrics are the number (and `<metric>_std` where the paper gives one).
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
    /// The metric of this row's numbers when it is not the table's `value`
    /// (Table 6's last row is training seconds, the others weak accuracy).
    #[serde(default)]
    value: Option<String>,
    /// Published standard deviations beside `values` (Table 20's `± std`),
    /// kept as the metric `<metric>_std`.
    #[serde(default)]
    std: Option<Vec<f64>>,
}

/// The paper's table `id` (`"table1"`), or `None` if the paper has no such
/// table shipped with the program.
pub fn paper_table(id: &str) -> anyhow::Result<Option<PaperTable>> {
    let Some((_, text)) = PAPER_TABLES.iter().find(|(known, _)| *known == id) else {
        return Ok(None);
    };
    let table = PaperTable::parse(text)
        .with_context(|| format!("experiments/paper/{id}.toml is malformed"))?;
    if table.id != id {
        bail!(
            "experiments/paper/{id}.toml says `id = \"{}\"`; make it `id = \"{id}\"`",
            table.id
        );
    }
    Ok(Some(table))
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
            if let Some(std) = &row.std
                && std.len() != row.values.len()
            {
                bail!(
                    "row {} ({:?}) has {} std values but {} values: give one std per value or drop `std`",
                    i + 1,
                    row.labels,
                    std.len(),
                    row.values.len()
                );
            }
            let metric = row.value.as_ref().unwrap_or(&file.value);
            for (j, (column, &value)) in file.column_order.iter().zip(&row.values).enumerate() {
                if column.len() != file.columns.len() {
                    bail!(
                        "column_order entry {column:?} does not name one value per column key {:?}",
                        file.columns
                    );
                }
                let std = row.std.as_ref().map(|std| std[j]);
                if !value.is_finite() || std.is_some_and(|s| !s.is_finite()) {
                    bail!(
                        "row {} ({:?}), column {column:?}: the number is not finite; leave a value the paper lost out of the table instead",
                        i + 1,
                        row.labels
                    );
                }
                let mut labels = row.labels.clone();
                labels.extend(file.columns.iter().cloned().zip(column.iter().cloned()));
                labels.insert(RUN_LABEL.to_string(), "paper".to_string());
                let mut metrics = BTreeMap::from([(metric.clone(), value)]);
                if let Some(std) = std {
                    metrics.insert(format!("{metric}_std"), std);
                }
                cells.push(CellResult {
                    labels,
                    metrics,
                    prompt_outcomes: None,
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

    /// The table's main metric as a grid (single run: no CIs; `Avg.` rows as
    /// published). Rows of another metric (Table 6's seconds) are left out.
    pub fn grid(&self) -> anyhow::Result<Grid> {
        self.grid_relative_to(None)
    }

    /// [`PaperTable::grid`] with our table's `relative_to`, so the paper's
    /// rows read as ours do (deltas against the same reference row).
    pub fn grid_relative_to(
        &self,
        relative_to: Option<&BTreeMap<String, String>>,
    ) -> anyhow::Result<Grid> {
        let rows: Vec<&str> = self.rows.iter().map(String::as_str).collect();
        let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let mut spec = TableSpec::new(&rows, &columns, &self.value);
        spec.over = RUN_LABEL.to_string();
        spec.relative_to = relative_to.cloned();
        let cells: Vec<CellResult> = self
            .cells
            .iter()
            .filter(|cell| cell.metrics.contains_key(&self.value))
            .cloned()
            .collect();
        Grid::build(&spec, &cells)
    }

    /// How many decimals the paper prints for the main metric (1 or 2; Table
    /// 20's means and some "Avg." rows have 2), so a report shows them as is.
    pub fn decimals(&self) -> usize {
        let printed_with_one = |v: f64| ((v * 10.0).round() - v * 10.0).abs() < 1e-6;
        let all_one = self
            .cells
            .iter()
            .filter_map(|cell| cell.metrics.get(&self.value))
            .all(|&v| printed_with_one(v));
        if all_one { 1 } else { 2 }
    }

    /// The published number of the table's main metric whose labels match
    /// `labels` on every key the paper uses, ignoring case and punctuation
    /// (`HH-RLHF` = `hh_rlhf`).
    pub fn lookup(&self, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.lookup_metric(labels, &self.value)
    }

    /// As [`PaperTable::lookup`], for any metric the table publishes
    /// (`train_seconds` in Table 6, `gra_std` in Table 20).
    pub fn lookup_metric(&self, labels: &BTreeMap<String, String>, metric: &str) -> Option<f64> {
        self.cells
            .iter()
            .filter(|cell| {
                cell.labels
                    .iter()
                    .filter(|(k, _)| *k != RUN_LABEL)
                    .all(|(k, v)| {
                        labels
                            .get(k)
                            .is_some_and(|ours| normalise_label(ours) == normalise_label(v))
                    })
            })
            .find_map(|cell| cell.metrics.get(metric).copied())
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
    fn every_registered_table_parses_and_has_a_grid() {
        let ids: Vec<&str> = paper_table_ids().collect();
        assert_eq!(ids.len(), 23, "{ids:?}");
        for id in ids {
            let t = paper_table(id).unwrap().expect("registered");
            assert_eq!(t.id, id);
            assert!(!t.source.is_empty() && !t.title.is_empty(), "{id}");
            let grid = t.grid().unwrap_or_else(|e| panic!("{id}: {e:#}"));
            assert!(!grid.rows.is_empty(), "{id} has no rows");
        }
    }

    /// The paper's averages are recomputed from the rows they average (rows
    /// that agree on every row label the Avg. row does not set to "Avg."), so a
    /// mistyped number in any table shows up here.
    #[test]
    fn every_published_average_agrees_with_its_rows() {
        let is_avg = |v: &str| normalise_label(v) == "avg";
        let mut checked = 0;
        let mut off = Vec::new();
        for id in paper_table_ids() {
            let t = paper_table(id).unwrap().unwrap();
            let main: Vec<&CellResult> = t
                .cells
                .iter()
                .filter(|c| c.metrics.contains_key(&t.value))
                .collect();
            for avg in main
                .iter()
                .filter(|c| t.rows.iter().any(|k| is_avg(&c.labels[k])))
            {
                let averaged: Vec<f64> = main
                    .iter()
                    .filter(|c| {
                        t.rows.iter().all(|k| {
                            let (a, v) = (&avg.labels[k], &c.labels[k]);
                            if is_avg(a) { !is_avg(v) } else { a == v }
                        }) && t.columns.iter().all(|k| avg.labels[k] == c.labels[k])
                    })
                    .map(|c| c.metrics[&t.value])
                    .collect();
                assert!(
                    averaged.len() >= 2,
                    "{id} {}: nothing averaged",
                    avg.describe()
                );
                let mean = averaged.iter().sum::<f64>() / averaged.len() as f64;
                let published = avg.metrics[&t.value];
                if (mean - published).abs() > 0.051 {
                    off.push(format!(
                        "{id} {}: rows {mean:.3}, paper {published}",
                        avg.describe()
                    ));
                }
                checked += 1;
            }
        }
        // The paper's own slip, checked against its text: Table 13's 20% column
        // is 65.5, 63.4, 60.2, whose mean 63.03 it prints as 63.1.
        assert_eq!(
            off,
            [
                "table13 {dataset=Avg., labeled_fraction=0.2, pair=opt, run=paper}: rows 63.033, paper 63.1"
            ]
        );
        // Every table but 21, 22, 24, 25 has averages.
        assert!(checked > 100, "only {checked} averages checked");
    }

    /// One number per table, read off the paper's text by hand.
    #[test]
    fn spot_values_match_the_paper() {
        let at = |id: &str, pairs: &[(&str, &str)]| {
            paper_table(id).unwrap().unwrap().lookup(&labels(pairs))
        };
        // (table id, labels, the number printed in the paper)
        type Spot<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
        let spots: &[Spot] = &[
            (
                "table2",
                &[
                    ("dataset", "TL;DR"),
                    ("pair", "opt"),
                    ("strong_model", "opt-6.7b"),
                    ("annotation", "ws"),
                ],
                50.2,
            ),
            (
                "table2",
                &[
                    ("dataset", "hh-rlhf"),
                    ("pair", "qwen"),
                    ("strong_model", "qwen2.5-3b"),
                    ("annotation", "cw"),
                ],
                73.3,
            ),
            (
                "table3",
                &[
                    ("pair", "qwen"),
                    ("dataset", "helpful"),
                    ("annotation", "human"),
                ],
                58.5,
            ),
            (
                "table3",
                &[
                    ("pair", "opt"),
                    ("dataset", "hh-rlhf"),
                    ("annotation", "cw"),
                ],
                69.9,
            ),
            (
                "table4",
                &[
                    ("pair", "qwen"),
                    ("dataset", "helpful"),
                    ("annotation", "top40"),
                ],
                60.2,
            ),
            // §4's text: "CW-DPO with only 20% of the annotations ... surpasses
            // DPO trained on the fully human-annotated dataset (70.3% vs. 69.7%)"
            (
                "fig1",
                &[("labeled_fraction", "0.2"), ("annotation", "human")],
                69.7,
            ),
            (
                "fig3_right",
                &[("labeled_fraction", "0.2"), ("annotation", "cw")],
                70.3,
            ),
            // Table 11, Qwen Helpful top-30%; and the pairs' mean at HH-RLHF
            // Human: (64.4 + 61.8) / 2
            (
                "fig2",
                &[
                    ("dataset", "helpful"),
                    ("pair", "qwen"),
                    ("annotation", "top30"),
                ],
                58.7,
            ),
            (
                "fig2",
                &[
                    ("dataset", "hh-rlhf"),
                    ("pair", "Avg."),
                    ("annotation", "human"),
                ],
                63.1,
            ),
            // Table 4's top-40% and Table 11's top-75%, Qwen Helpful
            (
                "fig4",
                &[
                    ("pair", "qwen"),
                    ("dataset", "helpful"),
                    ("annotation", "top40"),
                ],
                60.2,
            ),
            (
                "fig4",
                &[
                    ("pair", "qwen"),
                    ("dataset", "helpful"),
                    ("annotation", "top75"),
                ],
                51.5,
            ),
            (
                "table5",
                &[
                    ("pair", "qwen"),
                    ("dataset", "hh-rlhf"),
                    ("align.weighting", "lost-formula-4"),
                ],
                72.5,
            ),
            (
                "table6",
                &[
                    ("pair", "opt"),
                    ("dataset", "harmless"),
                    ("weak_objective", "bt"),
                ],
                69.1,
            ),
            (
                "table10",
                &[
                    ("pair", "opt"),
                    ("dataset", "helpful"),
                    ("annotation", "top50"),
                ],
                68.0,
            ),
            (
                "table11",
                &[
                    ("pair", "qwen"),
                    ("dataset", "helpful"),
                    ("annotation", "weak"),
                ],
                52.3,
            ),
            (
                "table12",
                &[("dataset", "tldr"), ("weak_model", "qwen2.5-3b")],
                61.6,
            ),
            (
                "table13",
                &[
                    ("pair", "opt"),
                    ("dataset", "hh-rlhf"),
                    ("labeled_fraction", "0.4"),
                ],
                62.6,
            ),
            (
                "table16",
                &[
                    ("weak_model", "qwen2.5-0.5b"),
                    ("strong_model", "opt-13b"),
                    ("dataset", "helpful"),
                    ("annotation", "ws"),
                ],
                75.4,
            ),
            (
                "table17",
                &[
                    ("pair", "qwen"),
                    ("dataset", "tldr"),
                    ("objective", "rdpo"),
                    ("annotation", "ws"),
                ],
                85.9,
            ),
            (
                "table20",
                &[
                    ("pair", "opt"),
                    ("dataset", "tldr"),
                    ("objective", "rdpo"),
                    ("annotation", "human"),
                ],
                55.04,
            ),
            (
                "table21",
                &[
                    ("pair", "opt"),
                    ("dataset", "hh-rlhf"),
                    ("regime", "online"),
                    ("annotation", "reward-model"),
                ],
                85.3,
            ),
            (
                "table22",
                &[
                    ("pair", "opt"),
                    ("dataset", "tldr"),
                    ("regime", "offline"),
                    ("annotation", "cw"),
                ],
                56.6,
            ),
            (
                "table23",
                &[
                    ("dataset", "shp-askengineers"),
                    ("strong_model", "qwen2.5-14b"),
                    ("annotation", "cw"),
                ],
                55.4,
            ),
            (
                "table24",
                &[
                    ("weak_mixture", "harmless20-helpful80"),
                    ("dataset", "helpful"),
                    ("annotation", "ws"),
                ],
                62.4,
            ),
            (
                "table25",
                &[("annotation", "ws"), ("poison_ratio", "0.15")],
                64.7,
            ),
            (
                "table26",
                &[
                    ("pair", "qwen"),
                    ("dataset", "tldr"),
                    ("weak_objective", "pairrm"),
                    ("annotation", "cw"),
                ],
                62.2,
            ),
        ];
        for (id, pairs, want) in spots {
            assert_eq!(at(id, pairs), Some(*want), "{id} {pairs:?}");
        }
        let spotted: std::collections::BTreeSet<&str> = spots.iter().map(|s| s.0).collect();
        for id in paper_table_ids().filter(|id| *id != "table1") {
            assert!(spotted.contains(id), "{id} has no spot value");
        }
        // a label the paper does not have never matches: Table 5's lost formulas
        assert_eq!(
            at(
                "table5",
                &[
                    ("pair", "qwen"),
                    ("dataset", "hh-rlhf"),
                    ("align.weighting", "sigmoid")
                ]
            ),
            None
        );
        // Table 26's PairRM and BT annotators are told apart
        assert_eq!(
            at(
                "table26",
                &[
                    ("pair", "qwen"),
                    ("dataset", "tldr"),
                    ("weak_objective", "bt"),
                    ("annotation", "cw")
                ]
            ),
            Some(64.4)
        );
    }

    #[test]
    fn second_metrics_are_looked_up_by_name_and_left_out_of_the_grid() {
        let t6 = paper_table("table6").unwrap().unwrap();
        let seconds = labels(&[
            ("pair", "unspecified"),
            ("dataset", "unspecified"),
            ("weak_objective", "sft_dpo"),
        ]);
        assert_eq!(t6.lookup_metric(&seconds, "train_seconds"), Some(4978.0));
        assert_eq!(t6.lookup(&seconds), None);
        let grid = t6.grid().unwrap();
        assert!(
            grid.rows
                .iter()
                .all(|r| !r.contains(&"unspecified".to_string())),
            "{:?}",
            grid.rows
        );
        assert_eq!(grid.rows.len(), 7);

        assert_eq!(t6.decimals(), 1);
        let t20 = paper_table("table20").unwrap().unwrap();
        assert_eq!(t20.decimals(), 2);
        let cell = labels(&[
            ("pair", "qwen"),
            ("dataset", "Avg."),
            ("objective", "ipo"),
            ("annotation", "human"),
        ]);
        assert_eq!(t20.lookup(&cell), Some(75.3));
        assert_eq!(t20.lookup_metric(&cell, "gra_std"), Some(10.0));
    }

    #[test]
    fn non_finite_numbers_and_short_std_are_errors() {
        let file = |row: &str| {
            format!(
                "id = \"t\"\ntitle = \"t\"\nsource = \"s\"\nrows = [\"dataset\"]\ncolumns = [\"annotation\"]\nvalue = \"gra\"\ncolumn_order = [[\"human\"], [\"cw\"]]\n[[row]]\nlabels = {{ dataset = \"tldr\" }}\n{row}\n"
            )
        };
        let err = PaperTable::parse(&file("values = [1.0, nan]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not finite"), "{err}");
        let err = PaperTable::parse(&file("values = [1.0, 2.0]\nstd = [0.5]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 std values but 2 values"), "{err}");
        let ok = PaperTable::parse(&file("values = [1.0, 2.0]\nstd = [0.5, 0.25]")).unwrap();
        assert_eq!(ok.cells[1].metrics["gra_std"], 0.25);
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
