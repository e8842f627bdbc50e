//! Figures (PNG, plotters): grouped bars with 95% CI whiskers, or lines with
//! a CI band, one panel per value of the `panel` label, a shared legend on the
//! right. Values, `over`, scale and interval come from the table spec, so a
//! figure always shows the same numbers as its table and CSV.
//!
//! Over the data, what a reviewer looks for at a glance:
//! - a dashed line at the metric's neutral value (GRA 50%: the aligned model
//!   is no better than its reference), where the metric has one;
//! - the paper's number as a white diamond on each bar or point it publishes;
//! - a bracket over each pair a claim compares whose CIs separate: `*` when
//!   the claim holds, a red `×` when the CIs separate the wrong way round.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use plotters::chart::MeshStyle;
use plotters::coord::CoordTranslate;
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::CellResult;
use super::atomic::write_atomic_via_path;
use super::compare::{ClaimCheck, Separation};
use super::font::{FAMILY, ensure_registered};
use super::grid::{AVG_LABEL, OrderedKeys, average_over, group_cells, summarise};
use super::paper::PaperTable;
use super::spec::{FigureKind, FigureSpec, TableSpec};
use super::stats::{Interval, Summary};

const PANEL_WIDTH: u32 = 560;
const LEGEND_WIDTH: u32 = 200;
const HEIGHT: u32 = 520;

/// Tableau-10: distinguishable, colour-blind-friendlier than plotters' default.
pub(super) const PALETTE: [RGBColor; 10] = [
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

/// The dashed neutral line: a grey no series uses, so tests can find it.
pub const REFERENCE_COLOUR: RGBColor = RGBColor(90, 90, 90);
/// A bracket whose CIs separate against the claim.
const REVERSED_COLOUR: RGBColor = RGBColor(200, 0, 0);

/// What a figure draws over the data besides its cells.
#[derive(Clone, Copy, Default)]
pub struct Overlays<'a> {
    /// The paper's table: a diamond wherever it publishes the figure's metric.
    pub paper: Option<&'a PaperTable>,
    /// Checked claims: a bracket over each pair whose CIs separate.
    pub claims: &'a [ClaimCheck],
    /// Datasets that fail the calibration precondition: their x labels or
    /// panel captions get `†`.
    pub uncalibrated: Option<&'a BTreeSet<String>>,
}

/// Where a drawn figure put things, in pixels of the PNG (for tests and for
/// anyone annotating the image further).
#[derive(Debug, Clone, PartialEq)]
pub struct FigureLayout {
    pub width: u32,
    pub height: u32,
    pub panels: Vec<PanelLayout>,
}

/// One panel's plotting area and the row of its neutral line.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelLayout {
    /// Pixel columns `[start, end)` of the plotting area.
    pub x_pixels: (i32, i32),
    /// Pixel row of the dashed neutral line, where the metric has one.
    pub reference_row: Option<i32>,
    /// How many claim brackets the panel shows.
    pub brackets: usize,
    /// Pixel row of each baseline's level line drawn in the panel, with its
    /// colour (line figures' `baselines`).
    pub baseline_rows: Vec<(i32, RGBColor)>,
}

impl PanelLayout {
    fn of<X: Ranged<ValueType = f64>>(
        chart: &Chart<'_, '_, X>,
        reference_row: Option<i32>,
        brackets: usize,
    ) -> PanelLayout {
        let (x_pixels, _) = chart.plotting_area().get_pixel_range();
        PanelLayout {
            x_pixels: (x_pixels.start, x_pixels.end),
            reference_row,
            brackets,
            baseline_rows: Vec::new(),
        }
    }
}

/// One plotted point: mean and CI at (panel, x, series), and the paper's
/// number for the same labels.
struct Point {
    panel: String,
    x: String,
    series: Vec<String>,
    summary: Summary,
    paper: Option<f64>,
}

impl Point {
    /// The highest thing drawn for this point: whisker, bar or paper marker.
    fn top(&self) -> f64 {
        let hi = self.summary.ci95.map_or(self.summary.mean, |ci| ci.1);
        self.paper.map_or(hi, |p| hi.max(p))
    }
}

/// A claim drawn over a panel: the two points and which way the CIs separate.
struct Bracket {
    panel: String,
    x: String,
    better: Vec<String>,
    worse: Vec<String>,
    separation: Separation,
    label: String,
    /// Height in data units, set by [`FigureData::stack_brackets`].
    y: f64,
}

/// Everything a figure shows, summarised and in display order.
struct FigureData {
    panels: Vec<String>,
    xs: Vec<String>,
    series: Vec<Vec<String>>,
    points: Vec<Point>,
    /// Points whose x is one of the spec's `baselines`, drawn as level lines.
    baselines: Vec<Point>,
    brackets: Vec<Bracket>,
    /// Neutral value and range in the table's unit.
    neutral: Option<f64>,
    range: Option<(f64, f64)>,
    interval: Interval,
    /// x values and panels (datasets) to label with `†`.
    marked: BTreeSet<String>,
}

impl FigureData {
    /// `label`, with `†` if it names an uncalibrated dataset.
    fn marked(&self, label: &str) -> String {
        if self.marked.contains(label) {
            format!("{label} {}", super::render::UNCALIBRATED_MARK)
        } else {
            label.to_string()
        }
    }
}

