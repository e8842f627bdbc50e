//! The CW-PO pipeline shape, per sweep cell:
//!
//! ```text
//! dataset ─► split ─► weak_train ─► annotate ─► sft ─► ref_logps ─► align ─► generate ─► score ─► metric
//!    └─► pretrain (tiny models)      └─► weak_eval                                     └─► win_rate
//! ```
//! (`win_rate` only under `metric.win_rate`; a mixture cell's `dataset` is
//! its pool, `spec::mixture`). Under `regime = "online"`, `ref_logps ─►
//! align` is `online_round` × `[online] rounds`, each round's policy the
//! next one's start (`stage::online_round`).
//! plus the shared reference: the human-label SFT model, its generation and
//! its scores (every cell's `metric` compares against it). Nodes are added
//! through [`Plan::add`], so a stage two cells share is one node. Each
//! stage's params hold only what that kind reads: an `[align]` setting never
//! reaches `weak_train`'s params, so it never re-keys the weak model.
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Key, Plan};
use crate::manifest::resolve::Cell;
use crate::profile::Profile;
use crate::spec::{
    Annotation, DEFAULT_WEAK_BETA, DatasetSource, GoldSpec, ModelSpec, Regime, TrainOn,
};
use crate::stage::{
    self, KINDS, Stage, align::Align, annotate::Annotate, dataset::Dataset, generate::Generate,
    gold_train::GoldTrain, gold_train::GoldTrainFiles, metric::Metric, online_round::OnlineRound,
    pretrain::Pretrain, ref_logps::RefLogps, score::Score, sft::Sft, split::Split,
    weak_eval::WeakEval, weak_train::WeakTrain, win_rate::WinRate,
};
use crate::train::AlignLoss;

/// Adds one cell's stages to a plan, stopping after the `until` kind.
pub struct CellBuilder<'p> {
    plan: &'p mut Plan,
    until: Option<usize>,
    /// Stages this cell asked for (counted even when already in the plan).
    pub stages_added: usize,
    /// The last stage planned so far: the cell's result once all are added.
    last: Option<Key>,
    /// The cell's `win_rate` stage, when `metric.win_rate` asks for one:
    /// its metrics join the cell's result.
    pub win_rate: Option<Key>,
}

/// The `dataset` and `split` inputs most stages read, and the dataset the
/// cell is evaluated on.
struct Data {
    /// The pairs D_L and D_U index: the cell's dataset, or a mixture's pool.
    dataset: Option<Key>,
    split: Option<Key>,
    /// The test prompts and judge of generation, scoring and win rate: the
    /// cell's dataset (the same node as `dataset` without a pool).
    eval: Option<Key>,
}

