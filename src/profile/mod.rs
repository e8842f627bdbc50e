//! Profiles bind the slot names a manifest uses (`dataset = "hh-rlhf"`,
//! `pair = "opt"`, the gold scorer) to concrete specs: tiny synthetic ones
//! (`tiny`, embedded in the binary) or local real checkpoints and files
//! (`paper`). Manifests never name a concrete model, so one manifest runs
//! under both.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::{Diagnostic, Diagnostics, Loc, Source, from_toml_error};
use crate::spec::{
    DatasetFormat, DatasetSource, GoldSpec, ModelSpec, TinyModelSpec, TrainSettings,
};

/// The embedded default profile, so `sweep run` works from any directory.
pub const TINY_TOML: &str = include_str!("../../experiments/profiles/tiny.toml");
/// The paper profile (real checkpoints under `${CWPO_MODELS}`, data under `${CWPO_DATA}`).
pub const PAPER_TOML: &str = include_str!("../../experiments/profiles/paper.toml");
/// The real-model smoke profile: SmolLM2-135M GGUF in every slot, HH-layout
/// world data under assets/smollm2/ (paths relative to the repository root).
pub const SMOLLM2_TOML: &str = include_str!("../../experiments/profiles/smollm2.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The synthetic world's `WorldConfig` (a manifest's `[world]` overrides keys).
    #[serde(default)]
    pub world: serde_json::Map<String, serde_json::Value>,
    /// Settings applied before a manifest's own `[defaults]` (same keys).
    #[serde(default)]
    pub defaults: toml::Table,
    /// Present for profiles whose models are trained from scratch.
    #[serde(default)]
    pub pretrain: Option<PretrainSettings>,
    /// The judge of every dataset that names none of its own.
    pub gold: GoldSpec,
    /// The pairwise judge of real datasets' win rates (Table 17's GPT-4,
    /// replaced by a local instruct model; `eval::judge`).
    #[serde(default)]
    pub judge: Option<JudgeSlot>,
    /// How the `learned` judge is trained (`metric.gold = "learned"`, tiny profile).
    #[serde(default)]
    pub learned_gold: Option<LearnedGoldSettings>,
    pub datasets: BTreeMap<String, DatasetSlot>,
    pub models: BTreeMap<String, ModelSlot>,
    pub pairs: BTreeMap<String, PairSlot>,
    /// Cluster settings of `--executor slurm`, checked by `exec::slurm::settings`.
    #[serde(default)]
    pub slurm: Option<toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSettings {
    pub steps: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
}

/// The `learned` judge: a reward model of a strong size, trained once per
/// world on its own large gold-labelled set (the `gold_train` stage), as the
/// paper's Skywork RM is itself a learned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedGoldSettings {
    /// The model slot it starts from (pretrained; the largest strong size).
    pub model: String,
    /// Gold-labelled training pairs, drawn over every family.
    pub n_pairs: usize,
    /// Held-out gold-labelled pairs per family, for its agreement with the true reward.
    pub n_valid_pairs: usize,
    pub learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// A profile of real models (`smollm2`): the judge's gold-labelled pairs
    /// as files (`train` to learn, `test` held out) instead of the world's,
    /// and `model` an HF dir or GGUF file (`stage::gold_train` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<DatasetFiles>,
}

impl LearnedGoldSettings {
    /// The judge's training block (both `gold_train` kinds).
    pub fn train(&self) -> TrainSettings {
        TrainSettings::new(self.learning_rate, self.epochs, self.batch_size, None)
    }
}

/// `judge = { stands_for = "...", path = "..." }`: an instruct decoder (an
/// HF dir with a chat template, or an instruct GGUF file) that compares two
/// responses pairwise (`win_rate` on real datasets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSlot {
    /// The public checkpoint it is (reports print it).
    pub stands_for: String,
    pub path: String,
}

/// A dataset name: a synthetic family or real files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSlot {
    /// The real dataset this slot stands for (reports print it).
    pub stands_for: String,
    #[serde(default)]
    pub synthetic: Option<String>,
    #[serde(default)]
    pub files: Option<DatasetFiles>,
    /// This dataset's judge, if not the profile's `gold` (the paper judges
    /// TL;DR with OpenAssistant's RM and SHP with SteamSHP).
    #[serde(default)]
    pub gold: Option<GoldSpec>,
    /// Why this family fails the calibration precondition (alignment on
    /// clean or human labels does not beat its own SFT model; docs/world.md),
    /// if it does: every report with rows of this dataset marks them `†` and
    /// prints this reason, so nobody reads its orderings as evidence.
    #[serde(default)]
    pub fails_calibration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFiles {
    pub format: DatasetFormat,
    pub train: String,
    pub test: String,
}