impl FigureData {
    fn build(
        spec: &FigureSpec,
        table: &TableSpec,
        cells: &[CellResult],
        overlays: Overlays,
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
        if spec.kind != FigureKind::Line && (spec.x_prefix.is_some() || !spec.baselines.is_empty())
        {
            bail!(
                "figure of `{}`: `x_prefix` and `baselines` are for kind = \"line\"; drop them or draw a line figure",
                table.value
            );
        }
        let panel_key: Vec<String> = spec.panel.iter().cloned().collect();
        let keys: Vec<String> = panel_key
            .iter()
            .chain([&spec.x])
            .chain(&spec.series)
            .cloned()
            .collect();
        let averaged;
        let cells = if spec.average.is_empty() {
            cells
        } else {
            let keep: Vec<String> = keys.iter().chain([&table.over]).cloned().collect();
            averaged = average_over(cells, &spec.average, &keep, &table.value)?;
            &averaged[..]
        };
        let groups = group_cells(cells, &keys, &table.value, &table.over, table.scale)?;
        let interval = table.interval();
        let np = panel_key.len();
        let (mut points, mut baselines) = (Vec::new(), Vec::new());
        for (key, samples) in &groups {
            let Some(summary) = summarise(samples, interval) else {
                continue;
            };
            // The paper's numbers of an averaged label sit at its `Avg.`.
            let averaged = spec
                .average
                .iter()
                .map(|k| (k.clone(), AVG_LABEL.to_string()));
            let labels: BTreeMap<String, String> = keys
                .iter()
                .cloned()
                .zip(key.iter().cloned())
                .chain(averaged)
                .collect();
            let is_baseline = spec.baselines.contains(&key[np]);
            (if is_baseline {
                &mut baselines
            } else {
                &mut points
            })
            .push(Point {
                panel: if np == 1 {
                    key[0].clone()
                } else {
                    String::new()
                },
                x: key[np].clone(),
                series: key[np + 1..].to_vec(),
                summary,
                paper: overlays
                    .paper
                    .and_then(|p| p.lookup_metric(&labels, &table.value)),
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
                points
                    .iter()
                    .chain(&baselines)
                    .map(|p| vec![p.panel.clone()])
                    .collect(),
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
            points
                .iter()
                .chain(&baselines)
                .map(|p| p.series.clone())
                .collect(),
        );
        let mut data = FigureData {
            panels,
            xs,
            series,
            points,
            baselines,
            brackets: Vec::new(),
            neutral: table.metric_info().neutral,
            range: table.metric_info().range,
            interval,
            // Only where datasets are the x axis or the panels.
            marked: if spec.x == "dataset" || spec.panel.as_deref() == Some("dataset") {
                overlays.uncalibrated.cloned().unwrap_or_default()
            } else {
                BTreeSet::new()
            },
        };
        data.brackets = overlays
            .claims
            .iter()
            .filter_map(|c| data.bracket_for(spec, c))
            .collect();
        data.stack_brackets();
        Ok(data)
    }

    /// The bracket of a claim whose CIs separate, if both of its entries are
    /// points of this figure (an `Avg.` row, or a figure that averages over a
    /// label the table splits, has none).
    fn bracket_for(&self, spec: &FigureSpec, check: &ClaimCheck) -> Option<Bracket> {
        if !matches!(
            check.separation,
            Separation::Separated | Separation::Reversed
        ) {
            return None;
        }
        let figure_keys = spec.panel.iter().chain([&spec.x]).chain(&spec.series);
        if figure_keys.clone().count() != check.better_at.len()
            || figure_keys
                .clone()
                .any(|k| !check.better_at.contains_key(k))
        {
            return None;
        }
        let series_of = |labels: &BTreeMap<String, String>| -> Vec<String> {
            spec.series.iter().map(|k| labels[k].clone()).collect()
        };
        let bracket = Bracket {
            panel: spec
                .panel
                .as_ref()
                .map_or(String::new(), |k| check.better_at[k].clone()),
            x: check.better_at[&spec.x].clone(),
            better: series_of(&check.better_at),
            worse: series_of(&check.worse_at),
            separation: check.separation,
            label: check.claim.to_string(),
            y: 0.0,
        };
        let found = |series: &[String]| self.point(&bracket.panel, &bracket.x, series).is_some();
        (found(&bracket.better) && found(&bracket.worse)).then_some(bracket)
    }

    fn point(&self, panel: &str, x: &str, series: &[String]) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.panel == panel && p.x == x && p.series == series)
    }

    fn series_index(&self, series: &[String]) -> usize {
        self.series.iter().position(|s| s == series).unwrap_or(0)
    }

    /// Gives each bracket a height: one step above every bar, whisker and
    /// marker it spans, and above every bracket already placed whose span
    /// overlaps it; narrow brackets first, so wide ones arch over them.
    fn stack_brackets(&mut self) {
        let step = self.bracket_step();
        let span = |b: &Bracket| {
            let (a, z) = (self.series_index(&b.better), self.series_index(&b.worse));
            (a.min(z), a.max(z))
        };
        let spans: Vec<(usize, usize)> = self.brackets.iter().map(span).collect();
        let mut order: Vec<usize> = (0..self.brackets.len()).collect();
        order.sort_by_key(|&i| spans[i].1 - spans[i].0);
        let mut placed: Vec<usize> = Vec::new();
        for i in order {
            let (lo, hi) = spans[i];
            let b = &self.brackets[i];
            let same_group = |panel: &str, x: &str| panel == b.panel && x == b.x;
            let under = self
                .points
                .iter()
                .filter(|p| same_group(&p.panel, &p.x))
                .filter(|p| (lo..=hi).contains(&self.series_index(&p.series)))
                .map(Point::top);
            let below = placed
                .iter()
                .filter(|&&j| {
                    let other = &self.brackets[j];
                    same_group(&other.panel, &other.x) && spans[j].0 <= hi && lo <= spans[j].1
                })
                .map(|&j| self.brackets[j].y);
            let floor = under.chain(below).fold(f64::NEG_INFINITY, f64::max);
            self.brackets[i].y = floor + step;
            placed.push(i);
        }
    }

