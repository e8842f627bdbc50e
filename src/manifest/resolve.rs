//! Binds manifests to a profile and validates them into typed
//! [`Experiment`]s: sweep axes expanded into cells, every setting type-checked,
//! every slot name looked up. All errors are collected, deduplicated and
//! returned together; `plan` consumes only the result.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use super::{Entry, Manifest, profile_defaults};
use crate::data::synthetic::WorldConfig;
use crate::profile::Profile;
use crate::report::TableSpec;
use crate::spec::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::spec::settings::*;
use crate::spec::{
    DatasetSource, GoldSpec, Mixture, ModelSpec, Objective, Poison, PoolPart, SplitMixture, TrainOn,
};
use crate::train::{AlignLoss, CustomLoss, PreferenceObjective, WeightingScheme};

/// One validated experiment: a named set of sweep cells and its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub title: String,
    pub file: PathBuf,
    /// Stop the pipeline after this stage kind (e.g. `split`).
    pub until: Option<String>,
    /// The label names of every cell, sorted: [`CELL_LABELS`] and the axes
    /// (a cell's `coords` has one value for each).
    pub axes: Vec<String>,
    pub cells: Vec<Cell>,
    /// The `[report]` table and figure (`None`: no report, e.g. a cache-only sweep).
    pub report: Option<TableSpec>,
}

/// One point of the sweep, bound to concrete specs.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Axis name → value as text (for names and report rows/columns).
    pub coords: BTreeMap<String, String>,
    pub settings: Settings,
    pub annotation: Annotation,
    /// The preference loss `objective` and `[align]` name, validated: a
    /// built-in objective, or a custom loss parsed, checked and canonical.
    pub loss: AlignLoss,
    /// How the cell weights its pairs: `align.weighting` under `cw`
    /// annotation, uniform otherwise; validated.
    pub weighting: WeightingScheme,
    pub dataset: DatasetSource,
    /// The datasets D_L and D_U are drawn from under a mixture or poisoning
    /// (`settings.mixture`), in [`SplitMixture::datasets`] order, each bound
    /// to its source with the cell's `[world]`; empty otherwise.
    pub pool: Vec<PoolPart>,
    /// (profile slot name, concrete spec).
    pub weak_model: (String, ModelSpec),
    pub strong_model: (String, ModelSpec),
    /// The judge of this cell's generations (`metric.gold`, else the profile's).
    pub gold: GoldSpec,
}

/// Validates every manifest that defines an `[experiment]` against `profile`;
/// `kinds` are the stage kinds in pipeline order (`until` names one), which
/// the planner knows.
pub fn resolve(
    manifests: &[Manifest],
    profile: &Profile,
    kinds: &[&str],
) -> Result<Vec<Experiment>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut experiments = Vec::new();
    let mut names: BTreeMap<String, Loc> = BTreeMap::new();
    for m in manifests {
        crate::safe_name::check_manifest(m, &mut errors);
        let Some(header) = &m.experiment else {
            continue;
        };
        if let Some(first) = names.insert(header.name.clone(), header.loc.clone()) {
            errors.push(Diagnostic::at(
                &header.loc,
                format!(
                    "experiment name `{}` is already used at {first}; names must be unique",
                    header.name
                ),
            ));
        }
        if let Some(exp) = resolve_one(m, profile, kinds, &mut errors) {
            experiments.push(exp);
        }
    }
    errors.into_result()?;
    Ok(experiments)
}

fn resolve_one(
    m: &Manifest,
    profile: &Profile,
    kinds: &[&str],
    errors: &mut Diagnostics,
) -> Option<Experiment> {
    let header = m.experiment.as_ref()?;
    let before = errors.0.len();
    let until = header.until.as_ref().and_then(|u| {
        let kind = u.value.as_str().unwrap_or_default().to_string();
        if kinds.contains(&kind.as_str()) {
            Some(kind)
        } else {
            errors.push(Diagnostic::at(
                &u.loc,
                format!(
                    "`until = \"{kind}\"` is not a stage kind; valid: {}",
                    kinds.join(", ")
                ),
            ));
            None
        }
    });

    // Axes: each a non-empty array; expand the cartesian product.
    let mut axes: Vec<(String, Vec<toml::Value>, Loc)> = Vec::new();
    for (name, entry) in &m.axes {
        check_setting_name(name, &entry.loc, errors);
        match &entry.value {
            toml::Value::Array(values) if !values.is_empty() => {
                axes.push((name.clone(), values.clone(), entry.loc.clone()))
            }
            _ => errors.push(Diagnostic::at(
                &entry.loc,
                format!("axis `{name}` must be a non-empty array of values, e.g. {name} = [..]"),
            )),
        }
    }
    let mut cells: Vec<BTreeMap<String, Entry>> = vec![BTreeMap::new()];
    for (name, values, loc) in &axes {
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                values.iter().map(move |v| {
                    let mut c = cell.clone();
                    c.insert(
                        name.clone(),
                        Entry {
                            value: v.clone(),
                            loc: loc.clone(),
                        },
                    );
                    c
                })
            })
            .collect();
    }
    if axes.is_empty() && !m.include.is_empty() {
        cells.clear();
    }
    let tables =
        |list: &[Entry], what: &str, errors: &mut Diagnostics| -> Vec<BTreeMap<String, Entry>> {
            let mut out = Vec::new();
            for entry in list {
                match &entry.value {
                    toml::Value::Table(t) => out.push(
                        t.iter()
                            .map(|(k, v)| {
                                check_setting_name(k, &entry.loc, errors);
                                (
                                    k.clone(),
                                    Entry {
                                        value: v.clone(),
                                        loc: entry.loc.clone(),
                                    },
                                )
                            })
                            .collect(),
                    ),
                    _ => errors.push(Diagnostic::at(
                        &entry.loc,
                        format!("each `{what}` item must be a table of settings"),
                    )),
                }
            }
            out
        };
    let excludes = tables(&m.exclude, "exclude", errors);
    cells.retain(|cell| {
        !excludes.iter().any(|ex| {
            ex.iter()
                .all(|(k, v)| cell.get(k).is_some_and(|c| c.value == v.value))
        })
    });
    cells.extend(tables(&m.include, "include", errors));
    if cells.is_empty() {
        errors.push(Diagnostic::at(
            &header.loc,
            "the sweep has no cells (every cell excluded?)",
        ));
    }

    let mut base = profile_defaults(profile);
    base.extend(m.settings.clone());
    let axis_names: Vec<String> = {
        let mut names: BTreeSet<String> = axes.iter().map(|(n, _, _)| n.clone()).collect();
        names.extend(CELL_LABELS.iter().map(|l| l.to_string()));
        for cell in &cells {
            names.extend(cell.keys().cloned());
        }
        names.into_iter().collect()
    };
    let mut resolved = Vec::new();
    for coords in cells {
        let mut settings = base.clone();
        settings.extend(coords.clone());
        if let Some(cell) = bind_cell(&settings, &coords, profile, &header.loc, errors) {
            resolved.push(cell);
        }
    }

    let report = m.report.as_ref().map(|(spec, loc)| {
        check_report(spec, &axis_names, loc, errors);
        check_relative_to(spec, &resolved, loc, errors);
        spec.clone()
    });
    (errors.0.len() == before).then(|| Experiment {
        name: header.name.clone(),
        title: header.title.clone(),
        file: m.source.path.clone(),
        until,
        axes: axis_names,
        cells: resolved,
        report,
    })
}

/// A setting name is a cell key or `block.key`; the message lists the choices.
fn check_setting_name(name: &str, loc: &Loc, errors: &mut Diagnostics) {
    match name.split_once('.') {
        Some((block, _)) if !BLOCKS.contains(&block) => errors.push(Diagnostic::at(
            loc,
            format!(
                "unknown block `{block}` in setting `{name}`; blocks: {}",
                BLOCKS.join(", ")
            ),
        )),
        Some(_) => {}
        None => {
            if let Err(e) = one_key::<CellKeys>(name, &toml::Value::Integer(0))
                && e.contains("unknown field")
            {
                errors.push(Diagnostic::at(
                    loc,
                    format!(
                        "unknown setting `{name}`: {e}; or `<block>.<key>` with block one of {}",
                        BLOCKS.join(", ")
                    ),
                ));
            }
        }
    }
}

