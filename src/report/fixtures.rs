//! Test fixtures: a Table-1-shaped set of synthetic cells (2 pairs × 3
//! datasets × 3 objectives × 3 annotations × 3 seeds) whose values follow a
//! formula the tests can recompute by hand.
use std::collections::BTreeMap;

use super::CellResult;
use super::render::ReportContext;
use super::spec::{ExtraValue, FigureKind, FigureSpec, TableSpec};

pub const PAIRS: [&str; 2] = ["opt", "qwen"];
pub const DATASETS: [&str; 3] = ["hh-rlhf", "tldr", "ufb"];
pub const OBJECTIVES: [&str; 3] = ["dpo", "ipo", "rdpo"];
pub const ANNOTATIONS: [&str; 3] = ["human", "ws", "cw"];
pub const SEEDS: [u64; 3] = [0, 1, 2];

/// The GRA of one cell: a base per pair and dataset, a step per objective and
/// annotation (cw best), and seed noise that grows with the annotation index.
pub fn gra(pair: usize, dataset: usize, objective: usize, annotation: usize, seed: usize) -> f64 {
    let noise = [0.0, 0.02, -0.01][seed] * (1 + annotation) as f64;
    0.5 + 0.1 * pair as f64
        + 0.02 * dataset as f64
        + 0.01 * objective as f64
        + 0.03 * annotation as f64
        + noise
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// All 162 cells, in manifest order.
pub fn table1_cells() -> Vec<CellResult> {
    let mut cells = Vec::new();
    for (p, pair) in PAIRS.iter().enumerate() {
        for (d, dataset) in DATASETS.iter().enumerate() {
            for (o, objective) in OBJECTIVES.iter().enumerate() {
                for (a, annotation) in ANNOTATIONS.iter().enumerate() {
                    for (s, seed) in SEEDS.iter().enumerate() {
                        let v = gra(p, d, o, a, s);
                        cells.push(CellResult {
                            labels: labels(&[
                                ("pair", pair),
                                ("dataset", dataset),
                                ("objective", objective),
                                ("annotation", annotation),
                                ("seed", &seed.to_string()),
                            ]),
                            metrics: BTreeMap::from([
                                ("gra".to_string(), v),
                                ("gra_shared".to_string(), v - 0.05),
                                ("gold_mean".to_string(), 2.0 * v - 1.0),
                            ]),
                            prompt_outcomes: None,
                        });
                    }
                }
            }
        }
    }
    cells
}

/// The spec a Table 1 manifest gives.
pub fn table1_spec() -> TableSpec {
    let mut spec = TableSpec::new(&["pair", "dataset"], &["objective", "annotation"], "gra");
    spec.avg_row = true;
    spec.scale = 100.0;
    spec.extra_values = vec![
        ExtraValue::Name("gra_shared".to_string()),
        ExtraValue::Scaled {
            value: "gold_mean".to_string(),
            scale: 1.0,
        },
    ];
    spec.paper = Some("table1".to_string());
    spec.claims = vec!["cw > ws".to_string(), "cw > human".to_string()];
    spec.figure = Some(FigureSpec {
        kind: FigureKind::GroupedBars,
        panel: Some("pair".to_string()),
        x: "dataset".to_string(),
        series: vec!["objective".to_string(), "annotation".to_string()],
        ..FigureSpec::default()
    });
    spec
}

/// What `sweep` tells the report about a Table 1 run on the tiny profile.
pub fn table1_context() -> ReportContext {
    ReportContext {
        experiment: "table1".into(),
        title: "Table 1: CW-PO vs WS-DPO vs Human".into(),
        profile: "tiny".into(),
        slots: BTreeMap::from([
            ("weak".to_string(), "tiny-opt-s".to_string()),
            ("strong".to_string(), "tiny-opt-l".to_string()),
        ]),
        seeds: SEEDS.to_vec(),
        notes: vec!["ties: 1.2% of comparisons".into()],
        uncalibrated: BTreeMap::new(),
        artifacts: Vec::new(),
    }
}

/// A fake stage artifact dir `root/<name>` holding `files` (name, content).
pub fn stage_dir(
    root: &std::path::Path,
    name: &str,
    files: &[(&str, String)],
) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, content) in files {
        std::fs::write(dir.join(file), content).unwrap();
    }
    dir
}

/// A cell's artifacts: its labels and (kind, dir) pairs.
pub fn cell_artifacts(
    pairs: &[(&str, &str)],
    dirs: &[(&str, &std::path::Path)],
) -> super::CellArtifacts {
    super::CellArtifacts {
        labels: labels(pairs),
        dirs: dirs
            .iter()
            .map(|(kind, dir)| (kind.to_string(), dir.to_path_buf()))
            .collect(),
    }
}

/// The decoded PNG at `path`.
pub fn decode_png(path: &std::path::Path) -> image::RgbImage {
    image::open(path).expect("a decodable PNG").to_rgb8()
}

/// Whether any pixel of `img` is exactly `colour`.
pub fn has_colour(img: &image::RgbImage, colour: plotters::style::RGBColor) -> bool {
    let plotters::style::RGBColor(r, g, b) = colour;
    img.pixels().any(|p| p.0 == [r, g, b])
}

/// How many pixels of `img` are exactly `colour` (a drawn line or outline
/// has hundreds; a legend swatch or coloured text has fewer).
pub fn count_colour(img: &image::RgbImage, colour: plotters::style::RGBColor) -> usize {
    let plotters::style::RGBColor(r, g, b) = colour;
    img.pixels().filter(|p| p.0 == [r, g, b]).count()
}