impl Data {
    fn roles(&self) -> [(&'static str, Option<&Key>); 2] {
        [
            ("dataset", self.dataset.as_ref()),
            ("split", self.split.as_ref()),
        ]
    }

    /// The inputs of a stage that trains on `train_on`'s pairs: every pair
    /// of the dataset needs no split, so those stages are shared by every
    /// labelled fraction.
    fn roles_for(&self, train_on: TrainOn) -> [(&'static str, Option<&Key>); 2] {
        let split = match train_on {
            TrainOn::All => None,
            TrainOn::Unlabeled | TrainOn::Labeled => self.split.as_ref(),
        };
        [("dataset", self.dataset.as_ref()), ("split", split)]
    }
}

/// The weak annotator of a cell (none under human labels).
struct Annotator {
    /// Readable name: weak model slot and weak objective.
    labeller: String,
    /// The trained weak model (`weak_train`), which online rounds read.
    weak: Option<Key>,
    eval: Option<Key>,
    annotation: Option<Key>,
}

/// The strong model's SFT starts: the shared human-label one and this cell's.
struct SftModels {
    human: Option<Key>,
    own: Option<Key>,
    ref_logps: Option<Key>,
}

impl<'p> CellBuilder<'p> {
    pub fn new(plan: &'p mut Plan, until: Option<&str>) -> Self {
        let until = until.map(|u| {
            KINDS
                .iter()
                .position(|k| *k == u)
                .expect("checked by resolve")
        });
        CellBuilder {
            plan,
            until,
            stages_added: 0,
            last: None,
            win_rate: None,
        }
    }

    fn wants(&self, kind: &str) -> bool {
        let pos = KINDS.iter().position(|k| *k == kind).expect("known kind");
        self.until.is_none_or(|u| pos <= u)
    }

    /// Adds a node of kind `S`; `None` when `S` is past `until`.
    fn add<S: Stage>(
        &mut self,
        params: S::Params,
        inputs: &[(&str, Option<&Key>)],
        name: String,
    ) -> Result<Option<Key>>
    where
        S::Params: Serialize,
    {
        if !self.wants(S::KIND) {
            return Ok(None);
        }
        let params = serde_json::to_value(params)
            .with_context(|| format!("serialising {} params", S::KIND))?;
        let inputs: BTreeMap<String, Key> = inputs
            .iter()
            .filter_map(|(role, key)| key.map(|k| (role.to_string(), k.clone())))
            .collect();
        self.stages_added += 1;
        Ok(Some(self.plan.add(
            S::KIND,
            S::VERSION,
            params,
            inputs,
            format!("{}/{name}", S::KIND),
        )))
    }

    /// Remembers `key` as the cell's latest stage, when it was planned.
    fn keep(&mut self, key: &Option<Key>) {
        if key.is_some() {
            self.last = key.clone();
        }
    }

    /// Returns the key of the cell's last stage and of its weak evaluation.
    pub fn add_cell(&mut self, cell: &Cell, profile: &Profile) -> Result<(Key, Option<Key>)> {
        let (dataset, eval) = self.add_dataset(cell)?;
        let weak_base = if !needs_weak_model(cell.annotation) {
            None
        } else {
            self.add_pretrain(cell, profile, &cell.weak_model)?
        };
        let strong_base = self.add_pretrain(cell, profile, &cell.strong_model)?;
        self.keep(&weak_base);
        self.keep(&strong_base);
        let data = self.add_split(cell, dataset, eval)?;
        let annotator = self.add_annotator(cell, &data, &weak_base)?;
        let sft = self.add_sft(cell, &data, &strong_base, &annotator)?;
        let gold_model = self.add_learned_gold(cell, profile)?;
        let align = match cell.settings.regime {
            Regime::Offline => self.add_align(cell, &data, &sft, &annotator)?,
            Regime::Online => self.add_online(cell, &data, &sft, &annotator, &gold_model)?,
        };
        self.add_evaluation(
            cell,
            profile,
            &data,
            &gold_model,
            &align,
            &sft,
            &strong_base,
        )?;
        let last = self.last.take().expect("dataset is always planned");
        Ok((last, annotator.eval))
    }

    /// The preference pairs and test prompts, as (training pairs, evaluated
    /// dataset). With a mixture, the training pairs are the pool's (every
    /// pool dataset's pairs; its test prompts, the first part's, go unread):
    /// one node for every cell of that pool, whatever dataset it is
    /// evaluated on, so those cells share D_L, D_U and every training stage.
    fn add_dataset(&mut self, cell: &Cell) -> Result<(Option<Key>, Option<Key>)> {
        let eval = self.add::<Dataset>(
            stage::dataset::Params {
                source: cell.dataset.clone(),
                pool: Vec::new(),
            },
            &[],
            cell.settings.dataset.clone(),
        )?;
        self.keep(&eval);
        let Some(first) = cell.pool.first() else {
            return Ok((eval.clone(), eval));
        };
        let names: Vec<&str> = cell.pool.iter().map(|p| p.name.as_str()).collect();
        let pool = self.add::<Dataset>(
            stage::dataset::Params {
                source: first.source.clone(),
                pool: cell.pool.clone(),
            },
            &[],
            format!("pool-{}", names.join("+")),
        )?;
        self.keep(&pool);
        Ok((pool, eval))
    }

    /// A tiny model pretrained from scratch on the dataset's corpus (`None`
    /// for an HF checkpoint, which is its own base).
    fn add_pretrain(
        &mut self,
        cell: &Cell,
        profile: &Profile,
        (name, spec): &(String, ModelSpec),
    ) -> Result<Option<Key>> {
        match (spec, &profile.pretrain, &cell.dataset) {
            (ModelSpec::Tiny(tiny), Some(p), DatasetSource::Synthetic { world, .. }) => self
                .add::<Pretrain>(
                stage::pretrain::Params {
                    model: tiny.clone(),
                    world: crate::data::synthetic::pretraining_world(world),
                    steps: p.steps,
                    learning_rate: p.learning_rate,
                    batch_size: p.batch_size,
                    seed: p.seed,
                },
                &[],
                name.clone(),
            ),
            _ => Ok(None),
        }
    }

    /// D_L / D_U: which pairs are labelled.
    fn add_split(&mut self, cell: &Cell, dataset: Option<Key>, eval: Option<Key>) -> Result<Data> {
        let s = &cell.settings;
        let split = self.add::<Split>(
            stage::split::Params {
                labeled_fraction: s.labeled_fraction,
                seed: s.seed,
                mixture: s.mixture.clone(),
            },
            &[("dataset", dataset.as_ref())],
            match &s.mixture {
                None => format!("{}/f{}/seed{}", s.dataset, s.labeled_fraction, s.seed),
                // Shared by every dataset the pool's cells are evaluated on.
                Some(m) => format!("pool/f{}/{}/seed{}", s.labeled_fraction, m.tag(), s.seed),
            },
        )?;
        self.keep(&split);
        Ok(Data {
            dataset,
            split,
            eval,
        })
    }

    /// The weak annotator: trained on D_L, evaluated, and labelling D_U
    /// (nothing under human labels).
    fn add_annotator(
        &mut self,
        cell: &Cell,
        data: &Data,
        weak_base: &Option<Key>,
    ) -> Result<Annotator> {
        let s = &cell.settings;
        let labeller = format!("{}-{}", cell.weak_model.0, s.weak_objective);
        let mut annotator = Annotator {
            labeller,
            weak: None,
            eval: None,
            annotation: None,
        };
        if !needs_weak_model(cell.annotation) {
            return Ok(annotator);
        }
        let name = format!("{}/{}/seed{}", s.dataset, annotator.labeller, s.seed);
        let [dataset, split] = data.roles();
        let weak = self.add::<WeakTrain>(
            stage::weak_train::Params {
                objective: s.weak_objective.clone(),
                model: cell.weak_model.1.clone(),
                train: s.weak.train(),
                // Its own β, never the align block's: an align.beta sweep
                // shares one annotator.
                beta: if s.weak_objective.contains("dpo") {
                    Some(s.weak.beta.unwrap_or(DEFAULT_WEAK_BETA))
                } else {
                    None
                },
                seed: s.seed,
            },
            &[dataset, split, ("base", weak_base.as_ref())],
            name.clone(),
        )?;
        self.keep(&weak);
        annotator.weak = weak.clone();
        let with_weak = [dataset, split, ("weak", weak.as_ref())];
        let batch_size = s.weak.batch_size;
        annotator.eval = self.add::<WeakEval>(
            stage::weak_eval::Params { batch_size },
            &with_weak,
            name.clone(),
        )?;
        self.keep(&annotator.eval);
        annotator.annotation =
            self.add::<Annotate>(stage::annotate::Params { batch_size }, &with_weak, name)?;
        self.keep(&annotator.annotation);
        Ok(annotator)
    }

    /// SFT under human labels (the shared reference) and under this cell's
    /// labeller (on D_L or every pair under `train_on`), and the reference
    /// log-probs of the pairs the cell aligns on under the latter.
    fn add_sft(
        &mut self,
        cell: &Cell,
        data: &Data,
        strong_base: &Option<Key>,
        annotator: &Annotator,
    ) -> Result<SftModels> {
        let s = &cell.settings;
        let strong = &cell.strong_model;
        let [dataset, split] = data.roles();
        let [own_dataset, own_split] = data.roles_for(s.train_on);
        let sft_params = |train_on| stage::sft::Params {
            model: strong.1.clone(),
            train: s.sft.train(),
            seed: s.seed,
            train_on,
        };
        let human = self.add::<Sft>(
            sft_params(TrainOn::Unlabeled),
            &[dataset, split, ("base", strong_base.as_ref())],
            format!("{}/{}/human/seed{}", s.dataset, strong.0, s.seed),
        )?;
        self.keep(&human);
        let labels = match (&annotator.annotation, s.train_on) {
            (Some(_), _) => annotator.labeller.clone(),
            (None, TrainOn::Unlabeled) => "human".to_string(),
            (None, train_on) => format!("human-{train_on}"),
        };
        let own = match (&annotator.annotation, s.train_on) {
            (None, TrainOn::Unlabeled) => human.clone(),
            _ => self.add::<Sft>(
                sft_params(s.train_on),
                &[
                    own_dataset,
                    own_split,
                    ("base", strong_base.as_ref()),
                    ("annotation", annotator.annotation.as_ref()),
                ],
                format!("{}/{}/{labels}/seed{}", s.dataset, strong.0, s.seed),
            )?,
        };
        self.keep(&own);
        if s.regime == Regime::Online {
            // Online rounds compute the reference log-probs of their own pairs.
            return Ok(SftModels {
                human,
                own,
                ref_logps: None,
            });
        }
        let ref_logps = self.add::<RefLogps>(
            stage::ref_logps::Params {
                batch_size: s.sft.batch_size,
                train_on: s.train_on,
                max_len: s.align.train().max_len,
            },
            &[
                own_dataset,
                own_split,
                ("sft", own.as_ref()),
                ("annotation", annotator.annotation.as_ref()),
            ],
            format!("{}/{}/{labels}/seed{}", s.dataset, strong.0, s.seed),
        )?;
        self.keep(&ref_logps);
        Ok(SftModels {
            human,
            own,
            ref_logps,
        })
    }

    /// Preference optimisation of the cell's SFT model on D_U (or on
    /// `train_on`'s pairs), with the
    /// loss and weighting resolved from the manifest (a custom loss arrives
    /// parsed, checked and canonical: `Cell.loss`, see `manifest::resolve`).
    fn add_align(
        &mut self,
        cell: &Cell,
        data: &Data,
        sft: &SftModels,
        annotator: &Annotator,
    ) -> Result<Option<Key>> {
        let s = &cell.settings;
        let filter_top = match cell.annotation {
            Annotation::Top(n) => Some(f64::from(n) / 100.0),
            _ => None,
        };
        let [dataset, split] = data.roles_for(s.train_on);
        let align = self.add::<Align>(
            stage::align::Params {
                objective: cell.loss.clone(),
                weighting: cell.weighting.clone(),
                filter_top,
                train: s.align.train(),
                seed: s.seed,
                train_on: s.train_on,
            },
            &[
                dataset,
                split,
                ("sft", sft.own.as_ref()),
                ("ref_logps", sft.ref_logps.as_ref()),
                ("annotation", annotator.annotation.as_ref()),
            ],
            cell_name(cell),
        )?;
        self.keep(&align);
        Ok(align)
    }

    /// Online DPO: `[online] rounds` rounds, round 1 from the cell's SFT
    /// model and each later one from the previous round's policy, all
    /// against that SFT model; the last round's policy is evaluated as an
    /// aligned one is. Labelled by the judge (`reward-model`) or the weak
    /// annotator (`cw`, `ws`).
    fn add_online(
        &mut self,
        cell: &Cell,
        data: &Data,
        sft: &SftModels,
        annotator: &Annotator,
        gold_model: &Option<Key>,
    ) -> Result<Option<Key>> {
        let s = &cell.settings;
        let AlignLoss::BuiltIn(objective) = &cell.loss else {
            anyhow::bail!("online rounds train a built-in objective (checked by resolve)");
        };
        let labeller = match cell.annotation {
            Annotation::RewardModel => stage::online_round::Labeller::RewardModel,
            _ => stage::online_round::Labeller::Weak,
        };
        let [dataset, split] = data.roles();
        let mut policy = sft.own.clone();
        for round in 1..=s.online.rounds {
            let key = self.add::<OnlineRound>(
                stage::online_round::Params {
                    round,
                    rounds: s.online.rounds,
                    prompts_per_round: s.online.prompts_per_round,
                    labeller: labeller.clone(),
                    gold: cell.gold.clone(),
                    weighting: cell.weighting.clone(),
                    objective: *objective,
                    train: s.align.train(),
                    temperature: s.online.temperature,
                    max_new_tokens: s.online.max_new_tokens,
                    batch_size: s.weak.batch_size,
                    seed: s.seed,
                },
                &[
                    dataset,
                    split,
                    ("policy", policy.as_ref()),
                    ("sft", sft.own.as_ref()),
                    ("weak", annotator.weak.as_ref()),
                    ("gold_model", gold_model.as_ref()),
                ],
                format!("{}/round{round}", cell_name(cell)),
            )?;
            self.keep(&key);
            policy = key;
        }
        Ok(policy)
    }

    /// The learned judge, once per world (tiny profile, `metric.gold = "learned"`),
    /// or once per profile when it learns from files (`smollm2`).
    fn add_learned_gold(&mut self, cell: &Cell, profile: &Profile) -> Result<Option<Key>> {
        if let (GoldSpec::Learned, Some(learned), Some(pairs)) = (
            &cell.gold,
            &profile.learned_gold,
            profile.learned_gold_files().map_err(anyhow::Error::msg)?,
        ) {
            let gold = self.add::<GoldTrainFiles>(
                stage::gold_train::FilesParams {
                    model: profile
                        .model_spec(&learned.model)
                        .map_err(anyhow::Error::msg)?,
                    pairs,
                    n_pairs: learned.n_pairs,
                    n_valid_pairs: learned.n_valid_pairs,
                    train: learned.train(),
                    seed: learned.seed,
                },
                &[],
                learned.model.clone(),
            )?;
            self.keep(&gold);
            return Ok(gold);
        }
        let (GoldSpec::Learned, Some(learned), DatasetSource::Synthetic { world, .. }) =
            (&cell.gold, &profile.learned_gold, &cell.dataset)
        else {
            anyhow::ensure!(
                cell.gold != GoldSpec::Learned,
                "`metric.gold = \"learned\"` needs the synthetic world and [learned_gold]"
            );
            return Ok(None);
        };
        let spec = profile
            .model_spec(&learned.model)
            .map_err(anyhow::Error::msg)?;
        let ModelSpec::Tiny(tiny) = &spec else {
            anyhow::bail!("[learned_gold] model `{}` is not tiny", learned.model);
        };
        let gold_base = self.add_pretrain(cell, profile, &(learned.model.clone(), spec.clone()))?;
        let gold = self.add::<GoldTrain>(
            stage::gold_train::Params {
                model: tiny.clone(),
                world: world.clone(),
                n_pairs: learned.n_pairs,
                n_valid_pairs: learned.n_valid_pairs,
                train: learned.train(),
                seed: learned.seed,
            },
            &[("base", gold_base.as_ref())],
            learned.model.clone(),
        )?;
        self.keep(&gold_base);
        self.keep(&gold);
        Ok(gold)
    }

    /// Generations of `policy` on the test prompts, scored by the cell's judge.
    fn add_scored(
        &mut self,
        cell: &Cell,
        data: &Data,
        gold_model: &Option<Key>,
        policy: &Option<Key>,
    ) -> Result<Option<Key>> {
        let Some(policy) = policy else {
            return Ok(None);
        };
        let (s, g) = (&cell.settings, &cell.settings.generate);
        let node = self.plan.node(policy);
        let mut tail = node.map(|n| n.name.clone()).unwrap_or_default();
        // A pretrained model serves every dataset: name which one is generated.
        if node.is_some_and(|n| n.kind == Pretrain::KIND) {
            tail = format!("{tail}/{}", s.dataset);
        }
        let generation = self.add::<Generate>(
            stage::generate::Params {
                temperature: g.temperature,
                max_new_tokens: g.max_new_tokens,
                num_prompts: g.num_prompts,
                samples: g.samples,
                seed: s.seed,
                top_p: g.top_p,
            },
            &[("dataset", data.eval.as_ref()), ("policy", Some(policy))],
            tail.clone(),
        )?;
        let score = self.add::<Score>(
            stage::score::Params {
                gold: cell.gold.clone(),
            },
            &[
                ("dataset", data.eval.as_ref()),
                ("generation", generation.as_ref()),
                ("gold_model", gold_model.as_ref()),
            ],
            tail,
        )?;
        Ok(score.or(generation))
    }

    /// Generate + score the aligned policy, its own SFT model, the shared
    /// human SFT model and the pretrained strong model (so every cell also
    /// shows whether SFT improved on it; tiny profile only), then GRA.
    #[allow(clippy::too_many_arguments)]
    fn add_evaluation(
        &mut self,
        cell: &Cell,
        profile: &Profile,
        data: &Data,
        gold_model: &Option<Key>,
        align: &Option<Key>,
        sft: &SftModels,
        strong_base: &Option<Key>,
    ) -> Result<()> {
        let align_score = self.add_scored(cell, data, gold_model, align)?;
        let own_score = self.add_scored(cell, data, gold_model, &sft.own)?;
        let shared_score = self.add_scored(cell, data, gold_model, &sft.human)?;
        let base_score = self.add_scored(cell, data, gold_model, strong_base)?;
        self.keep(&shared_score);
        self.keep(&own_score);
        self.keep(&align_score);
        let metric = self.add::<Metric>(
            stage::metric::Params {
                tie_margin: cell.settings.metric.tie_margin,
                ties: cell.settings.metric.ties,
                samples: cell.settings.generate.samples,
            },
            &[
                ("score", align_score.as_ref()),
                ("own_reference", own_score.as_ref()),
                ("shared_reference", shared_score.as_ref()),
                ("base_reference", base_score.as_ref()),
            ],
            cell_name(cell),
        )?;
        self.keep(&metric);
        if cell.settings.metric.win_rate {
            // Real datasets are judged pairwise by the profile's judge model.
            let judge = match &cell.dataset {
                crate::spec::DatasetSource::Files { .. } => {
                    profile.judge_path().map_err(anyhow::Error::msg)?
                }
                crate::spec::DatasetSource::Synthetic { .. } => None,
            };
            self.win_rate = self.add_win_rate(cell, data, gold_model, &align_score, judge)?;
        }
        Ok(())
    }

    /// The aligned policy's scored answers against the dataset's chosen
    /// responses (Table 17), by the cell's judge.
    fn add_win_rate(
        &mut self,
        cell: &Cell,
        data: &Data,
        gold_model: &Option<Key>,
        align_score: &Option<Key>,
        judge: Option<std::path::PathBuf>,
    ) -> Result<Option<Key>> {
        let Some(score) = align_score else {
            return Ok(None);
        };
        let generation = self
            .plan
            .node(score)
            .and_then(|n| n.inputs.get("generation").cloned());
        let m = &cell.settings.metric;
        self.add::<WinRate>(
            stage::win_rate::Params {
                gold: cell.gold.clone(),
                tie_margin: m.tie_margin,
                ties: m.ties,
                judge,
            },
            &[
                ("dataset", data.eval.as_ref()),
                ("generation", generation.as_ref()),
                ("score", Some(score)),
                ("gold_model", gold_model.as_ref()),
            ],
            cell_name(cell),
        )
    }
}

/// Whether a cell's labels come from a trained weak model (not humans, not
/// the judge).
fn needs_weak_model(annotation: Annotation) -> bool {
    !matches!(annotation, Annotation::Human | Annotation::RewardModel)
}

/// The readable name of a cell's own stages (`align`, `metric`).
fn cell_name(cell: &Cell) -> String {
    let s = &cell.settings;
    let on = match (s.train_on, s.regime) {
        (_, Regime::Online) => "-online".to_string(),
        (TrainOn::Unlabeled, _) => String::new(),
        (other, _) => format!("-{other}"),
    };
    format!(
        "{}/{}/{}{on}-{}/seed{}",
        s.dataset, s.pair, s.annotation, s.objective, s.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load_all, resolve::resolve};
    use crate::plan::Node;

    fn plan_of(body: &str) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, body).unwrap();
        let profile = Profile::load("tiny").unwrap();
        let experiments = resolve(&load_all(&[path]).unwrap(), &profile, KINDS).unwrap();
        Plan::build(&experiments, &profile, 100_000).unwrap()
    }

