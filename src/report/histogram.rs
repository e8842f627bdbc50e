//! Histograms of per-item values drawn from artifacts (Figure 5's gold-reward
//! gaps, Figure 7's confidences): equal-width bins, each histogram as the
//! share of its items per bin (so groups of different sizes compare), one
//! panel per group, optionally a dashed vertical line at a value that means
//! something (a gap of 0).
use std::path::Path;

use plotters::prelude::*;

use anyhow::Context;

use super::atomic::write_atomic_via_path;
use super::figure::{PALETTE, REFERENCE_COLOUR, plot_err};
use super::font::{FAMILY, ensure_registered};
use super::summary_table::SummaryTable;

const PANEL_WIDTH: u32 = 520;
const HEIGHT: u32 = 460;

/// `count` equal-width bins over `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

impl Bins {
    /// Bins symmetric around 0 that hold every value (`[-m, m]`, m the
    /// largest |value|; `[-1, 1]` when every value is 0).
    pub fn symmetric(values: &[f64], count: usize) -> Bins {
        let m = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let m = if m > 0.0 { m } else { 1.0 };
        Bins {
            lo: -m,
            hi: m,
            count,
        }
    }

    pub fn width(&self) -> f64 {
        (self.hi - self.lo) / self.count as f64
    }

    /// The bin of `v`: `[lo + k·w, lo + (k+1)·w)`, the last bin closed;
    /// values outside fall into the first or last bin.
    pub fn index(&self, v: f64) -> usize {
        let k = ((v - self.lo) / self.width()).floor();
        (k.max(0.0) as usize).min(self.count - 1)
    }

    /// The share of `values` in each bin (all 0 for no values).
    pub fn shares(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.count];
        for &v in values {
            counts[self.index(v)] += 1;
        }
        let n = values.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }
}

/// One group's values in one panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub name: String,
    pub values: Vec<f64>,
}

/// A panel: its caption, its histograms (drawn over each other, each in the
/// palette colour of its position) and lines of text for its corner.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPanel {
    pub caption: String,
    pub histograms: Vec<Histogram>,
    pub notes: Vec<String>,
}

/// What [`draw_histograms`] draws: the axes' names, the bins, and where a
/// dashed vertical line goes.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramFigure {
    pub title: String,
    pub x_desc: String,
    pub bins: Bins,
    pub marker: Option<f64>,
    pub panels: Vec<HistogramPanel>,
}

/// Where the figure put things, in pixels (for tests).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramLayout {
    pub width: u32,
    pub height: u32,
    /// Per panel: pixel columns `[start, end)` of the plotting area and the
    /// column of the marker line.
    pub panels: Vec<((i32, i32), Option<i32>)>,
}

/// What a figure drawn from artifacts wrote, for `report.md`: its PNG, the
/// CSV of its per-panel summary, and that summary as markdown.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArtifactFigure {
    pub png: String,
    pub csv: String,
    pub table: String,
}

impl ArtifactFigure {
    /// Draws `figure` as `<experiment>_<name>.png` and writes `summary` as
    /// `<experiment>_<name>.csv` into `out_dir`.
    pub fn write(
        figure: &HistogramFigure,
        summary: &SummaryTable,
        experiment: &str,
        name: &str,
        out_dir: &Path,
    ) -> anyhow::Result<ArtifactFigure> {
        let png = format!("{experiment}_{name}.png");
        draw_histograms(figure, &out_dir.join(&png))
            .with_context(|| format!("drawing the {name} figure"))?;
        let csv = format!("{experiment}_{name}.csv");
        summary.write_csv(&out_dir.join(&csv))?;
        Ok(ArtifactFigure {
            png,
            csv,
            table: summary.markdown(),
        })
    }
}

/// `dataset = tldr` above a panel; `all cells` for a figure without panels.
pub fn panel_caption(key: Option<&str>, value: &str) -> String {
    match key {
        Some(k) => format!("{k} = {value}"),
        None => "all cells".to_string(),
    }
}

