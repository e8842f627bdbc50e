//! Training curves: each training stage's per-step trace
//! (`train_trace.csv`, [`crate::stage::training::trace_csv`]) drawn as one
//! PNG per experiment, the way TRL users read their W&B or TensorBoard
//! panels instead of the log: one row of panels per value of the table's
//! rows, one panel per traced quantity (loss, reward margin, accuracy,
//! mean weight, learning rate), one line per value of the table's columns,
//! the mean over `over` (the seeds) with its 95% CI band (Student t; for
//! the share `accuracy`, on the logit scale of [0, 1]).
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

use super::atomic::{write_atomic_via_path, write_bytes_atomic};
use super::figure::{PALETTE, plot_err};
use super::font::{FAMILY, ensure_registered};
use super::grid::OrderedKeys;
use super::spec::TableSpec;
use super::stats::{Interval, Summary};
use super::{CellArtifacts, CellResult};
use crate::stage::training::TRAIN_TRACE_FILE;

/// The traced quantities drawn, in display order (`step` is the x axis).
pub const CURVE_COLUMNS: [&str; 5] = ["loss", "reward_margin", "accuracy", "mean_weight", "lr"];

/// The training stages whose traces can be drawn, the first one any cell
/// has is: the strong model's alignment (offline, or an online run's last
/// round), else its SFT, else the weak annotator's training.
pub const TRAINED_KINDS: [&str; 4] = ["align", "online_round", "sft", "weak_train"];

const PANEL_WIDTH: u32 = 330;
const PANEL_HEIGHT: u32 = 240;
const LEGEND_WIDTH: u32 = 220;
const TITLE_HEIGHT: u32 = 40;

/// A parsed trace: its column names and, per optimiser step, each column's
/// value (`None` where the loop did not measure it).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<f64>>>,
}

impl Trace {
    /// Parses a trace CSV; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> anyhow::Result<Trace> {
        let mut lines = text.lines();
        let header = lines.next().with_context(|| format!("{what} is empty"))?;
        let columns: Vec<String> = header.split(',').map(str::to_string).collect();
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let row = line
                .split(',')
                .map(|f| {
                    if f.is_empty() {
                        Ok(None)
                    } else {
                        f.parse::<f64>().map(Some)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{what}, line {}: not a number", i + 2))?;
            if row.len() != columns.len() {
                bail!(
                    "{what}, line {}: {} fields under {} columns",
                    i + 2,
                    row.len(),
                    columns.len()
                );
            }
            rows.push(row);
        }
        Ok(Trace { columns, rows })
    }

    /// The trace in a stage's artifact dir; `None` for a stage run before
    /// traces were kept.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Trace>> {
        let path = dir.join(TRAIN_TRACE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Trace::parse(&text, &path.display().to_string()).map(Some)
    }

    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let at = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[at]).collect())
    }
}

/// The CI of a traced quantity: a share (`accuracy`) stays inside [0, 1]
/// on the logit scale, as the tables' shares do; the rest are unbounded.
fn interval_of(column: &str) -> Interval {
    match column {
        "accuracy" => Interval::LogitT { lo: 0.0, hi: 1.0 },
        _ => Interval::StudentT,
    }
}

/// Per step (1-based), the summary over seeds of one quantity; steps past
/// the shortest trace, or where no seed measured it, are left out.
pub fn mean_curve(traces: &[&Trace], column: &str) -> Vec<(usize, Summary)> {
    let columns: Vec<Vec<Option<f64>>> = traces.iter().filter_map(|t| t.column(column)).collect();
    let steps = columns.iter().map(Vec::len).min().unwrap_or(0);
    (0..steps)
        .filter_map(|k| {
            let values: Vec<f64> = columns.iter().filter_map(|c| c[k]).collect();
            Summary::of(&values, interval_of(column)).map(|s| (k + 1, s))
        })
        .collect()
}