/// Deserialises the one-key table `{key = value}` into `T`: the error (wrong
/// type, unknown key with the valid ones) is about that key alone.
fn one_key<T: DeserializeOwned>(key: &str, value: &toml::Value) -> Result<T, String> {
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value.clone());
    toml::Value::Table(table)
        .try_into::<T>()
        .map_err(|e| e.message().trim().to_string())
}

/// Type-checks one cell's settings, range-checks them and binds its slot
/// names to the profile. Each step reports every error it finds; the cell
/// is built only when none did.
fn bind_cell(
    settings: &BTreeMap<String, Entry>,
    coords: &BTreeMap<String, Entry>,
    profile: &Profile,
    header: &Loc,
    errors: &mut Diagnostics,
) -> Option<Cell> {
    let before = errors.0.len();
    let at = Locs { settings, header };
    let typed = type_check(settings, errors)?;
    let names = required_names(&typed.keys, header, errors)?;
    let choices = parse_choices(&typed.keys, &names, &at, errors);
    let train_on = parse_train_on(&typed.keys, &names, choices.annotation, &at, errors);
    let mixture = parse_mixture(&typed.keys, &names, train_on, &at, errors);
    let blocks = typed.blocks()?;
    let regime = parse_regime(&typed.keys, &names, &choices, &blocks.online, &at, errors);
    for (key, message) in check_numbers(&choices, &blocks) {
        errors.push(Diagnostic::at(&at.of(&key), message));
    }
    let loss = bind_loss(choices.objective, &blocks.align, &at, errors);
    check_sampling(&blocks.generate, &at, errors);
    let labeled_fraction = typed.keys.labeled_fraction.unwrap_or(0.3);
    if !(labeled_fraction > 0.0 && labeled_fraction < 1.0) {
        errors.push(Diagnostic::at(
            &at.of("labeled_fraction"),
            format!("`labeled_fraction = {labeled_fraction}` must be in (0, 1)"),
        ));
    }
    let gold = resolve_gold(&blocks.metric, &names.dataset, profile)
        .map_err(|e| errors.push(Diagnostic::at(&at.of("metric.gold"), e)));
    let models = bind_models(&typed.keys, &names.pair, profile, &at, errors);
    let dataset = profile
        .dataset_source(&names.dataset)
        .map_err(|e| errors.push(Diagnostic::at(&at.of("dataset"), format!("`dataset`: {e}"))));
    if errors.0.len() != before {
        return None;
    }
    let (objective, annotation, weak_objective) = choices.resolved()?;
    let loss = loss?;
    let settings_typed = Settings {
        dataset: names.dataset,
        pair: names.pair,
        weak_model: typed.keys.weak_model.clone(),
        strong_model: typed.keys.strong_model.clone(),
        objective,
        annotation: names.annotation,
        weak_objective,
        seed: typed.keys.seed.unwrap_or(0),
        labeled_fraction,
        train_on: train_on?,
        mixture: mixture.clone()?,
        world: world_overrides(&typed),
        weak: blocks.weak,
        sft: blocks.sft,
        align: blocks.align,
        generate: blocks.generate,
        metric: blocks.metric,
        regime: regime?,
        online: blocks.online,
    };
    let dataset = with_world(dataset.ok()?, &settings_typed.world, &at, errors)?;
    let pool = bind_pool(&settings_typed, profile, &at, errors)?;
    let (weak_model, strong_model) = models?;
    let gold = gold.ok()?;
    Some(Cell {
        coords: labels(
            &settings_typed,
            &weak_model.0,
            &strong_model.0,
            gold.kind_name(),
            coords,
        ),
        loss,
        weighting: weighting_of(annotation, &settings_typed.align)?,
        annotation,
        dataset,
        pool,
        weak_model,
        strong_model,
        gold,
        settings: settings_typed,
    })
}

/// Where a setting was written: its entry, else the experiment header (a
/// default nobody wrote).
struct Locs<'a> {
    settings: &'a BTreeMap<String, Entry>,
    header: &'a Loc,
}

impl Locs<'_> {
    fn of(&self, key: &str) -> Loc {
        self.settings
            .get(key)
            .map_or_else(|| self.header.clone(), |e| e.loc.clone())
    }
}

/// A cell's settings, each type-checked on its own: the cell keys and one
/// table per block.
struct Typed {
    keys: CellKeys,
    blocks: BTreeMap<&'static str, toml::Table>,
}

/// The typed blocks of a cell.
struct Blocks {
    weak: TrainBlock,
    sft: TrainBlock,
    align: AlignBlock,
    generate: GenerateBlock,
    metric: MetricBlock,
    online: OnlineBlock,
}

impl Typed {
    fn block<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        toml::Value::Table(self.blocks[name].clone())
            .try_into()
            .ok()
    }

    fn blocks(&self) -> Option<Blocks> {
        Some(Blocks {
            weak: self.block("weak")?,
            sft: self.block("sft")?,
            align: self.block("align")?,
            generate: self.block("generate")?,
            metric: self.block("metric")?,
            online: self.block("online")?,
        })
    }
}

/// Step 1: every setting deserialises into its block's type, one key at a
/// time, so each error names its key (`[world]` is checked as a whole later).
fn type_check(settings: &BTreeMap<String, Entry>, errors: &mut Diagnostics) -> Option<Typed> {
    let before = errors.0.len();
    let mut cell_table = toml::Table::new();
    let mut blocks: BTreeMap<&'static str, toml::Table> =
        BLOCKS.iter().map(|b| (*b, toml::Table::new())).collect();
    for (name, entry) in settings {
        check_setting_name(name, &entry.loc, errors);
        let checked = match name.split_once('.') {
            Some((block, key)) => {
                let Some((block, table)) = blocks.iter_mut().find(|(b, _)| **b == block) else {
                    continue; // reported by check_setting_name
                };
                let checked = match *block {
                    "world" => Ok(()),
                    "weak" | "sft" => one_key::<TrainBlock>(key, &entry.value).map(drop),
                    "align" => one_key::<AlignBlock>(key, &entry.value).map(drop),
                    "generate" => one_key::<GenerateBlock>(key, &entry.value).map(drop),
                    "online" => one_key::<OnlineBlock>(key, &entry.value).map(drop),
                    _ => one_key::<MetricBlock>(key, &entry.value).map(drop),
                };
                if checked.is_ok() {
                    table.insert(key.to_string(), entry.value.clone());
                }
                checked
            }
            None => match one_key::<CellKeys>(name, &entry.value) {
                Ok(_) => {
                    cell_table.insert(name.clone(), entry.value.clone());
                    Ok(())
                }
                Err(e) if e.contains("unknown field") => Ok(()), // reported by check_setting_name
                Err(e) => Err(e),
            },
        };
        if let Err(e) = checked {
            errors.push(Diagnostic::at(&entry.loc, format!("setting `{name}`: {e}")));
        }
    }
    if errors.0.len() != before {
        return None;
    }
    Some(Typed {
        keys: toml::Value::Table(cell_table).try_into().ok()?,
        blocks,
    })
}

/// The settings every cell must have, by name.
struct Names {
    dataset: String,
    pair: String,
    objective: String,
    annotation: String,
}

/// Step 2: `dataset`, `pair`, `objective` and `annotation` are set.
fn required_names(keys: &CellKeys, header: &Loc, errors: &mut Diagnostics) -> Option<Names> {
    let mut require = |value: &Option<String>, key: &str| {
        if value.is_none() {
            errors.push(Diagnostic::at(
                header,
                format!("no value for `{key}`: set it in [defaults] or [axes]"),
            ));
        }
        value.clone()
    };
    let dataset = require(&keys.dataset, "dataset");
    let pair = require(&keys.pair, "pair");
    let objective = require(&keys.objective, "objective");
    let annotation = require(&keys.annotation, "annotation");
    Some(Names {
        dataset: dataset?,
        pair: pair?,
        objective: objective?,
        annotation: annotation?,
    })
}

