//! Reports from the cache only: for each experiment cell, its coordinates
//! and the metrics of its last stage (and of its weak annotator's
//! evaluation), handed to `report::write_report` for tables, figures and
//! `report.md`.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cache::CacheRead;
use crate::eval::gra::PromptOutcomes;
use crate::plan::Plan;
use crate::report::{
    CellArtifacts, CellResult, IndexEntry, ReportContext, paper_table, write_index, write_report,
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

/// Collects every experiment's cells whose last stage is cached.
pub fn collect(plan: &Plan, cache: &dyn CacheRead) -> Result<Vec<ExperimentResults>> {
    let metrics_of = |key: &str| -> Result<Option<BTreeMap<String, f64>>> {
        Ok(cache.get(key)?.map(|r| r.metrics))
    };
    let mut out = Vec::new();
    for exp in &plan.experiments {
        let (mut cells, mut unfinished) = (Vec::new(), Vec::new());
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
            // Only claims read them (the paired bootstrap over test prompts).
            let has_claims = exp.report.as_ref().is_some_and(|r| !r.claims.is_empty());
            let prompt_outcomes = match has_claims {
                true => prompt_outcomes_of(cache, &cell.result)?,
                false => None,
            };
            cells.push(CellResult {
                labels: cell.coords.clone(),
                metrics,
                prompt_outcomes,
            });
        }
        out.push(ExperimentResults {
            name: exp.name.clone(),
            title: exp.title.clone(),
            profile: plan.profile.clone(),
            cells,
            unfinished,
        });
    }
    Ok(out)
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

/// Writes `<results>/<experiment>/cells.json` for every experiment and, for
/// those with a `[report]` block and finished cells, the report module's
/// tables, figures and `report.md`; then `<results>/index.md` over them all.
pub fn write_reports(plan: &Plan, cache: &dyn CacheRead, results: &Path) -> Result<()> {
    let mut index = Vec::new();
    for (exp, found) in plan.experiments.iter().zip(collect(plan, cache)?) {
        let dir = crate::safe_name::output_dir(results, &exp.name)?;
        let json = serde_json::to_string_pretty(&found)?;
        crate::report::atomic::write_bytes_atomic(&dir.join("cells.json"), json.as_bytes())?;
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
            let dirs = upstream_dirs(plan, cache, &cell.result)?;
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
        let paper = match &spec.paper {
            Some(id) => paper_table(id)?,
            None => None,
        };
        let summary =
            write_report(&ctx, spec, &found.cells, paper.as_ref(), &dir).with_context(|| {
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
