//! One experiment's report: the CSV of each requested metric, the figure, and
//! `report.md` (templates/report/report.md.j2, embedded) with the profile, the
//! models behind the slots, the seeds, our table beside the paper's, and the
//! paper's orderings checked against our run. `report.md` is written last, so
//! its presence means the files it names exist. What it wrote comes back as a
//! [`ReportSummary`] for `results/index.md` ([`super::index`]).
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::atomic::write_bytes_atomic;
use super::compare::{Claim, ClaimCheck, check_claims, tally};
use super::confidence::write_confidence;
use super::csv::write_csv;
use super::curves::{CurvesSummary, write_curves};
use super::figure::{Overlays, draw_figure};
use super::gold_gap::write_gold_gap;
use super::grid::Grid;
use super::histogram::ArtifactFigure;
use super::index::{ReportSummary, headline_table};
use super::paper::PaperTable;
use super::prompt_bootstrap::claim_bootstrap;
use super::spec::TableSpec;
use super::table::{decimals_for, format_summary, grid_to_frame, grid_to_markdown};
use super::{CellArtifacts, CellResult};
use crate::eval::bootstrap::{BOOTSTRAP_RESAMPLES, BootstrapInterval};

const TEMPLATE: &str = include_str!("../../templates/report/report.md.j2");

/// What the report says about the run beyond its cells.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReportContext {
    /// Experiment id; names the output files (`table1.csv`, `table1.png`).
    pub experiment: String,
    pub title: String,
    /// Profile name (`tiny`, `paper`); `tiny` adds the synthetic-stand-in note.
    pub profile: String,
    /// Slot → concrete model (`weak` → `tiny-opt-s`, …).
    pub slots: BTreeMap<String, String>,
    pub seeds: Vec<u64>,
    /// Free sentences for the end of the report (tie rates, device, …).
    pub notes: Vec<String>,
    /// Dataset → why it fails the calibration precondition (the profile's
    /// `fails_calibration`): its rows are marked `†` in tables and figures.
    pub uncalibrated: BTreeMap<String, String>,
    /// Where the finished cells' stage artifacts lie: what the gold-gap,
    /// confidence and training-curve figures read.
    pub artifacts: Vec<CellArtifacts>,
}

/// Template context: everything pre-formatted, so the template only lays out.
#[derive(Serialize)]
struct Page {
    title: String,
    experiment: String,
    profile: String,
    is_tiny: bool,
    /// The real-model smoke profile (`smollm2`): its report says so first.
    is_smoke: bool,
    seeds: String,
    slots: Vec<SlotRow>,
    value: String,
    scale_note: String,
    over: String,
    /// Resamples of the claims' bootstrap over test prompts.
    bootstrap_resamples: usize,
    interval_note: String,
    neutral: Option<String>,
    avg_row: bool,
    single_run: bool,
    table: String,
    csv: String,
    figure: Option<String>,
    paper: Option<PaperSection>,
    group_keys: String,
    claims: Vec<ClaimRow>,
    claims_total: usize,
    claims_held: usize,
    claims_separated: usize,
    claims_paired_separated: usize,
    claims_paired_reversed: usize,
    extra_tables: Vec<ExtraTable>,
    notes: Vec<String>,
    uncalibrated: Vec<UncalibratedRow>,
    gold_gap: Option<ArtifactFigure>,
    gold_gap_compare: Option<(String, String)>,
    confidence: Option<ArtifactFigure>,
    curves: Option<CurvesSummary>,
}

/// A dataset of this report that fails the calibration precondition.
#[derive(Serialize)]
struct UncalibratedRow {
    dataset: String,
    why: String,
}

#[derive(Serialize)]
struct SlotRow {
    slot: String,
    model: String,
}

#[derive(Serialize)]
struct PaperSection {
    title: String,
    source: String,
    table: String,
}

