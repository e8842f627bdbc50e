//! Figures 4, 5 and 7 end to end on a CI-sized world: each shipped manifest
//! (`experiments/fig{4,5,7}.toml`) cut to one pair, one seed and one or two
//! datasets ([`ci_sized`]), run by the real `sweep`, and its figure's PNG
//! and CSV checked against the cells that made them:
//! - fig4: one point (column) per threshold kept, GRA in [0, 100];
//! - fig5: one gold-reward gap per test prompt and sample of the compared
//!   cells (24 prompts × 4 samples of the tiny profile);
//! - fig7: the confidence histogram counts every D_U label of each weak
//!   annotator once (the `annotate` stages' labels).
//!
//! The full-size figures: `sweep run experiments/fig4.toml` (etc., README).
mod common;
use std::path::Path;

use common::sweep_ok;
use common::table1_ci::{ci_sized, small_profile};

/// Test prompts of the CI-sized world ([`ci_sized`]) and samples per prompt (tiny profile).
const TEST_PROMPTS: usize = 24;
const SAMPLES: usize = 4;

/// Runs `experiments/<name>.toml` CI-sized with `axes`, stopping after the
/// stage kind `until` if given (the CI manifest's own `[experiment]` block
/// replaces the shipped one's, `until` included); returns its report dir.
fn run_ci(dir: &Path, name: &str, axes: &str, until: Option<&str>) -> std::path::PathBuf {
    let profile = small_profile(dir);
    let title = format!("{name} (CI-sized world)");
    let manifest = ci_sized(dir, name, &title, axes);
    if let Some(kind) = until {
        let text = std::fs::read_to_string(&manifest).unwrap();
        let header = format!("title = \"{title}\"\n");
        assert!(text.contains(&header), "{text}");
        let text = text.replace(&header, &format!("{header}until = \"{kind}\"\n"));
        std::fs::write(&manifest, text).unwrap();
    }
    let (manifest, profile) = (manifest.to_str().unwrap(), profile.to_str().unwrap());
    sweep_ok(dir, &["run", manifest, "--profile", profile]);
    dir.join("results").join(name)
}

/// A CSV's header and rows, split at commas (the fields read here hold none).
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = body
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    (lines.next().expect("a header"), lines.collect())
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 1000,
        "{} is not a drawn PNG",
        path.display()
    );
}

#[test]
fn fig4_has_one_point_per_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ci(
        tmp.path(),
        "fig4",
        "strong_model = [\"opt-1.3b\"]\npair = [\"opt\"]\ndataset = [\"harmless\"]\n\
         annotation = [\"top30\", \"top60\", \"cw\"]\nseed = [0]\n",
        None,
    );
    assert_png(&out.join("fig4.png"));
    let (header, rows) = csv(&out.join("fig4.csv"));
    let mut want = vec!["pair".to_string(), "dataset".to_string()];
    for a in ["top30", "top60", "cw"] {
        want.extend([a.to_string(), format!("{a}_lo"), format!("{a}_hi")]);
    }
    assert_eq!(header, want, "one column group per threshold, CW last");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..2], ["opt".to_string(), "harmless".to_string()]);
    for (name, value) in header.iter().zip(&rows[0]).skip(2).step_by(3) {
        let gra: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {value:?}"));
        assert!((0.0..=100.0).contains(&gra), "{name} = {gra}");
    }
}

#[test]
fn fig5_has_one_gap_per_test_prompt_and_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ci(
        tmp.path(),
        "fig5",
        "strong_model = [\"qwen2.5-7b\"]\npair = [\"qwen\"]\ndataset = [\"harmless\", \"helpful\"]\n\
         annotation = [\"human\", \"cw\"]\nseed = [0]\n",
        None,
    );
    assert_png(&out.join("fig5_gold_gap.png"));
    let (header, rows) = csv(&out.join("fig5_gold_gap.csv"));
    assert_eq!(
        header[..4],
        ["dataset", "cell pairs", "prompts", "cw ahead (%)"]
    );
    let datasets: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(datasets, ["harmless", "helpful"]);
    for row in &rows {
        assert_eq!(
            row[1], "1",
            "one (cw, human) cell pair per dataset: {row:?}"
        );
        assert_eq!(row[2], (TEST_PROMPTS * SAMPLES).to_string(), "{row:?}");
        let ahead: f64 = row[3].parse().unwrap();
        assert!((0.0..=100.0).contains(&ahead), "{row:?}");
    }
}

#[test]
fn fig7_histograms_count_every_d_u_label_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ci(
        tmp.path(),
        "fig7",
        "pair = [\"opt\"]\ndataset = [\"harmless\", \"helpful\"]\nseed = [0]\n",
        Some("annotate"),
    );
    // Only what the figure needs ran: no policy was trained.
    assert!(!tmp.path().join("results/cache/align").exists());
    assert_png(&out.join("fig7_confidence.png"));
    let (header, rows) = csv(&out.join("fig7_confidence.csv"));
    assert_eq!(header[..3], ["dataset", "weak annotators", "labels"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Every annotate stage's D_U labels, each annotator once.
    let annotate = tmp.path().join("results/cache/annotate");
    let mut d_u: Vec<usize> = std::fs::read_dir(&annotate)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("sweep-record.json").is_file())
        .map(|d| {
            let labels: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("labels.json")).unwrap())
                    .unwrap();
            labels.as_array().unwrap().len()
        })
        .collect();
    d_u.sort();
    let mut counted: Vec<usize> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    counted.sort();
    assert_eq!(
        counted, d_u,
        "histogram counts vs the annotate stages' D_U labels"
    );
    for row in &rows {
        assert_eq!(row[1], "1", "{row:?}");
        assert!(row[2].parse::<usize>().unwrap() > 0, "{row:?}");
    }
}