    /// Vertical distance between stacked brackets: 6% of the data's span.
    fn bracket_step(&self) -> f64 {
        let (lo, hi) = self.data_extent(true);
        ((hi - lo) * 0.06).max(1e-9)
    }

    /// Lowest and highest value drawn: CI ends, means, paper markers, the
    /// neutral line, and 0 for bars.
    fn data_extent(&self, include_zero: bool) -> (f64, f64) {
        let ends = self.points.iter().chain(&self.baselines).flat_map(|p| {
            let (lo, hi) = p.summary.ci95.unwrap_or((p.summary.mean, p.summary.mean));
            [lo, hi, p.summary.mean].into_iter().chain(p.paper)
        });
        let zero = include_zero.then_some(0.0);
        ends.chain(self.neutral)
            .chain(zero)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    }

    /// The y range: the data's extent and the brackets, with headroom; bars
    /// start at 0.
    fn y_range(&self, include_zero: bool) -> (f64, f64) {
        let (lo, mut hi) = self.data_extent(include_zero);
        let pad = ((hi - lo) * 0.08).max(1e-9);
        if let Some(top) = self.brackets.iter().map(|b| b.y).reduce(f64::max) {
            hi = hi.max(top + pad * 0.5);
        }
        let lo = if include_zero && lo >= 0.0 {
            0.0
        } else {
            lo - pad
        };
        (lo, hi + pad)
    }

    fn colour(&self, series: &[String]) -> RGBColor {
        PALETTE[self.series_index(series) % PALETTE.len()]
    }
}

/// Draws `spec` over `cells` (metric, `over`, scale and interval from
/// `table`) with its overlays to a PNG at `path`, atomically.
pub fn draw_figure(
    spec: &FigureSpec,
    table: &TableSpec,
    cells: &[CellResult],
    overlays: Overlays,
    path: &Path,
) -> anyhow::Result<FigureLayout> {
    ensure_registered()?;
    let data = FigureData::build(spec, table, cells, overlays)?;
    let width = PANEL_WIDTH * data.panels.len() as u32 + LEGEND_WIDTH;
    let ci = match data.interval {
        Interval::StudentT => "t",
        Interval::LogitT { .. } => "logit-scale t",
    };
    let title = format!(
        "{}: mean and 95% CI ({ci}) over {}",
        value_axis_label(table),
        table.over
    );
    let mut panels = Vec::new();
    write_atomic_via_path(path, ".png", |tmp| {
        let root = BitMapBackend::new(tmp, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(&title, (FAMILY, 22)).map_err(plot_err)?;
        let (plots, legend) = root.split_horizontally(width - LEGEND_WIDTH);
        let areas = plots.split_evenly((1, data.panels.len()));
        for (area, name) in areas.iter().zip(&data.panels) {
            let panel = Panel {
                data: &data,
                spec,
                table,
                name,
            };
            panels.push(match spec.kind {
                FigureKind::GroupedBars => draw_bar_panel(area, panel)?,
                FigureKind::Line => draw_line_panel(area, panel)?,
            });
        }
        draw_legend(&legend, &data, spec)?;
        root.present().map_err(plot_err)?;
        Ok(())
    })?;
    Ok(FigureLayout {
        width,
        height: HEIGHT,
        panels,
    })
}

pub(super) fn plot_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e}")
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b, X> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>;

/// One panel to draw: the figure's data and specs, and which panel.
#[derive(Clone, Copy)]
struct Panel<'a> {
    data: &'a FigureData,
    spec: &'a FigureSpec,
    table: &'a TableSpec,
    /// This panel's value of the `spec.panel` label.
    name: &'a str,
}

impl Panel<'_> {
    /// `label = value` above the panel; none when the figure has one panel.
    fn caption(&self) -> String {
        let label = self.spec.panel.as_ref();
        label.map_or_else(String::new, |k| {
            format!("{k} = {}", self.data.marked(self.name))
        })
    }

    /// The claim cues drawn in this panel.
    fn brackets(&self) -> impl Iterator<Item = &Bracket> {
        self.data.brackets.iter().filter(|b| b.panel == self.name)
    }
}

/// A panel's chart over `x` × [y_lo, y_hi], with the caption, margin and
/// label areas every panel kind shares.
fn panel_chart<'a, 'b, X: AsRangedCoord>(
    area: &'a Area<'b>,
    panel: Panel,
    x: X,
    (y_lo, y_hi): (f64, f64),
) -> anyhow::Result<Chart<'a, 'b, X::CoordDescType>> {
    ChartBuilder::on(area)
        .caption(panel.caption(), (FAMILY, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y_lo..y_hi)
        .map_err(plot_err)
}

/// Draws a panel's mesh once the caller has styled its x axis: the axis
/// titles, the value axis's ticks (`y_tick`) and the fonts every panel
/// kind shares.
fn draw_mesh<'b, X: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    mut mesh: MeshStyle<'_, 'b, X, plotters::coord::types::RangedCoordf64, BitMapBackend<'_>>,
    panel: Panel,
    y_tick: &'b dyn Fn(&f64) -> String,
) -> anyhow::Result<()> {
    let x_desc = match &panel.spec.x_prefix {
        Some(prefix) => format!("{} ({prefix}N: N)", panel.spec.x),
        None => panel.spec.x.clone(),
    };
    mesh.x_desc(x_desc)
        .y_desc(value_axis_label(panel.table))
        .y_label_formatter(y_tick)
        .y_max_light_lines(1)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(plot_err)
}

