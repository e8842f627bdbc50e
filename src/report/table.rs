//! The grid as the paper prints it: a polars `DataFrame` for the CSV (label
//! columns, then a mean and a `_ci95` column per column group) and a markdown
//! table for `report.md`.
use polars::prelude::{Column, DataFrame};

use super::CellResult;
use super::grid::Grid;
use super::spec::TableSpec;
use super::stats::Summary;

/// Aggregates `cells` into the paper-shaped table of `spec.value`.
///
/// Columns: one per row key (`pair`, `dataset`), then for each column label
/// combination `<a>_<b>` (the mean over `spec.over`, scaled) and
/// `<a>_<b>_ci95` (the Student-t 95% half-width; null when a group has one
/// seed, or for an `Avg.` row whose rows ran different seeds). Rows and
/// columns follow `spec.order`, then first appearance among the cells.
pub fn build_table(spec: &TableSpec, cells: &[CellResult]) -> anyhow::Result<DataFrame> {
    grid_to_frame(&Grid::build(spec, cells)?)
}

/// The CSV name of a column group: its label values joined by `_`.
pub fn column_name(column: &[String]) -> String {
    column.join("_")
}

/// The polars view of a grid.
pub fn grid_to_frame(grid: &Grid) -> anyhow::Result<DataFrame> {
    let mut frame_columns = Vec::new();
    for (k, key) in grid.row_keys.iter().enumerate() {
        let values: Vec<String> = grid.rows.iter().map(|r| r[k].clone()).collect();
        frame_columns.push(Column::new(key.as_str().into(), values));
    }
    for (c, column) in grid.columns.iter().enumerate() {
        let name = column_name(column);
        let at = |r: usize| grid.entries[r][c];
        let means: Vec<Option<f64>> = (0..grid.rows.len())
            .map(|r| at(r).map(|s| s.mean))
            .collect();
        let cis: Vec<Option<f64>> = (0..grid.rows.len())
            .map(|r| at(r).and_then(|s| s.ci95))
            .collect();
        frame_columns.push(Column::new(name.as_str().into(), means));
        frame_columns.push(Column::new(format!("{name}_ci95").into(), cis));
    }
    Ok(DataFrame::new(frame_columns)?)
}

/// Decimals to print: one for percentages (scale ≥ 100), three otherwise.
pub fn decimals_for(spec: &TableSpec) -> usize {
    if spec.scale >= 100.0 { 1 } else { 3 }
}

/// `61.3 ± 2.1`, `61.3` without a CI, `—` for a missing entry.
pub fn format_summary(s: Option<Summary>, decimals: usize) -> String {
    match s {
        None => "—".to_string(),
        Some(Summary {
            mean, ci95: None, ..
        }) => format!("{mean:.decimals$}"),
        Some(Summary {
            mean,
            ci95: Some(ci),
            ..
        }) => format!("{mean:.decimals$} ± {ci:.decimals$}"),
    }
}

