//! The numbers behind the reports, read from the cache only: for each
//! experiment cell, its coordinates and the metrics of its last stage (and of
//! its weak annotator's evaluation). `report` turns these into tables and figures.
use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::cache::Cache;
use crate::plan::Plan;

#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub coords: BTreeMap<String, String>,
    /// Readable name of the cell's last stage.
    pub stage: String,
    /// `None` when that stage is not in the cache yet.
    pub metrics: Option<BTreeMap<String, f64>>,
    pub weak_eval: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResults {
    pub name: String,
    pub title: String,
    pub profile: String,
    pub report: crate::manifest::report::ReportSpec,
    pub cells: Vec<CellResult>,
}

pub fn collect(plan: &Plan, cache: Option<&Cache>) -> Result<Vec<ExperimentResults>> {
    let metrics_of = |key: &str| -> Result<Option<BTreeMap<String, f64>>> {
        Ok(match cache {
            Some(c) => c.get(key)?.map(|r| r.metrics),
            None => None,
        })
    };
    plan.experiments
        .iter()
        .map(|exp| {
            let cells = exp
                .cells
                .iter()
                .map(|cell| {
                    Ok(CellResult {
                        coords: cell.coords.clone(),
                        stage: plan
                            .node(&cell.result)
                            .map(|n| n.name.clone())
                            .unwrap_or_default(),
                        metrics: metrics_of(&cell.result)?,
                        weak_eval: match &cell.weak_eval {
                            Some(k) => metrics_of(k)?,
                            None => None,
                        },
                    })
                })
                .collect::<Result<_>>()?;
            Ok(ExperimentResults {
                name: exp.name.clone(),
                title: exp.title.clone(),
                profile: plan.profile.clone(),
                report: exp.report.clone(),
                cells,
            })
        })
        .collect()
}
