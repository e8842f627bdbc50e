//! Figure 7: the weak annotator's confidence c = 2σ(s_c − s_r) − 1 on D_U,
//! for the labels that agree with the human's and for those that do not.
//! Confidence weighting pays off when wrong labels sit at lower confidence
//! than right ones; the two histograms show whether they do.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::CellArtifacts;
use super::gold_gap::{ArtifactFigure, caption};
use super::histogram::{Bins, Histogram, HistogramFigure, HistogramPanel, draw_histograms};
use super::spec::ConfidenceSpec;
use super::summary_table::SummaryTable;
use crate::stage::artifacts::LABELS_FILE;
use crate::stage::read_json;
use crate::train::WeakLabel;

/// Histogram bins over [0, 1].
const BINS: usize = 20;

/// One panel's confidences, pooled over its weak annotators.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfidencePanel {
    pub name: String,
    pub annotators: usize,
    /// Confidence of each label that agrees with the human's choice.
    pub correct: Vec<f64>,
    /// Confidence of each label that does not.
    pub wrong: Vec<f64>,
}

/// The confidences of every distinct `annotate` artifact among `cells` (many
/// cells share one weak annotator's labels; each is counted once), by panel
/// in the order the panels first appear.
pub fn confidences(
    spec: &ConfidenceSpec,
    cells: &[CellArtifacts],
) -> anyhow::Result<Vec<ConfidencePanel>> {
    let mut seen: BTreeSet<&PathBuf> = BTreeSet::new();
    let mut panels: Vec<ConfidencePanel> = Vec::new();
    for cell in cells {
        let Some(dir) = cell.dirs.get("annotate") else {
            continue;
        };
        if !seen.insert(dir) {
            continue;
        }
        let labels: Vec<WeakLabel> = read_json(dir, LABELS_FILE)?;
        let name = spec
            .panel
            .as_ref()
            .and_then(|k| cell.labels.get(k).cloned())
            .unwrap_or_default();
        let at = match panels.iter().position(|p| p.name == name) {
            Some(at) => at,
            None => {
                panels.push(ConfidencePanel {
                    name,
                    ..ConfidencePanel::default()
                });
                panels.len() - 1
            }
        };
        let panel = &mut panels[at];
        panel.annotators += 1;
        for label in &labels {
            let into = if label.prefers_chosen {
                &mut panel.correct
            } else {
                &mut panel.wrong
            };
            into.push(label.confidence());
        }
    }
    Ok(panels)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Draws `<experiment>_confidence.png` and writes its per-panel summary as
/// `<experiment>_confidence.csv`; `None` when no cell has weak labels.
pub fn write_confidence(
    spec: &ConfidenceSpec,
    cells: &[CellArtifacts],
    experiment: &str,
    out_dir: &Path,
) -> anyhow::Result<Option<ArtifactFigure>> {
    let panels = confidences(spec, cells)?;
    if panels.is_empty() {
        return Ok(None);
    }
    let figure = HistogramFigure {
        title: "Weak annotator's confidence on D_U: labels that agree with the human's vs not"
            .to_string(),
        x_desc: "confidence 2σ(s_c − s_r) − 1".to_string(),
        bins: Bins {
            lo: 0.0,
            hi: 1.0,
            count: BINS,
        },
        marker: None,
        panels: panels
            .iter()
            .map(|p| HistogramPanel {
                caption: caption(spec.panel.as_deref(), &p.name),
                histograms: vec![
                    Histogram {
                        name: "correct".to_string(),
                        values: p.correct.clone(),
                    },
                    Histogram {
                        name: "wrong".to_string(),
                        values: p.wrong.clone(),
                    },
                ],
                notes: vec![format!(
                    "mean: {:.3} correct, {:.3} wrong",
                    mean(&p.correct),
                    mean(&p.wrong)
                )],
            })
            .collect(),
    };
    let png = format!("{experiment}_confidence.png");
    draw_histograms(&figure, &out_dir.join(&png)).context("drawing the confidence figure")?;
    let panel_key = spec.panel.as_deref().unwrap_or("all");
    let mut table = SummaryTable::new(&[
        panel_key,
        "weak annotators",
        "labels",
        "agree with human (%)",
        "mean confidence, correct",
        "mean confidence, wrong",
    ]);
    for p in &panels {
        let n = p.correct.len() + p.wrong.len();
        table.rows.push(vec![
            p.name.clone(),
            p.annotators.to_string(),
            n.to_string(),
            format!("{:.1}", 100.0 * p.correct.len() as f64 / n.max(1) as f64),
            format!("{:.3}", mean(&p.correct)),
            format!("{:.3}", mean(&p.wrong)),
        ]);
    }
    let csv = format!("{experiment}_confidence.csv");
    table.write_csv(&out_dir.join(&csv))?;
    Ok(Some(ArtifactFigure {
        png,
        csv,
        table: table.markdown(),
    }))
}
