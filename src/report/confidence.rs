//! Figure 7: the weak annotator's confidence c = 2σ(s_c − s_r) − 1 on D_U,
//! for the labels that agree with the human's and for those that do not.
//! Confidence weighting pays off when wrong labels sit at lower confidence
//! than right ones; the two histograms show whether they do.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::CellArtifacts;
use super::histogram::{
    ArtifactFigure, Bins, Histogram, HistogramFigure, HistogramPanel, panel_caption,
};
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
                caption: panel_caption(spec.panel.as_deref(), &p.name),
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
    ArtifactFigure::write(&figure, &table, experiment, "confidence", out_dir).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{cell_artifacts, count_colour, decode_png, stage_dir};
    use crate::report::histogram::histogram_colour;

    fn labels_json(labels: &[(bool, f64)]) -> String {
        let labels: Vec<WeakLabel> = labels
            .iter()
            .map(|&(prefers_chosen, margin)| WeakLabel {
                prefers_chosen,
                s_c: margin,
                s_r: 0.0,
            })
            .collect();
        serde_json::to_string(&labels).unwrap()
    }

    /// c = 2σ(Δ) − 1: Δ = 0 → 0, Δ = ln 3 → 2·¾ − 1 = ½. Annotator A (shared
    /// by two cells, read once): right at ½ and ½, wrong at 0; annotator B
    /// in the same panel: right at 0; ufb's annotator: wrong at ½.
    #[test]
    fn confidences_split_right_from_wrong_and_count_each_annotator_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let half = 3f64.ln();
        let a = stage_dir(
            root,
            "a",
            &[(
                LABELS_FILE,
                labels_json(&[(true, half), (true, half), (false, 0.0)]),
            )],
        );
        let b = stage_dir(root, "b", &[(LABELS_FILE, labels_json(&[(true, 0.0)]))]);
        let u = stage_dir(root, "u", &[(LABELS_FILE, labels_json(&[(false, half)]))]);
        let cells = vec![
            cell_artifacts(
                &[("dataset", "hh"), ("annotation", "cw")],
                &[("annotate", &a)],
            ),
            cell_artifacts(
                &[("dataset", "hh"), ("annotation", "top30")],
                &[("annotate", &a)],
            ),
            cell_artifacts(&[("dataset", "hh"), ("seed", "1")], &[("annotate", &b)]),
            cell_artifacts(&[("dataset", "ufb")], &[("annotate", &u)]),
            cell_artifacts(&[("dataset", "hh"), ("annotation", "human")], &[]),
        ];
        let spec = ConfidenceSpec {
            panel: Some("dataset".into()),
        };
        let panels = confidences(&spec, &cells).unwrap();
        let names: Vec<&str> = panels.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["hh", "ufb"]);
        assert_eq!(panels[0].annotators, 2);
        let close = |got: &[f64], want: &[f64]| {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12)
        };
        assert!(
            close(&panels[0].correct, &[0.5, 0.5, 0.0]),
            "{:?}",
            panels[0]
        );
        assert!(close(&panels[0].wrong, &[0.0]), "{:?}", panels[0]);
        assert!(close(&panels[1].wrong, &[0.5]) && panels[1].correct.is_empty());

        let out = write_confidence(&spec, &cells, "fig7", root)
            .unwrap()
            .unwrap();
        assert!(
            out.table.contains("| hh | 2 | 4 | 75.0 | 0.333 | 0.000 |"),
            "{}",
            out.table
        );
        let img = decode_png(&root.join(&out.png));
        // An outline across the panel is far more than its coloured caption.
        for (i, what) in ["right", "wrong"].iter().enumerate() {
            let on = count_colour(&img, histogram_colour(i));
            assert!(on > 400, "{on} pixels: no histogram of {what} labels?");
        }
        assert!(root.join("fig7_confidence.csv").exists());
        assert_eq!(
            write_confidence(&spec, &cells[4..], "x", root).unwrap(),
            None
        );
    }
}
