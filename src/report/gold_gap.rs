//! Figure 5: for every test prompt (and sample), the gold reward of one
//! method's response minus another's, where the two cells differ only in
//! the compared label (same seed, dataset, models, so the same test
//! prompts in the same order). A share of gaps above 0 over one half says
//! the first method's responses beat the second's prompt by prompt, which
//! a GRA against each method's own SFT model cannot say.
use std::path::Path;

use anyhow::{Context, bail};

use super::CellArtifacts;
use super::histogram::{Bins, Histogram, HistogramFigure, HistogramPanel, draw_histograms};
use super::spec::GoldGapSpec;
use super::summary_table::SummaryTable;
use crate::stage::generate::{GENERATIONS_FILE, Generation};
use crate::stage::read_json;
use crate::stage::score::SCORES_FILE;

/// Histogram bins of the gaps.
const BINS: usize = 30;

/// One panel's gaps, pooled over its cell pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct GapPanel {
    pub name: String,
    pub cell_pairs: usize,
    pub gaps: Vec<f64>,
}

impl GapPanel {
    /// Shares of gaps above, below and at 0.
    pub fn shares(&self) -> (f64, f64, f64) {
        let n = self.gaps.len().max(1) as f64;
        let count = |f: fn(f64) -> bool| self.gaps.iter().filter(|&&g| f(g)).count() as f64 / n;
        (count(|g| g > 0.0), count(|g| g < 0.0), count(|g| g == 0.0))
    }
}

/// The gaps `compare[0]` − `compare[1]` of every pair of cells that differ
/// only in `spec.label` and both have `score` artifacts, by panel in the
/// order the panels first appear. Cells without a partner are skipped.
pub fn gold_gaps(spec: &GoldGapSpec, cells: &[CellArtifacts]) -> anyhow::Result<Vec<GapPanel>> {
    let (first, second) = &spec.compare;
    let mut panels: Vec<GapPanel> = Vec::new();
    for a in cells {
        if a.labels.get(&spec.label) != Some(first) {
            continue;
        }
        let mut partner = a.labels.clone();
        partner.insert(spec.label.clone(), second.clone());
        let Some(b) = cells.iter().find(|c| c.labels == partner) else {
            continue;
        };
        let (Some(score_a), Some(score_b)) = (a.dirs.get("score"), b.dirs.get("score")) else {
            continue;
        };
        let ours: Vec<f32> = read_json(score_a, SCORES_FILE)?;
        let theirs: Vec<f32> = read_json(score_b, SCORES_FILE)?;
        if ours.len() != theirs.len() {
            bail!(
                "gold gap: {} holds {} scores but {} holds {}; the two cells were not scored on the same test prompts",
                score_a.display(),
                ours.len(),
                score_b.display(),
                theirs.len()
            );
        }
        if let (Some(gen_a), Some(gen_b)) = (a.dirs.get("generate"), b.dirs.get("generate")) {
            same_prompts(gen_a, gen_b)?;
        }
        let name = spec
            .panel
            .as_ref()
            .and_then(|k| a.labels.get(k).cloned())
            .unwrap_or_default();
        let gaps = ours
            .iter()
            .zip(&theirs)
            .map(|(x, y)| f64::from(*x) - f64::from(*y));
        match panels.iter_mut().find(|p| p.name == name) {
            Some(panel) => {
                panel.cell_pairs += 1;
                panel.gaps.extend(gaps);
            }
            None => panels.push(GapPanel {
                name,
                cell_pairs: 1,
                gaps: gaps.collect(),
            }),
        }
    }
    Ok(panels)
}

/// Fails unless two `generate` dirs hold the same prompts in the same order.
fn same_prompts(a: &Path, b: &Path) -> anyhow::Result<()> {
    let prompts = |dir: &Path| -> anyhow::Result<Vec<String>> {
        let generations: Vec<Generation> = read_json(dir, GENERATIONS_FILE)?;
        Ok(generations.into_iter().map(|g| g.prompt).collect())
    };
    if prompts(a)? != prompts(b)? {
        bail!(
            "gold gap: {} and {} were generated on different test prompts; compare cells of one dataset and seed",
            a.display(),
            b.display()
        );
    }
    Ok(())
}

/// What a figure drawn from artifacts wrote, for `report.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArtifactFigure {
    pub png: String,
    pub csv: String,
    pub table: String,
}

/// Draws `<experiment>_gold_gap.png` and writes its per-panel summary as
/// `<experiment>_gold_gap.csv`; `None` when no two cells could be compared.
pub fn write_gold_gap(
    spec: &GoldGapSpec,
    cells: &[CellArtifacts],
    experiment: &str,
    out_dir: &Path,
) -> anyhow::Result<Option<ArtifactFigure>> {
    let panels = gold_gaps(spec, cells)?;
    if panels.is_empty() {
        return Ok(None);
    }
    let (first, second) = &spec.compare;
    let all: Vec<f64> = panels.iter().flat_map(|p| p.gaps.iter().copied()).collect();
    let panel_key = spec.panel.as_deref().unwrap_or("all");
    let figure = HistogramFigure {
        title: format!("Gold reward per test prompt: {first} − {second}"),
        x_desc: format!("gold({first}) − gold({second})"),
        bins: Bins::symmetric(&all, BINS),
        marker: Some(0.0),
        panels: panels
            .iter()
            .map(|p| {
                let (above, below, _) = p.shares();
                HistogramPanel {
                    caption: caption(spec.panel.as_deref(), &p.name),
                    histograms: vec![Histogram {
                        name: format!("{first} − {second}"),
                        values: p.gaps.clone(),
                    }],
                    notes: vec![
                        format!("{first} ahead: {:.1}%", 100.0 * above),
                        format!("{second} ahead: {:.1}%", 100.0 * below),
                    ],
                }
            })
            .collect(),
    };
    let png = format!("{experiment}_gold_gap.png");
    draw_histograms(&figure, &out_dir.join(&png)).context("drawing the gold-gap figure")?;
    let mut table = SummaryTable::new(&[
        panel_key,
        "cell pairs",
        "prompts",
        &format!("{first} ahead (%)"),
        &format!("{second} ahead (%)"),
        "tied (%)",
        "mean gap",
    ]);
    for p in &panels {
        let (above, below, tied) = p.shares();
        let mean = p.gaps.iter().sum::<f64>() / p.gaps.len().max(1) as f64;
        table.rows.push(vec![
            p.name.clone(),
            p.cell_pairs.to_string(),
            p.gaps.len().to_string(),
            format!("{:.1}", 100.0 * above),
            format!("{:.1}", 100.0 * below),
            format!("{:.1}", 100.0 * tied),
            format!("{mean:.4}"),
        ]);
    }
    let csv = format!("{experiment}_gold_gap.csv");
    table.write_csv(&out_dir.join(&csv))?;
    Ok(Some(ArtifactFigure {
        png,
        csv,
        table: table.markdown(),
    }))
}

/// `dataset = tldr` above a panel; `all` for a figure without panels.
pub fn caption(key: Option<&str>, value: &str) -> String {
    match key {
        Some(k) => format!("{k} = {value}"),
        None => "all cells".to_string(),
    }
}