    /// The nodes of `kind` whose params say `train_on = want` (absent: D_U).
    fn nodes<'a>(plan: &'a Plan, kind: &str, want: &str) -> Vec<&'a Node> {
        plan.graph
            .node_weights()
            .filter(|n| n.kind == kind)
            .filter(|n| {
                n.params
                    .get("train_on")
                    .map_or("unlabeled", |v| v.as_str().unwrap())
                    == want
            })
            .collect()
    }

    #[test]
    fn train_on_gives_human_cells_their_own_sft_ref_logps_and_align() {
        let plan = plan_of(
            "[experiment]\nname = \"t\"\n[defaults]\ndataset = \"hh-rlhf\"\npair = \"opt\"\n\
             objective = \"dpo\"\nannotation = \"human\"\n[axes]\n\
             train_on = [\"unlabeled\", \"labeled\", \"all\"]\nlabeled_fraction = [0.2, 0.3]\n",
        );
        for kind in ["sft", "ref_logps", "align"] {
            // The default writes no `train_on`: the keys cells had before it.
            assert!(
                nodes(&plan, kind, "unlabeled")
                    .iter()
                    .all(|n| n.params.get("train_on").is_none()),
                "{kind}"
            );
            // One per fraction on D_L; one for both fractions on every pair,
            // which reads no split.
            let labeled = nodes(&plan, kind, "labeled");
            let all = nodes(&plan, kind, "all");
            assert_eq!((labeled.len(), all.len()), (2, 1), "{kind}");
            assert!(
                labeled.iter().all(|n| n.inputs.contains_key("split")),
                "{kind}"
            );
            assert!(!all[0].inputs.contains_key("split"), "{kind}");
            assert!(!all[0].inputs.contains_key("annotation"), "{kind}");
        }
        // Each baseline starts from (and is referenced by) the SFT model of
        // its own pairs, not the shared human one on D_U.
        for train_on in ["labeled", "all"] {
            let sfts: Vec<&Key> = nodes(&plan, "sft", train_on)
                .iter()
                .map(|n| &n.key)
                .collect();
            for align in nodes(&plan, "align", train_on) {
                assert!(sfts.contains(&&align.inputs["sft"]), "{}", align.name);
            }
        }
        // The shared human SFT (D_U, per fraction) is every metric's shared reference.
        assert_eq!(nodes(&plan, "sft", "unlabeled").len(), 2);
        assert_eq!(plan.experiments[0].cells.len(), 6);
    }

    /// Online cells chain `[online] rounds` rounds: round 1 starts from
    /// the cell's SFT model, round r from round r−1, each against that SFT
    /// model, and the last round is what is generated and scored; they plan
    /// no `ref_logps` or `align`, and Online DPO (`reward-model`) no weak
    /// model. The offline cell of the same manifest keeps its `align`.
    #[test]
    fn online_rounds_chain_from_the_sft_model() {
        let plan = plan_of(
            "[experiment]\nname = \"t\"\n[defaults]\ndataset = \"hh-rlhf\"\npair = \"opt\"\n\
             objective = \"dpo\"\n[online]\nrounds = 3\n[axes]\n\
             regime = [\"online\", \"offline\"]\nannotation = [\"reward-model\", \"cw\"]\n\
             exclude = [{ regime = \"offline\", annotation = \"reward-model\" }]\n",
        );
        let of_kind = |kind: &str| -> Vec<&Node> {
            plan.graph
                .node_weights()
                .filter(|n| n.kind == kind)
                .collect()
        };
        let rounds = of_kind("online_round");
        assert_eq!(rounds.len(), 2 * 3, "3 rounds per online cell");
        let by_key: BTreeMap<&Key, &Node> = rounds.iter().map(|n| (&n.key, *n)).collect();
        for n in &rounds {
            let p: stage::online_round::Params = serde_json::from_value(n.params.clone()).unwrap();
            let start = &n.inputs["policy"];
            if p.round == 1 {
                assert_eq!(start, &n.inputs["sft"], "{}", n.name);
            } else {
                let previous = by_key[start];
                assert_eq!(previous.params["round"], (p.round - 1) as u64, "{}", n.name);
                assert_eq!(previous.inputs["sft"], n.inputs["sft"]);
            }
            let weak = n.inputs.contains_key("weak");
            match p.labeller {
                stage::online_round::Labeller::RewardModel => assert!(!weak, "{}", n.name),
                stage::online_round::Labeller::Weak => {
                    assert!(weak, "{}", n.name);
                    assert_eq!(p.weighting.to_string(), "cw");
                }
            }
        }
        // The last rounds are generated; the first two rounds are not.
        let generated: Vec<&Key> = of_kind("generate")
            .iter()
            .map(|n| &n.inputs["policy"])
            .collect();
        for n in &rounds {
            let round = n.params["round"].as_u64().unwrap();
            assert_eq!(generated.contains(&&n.key), round == 3, "{}", n.name);
        }
        assert_eq!(of_kind("align").len(), 1, "the offline cw cell only");
        assert_eq!(of_kind("ref_logps").len(), 1, "the offline cw cell only");
        assert_eq!(of_kind("weak_train").len(), 1, "shared by the cw cells");
        assert_eq!(plan.experiments[0].cells.len(), 3);
    }

    /// WS-DPO's weak LM is SFT then DPO (the paper's §4.3) with `weak.beta`'s
    /// own default, whatever the align block's β; a manifest that names
    /// `weak_objective = "dpo"` keeps plain DPO (Table 6's other column),
    /// and `weak.beta` is read when set.
    #[test]
    fn ws_cells_train_sft_then_dpo_with_their_own_beta() {
        let head = "[experiment]\nname = \"t\"\n[defaults]\ndataset = \"hh-rlhf\"\n\
                    pair = \"opt\"\nobjective = \"dpo\"\nannotation = \"ws\"\n";
        let weak = |body: &str| -> Vec<(String, f64)> {
            let plan = plan_of(body);
            plan.graph
                .node_weights()
                .filter(|n| n.kind == "weak_train")
                .map(|n| {
                    let p: stage::weak_train::Params =
                        serde_json::from_value(n.params.clone()).unwrap();
                    (p.objective, p.beta.unwrap())
                })
                .collect()
        };
        let got = weak(&format!("{head}[align]\nbeta = 0.2\n"));
        assert_eq!(got, [("sft_dpo".to_string(), DEFAULT_WEAK_BETA)]);
        let got = weak(&format!(
            "{head}weak_objective = \"dpo\"\n[weak]\nbeta = 0.3\n"
        ));
        assert_eq!(got, [("dpo".to_string(), 0.3)]);
    }
}
