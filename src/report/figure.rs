//! Figures (PNG, plotters): grouped bars with 95% CI whiskers, or lines with
//! a CI band, one panel per value of the `panel` label, a shared legend on the
//! right. Values, `over` and scale come from the table spec, so a figure
//! always shows the same numbers as its table.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use super::CellResult;
use super::atomic::write_atomic_via_path;
use super::font::{FAMILY, ensure_registered};
use super::grid::{OrderedKeys, group_cells};
use super::spec::{FigureKind, FigureSpec, TableSpec};
use super::stats::Summary;

const PANEL_WIDTH: u32 = 560;
const LEGEND_WIDTH: u32 = 190;
const HEIGHT: u32 = 520;

/// Tableau-10: distinguishable, colour-blind-friendlier than plotters' default.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(89, 161, 79),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// One plotted point: mean and optional CI half-width at (panel, x, series).
struct Point {
    panel: String,
    x: String,
    series: Vec<String>,
    summary: Summary,
}

/// Everything a figure shows, summarised and in display order.
struct FigureData {
    panels: Vec<String>,
    xs: Vec<String>,
    series: Vec<Vec<String>>,
    points: Vec<Point>,
}

impl FigureData {
    fn build(
        spec: &FigureSpec,
        table: &TableSpec,
        cells: &[CellResult],
    ) -> anyhow::Result<FigureData> {
        if spec.series.is_empty() {
            bail!(
                "figure of `{}` needs at least one series label (e.g. series = [\"annotation\"])",
                table.value
            );
        }
        if cells.is_empty() {
            bail!("figure of `{}`: no finished cells to draw", table.value);
        }
        let panel_key: Vec<String> = spec.panel.iter().cloned().collect();
        let keys: Vec<String> = panel_key
            .iter()
            .chain([&spec.x])
            .chain(&spec.series)
            .cloned()
            .collect();
        let groups = group_cells(cells, &keys, &table.value, &table.over, table.scale)?;
        let np = panel_key.len();
        let mut points = Vec::new();
        for (key, samples) in &groups {
            let values: Vec<f64> = samples.values().copied().collect();
            let Some(summary) = Summary::of(&values) else {
                continue;
            };
            points.push(Point {
                panel: if np == 1 {
                    key[0].clone()
                } else {
                    String::new()
                },
                x: key[np].clone(),
                series: key[np + 1..].to_vec(),
                summary,
            });
        }
        let ordered = |keys: &[String], tuples: Vec<Vec<String>>| {
            let mut t = tuples;
            OrderedKeys::new(keys, cells, &table.order).sort_dedup(&mut t);
            t
        };
        let panels = if np == 1 {
            ordered(
                &panel_key,
                points.iter().map(|p| vec![p.panel.clone()]).collect(),
            )
            .into_iter()
            .map(|mut v| v.remove(0))
            .collect()
        } else {
            vec![String::new()]
        };
        let xs = ordered(
            std::slice::from_ref(&spec.x),
            points.iter().map(|p| vec![p.x.clone()]).collect(),
        )
        .into_iter()
        .map(|mut v| v.remove(0))
        .collect();
        let series = ordered(
            &spec.series,
            points.iter().map(|p| p.series.clone()).collect(),
        );
        Ok(FigureData {
            panels,
            xs,
            series,
            points,
        })
    }

