//! The grid as the paper prints it: a polars `DataFrame` for the CSV (label
//! columns, then a mean, a `_lo` and a `_hi` column per column group: the
//! numbers behind the figure's whiskers) and a markdown table for `report.md`.
use polars::prelude::{Column, DataFrame};

use super::CellResult;
use super::grid::Grid;
use super::spec::TableSpec;
use super::stats::Summary;

/// Aggregates `cells` into the paper-shaped table of `spec.value`.
///
/// Columns: one per row key (`pair`, `dataset`), then for each column label
/// combination `<a>_<b>` (the mean over `spec.over`, scaled), `<a>_<b>_lo`
/// and `<a>_<b>_hi` (the 95% CI's ends, [`TableSpec::interval`]; null when a
/// group has one seed, or for an `Avg.` row whose rows ran different seeds).
/// Rows and columns follow `spec.order`, then first appearance among the
/// cells.
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
    if let Some((_, value)) = &grid.relative_to {
        // Which rows are deltas, and against what: a CSV reader must not
        // take a delta for a level.
        let against: Vec<String> = grid
            .rows
            .iter()
            .map(|r| match grid.reference_of(r) {
                Some(_) => value.clone(),
                None => String::new(),
            })
            .collect();
        frame_columns.push(Column::new("relative_to".into(), against));
    }
    for (c, column) in grid.columns.iter().enumerate() {
        let name = column_name(column);
        let at = |r: usize| grid.entries[r][c];
        let means: Vec<Option<f64>> = (0..grid.rows.len())
            .map(|r| at(r).map(|s| s.mean))
            .collect();
        let end = |pick: fn((f64, f64)) -> f64| -> Vec<Option<f64>> {
            (0..grid.rows.len())
                .map(|r| at(r).and_then(|s| s.ci95).map(pick))
                .collect()
        };
        frame_columns.push(Column::new(name.as_str().into(), means));
        frame_columns.push(Column::new(format!("{name}_lo").into(), end(|ci| ci.0)));
        frame_columns.push(Column::new(format!("{name}_hi").into(), end(|ci| ci.1)));
    }
    Ok(DataFrame::new(frame_columns)?)
}

/// Decimals to print: one for percentages (scale ≥ 100), three otherwise.
pub fn decimals_for(spec: &TableSpec) -> usize {
    if spec.scale >= 100.0 { 1 } else { 3 }
}

/// `61.3 [57.2, 65.0]` (mean and CI ends), `61.3` without a CI, `—` for a
/// missing entry.
pub fn format_summary(s: Option<Summary>, decimals: usize) -> String {
    format_entry(s, decimals, false)
}

/// A delta entry (`relative_to`): `+1.1 [-0.4, +2.6]`, signs always shown.
pub fn format_delta(s: Option<Summary>, decimals: usize) -> String {
    format_entry(s, decimals, true)
}

fn format_entry(s: Option<Summary>, decimals: usize, signed: bool) -> String {
    let number = |v: f64| match signed {
        true => format!("{v:+.decimals$}"),
        false => format!("{v:.decimals$}"),
    };
    match s {
        None => "—".to_string(),
        Some(Summary {
            mean, ci95: None, ..
        }) => number(mean),
        Some(Summary {
            mean,
            ci95: Some((lo, hi)),
            ..
        }) => format!("{} [{}, {}]", number(mean), number(lo), number(hi)),
    }
}