#[derive(Serialize)]
struct ClaimRow {
    row: String,
    group: String,
    claim: String,
    ours: String,
    holds: &'static str,
    separated: &'static str,
    paired: String,
    paired_separated: &'static str,
    /// The bootstrap over test prompts: Δ [95% CI], or — without GRA's
    /// per-prompt outcomes.
    prompt_bootstrap: String,
    paper: String,
    paper_holds: &'static str,
}

#[derive(Serialize)]
struct ExtraTable {
    value: String,
    scale_note: String,
    table: String,
    csv: String,
}

/// Writes `<experiment>.csv` (spec.value), `<experiment>_<metric>.csv` per
/// extra value, `<experiment>.png` if the spec has a figure, and `report.md`
/// into `out_dir`; returns what the index shows of it.
pub fn write_report(
    ctx: &ReportContext,
    spec: &TableSpec,
    cells: &[CellResult],
    paper: Option<&PaperTable>,
    out_dir: &Path,
) -> anyhow::Result<ReportSummary> {
    let context = || format!("report of experiment `{}`", ctx.experiment);
    let grid = Grid::build(spec, cells).with_context(context)?;
    let decimals = decimals_for(spec);
    let uncalibrated = uncalibrated_in(ctx, cells);
    let mark = |grid: &Grid| mark_uncalibrated(grid, &uncalibrated);
    let csv = format!("{}.csv", ctx.experiment);
    write_csv(&mut grid_to_frame(&grid)?, &out_dir.join(&csv)).with_context(context)?;

    let mut extra_tables = Vec::new();
    let mut notes = ctx.notes.clone();
    for extra_value in &spec.extra_values {
        let extra_spec = spec.for_extra(extra_value);
        // A metric no cell has is left out, said in a note: Table 1 asks for
        // `gra_sft_vs_base`, which only a pretrained base (tiny profile)
        // gives; HF models have none. One that only some cells lack is
        // still an error (`Grid::build`).
        if !cells
            .iter()
            .any(|c| c.metrics.contains_key(&extra_spec.value))
        {
            notes.push(format!(
                "No cell has the metric `{}`, so its table is left out (`gra_sft_vs_base` needs a pretrained base model, which only the tiny profile trains).",
                extra_spec.value
            ));
            continue;
        }
        let extra = Grid::build(&extra_spec, cells).with_context(context)?;
        let file = format!("{}_{}.csv", ctx.experiment, extra_spec.value);
        write_csv(&mut grid_to_frame(&extra)?, &out_dir.join(&file)).with_context(context)?;
        extra_tables.push(ExtraTable {
            value: extra_spec.value.clone(),
            scale_note: scale_note(extra_spec.scale),
            table: grid_to_markdown(&mark(&extra), decimals_for(&extra_spec)),
            csv: file,
        });
    }

    let claims: Vec<Claim> = spec
        .claims
        .iter()
        .map(|c| Claim::parse(c))
        .collect::<anyhow::Result<_>>()?;
    let checks = check_claims(&grid, &claims, paper);
    let tallies = tally(&checks);

    let figure = match &spec.figure {
        Some(figure_spec) => {
            let file = format!("{}.png", ctx.experiment);
            let overlays = Overlays {
                paper,
                claims: &checks,
                uncalibrated: Some(&uncalibrated.keys().cloned().collect()),
            };
            draw_figure(figure_spec, spec, cells, overlays, &out_dir.join(&file))
                .with_context(context)?;
            Some(file)
        }
        None => None,
    };

    let gold_gap = match &spec.gold_gap {
        Some(g) => {
            write_gold_gap(g, &ctx.artifacts, &ctx.experiment, out_dir).with_context(context)?
        }
        None => None,
    };
    let confidence = match &spec.confidence {
        Some(c) => {
            write_confidence(c, &ctx.artifacts, &ctx.experiment, out_dir).with_context(context)?
        }
        None => None,
    };
    let curves =
        write_curves(spec, &ctx.artifacts, &ctx.experiment, out_dir).with_context(context)?;

    let paper_section = paper
        .map(|p| -> anyhow::Result<PaperSection> {
            Ok(PaperSection {
                title: p.title.clone(),
                source: p.source.clone(),
                table: grid_to_markdown(
                    &p.grid_relative_to(spec.relative_to.as_ref())?,
                    p.decimals(),
                ),
            })
        })
        .transpose()?;

    let claim_rows: Vec<ClaimRow> = checks
        .iter()
        .map(|c| -> anyhow::Result<ClaimRow> {
            let bootstrap = claim_bootstrap(c, cells, &spec.value, &spec.over, spec.scale)?;
            Ok(claim_row(c, bootstrap, decimals))
        })
        .collect::<anyhow::Result<_>>()?;

    let page = Page {
        title: ctx.title.clone(),
        experiment: ctx.experiment.clone(),
        profile: ctx.profile.clone(),
        is_tiny: ctx.profile == "tiny",
        is_smoke: ctx.profile == "smollm2",
        seeds: ctx
            .seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        slots: ctx
            .slots
            .iter()
            .map(|(slot, model)| SlotRow {
                slot: slot.clone(),
                model: model.clone(),
            })
            .collect(),
        value: spec.value.clone(),
        scale_note: scale_note(spec.scale),
        over: spec.over.clone(),
        bootstrap_resamples: BOOTSTRAP_RESAMPLES,
        interval_note: match &grid.relative_to {
            None => grid.interval.describe(&spec.over),
            Some((key, value)) => format!(
                "{}. Rows marked `Δ vs {value}` show their difference from the `{key} = {value}` row \
                 (`relative_to`): the mean of the per-`{over}` differences and their Student t 95% CI \
                 (paired by `{over}`; no CI when the two rows ran different `{over}` values); the \
                 figure and the claims read levels",
                grid.interval.describe(&spec.over),
                over = spec.over
            ),
        },
        neutral: spec.metric_info().neutral.map(|v| format!("{v}")),
        avg_row: spec.avg_row,
        single_run: !grid.has_any_ci(),
        table: grid_to_markdown(&mark(&grid), decimals),
        csv,
        figure,
        paper: paper_section,
        group_keys: spec.columns[..spec.columns.len() - 1].join(" / "),
        claims_total: checks.len(),
        claims_held: tallies.iter().map(|t| t.holds).sum(),
        claims_separated: tallies.iter().map(|t| t.separated).sum(),
        claims_paired_separated: tallies.iter().map(|t| t.paired_separated).sum(),
        claims_paired_reversed: tallies.iter().map(|t| t.paired_reversed).sum(),
        claims: claim_rows,
        extra_tables,
        notes,
        uncalibrated: uncalibrated
            .iter()
            .map(|(dataset, why)| UncalibratedRow {
                dataset: dataset.clone(),
                why: why.clone(),
            })
            .collect(),
        gold_gap,
        gold_gap_compare: spec.gold_gap.as_ref().map(|g| g.compare.clone()),
        confidence,
        curves,
    };
    let markdown = render_page(&page)?;
    write_bytes_atomic(&out_dir.join("report.md"), markdown.as_bytes()).with_context(context)?;
    // The figures drawn beside the table's, for the index's links.
    let more_figures: Vec<(String, String)> = [
        ("gold gap", page.gold_gap.as_ref().map(|f| f.png.clone())),
        (
            "confidence",
            page.confidence.as_ref().map(|f| f.png.clone()),
        ),
        ("curves", page.curves.as_ref().and_then(|c| c.png.clone())),
    ]
    .into_iter()
    .filter_map(|(label, png)| Some((label.to_string(), png?)))
    .collect();
    let mut files = vec![page.csv.clone()];
    files.extend(page.extra_tables.iter().map(|t| t.csv.clone()));
    files.extend(page.figure.clone());
    for f in [&page.gold_gap, &page.confidence].into_iter().flatten() {
        files.extend([f.png.clone(), f.csv.clone()]);
    }
    files.extend(page.curves.as_ref().and_then(|c| c.png.clone()));
    files.push("report.md".to_string());
    Ok(ReportSummary {
        value: format!("{}{}", spec.value, scale_note(spec.scale)),
        interval: grid.interval,
        headline: headline_table(&mark(&grid), paper, decimals),
        csv: page.csv,
        figure: page.figure,
        report: "report.md".to_string(),
        more_figures,
        claims: tallies,
        files,
    })
}

