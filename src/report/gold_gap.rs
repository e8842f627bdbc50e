//! Figure 5: for every test prompt (and sample), the gold reward of one
//! method's response minus another's, where the two cells differ only in
//! the compared label (same seed, dataset, models, so the same test
//! prompts in the same order). A share of gaps above 0 over one half says
//! the first method's responses beat the second's prompt by prompt, which
//! a GRA against each method's own SFT model cannot say.
use std::path::Path;

use anyhow::bail;

use super::CellArtifacts;
use super::histogram::{
    ArtifactFigure, Bins, Histogram, HistogramFigure, HistogramPanel, panel_caption,
};
use super::spec::GoldGapSpec;
use super::summary_table::SummaryTable;
use crate::stage::generate::{GENERATIONS_FILE, Generation};
use crate::stage::read_json;
use crate::stage::score::SCORES_FILE;

/// Histogram bins of the gaps: odd, so that one bin is centred on 0 and
/// tied prompts do not lean to either side.
const BINS: usize = 31;

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
    let panel_key = spec.panel.as_deref().unwrap_or("all");
    let figure = gap_figure(spec, &panels);
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
    ArtifactFigure::write(&figure, &table, experiment, "gold_gap", out_dir).map(Some)
}

/// The histograms of `panels`' gaps: bins symmetric around 0, a dashed line
/// at 0, and each panel's shares ahead in its corner.
pub fn gap_figure(spec: &GoldGapSpec, panels: &[GapPanel]) -> HistogramFigure {
    let (first, second) = &spec.compare;
    let all: Vec<f64> = panels.iter().flat_map(|p| p.gaps.iter().copied()).collect();
    HistogramFigure {
        title: format!("Gold reward per test prompt: {first} − {second}"),
        x_desc: format!("gold({first}) − gold({second})"),
        bins: Bins::symmetric(&all, BINS),
        marker: Some(0.0),
        panels: panels
            .iter()
            .map(|p| {
                let (above, below, _) = p.shares();
                HistogramPanel {
                    caption: panel_caption(spec.panel.as_deref(), &p.name),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figure::REFERENCE_COLOUR;
    use crate::report::fixtures::{cell_artifacts, count_colour, decode_png, stage_dir};
    use crate::report::histogram::{draw_histograms, histogram_colour};
    use plotters::style::RGBColor;

    fn generations(prompts: &[&str]) -> String {
        let g: Vec<Generation> = prompts
            .iter()
            .map(|p| Generation {
                prompt: p.to_string(),
                response: "r".into(),
            })
            .collect();
        serde_json::to_string(&g).unwrap()
    }

    fn spec() -> GoldGapSpec {
        GoldGapSpec {
            label: "annotation".into(),
            compare: ("cw".into(), "human".into()),
            panel: Some("dataset".into()),
        }
    }

    /// hh seed 0: cw scores 1, .5, .25 against human's .5, .5, .75 → gaps
    /// .5, 0, −.5 (one ahead, one tied, one behind); hh seed 1 adds one
    /// prompt, cw ahead by 2; tldr's cw has no human partner and is skipped.
    #[test]
    fn gaps_pair_cells_that_differ_only_in_the_label() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let gen3 = stage_dir(
            root,
            "gen3",
            &[(GENERATIONS_FILE, generations(&["a", "b", "c"]))],
        );
        let gen1 = stage_dir(root, "gen1", &[(GENERATIONS_FILE, generations(&["a"]))]);
        let score = |name: &str, s: &str| stage_dir(root, name, &[(SCORES_FILE, s.to_string())]);
        let (cw0, human0) = (
            score("cw0", "[1.0, 0.5, 0.25]"),
            score("h0", "[0.5, 0.5, 0.75]"),
        );
        let (cw1, human1) = (score("cw1", "[3.0]"), score("h1", "[1.0]"));
        let lone = score("lone", "[9.0]");
        let cell = |ann: &str, dataset: &str, seed: &str, s: &Path, g: &Path| {
            cell_artifacts(
                &[("annotation", ann), ("dataset", dataset), ("seed", seed)],
                &[("score", s), ("generate", g)],
            )
        };
        let cells = vec![
            cell("cw", "hh", "0", &cw0, &gen3),
            cell("human", "hh", "0", &human0, &gen3),
            cell("cw", "hh", "1", &cw1, &gen1),
            cell("human", "hh", "1", &human1, &gen1),
            cell("cw", "tldr", "0", &lone, &gen1),
        ];
        let panels = gold_gaps(&spec(), &cells).unwrap();
        assert_eq!(panels.len(), 1);
        assert_eq!(panels[0].name, "hh");
        assert_eq!(panels[0].cell_pairs, 2);
        assert_eq!(panels[0].gaps, [0.5, 0.0, -0.5, 2.0]);
        assert_eq!(panels[0].shares(), (0.5, 0.25, 0.25));

        // The figure: a histogram outline and the dashed line at 0.
        let out = write_gold_gap(&spec(), &cells, "fig5", root)
            .unwrap()
            .unwrap();
        assert!(
            out.table.contains("| hh | 2 | 4 | 50.0 | 25.0 | 25.0 |"),
            "{}",
            out.table
        );
        let csv = std::fs::read_to_string(root.join(&out.csv)).unwrap();
        assert!(
            csv.starts_with("dataset,cell pairs,prompts,cw ahead (%)"),
            "{csv}"
        );
        let img = decode_png(&root.join(&out.png));
        let on = count_colour(&img, histogram_colour(0));
        assert!(on > 400, "{on} pixels: no histogram?");
        let layout = draw_histograms(&gap_figure(&spec(), &panels), &root.join("gap.png")).unwrap();
        let column = layout.panels[0].1.expect("a marker column") as u32;
        let img = decode_png(&root.join("gap.png"));
        let RGBColor(r, g, b) = REFERENCE_COLOUR;
        let on = (0..img.height())
            .filter(|&y| img.get_pixel(column, y).0 == [r, g, b])
            .count();
        assert!(on > 100, "the zero line has {on} pixels in column {column}");

        // Other prompts on one side: an error that names both dirs.
        let other = stage_dir(
            root,
            "other",
            &[(GENERATIONS_FILE, generations(&["x", "b", "c"]))],
        );
        let mismatched = vec![
            cell("cw", "hh", "0", &cw0, &gen3),
            cell("human", "hh", "0", &human0, &other),
        ];
        let err = gold_gaps(&spec(), &mismatched).unwrap_err().to_string();
        assert!(err.contains("different test prompts"), "{err}");
        // No pair at all: no figure.
        assert_eq!(
            write_gold_gap(&spec(), &cells[4..], "x", root).unwrap(),
            None
        );
    }
}