/// A GitHub-flavoured markdown table of the grid; `Avg.` rows in bold;
/// under `relative_to`, delta rows signed and labelled `Δ vs <reference>`.
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
        match grid.reference_of(row) {
            Some(reference) => {
                let last = line.len() - 1;
                line[last] = format!("{} (Δ vs {})", line[last], reference.join(" "));
                line.extend(entries.iter().map(|e| format_delta(*e, decimals)));
            }
            None => line.extend(entries.iter().map(|e| format_summary(*e, decimals))),
        }
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
    use crate::report::stats::Interval;
    use polars::prelude::AnyValue;
    use std::collections::BTreeMap;

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
                expected.push(format!("{o}_{a}_lo"));
                expected.push(format!("{o}_{a}_hi"));
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
        assert!((f64_at(&df, "ipo_cw", 5).unwrap() - mean).abs() < 1e-9);
        // gra is a share: the CI is the logit interval on [0, 100]
        let want = Summary::of(&v, Interval::LogitT { lo: 0.0, hi: 100.0 })
            .unwrap()
            .ci95
            .unwrap();
        let (lo, hi) = (
            f64_at(&df, "ipo_cw_lo", 5).unwrap(),
            f64_at(&df, "ipo_cw_hi", 5).unwrap(),
        );
        assert!((lo - want.0).abs() < 1e-9 && (hi - want.1).abs() < 1e-9);
        // noise (0, +2, −1)·3 points: s = 1.527…·3, so the CI is wide, not zero
        assert!(lo < mean - 5.0 && hi > mean + 5.0);

        // gold_mean is unbounded: the plain t interval, worked by hand
        let mut gold = table1_spec();
        gold.value = "gold_mean".into();
        gold.scale = 1.0;
        let df = build_table(&gold, &table1_cells()).unwrap();
        let g: Vec<f64> = v.iter().map(|x| 2.0 * x / 100.0 - 1.0).collect();
        let m = g.iter().sum::<f64>() / 3.0;
        let sd = (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0).sqrt();
        let half = 4.302_653 * sd / 3f64.sqrt();
        assert!((f64_at(&df, "ipo_cw_hi", 5).unwrap() - (m + half)).abs() < 1e-5);
        assert!((f64_at(&df, "ipo_cw_lo", 5).unwrap() - (m - half)).abs() < 1e-5);
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
        let per_seed: Vec<f64> = (0..3)
            .map(|s| (0..3).map(|d| 100.0 * gra(0, d, 0, 0, s)).sum::<f64>() / 3.0)
            .collect();
        let want = Summary::of(&per_seed, Interval::LogitT { lo: 0.0, hi: 100.0 })
            .unwrap()
            .ci95
            .unwrap();
        assert!((f64_at(&df, "dpo_human_lo", 3).unwrap() - want.0).abs() < 1e-9);
        assert!((f64_at(&df, "dpo_human_hi", 3).unwrap() - want.1).abs() < 1e-9);
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
        assert_eq!(f64_at(&df, "ipo_ws_lo", 3), None);
        assert_eq!(f64_at(&df, "ipo_ws_hi", 3), None);
        // qwen is untouched and keeps its CI
        assert!(f64_at(&df, "ipo_ws_lo", 7).is_some());
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
                "dpo_human_lo",
                "dpo_human_hi",
                "dpo_ws",
                "dpo_ws_lo",
                "dpo_ws_hi",
            ]
        );
        assert_eq!(names[11], "rdpo_human");
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

    /// `relative_to = { mix = "50" }`, worked by hand. Row 50: 60, 62, 58
    /// (seeds 0–2, absolute). Row 80: 61, 65, 60, per-seed differences
    /// 1, 3, 2: mean 2, s = 1, CI 2 ± 4.302653/√3 = [−0.484, 4.484]. Row 20
    /// ran seeds 0–1 only (55, 57): no pairing, mean 56 − 60 = −4, no CI.
    #[test]
    fn relative_rows_are_per_seed_differences_from_the_reference_row() {
        let mut cells = Vec::new();
        for (mix, values) in [
            ("50", &[60.0, 62.0, 58.0][..]),
            ("80", &[61.0, 65.0, 60.0]),
            ("20", &[55.0, 57.0]),
        ] {
            for (seed, v) in values.iter().enumerate() {
                cells.push(CellResult {
                    labels: labels(&[
                        ("mix", mix),
                        ("ann", "cw"),
                        ("seed", seed.to_string().as_str()),
                    ]),
                    metrics: [("m".to_string(), *v)].into(),
                    prompt_outcomes: None,
                });
            }
        }
        let mut spec = TableSpec::new(&["mix"], &["ann"], "m");
        spec.order
            .insert("mix".into(), vec!["50".into(), "80".into(), "20".into()]);
        spec.relative_to = Some([("mix".to_string(), "50".to_string())].into());
        let df = build_table(&spec, &cells).unwrap();
        assert_eq!(
            f64_at(&df, "cw", 0),
            Some(60.0),
            "the reference stays absolute"
        );
        assert!(f64_at(&df, "cw_lo", 0).unwrap() < 60.0);
        assert!((f64_at(&df, "cw", 1).unwrap() - 2.0).abs() < 1e-12);
        let half = 4.302_653 / 3f64.sqrt();
        assert!((f64_at(&df, "cw_lo", 1).unwrap() - (2.0 - half)).abs() < 1e-5);
        assert!((f64_at(&df, "cw_hi", 1).unwrap() - (2.0 + half)).abs() < 1e-5);
        assert!((f64_at(&df, "cw", 2).unwrap() + 4.0).abs() < 1e-12);
        assert_eq!(f64_at(&df, "cw_lo", 2), None);
        let against: Vec<String> = (0..3).map(|r| str_at(&df, "relative_to", r)).collect();
        assert_eq!(against, ["", "50", "50"]);
        let md = grid_to_markdown(&Grid::build(&spec, &cells).unwrap(), 3);
        assert!(
            md.contains("| 80 (Δ vs 50) | +2.000 [-0.484, +4.484] |"),
            "{md}"
        );
        assert!(md.contains("| 20 (Δ vs 50) | -4.000 |"), "{md}");
        assert!(md.contains("| 50 | 60.000 ["), "{md}");
        // The paper's Table 24 read the same way: 80/20 harmless CW 61.6 − 60.5.
        let paper = crate::report::paper_table("table24").unwrap().unwrap();
        let relative: BTreeMap<String, String> = [(
            "weak_mixture".to_string(),
            "harmless50-helpful50".to_string(),
        )]
        .into();
        let grid = paper.grid_relative_to(Some(&relative)).unwrap();
        let row = ["harmless80-helpful20".to_string()];
        let column = ["harmless".to_string(), "cw".to_string()];
        let delta = grid.get(&row, &column).unwrap();
        assert!((delta.mean - 1.1).abs() < 1e-9, "{delta:?}");
    }

    #[test]
    fn a_single_seed_leaves_the_ci_null() {
        let cells: Vec<_> = table1_cells()
            .into_iter()
            .filter(|c| c.labels["seed"] == "0")
            .collect();
        let df = build_table(&table1_spec(), &cells).unwrap();
        assert_eq!(df.column("dpo_cw_lo").unwrap().null_count(), df.height());
        assert_eq!(df.column("dpo_cw").unwrap().null_count(), 0);
        let md = grid_to_markdown(&Grid::build(&table1_spec(), &cells).unwrap(), 1);
        assert!(!md.contains('['), "{md}");
    }
}