/// The dashed neutral line across the panel, and where it landed.
fn draw_reference_line<'a, 'b, X>(
    chart: &mut Chart<'a, 'b, X>,
    data: &FigureData,
    x_range: (f64, f64),
) -> anyhow::Result<Option<i32>>
where
    X: Ranged<ValueType = f64>,
{
    let Some(neutral) = data.neutral else {
        return Ok(None);
    };
    chart
        .draw_series(DashedLineSeries::new(
            [(x_range.0, neutral), (x_range.1, neutral)],
            10,
            6,
            REFERENCE_COLOUR.stroke_width(2),
        ))
        .map_err(plot_err)?;
    Ok(Some(chart.backend_coord(&(x_range.0, neutral)).1))
}

/// The paper marker's corners, in pixels around its centre.
const DIAMOND: [(i32, i32); 4] = [(0, -6), (6, 0), (0, 6), (-6, 0)];

/// A white diamond outlined in `outline` at `at` (any coordinate system).
fn paper_marker<DB: DrawingBackend, C: CoordTranslate>(
    area: &DrawingArea<DB, C>,
    at: C::From,
    outline: RGBColor,
) -> anyhow::Result<()>
where
    C::From: Clone,
{
    let mut closed = DIAMOND.to_vec();
    closed.push(DIAMOND[0]);
    area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(DIAMOND.to_vec(), WHITE.filled())))
        .map_err(|e| anyhow!("plotting failed: {e}"))?;
    area.draw(&(EmptyElement::at(at) + PathElement::new(closed, outline.stroke_width(2))))
        .map_err(|e| anyhow!("plotting failed: {e}"))?;
    Ok(())
}

/// A claim cue's text: centred on its point, standing on it.
fn cue_style(size: u32, colour: RGBColor) -> TextStyle<'static> {
    (FAMILY, size)
        .into_font()
        .color(&colour)
        .pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// `*` for a claim that holds with separated CIs, a red `×` for one whose
/// CIs separate the other way.
fn bracket_style(separation: Separation) -> (&'static str, RGBColor) {
    match separation {
        Separation::Reversed => ("×", REVERSED_COLOUR),
        _ => ("*", BLACK),
    }
}