impl DatasetFiles {
    /// The files as a dataset source (`${VAR}`s expanded).
    pub fn source(&self) -> Result<DatasetSource, String> {
        Ok(DatasetSource::Files {
            format: self.format,
            train: expand_env(&self.train)?.into(),
            test: expand_env(&self.test)?.into(),
        })
    }
}

/// A model name: a tiny spec or a local HF dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSlot {
    pub stands_for: String,
    #[serde(default)]
    pub tiny: Option<TinyModelSpec>,
    #[serde(default)]
    pub path: Option<String>,
}

/// A weak/strong pair as the paper's tables name them (`opt`, `qwen`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSlot {
    pub weak: String,
    pub strong: String,
}

impl Profile {
    /// `--profile NAME` (`tiny`, `paper`, `smollm2`: embedded) or `--profile FILE`.
    /// Errors are diagnostics (exit 2).
    pub fn load(name_or_path: &str) -> Result<Profile, Diagnostics> {
        let (path, text) = match name_or_path {
            "tiny" => (
                PathBuf::from("<embedded>/experiments/profiles/tiny.toml"),
                TINY_TOML.to_string(),
            ),
            "paper" => (
                PathBuf::from("<embedded>/experiments/profiles/paper.toml"),
                PAPER_TOML.to_string(),
            ),
            "smollm2" => (
                PathBuf::from("<embedded>/experiments/profiles/smollm2.toml"),
                SMOLLM2_TOML.to_string(),
            ),
            other => {
                let path = PathBuf::from(other);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    one(Diagnostic::file(
                        &path,
                        format!("cannot read profile: {e}; use `tiny`, `paper`, `smollm2` or the path of a profile TOML file"),
                    ))
                })?;
                (path, text)
            }
        };
        Self::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Profile, Diagnostics> {
        let source = Arc::new(Source {
            path: path.to_owned(),
            text: text.into(),
        });
        let profile: Profile =
            toml::from_str(text).map_err(|e| one(from_toml_error(&source, &e)))?;
        let mut errors = Diagnostics::default();
        let file = Loc::new(&source, None);
        for (name, slot) in &profile.datasets {
            if slot.synthetic.is_some() == slot.files.is_some() {
                errors.push(Diagnostic::at(
                    &file,
                    format!("dataset `{name}`: set exactly one of `synthetic` or `files`"),
                ));
            }
        }
        for (name, slot) in &profile.models {
            if slot.tiny.is_some() == slot.path.is_some() {
                errors.push(Diagnostic::at(
                    &file,
                    format!("model `{name}`: set exactly one of `tiny` or `path`"),
                ));
            }
            if slot.tiny.is_some() && profile.pretrain.is_none() {
                errors.push(Diagnostic::at(
                    &file,
                    format!("model `{name}` is tiny but the profile has no [pretrain]"),
                ));
            }
        }
        for (name, pair) in &profile.pairs {
            for model in [&pair.weak, &pair.strong] {
                if !profile.models.contains_key(model) {
                    errors.push(Diagnostic::at(
                        &file,
                        format!(
                            "pair `{name}`: unknown model `{model}`; models: {}",
                            keys(&profile.models)
                        ),
                    ));
                }
            }
        }
        if let Some(learned) = &profile.learned_gold {
            match profile.models.get(&learned.model) {
                Some(slot) if slot.tiny.is_some() == learned.files.is_none() => {}
                Some(_) if learned.files.is_some() => errors.push(Diagnostic::at(
                    &file,
                    format!(
                        "[learned_gold]: model `{}` is tiny but `files` is set; a judge on files starts from a `path` model",
                        learned.model
                    ),
                )),
                Some(_) => errors.push(Diagnostic::at(
                    &file,
                    format!(
                        "[learned_gold]: model `{}` is not tiny; a learned judge is trained on the synthetic world \
                         unless [learned_gold] names gold-labelled `files`",
                        learned.model
                    ),
                )),
                None => errors.push(Diagnostic::at(
                    &file,
                    format!(
                        "[learned_gold]: unknown model `{}`; models: {}",
                        learned.model,
                        keys(&profile.models)
                    ),
                )),
            }
        }
        errors.into_result()?;
        Ok(profile)
    }

    /// The dataset source of slot `name` (`${VAR}`s expanded).
    pub fn dataset_source(&self, name: &str) -> Result<DatasetSource, String> {
        let slot = self
            .datasets
            .get(name)
            .ok_or_else(|| unknown("dataset", name, keys(&self.datasets)))?;
        Ok(match (&slot.synthetic, &slot.files) {
            (Some(family), _) => DatasetSource::Synthetic {
                family: family.clone(),
                world: serde_json::Value::Object(self.world.clone()),
            },
            (None, Some(files)) => files.source()?,
            (None, None) => unreachable!("checked by Profile::parse"),
        })
    }

    /// The learned judge's gold-labelled pair files, if the profile trains
    /// it on files (`[learned_gold] files`, `${VAR}`s expanded).
    pub fn learned_gold_files(&self) -> Result<Option<DatasetSource>, String> {
        let files = self.learned_gold.as_ref().and_then(|l| l.files.as_ref());
        files.map(DatasetFiles::source).transpose()
    }

    /// The judge of dataset slot `name`: its own `gold`, else the profile's
    /// (`${VAR}`s in paths expanded).
    pub fn gold_for(&self, name: &str) -> Result<GoldSpec, String> {
        let slot = self
            .datasets
            .get(name)
            .ok_or_else(|| unknown("dataset", name, keys(&self.datasets)))?;
        let spec = slot.gold.as_ref().unwrap_or(&self.gold);
        let expand =
            |p: &Path| -> Result<PathBuf, String> { Ok(expand_env(&p.to_string_lossy())?.into()) };
        Ok(match spec {
            GoldSpec::RewardModel { path } => GoldSpec::RewardModel {
                path: expand(path)?,
            },
            GoldSpec::DebertaReward { path } => GoldSpec::DebertaReward {
                path: expand(path)?,
            },
            GoldSpec::Steamshp { path } => GoldSpec::Steamshp {
                path: expand(path)?,
            },
            other => other.clone(),
        })
    }

    /// The pairwise judge's path (`${VAR}`s expanded), if the profile has one.
    pub fn judge_path(&self) -> Result<Option<PathBuf>, String> {
        self.judge
            .as_ref()
            .map(|j| expand_env(&j.path).map(PathBuf::from))
            .transpose()
    }

    /// The concrete model of slot `name` (`${VAR}`s expanded).
    pub fn model_spec(&self, name: &str) -> Result<ModelSpec, String> {
        let slot = self
            .models
            .get(name)
            .ok_or_else(|| unknown("model", name, keys(&self.models)))?;
        Ok(match (&slot.tiny, &slot.path) {
            (Some(tiny), _) => ModelSpec::Tiny(tiny.clone()),
            (None, Some(path)) => ModelSpec::Hf {
                path: expand_env(path)?.into(),
            },
            (None, None) => unreachable!("checked by Profile::parse"),
        })
    }

    /// Every local path the slots point to that does not exist, with a hint
    /// on how to obtain it (`sweep validate` reports them).
    pub fn missing_paths(&self, datasets: &[&str], models: &[&str]) -> Vec<String> {
        let mut missing = Vec::new();
        for name in datasets {
            if let Ok(DatasetSource::Files { train, test, .. }) = self.dataset_source(name) {
                for p in [train, test] {
                    if !p.exists() {
                        let what = &self.datasets[*name].stands_for;
                        missing.push(format!(
                            "dataset `{name}`: {} does not exist; download {what} and set its path",
                            p.display()
                        ));
                    }
                }
            }
        }
        if let Ok(Some(DatasetSource::Files { train, test, .. })) = self.learned_gold_files() {
            for p in [train, test].iter().filter(|p| !p.exists()) {
                missing.push(format!(
                    "[learned_gold] files: {} does not exist; write the judge's gold-labelled pairs \
                     (`sweep world export-hh`) or run from the directory the profile's paths are relative to",
                    p.display()
                ));
            }
        }
        for name in datasets {
            if let Ok(gold) = self.gold_for(name)
                && let Some(path) = gold.path()
                && !path.join("config.json").exists()
            {
                missing.push(format!(
                    "gold judge of dataset `{name}` ({}): {}/config.json does not exist; get it with \
                     `huggingface-cli download {} --local-dir {}`",
                    gold.kind_name(),
                    path.display(),
                    public_name_of_gold(&gold),
                    path.display()
                ));
            }
        }
        for name in models {
            match self.model_spec(name) {
                // A GGUF file (SmolLM2, `smollm2` profile) is fetched by a script.
                Ok(ModelSpec::Hf { path })
                    if path.extension().is_some_and(|e| e == "gguf") && !path.is_file() =>
                {
                    missing.push(format!(
                        "model `{name}`: {} does not exist; run scripts/fetch-smollm2.sh from the repository root",
                        path.display()
                    ));
                }
                Ok(ModelSpec::Hf { path })
                    if path.extension().is_none_or(|e| e != "gguf")
                        && !path.join("config.json").exists() =>
                {
                    let what = &self.models[*name].stands_for;
                    missing.push(format!(
                        "model `{name}`: {}/config.json does not exist; get it with `huggingface-cli download {what} --local-dir {}`",
                        path.display(),
                        path.display()
                    ));
                }
                Err(e) => missing.push(e),
                _ => {}
            }
        }
        missing
    }
}