/// The named choices of a cell, parsed (`None`: not a valid choice, reported).
struct Choices {
    objective: Option<Objective>,
    annotation: Option<Annotation>,
    weak_objective: Option<String>,
}

impl Choices {
    fn resolved(&self) -> Option<(Objective, Annotation, String)> {
        Some((
            self.objective?,
            self.annotation?,
            self.weak_objective.clone()?,
        ))
    }
}

/// Step 3: the objective, annotation and weak objective are known names
/// (`ws` labels come from WS-DPO's weak LM, SFT then DPO as the paper runs
/// it (§4.3), so it turns the default `bt` into `sft_dpo`; a `dpo` or
/// `sft_dpo` the manifest names stays).
fn parse_choices(keys: &CellKeys, names: &Names, at: &Locs, errors: &mut Diagnostics) -> Choices {
    let mut choice = |value: &str, key: &str, valid: &[&str], ok: bool| {
        if !ok {
            errors.push(Diagnostic::at(
                &at.of(key),
                format!(
                    "`{key} = \"{value}\"` is not accepted; valid: {}",
                    valid.join(", ")
                ),
            ));
        }
    };
    let objective = Objective::parse(&names.objective);
    choice(
        &names.objective,
        "objective",
        Objective::NAMES,
        objective.is_some(),
    );
    let annotation = Annotation::parse(&names.annotation);
    let top_n = names.annotation.strip_prefix("top").map(str::parse::<u32>);
    match top_n {
        Some(Ok(n)) if annotation.is_none() => choice(
            &names.annotation,
            "annotation",
            &[&format!(
                "topN with N in 1..=99 percent of the pairs, not {n}"
            )],
            false,
        ),
        _ => choice(
            &names.annotation,
            "annotation",
            ANNOTATIONS,
            annotation.is_some(),
        ),
    }
    let mut weak_objective = keys.weak_objective.clone().unwrap_or_else(|| "bt".into());
    let known = WEAK_OBJECTIVES.contains(&weak_objective.as_str());
    choice(&weak_objective, "weak_objective", WEAK_OBJECTIVES, known);
    if annotation == Some(Annotation::WeakLm) && weak_objective == "bt" {
        weak_objective = "sft_dpo".into();
    }
    Choices {
        objective,
        annotation,
        weak_objective: known.then_some(weak_objective),
    }
}