fn draw_bar_panel(area: &Area, panel: Panel) -> anyhow::Result<PanelLayout> {
    let Panel { data, .. } = panel;
    let nx = data.xs.len();
    let (y_lo, y_hi) = data.y_range(true);
    let x_axis = GroupAxis { groups: nx };
    let mut chart = panel_chart(area, panel, x_axis, (y_lo, y_hi))?;
    let y_tick = y_tick_formatter(y_hi - y_lo, data.range);
    let x_name = |x: &f64| {
        data.xs
            .get(x.round() as usize)
            .map(|x| data.marked(x))
            .unwrap_or_default()
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().x_label_formatter(&x_name);
    draw_mesh(mesh, panel, &y_tick)?;

    // Each x group is 0.8 wide, split evenly among the series.
    let bar_width = 0.8 / data.series.len() as f64;
    let centre_of = |x: &str, series: &[String]| {
        let gx = data.xs.iter().position(|v| v == x).unwrap_or(0) as f64;
        let si = data.series_index(series) as f64;
        gx - 0.4 + si * bar_width + bar_width / 2.0
    };
    let panel_points = || data.points.iter().filter(|p| p.panel == panel.name);
    for point in panel_points() {
        let centre = centre_of(&point.x, &point.series);
        let half = bar_width / 2.0;
        let mean = point.summary.mean;
        chart
            .draw_series([Rectangle::new(
                [(centre - half * 0.88, 0.0), (centre + half * 0.88, mean)],
                data.colour(&point.series).filled(),
            )])
            .map_err(plot_err)?;
        if let Some((lo, hi)) = point.summary.ci95 {
            let cap = bar_width * 0.25;
            let whisker = [
                vec![(centre, lo), (centre, hi)],
                vec![(centre - cap, hi), (centre + cap, hi)],
                vec![(centre - cap, lo), (centre + cap, lo)],
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
    // Over the bars, so that it crosses them.
    let reference_row = draw_reference_line(&mut chart, data, (-0.5, nx as f64 - 0.5))?;
    for point in panel_points() {
        if let Some(paper) = point.paper {
            let at = (centre_of(&point.x, &point.series), paper);
            paper_marker(chart.plotting_area(), at, BLACK)?;
        }
    }
    let brackets: Vec<&Bracket> = panel.brackets().collect();
    let tick = data.bracket_step() * 0.3;
    for b in &brackets {
        let (a, z) = (centre_of(&b.x, &b.better), centre_of(&b.x, &b.worse));
        let (mark, colour) = bracket_style(b.separation);
        let path = vec![(a, b.y - tick), (a, b.y), (z, b.y), (z, b.y - tick)];
        chart
            .draw_series([PathElement::new(path, colour.stroke_width(1))])
            .map_err(plot_err)?;
        chart
            .draw_series([Text::new(mark, ((a + z) / 2.0, b.y), cue_style(16, colour))])
            .map_err(plot_err)?;
    }
    Ok(PanelLayout::of(&chart, reference_row, brackets.len()))
}

fn draw_line_panel(area: &Area, panel: Panel) -> anyhow::Result<PanelLayout> {
    let Panel { data, spec, .. } = panel;
    let prefix = spec.x_prefix.as_deref().unwrap_or("");
    let numeric: BTreeMap<&str, f64> = data
        .xs
        .iter()
        .map(|x| {
            x.strip_prefix(prefix)
                .and_then(|n| n.parse::<f64>().ok())
                .map(|v| (x.as_str(), v))
                .with_context(|| {
                    format!("line figure: label `{}` = `{x}` is not a number{}; use a numeric axis for x, set `x_prefix`, list it in `baselines`, or use kind = \"grouped_bars\"",
                        spec.x,
                        if prefix.is_empty() { String::new() } else { format!(" after the prefix `{prefix}`") })
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
    let y_tick = y_tick_formatter(y_hi - y_lo, data.range);
    let mut chart = panel_chart(area, panel, x_lo - x_pad..x_hi + x_pad, (y_lo, y_hi))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_max_light_lines(1);
    draw_mesh(mesh, panel, &y_tick)?;
    draw_baseline_bands(&mut chart, panel, (x_lo - x_pad, x_hi + x_pad))?;
    for series in &data.series {
        let colour = data.colour(series);
        let mut line: Vec<(f64, &Point)> = data
            .points
            .iter()
            .filter(|p| p.panel == panel.name && p.series == *series)
            .map(|p| (numeric[p.x.as_str()], p))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cis: Option<Vec<(f64, (f64, f64))>> = line
            .iter()
            .map(|(x, p)| p.summary.ci95.map(|ci| (*x, ci)))
            .collect();
        if let Some(cis) = cis.filter(|c| c.len() > 1) {
            let upper = cis.iter().map(|(x, ci)| (*x, ci.1));
            let lower = cis.iter().rev().map(|(x, ci)| (*x, ci.0));
            chart
                .draw_series([Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    colour.mix(0.18).filled(),
                )])
                .map_err(plot_err)?;
        }
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|(x, p)| (*x, p.summary.mean)),
                colour.stroke_width(2),
            ))
            .map_err(plot_err)?;
        chart
            .draw_series(
                line.iter()
                    .map(|(x, p)| Circle::new((*x, p.summary.mean), 4, colour.filled())),
            )
            .map_err(plot_err)?;
        for (x, p) in &line {
            if let Some(paper) = p.paper {
                paper_marker(chart.plotting_area(), (*x, paper), colour)?;
            }
        }
    }
    let baseline_rows = draw_baselines(&mut chart, panel, (x_lo - x_pad, x_hi + x_pad))?;
    // Over the bands, so that their tint does not hide it.
    let reference_row = draw_reference_line(&mut chart, data, (x_lo - x_pad, x_hi + x_pad))?;
    // Lines share an x: a claim's cue is its text above the points there.
    let brackets: Vec<&Bracket> = panel.brackets().collect();
    for b in &brackets {
        let (mark, colour) = bracket_style(b.separation);
        chart
            .draw_series([Text::new(
                format!("{mark} {}", b.label),
                (numeric[b.x.as_str()], b.y),
                cue_style(13, colour),
            )])
            .map_err(plot_err)?;
    }
    Ok(PanelLayout {
        baseline_rows,
        ..PanelLayout::of(&chart, reference_row, brackets.len())
    })
}

/// The dash and gap lengths (pixels) of the `i`-th baseline: long dashes
/// for the first, shorter for the next, so two baselines tell apart.
fn baseline_dashes(i: usize) -> (u32, u32) {
    [(14, 6), (6, 4), (2, 4)][i % 3]
}

fn panel_baselines<'a>(panel: Panel<'a>) -> impl Iterator<Item = &'a Point> {
    let name = panel.name;
    panel.data.baselines.iter().filter(move |p| p.panel == name)
}

/// The CI band of each baseline of the panel across `x_range`, tinted in
/// its series' colour: drawn first, so that it tints no line.
fn draw_baseline_bands<X: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, '_, X>,
    panel: Panel,
    (x0, x1): (f64, f64),
) -> anyhow::Result<()> {
    for point in panel_baselines(panel) {
        if let Some((lo, hi)) = point.summary.ci95 {
            let tint = panel.data.colour(&point.series).mix(0.12).filled();
            chart
                .draw_series([Rectangle::new([(x0, lo), (x1, hi)], tint)])
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Each baseline of the panel as a dashed level line at its mean across
/// `x_range` (over every band), in its series' colour, with the paper's
/// number as a diamond at the right end; returns each line's pixel row.
fn draw_baselines<X: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, '_, X>,
    panel: Panel,
    (x0, x1): (f64, f64),
) -> anyhow::Result<Vec<(i32, RGBColor)>> {
    let data = panel.data;
    let mut rows = Vec::new();
    for point in panel_baselines(panel) {
        let colour = data.colour(&point.series);
        let which = panel.spec.baselines.iter().position(|b| *b == point.x);
        let (dash, gap) = baseline_dashes(which.unwrap_or(0));
        let mean = point.summary.mean;
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, mean), (x1, mean)],
                dash,
                gap,
                colour.stroke_width(2),
            ))
            .map_err(plot_err)?;
        if let Some(paper) = point.paper {
            paper_marker(chart.plotting_area(), (x1, paper), colour)?;
        }
        rows.push((chart.backend_coord(&(x0, mean)).1, colour));
    }
    Ok(rows)
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

/// Tick labels with as few decimals as the axis span needs (`60`, not `60.0`);
/// none outside the metric's range (the headroom above 100% that brackets
/// need is not a value).
fn y_tick_formatter(span: f64, range: Option<(f64, f64)>) -> impl Fn(&f64) -> String {
    let decimals = if span >= 10.0 {
        0
    } else if span >= 1.0 {
        1
    } else {
        2
    };
    let slack = span * 1e-6;
    move |v: &f64| match range {
        Some((lo, hi)) if *v < lo - slack || *v > hi + slack => String::new(),
        _ => format!("{v:.decimals$}"),
    }
}

