//! Reports from the cache only: for each experiment cell, its coordinates
//! and the metrics of its last stage (and of its weak annotator's
//! evaluation), handed to `report::write_report` for tables, figures and
//! `report.md`. Every cache lookup made for a report goes through a
//! [`ReadLog`], so the report's stamp (`report::stamp`) covers exactly the
//! stages it read, and `sweep run` renders only the reports whose inputs
//! changed.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cache::read_log::ReadLog;
use crate::cache::{CacheRead, Record};
use crate::eval::gra::PromptOutcomes;
use crate::plan::{CellPlan, ExperimentPlan, Plan};
use crate::report::atomic::write_bytes_if_changed;
use crate::report::stamp::{Render, ReportKey, render_unless_kept};
use crate::report::{
    CellArtifacts, CellResult, IndexEntry, ReportContext, TableSpec, paper_table, write_index,
    write_report,
};
use crate::stage::metric::PROMPT_OUTCOMES_FILE;

/// How a cell's stages hang together, from its result back: (kind, input
/// role, kind of that input). Followed by role, not by search, since a
/// metric also reads its references' scores.
const UPSTREAM: &[(&str, &str, &str)] = &[
    ("metric", "score", "score"),
    ("score", "generation", "generate"),
    ("generate", "policy", "align"),
    ("generate", "policy", "online_round"),
    ("align", "sft", "sft"),
    ("online_round", "sft", "sft"),
    ("online_round", "weak", "weak_train"),
    ("align", "annotation", "annotate"),
    ("annotate", "weak", "weak_train"),
    ("weak_eval", "weak", "weak_train"),
];

/// The artifact dirs of the cached stages upstream of `result` along
/// [`UPSTREAM`], by kind (the result's own kind included).
pub fn upstream_dirs(
    plan: &Plan,
    cache: &dyn CacheRead,
    result: &str,
) -> Result<BTreeMap<String, std::path::PathBuf>> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    if let Some(node) = plan.node(result) {
        keys.insert(node.kind.clone(), result.to_string());
    }
    for (from, role, to) in UPSTREAM {
        let input = keys
            .get(*from)
            .and_then(|k| plan.node(k))
            .and_then(|n| n.inputs.get(*role));
        if let Some(input) = input
            && plan.node(input).is_some_and(|n| n.kind == *to)
        {
            keys.insert(to.to_string(), input.clone());
        }
    }
    let mut dirs = BTreeMap::new();
    for (kind, key) in keys {
        if let Some(record) = cache.get(&key)? {
            dirs.insert(kind, cache.artifact_dir(&record));
        }
    }
    Ok(dirs)
}

/// One experiment's finished cells, as the report module takes them.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResults {
    pub name: String,
    pub title: String,
    pub profile: String,
    pub cells: Vec<CellResult>,
    /// Readable names of cells' last stages that are not cached yet.
    pub unfinished: Vec<String>,
}

/// The cells of `exp` whose last stage is cached, and their plans (in the
/// same order). Their per-prompt outcomes are left out: only a report that
/// is rendered reads them ([`load_prompt_outcomes`]).
pub fn collect<'p>(
    plan: &Plan,
    exp: &'p ExperimentPlan,
    cache: &dyn CacheRead,
) -> Result<(ExperimentResults, Vec<&'p CellPlan>)> {
    let metrics_of = |key: &str| -> Result<Option<BTreeMap<String, f64>>> {
        Ok(cache.get(key)?.map(|r| r.metrics))
    };
    let (mut cells, mut finished, mut unfinished) = (Vec::new(), Vec::new(), Vec::new());
    for cell in &exp.cells {
        let Some(mut metrics) = metrics_of(&cell.result)? else {
            unfinished.push(
                plan.node(&cell.result)
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
            );
            continue;
        };
        for key in cell.weak_eval.iter().chain(&cell.win_rate) {
            metrics.extend(metrics_of(key)?.unwrap_or_default());
        }
        cells.push(CellResult {
            labels: cell.coords.clone(),
            metrics,
            prompt_outcomes: None,
        });
        finished.push(cell);
    }
    let found = ExperimentResults {
        name: exp.name.clone(),
        title: exp.title.clone(),
        profile: plan.profile.clone(),
        cells,
        unfinished,
    };
    Ok((found, finished))
}

/// Sets each cell's per-prompt outcomes, for the claims' paired bootstrap
/// over test prompts (a report without claims reads none). `finished` are
/// the cells' plans, as [`collect`] returns them.
fn load_prompt_outcomes(
    cache: &dyn CacheRead,
    spec: &TableSpec,
    cells: &mut [CellResult],
    finished: &[&CellPlan],
) -> Result<()> {
    if spec.claims.is_empty() {
        return Ok(());
    }
    for (cell, plan) in cells.iter_mut().zip(finished) {
        cell.prompt_outcomes = prompt_outcomes_of(cache, &plan.result)?;
    }
    Ok(())
}