/// The public checkpoint a paper judge is downloaded as.
fn public_name_of_gold(gold: &GoldSpec) -> &'static str {
    match gold {
        GoldSpec::DebertaReward { .. } => "OpenAssistant/reward-model-deberta-v3-large-v2",
        GoldSpec::Steamshp { .. } => "stanfordnlp/SteamSHP-flan-t5-large",
        _ => "Skywork/Skywork-Reward-V2-Llama-3.1-8B",
    }
}

fn one(d: Diagnostic) -> Diagnostics {
    let mut all = Diagnostics::default();
    all.push(d);
    all
}

fn keys<V>(map: &BTreeMap<String, V>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown(what: &str, name: &str, valid: String) -> String {
    format!("unknown {what} `{name}` in this profile; valid: {valid}")
}

/// Replaces `${VAR}` with the environment variable's value; an unset
/// variable is an error naming it.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?
            + start;
        let var = &rest[start + 2..end];
        let value = std::env::var(var).map_err(|_| {
            format!("environment variable `{var}` (used in `{text}`) is not set; export it")
        })?;
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_parse_and_bind_every_pair() {
        for name in ["tiny", "paper", "smollm2"] {
            let p = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                p.pairs.contains_key("opt") && p.pairs.contains_key("qwen"),
                "{name}"
            );
        }
        let tiny = Profile::load("tiny").unwrap();
        assert!(matches!(
            tiny.model_spec("opt-125m"),
            Ok(ModelSpec::Tiny(_))
        ));
    }

    #[test]
    fn each_dataset_gets_its_own_judge_or_the_profile_default() {
        let paper = Profile::load("paper").unwrap();
        let kinds: Vec<(&str, &str)> = ["hh-rlhf", "ufb", "tldr", "shp-askbaking"]
            .iter()
            .map(|d| {
                let slot = &paper.datasets[*d];
                (*d, slot.gold.as_ref().unwrap_or(&paper.gold).kind_name())
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("hh-rlhf", "reward_model"),
                ("ufb", "reward_model"),
                ("tldr", "deberta_reward"),
                ("shp-askbaking", "steamshp")
            ]
        );
        let text = r#"
name = "p"
description = "d"
gold = { kind = "reward_model", path = "/models/sky" }
[datasets.a]
stands_for = "A"
files = { format = "hh-rlhf", train = "/d/a.jsonl", test = "/d/t.jsonl" }
[datasets.b]
stands_for = "B"
files = { format = "tldr", train = "/d/b.jsonl", test = "/d/t.jsonl" }
gold = { kind = "deberta_reward", path = "/models/oa" }
[models.m]
stands_for = "M"
path = "/models/m"
[pairs.x]
weak = "m"
strong = "m"
"#;
        let p = Profile::parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(
            p.gold_for("a").unwrap(),
            GoldSpec::RewardModel {
                path: "/models/sky".into()
            }
        );
        assert_eq!(
            p.gold_for("b").unwrap().path(),
            Some(Path::new("/models/oa"))
        );
        let missing = p.missing_paths(&["b"], &[]).join("\n");
        assert!(
            missing.contains("/models/oa/config.json")
                && missing.contains("OpenAssistant/reward-model-deberta-v3-large-v2"),
            "{missing}"
        );
        let bad = text.replace("deberta_reward", "gpt4_judge");
        let err = Profile::parse(Path::new("p.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpt4_judge") && err.contains("steamshp"),
            "{err}"
        );
    }

    #[test]
    fn expand_env_names_the_missing_variable() {
        let err = expand_env("${SWEEP_SURELY_UNSET_VAR}/x").unwrap_err();
        assert!(err.contains("SWEEP_SURELY_UNSET_VAR"), "{err}");
        assert_eq!(expand_env("plain/path").unwrap(), "plain/path");
    }
}
