//! `results/index.md`: every experiment of a run on one page, so a reader
//! sees at a glance what reproduced. Per experiment: its headline numbers
//! beside the paper's, each claim's verdict with whether the CIs separate,
//! and links to its CSV, PNG and `report.md`. Written after `sweep run` and
//! by `sweep report`, from the same cells as the reports
//! (templates/report/index.md.j2, embedded).
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::atomic::write_bytes_if_changed;
use super::compare::ClaimTally;
use super::grid::{AVG_LABEL, Grid};
use super::paper::PaperTable;
use super::render::render_template;
use super::stats::Interval;
use super::table::format_summary;

const TEMPLATE: &str = include_str!("../../templates/report/index.md.j2");

/// At most this many rows of an experiment's table go into the index; the
/// rest are in its `report.md`.
pub const HEADLINE_ROWS: usize = 8;

/// What [`super::write_report`] wrote for one experiment, as the index shows
/// it; kept in the report's stamp ([`super::stamp`]) for the runs that keep
/// the report instead of rendering it again.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReportSummary {
    /// The table's metric and scale (`gra (×100)`).
    pub value: String,
    pub interval: Interval,
    /// Markdown table of the headline rows ([`headline_table`]).
    pub headline: String,
    /// File names inside the experiment's directory.
    pub csv: String,
    pub figure: Option<String>,
    pub report: String,
    /// Other figures of the report (label, PNG file name): the gold-gap
    /// and confidence histograms, the training curves.
    pub more_figures: Vec<(String, String)>,
    pub claims: Vec<ClaimTally>,
    /// Every file written into the experiment's dir, `report.md` last: what
    /// a kept report must still have.
    pub files: Vec<String>,
}

/// One experiment of the plan, reported or not.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The experiment's name: its directory under `results/`.
    pub experiment: String,
    pub title: String,
    pub cells_finished: usize,
    pub cells_total: usize,
    /// `None` when the experiment has no `[report]` block or no finished cell.
    pub report: Option<ReportSummary>,
}

/// The headline of a table: its `Avg.` rows where it has them (the paper's
/// own summary rows), every row otherwise, at most [`HEADLINE_ROWS`]. Each
/// entry is `ours [CI] · paper` where the paper publishes the number.
pub fn headline_table(grid: &Grid, paper: Option<&PaperTable>, decimals: usize) -> String {
    let is_avg = |row: &Vec<String>| row.last().is_some_and(|l| l == AVG_LABEL);
    let mut rows: Vec<usize> = (0..grid.rows.len())
        .filter(|&r| is_avg(&grid.rows[r]))
        .collect();
    if rows.is_empty() {
        rows = (0..grid.rows.len()).collect();
    }
    let left = rows.len().saturating_sub(HEADLINE_ROWS);
    rows.truncate(HEADLINE_ROWS);

    let mut header: Vec<String> = grid.row_keys.clone();
    header.extend(grid.columns.iter().map(|c| c.join(" ")));
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        let row = &grid.rows[r];
        let mut line = row.clone();
        for (c, column) in grid.columns.iter().enumerate() {
            let labels: BTreeMap<String, String> = grid
                .row_keys
                .iter()
                .chain(&grid.column_keys)
                .cloned()
                .zip(row.iter().chain(column).cloned())
                .collect();
            let reference = grid.reference_of(row);
            let ours = match reference {
                Some(_) => super::table::format_delta(grid.entries[r][c], decimals),
                None => format_summary(grid.entries[r][c], decimals),
            };
            // A delta row sets ours beside the paper's delta.
            let theirs = paper.and_then(|p| {
                let value = p.lookup(&labels)?;
                match &reference {
                    None => Some(value.to_string()),
                    Some(reference) => {
                        let mut base = labels.clone();
                        for (k, v) in grid.row_keys.iter().zip(reference) {
                            base.insert(k.clone(), v.clone());
                        }
                        let decimals = p.decimals();
                        Some(format!("{:+.decimals$}", value - p.lookup(&base)?))
                    }
                }
            });
            line.push(match theirs {
                Some(theirs) => format!("{ours} · paper {theirs}"),
                None => ours,
            });
        }
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    if left > 0 {
        out.push_str(&format!("\n{left} more rows in the report.\n"));
    }
    out
}

/// Template context of the index page.
#[derive(Serialize)]
struct Page {
    profile: String,
    is_tiny: bool,
    experiments: Vec<ExperimentSection>,
}

#[derive(Serialize)]
struct ExperimentSection {
    name: String,
    title: String,
    cells: String,
    reported: bool,
    value: String,
    interval: &'static str,
    headline: String,
    /// Paths relative to `results/`.
    csv: String,
    figure: Option<String>,
    report: String,
    /// `[label](path)` links to the report's other figures, ` · `-joined.
    more_figures: String,
    /// One line per claim for the overview (`cw > ws: holds in 5 of 6`).
    verdicts: String,
    claims: Vec<ClaimLine>,
}

#[derive(Serialize)]
struct ClaimLine {
    claim: String,
    verdict: String,
    /// Entries whose paired per-seed difference separates (and reversed).
    paired: String,
    separated: String,
    paper: String,
}

