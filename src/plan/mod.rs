//! Plan: typed experiments → ONE petgraph DAG of stages. Identical stages
//! (same key) across cells and experiments are one node; each node also has
//! a readable name such as `align/hh-rlhf/opt/cw-dpo/seed0`.
pub mod key;
pub mod limit;
pub mod pipeline;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Result, bail};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::manifest::resolve::Experiment;
use crate::profile::Profile;
use crate::report::TableSpec;
pub use crate::spec::node::{Key, Node};

/// What one cell of an experiment produced: its final node (the metric
/// stage, or the `until` stage's node) for the report.
#[derive(Debug, Clone, Serialize)]
pub struct CellPlan {
    pub coords: BTreeMap<String, String>,
    /// Key of the cell's last stage.
    pub result: Key,
    /// Key of the weak annotator's evaluation, when the cell has one.
    pub weak_eval: Option<Key>,
    /// Key of the cell's `win_rate` stage (`metric.win_rate`), when planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub win_rate: Option<Key>,
    pub seed: u64,
    /// Profile slot names of the cell's weak and strong models.
    pub weak_model: String,
    pub strong_model: String,
    /// The judge of the cell's generations, described for reports.
    pub gold: String,
}

#[derive(Debug, Clone)]
pub struct ExperimentPlan {
    pub name: String,
    pub title: String,
    pub axes: Vec<String>,
    pub cells: Vec<CellPlan>,
    pub report: Option<TableSpec>,
    /// Stages this experiment needs if it were planned on its own and cell
    /// by cell (the naive count the dedup ratio compares against).
    pub naive_stage_count: usize,
}

/// The DAG. Edges point from an input to the stage that reads it.
#[derive(Debug, Default)]
pub struct Plan {
    pub graph: DiGraph<Node, String>,
    pub by_key: HashMap<Key, NodeIndex>,
    /// Readable names in use (they are unique).
    names: HashSet<String>,
    pub experiments: Vec<ExperimentPlan>,
    pub profile: String,
    /// Model slot name → what it is in this profile (for reports).
    pub models: BTreeMap<String, String>,
    /// Dataset slot name → why it fails the calibration precondition
    /// (the profile's `fails_calibration`), for reports.
    pub uncalibrated: BTreeMap<String, String>,
}

impl Plan {
    /// Compiles `experiments` under `profile` into one DAG, stopping with
    /// exit 2 once it holds more than `max_stages` stages ([`limit`]).
    pub fn build(experiments: &[Experiment], profile: &Profile, max_stages: usize) -> Result<Plan> {
        let budget = limit::StageBudget { limit: max_stages };
        let mut plan = Plan {
            profile: profile.name.clone(),
            uncalibrated: profile
                .datasets
                .iter()
                .filter_map(|(name, slot)| Some((name.clone(), slot.fails_calibration.clone()?)))
                .collect(),
            ..Plan::default()
        };
        for exp in experiments {
            let mut cells = Vec::new();
            let mut naive = 0;
            for (done, cell) in exp.cells.iter().enumerate() {
                budget.check(plan.graph.node_count(), exp, done)?;
                let mut builder = pipeline::CellBuilder::new(&mut plan, exp.until.as_deref());
                let (result, weak_eval) = builder.add_cell(cell, profile)?;
                naive += builder.stages_added;
                cells.push(CellPlan {
                    coords: cell.coords.clone(),
                    result,
                    weak_eval,
                    win_rate: builder.win_rate.clone(),
                    seed: cell.settings.seed,
                    weak_model: cell.weak_model.0.clone(),
                    strong_model: cell.strong_model.0.clone(),
                    gold: cell.gold.describe(),
                });
                for name in [&cell.weak_model.0, &cell.strong_model.0] {
                    let slot = &profile.models[name];
                    let what = match &slot.tiny {
                        Some(t) => format!(
                            "tiny stand-in for {} ({:?}, d{} × {} layers)",
                            slot.stands_for, t.arch, t.hidden_size, t.num_layers
                        ),
                        None => slot.stands_for.clone(),
                    };
                    plan.models.insert(name.clone(), what);
                }
            }
            budget.check(plan.graph.node_count(), exp, exp.cells.len())?;
            plan.experiments.push(ExperimentPlan {
                name: exp.name.clone(),
                title: exp.title.clone(),
                axes: exp.axes.clone(),
                cells,
                report: exp.report.clone(),
                naive_stage_count: naive,
            });
        }
        if petgraph::algo::is_cyclic_directed(&plan.graph) {
            bail!("the stage graph has a cycle (a planner bug): please report it");
        }
        Ok(plan)
    }

