//! The CW-PO pipeline shape, per sweep cell:
//!
//! ```text
//! dataset ─► split ─► weak_train ─► annotate ─► sft ─► ref_logps ─► align ─► generate ─► score ─► metric
//!    └─► pretrain (tiny models)      └─► weak_eval
//! ```
//! plus the shared reference: the human-label SFT model, its generation and
//! its scores (every cell's `metric` compares against it). Nodes are added
//! through [`Plan::add`], so a stage two cells share is one node. Each
//! stage's params hold only what that kind reads: an `[align]` setting never
//! reaches `weak_train`'s params, so it never re-keys the weak model.
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Key, Plan};
use crate::eval::GoldSpec;
use crate::manifest::resolve::Cell;
use crate::manifest::settings::{Annotation, TrainBlock};
use crate::profile::Profile;
use crate::stage::dataset::DatasetSource;
use crate::stage::params::{ModelSpec, TrainSettings};
use crate::stage::{self, KINDS, Stage};

/// Adds one cell's stages to a plan, stopping after the `until` kind.
pub struct CellBuilder<'p> {
    plan: &'p mut Plan,
    until: Option<usize>,
    /// Stages this cell asked for (counted even when already in the plan).
    pub stages_added: usize,
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

    /// Returns the key of the cell's last stage and of its weak evaluation.
    pub fn add_cell(&mut self, cell: &Cell, profile: &Profile) -> Result<(Key, Option<Key>)> {
        use stage::{
            align::Align, annotate::Annotate, dataset::Dataset, generate::Generate,
            gold_train::GoldTrain, metric::Metric, pretrain::Pretrain, ref_logps::RefLogps,
            score::Score, sft::Sft, split::Split, weak_eval::WeakEval, weak_train::WeakTrain,
        };
        let s = &cell.settings;
        let ds_name = &s.dataset;
        let seed = s.seed;
        let mut last: Option<Key> = None;
        let mut keep = |k: &Option<Key>| {
            if k.is_some() {
                last = k.clone();
            }
        };

        let dataset = self.add::<Dataset>(
            stage::dataset::Params {
                source: cell.dataset.clone(),
            },
            &[],
            ds_name.clone(),
        )?;
        keep(&dataset);
        let ds = dataset.as_ref();

        // Tiny models are pretrained from scratch on the dataset's corpus.
        let base = |this: &mut Self, (name, spec): &(String, ModelSpec)| -> Result<Option<Key>> {
            match (spec, &profile.pretrain, &cell.dataset) {
                (ModelSpec::Tiny(tiny), Some(p), DatasetSource::Synthetic { world, .. }) => {
                    this.add::<Pretrain>(
                        stage::pretrain::Params {
                            model: tiny.clone(),
                            world: world.clone(),
                            steps: p.steps,
                            learning_rate: p.learning_rate,
                            batch_size: p.batch_size,
                            seed: p.seed,
                        },
                        &[],
                        name.clone(),
                    )
                }
                _ => Ok(None),
            }
        };
        let weak_base = if cell.annotation == Annotation::Human {
            None
        } else {
            base(self, &cell.weak_model)?
        };
        let strong_base = base(self, &cell.strong_model)?;
        keep(&weak_base);
        keep(&strong_base);

        let split = self.add::<Split>(
            stage::split::Params {
                labeled_fraction: s.labeled_fraction,
                seed,
            },
            &[("dataset", ds)],
            format!("{ds_name}/f{}/seed{seed}", s.labeled_fraction),
        )?;
        keep(&split);
        let data = [("dataset", ds), ("split", split.as_ref())];

        // The weak annotator (not for human labels).
        let (mut weak_eval, mut annotation) = (None, None);
        let labeller = format!("{}-{}", cell.weak_model.0, s.weak_objective);
        if cell.annotation != Annotation::Human {
            let weak = self.add::<WeakTrain>(
                stage::weak_train::Params {
                    objective: s.weak_objective.clone(),
                    model: cell.weak_model.1.clone(),
                    train: train_settings(&s.weak),
                    beta: if s.weak_objective.contains("dpo") {
                        Some(s.weak.beta.unwrap_or(s.align.beta))
                    } else {
                        None
                    },
                    seed,
                },
                &[data[0], data[1], ("base", weak_base.as_ref())],
                format!("{ds_name}/{labeller}/seed{seed}"),
            )?;
            keep(&weak);
            let with_weak = [data[0], data[1], ("weak", weak.as_ref())];
            let batch_size = s.weak.batch_size;
            weak_eval = self.add::<WeakEval>(
                stage::weak_eval::Params { batch_size },
                &with_weak,
                format!("{ds_name}/{labeller}/seed{seed}"),
            )?;
            keep(&weak_eval);
            annotation = self.add::<Annotate>(
                stage::annotate::Params { batch_size },
                &with_weak,
                format!("{ds_name}/{labeller}/seed{seed}"),
            )?;
            keep(&annotation);
        }

        // SFT under human labels (the shared reference) and under this cell's labeller.
        let strong = &cell.strong_model;
        let sft_params = || stage::sft::Params {
            model: strong.1.clone(),
            train: train_settings(&s.sft),
            seed,
        };
        let human_sft = self.add::<Sft>(
            sft_params(),
            &[data[0], data[1], ("base", strong_base.as_ref())],
            format!("{ds_name}/{}/human/seed{seed}", strong.0),
        )?;
        keep(&human_sft);
        let sft = match &annotation {
            Some(_) => self.add::<Sft>(
                sft_params(),
                &[
                    data[0],
                    data[1],
                    ("base", strong_base.as_ref()),
                    ("annotation", annotation.as_ref()),
                ],
                format!("{ds_name}/{}/{labeller}/seed{seed}", strong.0),
            )?,
            None => human_sft.clone(),
        };
        keep(&sft);
        let ref_logps = self.add::<RefLogps>(
            stage::ref_logps::Params {
                batch_size: s.sft.batch_size,
            },
            &[
                data[0],
                data[1],
                ("sft", sft.as_ref()),
                ("annotation", annotation.as_ref()),
            ],
            format!(
                "{ds_name}/{}/{}/seed{seed}",
                strong.0,
                if annotation.is_some() {
                    labeller.as_str()
                } else {
                    "human"
                }
            ),
        )?;
        keep(&ref_logps);

        let a = &s.align;
        let (weighting, filter_top) = match cell.annotation {
            Annotation::Confidence => (a.weighting.clone(), None),
            Annotation::Top(n) => ("uniform".to_string(), Some(f64::from(n) / 100.0)),
            _ => ("uniform".to_string(), None),
        };
        let align = self.add::<Align>(
            stage::align::Params {
                objective: s.objective.clone(),
                beta: if s.objective == "ipo" { a.tau } else { a.beta },
                eps: (s.objective == "rdpo").then_some(a.eps),
                loss: a
                    .custom_loss(&s.objective)
                    .map_err(|e| anyhow::anyhow!(e.message))?,
                weighting,
                filter_top,
                train: TrainSettings {
                    learning_rate: a.learning_rate,
                    epochs: a.epochs,
                    batch_size: a.batch_size,
                    lora_rank: a.lora_rank,
                },
                seed,
            },
            &[
                data[0],
                data[1],
                ("sft", sft.as_ref()),
                ("ref_logps", ref_logps.as_ref()),
                ("annotation", annotation.as_ref()),
            ],
            format!(
                "{ds_name}/{}/{}-{}/seed{seed}",
                s.pair, s.annotation, s.objective
            ),
        )?;
        keep(&align);

        // The learned judge, once per world (tiny profile, `metric.gold = "learned"`).
        let gold_model = match (&cell.gold, &profile.learned_gold, &cell.dataset) {
            (GoldSpec::Learned, Some(learned), DatasetSource::Synthetic { world, .. }) => {
                let spec = profile
                    .model_spec(&learned.model)
                    .map_err(anyhow::Error::msg)?;
                let ModelSpec::Tiny(tiny) = &spec else {
                    anyhow::bail!("[learned_gold] model `{}` is not tiny", learned.model);
                };
                let gold_base = base(self, &(learned.model.clone(), spec.clone()))?;
                let gold = self.add::<GoldTrain>(
                    stage::gold_train::Params {
                        model: tiny.clone(),
                        world: world.clone(),
                        n_pairs: learned.n_pairs,
                        n_valid_pairs: learned.n_valid_pairs,
                        train: TrainSettings {
                            learning_rate: learned.learning_rate,
                            epochs: learned.epochs,
                            batch_size: learned.batch_size,
                            lora_rank: None,
                        },
                        seed: learned.seed,
                    },
                    &[("base", gold_base.as_ref())],
                    learned.model.clone(),
                )?;
                keep(&gold_base);
                keep(&gold);
                gold
            }
            (GoldSpec::Learned, ..) => {
                anyhow::bail!(
                    "`metric.gold = \"learned\"` needs the synthetic world and [learned_gold]"
                )
            }
            _ => None,
        };

        // Generate + score: the aligned policy, its own SFT model, the shared human SFT model.
        let g = &s.generate;
        let scored = |this: &mut Self, policy: &Option<Key>| -> Result<Option<Key>> {
            let Some(policy) = policy else {
                return Ok(None);
            };
            let node = this.plan.node(policy);
            let mut tail = node.map(|n| n.name.clone()).unwrap_or_default();
            // A pretrained model serves every dataset: name which one is generated.
            if node.is_some_and(|n| n.kind == Pretrain::KIND) {
                tail = format!("{tail}/{ds_name}");
            }
            let generation = this.add::<Generate>(
                stage::generate::Params {
                    temperature: g.temperature,
                    max_new_tokens: g.max_new_tokens,
                    num_prompts: g.num_prompts,
                    samples: g.samples,
                    seed,
                },
                &[("dataset", ds), ("policy", Some(policy))],
                tail.clone(),
            )?;
            let score = this.add::<Score>(
                stage::score::Params {
                    gold: cell.gold.clone(),
                },
                &[
                    ("dataset", ds),
                    ("generation", generation.as_ref()),
                    ("gold_model", gold_model.as_ref()),
                ],
                tail,
            )?;
            Ok(score.or(generation))
        };
        let align_score = scored(self, &align)?;
        let own_score = scored(self, &sft)?;
        let shared_score = scored(self, &human_sft)?;
        // The pretrained strong model, so every cell also shows whether SFT
        // improved on it (tiny profile; an HF base has no pretrain node).
        let base_score = scored(self, &strong_base)?;
        keep(&shared_score);
        keep(&own_score);
        keep(&align_score);
        let metric = self.add::<Metric>(
            stage::metric::Params {
                tie_margin: s.metric.tie_margin,
            },
            &[
                ("score", align_score.as_ref()),
                ("own_reference", own_score.as_ref()),
                ("shared_reference", shared_score.as_ref()),
                ("base_reference", base_score.as_ref()),
            ],
            format!(
                "{ds_name}/{}/{}-{}/seed{seed}",
                s.pair, s.annotation, s.objective
            ),
        )?;
        keep(&metric);
        Ok((last.expect("dataset is always planned"), weak_eval))
    }
}

fn train_settings(b: &TrainBlock) -> TrainSettings {
    TrainSettings {
        learning_rate: b.learning_rate,
        epochs: b.epochs,
        batch_size: b.batch_size,
        lora_rank: b.lora_rank,
    }
}