/// ` (×100)` after a metric's name when it is scaled; empty otherwise.
fn scale_note(scale: f64) -> String {
    if scale == 1.0 {
        String::new()
    } else {
        format!(" (×{scale})")
    }
}

fn render_page(page: &Page) -> anyhow::Result<String> {
    render_template("report.md", TEMPLATE, page)
}

/// Renders `templates/report/<name>.j2` (its text embedded as `template`)
/// with trim_blocks + lstrip_blocks: a line holding only a tag vanishes.
pub(super) fn render_template(
    name: &str,
    template: &str,
    context: impl Serialize,
) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_template(name, template)
        .with_context(|| format!("templates/report/{name}.j2 does not parse"))?;
    let text = env
        .get_template(name)?
        .render(context)
        .with_context(|| format!("templates/report/{name}.j2 failed to render"))?;
    Ok(text)
}

fn claim_row(c: &ClaimCheck, bootstrap: Option<BootstrapInterval>, decimals: usize) -> ClaimRow {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    ClaimRow {
        row: c.row.join(" / "),
        group: c.group.join(" / "),
        claim: c.claim.to_string(),
        ours: format!(
            "{} vs {}",
            format_summary(Some(c.ours_better), decimals),
            format_summary(Some(c.ours_worse), decimals)
        ),
        holds: yes_no(c.holds),
        separated: c.separation.describe(),
        paired: format_summary(c.paired, decimals),
        paired_separated: c.paired_separation.describe(),
        prompt_bootstrap: bootstrap.map_or_else(
            || "—".to_string(),
            |b| {
                format!(
                    "{:.decimals$} [{:.decimals$}, {:.decimals$}]",
                    b.difference, b.low, b.high
                )
            },
        ),
        paper: c
            .paper
            .map(|(b, w)| format!("{b:.1} vs {w:.1}"))
            .unwrap_or_else(|| "—".to_string()),
        paper_holds: c.paper_holds().map(yes_no).unwrap_or("—"),
    }
}