/// The metric stage's per-prompt outcomes of the cell whose last stage is
/// `key` (`None` for a cell that ends before `metric`, or an older cache).
fn prompt_outcomes_of(cache: &dyn CacheRead, key: &str) -> Result<Option<Arc<PromptOutcomes>>> {
    let Some(record) = cache.get(key)? else {
        return Ok(None);
    };
    let path = cache.artifact_dir(&record).join(PROMPT_OUTCOMES_FILE);
    if record.kind != "metric" || !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let outcomes = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not the metric stage's per-prompt outcomes; delete the file's stage dir \
             and rerun `sweep run` to recompute it",
            path.display()
        )
    })?;
    Ok(Some(Arc::new(outcomes)))
}

/// Everything one report is rendered from, hashed into its stamp's key
/// ([`ReportKey`]); the paper's table and the templates are part of the
/// binary, which the key covers too.
#[derive(Serialize)]
struct ReportInputs<'a> {
    ctx: &'a ReportContext,
    spec: &'a TableSpec,
    cells: &'a [CellResult],
    /// Every cache lookup made for the report, by stage key: the records
    /// (metrics, and checksums of the artifact files read), or `None` for a
    /// stage not cached yet.
    read: &'a BTreeMap<String, Option<Record>>,
}

/// Writes `<results>/<experiment>/cells.json` for every experiment and, for
/// those with a `[report]` block and finished cells, the report module's
/// tables, figures and `report.md`; then `<results>/index.md` over them all.
/// Under [`Render::Changed`] a report whose inputs match its stamp is kept
/// as it is ([`crate::report::stamp`]); files whose content came out the
/// same are not rewritten.
pub fn write_reports(
    plan: &Plan,
    cache: &dyn CacheRead,
    results: &Path,
    render: Render,
) -> Result<()> {
    let mut index = Vec::new();
    for exp in &plan.experiments {
        let log = ReadLog::new(cache);
        let (found, finished) = collect(plan, exp, &log)?;
        let dir = crate::safe_name::output_dir(results, &exp.name)?;
        let json = serde_json::to_string_pretty(&found)?;
        write_bytes_if_changed(&dir.join("cells.json"), json.as_bytes())?;
        let mut entry = IndexEntry {
            experiment: exp.name.clone(),
            title: exp.title.clone(),
            cells_finished: found.cells.len(),
            cells_total: exp.cells.len(),
            report: None,
        };
        let Some(spec) = exp.report.as_ref().filter(|_| !found.cells.is_empty()) else {
            index.push(entry);
            continue;
        };
        let mut seeds: Vec<u64> = exp.cells.iter().map(|c| c.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let mut slots = BTreeMap::new();
        for cell in &exp.cells {
            for (role, name) in [("weak", &cell.weak_model), ("strong", &cell.strong_model)] {
                let what = plan.models.get(name).cloned().unwrap_or_default();
                slots.insert(format!("{role} `{name}`"), what);
            }
            let label = |k: &str| cell.coords.get(k).map_or("", String::as_str);
            slots.insert(
                format!("judge `{}` of `{}`", label("gold"), label("dataset")),
                cell.gold.clone(),
            );
        }
        let mut notes = Vec::new();
        if !found.unfinished.is_empty() {
            notes.push(format!(
                "{} of {} cells are not finished yet",
                found.unfinished.len(),
                exp.cells.len()
            ));
        }
        let mut artifacts = Vec::new();
        for cell in &exp.cells {
            let dirs = upstream_dirs(plan, &log, &cell.result)?;
            if !dirs.is_empty() {
                artifacts.push(CellArtifacts {
                    labels: cell.coords.clone(),
                    dirs,
                });
            }
        }
        let ctx = ReportContext {
            experiment: exp.name.clone(),
            title: exp.title.clone(),
            profile: plan.profile.clone(),
            slots,
            seeds,
            notes,
            uncalibrated: plan.uncalibrated.clone(),
            artifacts,
        };
        let key = ReportKey::of(&ReportInputs {
            ctx: &ctx,
            spec,
            cells: &found.cells,
            read: &log.into_read(),
        })?;
        let mut cells = found.cells;
        let summary = render_unless_kept(&dir, &key, render, || {
            load_prompt_outcomes(cache, spec, &mut cells, &finished)?;
            let paper = match &spec.paper {
                Some(id) => paper_table(id)?,
                None => None,
            };
            write_report(&ctx, spec, &cells, paper.as_ref(), &dir)
        })
        .with_context(|| {
            format!(
                "writing the report of experiment `{}` into {}",
                exp.name,
                dir.display()
            )
        })?;
        entry.report = Some(summary);
        index.push(entry);
    }
    write_index(results, &plan.profile, &index)
        .with_context(|| format!("writing {}", results.join("index.md").display()))
}