/// What [`write_curves`] drew.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurvesSummary {
    /// The PNG's file name; `None` when no cell has a trace.
    pub png: Option<String>,
    /// The stage kind drawn (`align`).
    pub stage: String,
    /// Cells with a trace, and cells of that stage without one.
    pub traced: usize,
    pub untraced: usize,
}

/// Where the figure put things (for tests).
#[derive(Debug, Clone, PartialEq)]
pub struct CurvesLayout {
    pub width: u32,
    pub height: u32,
    /// Row label values and quantity of each panel, row by row.
    pub panels: Vec<(String, String)>,
}

/// One line: a row of panels and a series, and its seeds' traces.
struct Line<'a> {
    row: Vec<String>,
    series: Vec<String>,
    traces: Vec<&'a Trace>,
}

/// Draws `<experiment>_curves.png` from the cells' traces of the first
/// [`TRAINED_KINDS`] stage any cell has; `None` when no cell has one of
/// those stages.
pub fn write_curves(
    table: &TableSpec,
    cells: &[CellArtifacts],
    experiment: &str,
    out_dir: &Path,
) -> anyhow::Result<Option<CurvesSummary>> {
    let Some(stage) = TRAINED_KINDS
        .iter()
        .find(|k| cells.iter().any(|c| c.dirs.contains_key(**k)))
    else {
        return Ok(None);
    };
    // Many cells share a stage (a weak annotator): read each trace once.
    let mut read: BTreeMap<&Path, Option<Trace>> = BTreeMap::new();
    for cell in cells {
        if let Some(dir) = cell.dirs.get(*stage)
            && !read.contains_key(dir.as_path())
        {
            read.insert(dir, Trace::read(dir)?);
        }
    }
    let traced_cells: Vec<(&CellArtifacts, &Trace)> = cells
        .iter()
        .filter_map(|c| {
            let trace = read.get(c.dirs.get(*stage)?.as_path())?.as_ref()?;
            Some((c, trace))
        })
        .collect();
    let with_stage = cells.iter().filter(|c| c.dirs.contains_key(*stage)).count();
    let mut summary = CurvesSummary {
        png: None,
        stage: stage.to_string(),
        traced: traced_cells.len(),
        untraced: with_stage - traced_cells.len(),
    };
    if traced_cells.is_empty() {
        return Ok(Some(summary));
    }
    let values = |c: &CellArtifacts, keys: &[String]| -> Vec<String> {
        keys.iter()
            .map(|k| c.labels.get(k).cloned().unwrap_or_default())
            .collect()
    };
    let mut lines: Vec<Line> = Vec::new();
    for (cell, trace) in &traced_cells {
        let (row, series) = (values(cell, &table.rows), values(cell, &table.columns));
        match lines
            .iter_mut()
            .find(|l| l.row == row && l.series == series)
        {
            Some(line) => line.traces.push(trace),
            None => lines.push(Line {
                row,
                series,
                traces: vec![trace],
            }),
        }
    }
    let as_cells: Vec<CellResult> = cells
        .iter()
        .map(|c| CellResult {
            labels: c.labels.clone(),
            metrics: BTreeMap::new(),
            prompt_outcomes: None,
        })
        .collect();
    let mut rows: Vec<Vec<String>> = lines.iter().map(|l| l.row.clone()).collect();
    OrderedKeys::new(&table.rows, &as_cells, &table.order).sort_dedup(&mut rows);
    let mut series: Vec<Vec<String>> = lines.iter().map(|l| l.series.clone()).collect();
    OrderedKeys::new(&table.columns, &as_cells, &table.order).sort_dedup(&mut series);
    let quantities: Vec<&str> = CURVE_COLUMNS
        .iter()
        .copied()
        .filter(|q| {
            traced_cells
                .iter()
                .any(|(_, t)| t.column(q).is_some_and(|c| c.iter().any(Option::is_some)))
        })
        .collect();
    let png = format!("{experiment}_curves.png");
    let title = format!(
        "{stage}: per optimiser step, mean over {} with 95% CI (t)",
        table.over
    );
    // A warm run redraws nothing: the PNG is kept while the fingerprint of
    // everything it shows matches the one written beside it.
    let plot = CurvesPlot {
        title: &title,
        rows: &rows,
        series: &series,
        quantities: &quantities,
        lines: &lines,
        table,
    };
    let key = plot.fingerprint();
    let key_path = out_dir.join(format!("{experiment}_curves.key"));
    let unchanged = out_dir.join(&png).is_file()
        && std::fs::read_to_string(&key_path).is_ok_and(|old| old == key);
    if !unchanged {
        draw_curves(&plot, &out_dir.join(&png))?;
        // After the PNG: a crash in between leaves an old key, so a redraw.
        write_bytes_atomic(&key_path, key.as_bytes())?;
    }
    summary.png = Some(png);
    Ok(Some(summary))
}