/// `gra (×100)`: the metric and its scale, for the y axis.
fn value_axis_label(table: &TableSpec) -> String {
    if table.scale == 1.0 {
        table.value.clone()
    } else {
        format!("{} (×{})", table.value, table.scale)
    }
}

/// A swatch and a name per series, then a key to every overlay the figure
/// shows, in the reserved strip on the right.
fn draw_legend(area: &Area, data: &FigureData, spec: &FigureSpec) -> anyhow::Result<()> {
    let header = spec.series.join(" / ");
    let bold = (FAMILY, 16).into_font().style(FontStyle::Bold);
    area.draw(&Text::new(header, (10, 40), bold.clone()))
        .map_err(plot_err)?;
    let mut y = 70;
    for series in &data.series {
        let colour = data.colour(series);
        area.draw(&Rectangle::new([(10, y), (28, y + 16)], colour.filled()))
            .map_err(plot_err)?;
        area.draw(&Text::new(series.join(" / "), (36, y), (FAMILY, 15)))
            .map_err(plot_err)?;
        y += 26;
    }
    if !spec.baselines.is_empty() {
        y += 8;
        for (i, baseline) in spec.baselines.iter().enumerate() {
            let (dash, gap) = baseline_dashes(i);
            let mut x = 10;
            while x < 30 {
                let end = (x + dash as i32).min(30);
                area.draw(&PathElement::new(
                    [(x, y + 8), (end, y + 8)],
                    BLACK.stroke_width(2),
                ))
                .map_err(plot_err)?;
                x = end + gap as i32;
            }
            area.draw(&Text::new(
                format!("{} = {baseline} (level)", spec.x),
                (36, y),
                (FAMILY, 14),
            ))
            .map_err(plot_err)?;
            y += 24;
        }
    }
    let has_paper = data
        .points
        .iter()
        .chain(&data.baselines)
        .any(|p| p.paper.is_some());
    let has = |s: Separation| data.brackets.iter().any(|b| b.separation == s);
    let has_uncalibrated = data
        .xs
        .iter()
        .chain(&data.panels)
        .any(|label| data.marked.contains(label));
    if data.neutral.is_none() && !has_paper && data.brackets.is_empty() && !has_uncalibrated {
        return Ok(());
    }
    y += 14;
    let text = |label: String, y: i32| Text::new(label, (36, y), (FAMILY, 14));
    if let Some(neutral) = data.neutral {
        area.draw(&PathElement::new(
            [(10, y + 8), (19, y + 8)],
            REFERENCE_COLOUR.stroke_width(2),
        ))
        .map_err(plot_err)?;
        area.draw(&PathElement::new(
            [(23, y + 8), (30, y + 8)],
            REFERENCE_COLOUR.stroke_width(2),
        ))
        .map_err(plot_err)?;
        area.draw(&text(format!("neutral ({})", trim_number(neutral)), y))
            .map_err(plot_err)?;
        y += 24;
    }
    if has_paper {
        paper_marker(area, (19, y + 8), BLACK)?;
        area.draw(&text("paper".to_string(), y)).map_err(plot_err)?;
        y += 24;
    }
    for (separation, meaning) in [
        (Separation::Separated, "claim holds, CIs apart"),
        (Separation::Reversed, "reversed, CIs apart"),
    ] {
        if has(separation) {
            let (mark, colour) = bracket_style(separation);
            area.draw(&Text::new(
                mark,
                (14, y - 2),
                (FAMILY, 18).into_font().color(&colour),
            ))
            .map_err(plot_err)?;
            area.draw(&text(meaning.to_string(), y)).map_err(plot_err)?;
            y += 24;
        }
    }
    if has_uncalibrated {
        area.draw(&Text::new(
            super::render::UNCALIBRATED_MARK,
            (14, y - 2),
            (FAMILY, 18),
        ))
        .map_err(plot_err)?;
        area.draw(&text("fails calibration".to_string(), y))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// `50`, not `50.0`; `0.5` stays.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{Claim, check_claims};
    use crate::report::fixtures::*;
    use crate::report::grid::Grid;
    use crate::report::paper_table;
    use image::RgbImage;

    /// How many pixels of `row` inside `x` are exactly `colour`.
    fn count_in_row(img: &RgbImage, row: i32, x: (i32, i32), colour: RGBColor) -> usize {
        let RGBColor(r, g, b) = colour;
        (x.0..x.1)
            .filter(|&px| img.get_pixel(px as u32, row as u32).0 == [r, g, b])
            .count()
    }

    /// The neutral line is where the layout says, in its colour, across at
    /// least a third of the plotting area (dashes and bars leave gaps), and
    /// on no other row.
    fn assert_reference_line(img: &RgbImage, layout: &FigureLayout) {
        for (i, panel) in layout.panels.iter().enumerate() {
            let row = panel.reference_row.expect("a neutral line");
            let width = (panel.x_pixels.1 - panel.x_pixels.0) as usize;
            let on = count_in_row(img, row, panel.x_pixels, REFERENCE_COLOUR);
            assert!(
                on * 3 >= width,
                "panel {i}: row {row} has {on} of {width} pixels in the line's colour"
            );
            for other in [row - 12, row + 12] {
                let stray = count_in_row(img, other, panel.x_pixels, REFERENCE_COLOUR);
                assert!(stray * 10 < width, "panel {i}: row {other} has {stray}");
            }
        }
    }

    /// Table 1's cells with two claims made visible: at opt / tldr, CW is 25
    /// points better (separates from WS and Human under every objective); at
    /// qwen / ufb / ipo, Human is 25 points better (`cw > human` reversed).
    fn separated_cells() -> Vec<CellResult> {
        let mut cells = table1_cells();
        for c in &mut cells {
            let l = |k: &str| c.labels[k].as_str();
            let cw_ahead = (l("pair"), l("dataset"), l("annotation")) == ("opt", "tldr", "cw");
            let human_ahead = (l("pair"), l("dataset"), l("objective"), l("annotation"))
                == ("qwen", "ufb", "ipo", "human");
            if cw_ahead || human_ahead {
                *c.metrics.get_mut("gra").unwrap() += 0.25;
            }
        }
        cells
    }

    fn checks_of(spec: &TableSpec, cells: &[CellResult], paper: &PaperTable) -> Vec<ClaimCheck> {
        let grid = Grid::build(spec, cells).unwrap();
        let claims: Vec<Claim> = spec
            .claims
            .iter()
            .map(|c| Claim::parse(c).unwrap())
            .collect();
        check_claims(&grid, &claims, Some(paper))
    }

    #[test]
    fn grouped_bars_show_neutral_line_paper_values_and_separations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table1.png");
        let spec = table1_spec();
        let cells = separated_cells();
        let paper = paper_table("table1").unwrap().unwrap();
        let checks = checks_of(&spec, &cells, &paper);
        let overlays = Overlays {
            paper: Some(&paper),
            claims: &checks,
            uncalibrated: None,
        };
        let figure = spec.figure.as_ref().unwrap();
        let layout = draw_figure(figure, &spec, &cells, overlays, &path).unwrap();

        let img = decode_png(&path);
        assert_eq!(
            (img.width(), img.height()),
            (2 * PANEL_WIDTH + LEGEND_WIDTH, HEIGHT)
        );
        assert_eq!((layout.width, layout.height), (img.width(), img.height()));
        let colours: std::collections::BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(
            colours.len() > 20,
            "only {} colours: blank figure?",
            colours.len()
        );
        assert!(
            has_colour(&img, PALETTE[0]),
            "no bar in the first series colour"
        );
        assert_reference_line(&img, &layout);
        // opt: 3 objectives × 2 claims separate at tldr; qwen: one reversal
        let brackets: Vec<usize> = layout.panels.iter().map(|p| p.brackets).collect();
        assert_eq!(brackets, [6, 1]);
        assert!(has_colour(&img, REVERSED_COLOUR), "no red reversal mark");
        // only the PNG is left: the temporary file was renamed
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // every bar has the paper's number (Table 1 publishes them all), and
        // the y axis reaches the highest (Qwen HH-RLHF IPO CW, 86.8)
        let data = FigureData::build(figure, &spec, &cells, overlays).unwrap();
        assert!(data.points.iter().all(|p| p.paper.is_some()));
        let at = |pair: &str, dataset: &str, series: [&str; 2]| {
            data.points
                .iter()
                .find(|p| p.panel == pair && p.x == dataset && p.series == series)
                .and_then(|p| p.paper)
        };
        assert_eq!(at("opt", "tldr", ["dpo", "cw"]), Some(56.6));
        assert!(data.y_range(true).1 > 86.8);
        assert_eq!(data.neutral, Some(50.0));
    }

    #[test]
    fn a_metric_without_neutral_value_has_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gold.png");
        let mut spec = table1_spec();
        spec.value = "gold_mean".into();
        spec.scale = 1.0;
        let figure = spec.figure.clone().unwrap();
        let layout =
            draw_figure(&figure, &spec, &table1_cells(), Overlays::default(), &path).unwrap();
        assert!(layout.panels.iter().all(|p| p.reference_row.is_none()));
        // no row holds the line's grey across the plot (text may use it)
        let img = decode_png(&path);
        for panel in &layout.panels {
            let width = (panel.x_pixels.1 - panel.x_pixels.0) as usize;
            for row in 0..img.height() as i32 {
                let on = count_in_row(&img, row, panel.x_pixels, REFERENCE_COLOUR);
                assert!(on * 10 < width, "row {row} has {on} grey pixels");
            }
        }
    }

    /// Table 1's opt / DPO cells as a threshold sweep: human → top20,
    /// ws → top60, cw stays a method (a baseline); one line per dataset.
    fn threshold_cells() -> Vec<CellResult> {
        table1_cells()
            .into_iter()
            .filter(|c| c.labels["pair"] == "opt" && c.labels["objective"] == "dpo")
            .map(|mut c| {
                let renamed = match c.labels["annotation"].as_str() {
                    "human" => "top20",
                    "ws" => "top60",
                    other => other,
                }
                .to_string();
                c.labels.insert("annotation".into(), renamed);
                c
            })
            .collect()
    }

    fn threshold_figure() -> FigureSpec {
        FigureSpec {
            kind: FigureKind::Line,
            x: "annotation".into(),
            x_prefix: Some("top".into()),
            baselines: vec!["cw".into()],
            series: vec!["dataset".into()],
            ..FigureSpec::default()
        }
    }

    /// `top20`, `top60` are read as 20, 60 on the axis; `cw` is no point but
    /// a dashed level line per dataset at its mean, in the dataset's colour,
    /// across the panel.
    #[test]
    fn line_figure_reads_prefixed_x_and_draws_baselines_as_levels() {
        let cells = threshold_cells();
        let table = TableSpec::new(&["dataset"], &["annotation"], "gra");
        let figure = threshold_figure();
        let data = FigureData::build(&figure, &table, &cells, Overlays::default()).unwrap();
        assert_eq!(data.xs, ["top20", "top60"]);
        assert_eq!(data.baselines.len(), 3);
        assert!(data.baselines.iter().all(|p| p.x == "cw"));
        let hh = data
            .baselines
            .iter()
            .find(|p| p.series == ["hh-rlhf"])
            .unwrap();
        let want = (0..3).map(|s| gra(0, 0, 0, 2, s)).sum::<f64>() / 3.0;
        assert!((hh.summary.mean - want).abs() < 1e-12);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fig4.png");
        let layout = draw_figure(&figure, &table, &cells, Overlays::default(), &path).unwrap();
        let img = decode_png(&path);
        let panel = &layout.panels[0];
        assert_eq!(panel.baseline_rows.len(), 3, "{panel:?}");
        let width = (panel.x_pixels.1 - panel.x_pixels.0) as usize;
        for &(row, colour) in &panel.baseline_rows {
            let on = count_in_row(&img, row, panel.x_pixels, colour);
            assert!(on * 2 >= width, "row {row}: {on} of {width} pixels");
        }
        // Without `baselines`, `cw` is a label the axis cannot read.
        let no_baseline = FigureSpec {
            baselines: Vec::new(),
            ..figure.clone()
        };
        let bad = dir.path().join("bad.png");
        let err = draw_figure(&no_baseline, &table, &cells, Overlays::default(), &bad).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("`annotation` = `cw` is not a number after the prefix `top`"),
            "{err:#}"
        );
        // Bars have no level lines.
        let bars = FigureSpec {
            kind: FigureKind::GroupedBars,
            ..figure
        };
        let err = draw_figure(&bars, &table, &cells, Overlays::default(), &bad).unwrap_err();
        assert!(
            format!("{err:#}").contains("are for kind = \"line\""),
            "{err:#}"
        );
    }

    /// `average = ["pair"]` draws, per seed, the mean of both pairs (the
    /// fixture's qwen is opt + 0.1, so opt + 0.05), and finds the paper's
    /// number at `pair = "Avg."`.
    #[test]
    fn an_averaged_label_is_meaned_per_seed_and_read_from_the_papers_avg() {
        // Each pair has its own strong model: a label that varies with the
        // averaged one goes with it.
        let cells: Vec<CellResult> = table1_cells()
            .into_iter()
            .filter(|c| c.labels["objective"] == "dpo")
            .map(|mut c| {
                let strong = format!("{}-strong", c.labels["pair"]);
                c.labels.insert("strong_model".into(), strong);
                c
            })
            .collect();
        let table = TableSpec::new(&["dataset", "pair"], &["annotation"], "gra");
        let figure = FigureSpec {
            x: "dataset".into(),
            series: vec!["annotation".into()],
            average: vec!["pair".into()],
            ..FigureSpec::default()
        };
        let paper = PaperTable::parse(
            "id = \"t\"\ntitle = \"t\"\nsource = \"s\"\nrows = [\"dataset\", \"pair\"]\n\
             columns = [\"annotation\"]\nvalue = \"gra\"\ncolumn_order = [[\"cw\"]]\n\
             [[row]]\nlabels = { dataset = \"tldr\", pair = \"opt\" }\nvalues = [0.1]\n\
             [[row]]\nlabels = { dataset = \"tldr\", pair = \"Avg.\" }\nvalues = [0.7]\n",
        )
        .unwrap();
        let overlays = Overlays {
            paper: Some(&paper),
            ..Overlays::default()
        };
        let data = FigureData::build(&figure, &table, &cells, overlays).unwrap();
        assert_eq!(data.points.len(), 3 * 3);
        let at = |dataset: &str, annotation: &str| {
            data.points
                .iter()
                .find(|p| p.x == dataset && p.series == [annotation])
                .unwrap()
        };
        let per_seed: Vec<f64> = (0..3).map(|s| gra(0, 1, 0, 2, s) + 0.05).collect();
        let cw = at("tldr", "cw");
        assert!((cw.summary.mean - per_seed.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        assert_eq!(cw.summary.n, 3, "one value per seed, not per pair and seed");
        assert_eq!(cw.paper, Some(0.7));
        assert_eq!(at("ufb", "cw").paper, None);
        // Without averaging the two pairs collide in one point; averaging
        // over pairs, cells that differ in another label (every objective)
        // collide too.
        let plain = FigureSpec {
            average: Vec::new(),
            ..figure.clone()
        };
        let err = FigureData::build(&plain, &table, &cells, Overlays::default())
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("differ in [\"pair\", \"strong_model\"]"),
            "{err:#}"
        );
        let err = FigureData::build(&figure, &table, &table1_cells(), Overlays::default())
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("differ in [\"objective\"]"),
            "{err:#}"
        );
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
            ..FigureSpec::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fig3.png");
        let layout = draw_figure(&line, &table, &cells, Overlays::default(), &path).unwrap();
        let img = decode_png(&path);
        assert_eq!(
            (img.width(), img.height()),
            (PANEL_WIDTH + LEGEND_WIDTH, HEIGHT)
        );
        assert!(has_colour(&img, PALETTE[0]));
        // gra unscaled: the neutral line sits at 0.5
        assert_reference_line(&img, &layout);

        let words = FigureSpec {
            x: "dataset".into(),
            ..line
        };
        let err = draw_figure(
            &words,
            &table,
            &cells,
            Overlays::default(),
            &dir.path().join("bad.png"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("`dataset` = `hh-rlhf` is not a number"),
            "{err:#}"
        );
        assert!(!dir.path().join("bad.png").exists());
    }
}