    /// The y range covering every mean and CI end, with headroom; bars start at 0.
    fn y_range(&self, include_zero: bool) -> (f64, f64) {
        let ends = self.points.iter().flat_map(|p| {
            let ci = p.summary.ci95.unwrap_or(0.0);
            [p.summary.mean - ci, p.summary.mean + ci]
        });
        let (mut lo, mut hi) = ends.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if include_zero {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        let pad = ((hi - lo) * 0.08).max(1e-9);
        (
            if include_zero && lo >= 0.0 {
                0.0
            } else {
                lo - pad
            },
            hi + pad,
        )
    }

    fn colour(&self, series: &[String]) -> RGBColor {
        let i = self.series.iter().position(|s| s == series).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }
}

/// Draws `spec` over `cells` (metric, `over` and scale from `table`) to a PNG
/// at `path`, atomically.
pub fn draw_figure(
    spec: &FigureSpec,
    table: &TableSpec,
    cells: &[CellResult],
    path: &Path,
) -> anyhow::Result<()> {
    ensure_registered()?;
    let data = FigureData::build(spec, table, cells)?;
    let width = PANEL_WIDTH * data.panels.len() as u32 + LEGEND_WIDTH;
    let title = format!("{} (mean ± 95% CI over {})", table.value, table.over);
    write_atomic_via_path(path, ".png", |tmp| {
        let root = BitMapBackend::new(tmp, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(&title, (FAMILY, 24)).map_err(plot_err)?;
        let (plots, legend) = root.split_horizontally(width - LEGEND_WIDTH);
        let areas = plots.split_evenly((1, data.panels.len()));
        for (area, panel) in areas.iter().zip(&data.panels) {
            let caption = spec.panel.as_ref().map(|k| format!("{k} = {panel}"));
            match spec.kind {
                FigureKind::GroupedBars => {
                    draw_bar_panel(area, &data, panel, caption, spec, table)?
                }
                FigureKind::Line => draw_line_panel(area, &data, panel, caption, spec, table)?,
            }
        }
        draw_legend(&legend, &data, spec)?;
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

fn plot_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_bar_panel(
    area: &Area,
    data: &FigureData,
    panel: &str,
    caption: Option<String>,
    spec: &FigureSpec,
    table: &TableSpec,
) -> anyhow::Result<()> {
    let nx = data.xs.len();
    let (y_lo, y_hi) = data.y_range(true);
    let x_axis = GroupAxis { groups: nx };
    let mut chart = ChartBuilder::on(area)
        .caption(caption.unwrap_or_default(), (FAMILY, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x_axis, y_lo..y_hi)
        .map_err(plot_err)?;
    let y_tick = y_tick_formatter(y_hi - y_lo);
    let x_name = |x: &f64| data.xs.get(x.round() as usize).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&x_name)
        .x_desc(spec.x.as_str())
        .y_desc(value_axis_label(table))
        .y_label_formatter(&y_tick)
        .y_max_light_lines(1)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(plot_err)?;

    // Each x group is 0.8 wide, split evenly among the series.
    let bar_width = 0.8 / data.series.len() as f64;
    for point in data.points.iter().filter(|p| p.panel == panel) {
        let gx = data.xs.iter().position(|x| *x == point.x).unwrap_or(0) as f64;
        let si = data
            .series
            .iter()
            .position(|s| *s == point.series)
            .unwrap_or(0) as f64;
        let left = gx - 0.4 + si * bar_width;
        let centre = left + bar_width / 2.0;
        let colour = data.colour(&point.series);
        let mean = point.summary.mean;
        chart
            .draw_series([Rectangle::new(
                [
                    (left + bar_width * 0.06, 0.0),
                    (left + bar_width * 0.94, mean),
                ],
                colour.filled(),
            )])
            .map_err(plot_err)?;
        if let Some(ci) = point.summary.ci95 {
            let cap = bar_width * 0.25;
            let whisker = [
                vec![(centre, mean - ci), (centre, mean + ci)],
                vec![(centre - cap, mean + ci), (centre + cap, mean + ci)],
                vec![(centre - cap, mean - ci), (centre + cap, mean - ci)],
            ];
            chart
                .draw_series(
                    whisker
                        .into_iter()
                        .map(|p| PathElement::new(p, BLACK.stroke_width(1))),
                )
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

fn draw_line_panel(
    area: &Area,
    data: &FigureData,
    panel: &str,
    caption: Option<String>,
    spec: &FigureSpec,
    table: &TableSpec,
) -> anyhow::Result<()> {
    let numeric: BTreeMap<&str, f64> = data
        .xs
        .iter()
        .map(|x| {
            x.parse::<f64>().map(|v| (x.as_str(), v)).with_context(|| {
                format!("line figure: label `{}` = `{x}` is not a number; use a numeric axis for x or kind = \"grouped_bars\"", spec.x)
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (x_lo, x_hi) = numeric
        .values()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let x_pad = if x_hi > x_lo {
        (x_hi - x_lo) * 0.05
    } else {
        0.5
    };
    let (y_lo, y_hi) = data.y_range(false);
    let y_tick = y_tick_formatter(y_hi - y_lo);
    let mut chart = ChartBuilder::on(area)
        .caption(caption.unwrap_or_default(), (FAMILY, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo - x_pad..x_hi + x_pad, y_lo..y_hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_max_light_lines(1)
        .x_desc(spec.x.as_str())
        .y_desc(value_axis_label(table))
        .y_label_formatter(&y_tick)
        .y_max_light_lines(1)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(plot_err)?;
    for series in &data.series {
        let colour = data.colour(series);
        let mut line: Vec<(f64, Summary)> = data
            .points
            .iter()
            .filter(|p| p.panel == panel && p.series == *series)
            .map(|p| (numeric[p.x.as_str()], p.summary))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        if line.iter().all(|(_, s)| s.ci95.is_some()) && line.len() > 1 {
            let upper = line
                .iter()
                .map(|(x, s)| (*x, s.mean + s.ci95.unwrap_or(0.0)));
            let lower = line
                .iter()
                .rev()
                .map(|(x, s)| (*x, s.mean - s.ci95.unwrap_or(0.0)));
            chart
                .draw_series([Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    colour.mix(0.18).filled(),
                )])
                .map_err(plot_err)?;
        }
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|(x, s)| (*x, s.mean)),
                colour.stroke_width(2),
            ))
            .map_err(plot_err)?;
        chart
            .draw_series(
                line.iter()
                    .map(|(x, s)| Circle::new((*x, s.mean), 4, colour.filled())),
            )
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The x axis of grouped bars: group `i` is centred at `i` and spans
/// `i ± 0.5`; ticks (and labels) sit at the group centres only.
struct GroupAxis {
    groups: usize,
}

impl Ranged for GroupAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (lo, hi): (i32, i32)) -> i32 {
        let fraction = (value + 0.5) / self.groups as f64;
        lo + (fraction * (hi - lo) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.groups).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.groups as f64 - 0.5
    }
}

/// Tick labels with as few decimals as the axis span needs (`60`, not `60.0`).
fn y_tick_formatter(span: f64) -> impl Fn(&f64) -> String {
    let decimals = if span >= 10.0 {
        0
    } else if span >= 1.0 {
        1
    } else {
        2
    };
    move |v: &f64| format!("{v:.decimals$}")
}

/// `gra (×100)`: the metric and its scale, for the y axis.
fn value_axis_label(table: &TableSpec) -> String {
    if table.scale == 1.0 {
        table.value.clone()
    } else {
        format!("{} (×{})", table.value, table.scale)
    }
}

/// A swatch and a name per series, in the reserved strip on the right.
fn draw_legend(area: &Area, data: &FigureData, spec: &FigureSpec) -> anyhow::Result<()> {
    let header = spec.series.join(" / ");
    area.draw(&Text::new(
        header,
        (10, 40),
        (FAMILY, 16).into_font().style(FontStyle::Bold),
    ))
    .map_err(plot_err)?;
    for (i, series) in data.series.iter().enumerate() {
        let y = 70 + 26 * i as i32;
        let colour = data.colour(series);
        area.draw(&Rectangle::new([(10, y), (28, y + 16)], colour.filled()))
            .map_err(plot_err)?;
        area.draw(&Text::new(series.join(" / "), (36, y), (FAMILY, 15)))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;

    /// Decodes the PNG and returns (width, height, number of distinct colours,
    /// whether the first palette colour appears).
    fn inspect(path: &Path) -> (u32, u32, usize, bool) {
        let img = image::open(path).expect("a decodable PNG").to_rgb8();
        let colours: std::collections::BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        let RGBColor(r, g, b) = PALETTE[0];
        (
            img.width(),
            img.height(),
            colours.len(),
            colours.contains(&[r, g, b]),
        )
    }

    #[test]
    fn grouped_bars_png_decodes_and_is_not_blank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table1.png");
        let spec = table1_spec();
        draw_figure(spec.figure.as_ref().unwrap(), &spec, &table1_cells(), &path).unwrap();
        let (w, h, colours, has_bar) = inspect(&path);
        assert_eq!((w, h), (2 * PANEL_WIDTH + LEGEND_WIDTH, HEIGHT));
        assert!(colours > 20, "only {colours} colours: blank figure?");
        assert!(has_bar, "no bar in the first series colour");
        // only the PNG is left: the temporary file was renamed
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn line_figure_draws_a_numeric_axis_and_rejects_words() {
        let cells: Vec<CellResult> = table1_cells()
            .into_iter()
            .filter(|c| c.labels["pair"] == "opt" && c.labels["objective"] == "dpo")
            .map(|mut c| {
                let fraction = match c.labels["dataset"].as_str() {
                    "hh-rlhf" => "0.1",
                    "tldr" => "0.3",
                    _ => "0.5",
                };
                c.labels.insert("fraction".into(), fraction.into());
                c
            })
            .collect();
        let table = TableSpec::new(&["fraction"], &["annotation"], "gra");
        let line = FigureSpec {
            kind: FigureKind::Line,
            panel: None,
            x: "fraction".into(),
            series: vec!["annotation".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fig3.png");
        draw_figure(&line, &table, &cells, &path).unwrap();
        let (w, h, colours, has_line) = inspect(&path);
        assert_eq!((w, h), (PANEL_WIDTH + LEGEND_WIDTH, HEIGHT));
        assert!(colours > 20 && has_line);

        let words = FigureSpec {
            x: "dataset".into(),
            ..line
        };
        let err = draw_figure(&words, &table, &cells, &dir.path().join("bad.png")).unwrap_err();
        assert!(
            format!("{err:#}").contains("`dataset` = `hh-rlhf` is not a number"),
            "{err:#}"
        );
        assert!(!dir.path().join("bad.png").exists());
    }
}