/// Step 3b: `train_on` is a known choice, and one other than D_U comes with
/// human labels: the weak annotator is trained on D_L, so it has no labels
/// of D_L to give (and weak labels of D_L ∪ D_U would be half its own
/// training set read back).
fn parse_train_on(
    keys: &CellKeys,
    names: &Names,
    annotation: Option<Annotation>,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<TrainOn> {
    let Some(name) = &keys.train_on else {
        return Some(TrainOn::default());
    };
    let Some(train_on) = TrainOn::parse(name) else {
        errors.push(Diagnostic::at(
            &at.of("train_on"),
            format!(
                "`train_on = \"{name}\"` is not accepted; valid: {}",
                TrainOn::NAMES.join(", ")
            ),
        ));
        return None;
    };
    if train_on.needs_human_labels() && annotation.is_some_and(|a| a != Annotation::Human) {
        errors.push(Diagnostic::at(
            &at.of("train_on"),
            format!(
                "`train_on = \"{name}\"` trains on D_L, which only humans label, but this cell \
                 has `annotation = \"{}\"` (the weak annotator is trained on D_L): set \
                 `annotation = \"human\"` (DPO on human labels), or `train_on = \"unlabeled\"`; \
                 in a sweep, exclude the combination, e.g. \
                 exclude = [{{ annotation = \"{}\", train_on = \"{name}\" }}]",
                names.annotation, names.annotation
            ),
        ));
        return None;
    }
    Some(train_on)
}

/// Step 3d: `regime` is a known choice; online cells are labelled by a
/// labeller that can judge new responses (`reward-model`: the cell's judge,
/// `cw` / `ws`: the weak annotator), on D_U of one dataset, with a sampling
/// loop that can run; `reward-model` is online only (offline pairs have
/// their human labels already).
fn parse_regime(
    keys: &CellKeys,
    names: &Names,
    choices: &Choices,
    online: &OnlineBlock,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<Regime> {
    let before = errors.0.len();
    let regime = match &keys.regime {
        None => Regime::Offline,
        Some(name) => match Regime::parse(name) {
            Some(r) => r,
            None => {
                errors.push(Diagnostic::at(
                    &at.of("regime"),
                    format!(
                        "`regime = \"{name}\"` is not accepted; valid: {}",
                        Regime::NAMES.join(", ")
                    ),
                ));
                return None;
            }
        },
    };
    let annotation = choices.annotation;
    match (regime, annotation) {
        (Regime::Offline, Some(Annotation::RewardModel)) => errors.push(Diagnostic::at(
            &at.of("annotation"),
            "`annotation = \"reward-model\"` labels the policy's own samples during training: \
             it needs `regime = \"online\"` (offline, D_U's pairs are labelled by humans or \
             the weak annotator); in a sweep, exclude the combination, e.g. \
             exclude = [{ annotation = \"reward-model\", regime = \"offline\" }]",
        )),
        (Regime::Online, Some(Annotation::Human | Annotation::Weak | Annotation::Top(_))) => errors
            .push(Diagnostic::at(
                &at.of("annotation"),
                format!(
                    "`annotation = \"{}\"` with `regime = \"online\"`: online rounds label the \
                 policy's new samples, which no human labelled; use `reward-model` (Online \
                 DPO), `cw` (Online CW-DPO) or `ws` (Online WS-DPO)",
                    names.annotation
                ),
            )),
        _ => {}
    }
    if regime == Regime::Offline {
        return (errors.0.len() == before).then_some(regime);
    }
    if choices.objective == Some(Objective::Custom) {
        errors.push(Diagnostic::at(
            &at.of("objective"),
            "`objective = \"custom\"` with `regime = \"online\"` is not supported: online \
             rounds train dpo, ipo or rdpo",
        ));
    }
    if keys.train_on.as_deref().is_some_and(|t| t != "unlabeled") {
        errors.push(Diagnostic::at(
            &at.of("train_on"),
            "`regime = \"online\"` samples responses to D_U's prompts; drop `train_on`",
        ));
    }
    let mixed = keys.weak_mixture.is_some()
        || keys.unlabeled_mixture.is_some()
        || keys.poison_ratio.is_some()
        || keys.poison_from.is_some();
    if mixed {
        errors.push(Diagnostic::at(
            &at.of("regime"),
            "`regime = \"online\"` with a mixture or poisoned D_L is not supported: drop the \
             mixture keys or use `regime = \"offline\"`",
        ));
    }
    if online.rounds == 0 {
        errors.push(Diagnostic::at(
            &at.of("online.rounds"),
            "`online.rounds = 0`: run at least 1 round",
        ));
    }
    if online.prompts_per_round == Some(0) {
        errors.push(Diagnostic::at(
            &at.of("online.prompts_per_round"),
            "`online.prompts_per_round = 0`: a round needs at least 1 prompt (unset: ⌈|D_U| / rounds⌉)",
        ));
    }
    if !(online.temperature > 0.0 && online.temperature.is_finite()) {
        errors.push(Diagnostic::at(
            &at.of("online.temperature"),
            format!(
                "`online.temperature = {}` must be > 0: two greedy samples are the same response, \
                 so no pair to label; e.g. 1.0",
                online.temperature
            ),
        ));
    }
    if online.max_new_tokens == 0 {
        errors.push(Diagnostic::at(
            &at.of("online.max_new_tokens"),
            "`online.max_new_tokens = 0`: sampled responses need at least 1 token",
        ));
    }
    (errors.0.len() == before).then_some(regime)
}

/// Step 3c: `weak_mixture`, `unlabeled_mixture` and `poison_ratio` /
/// `poison_from` (`spec::mixture`): each mixture parses and the poison comes
/// whole (shares of |D_L| and |D_U| never ask a dataset for more pairs than
/// it has; whether enough pairs are left to poison with is known when the
/// split runs). `None` inside
/// `Some` when none is set (one dataset split at random, today's keys).
fn parse_mixture(
    keys: &CellKeys,
    names: &Names,
    train_on: Option<TrainOn>,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<Option<SplitMixture>> {
    let before = errors.0.len();
    let mut mixture = |key: &str, value: &Option<String>| match value {
        None => Some(Mixture::single(&names.dataset)),
        Some(text) => Mixture::parse(text)
            .map_err(|e| errors.push(Diagnostic::at(&at.of(key), format!("`{key}`: {e}"))))
            .ok(),
    };
    let labeled = mixture("weak_mixture", &keys.weak_mixture);
    let unlabeled = mixture("unlabeled_mixture", &keys.unlabeled_mixture);
    let poison = match (keys.poison_ratio, &keys.poison_from) {
        (None, None) => None,
        (Some(ratio), Some(from)) if ratio > 0.0 && ratio < 1.0 => Some(Poison {
            ratio,
            from: from.clone(),
        }),
        (Some(ratio), Some(_)) => {
            errors.push(Diagnostic::at(
                &at.of("poison_ratio"),
                format!("`poison_ratio = {ratio}` must be in (0, 1), e.g. 0.1 for 10% of D_L"),
            ));
            None
        }
        (Some(_), None) => {
            errors.push(Diagnostic::at(
                &at.of("poison_ratio"),
                "`poison_ratio` needs `poison_from`, the dataset whose pairs poison D_L \
                 (e.g. poison_from = \"harmless\")",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(Diagnostic::at(
                &at.of("poison_from"),
                "`poison_from` needs `poison_ratio`, the share of D_L it replaces (e.g. 0.1)",
            ));
            None
        }
    };
    let any_set = keys.weak_mixture.is_some()
        || keys.unlabeled_mixture.is_some()
        || keys.poison_ratio.is_some()
        || keys.poison_from.is_some();
    if !any_set {
        return Some(None);
    }
    if train_on == Some(TrainOn::All) {
        errors.push(Diagnostic::at(
            &at.of("train_on"),
            "`train_on = \"all\"` trains on every pair of one dataset, which a mixture or \
             poisoning of D_L / D_U does not define: use `train_on = \"unlabeled\"` or \
             `\"labeled\"`, or exclude the combination",
        ));
    }
    if errors.0.len() != before {
        return None;
    }
    let mix = SplitMixture {
        labeled: labeled?,
        unlabeled: unlabeled?,
        poison,
    };
    (errors.0.len() == before).then_some(Some(mix))
}

/// The pool of a mixture cell: each dataset of the draw bound to its
/// source, with the cell's `[world]`; poisoned pairs are ranked by the
/// synthetic world's true reward, so `poison_from` must be synthetic.
fn bind_pool(
    settings: &Settings,
    profile: &Profile,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<Vec<PoolPart>> {
    let Some(mix) = &settings.mixture else {
        return Some(Vec::new());
    };
    let before = errors.0.len();
    let key_of = |name: &str| {
        if mix.poison.as_ref().is_some_and(|p| p.from == name) {
            "poison_from"
        } else if mix.labeled.percent_of(name) > 0 && settings.dataset != name {
            "weak_mixture"
        } else {
            "unlabeled_mixture"
        }
    };
    let mut pool = Vec::new();
    for name in mix.datasets() {
        let key = key_of(&name);
        match profile.dataset_source(&name) {
            Ok(source) => {
                let source = with_world(source, &settings.world, at, errors)?;
                if key == "poison_from" && !matches!(source, DatasetSource::Synthetic { .. }) {
                    errors.push(Diagnostic::at(
                        &at.of(key),
                        format!(
                            "`poison_from = \"{name}\"` is a real dataset: poisoned pairs are \
                             the ones the synthetic world's true reward separates most, which \
                             real pairs do not have (no gold-RM pass ranks them yet); use a \
                             synthetic dataset (tiny profile)"
                        ),
                    ));
                }
                pool.push(PoolPart { name, source });
            }
            Err(e) => errors.push(Diagnostic::at(&at.of(key), format!("`{key}`: {e}"))),
        }
    }
    (errors.0.len() == before).then_some(pool)
}

/// More than one sample per prompt needs sampling. Greedy decoding with
/// several samples is blamed on the temperature: a manifest that asks for
/// greedy decoding usually inherits `samples` from the profile, and the
/// error should point at the line the user wrote.
fn check_sampling(generate: &GenerateBlock, at: &Locs, errors: &mut Diagnostics) {
    if generate.samples == 0 {
        errors.push(Diagnostic::at(
            &at.of("generate.samples"),
            "`generate.samples = 0`: generate at least 1 response per prompt".to_string(),
        ));
    } else if generate.samples > 1 && generate.temperature <= 0.0 {
        errors.push(Diagnostic::at(
            &at.of("generate.temperature"),
            format!(
                "`generate.temperature = {}` is greedy decoding, which gives the same response \
                 every time, but `generate.samples = {}` asks for several per prompt: set \
                 `samples = 1` in [generate] for greedy decoding, or a temperature > 0, e.g. 1.0",
                generate.temperature, generate.samples
            ),
        ));
    }
}

/// The weak and strong models of a cell: `weak_model` / `strong_model` if
/// set, else the pair's, each bound to its profile spec.
#[allow(clippy::type_complexity)]
fn bind_models(
    keys: &CellKeys,
    pair: &str,
    profile: &Profile,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<((String, ModelSpec), (String, ModelSpec))> {
    let pair_slot = profile.pairs.get(pair);
    if pair_slot.is_none() {
        let valid: Vec<&str> = profile.pairs.keys().map(String::as_str).collect();
        errors.push(Diagnostic::at(
            &at.of("pair"),
            format!(
                "`pair`: unknown pair `{pair}` in profile `{}`; valid: {}",
                profile.name,
                valid.join(", ")
            ),
        ));
    }
    let mut bind = |own: &Option<String>, key: &str, of_pair: Option<&String>| {
        let name = own.clone().or(of_pair.cloned())?;
        let written = if own.is_some() { key } else { "pair" };
        match profile.model_spec(&name) {
            Ok(spec) => Some((name, spec)),
            Err(e) => {
                errors.push(Diagnostic::at(&at.of(written), format!("`{written}`: {e}")));
                None
            }
        }
    };
    let weak = bind(&keys.weak_model, "weak_model", pair_slot.map(|p| &p.weak));
    let strong = bind(
        &keys.strong_model,
        "strong_model",
        pair_slot.map(|p| &p.strong),
    );
    Some((weak?, strong?))
}

/// A manifest's `[world]` keys, as JSON over the profile's world config.
fn world_overrides(typed: &Typed) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(&typed.blocks["world"]) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// A synthetic dataset's world with the manifest's `[world]` keys over the
/// profile's, checked as the world reads it; an error points at the
/// `[world]` key it names, else the first one written.
fn with_world(
    mut dataset: DatasetSource,
    overrides: &serde_json::Map<String, serde_json::Value>,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<DatasetSource> {
    if let DatasetSource::Synthetic {
        world: serde_json::Value::Object(w),
        ..
    } = &mut dataset
    {
        w.extend(overrides.clone());
        if let Err(e) = WorldConfig::from_json(&serde_json::Value::Object(w.clone())) {
            let e = format!("{e:#}");
            let keys: Vec<(&String, &Entry)> = at
                .settings
                .iter()
                .filter(|(k, _)| k.starts_with("world."))
                .collect();
            let loc = keys
                .iter()
                .find(|(k, _)| e.contains(&format!("`{}`", &k["world.".len()..])))
                .or(keys.first())
                .map_or_else(|| at.header.clone(), |(_, entry)| entry.loc.clone());
            errors.push(Diagnostic::at(&loc, format!("[world]: {e}")));
            return None;
        }
    }
    Some(dataset)
}

/// Step 4, range checks of the numbers a cell trains with, as (setting,
/// message): the objective the cell uses is built and `validate()`d by the
/// loss module itself, the weighting is parsed by the real expression
/// parser, and every training block needs a positive learning rate and
/// batch size.
fn check_numbers(choices: &Choices, blocks: &Blocks) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(objective) = choices
        .objective
        .and_then(|o| preference_objective(o, &blocks.align))
        && let Err(e) = objective.validate()
    {
        let e = format!("{e:#}");
        let key = if e.contains("`tau`") {
            "align.tau"
        } else if e.contains("`epsilon`") {
            "align.eps"
        } else {
            "align.beta"
        };
        out.push((key.to_string(), format!("`{key}`: {e}")));
    }
    if choices
        .weak_objective
        .as_ref()
        .is_some_and(|w| w.contains("dpo"))
        && let Some(beta) = blocks.weak.beta
        && let Err(e) = PreferenceObjective::dpo(beta).validate()
    {
        out.push(("weak.beta".into(), format!("`weak.beta`: {e:#}")));
    }
    if choices.objective == Some(Objective::Rdpo) && blocks.align.length_normalised == Some(true) {
        out.push((
            "align.length_normalised".into(),
            "`align.length_normalised = true`: rDPO is defined on summed log-probs and has no \
             length-normalised form; drop the key or use objective dpo / ipo / custom"
                .into(),
        ));
    }
    let top_p = blocks.generate.top_p;
    if !(top_p > 0.0 && top_p <= 1.0) {
        out.push((
            "generate.top_p".into(),
            format!("`generate.top_p = {top_p}` must be in (0, 1] (1 keeps every token)"),
        ));
    } else if top_p < 1.0 && blocks.generate.temperature == 0.0 {
        out.push((
            "generate.top_p".into(),
            format!(
                "`generate.top_p = {top_p}` needs sampling: greedy decoding (temperature 0) \
                 ignores it; set `generate.temperature` > 0 or drop top_p"
            ),
        ));
    }
    if let Err(e) = blocks.align.weighting.parse::<WeightingScheme>() {
        out.push((
            "align.weighting".into(),
            format!(
                "`align.weighting = \"{}\"`: weighting {e}; or a named scheme: {}",
                blocks.align.weighting,
                WEIGHTINGS.join(", ")
            ),
        ));
    }
    let training = [
        ("weak", blocks.weak.train()),
        ("sft", blocks.sft.train()),
        ("align", blocks.align.train()),
    ];
    for (block, train) in training {
        for (key, problem) in crate::train::settings_problems(&train) {
            out.push((
                format!("{block}.{key}"),
                format!("`{block}.{}", &problem[1..]),
            ));
        }
    }
    out
}

/// The built-in preference loss a cell's `objective` and `[align]` block
/// name: the one place a name becomes a loss (IPO on length-normalised
/// log-probs unless `align.length_normalised = false`, DPO on sums unless it
/// is true). `None` for `custom`, whose loss is `align.loss` ([`bind_loss`]).
pub fn preference_objective(
    objective: Objective,
    align: &AlignBlock,
) -> Option<PreferenceObjective> {
    Some(match objective {
        Objective::Dpo => PreferenceObjective::Dpo {
            beta: align.beta,
            length_normalised: align.length_normalised.unwrap_or(false),
        },
        Objective::Ipo => PreferenceObjective::Ipo {
            tau: align.tau,
            length_normalised: align.length_normalised.unwrap_or(true),
        },
        Objective::Rdpo => PreferenceObjective::Rdpo {
            beta: align.beta,
            epsilon: align.eps,
        },
        Objective::Custom => return None,
    })
}

/// Step 5: the loss the cell aligns with. A built-in's knobs are
/// range-checked by [`check_numbers`]; a custom loss is parsed and checked
/// here by the loss module itself ([`CustomLoss::new`]: README, Writing a
/// loss), an error in the expression located at its character in
/// `align.loss`, one in the constants at `align.constants`. Built-ins ignore
/// `align.loss`, so one manifest can sweep `objective = ["dpo", "custom"]`.
fn bind_loss(
    objective: Option<Objective>,
    align: &AlignBlock,
    at: &Locs,
    errors: &mut Diagnostics,
) -> Option<AlignLoss> {
    let objective = objective?;
    if let Some(built_in) = preference_objective(objective, align) {
        return Some(AlignLoss::BuiltIn(built_in));
    }
    let Some(source) = &align.loss else {
        errors.push(Diagnostic::at(
            &at.of("objective"),
            "`objective = \"custom\"` needs the loss itself: `[align] loss = \"<expression>\"`, \
             e.g. \"relu(1 - beta*h)\" (README: Writing a loss)",
        ));
        return None;
    };
    let knobs = [align.beta, align.tau, align.eps];
    let length_normalised = align.length_normalised.unwrap_or(false);
    match CustomLoss::new(source, length_normalised, knobs, &align.constants) {
        Ok(loss) => Some(AlignLoss::Custom(loss.spec())),
        Err(e) => {
            let (setting, loc) = match e.offset {
                Some(offset) => (
                    "align.loss",
                    at.of("align.loss").inside_string(source, offset),
                ),
                None => ("align.constants", at.of("align.constants")),
            };
            errors.push(Diagnostic::at(&loc, format!("`{setting}`: {}", e.message)));
            None
        }
    }
}

/// How a cell weights its pairs: `align.weighting` for confidence-weighted
/// labels, uniform for every other annotation (the top-N filter keeps the
/// most confident pairs unweighted).
fn weighting_of(annotation: Annotation, align: &AlignBlock) -> Option<WeightingScheme> {
    match annotation {
        Annotation::Confidence => align.weighting.parse().ok(),
        _ => Some(WeightingScheme::Uniform),
    }
}

/// The judge `metric.gold` names for `dataset`: the profile's (default),
/// the true reward or the learned RM — the latter two only on the synthetic
/// world, the learned one only if the profile says how to train it.
fn resolve_gold(
    metric: &MetricBlock,
    dataset: &str,
    profile: &Profile,
) -> Result<GoldSpec, String> {
    let synthetic = profile
        .datasets
        .get(dataset)
        .is_some_and(|d| d.synthetic.is_some());
    let choice = metric.gold.as_deref().unwrap_or("profile");
    let needs_world = |what: &str| {
        format!(
            "`metric.gold = \"{choice}\"` ({what}) exists only on the synthetic world, but dataset \
             `{dataset}` of profile `{}` is a real dataset; use `profile` (its gold RM)",
            profile.name
        )
    };
    match choice {
        "profile" => profile.gold_for(dataset),
        "true" if synthetic => Ok(GoldSpec::TrueReward),
        "true" => Err(needs_world("the true reward")),
        "learned"
            if !synthetic
                && profile
                    .learned_gold
                    .as_ref()
                    .is_none_or(|l| l.files.is_none()) =>
        {
            Err(needs_world("a reward model learned on the world"))
        }
        "learned" if profile.learned_gold.is_none() => Err(format!(
            "`metric.gold = \"learned\"` needs a [learned_gold] section in profile `{}` \
             (see experiments/profiles/tiny.toml)",
            profile.name
        )),
        "learned" => Ok(GoldSpec::Learned),
        other => Err(format!(
            "`metric.gold = \"{other}\"` is not accepted; valid: {}",
            GoldSpec::MANIFEST_CHOICES.join(", ")
        )),
    }
}

/// Labels every cell carries besides its axes, so a report can group by a
/// setting the sweep holds fixed.
pub const CELL_LABELS: &[&str] = &[
    "dataset",
    "pair",
    "weak_model",
    "strong_model",
    "objective",
    "annotation",
    "weak_objective",
    "seed",
    "labeled_fraction",
    "train_on",
    "gold",
];

/// A cell's labels: its axis values, then the resolved [`CELL_LABELS`]
/// (resolved wins: an `annotation = "ws"` cell reports `weak_objective = "sft_dpo"`).
fn labels(
    s: &Settings,
    weak_model: &str,
    strong_model: &str,
    gold: &str,
    coords: &BTreeMap<String, Entry>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = coords
        .iter()
        .map(|(k, e)| (k.clone(), display(&e.value)))
        .collect();
    labels.extend(
        [
            ("dataset", s.dataset.clone()),
            ("pair", s.pair.clone()),
            ("weak_model", weak_model.to_string()),
            ("strong_model", strong_model.to_string()),
            // A custom loss is labelled by its expression, so a table can set it beside dpo.
            (
                "objective",
                match (s.objective, &s.align.loss) {
                    (Objective::Custom, Some(loss)) => loss.clone(),
                    _ => s.objective.to_string(),
                },
            ),
            ("annotation", s.annotation.clone()),
            ("weak_objective", s.weak_objective.clone()),
            ("seed", s.seed.to_string()),
            ("labeled_fraction", s.labeled_fraction.to_string()),
            ("train_on", s.train_on.to_string()),
            ("gold", gold.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    );
    labels
}

/// A setting value as text: strings unquoted, everything else as TOML.
pub fn display(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every label a report groups by must be an axis of the experiment.
fn check_report(spec: &TableSpec, axes: &[String], loc: &Loc, errors: &mut Diagnostics) {
    let mut named: Vec<(&str, &String)> = Vec::new();
    named.extend(spec.rows.iter().map(|r| ("row", r)));
    named.extend(spec.columns.iter().map(|c| ("column", c)));
    if let Some(f) = &spec.figure {
        named.extend(
            f.panel
                .iter()
                .chain([&f.x])
                .chain(&f.series)
                .map(|a| ("figure label", a)),
        );
    }
    for (what, name) in named {
        if !axes.iter().any(|a| a == name) {
            errors.push(Diagnostic::at(
                loc,
                format!(
                    "report {what} `{name}` is not an axis of this experiment; axes: {}",
                    axes.join(", ")
                ),
            ));
        }
    }
}

/// `[report] relative_to = { <row key> = "<value>" }`: one entry, a row key
/// of the table, a value some cell has, and no `Avg.` rows (an average of a
/// level and deltas means nothing).
fn check_relative_to(spec: &TableSpec, cells: &[Cell], loc: &Loc, errors: &mut Diagnostics) {
    let Some(relative) = &spec.relative_to else {
        return;
    };
    let mut error = |message: String| errors.push(Diagnostic::at(loc, message));
    let [(key, value)] = relative.iter().collect::<Vec<_>>()[..] else {
        return error(format!(
            "report relative_to must name exactly one row label and its reference value \
             (`relative_to = {{ {} = \"...\" }}`), got {} entries",
            spec.rows.last().map(String::as_str).unwrap_or("row"),
            relative.len()
        ));
    };
    if !spec.rows.contains(key) {
        return error(format!(
            "report relative_to `{key}` is not one of the table's rows ({}); the reference \
             must be a row",
            spec.rows.join(", ")
        ));
    }
    let mut values: Vec<&str> = cells
        .iter()
        .filter_map(|c| c.coords.get(key).map(String::as_str))
        .collect();
    values.sort_unstable();
    values.dedup();
    if !values.contains(&value.as_str()) {
        error(format!(
            "report relative_to: no cell has `{key} = \"{value}\"`; values: {}",
            values.join(", ")
        ));
    }
    if spec.avg_row {
        error(
            "report relative_to cannot be combined with avg_row = true: an average of a \
               level and deltas means nothing; drop one"
                .to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LrDecay;

    fn resolve_text(body: &str) -> Result<Vec<Experiment>, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, body).unwrap();
        let manifests = crate::manifest::load_all(&[path])?;
        resolve(
            &manifests,
            &Profile::load("tiny").unwrap(),
            crate::stage::KINDS,
        )
    }

    const HEAD: &str = "[experiment]\nname = \"t\"\n[defaults]\ndataset = \"tldr\"\npair = \"opt\"\nobjective = \"dpo\"\n";

    #[test]
    fn relative_to_must_name_a_row_and_a_value_some_cell_has() {
        let report = "[report]\nrows = [\"annotation\"]\ncolumns = [\"seed\"]\nvalue = \"gra\"\n";
        let body = |relative: &str| {
            format!(
                "{HEAD}[axes]\nannotation = [\"human\", \"cw\"]\n{report}relative_to = {relative}\n"
            )
        };
        assert!(resolve_text(&body("{ annotation = \"human\" }")).is_ok());
        for (relative, expected) in [
            (
                "{ annotation = \"ws\" }",
                "no cell has `annotation = \"ws\"`; values: cw, human",
            ),
            (
                "{ seed = \"0\" }",
                "`seed` is not one of the table's rows (annotation)",
            ),
            ("{ }", "exactly one row label"),
        ] {
            let err = resolve_text(&body(relative)).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains("m.toml:"),
                "{relative}: {err}"
            );
        }
    }

    #[test]
    fn axes_expand_to_the_cartesian_product_minus_excludes_plus_includes() {
        let body = format!(
            "{HEAD}[axes]\nannotation = [\"human\", \"cw\", \"top30\"]\nseed = [0, 1]\n\
             exclude = [{{ annotation = \"human\", seed = 1 }}]\ninclude = [{{ annotation = \"weak\", seed = 7 }}]\n"
        );
        let exps = resolve_text(&body).unwrap();
        let cells: Vec<(String, u64)> = exps[0]
            .cells
            .iter()
            .map(|c| (c.settings.annotation.clone(), c.settings.seed))
            .collect();
        assert_eq!(cells.len(), 3 * 2 - 1 + 1, "{cells:?}");
        assert!(!cells.contains(&("human".into(), 1)));
        assert!(cells.contains(&("weak".into(), 7)));
        let top = exps[0]
            .cells
            .iter()
            .find(|c| c.settings.annotation == "top30")
            .unwrap();
        assert_eq!(top.annotation, Annotation::Top(30));
        for label in ["annotation", "seed", "dataset", "strong_model"] {
            assert!(exps[0].axes.iter().any(|a| a == label), "{label}");
        }
        assert_eq!(exps[0].cells[0].coords["strong_model"], "opt-13b");
    }

    #[test]
    fn train_on_other_than_d_u_needs_human_labels_and_a_known_name() {
        // Every weak annotation with D_L in the training set is rejected at
        // the line of `train_on`; human labels are accepted on all three.
        let body = format!(
            "{HEAD}[axes]\nannotation = [\"human\", \"cw\", \"ws\", \"weak\", \"top30\"]\n\
             train_on = [\"unlabeled\", \"labeled\", \"all\"]\n\
             exclude = [{{ annotation = \"cw\", train_on = \"all\" }}]\n"
        );
        let err = resolve_text(&body).unwrap_err().to_string();
        let rejected: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("only humans label"))
            .collect();
        // 4 weak annotations × {labeled, all}, less the excluded (cw, all).
        assert_eq!(rejected.len(), 4 * 2 - 1, "{err}");
        assert!(rejected.iter().all(|l| l.contains("m.toml:9:")), "{err}");
        for annotation in ["cw", "ws", "weak", "top30"] {
            assert!(
                err.contains(&format!("has `annotation = \"{annotation}\"`")),
                "{annotation}: {err}"
            );
        }
        let body = format!("{HEAD}annotation = \"human\"\ntrain_on = \"both\"\n");
        let err = resolve_text(&body).unwrap_err().to_string();
        assert!(
            err.contains("m.toml:8:") && err.contains("valid: unlabeled, labeled, all"),
            "{err}"
        );
        let body = format!(
            "{HEAD}annotation = \"human\"\n[axes]\ntrain_on = [\"unlabeled\", \"labeled\", \"all\"]\n"
        );
        let exps = resolve_text(&body).unwrap();
        let got: Vec<(TrainOn, &str)> = exps[0]
            .cells
            .iter()
            .map(|c| (c.settings.train_on, c.coords["train_on"].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (TrainOn::Unlabeled, "unlabeled"),
                (TrainOn::Labeled, "labeled"),
                (TrainOn::All, "all")
            ]
        );
        // Not written: D_U, and still a label a report can group by.
        let exps = resolve_text(&format!("{HEAD}annotation = \"cw\"\n")).unwrap();
        assert_eq!(exps[0].cells[0].settings.train_on, TrainOn::Unlabeled);
        assert_eq!(exps[0].cells[0].coords["train_on"], "unlabeled");
    }

    /// Each bad mixture or poison setting is rejected at its own line;
    /// a good one binds the pool, and unset means no pool and no mixture.
    #[test]
    fn mixture_and_poison_settings_are_checked_at_their_line() {
        for (extra, line, says) in [
            ("weak_mixture = \"harmless80-helpful30\"\n", 8, "sum to 110"),
            ("unlabeled_mixture = \"harmless50\"\n", 8, "sum to 50"),
            (
                "weak_mixture = \"harmless50-nosuch50\"\n",
                8,
                "unknown dataset",
            ),
            ("poison_ratio = 0.1\n", 8, "needs `poison_from`"),
            ("poison_from = \"harmless\"\n", 8, "needs `poison_ratio`"),
            (
                "poison_from = \"harmless\"\npoison_ratio = 1.5\n",
                9,
                "(0, 1)",
            ),
            (
                "unlabeled_mixture = \"harmless100\"\ntrain_on = \"all\"\n",
                9,
                "every pair of one dataset",
            ),
        ] {
            // Human labels, so `train_on = "all"` fails for the mixture alone.
            let body = format!("{HEAD}annotation = \"human\"\n{extra}");
            let err = resolve_text(&body).unwrap_err().to_string();
            assert!(err.contains(&format!("m.toml:{line}:")), "{extra}: {err}");
            assert!(err.contains(says), "{extra}: {err}");
        }
        let body = format!(
            "{HEAD}annotation = \"cw\"\nunlabeled_mixture = \"harmless50-helpful50\"\n\
             poison_from = \"tldr\"\npoison_ratio = 0.1\n[axes]\n\
             weak_mixture = [\"harmless80-helpful20\", \"harmless20-helpful80\"]\n"
        );
        let exps = resolve_text(&body).unwrap();
        let cell = &exps[0].cells[0];
        let pool: Vec<&str> = cell.pool.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(pool, ["harmless", "helpful", "tldr"]);
        let mix = cell.settings.mixture.as_ref().unwrap();
        assert_eq!(mix.labeled.name(), "harmless80-helpful20");
        assert_eq!(mix.poison.as_ref().unwrap().ratio, 0.1);
        assert_eq!(cell.coords["weak_mixture"], "harmless80-helpful20");
        assert!(
            matches!(&cell.pool[0].source, DatasetSource::Synthetic { family, .. } if family == "harmless")
        );
        // Unset: one dataset split at random, no pool.
        let exps = resolve_text(&format!("{HEAD}annotation = \"cw\"\n")).unwrap();
        assert_eq!(exps[0].cells[0].settings.mixture, None);
        assert!(exps[0].cells[0].pool.is_empty());
    }

    /// `regime` and `[online]` are checked at their line: the judge labels
    /// only online, online needs a labeller of new samples, and the loop's
    /// numbers must run. Offline is the default and not in the settings'
    /// serialised form (no key moves).
    #[test]
    fn regime_and_online_settings_are_checked_at_their_line() {
        for (extra, line, says) in [
            (
                "annotation = \"reward-model\"\n",
                7,
                "needs `regime = \"online\"`",
            ),
            (
                "annotation = \"cw\"\nregime = \"iterative\"\n",
                8,
                "valid: offline, online",
            ),
            (
                "annotation = \"human\"\nregime = \"online\"\n",
                7,
                "no human labelled",
            ),
            (
                "annotation = \"top30\"\nregime = \"online\"\n",
                7,
                "no human labelled",
            ),
            (
                "annotation = \"cw\"\nregime = \"online\"\n[online]\nrounds = 0\n",
                10,
                "at least 1 round",
            ),
            (
                "annotation = \"ws\"\nregime = \"online\"\n[online]\ntemperature = 0.0\n",
                10,
                "must be > 0",
            ),
            (
                "annotation = \"cw\"\nregime = \"online\"\n[online]\nprompts_per_round = 0\n",
                10,
                "at least 1 prompt",
            ),
            (
                "annotation = \"cw\"\nregime = \"online\"\n[online]\nround = 2\n",
                10,
                "unknown field `round`",
            ),
        ] {
            let body = format!("{HEAD}{extra}");
            let err = resolve_text(&body).unwrap_err().to_string();
            assert!(err.contains(&format!("m.toml:{line}:")), "{extra}: {err}");
            assert!(err.contains(says), "{extra}: {err}");
        }
        let body = format!(
            "{HEAD}regime = \"online\"\n[online]\nrounds = 4\n[axes]\n\
             annotation = [\"reward-model\", \"cw\", \"ws\"]\n"
        );
        let exps = resolve_text(&body).unwrap();
        for cell in &exps[0].cells {
            assert_eq!(cell.settings.regime, Regime::Online);
            assert_eq!(cell.settings.online.rounds, 4);
        }
        assert_eq!(exps[0].cells[0].annotation, Annotation::RewardModel);
        let offline = resolve_text(&format!("{HEAD}annotation = \"cw\"\n")).unwrap();
        let settings = &offline[0].cells[0].settings;
        assert_eq!(settings.regime, Regime::Offline);
        let json = serde_json::to_value(settings).unwrap();
        assert!(json.get("regime").is_none(), "{json}");
        assert!(json.get("online").is_none(), "{json}");
    }

    #[test]
    fn block_settings_and_dotted_axes_reach_the_typed_cell() {
        let body = format!(
            "{HEAD}annotation = \"cw\"\n[axes]\n\"align.beta\" = [0.2, 0.7]\n[align]\ntau = 0.3\n"
        );
        let exps = resolve_text(&body).unwrap();
        let betas: Vec<f64> = exps[0]
            .cells
            .iter()
            .map(|c| c.settings.align.beta)
            .collect();
        assert_eq!(betas, vec![0.2, 0.7]);
        assert!(exps[0].cells.iter().all(|c| c.settings.align.tau == 0.3));
        // Profile defaults sit under the manifest's: the tiny profile sets sft.epochs.
        assert_eq!(exps[0].cells[0].settings.sft.epochs, 1);
    }

    #[test]
    fn every_error_of_a_manifest_is_reported_with_its_line() {
        let body = format!(
            "{HEAD}annotation = \"cw\"\nseed = \"zero\"\n[axes]\npair = [\"opt\", \"gpt\"]\n[align]\nweighting = \"fancy\"\n"
        );
        let err = resolve_text(&body).unwrap_err().to_string();
        assert!(
            err.contains("m.toml:8:8: setting `seed`: invalid type"),
            "{err}"
        );
        assert!(
            err.contains("m.toml:10:8: `pair`: unknown pair `gpt`"),
            "{err}"
        );
        assert!(
            err.contains("m.toml:12:13: `align.weighting = \"fancy\"`")
                && err.contains("unknown variable `fancy`"),
            "{err}"
        );
    }

    #[test]
    fn warmup_ratio_and_lora_targets_are_checked_at_their_line() {
        let body = format!(
            "{HEAD}annotation = \"cw\"\n[sft]\nlora_rank = 4\nlora_targets = [\"qkv\"]\n\
             [align]\nwarmup_ratio = 1.5\n"
        );
        let err = resolve_text(&body).unwrap_err().to_string();
        assert!(
            err.contains("m.toml:10:") && err.contains("`sft.lora_targets = [\"qkv\"]`"),
            "{err}"
        );
        assert!(
            err.contains("m.toml:12:") && err.contains("`align.warmup_ratio = 1.5`"),
            "{err}"
        );
        let body = format!(
            "{HEAD}annotation = \"cw\"\n[sft]\nlora_rank = 4\nlora_targets = [\"q_proj\"]\n\
             [align]\nwarmup_ratio = 0.1\n"
        );
        let cell = &resolve_text(&body).unwrap()[0].cells[0];
        assert_eq!(cell.settings.align.warmup_ratio, Some(0.1));
        assert_eq!(
            cell.settings.sft.train().lora_targets,
            Some(vec!["q_proj".to_string()])
        );
    }

    #[test]
    fn the_schedule_parses_and_a_bad_one_names_its_line_and_choices() {
        let body = format!("{HEAD}annotation = \"cw\"\n[align]\nschedule = \"linear\"\n");
        let cell = &resolve_text(&body).unwrap()[0].cells[0];
        assert_eq!(cell.settings.align.train().schedule, Some(LrDecay::Linear));
        assert_eq!(cell.settings.sft.train().schedule, None);
        let body = format!("{HEAD}annotation = \"cw\"\n[align]\nschedule = \"exp\"\n");
        let err = format!("{:#}", resolve_text(&body).unwrap_err());
        assert!(
            err.contains("m.toml:") && err.contains("exp") && err.contains("constant"),
            "{err}"
        );
    }

    /// `max_len` caps the loop below the model's context, never above it,
    /// and one under 2 tokens is refused at its line.
    #[test]
    fn max_len_caps_the_loop_and_a_bad_one_names_its_line() {
        let body = format!("{HEAD}annotation = \"cw\"\n[align]\nmax_len = 64\n");
        let cell = &resolve_text(&body).unwrap()[0].cells[0];
        let align = cell.settings.align.train();
        assert_eq!(align.max_len, Some(64));
        assert_eq!(align.max_len_within(256), 64);
        assert_eq!(align.max_len_within(32), 32);
        assert_eq!(cell.settings.sft.train().max_len_within(256), 256);
        let config = crate::train::TrainConfig::from_settings(&align, 0, 256);
        assert_eq!(config.max_len, 64);
        let body = format!("{HEAD}annotation = \"cw\"\n[align]\nmax_len = 1\n");
        let err = format!("{:#}", resolve_text(&body).unwrap_err());
        assert!(
            err.contains("m.toml:9:") && err.contains("`align.max_len = 1`"),
            "{err}"
        );
    }

    #[test]
    fn the_judge_resolves_per_cell_and_bad_choices_name_the_fix() {
        let body = format!(
            "{HEAD}annotation = \"human\"\n[axes]\n\"metric.gold\" = [\"true\", \"learned\"]\n"
        );
        let exps = resolve_text(&body).unwrap();
        let golds: Vec<&GoldSpec> = exps[0].cells.iter().map(|c| &c.gold).collect();
        assert_eq!(golds, [&GoldSpec::TrueReward, &GoldSpec::Learned]);
        assert_eq!(exps[0].cells[1].coords["gold"], "learned");
        // The default is the profile's judge.
        let exps = resolve_text(&format!("{HEAD}annotation = \"human\"\n")).unwrap();
        assert_eq!(exps[0].cells[0].gold, GoldSpec::TrueReward);

        let err = resolve_text(&format!(
            "{HEAD}annotation = \"human\"\n[metric]\ngold = \"gpt4\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m.toml:9:8") && err.contains("valid: profile, true, learned"),
            "{err}"
        );
        // A profile without [learned_gold] cannot train a learned judge.
        let mut profile = Profile::load("tiny").unwrap();
        profile.learned_gold = None;
        let metric = MetricBlock {
            tie_margin: 0.0,
            ties: Default::default(),
            gold: Some("learned".into()),
            win_rate: false,
        };
        let err = resolve_gold(&metric, "tldr", &profile).unwrap_err();
        assert!(err.contains("[learned_gold]"), "{err}");
        // The paper profile's datasets are real: no true reward there.
        let paper = Profile::load("paper").unwrap();
        let metric = MetricBlock {
            tie_margin: 0.0,
            ties: Default::default(),
            gold: Some("true".into()),
            win_rate: false,
        };
        let err = resolve_gold(&metric, "tldr", &paper).unwrap_err();
        assert!(err.contains("real dataset"), "{err}");
    }

    #[test]
    fn a_custom_loss_reaches_its_cell_checked_and_labelled_by_its_expression() {
        let body = format!(
            "{HEAD}annotation = \"cw\"\n[axes]\nobjective = [\"dpo\", \"custom\"]\n[align]\nloss = \"relu(1-beta*h)\"\n"
        );
        let exps = resolve_text(&body).unwrap();
        let cells = &exps[0].cells;
        assert_eq!(
            cells[0].loss,
            AlignLoss::BuiltIn(PreferenceObjective::dpo(0.5))
        );
        assert_eq!(cells[0].coords["objective"], "dpo");
        let AlignLoss::Custom(spec) = &cells[1].loss else {
            panic!("{:?}", cells[1].loss);
        };
        assert_eq!(spec.expression, "relu(1 - beta*h)");
        assert_eq!(cells[1].settings.objective, Objective::Custom);
        assert_eq!(cells[1].coords["objective"], "relu(1-beta*h)");

        let err = resolve_text(&format!(
            "{HEAD}annotation = \"cw\"\n[axes]\nobjective = [\"custom\"]\n[align]\nloss = \"h/0\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m.toml:11:11: `align.loss`") && err.contains("0 for every input"),
            "{err}"
        );
    }

    #[test]
    fn several_samples_need_sampling() {
        let err = resolve_text(&format!(
            "{HEAD}annotation = \"human\"\n[generate]\nsamples = 4\ntemperature = 0.0\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("m.toml:10:15") && err.contains("generate.samples = 4"),
            "{err}"
        );
        // `samples` from the profile, greedy decoding from the manifest: the
        // error points at the manifest's line.
        let err = resolve_text(&format!(
            "{HEAD}annotation = \"human\"\n[generate]\ntemperature = 0.0\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("m.toml:9:15"), "{err}");
        let ok = resolve_text(&format!(
            "{HEAD}annotation = \"human\"\n[generate]\nsamples = 4\ntemperature = 1.0\n"
        ))
        .unwrap();
        assert_eq!(ok[0].cells[0].settings.generate.samples, 4);
    }

    #[test]
    fn extends_inherits_the_base_and_the_child_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.toml"),
            "[defaults]\ndataset = \"ufb\"\npair = \"qwen\"\nobjective = \"ipo\"\nannotation = \"cw\"\n[align]\ntau = 0.2\neps = 0.3\n",
        )
        .unwrap();
        let child = dir.path().join("child.toml");
        std::fs::write(
            &child,
            "extends = \"base.toml\"\n[experiment]\nname = \"c\"\n[align]\ntau = 0.9\n",
        )
        .unwrap();
        let manifests = crate::manifest::load_all(&[dir.path().to_path_buf()]).unwrap();
        let exps = resolve(
            &manifests,
            &Profile::load("tiny").unwrap(),
            crate::stage::KINDS,
        )
        .unwrap();
        assert_eq!(exps.len(), 1, "the base defines no experiment");
        let s = &exps[0].cells[0].settings;
        assert_eq!(
            (
                s.dataset.as_str(),
                s.pair.as_str(),
                s.align.tau,
                s.align.eps
            ),
            ("ufb", "qwen", 0.9, 0.3)
        );
        assert_eq!(exps[0].title, "c", "the title defaults to the name");
    }
}