/// Writes `<results>/index.md` for `entries` (profile `tiny` adds the
/// synthetic-stand-in note).
pub fn write_index(results: &Path, profile: &str, entries: &[IndexEntry]) -> anyhow::Result<()> {
    let page = Page {
        profile: profile.to_string(),
        is_tiny: profile == "tiny",
        experiments: entries.iter().map(section).collect(),
    };
    let text = render_template("index.md", TEMPLATE, &page)?;
    // Most runs change nothing it shows: then it is left alone.
    write_bytes_if_changed(&results.join("index.md"), text.as_bytes())?;
    Ok(())
}

fn section(entry: &IndexEntry) -> ExperimentSection {
    let at = |file: &str| format!("{}/{file}", entry.experiment);
    let cells = format!("{} of {}", entry.cells_finished, entry.cells_total);
    let Some(report) = &entry.report else {
        return ExperimentSection {
            name: entry.experiment.clone(),
            title: entry.title.clone(),
            cells,
            reported: false,
            value: String::new(),
            interval: "",
            headline: String::new(),
            csv: String::new(),
            figure: None,
            report: String::new(),
            more_figures: String::new(),
            verdicts: String::new(),
            claims: Vec::new(),
        };
    };
    let claims: Vec<ClaimLine> = report.claims.iter().map(claim_line).collect();
    ExperimentSection {
        name: entry.experiment.clone(),
        title: entry.title.clone(),
        cells,
        reported: true,
        value: report.value.clone(),
        interval: match report.interval {
            Interval::StudentT => "Student t",
            Interval::LogitT { .. } => "logit-scale t",
        },
        headline: report.headline.clone(),
        csv: at(&report.csv),
        figure: report.figure.as_deref().map(at),
        report: at(&report.report),
        more_figures: report
            .more_figures
            .iter()
            .map(|(label, png)| format!(" · [{label}]({})", at(png)))
            .collect(),
        verdicts: claims
            .iter()
            .map(|c| format!("{}: {}", c.claim, c.verdict))
            .collect::<Vec<_>>()
            .join("; "),
        claims,
    }
}

fn claim_line(t: &ClaimTally) -> ClaimLine {
    let of = |separated: usize, reversed: usize| {
        if reversed > 0 {
            format!("{separated} of {} (reversed: {reversed})", t.entries)
        } else {
            format!("{separated} of {}", t.entries)
        }
    };
    ClaimLine {
        claim: t.claim.to_string(),
        verdict: t.verdict(),
        paired: of(t.paired_separated, t.paired_reversed),
        separated: of(t.separated, t.reversed),
        paper: if t.paper_entries == 0 {
            "—".to_string()
        } else {
            format!("holds in {} of {}", t.paper_holds, t.paper_entries)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;
    use crate::report::{paper_table, write_report};

    #[test]
    fn index_lists_every_experiment_with_numbers_verdicts_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let paper = paper_table("table1").unwrap().unwrap();
        let summary = write_report(
            &table1_context(),
            &table1_spec(),
            &table1_cells(),
            Some(&paper),
            &dir.path().join("table1"),
        )
        .unwrap();
        let entries = [
            IndexEntry {
                experiment: "table1".into(),
                title: "Table 1: CW-PO vs WS-DPO vs Human".into(),
                cells_finished: 162,
                cells_total: 162,
                report: Some(summary),
            },
            IndexEntry {
                experiment: "fig3".into(),
                title: "Figure 3".into(),
                cells_finished: 0,
                cells_total: 12,
                report: None,
            },
        ];
        write_index(dir.path(), "tiny", &entries).unwrap();
        let md = std::fs::read_to_string(dir.path().join("index.md")).unwrap();

        // the headline: the Avg. rows, ours beside the paper's (OPT DPO Human 58.4)
        let v: Vec<f64> = (0..3)
            .map(|s| (0..3).map(|d| 100.0 * gra(0, d, 0, 0, s)).sum::<f64>() / 3.0)
            .collect();
        let mean = v.iter().sum::<f64>() / 3.0;
        let needle = format!("| opt | Avg. | {mean:.1} [");
        assert!(md.contains(&needle), "missing {needle} in\n{md}");
        assert!(md.contains("· paper 58.4 |"), "{md}");
        assert!(!md.contains("| opt | tldr |"), "only Avg. rows: {md}");
        // each claim's verdict and separation: the fixture's cw is 3 points
        // above ws at every entry, its seeds spread ±6: all hold, none
        // separate, not even paired (per-seed cw − ws = 3, 5, 2 points: a
        // t interval of ±3.8 around 3.3 includes 0). The paper: CW ≤ WS at OPT UFB DPO (63.1 vs 63.4) and Qwen
        // HH-RLHF DPO (80.6 vs 81.4); CW < Human at OPT TL;DR DPO (56.6 vs 57.0).
        assert!(
            md.contains(
                "| cw > ws | holds everywhere (24) | 0 of 24 | 0 of 24 | holds in 22 of 24 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| cw > human | holds everywhere (24) | 0 of 24 | 0 of 24 | holds in 23 of 24 |"
            ),
            "{md}"
        );

        // links, relative to results/, to files that exist
        for link in [
            "(table1/table1.csv)",
            "(table1/table1.png)",
            "(table1/report.md)",
        ] {
            assert!(md.contains(link), "missing {link}");
            let file = link.trim_matches(|c| c == '(' || c == ')');
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        // an experiment without results is listed and says so
        assert!(md.contains("fig3"), "{md}");
        assert!(md.contains("0 of 12"), "{md}");
        assert!(md.contains("Synthetic stand-in"), "{md}");
    }
}