/// A GitHub-flavoured markdown table of the grid; `Avg.` rows in bold.
pub fn grid_to_markdown(grid: &Grid, decimals: usize) -> String {
    let mut header: Vec<String> = grid.row_keys.clone();
    header.extend(grid.columns.iter().map(|c| c.join(" ")));
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        header.iter().map(|_| "---|").collect::<String>()
    ));
    for (row, entries) in grid.rows.iter().zip(&grid.entries) {
        let is_avg = row.last().map(String::as_str) == Some(super::grid::AVG_LABEL);
        let mut line: Vec<String> = row.clone();
        line.extend(entries.iter().map(|e| format_summary(*e, decimals)));
        if is_avg {
            line = line.into_iter().map(|s| format!("**{s}**")).collect();
        }
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;
    use polars::prelude::AnyValue;

    fn f64_at(df: &DataFrame, column: &str, row: usize) -> Option<f64> {
        match df.column(column).unwrap().get(row).unwrap() {
            AnyValue::Float64(v) => Some(v),
            AnyValue::Null => None,
            other => panic!("{column}[{row}] is {other:?}"),
        }
    }

    fn str_at(df: &DataFrame, column: &str, row: usize) -> String {
        df.column(column)
            .unwrap()
            .get(row)
            .unwrap()
            .str_value()
            .to_string()
    }

    #[test]
    fn table1_shape_and_column_names_follow_the_paper() {
        let df = build_table(&table1_spec(), &table1_cells()).unwrap();
        // 2 pairs × (3 datasets + Avg.)
        assert_eq!(df.height(), 8);
        let mut expected = vec!["pair".to_string(), "dataset".to_string()];
        for o in OBJECTIVES {
            for a in ANNOTATIONS {
                expected.push(format!("{o}_{a}"));
                expected.push(format!("{o}_{a}_ci95"));
            }
        }
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, expected);
        let rows: Vec<(String, String)> = (0..8)
            .map(|r| (str_at(&df, "pair", r), str_at(&df, "dataset", r)))
            .collect();
        let want: Vec<(String, String)> = PAIRS
            .iter()
            .flat_map(|p| {
                DATASETS
                    .iter()
                    .chain(&["Avg."])
                    .map(move |d| (p.to_string(), d.to_string()))
            })
            .collect();
        assert_eq!(rows, want);
    }

    #[test]
    fn mean_and_ci_match_a_hand_computation() {
        let df = build_table(&table1_spec(), &table1_cells()).unwrap();
        // qwen (pair 1), tldr (dataset 1, row 5), ipo (objective 1), cw (annotation 2)
        let v: Vec<f64> = (0..3).map(|s| 100.0 * gra(1, 1, 1, 2, s)).collect();
        let mean = (v[0] + v[1] + v[2]) / 3.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let ci = 4.303 * sd / 3f64.sqrt();
        assert!((f64_at(&df, "ipo_cw", 5).unwrap() - mean).abs() < 1e-9);
        assert!((f64_at(&df, "ipo_cw_ci95", 5).unwrap() - ci).abs() < 1e-9);
        // noise (0, +2, −1)·3 points: s = 1.527…·3, so the CI is wide, not zero
        assert!(ci > 5.0);
    }

    #[test]
    fn avg_row_is_the_mean_of_the_dataset_means() {
        let df = build_table(&table1_spec(), &table1_cells()).unwrap();
        for column in ["dpo_human", "rdpo_cw", "ipo_ws"] {
            for (avg_row, first) in [(3, 0), (7, 4)] {
                let means: f64 = (first..first + 3)
                    .map(|r| f64_at(&df, column, r).unwrap())
                    .sum::<f64>()
                    / 3.0;
                assert!(
                    (f64_at(&df, column, avg_row).unwrap() - means).abs() < 1e-9,
                    "{column} row {avg_row}"
                );
            }
        }
        // all datasets ran seeds 0–2: the Avg. CI is over per-seed averages
        // (noise (0, +2, −1)·(1 + annotation) is shared across datasets)
        let ci = f64_at(&df, "dpo_human_ci95", 3).unwrap();
        let noise = [0.0f64, 2.0, -1.0];
        let m = 1.0 / 3.0;
        let sd = (noise.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((ci - 4.303 * sd / 3f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn avg_row_without_shared_seeds_keeps_the_mean_and_drops_the_ci() {
        // opt / tldr lost seed 2 everywhere: the Avg. rows of opt cannot pair seeds
        let cells: Vec<_> = table1_cells()
            .into_iter()
            .filter(|c| {
                !(c.labels["pair"] == "opt"
                    && c.labels["dataset"] == "tldr"
                    && c.labels["seed"] == "2")
            })
            .collect();
        let df = build_table(&table1_spec(), &cells).unwrap();
        let means: f64 = (0..3)
            .map(|r| f64_at(&df, "ipo_ws", r).unwrap())
            .sum::<f64>()
            / 3.0;
        assert!((f64_at(&df, "ipo_ws", 3).unwrap() - means).abs() < 1e-9);
        assert_eq!(f64_at(&df, "ipo_ws_ci95", 3), None);
        // qwen is untouched and keeps its CI
        assert!(f64_at(&df, "ipo_ws_ci95", 7).is_some());
    }

    #[test]
    fn explicit_order_beats_first_appearance() {
        let mut cells = table1_cells();
        cells.reverse();
        let mut spec = table1_spec();
        let df = build_table(&spec, &cells).unwrap();
        // reversed cells: qwen and cw appear first
        assert_eq!(str_at(&df, "pair", 0), "qwen");
        assert_eq!(df.get_column_names()[2].as_str(), "rdpo_cw");
        spec.order.insert(
            "annotation".into(),
            vec!["human".into(), "ws".into(), "cw".into()],
        );
        spec.order.insert("objective".into(), vec!["dpo".into()]);
        let df = build_table(&spec, &cells).unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(
            &names[2..8],
            [
                "dpo_human",
                "dpo_human_ci95",
                "dpo_ws",
                "dpo_ws_ci95",
                "dpo_cw",
                "dpo_cw_ci95"
            ]
        );
        assert_eq!(names[8], "rdpo_human");
    }

    #[test]
    fn nan_metric_is_an_error_naming_the_cell() {
        let mut cells = table1_cells();
        let bad = cells
            .iter_mut()
            .find(|c| {
                c.labels["dataset"] == "tldr"
                    && c.labels["seed"] == "1"
                    && c.labels["annotation"] == "ws"
            })
            .unwrap();
        bad.metrics.insert("gra".into(), f64::NAN);
        let err = build_table(&table1_spec(), &cells).unwrap_err().to_string();
        assert!(
            err.contains("annotation=ws") && err.contains("dataset=tldr") && err.contains("seed=1"),
            "{err}"
        );
        assert!(err.contains("`gra` = NaN"), "{err}");
    }

    #[test]
    fn cells_differing_in_an_unshown_label_are_an_error() {
        let mut cells = table1_cells();
        let mut twin = cells[0].clone();
        twin.labels.insert("beta".into(), "0.1".into());
        cells.push(twin);
        let err = build_table(&table1_spec(), &cells).unwrap_err().to_string();
        assert!(
            err.contains("beta") && err.contains("same table entry"),
            "{err}"
        );
    }

    #[test]
    fn a_single_seed_leaves_the_ci_null() {
        let cells: Vec<_> = table1_cells()
            .into_iter()
            .filter(|c| c.labels["seed"] == "0")
            .collect();
        let df = build_table(&table1_spec(), &cells).unwrap();
        assert_eq!(df.column("dpo_cw_ci95").unwrap().null_count(), df.height());
        assert_eq!(df.column("dpo_cw").unwrap().null_count(), 0);
        let md = grid_to_markdown(&Grid::build(&table1_spec(), &cells).unwrap(), 1);
        assert!(!md.contains('±'), "{md}");
    }
}