/// The mark of a dataset that fails the calibration precondition.
pub const UNCALIBRATED_MARK: &str = "†";

/// The datasets of `cells` that the profile says fail the calibration
/// precondition, with the reason.
fn uncalibrated_in(ctx: &ReportContext, cells: &[CellResult]) -> BTreeMap<String, String> {
    cells
        .iter()
        .filter_map(|c| c.labels.get("dataset"))
        .filter_map(|d| Some((d.clone(), ctx.uncalibrated.get(d)?.clone())))
        .collect()
}

/// `grid` with `†` after every `dataset` row label in `uncalibrated`.
fn mark_uncalibrated(grid: &Grid, uncalibrated: &BTreeMap<String, String>) -> Grid {
    let mut marked = grid.clone();
    if let Some(at) = grid.row_keys.iter().position(|k| k == "dataset") {
        for row in &mut marked.rows {
            if uncalibrated.contains_key(&row[at]) {
                row[at] = format!("{} {UNCALIBRATED_MARK}", row[at]);
            }
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExtraValue;
    use crate::report::fixtures::*;
    use crate::report::paper_table;

    fn context() -> ReportContext {
        table1_context()
    }

    #[test]
    fn report_has_our_numbers_the_papers_and_the_orderings() {
        let dir = tempfile::tempdir().unwrap();
        let paper = paper_table("table1").unwrap().unwrap();
        write_report(
            &context(),
            &table1_spec(),
            &table1_cells(),
            Some(&paper),
            dir.path(),
        )
        .unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        // the paper's Table 1 averages (OPT DPO Human / WS / CW, Qwen rDPO CW)
        for published in ["| **58.4** | **57.9** | **60.3**", "**77.3**"] {
            assert!(md.contains(published), "missing {published} in\n{md}");
        }
        // ours: the first entry, opt / hh-rlhf / dpo / human
        let v: Vec<f64> = (0..3).map(|s| 100.0 * gra(0, 0, 0, 0, s)).collect();
        let mean = v.iter().sum::<f64>() / 3.0;
        assert!(
            md.contains(&format!("| opt | hh-rlhf | {mean:.1} [")),
            "{md}"
        );
        // the profile, its models, the seeds and the synthetic note
        for needle in [
            "profile `tiny`",
            "| weak | tiny-opt-s |",
            "seeds 0, 1, 2",
            "Synthetic stand-in",
            "ties: 1.2%",
            // which interval, and what the figure's marks mean
            "on the logit scale of the metric's range [0, 100]",
            "neutral value 50 ",
            "White diamonds are the paper's numbers",
        ] {
            assert!(md.contains(needle), "missing {needle}");
        }
        // orderings: 8 rows × 3 objectives × 2 claims; every one holds in the
        // fixture (cw is +3 points per step); the paper has OPT TL;DR DPO CW < Human
        assert!(md.contains("48 of 48 orderings hold in our means"), "{md}");
        assert!(
            md.contains("| opt / tldr | dpo | cw > human | ")
                && md.contains("| 56.6 vs 57.0 | no |"),
            "{md}"
        );
        // every file the report names exists, and no temporary file is left
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "report.md",
                "table1.csv",
                "table1.png",
                "table1_gold_mean.csv",
                "table1_gra_shared.csv"
            ]
        );
        let csv = std::fs::read_to_string(dir.path().join("table1_gra_shared.csv")).unwrap();
        assert!(
            csv.starts_with("pair,dataset,dpo_human,dpo_human_lo,dpo_human_hi,dpo_ws,"),
            "{csv}"
        );
    }

    /// A dataset the profile marks as failing calibration gets `†` on its
    /// rows and its reason under the table; the others stay unmarked.
    #[test]
    fn uncalibrated_datasets_are_marked_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ReportContext {
            uncalibrated: BTreeMap::from([
                (
                    "tldr".to_string(),
                    "clean-label DPO loses to SFT".to_string(),
                ),
                ("not-in-this-table".to_string(), "never shown".to_string()),
            ]),
            ..context()
        };
        write_report(&ctx, &table1_spec(), &table1_cells(), None, dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("| opt | tldr † | "), "{md}");
        assert!(md.contains("| opt | hh-rlhf | "), "{md}");
        assert!(!md.contains("hh-rlhf †"), "{md}");
        assert!(md.contains("`tldr`: clean-label DPO loses to SFT"), "{md}");
        assert!(!md.contains("never shown"), "{md}");
        // Without the profile's flags nothing is marked.
        let plain = tempfile::tempdir().unwrap();
        write_report(
            &context(),
            &table1_spec(),
            &table1_cells(),
            None,
            plain.path(),
        )
        .unwrap();
        let md = std::fs::read_to_string(plain.path().join("report.md")).unwrap();
        assert!(!md.contains(UNCALIBRATED_MARK), "{md}");
    }

    /// With a `[report.gold_gap]` block and cells' artifacts, `report.md`
    /// links the gap figure, its summary and the training curves (and says
    /// how many stages have no trace); without artifacts it says there is
    /// no gap to draw.
    #[test]
    fn report_links_the_figures_drawn_from_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let stages = tempfile::tempdir().unwrap();
        let root = stages.path();
        let score = |name: &str, s: &str| {
            stage_dir(
                root,
                name,
                &[(crate::stage::score::SCORES_FILE, s.to_string())],
            )
        };
        let (cw, human) = (score("cw", "[1.0, 2.0]"), score("human", "[0.5, 2.5]"));
        let traced = stage_dir(
            root,
            "align",
            &[(
                crate::stage::training::TRAIN_TRACE_FILE,
                "step,loss,lr\n1,0.7,0.1\n2,0.6,0.1\n".to_string(),
            )],
        );
        let untraced = stage_dir(root, "old_align", &[]);
        let cell = |annotation: &str, score: &Path, align: &Path| {
            cell_artifacts(
                &[
                    ("pair", "opt"),
                    ("dataset", "hh-rlhf"),
                    ("objective", "dpo"),
                    ("annotation", annotation),
                    ("seed", "0"),
                ],
                &[("score", score), ("align", align)],
            )
        };
        let ctx = ReportContext {
            artifacts: vec![cell("cw", &cw, &traced), cell("human", &human, &untraced)],
            ..context()
        };
        let mut spec = table1_spec();
        spec.gold_gap = Some(crate::report::spec::GoldGapSpec {
            label: "annotation".into(),
            compare: ("cw".into(), "human".into()),
            panel: Some("dataset".into()),
        });
        let summary = write_report(&ctx, &spec, &table1_cells(), None, dir.path()).unwrap();
        // The index links them too.
        assert_eq!(
            summary.more_figures,
            [
                ("gold gap".to_string(), "table1_gold_gap.png".to_string()),
                ("curves".to_string(), "table1_curves.png".to_string())
            ]
        );
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        for needle in [
            "## Per-prompt gold-reward gap: cw − human",
            "![gold gap](table1_gold_gap.png)",
            "| hh-rlhf | 1 | 2 | 50.0 | 50.0 | 0.0 |",
            "CSV: `table1_gold_gap.csv`",
            "## Training curves (`align`)",
            "![training curves](table1_curves.png)",
            "1 of 2 cells' `align` stages",
        ] {
            assert!(md.contains(needle), "missing {needle} in\n{md}");
        }
        for file in [
            "table1_gold_gap.png",
            "table1_gold_gap.csv",
            "table1_curves.png",
        ] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
        let bare = tempfile::tempdir().unwrap();
        write_report(&context(), &spec, &table1_cells(), None, bare.path()).unwrap();
        let md = std::fs::read_to_string(bare.path().join("report.md")).unwrap();
        assert!(md.contains("no gap figure"), "{md}");
        assert!(!md.contains("Training curves"), "{md}");
    }

    #[test]
    fn paper_profile_has_no_synthetic_note_and_single_seed_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ReportContext {
            profile: "paper".into(),
            seeds: vec![0],
            ..context()
        };
        let cells: Vec<_> = table1_cells()
            .into_iter()
            .filter(|c| c.labels["seed"] == "0")
            .collect();
        let mut spec = table1_spec();
        spec.figure = None;
        write_report(&ctx, &spec, &cells, None, dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(!md.contains("Synthetic stand-in"));
        assert!(md.contains("Every entry ran a single seed"), "{md}");
        assert!(md.contains("0 of 48 are separated"), "{md}");
        assert!(!dir.path().join("table1.png").exists());
    }

    /// Regression (found by the `smollm2` run): Table 1's report asks for
    /// `gra_sft_vs_base`, which HF-model cells never have, and writing the
    /// report failed. A metric no cell has is now a note; one that some
    /// cells have and others lack still fails.
    #[test]
    fn an_extra_value_no_cell_has_is_a_note_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = table1_spec();
        spec.figure = None;
        spec.extra_values
            .push(ExtraValue::Name("gra_sft_vs_base".to_string()));
        let mut cells = table1_cells();
        for c in &mut cells {
            c.metrics.remove("gra_sft_vs_base");
        }
        write_report(&context(), &spec, &cells, None, dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            md.contains("No cell has the metric `gra_sft_vs_base`"),
            "{md}"
        );
        assert!(!dir.path().join("table1_gra_sft_vs_base.csv").exists());

        cells[0].metrics.insert("gra_sft_vs_base".into(), 0.5);
        let err = write_report(&context(), &spec, &cells, None, dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("has no metric `gra_sft_vs_base`"),
            "{err:#}"
        );
    }
}