/// Bumped whenever [`draw_curves`] draws differently, so that kept PNGs
/// are redrawn.
const CURVES_STYLE: u32 = 1;

/// Everything a curves PNG shows: its title, its panels (one row of
/// `quantities` per entry of `rows`), the series drawn in each, the lines
/// and the table spec they come from.
struct CurvesPlot<'a> {
    title: &'a str,
    rows: &'a [Vec<String>],
    series: &'a [Vec<String>],
    quantities: &'a [&'a str],
    lines: &'a [Line<'a>],
    table: &'a TableSpec,
}

impl CurvesPlot<'_> {
    /// blake3 (hex) of everything the PNG shows: the drawing's style, its
    /// title, panels, series, quantities, the table's labels and each
    /// line's traces.
    fn fingerprint(&self) -> String {
        let traced: Vec<(&Vec<String>, &Vec<String>, &Vec<&Trace>)> = self
            .lines
            .iter()
            .map(|l| (&l.row, &l.series, &l.traces))
            .collect();
        let shown = format!(
            "{CURVES_STYLE}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{traced:?}",
            self.title,
            self.rows,
            self.series,
            self.quantities,
            self.table.rows,
            self.table.columns
        );
        blake3::hash(shown.as_bytes()).to_hex().to_string()
    }
}