    /// Adds a node (or finds the identical one) and returns its key.
    pub fn add(
        &mut self,
        kind: &str,
        version: u32,
        params: serde_json::Value,
        inputs: BTreeMap<String, Key>,
        name: String,
    ) -> Key {
        let key = key::stage_key(kind, version, &params, &inputs);
        if self.by_key.contains_key(&key) {
            return key;
        }
        // Readable names are unique: a clash (same name, other params) gets the key's head.
        let name = if self.names.contains(&name) {
            format!("{name}~{}", &key[..8])
        } else {
            name
        };
        let node = Node {
            kind: kind.to_string(),
            version,
            params,
            inputs: inputs.clone(),
            key: key.clone(),
            name,
        };
        self.names.insert(node.name.clone());
        let idx = self.graph.add_node(node);
        for (role, input) in &inputs {
            let from = self.by_key[input];
            self.graph.add_edge(from, idx, role.clone());
        }
        self.by_key.insert(key.clone(), idx);
        key
    }

    pub fn node(&self, key: &str) -> Option<&Node> {
        self.by_key.get(key).map(|i| &self.graph[*i])
    }

    /// Nodes in an order where every input comes before its readers.
    pub fn topological(&self) -> Vec<NodeIndex> {
        petgraph::algo::toposort(&self.graph, None).expect("checked acyclic in Plan::build")
    }

    /// Node by readable name or key (or a unique key prefix), for `sweep why`.
    pub fn find(&self, name_or_key: &str) -> Option<&Node> {
        let mut hits = self
            .graph
            .node_weights()
            .filter(|n| n.name == name_or_key || n.key.starts_with(name_or_key));
        let first = hits.next()?;
        hits.next().is_none().then_some(first)
    }

    /// Σ naive stage counts of the experiments.
    pub fn naive_stage_count(&self) -> usize {
        self.experiments.iter().map(|e| e.naive_stage_count).sum()
    }
}

/// Loads the profile and every manifest under `paths`, resolves and plans
/// them. Bad input of any kind comes back as one `Diagnostics` (exit 2),
/// as does a sweep above the planned-stage limit ([`limit`]), which is
/// caught before its cells are built.
///
/// Two seeds of one dataset, planned up to the split: one `dataset` node
/// serves both cells.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("split.toml");
/// std::fs::write(&path, r#"
/// [experiment]
/// name = "split"
/// until = "split"
/// [axes]
/// seed = [0, 1]
/// [defaults]
/// dataset = "tldr"
/// pair = "opt"
/// objective = "dpo"
/// annotation = "human"
/// "#)?;
/// let (plan, _) = cwpo::plan::compile(&[path], "tiny")?;
/// let kinds: Vec<&str> = plan.topological().iter().map(|&i| plan.graph[i].kind.as_str()).collect();
/// assert_eq!(kinds, ["dataset", "split", "split"]);
/// assert_eq!(plan.naive_stage_count(), 4);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn compile(paths: &[std::path::PathBuf], profile: &str) -> Result<(Plan, Vec<Experiment>)> {
    compile_limited(paths, profile, None)
}

/// [`compile`] under the stage limit of a `--max-stages` flag (`None`: the
/// environment's or the default, see [`limit::max_stages`]).
pub fn compile_limited(
    paths: &[std::path::PathBuf],
    profile: &str,
    max_stages: Option<usize>,
) -> Result<(Plan, Vec<Experiment>)> {
    compile_with(
        paths,
        &Profile::load(profile)?,
        limit::max_stages(max_stages)?,
    )
}

/// [`compile`] with the profile already loaded and the stage limit given.
pub fn compile_with(
    paths: &[std::path::PathBuf],
    profile: &Profile,
    max_stages: usize,
) -> Result<(Plan, Vec<Experiment>)> {
    let manifests = crate::manifest::load_all(paths)?;
    limit::check_cells(&manifests, max_stages)?;
    let experiments = crate::manifest::resolve::resolve(&manifests, profile, crate::stage::KINDS)?;
    let plan = Plan::build(&experiments, profile, max_stages)?;
    Ok((plan, experiments))
}