/// The colour of the `i`-th histogram of a panel.
pub fn histogram_colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draws `figure` to a PNG at `path`, atomically: each histogram as a
/// tinted area under its outline (the outline in the histogram's colour).
pub fn draw_histograms(figure: &HistogramFigure, path: &Path) -> anyhow::Result<HistogramLayout> {
    ensure_registered()?;
    let n = figure.panels.len().max(1) as u32;
    let width = PANEL_WIDTH * n;
    let bins = figure.bins;
    let shares: Vec<Vec<Vec<f64>>> = figure
        .panels
        .iter()
        .map(|p| {
            p.histograms
                .iter()
                .map(|h| bins.shares(&h.values))
                .collect()
        })
        .collect();
    let top = shares
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |m, &v| m.max(v));
    let y_hi = (top * 1.15).max(0.05);
    let mut layout = Vec::new();
    write_atomic_via_path(path, ".png", |tmp| {
        let root = BitMapBackend::new(tmp, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(&figure.title, (FAMILY, 20)).map_err(plot_err)?;
        let areas = root.split_evenly((1, figure.panels.len().max(1)));
        for ((area, panel), panel_shares) in areas.iter().zip(&figure.panels).zip(&shares) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.caption, (FAMILY, 17))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(bins.lo..bins.hi, 0.0..y_hi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(figure.x_desc.as_str())
                .y_desc("share of items")
                .y_max_light_lines(1)
                .x_max_light_lines(1)
                .label_style((FAMILY, 13))
                .axis_desc_style((FAMILY, 14))
                .draw()
                .map_err(plot_err)?;
            let w = bins.width();
            for (i, bars) in panel_shares.iter().enumerate() {
                let colour = histogram_colour(i);
                chart
                    .draw_series(bars.iter().enumerate().filter(|(_, s)| **s > 0.0).map(
                        |(k, &s)| {
                            let x = bins.lo + k as f64 * w;
                            Rectangle::new([(x, 0.0), (x + w, s)], colour.mix(0.25).filled())
                        },
                    ))
                    .map_err(plot_err)?;
            }
            // Outlines over every tint, so that no tint covers one.
            for (i, bars) in panel_shares.iter().enumerate() {
                let mut outline = vec![(bins.lo, 0.0)];
                for (k, &s) in bars.iter().enumerate() {
                    let x = bins.lo + k as f64 * w;
                    outline.extend([(x, s), (x + w, s)]);
                }
                outline.push((bins.hi, 0.0));
                chart
                    .draw_series([PathElement::new(
                        outline,
                        histogram_colour(i).stroke_width(2),
                    )])
                    .map_err(plot_err)?;
            }
            let marker = match figure.marker {
                Some(at) => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(at, 0.0), (at, y_hi)],
                            8,
                            5,
                            REFERENCE_COLOUR.stroke_width(2),
                        ))
                        .map_err(plot_err)?;
                    Some(chart.backend_coord(&(at, 0.0)).0)
                }
                None => None,
            };
            let (x_pixels, _) = chart.plotting_area().get_pixel_range();
            let plot = chart.plotting_area();
            // Text in pixels from the plot's top-left corner.
            let corner = || EmptyElement::at((bins.lo, y_hi));
            let mut y = 8;
            for (i, h) in panel.histograms.iter().enumerate() {
                let line = format!("{} (n = {})", h.name, h.values.len());
                let style = (FAMILY, 13).into_font().color(&histogram_colour(i));
                plot.draw(&(corner() + Text::new(line, (8, y), style)))
                    .map_err(plot_err)?;
                y += 17;
            }
            for note in &panel.notes {
                plot.draw(&(corner() + Text::new(note.clone(), (8, y), (FAMILY, 13))))
                    .map_err(plot_err)?;
                y += 17;
            }
            layout.push(((x_pixels.start, x_pixels.end), marker));
        }
        root.present().map_err(plot_err)?;
        Ok(())
    })?;
    Ok(HistogramLayout {
        width,
        height: HEIGHT,
        panels: layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four bins over [−2, 2] (width 1): −2 and −1.5 → bin 0, 0 → bin 2,
    /// 2 (the closed end) and 5 (outside) → bin 3.
    #[test]
    fn bins_split_values_by_hand() {
        let bins = Bins {
            lo: -2.0,
            hi: 2.0,
            count: 4,
        };
        let values = [-2.0, -1.5, 0.0, 2.0, 5.0];
        assert_eq!(bins.shares(&values), [0.4, 0.0, 0.2, 0.4]);
        assert_eq!(Bins::symmetric(&[0.5, -3.0], 6).lo, -3.0);
        assert_eq!(Bins::symmetric(&[0.0], 6).hi, 1.0);
    }
}