fn draw_curves(plot: &CurvesPlot, path: &Path) -> anyhow::Result<CurvesLayout> {
    let CurvesPlot {
        title,
        rows,
        series,
        quantities,
        lines,
        table,
    } = *plot;
    ensure_registered()?;
    // At least two panels wide, so that the title fits.
    let width = PANEL_WIDTH * quantities.len().max(2) as u32 + LEGEND_WIDTH;
    let height = PANEL_HEIGHT * rows.len() as u32 + TITLE_HEIGHT;
    let colour = |s: &[String]| {
        let i = series.iter().position(|x| x == s).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let mut panels = Vec::new();
    write_atomic_via_path(path, ".png", |tmp| {
        let root = BitMapBackend::new(tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(title, (FAMILY, 20)).map_err(plot_err)?;
        let (plots, legend) = root.split_horizontally(width - LEGEND_WIDTH);
        let areas = plots.split_evenly((rows.len(), quantities.len()));
        for (r, row) in rows.iter().enumerate() {
            for (q, quantity) in quantities.iter().enumerate() {
                let area = &areas[r * quantities.len() + q];
                let curves: Vec<(&Line, Vec<(usize, Summary)>)> = lines
                    .iter()
                    .filter(|l| &l.row == row)
                    .map(|l| (l, mean_curve(&l.traces, quantity)))
                    .collect();
                let ends = curves.iter().flat_map(|(_, c)| {
                    c.iter().flat_map(|(_, s)| {
                        let (lo, hi) = s.ci95.unwrap_or((s.mean, s.mean));
                        [lo, hi]
                    })
                });
                let (lo, hi) = ends.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
                let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
                let pad = ((hi - lo) * 0.06).max(1e-9);
                let last = curves
                    .iter()
                    .flat_map(|(_, c)| c.last().map(|(k, _)| *k))
                    .max()
                    .unwrap_or(1)
                    .max(2);
                let caption = format!(
                    "{} · {quantity}",
                    row.iter()
                        .zip(&table.rows)
                        .map(|(v, k)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, (FAMILY, 13))
                    .margin(8)
                    .x_label_area_size(28)
                    .y_label_area_size(52)
                    .build_cartesian_2d(1.0..last as f64, (lo - pad)..(hi + pad))
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_desc("step")
                    .x_label_formatter(&|v: &f64| format!("{v:.0}"))
                    .x_max_light_lines(1)
                    .y_max_light_lines(1)
                    .x_labels(5)
                    .y_labels(5)
                    .label_style((FAMILY, 11))
                    .axis_desc_style((FAMILY, 11))
                    .draw()
                    .map_err(plot_err)?;
                for (line, curve) in &curves {
                    let c = colour(&line.series);
                    let band: Vec<(f64, f64, f64)> = curve
                        .iter()
                        .filter_map(|(k, s)| s.ci95.map(|(a, b)| (*k as f64, a, b)))
                        .collect();
                    if band.len() > 1 {
                        let upper = band.iter().map(|(x, _, b)| (*x, *b));
                        let lower = band.iter().rev().map(|(x, a, _)| (*x, *a));
                        chart
                            .draw_series([Polygon::new(
                                upper.chain(lower).collect::<Vec<_>>(),
                                c.mix(0.15).filled(),
                            )])
                            .map_err(plot_err)?;
                    }
                }
                // Lines over every band, so that no band tints one.
                for (line, curve) in &curves {
                    chart
                        .draw_series(LineSeries::new(
                            curve.iter().map(|(k, s)| (*k as f64, s.mean)),
                            colour(&line.series).stroke_width(2),
                        ))
                        .map_err(plot_err)?;
                }
                panels.push((row.join(" / "), quantity.to_string()));
            }
        }
        let header = table.columns.join(" / ");
        let bold = (FAMILY, 15).into_font().style(FontStyle::Bold);
        legend
            .draw(&Text::new(header, (10, 20), bold))
            .map_err(plot_err)?;
        for (i, s) in series.iter().enumerate() {
            let y = 48 + 24 * i as i32;
            legend
                .draw(&Rectangle::new([(10, y), (28, y + 14)], colour(s).filled()))
                .map_err(plot_err)?;
            legend
                .draw(&Text::new(s.join(" / "), (36, y), (FAMILY, 14)))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(())
    })?;
    Ok(CurvesLayout {
        width,
        height,
        panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{cell_artifacts, count_colour, decode_png, stage_dir};

    #[test]
    fn a_trace_parses_with_empty_fields_and_rejects_ragged_rows() {
        let t = Trace::parse("step,loss,lr,accuracy\n1,0.7,0,\n2,0.5,0.1,0.5\n", "t").unwrap();
        assert_eq!(t.columns, ["step", "loss", "lr", "accuracy"]);
        assert_eq!(t.column("accuracy").unwrap(), [None, Some(0.5)]);
        assert_eq!(t.column("loss").unwrap(), [Some(0.7), Some(0.5)]);
        assert!(t.column("reward_margin").is_none());
        let err = Trace::parse("step,loss\n1,0.5,9\n", "x.csv").unwrap_err();
        assert!(
            err.to_string()
                .contains("x.csv, line 2: 3 fields under 2 columns"),
            "{err}"
        );
    }

    /// Two seeds, the second one step longer: the curve stops at the
    /// shorter; step 1's mean loss is (1 + 3) / 2.
    #[test]
    fn the_mean_curve_runs_over_the_steps_every_seed_took() {
        let a = Trace::parse("step,loss\n1,1\n2,0.5\n", "a").unwrap();
        let b = Trace::parse("step,loss\n1,3\n2,1.5\n3,1\n", "b").unwrap();
        let curve = mean_curve(&[&a, &b], "loss");
        assert_eq!(curve.len(), 2);
        assert_eq!(curve[0].0, 1);
        assert_eq!(curve[0].1.mean, 2.0);
        assert_eq!(curve[1].1.mean, 1.0);
        assert!(curve[0].1.ci95.is_some());
        // A share's band stays inside [0, 1] even over two far-apart seeds.
        let a = Trace::parse("step,accuracy\n1,0.05\n", "a").unwrap();
        let b = Trace::parse("step,accuracy\n1,0.95\n", "b").unwrap();
        let (lo, hi) = mean_curve(&[&a, &b], "accuracy")[0].1.ci95.unwrap();
        assert!(
            (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi),
            "{lo} {hi}"
        );
    }

    /// Two series × two seeds traced, a fifth cell's stage has no trace
    /// (run before traces were kept): the PNG shows both series' lines,
    /// one panel per traced quantity, and the summary counts the untraced.
    #[test]
    fn curves_draw_each_series_and_count_untraced_stages() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let trace = |name: &str, offset: f64| {
            let rows: String = (1..=20)
                .map(|k| {
                    format!(
                        "{k},{},{},{}\n",
                        offset + 1.0 / k as f64,
                        0.001,
                        0.5 + offset
                    )
                })
                .collect();
            stage_dir(
                root,
                name,
                &[(TRAIN_TRACE_FILE, format!("step,loss,lr,accuracy\n{rows}"))],
            )
        };
        let old = stage_dir(root, "old", &[("train.json", "{}".to_string())]);
        let mut cells = Vec::new();
        for (ann, offset) in [("human", 0.0), ("cw", 0.2)] {
            for seed in ["0", "1"] {
                let dir = trace(
                    &format!("{ann}{seed}"),
                    offset + seed.parse::<f64>().unwrap() * 0.01,
                );
                cells.push(cell_artifacts(
                    &[("dataset", "hh"), ("annotation", ann), ("seed", seed)],
                    &[("align", &dir), ("score", root)],
                ));
            }
        }
        cells.push(cell_artifacts(
            &[("dataset", "tldr"), ("annotation", "cw"), ("seed", "0")],
            &[("align", &old)],
        ));
        let table = TableSpec::new(&["dataset"], &["annotation"], "gra");
        let summary = write_curves(&table, &cells, "t", root).unwrap().unwrap();
        assert_eq!((summary.traced, summary.untraced), (4, 1));
        assert_eq!(summary.stage, "align");
        let img = decode_png(&root.join(summary.png.as_ref().unwrap()));
        // one row (hh; tldr has no trace) × loss, accuracy, lr
        assert_eq!(img.width(), 3 * PANEL_WIDTH + LEGEND_WIDTH);
        assert_eq!(img.height(), PANEL_HEIGHT + TITLE_HEIGHT);
        // A line across three panels is far more than the legend's swatch.
        for colour in &PALETTE[..2] {
            let on = count_colour(&img, *colour);
            assert!(on > 800, "{on} pixels of {colour:?}: no line?");
        }
        // Drawn once: a second call with the same traces keeps the PNG (here
        // replaced by a stand-in), a changed trace redraws it.
        let png = root.join("t_curves.png");
        std::fs::write(&png, b"kept").unwrap();
        write_curves(&table, &cells, "t", root).unwrap();
        assert_eq!(std::fs::read(&png).unwrap(), b"kept");
        let changed = cells[0].dirs["align"].join(TRAIN_TRACE_FILE);
        std::fs::write(&changed, "step,loss,lr,accuracy\n1,9,0.001,0.5\n").unwrap();
        write_curves(&table, &cells, "t", root).unwrap();
        assert_eq!(decode_png(&png).width(), 3 * PANEL_WIDTH + LEGEND_WIDTH);
        // Nothing traced: no PNG, and the summary says why.
        let none = write_curves(&table, &cells[4..], "u", root)
            .unwrap()
            .unwrap();
        assert_eq!((none.png, none.traced, none.untraced), (None, 0, 1));
        assert!(!root.join("u_curves.png").exists());
        // No training stage at all: nothing to say.
        let scored = vec![cell_artifacts(&[("dataset", "hh")], &[("score", root)])];
        assert_eq!(write_curves(&table, &scored, "v", root).unwrap(), None);
    }
}
